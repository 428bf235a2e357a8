/**
 * The one way into the emulated host (QEMU TCG with nested SVM) for every benchmark that runs in
 * there: the workload suite's nested runners, the lifecycle run and bench/vmm. It boots the host
 * with the cache shared read-write, hands it to `body`, relays what the harness inside prints as
 * progress, and stops it afterwards, also when `signal` aborts or an interrupt handler calls stop().
 */
import { BulkheadError } from '../../errors';

export interface NestedResult {
  readonly stdout: string;
  readonly stderr: string;
  readonly exitCode: number | null;
}

export interface NestedHost {
  readonly bootMs: number;
  readonly kernelRelease: string;
  /** `bulkhead ARGS` inside; a nonzero exit or a timeout throws. `timeoutMs` defaults to 60 min. */
  bulkhead(args: readonly string[], opts?: { timeoutMs?: number }): Promise<NestedResult>;
  /** `node ARGV` inside (a script of this package); a nonzero exit or a timeout throws. */
  node(argv: readonly string[], opts?: { timeoutMs?: number }): Promise<NestedResult>;
  /** Stops the host now; the same stop the end of withEmulatedHost waits for (an interrupt handler's). */
  stop(): Promise<void>;
}

export interface EmulatedHostSettings {
  readonly signal?: AbortSignal;
  readonly log: (message: string) => void;
  /** The host's kernel (default: the one built for the current host config). */
  readonly kernel?: string;
  /** Where the inner harness's progress lines go (default: the log, marked `[emulated host]`). */
  readonly onInnerLine?: (line: string) => void;
}

const DEFAULT_TIMEOUT_MS = 60 * 60_000;

export async function withEmulatedHost<T>(settings: EmulatedHostSettings, body: (host: NestedHost) => Promise<T>): Promise<T> {
  if (settings.signal?.aborted) throw new BulkheadError('BENCH_FAILED', 'aborted');
  // Loaded when used: it pulls in QEMU and kernel handling, which a run on the host alone never needs.
  const { EmulatedHost } = await import('../../host/emulated');
  const { cacheRoot } = await import('../../util/cache');
  settings.log('emulated host: booting (QEMU TCG) ...');
  const host = await EmulatedHost.start({ bootTimeoutMs: 180_000, writableDirs: [cacheRoot()], signal: settings.signal, ...(settings.kernel ? { kernel: settings.kernel } : {}) });
  let stopping: Promise<void> | undefined;
  const stop = (timeoutMs: number) => (stopping ??= host.stop({ timeoutMs }));
  const onAbort = (): void => void stop(2000);
  settings.signal?.addEventListener('abort', onAbort, { once: true });
  const relay = settings.onInnerLine ?? ((line: string) => settings.log(`[emulated host] ${line.replace(/^bench: /, '')}`));
  const checked = async (what: string, run: (onStderr: (chunk: Buffer) => void) => Promise<{ exitCode: number | null; stdout: string; stderr: string; timedOut: boolean }>) => {
    let pending = '';
    const r = await run((chunk) => {
      // Relayed line by line, as they come.
      pending += chunk.toString('utf8');
      const lines = pending.split('\n');
      pending = lines.pop() ?? '';
      for (const line of lines) if (line.trim()) relay(line);
    });
    if (settings.signal?.aborted) throw new BulkheadError('BENCH_FAILED', 'aborted');
    if (r.exitCode !== 0 || r.timedOut) {
      throw new BulkheadError('BENCH_FAILED', `${what} inside the emulated host ${r.timedOut ? 'timed out' : `exited with ${r.exitCode}`}: ${r.stderr.trim().split('\n').slice(-3).join(' | ')}`);
    }
    return r;
  };
  try {
    settings.log(`emulated host: up in ${(host.bootMs / 1000).toFixed(1)} s (kernel ${host.kernelRelease}); running the harness inside ...`);
    return await body({
      bootMs: host.bootMs,
      kernelRelease: host.kernelRelease,
      bulkhead: (args, opts = {}) => checked(`bulkhead ${args[0] ?? ''}`, (onStderr) => host.bulkhead(args, { timeoutMs: opts.timeoutMs ?? DEFAULT_TIMEOUT_MS, onStderr })),
      node: (argv, opts = {}) => checked(`node ${argv[0] ?? ''}`, (onStderr) => host.runNode(argv, { timeoutMs: opts.timeoutMs ?? DEFAULT_TIMEOUT_MS, onStderr })),
      stop: () => stop(10_000),
    });
  } finally {
    settings.signal?.removeEventListener('abort', onAbort);
    await stop(10_000);
    settings.log('emulated host: stopped');
  }
}
