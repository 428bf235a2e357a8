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

interface EmulatedHostModule {
  EmulatedHost: {
    start(opts: { bootTimeoutMs?: number; writableDirs?: readonly string[]; signal?: AbortSignal }): Promise<EmulatedHostLike>;
  };
}

interface EmulatedHostLike {
  readonly bootMs: number;
  readonly kernelRelease: string;
  bulkhead(args: readonly string[], opts: { timeoutMs?: number; onStderr?: (chunk: Buffer) => void }): Promise<{ exitCode: number | null; stdout: string; stderr: string; timedOut: boolean }>;
  stop(opts?: { timeoutMs?: number }): Promise<void>;
}

function loadEmulatedHost(): EmulatedHostModule | undefined {
  try {
    // Loaded lazily: another area's module, and it pulls in QEMU and kernel handling.
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const mod = require('../../host/emulated') as Partial<EmulatedHostModule>;
    return typeof mod.EmulatedHost?.start === 'function' ? (mod as EmulatedHostModule) : undefined;
  } catch {
    return undefined;
  }
}

/** Why the emulated host cannot be used here, or undefined when it can. Changes nothing. */
export async function emulatedHostUnavailableReason(): Promise<string | undefined> {
  if (!loadEmulatedHost()) return 'the emulated host (EmulatedHost, src/host/emulated) is not available in this build';
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
    const r = await host.run([
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

/** The emulated host as a nested run sees it: `bulkhead` args in, checked output back. */
export interface NestedHost {
  readonly bootMs: number;
  readonly kernelRelease: string;
  /** `bulkhead ARGS` inside; progress lines are relayed to the log; a nonzero exit or a timeout throws. */
  /** `timeoutMs`: how long the harness inside may run (default 60 min). */
  run(args: readonly string[], opts?: { timeoutMs?: number }): Promise<{ stdout: string; stderr: string; exitCode: number | null }>;
}

/**
 * One way into the emulated host for every nested run (workload suite, lifecycle): boots it with the
 * cache shared read-write, hands it to `body`, and stops it afterwards, also when `signal` aborts.
 */
export async function withEmulatedHost<T>(settings: { signal?: AbortSignal; log: (message: string) => void }, body: (host: NestedHost) => Promise<T>): Promise<T> {
  const mod = loadEmulatedHost();
  if (!mod) throw new BulkheadError('BENCH_RUNNER_UNAVAILABLE', 'the emulated host is not available in this build');
  if (settings.signal?.aborted) throw new BulkheadError('BENCH_FAILED', 'aborted');
  settings.log('emulated host: booting (QEMU TCG) ...');
  const { cacheRoot } = await import('../../util/cache');
  const host = await mod.EmulatedHost.start({ bootTimeoutMs: 180_000, writableDirs: [cacheRoot()], signal: settings.signal });
  const onAbort = (): void => void host.stop({ timeoutMs: 2000 });
  settings.signal?.addEventListener('abort', onAbort, { once: true });
  try {
    settings.log(`emulated host: up in ${(host.bootMs / 1000).toFixed(1)} s (kernel ${host.kernelRelease}); running the harness inside ...`);
    return await body({
      bootMs: host.bootMs,
      kernelRelease: host.kernelRelease,
      async run(args, opts = {}) {
        let pending = '';
        const r = await host.bulkhead(args, {
          timeoutMs: opts.timeoutMs ?? 60 * 60_000,
          onStderr: (chunk) => {
            // Relay the inner progress lines, marked, as they come.
            pending += chunk.toString('utf8');
            const lines = pending.split('\n');
            pending = lines.pop() ?? '';
            for (const line of lines) if (line.trim()) settings.log(`[emulated host] ${line.replace(/^bench: /, '')}`);
          },
        });
        if (settings.signal?.aborted) throw new BulkheadError('BENCH_FAILED', 'aborted');
        if (r.exitCode !== 0 || r.timedOut) {
          throw new BulkheadError('BENCH_FAILED', `the harness inside the emulated host ${r.timedOut ? 'timed out' : `exited with ${r.exitCode}`}: ${r.stderr.trim().split('\n').slice(-3).join(' | ')}`);
        }
        return r;
      },
    });
  } finally {
    settings.signal?.removeEventListener('abort', onAbort);
    await host.stop({ timeoutMs: 10_000 });
    settings.log('emulated host: stopped');
  }
}

/** The zone kernel and the busybox image, built or taken from the cache before the emulated host boots. */
export async function prepareZoneArtifacts(settings: { signal?: AbortSignal; log: (message: string) => void }): Promise<void> {
  const { buildKernel } = await import('../../kernel');
  const { resolveImage } = await import('../../image');
  settings.log('zone@emulated-host: preparing the zone kernel and the busybox image out here ...');
  await buildKernel({ config: 'zone', signal: settings.signal, progress: { onLine: (l) => settings.log(`kernel: ${l}`) } });
  await resolveImage('busybox', { signal: settings.signal, onProgress: (e) => settings.log(`image: ${e.message}`) });
}
