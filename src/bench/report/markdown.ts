/** report.md: the page a person reads. Headline first, then what the figures can and cannot mean. */
import type { BenchResults, RunnerOutcome } from '../method/results';
import { formatRatio, formatValue, GROUP_TITLES, runnerLabel } from './format';
import { evaluateGoals } from '../lifecycle/goals';

export function renderMarkdown(results: BenchResults): string {
  const out: string[] = [];
  const baseline = results.baseline.runnerId;
  const ok = results.runners.filter((r) => r.status === 'ok');
  const h = results.host;
  const label = (r: RunnerOutcome): string => runnerLabel(r.id, r.name, h.runtimeVersions);

  out.push(`# bulkhead benchmark, ${results.startedAt.slice(0, 16).replace('T', ' ')} UTC`, '');

  out.push(`## Headline: zone vs bare Docker for CPU, memory, syscalls`, '');
  const zone = results.runners.find((r) => r.name === 'zone');
  // A zone is compared only with the baseline measured where it ran (in the emulated host: docker in there).
  const zoneBaseline = zone ? results.baselines[zone.location]?.runnerId : undefined;
  if (zone?.status === 'ok' && zoneBaseline) {
    out.push(`**${zone.id} vs ${zoneBaseline}** (zone/Docker, >1 = the zone costs more): ${headlineSentence(results, zone.id)}.`, '');
    out.push(`Virtualization mode of these figures: **${zoneVirtualization(results, zone)}**.`, '');
    // The issue's workload goals, checked here; the lifecycle goals are in `bench --lifecycle`'s report.
    const h = (g: 'cpu' | 'memory' | 'syscall') => results.headline[g]?.[zone.id];
    const goals = evaluateGoals([], undefined, { cpu: h('cpu'), memory: h('memory'), syscall: h('syscall') }).slice(0, 3);
    out.push(`| goal (${zone.location === 'emulated-host' ? 'nested, in the emulated host' : results.host.virtualization}) | target | measured | met | by how much |`, '|---|---|---:|---|---|');
    for (const g of goals) out.push(`| ${g.goal} | ${g.target} | ${g.measuredText} | ${g.met === null ? 'not measured' : g.met ? 'yes' : 'no'} | ${g.by} |`);
    out.push('');
  } else if (zone?.status === 'ok') {
    out.push(`**No zone ratios:** ${zone.id} ran, but ${results.baselines[zone.location]?.note ?? 'no baseline ran beside it'}.`, '');
  } else if (zone) {
    out.push(`**No zone figures.** The zone runner (${zone.id}) was ${zone.status}: ${zone.reason}.`, '');
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
      out.push(`| ${label(r)}${vs} | ${groups.map((g) => fmtRatioOrDash(results.headline[g]?.[r.id])).join(' | ')} |`);
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
      out.push(`| ${metric} | ${unit} | ${label(r)} | ${formatValue(v.median)} [${formatValue(v.min)}–${formatValue(v.max)}] | ${v.ratio === null ? '–' : formatRatio(v.ratio)} | ${noteFor(r, m.group, results)} |`);
      first = false;
    }
  }
  out.push('', '↑ = higher is better for that figure; the ratio is turned so that >1 still means "costs more".', '');

  const notRun = results.runners.filter((r) => r.status !== 'ok');
  if (notRun.length > 0) {
    out.push(`## Runners that did not run`, '');
    out.push(`| runner | status | reason |`, `|---|---|---|`);
    for (const r of notRun) out.push(`| ${label(r)} | ${r.status} | ${escapeCell(r.reason ?? '')} |`);
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
  for (const r of results.runners) out.push(`  - **${label(r)}**: ${r.description}`);
  out.push(
    `- ${results.settings.warmups} uncounted warm-up round(s), then ${results.settings.runs} counted rounds, interleaved (each round runs every runner once), so drifts of a shared machine hit every runner alike; ` +
      (results.settings.seed === undefined ? 'the order inside a round was fixed.' : `the order inside each round is shuffled with seed ${results.settings.seed} (\`--seed ${results.settings.seed}\` repeats it).`),
  );
  if (results.settings.minSampleMs !== undefined) {
    out.push(`- Every counted sample lasts at least ~${results.settings.minSampleMs} ms: a test whose last warm-up was shorter got its iterations raised for the counted runs (see iterations in results.json).`);
  }
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

/** How the zone's VM was virtualized, in words, for the headline. */
function zoneVirtualization(results: BenchResults, zone: RunnerOutcome): string {
  if (zone.location === 'emulated-host') {
    return `nested: the zone's VM ran on the emulated host's /dev/kvm (${results.emulatedHost?.host.virtualizationDetail ?? 'nested SVM'}), itself under QEMU TCG on this ${results.host.virtualization} host; its baseline ran in the same emulated host`;
  }
  return `${results.host.virtualization} (${results.host.virtualizationDetail})`;
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
