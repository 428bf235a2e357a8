/** The statistics of the method: median with min-max, and ratios that read the same way for every metric. */
import { BulkheadError } from '../../errors';

export interface Summary {
  readonly median: number;
  readonly min: number;
  readonly max: number;
  readonly n: number;
}

export function median(values: readonly number[]): number {
  if (values.length === 0) throw new BulkheadError('BENCH_FAILED', 'median of no values');
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  // Even count: the mean of the two middle values.
  return sorted.length % 2 === 1 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}

export function summarize(values: readonly number[]): Summary {
  return { median: median(values), min: Math.min(...values), max: Math.max(...values), n: values.length };
}

/**
 * How much more a runner costs than the baseline for one metric: >1 means slower (or less throughput),
 * whatever the unit. For time-like figures that is value/baseline; for throughput, baseline/value.
 */
export function costRatio(value: number, baseline: number, better: 'lower' | 'higher'): number {
  if (!(value > 0) || !(baseline > 0)) throw new BulkheadError('BENCH_FAILED', `ratio of non-positive figures: ${value} vs ${baseline}`);
  return better === 'lower' ? value / baseline : baseline / value;
}

/** Geometric mean: the right average of ratios (a 2x and a 0.5x cancel out). */
export function geometricMean(values: readonly number[]): number {
  if (values.length === 0) throw new BulkheadError('BENCH_FAILED', 'geometric mean of no values');
  return Math.exp(values.reduce((sum, v) => sum + Math.log(v), 0) / values.length);
}
