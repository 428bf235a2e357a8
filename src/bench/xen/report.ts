/**
 * The Xen benchmark's figures and report.md: medians [min–max] over the counted rounds of every
 * figure, each side's create split into its phases, ours / xl per guest kernel, the goal of issue 11
 * (ours ≤ 0.5× `xl create`), and what the figures cannot represent. Pure: no I/O.
 */
import { summarize } from '../method/stats';
import type { CreateSample, Figure, InsidePayload, InsideResult, KernelComparison, OpSample, SideFigures, XenBenchResults, XenSide } from './types';

export const XEN_VIRTUALIZATION = 'Xen 4.17 PV (dom0 and domUs paravirtualized) under QEMU TCG: software CPU emulation, no hardware virtualization';

/** The ours/xl target of issue 11. */
export const CREATE_GOAL = 0.5;

export function fig(values: readonly number[]): Figure {
  return { ...summarize(values), samples: [...values] };
}

export function opFigure(samples: readonly OpSample[]): Figure {
  return fig(samples.filter((s) => !s.warmup).map((s) => s.us));
}

function side(samples: readonly CreateSample[], kernel: string, which: XenSide): SideFigures | undefined {
  const counted = samples.filter((s) => !s.warmup && s.kernel === kernel && s.side === which);
  if (counted.length === 0) return undefined;
  return { setupMs: fig(counted.map((s) => s.setupMs)), toMarkerMs: fig(counted.map((s) => s.toMarkerMs)), totalMs: fig(counted.map((s) => s.totalMs)) };
}

/** ours / xl of two figures' medians, and the worst and best pairing of their min–max ranges. */
export function ratioOf(ours: Figure, xl: Figure): { median: number; range: [number, number] } {
  return { median: ours.median / xl.median, range: [ours.min / xl.max, ours.max / xl.min] };
}

export function compareKernel(samples: readonly CreateSample[], kernel: string, kernelPath: string): KernelComparison {
  const ours = side(samples, kernel, 'ours');
  const xl = side(samples, kernel, 'xl');
  const pairs: number[] = [];
  for (const o of samples.filter((s) => !s.warmup && s.kernel === kernel && s.side === 'ours')) {
    const x = samples.find((s) => !s.warmup && s.kernel === kernel && s.side === 'xl' && s.round === o.round);
    if (x && x.totalMs > 0) pairs.push(o.totalMs / x.totalMs);
  }
  return {
    kernel,
    path: kernelPath,
    ours,
    xl,
    ratio: ours && xl ? ratioOf(ours.totalMs, xl.totalMs) : undefined,
    pairedRatio: pairs.length ? fig(pairs) : undefined,
  };
}

/** Whether two figures' min–max ranges overlap (then their medians' order is not a firm result). */
export function rangesOverlap(a: Figure, b: Figure): boolean {
  return a.min <= b.max && b.min <= a.max;
}

export function cell(f: Figure | undefined, digits = 0): string {
  if (!f || f.n === 0) return '—';
  return `${f.median.toFixed(digits)} [${f.min.toFixed(digits)}–${f.max.toFixed(digits)}]`;
}

const x2 = (r: number): string => `${r.toFixed(2)}×`;

export function goalsFor(comparisons: readonly KernelComparison[]): XenBenchResults['goals'] {
  return comparisons.map((c) => {
    const name = `createPvDomain → first console line vs \`xl create\` → first console line, ${c.kernel} guest kernel`;
    const target = `≤ ${CREATE_GOAL}× xl`;
    if (!c.ours || !c.xl || !c.ratio) return { name, target, measured: `not measured (${!c.ours ? 'ours' : 'xl'} did not run)`, met: null };
    const overlap = rangesOverlap(c.ours.totalMs, c.xl.totalMs) ? 'the min–max ranges overlap' : 'the min–max ranges do not overlap';
    return {
      name,
      target,
      measured: `${x2(c.ratio.median)} [${x2(c.ratio.range[0])}–${x2(c.ratio.range[1])}] (ours ${c.ours.totalMs.median.toFixed(0)} ms, xl ${c.xl.totalMs.median.toFixed(0)} ms); ${overlap}`,
      met: c.ratio.median <= CREATE_GOAL,
    };
  });
}

