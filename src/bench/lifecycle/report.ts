/**
 * A lifecycle run's report.md (goals first, then every figure, the start-up split and the method),
 * chart.svg (each figure's cost relative to Docker, per sandbox, on a log axis) and results.json.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { costRatio } from '../method/stats';
import { formatRatio, formatValue } from '../report/format';
import type { WrittenReport } from '../report';
import { SANDBOX_KINDS, type LifecycleResults, type SandboxKind } from './types';

export function writeLifecycleReport(results: LifecycleResults, dir: string): WrittenReport {
  fs.mkdirSync(dir, { recursive: true });
  const written = { dir, resultsJson: path.join(dir, 'results.json'), reportMd: path.join(dir, 'report.md'), chartSvg: path.join(dir, 'chart.svg') };
  fs.writeFileSync(written.resultsJson, JSON.stringify(results, null, 2) + '\n');
  fs.writeFileSync(written.reportMd, renderLifecycleMarkdown(results));
  fs.writeFileSync(written.chartSvg, renderLifecycleSvg(results));
  return written;
}

export function renderLifecycleMarkdown(r: LifecycleResults): string {
  const v = r.virtualization;
  const out: string[] = [`# bulkhead lifecycle benchmark, ${r.startedAt.slice(0, 16).replace('T', ' ')} UTC`, ''];
  out.push(`Virtualization mode of every figure below: **${v.mode}** (${v.where}): ${v.detail}.`, '');
  out.push(`## Goals (${v.mode})`, '');
  out.push('| goal | target | measured | met | by how much | note |', '|---|---|---:|---|---|---|');
  for (const g of r.goals) out.push(`| ${g.goal} | ${g.target} | ${g.measuredText} | ${g.met === null ? 'not measured' : g.met ? 'yes' : 'no'} | ${g.by} | ${cell(g.note ?? '')} |`);
  out.push('');
  out.push('## Figures', '');
  out.push(`Median of ${r.settings.rounds} rounds [min–max]; ratio = cost relative to Docker (>1 = costs more, for throughput too).`, '');
  out.push('| figure | unit | sandbox | median [min–max] | ratio vs docker |', '|---|---|---|---:|---:|');
  for (const f of r.figures) {
    let first = true;
    for (const kind of SANDBOX_KINDS) {
      const s = f.bySandbox[kind];
      if (!s) continue;
      const d = f.bySandbox.docker;
      const ratio = d && d.median > 0 && s.median > 0 ? formatRatio(costRatio(s.median, d.median, f.better)) : '–';
      out.push(`| ${first ? f.title : ''} | ${first ? `${f.unit}${f.better === 'higher' ? ' ↑' : ''}` : ''} | ${kind} | ${formatValue(s.median)} [${formatValue(s.min)}–${formatValue(s.max)}] | ${ratio} |`);
      first = false;
    }
    if (first) out.push(`| ${f.title} | ${f.unit} | – | not measured | – |`);
  }
  out.push('');
  const split = Object.entries(r.startSplit);
  if (split.length > 0) {
    out.push('## Where a zone\'s start goes', '', '| phase | median ms |', '|---|---:|');
    for (const [k, ms] of split) out.push(`| ${k} | ${formatValue(ms)} |`);
    out.push('');
  }
  const notOk = r.sandboxes.filter((s) => s.status !== 'ok');
  out.push('## Sandboxes', '', '| sandbox | status | reason |', '|---|---|---|');
  for (const s of r.sandboxes) out.push(`| ${s.kind} | ${s.status} | ${cell(s.reason ?? '')} |`);
  out.push('');
  if (notOk.length > 0) out.push(`Figures of ${notOk.map((s) => s.kind).join(', ')} are missing: see the reasons above.`, '');
  out.push('## Method', '');
  out.push(`- ${r.settings.warmups} uncounted warm-up round(s), then ${r.settings.rounds} counted round(s); in each, every sandbox kind is measured once for every figure, in an order shuffled with seed ${r.settings.seed}.`);
  out.push(`- create → first output: a zone from Zone.create() (busybox image, ${r.settings.zoneMemoryMiB} MiB) to the first byte of \`echo hi\`; \`docker run --rm\` and \`runc run\` of a FROM-scratch image of the same static busybox.`);
  out.push(`- exec round trip: \`zone.exec(['true'])\` against \`docker exec C true\` in a long-lived container, ${r.settings.execSamples} samples a round.`);
  out.push(`- stream: ${formatValue(r.settings.streamBytes / 2 ** 20)} MiB through \`cat\` (in and out at once), zone.spawn() against \`docker exec -i\`.`);
  out.push('- memory per idle sandbox: the zone\'s host RSS (its VMM\'s resident memory; for an in-process VM, how much the owning process grew from before the zone, an upper bound) against the container\'s cgroup memory (memory.current, or v1 memory.usage_in_bytes) plus its shim\'s RSS.');
  out.push(`- density: N = ${r.settings.densities.join(', ')} started at once; time until every one answered an \`echo\`, then the memory they hold (same measures as idle memory).`);
  if (r.emulatedHost) out.push(`- The emulated host booted in ${(r.emulatedHost.bootMs / 1000).toFixed(1)} s (kernel ${r.emulatedHost.kernelRelease}); every figure was measured in there, under TCG: compare the ratios, not the absolute values.`);
  out.push('');
  return out.join('\n');
}

const PALETTE: Record<SandboxKind, string> = { zone: '#4e79a7', docker: '#999999', runc: '#f28e2b' };

/** Each figure's cost relative to Docker (log axis, 1 = Docker), one bar per non-Docker sandbox. */
export function renderLifecycleSvg(r: LifecycleResults): string {
  const rows: { label: string; kind: SandboxKind; ratio: number }[] = [];
  for (const f of r.figures) {
    const d = f.bySandbox.docker;
    for (const kind of SANDBOX_KINDS.filter((k) => k !== 'docker')) {
      const s = f.bySandbox[kind];
      if (d && s && d.median > 0 && s.median > 0) rows.push({ label: f.title.replace(/`/g, ''), kind, ratio: costRatio(s.median, d.median, f.better) });
    }
  }
  const width = 960;
  const left = 340;
  const right = width - 80;
  const rowH = 20;
  const top = 50;
  const height = top + Math.max(1, rows.length) * rowH + 40;
  const font = 'font-family="DejaVu Sans, Helvetica, Arial, sans-serif"';
  const parts = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}">`,
    `<rect width="100%" height="100%" fill="#fff"/>`,
    `<text x="10" y="20" font-size="14" ${font}>Lifecycle: cost relative to Docker (log scale; &gt;1 = costs more) — ${esc(r.virtualization.mode)}</text>`,
  ];
  if (rows.length === 0) {
    parts.push(`<text x="10" y="${top + 14}" font-size="12" ${font}>No figure has both Docker and another sandbox: see report.md.</text>`, '</svg>');
    return parts.join('\n');
  }
  const span = Math.max(2, ...rows.map((x) => Math.abs(Math.log10(x.ratio)))) ;
  const mid = (left + right) / 2;
  const xOf = (ratio: number) => mid + (Math.log10(ratio) / span) * ((right - left) / 2);
  parts.push(`<line x1="${mid}" y1="${top - 10}" x2="${mid}" y2="${top + rows.length * rowH}" stroke="#333"/>`);
  parts.push(`<text x="${mid}" y="${top - 14}" font-size="11" text-anchor="middle" ${font}>docker = 1</text>`);
  for (const [i, row] of rows.entries()) {
    const y = top + i * rowH;
    const x = xOf(row.ratio);
    parts.push(`<text x="${left - 6}" y="${y + 13}" font-size="11" text-anchor="end" ${font}>${esc(row.label)} (${row.kind})</text>`);
    parts.push(`<rect x="${Math.min(mid, x)}" y="${y + 3}" width="${Math.max(1, Math.abs(x - mid))}" height="${rowH - 6}" fill="${PALETTE[row.kind]}"><title>${esc(`${row.label}, ${row.kind}: ${formatRatio(row.ratio)}`)}</title></rect>`);
    parts.push(`<text x="${Math.max(mid, x) + 4}" y="${y + 13}" font-size="11" ${font}>${esc(formatRatio(row.ratio))}</text>`);
  }
  parts.push('</svg>');
  return parts.join('\n');
}

function esc(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
}

function cell(s: string): string {
  return s.replace(/\|/g, '\\|').replace(/\n/g, ' ');
}
