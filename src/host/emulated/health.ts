/**
 * Whether a running emulated host can still be trusted with work. A keeper (keeper.ts) shares one
 * host with a whole test run or with every zone on the machine, so a host that is broken but still
 * "running" turns one failure into a hang of everything after it. Two signs say it is broken:
 *
 * - Its kernel reported a fault on the console: an oops, a BUG, a GPF, a panic. Nested SVM under
 *   TCG has been seen to oops the host kernel (a NULL dereference) on the boot after an L2 guest's
 *   triple fault; a task that dies that way can hold KVM's locks, and every later VM in the host
 *   then hangs. Nothing that runs inside prints to that console (commands' output goes over the
 *   control channel), so a match is the kernel's own.
 * - It stopped answering: `true` got no answer within the probe's deadline, several times running.
 * - A command it was told to SIGKILL is still running long after (keeper.ts times that): a task
 *   that cannot die is stuck inside the host's kernel, which is the usual aftermath of the oops.
 */
import type { RunResult } from './channel';

/** The first line of a kernel fault report (x86 oops, BUG, GPF, panic) on the host's console. */
const KERNEL_FAULT = /(?:^|\]\s)(?:BUG: .*|Oops: .*|general protection fault.*|kernel BUG at .*|Kernel panic - not syncing.*)$/;

/** Reads the host's console as it comes and reports its kernel's first fault line. */
export class KernelFaultWatch {
  private partial = '';
  private found: string | undefined;

  /** The console text that arrived; returns the fault line the first time one is complete. */
  push(text: string): string | undefined {
    if (this.found !== undefined) return undefined;
    const lines = (this.partial + text).split('\n');
    this.partial = (lines.pop() ?? '').slice(-4096);
    for (const raw of lines) {
      const line = raw.replace(/\r$/, '').trim();
      if (KERNEL_FAULT.test(line)) {
        this.found = line;
        return line;
      }
    }
    return undefined;
  }

  /** The fault line seen, if any. */
  get fault(): string | undefined {
    return this.found;
  }
}

export interface LivenessProbeOptions {
  /** Runs the probe command with a deadline. */
  run: (argv: readonly string[], opts: { timeoutMs: number }) => Promise<RunResult>;
  /** Between the end of one probe and the start of the next (default 30 s). */
  intervalMs?: number;
  /** How long one probe may take (default 60 s: a loaded host under TCG is slow, not dead). */
  timeoutMs?: number;
  /** Failed probes in a row that make the host unresponsive (default 2). */
  misses?: number;
  /** Called once, with why, when the host is judged unresponsive. */
  onUnresponsive: (why: string) => void;
}

/** Probes the host with `true` until stopped; returns the stop function. */
export function startLivenessProbe(opts: LivenessProbeOptions): () => void {
  const intervalMs = opts.intervalMs ?? 30_000;
  const timeoutMs = opts.timeoutMs ?? 60_000;
  const misses = opts.misses ?? 2;
  let stopped = false;
  let missed = 0;
  let timer: NodeJS.Timeout | undefined;
  const probe = async () => {
    const started = Date.now();
    const ok = await opts.run(['true'], { timeoutMs }).then(
      (r) => r.exitCode === 0,
      () => false, // a lost channel: the keeper's own watch sees the host end
    );
    if (stopped) return;
    missed = ok ? 0 : missed + 1;
    if (missed >= misses) {
      stopped = true;
      opts.onUnresponsive(`it did not run \`true\` within ${timeoutMs / 1000} s, ${misses} probes running (the last took ${Date.now() - started} ms)`);
      return;
    }
    timer = setTimeout(() => void probe(), intervalMs);
  };
  timer = setTimeout(() => void probe(), intervalMs);
  return () => {
    stopped = true;
    clearTimeout(timer);
  };
}
