/**
 * The goals the report checks (from issue 10), each as goal, target, measured, met and by how much.
 * The CPU, memory and syscall goals come from the workload suite (`bulkhead bench`); a lifecycle-only
 * run lists them as not measured, so every goal row is always there.
 */
import type { GoalRow, LifecycleFigure, SandboxKind } from './types';

/** Zone/Docker headline ratios from the workload suite, when one ran with this run. */
export type WorkloadHeadline = Partial<Record<'cpu' | 'memory' | 'syscall', number>>;

function median(f: LifecycleFigure | undefined, kind: SandboxKind): number | undefined {
  return f?.bySandbox[kind]?.median;
}

function ratioRow(goal: string, target: string, limit: number, measured: number | undefined, why: string, higherIsBetter = false): GoalRow {
  if (measured === undefined || !Number.isFinite(measured)) return { goal, target, measured: null, measuredText: '–', met: null, by: '–', note: why };
  const met = higherIsBetter ? measured >= limit : measured <= limit;
  const by = met
    ? higherIsBetter
      ? `met, ${(measured / limit).toFixed(2)}× the target`
      : `met, ${(limit / measured).toFixed(2)}× under`
    : higherIsBetter
      ? `missed: ${(limit / measured).toFixed(2)}× short`
      : `missed: ${(measured / limit).toFixed(2)}× over`;
  return { goal, target, measured, measuredText: `${measured.toFixed(2)}×`, met, by };
}

export function evaluateGoals(
  figures: readonly LifecycleFigure[],
  zoneIdle: { hostRssMiB: number; guestTouchedMiB: number } | undefined,
  workload: WorkloadHeadline = {},
  startSplit: Record<string, number> = {},
): GoalRow[] {
  const fig = (id: string) => figures.find((f) => f.id === id);
  const ratio = (id: string, kind: SandboxKind, invert = false) => {
    const z = median(fig(id), 'zone');
    const d = median(fig(id), kind);
    if (z === undefined || d === undefined || d === 0 || z === 0) return undefined;
    return invert ? z / d : z / d;
  };
  const notSuite = 'not measured by a lifecycle run: `bulkhead bench --runners docker,zone` measures it';
  const noPair = (what: string) => `not measured: ${what} did not run in this mode (see the sandboxes table)`;
  const split = Object.entries(startSplit).map(([k, v]) => `${k} ${Math.round(v)} ms`).join(', ');
  const rows: GoalRow[] = [
    ratioRow('CPU', 'zone/Docker ≤ 1.01 (Edera reports 0.9 % slower than bare Docker)', 1.01, workload.cpu, notSuite),
    ratioRow('Memory', 'zone/Docker ≤ 1.00', 1.0, workload.memory, notSuite),
    ratioRow('Syscalls', 'zone/Docker ≤ 1.00 (Edera reports ~3 % faster)', 1.0, workload.syscall, notSuite),
    ratioRow('create → first output', 'zone ≤ 1.0× `docker run --rm`', 1.0, ratio('start_echo', 'docker'), noPair('the zone or docker')),
    ratioRow('exec round trip', 'zone ≤ 0.5× `docker exec`', 0.5, ratio('exec_true', 'docker'), noPair('the zone or docker')),
    ratioRow('Stream throughput', 'zone ≥ 1.0× `docker exec -i`', 1.0, ratio('stream_cat', 'docker'), noPair('the zone or docker'), true),
  ];
  const start = rows[3]!;
  if (start.met === false && split) rows[3] = { ...start, note: `where a zone's start goes (medians): ${split}` };
  // A missed stream goal next to its floor: the same bytes through a pipe inside each sandbox, with no
  // host I/O at all, tells the transport's cost from the sandbox's own CPU (a guest under nested paging).
  const stream = rows[5]!;
  const pipeZone = median(fig('pipe_inside'), 'zone');
  const pipeDocker = median(fig('pipe_inside'), 'docker');
  if (stream.met === false && pipeZone !== undefined && pipeDocker !== undefined) {
    const zoneStream = median(fig('stream_cat'), 'zone');
    const share = zoneStream !== undefined ? `; the zone's stream reaches ${((zoneStream / pipeZone) * 100).toFixed(0)} % of its own pipe` : '';
    rows[5] = {
      ...stream,
      note: `inside alone (a pipe, no host I/O): zone ${pipeZone.toFixed(2)} MiB/s, docker ${pipeDocker.toFixed(2)} MiB/s (${(pipeDocker / pipeZone).toFixed(2)}× the zone)${share}`,
    };
  }
  if (zoneIdle) {
    const limit = zoneIdle.guestTouchedMiB + 3;
    const met = zoneIdle.hostRssMiB <= limit;
    const diff = Math.abs(zoneIdle.hostRssMiB - limit);
    rows.push({
      goal: 'Memory per idle zone',
      target: 'host RSS ≤ guest memory touched + 3 MiB',
      measured: zoneIdle.hostRssMiB,
      measuredText: `${zoneIdle.hostRssMiB.toFixed(1)} MiB (guest touched ${zoneIdle.guestTouchedMiB.toFixed(1)} MiB)`,
      met,
      by: met ? `met, ${diff.toFixed(1)} MiB under` : `missed: ${diff.toFixed(1)} MiB over`,
      note: 'guest memory touched = the guest RAM the host holds for the zone (pages allocated to its memory file), or where the backend cannot tell, the guest kernel\'s used memory',
    });
  } else {
    rows.push({ goal: 'Memory per idle zone', target: 'host RSS ≤ guest memory touched + 3 MiB', measured: null, measuredText: '–', met: null, by: '–', note: noPair('the zone') });
  }
  return rows;
}
