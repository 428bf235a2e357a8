/**
 * chart.svg of the VMM comparison: every figure's cost relative to QEMU (ours / QEMU for times and
 * memory, QEMU / ours for throughput), one bar per figure, coloured by where it was measured. The
 * whisker spans the worst and best pairing of the two min–max ranges.
 */
import { costRatio } from '../method/stats';
import { renderRatioChart, type RatioRow } from '../report/ratio-chart';
import type { Figure } from './exits';
import { modeLabel, type VmmBenchResults } from './report';

function row(label: string, series: string, ours: Figure | undefined, qemu: Figure | undefined, better: 'lower' | 'higher'): RatioRow[] {
  if (!ours?.n || !qemu?.n || !(ours.median > 0) || !(qemu.median > 0) || !(ours.min > 0) || !(qemu.min > 0)) return [];
  const a = costRatio(ours.min, qemu.max, better);
  const b = costRatio(ours.max, qemu.min, better);
  return [{ label, series, ratio: costRatio(ours.median, qemu.median, better), range: [Math.min(a, b), Math.max(a, b)] }];
}

export function renderVmmSvg(r: VmmBenchResults): string {
  const rows: RatioRow[] = [];
  for (const e of r.exits) {
    const x = e.result;
    if (!x) continue;
    const where = e.location === 'host' ? x.virtualization : 'emulated host';
    rows.push(...row('exit round trip (library)', where, x.exitNs.ours, x.exitNs.qemu, 'lower'));
    rows.push(...row('exit round trip (process)', where, x.exitNs.oursProcess, x.exitNs.qemu, 'lower'));
    rows.push(...row('create + first insn + destroy (process)', where, x.lifecycleMs.oursProcess, x.lifecycleMs.qemu, 'lower'));
  }
  const b = r.boot.result;
  if (b) {
    rows.push(...row('boot to userspace marker', 'emulated host', b.markerMs.ours, b.markerMs.qemu, 'lower'));
    rows.push(...row('VMM memory overhead at the marker', 'emulated host', b.overheadMiB.ours, b.overheadMiB.qemu, 'lower'));
  }
  const d = r.devices?.result;
  if (d) {
    const series = 'emulated host, all devices';
    rows.push(...row('virtio-blk sequential read', series, d.mibPerS.blk.ours, d.mibPerS.blk.qemu, 'higher'));
    rows.push(...row('vsock guest → host (vs vhost-vsock)', series, d.mibPerS['vsock-out'].ours, d.mibPerS['vsock-out'].qemu, 'higher'));
    rows.push(...row('vsock host → guest (vs vhost-vsock)', series, d.mibPerS['vsock-in'].ours, d.mibPerS['vsock-in'].qemu, 'higher'));
    rows.push(...row('boot to userspace, all devices', series, d.markerMs.ours, d.markerMs.qemu, 'lower'));
  }
  const modes = [...new Set(r.exits.filter((e) => e.result).map((e) => modeLabel(e.location, e.result!.virtualization)))];
  return renderRatioChart({
    title: `bulkhead VMM vs QEMU: cost relative to QEMU (log scale; >1 = ours costs more) — ${modes.join('; ') || 'emulated host'}`,
    reference: 'QEMU = 1',
    rows,
    empty: 'No figure was measured for both VMMs: see report.md.',
  });
}
