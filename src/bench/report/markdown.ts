/** report.md: the page a person reads. Headline first, then what the figures can and cannot mean. */
import type { BenchResults, RunnerOutcome } from '../method/results';
import { formatRatio, formatValue, GROUP_TITLES } from './format';

export function renderMarkdown(results: BenchResults): string {
  const out: string[] = [];
  const baseline = results.baseline.runnerId;
  const ok = results.runners.filter((r) => r.status === 'ok');
  const h = results.host;

  out.push(`# bulkhead benchmark, ${results.startedAt.slice(0, 16).replace('T', ' ')} UTC`, '');

  out.push(`## Headline: zone vs bare Docker for CPU, memory, syscalls`, '');
  const zone = results.runners.find((r) => r.name === 'zone');
  if (zone?.status === 'ok' && baseline) {
    out.push(`zone vs ${baseline}: ${headlineSentence(results, zone.id)}`, '');
  } else if (zone) {
    out.push(`**No zone figures yet.** The zone runner (${zone.location}) was ${zone.status}: ${zone.reason}.`, '');
  } else {
    out.push(`**No zone figures:** the zone runner was not requested in this run.`, '');
  }
  out.push(`Virtualization on this host: **${h.virtualization}** (${h.virtualizationDetail}).`, '');
  // Runners with no baseline where they ran have no ratios: they appear in the results table only.
  const groups = results.settings.groups;
  const withRatios = ok.filter((o) => groups.some((g) => results.headline[g]?.[o.id] !== undefined));
  if (withRatios.length > 1) {
    const bases = [...new Set(withRatios.map((r) => results.baselines[r.location]?.runnerId).filter(Boolean))];
    out.push(`For context, every runner that did run, as the geometric mean of its ratios to ${bases.map((b) => `**${b}**`).join(' or ')} per group (>1 = costs more):`, '');
    out.push(`| runner | ${groups.map((g) => GROUP_TITLES[g] ?? g).join(' | ')} |`);
    out.push(`|---|${groups.map(() => '---:').join('|')}|`);
    for (const r of withRatios) {
      const vs = r.location === 'host' ? '' : ` (vs ${results.baselines[r.location]?.runnerId})`;
      out.push(`| ${r.id}${vs} | ${groups.map((g) => fmtRatioOrDash(results.headline[g]?.[r.id])).join(' | ')} |`);
    }
    out.push('');
  }
  for (const b of Object.values(results.baselines)) out.push(`Baseline: ${b.note}.`, '');

  if (results.caveats.length > 0) {
    out.push(`## Read this first`, '');
    for (const c of results.caveats) out.push(`- ${c}`);
    out.push('');
  }

  out.push(`## Results`, '');
  out.push(
    `Median of ${results.settings.runs} counted runs [min–max]; ratio = cost relative to ${baseline ?? 'the baseline'}'s median (>1 = slower or less throughput, whatever the unit).`,
    '',
  );
  out.push(`| metric | unit | runner | median [min–max] | ratio vs ${baseline ?? 'baseline'} | note |`);
  out.push(`|---|---|---|---:|---:|---|`);
  for (const m of results.metrics) {
    let first = true;
    for (const r of ok) {
      const v = m.byRunner[r.id];
      if (!v) continue;
      const metric = first ? `${m.title} (${m.group})` : '';
      const unit = first ? `${m.unit}${m.better === 'higher' ? ' ↑' : ''}` : '';
      out.push(`| ${metric} | ${unit} | ${r.id} | ${formatValue(v.median)} [${formatValue(v.min)}–${formatValue(v.max)}] | ${v.ratio === null ? '–' : formatRatio(v.ratio)} | ${noteFor(r, m.group, results)} |`);
      first = false;
    }
  }
  out.push('', '↑ = higher is better for that figure; the ratio is turned so that >1 still means "costs more".', '');

  const notRun = results.runners.filter((r) => r.status !== 'ok');
  if (notRun.length > 0) {
    out.push(`## Runners that did not run`, '');
    out.push(`| runner | status | reason |`, `|---|---|---|`);
    for (const r of notRun) out.push(`| ${r.id} | ${r.status} | ${escapeCell(r.reason ?? '')} |`);
    out.push('');
  }

  out.push(`## Host`, '');
  out.push(`- CPU: ${h.cpuModel}, ${h.cpuCount} CPUs${h.runsUnderHypervisor ? ' (itself a VM: `hypervisor` flag)' : ''}; memory ${h.memoryGiB} GiB`);
  out.push(`- Virtualization: ${h.virtualization}: ${h.virtualizationDetail}`);
  out.push(`- Kernel: ${h.kernel}; Node ${h.node}`);
  out.push(`- Load average (1, 5, 15 min): ${h.loadAverageAtStart.join(', ')} at start; ${(h.loadAverageAtEnd ?? []).join(', ')} at end`);
  for (const [id, v] of Object.entries(h.runtimeVersions)) if (v) out.push(`- ${id}: ${v}`);
  const e = results.emulatedHost;
  if (e) {
    out.push(
      `- Emulated host (for the @emulated-host runners): QEMU TCG, kernel ${e.kernelRelease}, booted in ${(e.bootMs / 1000).toFixed(1)} s; CPU inside: ${e.host.cpuModel}, virtualization inside: ${e.host.virtualization}; iteration scale ${e.scale}`,
    );
  }
  out.push('');

  out.push(`## Method`, '');
  out.push('- Runners:');
  for (const r of results.runners) out.push(`  - **${r.id}**: ${r.description}`);
  out.push(
    `- ${results.settings.warmups} uncounted warm-up round(s), then ${results.settings.runs} counted rounds, interleaved (each round runs every runner once, in the same order), so drifts of a shared machine hit every runner alike.`,
  );
  out.push(`- One static C workload (bench/workloads/workload.c) for every runner; iteration scale ${results.settings.scale}. Per-runner iteration counts differ only where a runner is orders of magnitude slower (see note column); every figure is per operation.`);
  out.push(`- Docker runs with its default seccomp profile; runc, crun and runsc run the same image as a bundle without one.`);
  if (results.emulatedHost) {
    out.push(
      `- The @emulated-host runners ran after the host's, as one nested run of this harness inside the emulated host (same method, interleaved among themselves, iteration scale ${results.emulatedHost.scale}); their ratios are against the baseline measured in there.`,
    );
  }
  out.push('');
  return out.join('\n');
}

