/**
 * chart.svg of the Xen benchmark: ours / xl per guest kernel, for the total create → first console
 * line and for each pair of phases, one bar each; the whisker spans the worst and best pairing of
 * the two min–max ranges.
 */
import { renderRatioChart, type RatioRow } from '../report/ratio-chart';
import { ratioOf } from './report';
import type { Figure, XenBenchResults } from './types';

function row(label: string, series: string, ours: Figure, xl: Figure): RatioRow[] {
  if (!(ours.min > 0) || !(xl.min > 0)) return [];
  const r = ratioOf(ours, xl);
  return [{ label, series, ratio: r.median, range: r.range }];
}

export function renderXenSvg(r: XenBenchResults): string {
  const rows: RatioRow[] = [];
  for (const c of r.comparisons) {
    if (!c.ours || !c.xl) continue;
    const series = `${c.kernel} kernel`;
    rows.push(...row('create → first console line (total)', series, c.ours.totalMs, c.xl.totalMs));
    rows.push(...row('build (createPvDomain) vs xl create returning', series, c.ours.setupMs, c.xl.setupMs));
    rows.push(...row('unpause → marker vs xl return → marker', series, c.ours.toMarkerMs, c.xl.toMarkerMs));
  }
  return renderRatioChart({
    title: 'bulkhead createPvDomain vs xl create: time relative to xl (log scale; <1 = ours is faster) — Xen PV under QEMU TCG',
    reference: 'xl = 1',
    rows,
    empty: 'No figure was measured for both sides: see report.md.',
  });
}
