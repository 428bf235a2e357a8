/**
 * The floor under every counted sample: one run of one test must last long enough that the timer's
 * resolution and a scheduler hiccup are a small part of it. At small scales and in slow runners
 * (gVisor's 1%, the emulated host's 2%) a test could otherwise be ~200 getppid calls, a few µs.
 * The last warm-up measures each test; a short one gets its iterations raised for the counted runs.
 */

/** 50 ms: ~10^4 times the clock's resolution and ~10x a typical scheduling delay on a busy 2-core box. */
export const MIN_SAMPLE_MS = 50;
/** Never raise a test more than this in one go: a warm-up disturbed by a stall should not explode a run. */
const MAX_FACTOR = 1000;

/** Iterations for the counted runs, given one warm-up sample: unchanged when it was long enough. */
export function calibratedIterations(iterations: number, elapsedNs: number, minSampleMs = MIN_SAMPLE_MS): number {
  const minNs = minSampleMs * 1e6;
  if (!(elapsedNs > 0) || elapsedNs >= minNs) return iterations;
  // 1.2x headroom: the counted runs vary around the warm-up's figure.
  const factor = Math.min(MAX_FACTOR, Math.ceil((1.2 * minNs) / elapsedNs));
  return iterations * factor;
}
