/** The shape of results.json: everything the report is drawn from, and enough to redraw it later. */
import type { HostFacts } from '../host-facts';
import type { RunnerLocation, RunnerName } from '../runners/runner';
import type { WorkloadGroup, WorkloadTest } from '../workload';
import type { ScheduledRun } from './schedule';
import type { Summary } from './stats';

export interface RunnerOutcome {
  readonly id: string;
  readonly name: RunnerName;
  readonly location: RunnerLocation;
  readonly description: string;
  /** ok: every counted run succeeded; skipped: not available here (reason says why); failed: it broke. */
  status: 'ok' | 'skipped' | 'failed';
  reason?: string;
  /** Iterations given to each test for this runner (after --scale and the runner's own scaling). */
  readonly iterations: Record<string, number>;
  /** The runner's own per-group multipliers on iteration counts (empty: none). */
  readonly iterationScale: Partial<Record<WorkloadGroup, number>>;
}

export interface MetricByRunner extends Summary {
  readonly samples: readonly number[];
  /** Cost relative to the baseline's median (>1 = costs more); null when there is no baseline. */
  readonly ratio: number | null;
}

export interface MetricResult {
  readonly test: string;
  readonly group: WorkloadGroup;
  readonly title: string;
  readonly unit: string;
  readonly better: 'lower' | 'higher';
  readonly byRunner: Record<string, MetricByRunner>;
}

export interface Baseline {
  readonly runnerId: string | null;
  readonly note: string;
}

/** The nested run inside the emulated host, when there was one. */
export interface EmulatedHostRun {
  /** The emulated machine's own facts (TCG CPU, nested SVM: virtualization 'hardware' in there). */
  readonly host: HostFacts;
  /** The iteration scale used in there (lower than outside: TCG is slow). */
  readonly scale: number;
  readonly bootMs: number;
  readonly kernelRelease: string;
}

export interface BenchResults {
  readonly format: 'bulkhead-bench/1';
  readonly startedAt: string;
  readonly finishedAt: string;
  readonly settings: {
    readonly groups: readonly WorkloadGroup[];
    readonly runs: number;
    readonly warmups: number;
    readonly scale: number;
    /** Seed of the per-round shuffle of the runner order (the same seed gives the same order). */
    readonly seed: number;
    /** Counted samples' floor: a warm-up sample shorter than this raised the test's iterations. */
    readonly minSampleMs: number;
  };
  readonly host: HostFacts;
  readonly caveats: readonly string[];
  /** The baseline on the real host (the headline's "bare Docker"). */
  readonly baseline: Baseline;
  /** Per location: ratios only ever compare runners measured in the same place. */
  readonly baselines: Record<string, Baseline>;
  readonly tests: readonly WorkloadTest[];
  readonly runners: readonly RunnerOutcome[];
  readonly metrics: readonly MetricResult[];
  /** Per group, per runner: the geometric mean of that group's ratios. */
  readonly headline: Record<string, Record<string, number>>;
  /** The order the runs actually happened in (warm-ups included). */
  readonly executed: readonly ScheduledRun[];
  readonly emulatedHost?: EmulatedHostRun;
}
