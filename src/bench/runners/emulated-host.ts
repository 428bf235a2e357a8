/**
 * Runners inside the emulated virtualization host (QEMU TCG with nested SVM, src/host/emulated), for
 * hosts whose /dev/kvm cannot run zones (PVM or none). There, zones and their baselines must be measured
 * side by side in the same emulated machine: a ratio of a VM under TCG to containers on the real host
 * would measure TCG, not the zone.
 *
 * How: the emulated host is booted once and runs this same harness inside (`bulkhead bench --where host
 * --json`, over the real root shared read-only), with the same method (interleaved rounds, warm-ups);
 * its results come back as `<runner>@emulated-host`, with ratios against the baseline measured in there.
 * Each EmulatedHostRunner only stands for one runner name in that nested run.
 */
import * as fs from 'node:fs';
import { BulkheadError } from '../../errors';
import { withEmulatedHost } from '../method/emulated-host';
import type { BenchResults } from '../method/results';
import type { WorkloadGroup, WorkloadResult } from '../workload';
import { runnerId, type Availability, type BenchRunner, type RunnerName } from './runner';

/**
 * Iteration multiplier inside the emulated host: TCG runs the workload ~50-200x slower than the host,
 * and a default run must finish in minutes. Figures are per operation, so they stay comparable in there.
 */
export const EMULATED_HOST_SCALE = 0.02;

export class EmulatedHostRunner implements BenchRunner {
  readonly location = 'emulated-host' as const;
  readonly id: string;
  readonly description: string;
  readonly iterationScale = {};

  constructor(readonly name: RunnerName) {
    this.id = runnerId(name, 'emulated-host');
    this.description = `${name} inside the emulated host (QEMU TCG with nested SVM)`;
  }

  async probe(): Promise<Availability> {
    const reason = await emulatedHostUnavailableReason();
    return reason ? { available: false, reason } : { available: true };
  }

  async version(): Promise<string | undefined> {
    return undefined;
  }

  // The nested run (runInEmulatedHost) does the work; these are never called by the method.
  async prepare(): Promise<void> {}

  async run(): Promise<WorkloadResult[]> {
    throw new BulkheadError('BENCH_FAILED', `${this.id} runs as part of a nested run in the emulated host, not one run at a time`);
  }

  async cleanup(): Promise<void> {}
}

function loadEmulatedHost(): { EmulatedHost?: { start?: unknown } } | undefined {
  try {
    // Loaded lazily: it pulls in QEMU and kernel handling.
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    return require('../../host/emulated') as { EmulatedHost?: { start?: unknown } };
  } catch {
    return undefined;
  }
}

/** Why the emulated host cannot be used here, or undefined when it can. Changes nothing. */
export async function emulatedHostUnavailableReason(): Promise<string | undefined> {
  if (typeof loadEmulatedHost()?.EmulatedHost?.start !== 'function') return 'the emulated host (EmulatedHost, src/host/emulated) is not available in this build';
  try {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const { findKernel } = require('../../kernel') as { findKernel(o: { config: string }): Promise<{ vmlinux?: string } | undefined> };
    const kernel = await findKernel({ config: 'host' });
    if (!kernel?.vmlinux || !fs.existsSync(kernel.vmlinux)) return 'no emulated-host kernel is built yet (bulkhead kernel build --config host)';
  } catch (err) {
    return `cannot look for the emulated-host kernel: ${err instanceof Error ? err.message : String(err)}`;
  }
  return undefined;
}

export interface NestedRunSettings {
  readonly names: readonly RunnerName[];
  readonly groups: readonly WorkloadGroup[];
  readonly runs: number;
  readonly warmups: number;
  readonly scale: number;
  readonly seed: number;
  readonly signal?: AbortSignal;
  readonly log: (message: string) => void;
}

export interface NestedRunOutcome {
  readonly results: BenchResults;
  readonly bootMs: number;
  readonly kernelRelease: string;
}

/** Boots the emulated host, runs the harness inside for `names`, stops it (also when aborted). */
export async function runInEmulatedHost(settings: NestedRunSettings): Promise<NestedRunOutcome> {
  // The zone's kernel and image are made out here (native speed, minutes under TCG); the cache is shared
  // read-write, so the zone runner in there finds them.
  if (settings.names.includes('zone')) await prepareZoneArtifacts(settings);
  return withEmulatedHost(settings, async (host) => {
    const r = await host.bulkhead([
      'bench', '--where', 'host', '--json', '--out', '/tmp/bulkhead-bench-nested',
      '--runners', settings.names.join(','), '--only', settings.groups.join(','),
      '--runs', String(settings.runs), '--warmups', String(settings.warmups), '--scale', String(settings.scale * EMULATED_HOST_SCALE),
      '--seed', String(settings.seed),
    ]);
    let results: BenchResults;
    try {
      results = JSON.parse(r.stdout) as BenchResults;
    } catch {
      throw new BulkheadError('BENCH_FAILED', `the harness inside the emulated host printed no JSON results: ${r.stdout.slice(0, 200)}`);
    }
    return { results, bootMs: host.bootMs, kernelRelease: host.kernelRelease };
  });
}

/** The zone kernel and the busybox image, built or taken from the cache before the emulated host boots. */
export async function prepareZoneArtifacts(settings: { signal?: AbortSignal; log: (message: string) => void }): Promise<void> {
  const { buildKernel } = await import('../../kernel');
  const { resolveImage } = await import('../../image');
  settings.log('zone@emulated-host: preparing the zone kernel and the busybox image out here ...');
  await buildKernel({ config: 'zone', signal: settings.signal, progress: { onLine: (l) => settings.log(`kernel: ${l}`) } });
  await resolveImage('busybox', { signal: settings.signal, onProgress: (e) => settings.log(`image: ${e.message}`) });
}
