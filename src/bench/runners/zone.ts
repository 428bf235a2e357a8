/**
 * The zone runner: the workload's image booted in its own small VM. Zones do not exist yet, so this
 * runner only reports why it cannot run; the interface is the same as every other runner's, so the
 * method and the report need no change when it learns to run. The intended shape:
 *   prepare(): the same FROM-scratch image the docker runner imports (one static binary) becomes the
 *              zone's root filesystem; the zone kernel is built or taken from the cache; boot is not timed.
 *   run():     exec `/workload TEST=N ...` in the zone through its agent, collect stdout, parse it.
 *   cleanup(): destroy the zone (and its VM), remove the image.
 * Where /dev/kvm is not hardware virtualization, zone@emulated-host joins the nested run in the emulated
 * host (see emulated-host.ts) so that it is compared with docker measured in the same machine.
 */
import type { WorkloadResult } from '../workload';
import { BulkheadError } from '../../errors';
import { runnerId, type Availability, type BenchRunner, type RunnerLocation } from './runner';

export class ZoneRunner implements BenchRunner {
  readonly name = 'zone' as const;
  readonly id: string;
  readonly description = 'the workload image booted as a zone (its own VM and kernel)';
  readonly iterationScale = {};

  /** `location`: where zones can run on this machine: host with hardware virtualization, else the emulated host. */
  constructor(readonly location: RunnerLocation) {
    this.id = runnerId('zone', location);
  }

  async probe(): Promise<Availability> {
    return {
      available: false,
      reason:
        'zones are not implemented yet: there is no zone runtime (OCI image to VM with its own kernel and agent) to boot the workload in' +
        (this.location === 'emulated-host' ? ' (on this host they would run inside the emulated host: its /dev/kvm is not hardware virtualization)' : ''),
    };
  }

  async version(): Promise<string | undefined> {
    return undefined;
  }

  async prepare(): Promise<void> {
    throw new BulkheadError('BENCH_RUNNER_UNAVAILABLE', (await this.unavailableReason()) ?? 'zone runner unavailable');
  }

  async run(): Promise<WorkloadResult[]> {
    throw new BulkheadError('BENCH_RUNNER_UNAVAILABLE', (await this.unavailableReason()) ?? 'zone runner unavailable');
  }

  async cleanup(): Promise<void> {}

  private async unavailableReason(): Promise<string | undefined> {
    const a = await this.probe();
    return a.available ? undefined : a.reason;
  }
}