export function caveatsFor(r: Pick<XenBenchResults, 'host' | 'config' | 'comparisons'>): string[] {
  const c: string[] = [
    'Everything runs inside QEMU TCG (software CPU emulation): Xen, dom0 and every domU are paravirtualized guests of an emulated x86 CPU, so absolute times are many times those of real hardware, and the split between hypervisor, toolstack and guest kernel differs from hardware. Compare ours with xl only within this report.',
    'The Xen host has one emulated CPU: dom0 (where both toolstacks and the measuring node process run) and the booting domU share it. Whatever dom0 does while the guest boots (xl’s daemon, xenconsoled, our console reader, the log detector) slows that boot; polling in dom0 would slow it further, which is why the xl side detects the marker with fs.watch (inotify) and only falls back to a slow poll.',
    `Detection of the marker differs by side and limits the resolution: ours reads the guest’s console ring directly (event channel → our ConsoleRing → the 'data' event); xl’s guest output goes through xenconsoled, which writes /var/log/xen/guest-<name>.log, and we see the marker when inotify reports the write (or at the latest at the next ${r.config.pollMs} ms fallback poll). That hop is part of what xl users get, but it is not the same path as ours.`,
    'The phases do not line up one for one: ours’ “build” is the createPvDomain call alone (libxenctrl + libxenguest build, XenStore keys, console attach; the domain is still paused); xl’s “xl create returns” covers parsing the config, libxl’s build, device and XenStore setup, unpausing and forking its monitoring daemon. Ours’ console phase starts at unpause, xl’s at its exit (the guest may already be running).',
    'The guest kernel’s own boot under TCG is in both totals and is the same work on both sides: it dominates them, so a faster builder moves the ratio little. The comparison per kernel uses the same kernel, initramfs, command line, memory and vCPU count on both sides.',
    'Rounds interleave ours and xl (the side that goes first alternates by round) and both kernels, after the warm-up round(s); after every destroy the run pauses before the next create. The page cache of dom0 holds the kernel and initramfs after the first round.',
  ];
  if (r.host.runsUnderHypervisor) c.push('This machine is itself a virtual machine (CPU flag `hypervisor`): nothing here is a bare-metal figure.');
  const load = Math.max(...r.host.loadAverageAtStart, ...(r.host.loadAverageAtEnd ?? []));
  if (load > r.host.cpuCount * 0.5) {
    c.push(`The machine was shared and busy (load average up to ${load} on ${r.host.cpuCount} CPUs): timings are noisy; the min–max ranges show how much.`);
  }
  return c;
}

