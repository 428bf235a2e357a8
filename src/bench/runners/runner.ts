/**
 * The runner interface: one way of running the workload (a bare process, a container runtime, a zone).
 * The method (src/bench/method) only ever talks to this interface, so a zone runner slots in beside the
 * container runners without changing how runs are scheduled, measured or reported.
 */
import type { WorkloadGroup, WorkloadResult } from '../workload';

export type RunnerName = 'bare' | 'docker' | 'runc' | 'crun' | 'runsc' | 'zone';
export const RUNNER_NAMES: readonly RunnerName[] = ['bare', 'docker', 'runc', 'crun', 'runsc', 'zone'];

/**
 * Where a runner's processes live: directly on this machine, or inside the emulated virtualization host
 * (src/host/emulated: a TCG VM with nested SVM) for hosts whose /dev/kvm cannot run zones.
 */
export type RunnerLocation = 'host' | 'emulated-host';

export type Availability = { readonly available: true } | { readonly available: false; readonly reason: string };

export interface RunnerContext {
  /** The static workload binary on the host. */
  readonly workloadPath: string;
  /** A private, empty directory for this runner's bundles, state and daemons; removed after cleanup(). */
  readonly workDir: string;
  /** Progress for the person watching (stderr in the CLI). */
  readonly log: (message: string) => void;
  readonly signal?: AbortSignal;
}

export interface WorkloadInvocation {
  /** The workload's argv (TEST=ITERATIONS ...). */
  readonly args: readonly string[];
  /** Test names in the order the workload will print them. */
  readonly tests: readonly string[];
}

export interface RunOptions {
  readonly signal?: AbortSignal;
  readonly timeoutMs: number;
}

export interface BenchRunner {
  readonly name: RunnerName;
  readonly location: RunnerLocation;
  /** `name` on the host, `name@emulated-host` inside the emulated host. */
  readonly id: string;
  readonly description: string;
  /**
   * Per-group multipliers on iteration counts for runners where some operations are orders of magnitude
   * slower (gVisor's ptrace platform pays ~30-50 µs per syscall), so a run finishes in bounded time.
   * Figures are per operation, so fewer iterations change the noise, not the figure.
   */
  readonly iterationScale: Partial<Record<WorkloadGroup, number>>;
  /** Whether this runner can work here, and if not, why, in words. Cheap, changes nothing. */
  probe(): Promise<Availability>;
  /** The runtime's version string, for the host facts. */
  version(): Promise<string | undefined>;
  /** One-time setup (start a daemon, import an image, lay out a bundle). */
  prepare(context: RunnerContext): Promise<void>;
  /** Runs the workload once and returns its parsed results. */
  run(invocation: WorkloadInvocation, options: RunOptions): Promise<WorkloadResult[]>;
  /** Undoes everything prepare() and run() did. Safe to call more than once and after a failed prepare. */
  cleanup(): Promise<void>;
}

export function runnerId(name: RunnerName, location: RunnerLocation): string {
  return location === 'host' ? name : `${name}@${location}`;
}
