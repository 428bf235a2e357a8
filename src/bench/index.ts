/**
 * The benchmark harness as a library: run the workload across runners (bare, Docker, runc, crun, gVisor,
 * and zones once they exist), summarise it against bare Docker, and write the report.
 *
 *   const results = await runBenchmark({ runners: ['bare', 'docker', 'runsc'], runs: 5 });
 *   writeReport(results, './bench-results/today');
 */
export { runBenchmark, DEFAULT_RUNS, type BenchOptions } from './method/run';
export type { BenchResults, MetricResult, MetricByRunner, RunnerOutcome } from './method/results';
// Namespaced: names like `median` are too generic for the package's flat export list.
export * as benchStats from './method/stats';
export { interleavedSchedule, type ScheduledRun } from './method/schedule';
export { writeReport, renderMarkdown, renderSvg, type WrittenReport } from './report';
export { runLifecycle, type LifecycleOptions } from './lifecycle/run';
export { writeLifecycleReport } from './lifecycle/report';
export type { LifecycleResults, GoalRow } from './lifecycle/types';
export { collectHostFacts, caveatsFor, type HostFacts, type VirtualizationMode } from './host-facts';
export {
  createRunners,
  RUNNER_NAMES,
  type BenchRunner,
  type RunnerName,
  type RunnerLocation,
  type Availability,
  type RunnerContext,
  type WorkloadInvocation,
} from './runners';
export { WORKLOAD_TESTS, WORKLOAD_GROUPS, buildWorkload, parseWorkloadOutput, type WorkloadTest, type WorkloadGroup, type WorkloadResult } from './workload';
