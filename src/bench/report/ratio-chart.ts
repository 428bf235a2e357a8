/**
 * A chart.svg of ratios against one reference (Docker, QEMU, ...): one horizontal bar per row on a
 * log axis centred on 1, right for "costs more", left for "costs less", with the min–max range as a
 * whisker when the row has one. Used by the lifecycle, VMM and micro benchmarks; plain SVG.
 */
import { formatRatio } from './format';

export interface RatioRow {
  readonly label: string;
  /** The colour group (sandbox kind, location, ...). */
  readonly series: string;
  readonly ratio: number;
  readonly range?: readonly [number, number];
}

export interface RatioChart {
  readonly title: string;
  /** What 1 stands for, written above the axis ("docker = 1"). */
  readonly reference: string;
  readonly rows: readonly RatioRow[];
  /** Shown instead of bars when no row has a ratio. */
  readonly empty: string;
}

const PALETTE = ['#4e79a7', '#f28e2b', '#59a14f', '#e15759', '#76b7b2', '#b07aa1', '#edc948', '#9c755f'];
const FONT = 'font-family="DejaVu Sans, Helvetica, Arial, sans-serif"';

export function renderRatioChart(chart: RatioChart): string {
  const rows = chart.rows.filter((r) => Number.isFinite(r.ratio) && r.ratio > 0);
  const series = [...new Set(rows.map((r) => r.series))];
  const colour = (s: string) => PALETTE[series.indexOf(s) % PALETTE.length]!;
  const width = 960;
  const left = 340;
  const right = width - 80;
  const rowH = 20;
  const top = 50;
  const height = top + Math.max(1, rows.length) * rowH + 40;
  const parts = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}">`,
    `<rect width="100%" height="100%" fill="#fff"/>`,
    `<text x="10" y="20" font-size="14" ${FONT}>${esc(chart.title)}</text>`,
  ];
  if (rows.length === 0) {
    parts.push(`<text x="10" y="${top + 14}" font-size="12" ${FONT}>${esc(chart.empty)}</text>`, '</svg>');
    return parts.join('\n');
  }
  const extremes = rows.flatMap((r) => [r.ratio, ...(r.range ?? [])]).filter((v) => v > 0);
  const span = Math.max(2, ...extremes.map((v) => Math.abs(Math.log10(v))));
  const mid = (left + right) / 2;
  const xOf = (ratio: number) => mid + (Math.log10(ratio) / span) * ((right - left) / 2);
  parts.push(`<line x1="${mid}" y1="${top - 10}" x2="${mid}" y2="${top + rows.length * rowH}" stroke="#333"/>`);
  parts.push(`<text x="${mid}" y="${top - 14}" font-size="11" text-anchor="middle" ${FONT}>${esc(chart.reference)}</text>`);
  for (const [i, row] of rows.entries()) {
    const y = top + i * rowH;
    const x = xOf(row.ratio);
    const text = `${row.label}, ${row.series}: ${formatRatio(row.ratio)}${row.range ? ` [${formatRatio(row.range[0])}–${formatRatio(row.range[1])}]` : ''}`;
    parts.push(`<text x="${left - 6}" y="${y + 13}" font-size="11" text-anchor="end" ${FONT}>${esc(row.label)} (${esc(row.series)})</text>`);
    parts.push(`<rect x="${Math.min(mid, x)}" y="${y + 3}" width="${Math.max(1, Math.abs(x - mid))}" height="${rowH - 6}" fill="${colour(row.series)}"><title>${esc(text)}</title></rect>`);
    if (row.range && row.range[0] > 0 && row.range[1] > 0) {
      parts.push(`<line x1="${xOf(row.range[0])}" y1="${y + rowH / 2}" x2="${xOf(row.range[1])}" y2="${y + rowH / 2}" stroke="#222"/>`);
    }
    parts.push(`<text x="${Math.max(mid, x, row.range ? xOf(row.range[1]) : 0) + 4}" y="${y + 13}" font-size="11" ${FONT}>${esc(formatRatio(row.ratio))}</text>`);
  }
  parts.push('</svg>');
  return parts.join('\n');
}

function esc(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
}