function headlineSentence(results: BenchResults, id: string): string {
  return results.settings.groups.map((g) => `${GROUP_TITLES[g] ?? g} ${fmtRatioOrDash(results.headline[g]?.[id])}`).join(', ');
}

function noteFor(r: RunnerOutcome, group: string, results: BenchResults): string {
  const notes: string[] = [];
  const baselineHere = results.baselines[r.location]?.runnerId;
  if (r.id === baselineHere) notes.push('baseline');
  if (r.location === 'emulated-host') {
    notes.push('inside TCG emulation: not representative of hardware virtualization');
    if (baselineHere && r.id !== baselineHere) notes.push(`ratio vs ${baselineHere}`);
  }
  if (r.name === 'zone' && r.location === 'host' && results.host.virtualization === 'pvm') notes.push('PVM: not representative of hardware virtualization');
  const factor = r.iterationScale[group as keyof RunnerOutcome['iterationScale']];
  if (factor !== undefined && factor !== 1) notes.push(`${factor * 100}% of the default iterations (a slow runner)`);
  return notes.join('; ');
}

function fmtRatioOrDash(r: number | undefined): string {
  return r === undefined ? '–' : formatRatio(r);
}

function escapeCell(text: string): string {
  return text.replace(/\|/g, '\\|').replace(/\n/g, ' ');
}
