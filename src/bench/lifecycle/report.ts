/**
 * A lifecycle run's report.md (goals first, then every figure, the start-up split and the method),
 * chart.svg (each figure's cost relative to Docker, per sandbox, on a log axis) and results.json.
 */
import { costRatio } from '../method/stats';
import { formatRatio, formatValue } from '../report/format';
import { writeBenchOutputs, type WrittenReport } from '../report/outputs';
import { renderRatioChart, type RatioRow } from '../report/ratio-chart';
import { SANDBOX_KINDS, type LifecycleResults } from './types';

export function writeLifecycleReport(results: LifecycleResults, dir: string): WrittenReport {
  return writeBenchOutputs(dir, { results, markdown: renderLifecycleMarkdown(results), svg: renderLifecycleSvg(results) });
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
  const retried = r.retried ?? []; // absent from results.json files written before retries existed
  if (retried.length > 0) {
    out.push(`Figure calls lost and run again (their samples dropped, the sandbox recovered first; under TCG mostly zones that died of the nested-SVM flake): ${retried.length}.`, '');
    for (const x of retried) out.push(`- ${x.kind}, ${x.round < r.settings.warmups ? 'the warm-up' : `round ${x.round - r.settings.warmups + 1}/${r.settings.rounds}`}${x.figure ? `, ${x.figure}` : ''}: ${cell(x.reason)}`);
    out.push('');
  }
  out.push('## Method', '');
  out.push(`- ${r.settings.warmups} uncounted warm-up round(s), then ${r.settings.rounds} counted round(s); in each, every sandbox kind is measured once for every figure, in an order shuffled with seed ${r.settings.seed}.`);
  out.push(`- create → first output: a zone from Zone.create() (busybox image, ${r.settings.zoneMemoryMiB} MiB) to the first byte of \`echo hi\`; \`docker run --rm\` and \`runc run\` of a FROM-scratch image of the same static busybox.`);
  out.push(`- exec round trip: \`zone.exec(['true'])\` against \`docker exec C true\` in a long-lived container, ${r.settings.execSamples} samples a round.`);
  out.push(`- stream: ${formatValue(r.settings.streamBytes / 2 ** 20)} MiB through \`cat\` (in and out at once), zone.spawn() against \`docker exec -i\`.`);
  out.push(`- pipe inside: the same ${formatValue(r.settings.streamBytes / 2 ** 20)} MiB from /dev/zero through \`head | cat\` inside the long-lived sandbox, timed in there by busybox \`time\` (no host I/O: the sandbox's own CPU and memory, the floor under the stream).`);
  out.push('- memory per idle sandbox: the zone\'s host RSS (its VMM\'s resident memory; for an in-process VM, how much the owning process grew from before the zone, an upper bound) against the container\'s cgroup memory (memory.current, or v1 memory.usage_in_bytes) plus its shim\'s RSS.');
  out.push(`- density: N = ${r.settings.densities.join(', ')} started at once; time until every one answered an \`echo\`, then the memory they hold (same measures as idle memory).`);
  if (r.emulatedHost) out.push(`- The emulated host booted in ${(r.emulatedHost.bootMs / 1000).toFixed(1)} s (kernel ${r.emulatedHost.kernelRelease}); every figure was measured in there, under TCG: compare the ratios, not the absolute values.`);
  out.push('');
  return out.join('\n');
}

/** Each figure's cost relative to Docker (log axis, 1 = Docker), one bar per non-Docker sandbox. */
export function renderLifecycleSvg(r: LifecycleResults): string {
  const rows: RatioRow[] = [];
  for (const f of r.figures) {
    const d = f.bySandbox.docker;
    for (const kind of SANDBOX_KINDS.filter((k) => k !== 'docker')) {
      const s = f.bySandbox[kind];
      if (d && s && d.median > 0 && s.median > 0) rows.push({ label: f.title.replace(/`/g, ''), series: kind, ratio: costRatio(s.median, d.median, f.better) });
    }
  }
  return renderRatioChart({
    title: `Lifecycle: cost relative to Docker (log scale; >1 = costs more) — ${r.virtualization.mode}`,
    reference: 'docker = 1',
    rows,
    empty: 'No figure has both Docker and another sandbox: see report.md.',
  });
}

function cell(s: string): string {
  return s.replace(/\|/g, '\\|').replace(/\n/g, ' ');
}
