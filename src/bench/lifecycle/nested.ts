/**
 * The lifecycle run inside the emulated host, for hosts whose /dev/kvm cannot run zones: boot it, run
 * `bulkhead bench --lifecycle --where host --json` in there (zones on its nested-SVM /dev/kvm, Docker
 * and runc in its kernel), stop it (also when aborted), and label the results with that mode.
 */
import { BulkheadError } from '../../errors';
import { withEmulatedHost } from '../method/emulated-host';
import { prepareZoneArtifacts } from '../runners/emulated-host';
import type { LifecycleResults } from './types';

/** What one round (every sandbox) may take inside before the whole run is given up; a TCG round takes ~5-15 min. */
const ROUND_BACKSTOP_MS = 30 * 60_000;

export interface NestedLifecycleSettings {
  readonly rounds: number;
  readonly warmups: number;
  readonly streamBytes: number;
  readonly densities: readonly number[];
  readonly seed: number;
  readonly signal?: AbortSignal;
  readonly log: (message: string) => void;
}

export async function runLifecycleInEmulatedHost(s: NestedLifecycleSettings): Promise<LifecycleResults> {
  await prepareZoneArtifacts(s);
  return withEmulatedHost(s, async (host) => {
    const args = [
      'bench', '--lifecycle', '--where', 'host', '--json', '--out', '/tmp/bulkhead-lifecycle-nested',
      '--runs', String(s.rounds), '--warmups', String(s.warmups), '--seed', String(s.seed),
      '--stream-bytes', String(s.streamBytes), '--densities', s.densities.join(','),
    ];
    // A backstop only: inside, every figure call has its own deadline (FIGURE_DEADLINES_MS).
    const r = await host.bulkhead(args, { timeoutMs: (s.rounds + s.warmups) * ROUND_BACKSTOP_MS });
    let inner: LifecycleResults;
    try {
      inner = JSON.parse(r.stdout) as LifecycleResults;
    } catch {
      throw new BulkheadError('BENCH_FAILED', `the lifecycle run inside the emulated host printed no JSON results (exit ${r.exitCode}): ${r.stderr.trim().split('\n').slice(-3).join(' | ')}`);
    }
    return {
      ...inner,
      virtualization: {
        where: 'emulated-host',
        mode: 'nested SVM under TCG',
        detail: `inside the emulated host (QEMU TCG, kernel ${host.kernelRelease}): zones on its /dev/kvm (${inner.virtualization.detail}), containers in its kernel; this host's own /dev/kvm could not run zones`,
      },
      emulatedHost: { bootMs: host.bootMs, kernelRelease: host.kernelRelease },
    };
  });
}
