/**
 * Whether a zone's agent still answers. A guest can hang without ending: its kernel wedged, or a
 * root workload that starves or overwrites PID 1. Without this, every call on such a zone waits
 * forever (an exec's own timeoutMs only asks the agent to kill the process, and nobody answers).
 *
 * Any bytes from the agent count as a sign of life. After `pingAfterMs` of silence a ping goes
 * out; after `failAfterMs` of silence the agent is declared gone. A tick that comes far too late
 * means this process itself was stopped or starved, so the silence is ours and the clock restarts.
 */
import { InvalidConfigError } from '../../errors';

export interface LivenessSettings {
  /** Silence after which the agent is pinged (default 10 s). */
  pingAfterMs: number;
  /** Silence after which the agent is declared gone (default 60 s). */
  failAfterMs: number;
  /** How often the silence is looked at (default 2 s). */
  tickMs: number;
}

export const DEFAULT_LIVENESS: LivenessSettings = { pingAfterMs: 10_000, failAfterMs: 60_000, tickMs: 2_000 };

/** The defaults with `given` laid over them, checked: InvalidConfigError names a bad field. */
export function livenessSettings(given: Partial<LivenessSettings> = {}): LivenessSettings {
  const s = { ...DEFAULT_LIVENESS, ...given };
  for (const key of ['pingAfterMs', 'failAfterMs', 'tickMs'] as const) {
    const v = s[key];
    if (!(typeof v === 'number' && Number.isFinite(v) && v > 0)) throw new InvalidConfigError(`agentLiveness.${key}`, v, 'a positive number of milliseconds');
  }
  if (s.pingAfterMs >= s.failAfterMs) {
    throw new InvalidConfigError('agentLiveness.pingAfterMs', s.pingAfterMs, `less than failAfterMs (${s.failAfterMs}): the ping goes out before the agent is declared gone`);
  }
  return s;
}

/** What the watch needs of a session (AgentClient has it). */
export interface Pingable {
  readonly lastHeardAt: number;
  readonly isOpen: boolean;
  ping(): Promise<number>;
}

/** Watches `agent`; calls onSilent once with the silence in ms. Returns the function that stops the watch. */
export function watchAgentLiveness(agent: Pingable, onSilent: (silentMs: number) => void, settings: LivenessSettings = DEFAULT_LIVENESS): () => void {
  let baseline = performance.now();
  let lastTick = baseline;
  let pinging = false;
  const timer = setInterval(() => {
    const now = performance.now();
    if (now - lastTick > 3 * settings.tickMs) baseline = now; // we were not running: not the agent's silence
    lastTick = now;
    if (!agent.isOpen) return stop();
    const silent = now - Math.max(agent.lastHeardAt, baseline);
    if (silent >= settings.failAfterMs) {
      stop();
      onSilent(silent);
    } else if (silent >= settings.pingAfterMs && !pinging) {
      pinging = true;
      agent.ping().then(
        () => (pinging = false),
        () => (pinging = false), // a dead session ends the zone through its own path
      );
    }
  }, settings.tickMs);
  timer.unref();
  const stop = () => clearInterval(timer);
  return stop;
}
