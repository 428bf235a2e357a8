/** From counted samples to what the report shows: baselines per location, metrics, headline ratios. */
import type { RunnerLocation } from '../runners/runner';
import type { WorkloadGroup, WorkloadTest } from '../workload';
import type { Baseline, MetricByRunner, MetricResult, RunnerOutcome } from './results';
import { costRatio, geometricMean, summarize } from './stats';

/** runner id -> test name -> counted values */
export type Samples = Map<string, Map<string, number[]>>;

/** Docker if it ran at `location`, else runc, else none: ratios only compare runners in one place. */
export function chooseBaseline(outcomes: readonly RunnerOutcome[], location: RunnerLocation): Baseline {
  const here = (name: string): RunnerOutcome | undefined => outcomes.find((o) => o.name === name && o.location === location);
  const docker = here('docker');
  const runc = here('runc');
  const where = location === 'host' ? '' : ' inside the emulated host';
  if (docker?.status === 'ok') return { runnerId: docker.id, note: `ratios${where} are relative to bare Docker (docker run with runc)` };
  const why = docker ? `${docker.id} ${docker.status}: ${docker.reason}` : 'docker was not requested';
  if (runc?.status === 'ok') {
    return { runnerId: runc.id, note: `ratios${where} are relative to runc, not Docker (${why}); runc is what Docker runs, minus Docker's seccomp profile` };
  }
  return { runnerId: null, note: `no baseline${where}: neither docker nor runc ran (${why}); no ratios` };
}

export function baselinesFor(outcomes: readonly RunnerOutcome[]): Record<string, Baseline> {
  const baselines: Record<string, Baseline> = {};
  for (const location of new Set(outcomes.map((o) => o.location))) baselines[location] = chooseBaseline(outcomes, location);
  return baselines;
}

/** One metric across runners: median [min-max] of each runner's samples, ratio to its location's baseline. */
export function metricFor(test: WorkloadTest, outcomes: readonly RunnerOutcome[], samples: Samples, baselines: Record<string, Baseline>): MetricResult {
  const byRunner: Record<string, MetricByRunner> = {};
  for (const o of outcomes) {
    const values = samples.get(o.id)?.get(test.name);
    if (o.status !== 'ok' || !values || values.length === 0) continue;
    const baseId = baselines[o.location]?.runnerId;
    const baseValues = baseId ? samples.get(baseId)?.get(test.name) : undefined;
    const baseMedian = baseValues && baseValues.length > 0 ? summarize(baseValues).median : undefined;
    const s = summarize(values);
    byRunner[o.id] = { ...s, samples: values, ratio: baseMedian !== undefined ? costRatio(s.median, baseMedian, test.better) : null };
  }
  return { test: test.name, group: test.group, title: test.title, unit: test.unit, better: test.better, byRunner };
}

/** Per group, per runner: the geometric mean of the group's ratios. */
export function headlineRatios(groups: readonly WorkloadGroup[], metrics: readonly MetricResult[], outcomes: readonly RunnerOutcome[]): Record<string, Record<string, number>> {
  const headline: Record<string, Record<string, number>> = {};
  for (const g of groups) {
    headline[g] = {};
    for (const o of outcomes) {
      const ratios = metrics
        .filter((m) => m.group === g)
        .map((m) => m.byRunner[o.id]?.ratio)
        .filter((r): r is number => typeof r === 'number');
      if (ratios.length > 0) headline[g]![o.id] = geometricMean(ratios);
    }
  }
  return headline;
}
