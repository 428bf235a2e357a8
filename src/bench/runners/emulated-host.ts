/**
 * A container runner inside the emulated virtualization host (a TCG VM with nested SVM, see
 * src/host/emulated), for hosts whose /dev/kvm cannot run zones (PVM or none). There, zones and their
 * baselines must be measured side by side in the same emulated machine, or the ratio would compare a
 * VM under TCG with containers on bare hardware.
 *
 * Not wired up yet: EmulatedHost is being written. The intended shape: prepare() boots the emulated host
 * once (shared by every runner placed there), copies the workload in, and prepares the inner runner there;
 * run() executes the inner runner's command through the emulated host's exec channel.
 */
import { BulkheadError } from '../../errors';
import type { WorkloadResult } from '../workload';
import { runnerId, type Availability, type BenchRunner, type RunnerName } from './runner';

export class EmulatedHostRunner implements BenchRunner {
  readonly location = 'emulated-host' as const;
  readonly id: string;
  readonly description: string;
  readonly iterationScale = {};

  constructor(readonly name: Exclude<RunnerName, 'zone'>) {
    this.id = runnerId(name, 'emulated-host');
    this.description = `${name} inside the emulated host (TCG VM with nested SVM)`;
  }

  async probe(): Promise<Availability> {
    return { available: false, reason: emulatedHostUnavailableReason() };
  }

  async version(): Promise<string | undefined> {
    return undefined;
  }

  async prepare(): Promise<void> {
    throw new BulkheadError('BENCH_RUNNER_UNAVAILABLE', emulatedHostUnavailableReason());
  }

  async run(): Promise<WorkloadResult[]> {
    throw new BulkheadError('BENCH_RUNNER_UNAVAILABLE', emulatedHostUnavailableReason());
  }

  async cleanup(): Promise<void> {}
}

export function emulatedHostUnavailableReason(): string {
  let hasEmulatedHost = false;
  try {
    // Loaded lazily: the emulated host is another area's module and may not exist in this build.
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    hasEmulatedHost = typeof (require('../../host/emulated') as Record<string, unknown>).EmulatedHost === 'function';
  } catch {
    hasEmulatedHost = false;
  }
  return hasEmulatedHost
    ? 'the emulated host exists (EmulatedHost), but running benchmark runners inside it is not wired up yet'
    : 'the emulated host (EmulatedHost, src/host/emulated) is not available yet';
}
