/**
 * A zone's start-up, phase by phase, from the times a local zone notes on its way to running and
 * the boot markers its agent writes (2: the agent runs as PID 1, 1: it listens on vsock). The
 * markers carry the time since the VM was created, which is when the VMM setup began.
 */
import type { ZoneStartup } from './types';

export const MARKER_AGENT_READY = 1;
export const MARKER_AGENT_STARTED = 2;

/** performance.now() at each step, and the first time each marker arrived (ms since VM creation). */
export interface StartupMarks {
  begin: number;
  imageResolved: number;
  kernelFound: number;
  vmmStarted: number;
  agentConnected: number;
  running: number;
  /** performance.now() just before the VM was created. */
  vmmBegin: number;
  markers: ReadonlyMap<number, number>;
}

export function startupPhases(m: StartupMarks): ZoneStartup {
  const ms = (a: number, b: number) => Math.max(0, Math.round((b - a) * 10) / 10);
  const started = m.markers.get(MARKER_AGENT_STARTED);
  const ready = m.markers.get(MARKER_AGENT_READY);
  // From the kernel lookup on, so the phases add up: the state change to booting is part of the setup.
  const vmmSetupMs = ms(m.kernelFound, m.vmmStarted);
  const split: Partial<ZoneStartup> = {};
  let connectFrom = m.vmmStarted;
  // Both markers, in order, after the setup: the boot splits at them; anything else is not trusted.
  if (started !== undefined && ready !== undefined && started <= ready && m.vmmBegin + started >= m.vmmStarted) {
    split.kernelBootMs = ms(m.vmmStarted, m.vmmBegin + started);
    split.agentStartMs = ms(started, ready);
    connectFrom = m.vmmBegin + ready;
  }
  return {
    totalMs: ms(m.begin, m.running),
    imageMs: ms(m.begin, m.imageResolved),
    kernelMs: ms(m.imageResolved, m.kernelFound),
    vmmSetupMs,
    ...split,
    agentConnectMs: ms(connectFrom, m.agentConnected),
    mainLaunchMs: ms(m.agentConnected, m.running),
  };
}