export function renderMarkdown(r: XenBenchResults): string {
  const L: string[] = [];
  L.push('# Xen benchmark: our PV domain builder vs `xl create`, and the Xen primitives', '');
  L.push(`Run ${r.startedAt} – ${r.finishedAt} on ${r.host.cpuModel} (${r.host.cpuCount} CPUs), ${r.host.kernel}, node ${r.host.node}.`);
  L.push(
    `Host virtualization: **${r.virtualization}**; Xen ${r.xen.version}, ${r.xen.nrCpus} CPU(s), dom0 kernel ${r.xen.dom0Kernel}; the Xen test host booted in ${(r.xenHostBootMs / 1000).toFixed(1)} s (QEMU start → agent). ` +
      `Load average ${r.host.loadAverageAtStart.join(' / ')} at start, ${(r.host.loadAverageAtEnd ?? []).join(' / ')} at end.`,
    '',
  );
  L.push(`Figures are medians [min–max] over ${r.config.runs} counted rounds after ${r.config.warmups} warm-up round(s); ratio = ours / xl (below 1: ours is faster).`, '');

  L.push('## Create → first console line', '');
  L.push('| guest kernel | side | phase | ms | ours/xl |', '|---|---|---|---|---|');
  for (const c of r.comparisons) {
    const ratioCell = c.ratio ? `**${x2(c.ratio.median)}** [${x2(c.ratio.range[0])}–${x2(c.ratio.range[1])}]` : '—';
    if (c.ours) {
      L.push(`| ${c.kernel} | ours (createPvDomain) | build: the createPvDomain call | ${cell(c.ours.setupMs)} | ${c.xl ? x2(c.ours.setupMs.median / c.xl.setupMs.median) : '—'} |`);
      L.push(`| ${c.kernel} | ours | unpause → marker on our console | ${cell(c.ours.toMarkerMs)} | ${c.xl ? x2(c.ours.toMarkerMs.median / c.xl.toMarkerMs.median) : '—'} |`);
      L.push(`| ${c.kernel} | ours | **total** | **${cell(c.ours.totalMs)}** | ${ratioCell} |`);
    } else L.push(`| ${c.kernel} | ours | — | not measured | |`);
    if (c.xl) {
      L.push(`| ${c.kernel} | xl | spawn \`xl create\` → it returns | ${cell(c.xl.setupMs)} | |`);
      L.push(`| ${c.kernel} | xl | its return → marker in xenconsoled’s log | ${cell(c.xl.toMarkerMs)} | |`);
      L.push(`| ${c.kernel} | xl | **total** | **${cell(c.xl.totalMs)}** | |`);
    } else L.push(`| ${c.kernel} | xl | — | not measured | |`);
  }
  L.push('');
  L.push('The phase ratios compare unlike phases (see below); the total is the figure of the goal.', '');
  for (const c of r.comparisons) {
    if (c.pairedRatio) L.push(`- ${c.kernel}: ours / xl per round (same round): ${x2(c.pairedRatio.median)} [${x2(c.pairedRatio.min)}–${x2(c.pairedRatio.max)}] over ${c.pairedRatio.n} rounds.`);
  }
  for (const k of r.config.kernels) L.push(`- Kernel ${k.label}: \`${k.kernel}\`.`);
  L.push(
    `- Initramfs \`${r.config.initrd}\` (static busybox; /init echoes the marker “${r.config.marker}”, then sleeps); command line \`${r.config.cmdline}\`; ${r.config.memoryMiB} MiB, 1 vCPU; the domain is destroyed after the marker.`,
  );
  for (const s of r.skipped) L.push(`- Skipped: ${s}`);
  for (const e of r.errors) L.push(`- Failed: ${e}`);
  L.push('');

  L.push('## Xen primitives in dom0', '');
  L.push('| figure | µs per operation | ops per sample | samples |', '|---|---|---|---|');
  L.push(`| event-channel notify round trip (loopback: an unbound port and its interdomain end, both dom0’s) | ${cell(r.evtchnUs, 1)} | ${r.config.evtchnOps} | ${r.evtchnUs.n} |`);
  L.push(`| grant map + unmap (1 page dom0 shares with itself) | ${cell(r.grantUs, 1)} | ${r.config.grantOps} | ${r.grantUs.n} |`);
  L.push('', 'No reference: these are our primitives alone (there is no xl equivalent to set them against).', '');

  L.push('## Goals', '');
  L.push('| goal | target | measured | met |', '|---|---|---|---|');
  for (const g of r.goals) L.push(`| ${g.name} | ${g.target} | ${g.measured} | ${g.met === null ? 'not measured' : g.met ? 'yes' : 'no'} |`);
  L.push('');

  L.push('## What these numbers cannot represent', '');
  for (const c of r.caveats) L.push(`- ${c}`);
  L.push('');
  return L.join('\n');
}

/** The whole results document from what dom0 returned (finishedAt and the end load average as given). */
export function assembleResults(input: {
  startedAt: string;
  finishedAt: string;
  host: XenBenchResults['host'];
  xenHostBootMs: number;
  payload: InsidePayload;
  inside: InsideResult;
  skipped: string[];
}): XenBenchResults {
  const { payload: p, inside } = input;
  const { kernels, ...rest } = p;
  const comparisons = kernels.map((k) => compareKernel(inside.create, k.label, k.kernel));
  const base = {
    format: 'bulkhead-bench-xen/1' as const,
    startedAt: input.startedAt,
    finishedAt: input.finishedAt,
    host: input.host,
    virtualization: XEN_VIRTUALIZATION,
    xenHostBootMs: input.xenHostBootMs,
    xen: inside.xen,
    config: { ...rest, kernels: kernels.map((k) => ({ label: k.label, kernel: k.kernel })), initrd: kernels[0]?.initrd ?? '' },
    evtchnUs: opFigure(inside.evtchnUs),
    grantUs: opFigure(inside.grantUs),
    comparisons,
    skipped: input.skipped,
    errors: inside.errors,
    raw: { evtchnUs: inside.evtchnUs, grantUs: inside.grantUs, create: inside.create },
  };
  return { ...base, goals: goalsFor(comparisons), caveats: caveatsFor(base) };
}
