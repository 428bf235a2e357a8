/**
 * The guest side of zone.metrics(), from two of the agent's raw samples: CPU busy percentages are
 * tick deltas between the previous sample and this one (the first call takes two, 250 ms apart).
 */
import type { GuestMetrics } from './agent/protocol';
import type { ZoneMetrics } from './types';

export const FIRST_SAMPLE_GAP_MS = 250;

export function guestFigures(prev: GuestMetrics, cur: GuestMetrics): NonNullable<ZoneMetrics['guest']> {
  const busy = (m: GuestMetrics) => m.cpu.userTicks + m.cpu.niceTicks + m.cpu.systemTicks + m.cpu.irqTicks + m.cpu.softirqTicks + m.cpu.stealTicks;
  const total = (m: GuestMetrics) => busy(m) + m.cpu.idleTicks + m.cpu.iowaitTicks;
  const dTotal = Math.max(1, total(cur) - total(prev));
  // Per process: its ticks over the wall-clock ticks of one CPU between the samples (top's %CPU).
  const wallTicks = Math.max(1, ((cur.uptimeMs - prev.uptimeMs) / 1000) * cur.cpu.ticksPerSecond);
  const before = new Map(prev.processes.map((p) => [p.pid, p.userTicks + p.systemTicks]));
  return {
    memory: {
      totalBytes: cur.memory.totalBytes,
      availableBytes: cur.memory.availableBytes,
      usedBytes: cur.memory.totalBytes - cur.memory.availableBytes,
      ...(cur.pressure ? { pressure: { some10: cur.pressure.some.avg10, full10: cur.pressure.full.avg10 } } : {}),
    },
    cpu: {
      count: cur.cpu.cpus,
      busyPercent: round((100 * (busy(cur) - busy(prev))) / dTotal),
      loadAverage: cur.load,
    },
    uptimeMs: cur.uptimeMs,
    processes: cur.processes.map((p) => ({
      pid: p.pid,
      command: p.command,
      user: String(p.uid),
      rssBytes: p.rssBytes,
      cpuPercent: round((100 * (p.userTicks + p.systemTicks - (before.get(p.pid) ?? p.userTicks + p.systemTicks))) / wallTicks),
      state: p.state,
    })),
  };
}

function round(n: number): number {
  return Math.max(0, Math.round(n * 10) / 10);
}
