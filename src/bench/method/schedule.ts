/**
 * The run order: interleaved rounds (A B C, A B C, ...) so that slow drifts of the machine (another
 * job starting, thermal changes) hit every runner alike instead of whichever ran last. Warm-up rounds come
 * first and are not counted: they fault in the binary, the image and the runtime's own caches.
 */
export interface ScheduledRun {
  readonly round: number;
  readonly runnerId: string;
  readonly warmup: boolean;
}

export function interleavedSchedule(runnerIds: readonly string[], runs: number, warmups: number): ScheduledRun[] {
  const schedule: ScheduledRun[] = [];
  for (let round = 0; round < warmups + runs; round++) {
    for (const runnerId of runnerIds) schedule.push({ round, runnerId, warmup: round < warmups });
  }
  return schedule;
}
