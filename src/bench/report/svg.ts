/**
 * chart.svg: each metric's cost relative to the baseline, one horizontal bar per runner, on a log axis
 * centred on 1 (the baseline). Log scale because the spread is wide (gVisor's syscalls cost ~100x);
 * bars grow from 1, right for "costs more", left for "costs less". Plain SVG, no dependencies.
 */
import type { BenchResults } from '../method/results';
import { busiestLoad } from '../host-facts';
import { formatRatio, GROUP_TITLES, runnerLabel } from './format';

const PALETTE = ['#4e79a7', '#f28e2b', '#59a14f', '#e15759', '#76b7b2', '#b07aa1', '#edc948', '#9c755f'];
const WIDTH = 960;
const LABEL_WIDTH = 260;
const PLOT_LEFT = LABEL_WIDTH + 10;
const PLOT_RIGHT = WIDTH - 70;
const BAR_HEIGHT = 12;
const BAR_GAP = 3;
const METRIC_GAP = 10;
const GROUP_HEADER = 24;
const FONT = 'font-family="DejaVu Sans, Helvetica, Arial, sans-serif"';

export function renderSvg(results: BenchResults): string {
  const baselineIds = new Set(Object.values(results.baselines ?? {}).map((b) => b.runnerId));
  // Runners with no ratio at all (no baseline where they ran) have nothing to draw; the report lists them.
  const runnerIds = results.runners
    .filter((r) => r.status === 'ok' && !baselineIds.has(r.id))
    .map((r) => r.id)
    .filter((id) => results.metrics.some((m) => typeof m.byRunner[id]?.ratio === 'number'));
  // A runner elsewhere than the host is compared with the baseline measured in the same place.
  const legendLabel = (id: string): string => {
    const r = results.runners.find((o) => o.id === id);
    const name = r ? runnerLabel(id, r.name, results.host.runtimeVersions) : id;
    return r && r.location !== 'host' ? `${name} (vs ${results.baselines[r.location]?.runnerId})` : name;
  };
  const ratios = results.metrics.flatMap((m) => runnerIds.map((id) => m.byRunner[id]?.ratio).filter((r): r is number => typeof r === 'number'));
  // The baselines the drawn runners are compared with (docker, or docker@emulated-host, ...).
  const bases = [...new Set(runnerIds.map((id) => results.baselines[results.runners.find((r) => r.id === id)!.location]?.runnerId))].join(' / ');
  if (runnerIds.length === 0 || ratios.length === 0) {
    const noBaseline = Object.values(results.baselines).every((b) => b.runnerId === null);
    return emptyChart(noBaseline ? `No baseline ran: ${results.baseline.note}.` : 'No runner besides the baseline produced figures.');
  }

  // Axis domain: whole decades around the data, always including 1 and at least 0.5–2.
  const lo = Math.pow(10, Math.floor(Math.log10(Math.min(0.5, ...ratios))));
  const hi = Math.pow(10, Math.ceil(Math.log10(Math.max(2, ...ratios))));
  const x = (r: number): number => PLOT_LEFT + ((Math.log10(r) - Math.log10(lo)) / (Math.log10(hi) - Math.log10(lo))) * (PLOT_RIGHT - PLOT_LEFT);

  // Legend first: it wraps onto more rows when labels are long, and the plot starts below it.
  const legend: string[] = [];
  let legendX = 90;
  let legendY = 52;
  runnerIds.forEach((id, i) => {
    const label = legendLabel(id);
    const width = 30 + label.length * 7;
    if (legendX + width > WIDTH - 10) {
      legendX = 90;
      legendY += 20;
    }
    legend.push(`<rect x="${legendX}" y="${legendY}" width="12" height="12" fill="${PALETTE[i % PALETTE.length]}"/><text x="${legendX + 17}" y="${legendY + 10}" ${FONT} font-size="12" fill="#222">${esc(label)}</text>`);
    legendX += width;
  });
  const top = legendY + 48;

  const body: string[] = [];
  let y = top;
  for (const group of results.settings.groups) {
    const metrics = results.metrics.filter((m) => m.group === group);
    if (metrics.length === 0) continue;
    body.push(`<text x="10" y="${y + 16}" ${FONT} font-size="15" font-weight="bold" fill="#222">${esc(GROUP_TITLES[group] ?? group)}</text>`);
    y += GROUP_HEADER;
    for (const m of metrics) {
      const blockHeight = runnerIds.length * (BAR_HEIGHT + BAR_GAP) - BAR_GAP;
      body.push(`<text x="${LABEL_WIDTH}" y="${y + blockHeight / 2 + 4}" ${FONT} font-size="12" text-anchor="end" fill="#222">${esc(m.title)}</text>`);
      runnerIds.forEach((id, i) => {
        const r = m.byRunner[id]?.ratio;
        const barY = y + i * (BAR_HEIGHT + BAR_GAP);
        if (typeof r !== 'number') {
          body.push(`<text x="${x(1) + 4}" y="${barY + BAR_HEIGHT - 2}" ${FONT} font-size="10" fill="#888">no figure</text>`);
          return;
        }
        const x0 = Math.min(x(1), x(r));
        const w = Math.max(1, Math.abs(x(r) - x(1)));
        body.push(`<rect x="${x0.toFixed(1)}" y="${barY}" width="${w.toFixed(1)}" height="${BAR_HEIGHT}" fill="${PALETTE[i % PALETTE.length]}"><title>${esc(`${id}, ${m.title}: ${formatRatio(r)}`)}</title></rect>`);
        // Whisker: this runner's min-max spread on the same scale (against the baseline's median).
        const v = m.byRunner[id]!;
        const ratioOf = (value: number): number => clamp(r * (m.better === 'lower' ? value / v.median : v.median / value), lo, hi);
        const [wLo, wHi] = [ratioOf(v.min), ratioOf(v.max)].sort((a, b) => a - b) as [number, number];
        const midY = barY + BAR_HEIGHT / 2;
        body.push(`<line x1="${x(wLo).toFixed(1)}" y1="${midY}" x2="${x(wHi).toFixed(1)}" y2="${midY}" stroke="#333" stroke-width="1"/>`);
        for (const end of [wLo, wHi]) body.push(`<line x1="${x(end).toFixed(1)}" y1="${midY - 3}" x2="${x(end).toFixed(1)}" y2="${midY + 3}" stroke="#333" stroke-width="1"/>`);
        const labelX = r >= 1 ? x(Math.max(r, wHi)) + 4 : x(Math.min(r, wLo)) - 4;
        body.push(`<text x="${labelX.toFixed(1)}" y="${barY + BAR_HEIGHT - 2}" ${FONT} font-size="10" text-anchor="${r >= 1 ? 'start' : 'end'}" fill="#333">${esc(formatRatio(r))}</text>`);
      });
      y += blockHeight + METRIC_GAP;
    }
  }
  const plotBottom = y;

  // Grid and axis: a line per 1-2-5 step, labels on each; the baseline (1) drawn strong.
  const grid: string[] = [];
  for (let decade = lo; decade < hi * 1.0001; decade *= 10) {
    for (const step of [1, 2, 5]) {
      const v = decade * step;
      if (v > hi * 1.0001) break;
      const gx = x(v).toFixed(1);
      const strong = Math.abs(v - 1) < 1e-9;
      grid.push(`<line x1="${gx}" y1="${top - 6}" x2="${gx}" y2="${plotBottom}" stroke="${strong ? '#222' : '#ddd'}" stroke-width="${strong ? 1.5 : 1}"/>`);
      grid.push(`<text x="${gx}" y="${plotBottom + 16}" ${FONT} font-size="11" text-anchor="middle" fill="#333">${esc(formatTick(v))}</text>`);
    }
  }
  grid.push(`<text x="${x(1).toFixed(1)}" y="${top - 10}" ${FONT} font-size="11" text-anchor="middle" fill="#222">${esc(bases)} = 1</text>`);
  grid.push(`<line x1="${PLOT_LEFT}" y1="${plotBottom}" x2="${PLOT_RIGHT}" y2="${plotBottom}" stroke="#444"/>`);
  grid.push(`<text x="${(PLOT_LEFT + PLOT_RIGHT) / 2}" y="${plotBottom + 36}" ${FONT} font-size="12" text-anchor="middle" fill="#222">cost relative to ${esc(bases)} (log scale): right of the line costs more, left costs less</text>`);

  const h = results.host;
  const height = plotBottom + 56;
  return [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${WIDTH}" height="${height}" viewBox="0 0 ${WIDTH} ${height}">`,
    `<rect width="100%" height="100%" fill="#fff"/>`,
    `<text x="10" y="22" ${FONT} font-size="17" font-weight="bold" fill="#111">Workload cost per runner, relative to ${esc(bases)}</text>`,
    `<text x="10" y="40" ${FONT} font-size="11" fill="#555">${esc(subtitle(results))}</text>`,
    `<text x="10" y="62" ${FONT} font-size="12" fill="#222">runners:</text>`,
    ...legend,
    ...grid,
    ...body,
    `</svg>`,
    '',
  ].join('\n');
}

function subtitle(results: BenchResults): string {
  const h = results.host;
  const load = busiestLoad(h);
  return [
    `bars: median of ${results.settings.runs} runs, whiskers: min–max`,
    h.cpuModel,
    `virtualization: ${h.virtualization}${h.runsUnderHypervisor ? ' (host is itself a VM)' : ''}`,
    ...(load > h.cpuCount * 0.5 ? [`busy host (load ${load} on ${h.cpuCount} CPUs): noisy`] : []),
    results.startedAt.slice(0, 10),
  ].join(' · ');
}

function clamp(v: number, lo: number, hi: number): number {
  return Math.min(hi, Math.max(lo, v));
}

function formatTick(v: number): string {
  return v >= 1 ? `${Number(v.toPrecision(3))}×` : `${Number(v.toPrecision(2))}×`;
}

function emptyChart(message: string): string {
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${WIDTH}" height="60" viewBox="0 0 ${WIDTH} 60"><rect width="100%" height="100%" fill="#fff"/><text x="10" y="34" ${FONT} font-size="14" fill="#222">${esc(message)}</text></svg>\n`;
}

function esc(text: string): string {
  return text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
}
