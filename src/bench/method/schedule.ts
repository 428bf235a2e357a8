/**
 * The run order: interleaved rounds (every runner once per round) so that slow drifts of the machine
 * (another job starting, thermal changes) hit every runner alike, with the order inside each round
 * shuffled from a recorded seed, so that no runner always runs first (cold caches) or right after
 * the same neighbour. Warm-up rounds come first and are not counted: they fault in the binary, the image
 * and the runtime's own caches. The same seed gives the same schedule, so a run can be repeated.
 */
export interface ScheduledRun {
  readonly round: number;
  readonly runnerId: string;
  readonly warmup: boolean;
}

export function interleavedSchedule(runnerIds: readonly string[], runs: number, warmups: number, seed?: number): ScheduledRun[] {
  const random = seed === undefined ? undefined : seededRandom(seed);
  const schedule: ScheduledRun[] = [];
  for (let round = 0; round < warmups + runs; round++) {
    const order = random ? shuffled(runnerIds, random) : runnerIds;
    for (const runnerId of order) schedule.push({ round, runnerId, warmup: round < warmups });
  }
  return schedule;
}

/** A fresh seed for a run that was not given one (32 bits: small enough to read off a report). */
export function newSeed(): number {
  return Math.floor(Math.random() * 2 ** 32);
}

/** mulberry32: tiny, fast and good enough to order a handful of runners; not for anything secret. */
function seededRandom(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Fisher-Yates over a copy. */
function shuffled<T>(items: readonly T[], random: () => number): T[] {
  const out = [...items];
  for (let i = out.length - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1));
    [out[i], out[j]] = [out[j]!, out[i]!];
  }
  return out;
}

export interface ScheduledRound<T extends string> {
  readonly round: number;
  readonly warmup: boolean;
  /** "warm-up 1", "run 2/5": for progress lines. */
  readonly label: string;
  /** Every runner once, in this round's shuffled order. */
  readonly order: T[];
}

/** interleavedSchedule() grouped by round, for harnesses that run every runner inside one loop body. */
export function scheduledRounds<T extends string>(runnerIds: readonly T[], runs: number, warmups: number, seed: number): ScheduledRound<T>[] {
  const rounds: ScheduledRound<T>[] = [];
  for (const slot of interleavedSchedule(runnerIds, runs, warmups, seed)) {
    let r = rounds[slot.round];
    if (!r) {
      const label = slot.warmup ? `warm-up ${slot.round + 1}` : `run ${slot.round - warmups + 1}/${runs}`;
      r = rounds[slot.round] = { round: slot.round, warmup: slot.warmup, label, order: [] };
    }
    r.order.push(slot.runnerId as T);
  }
  return rounds;
}
