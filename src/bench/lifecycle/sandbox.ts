/**
 * One kind of sandbox as the lifecycle figures see it. Every figure is optional: runc only answers
 * create → first output (the second start-up baseline). Each call measures once; the run
 * (./run.ts) interleaves the calls round by round.
 */
import { BulkheadError } from '../../errors';
import type { Availability } from '../runners/runner';
import type { SandboxKind } from './types';

export interface SandboxContext {
  /** A private, empty directory; removed after cleanup(). */
  readonly workDir: string;
  readonly log: (message: string) => void;
  readonly signal?: AbortSignal;
}

export interface StartSample {
  readonly ms: number;
  /** Where the time went, ms per phase (zones: create and first exec). */
  readonly split?: Record<string, number>;
}

export interface LifecycleSandbox {
  readonly kind: SandboxKind;
  probe(): Promise<Availability>;
  prepare(context: SandboxContext): Promise<void>;
  /** A new sandbox, from nothing to the first byte of `echo`'s output; it is removed afterwards (not timed). */
  startEcho?(): Promise<StartSample>;
  /** One `true` in the long-lived sandbox, ms. */
  execTrue?(): Promise<number>;
  /** `bytes` through `cat` in the long-lived sandbox, in and out at once: MiB/s. */
  streamCat?(bytes: number): Promise<number>;
  /** `bytes` from /dev/zero through a pipe into `cat` inside the long-lived sandbox, timed in there: MiB/s. */
  pipeInside?(bytes: number): Promise<number>;
  /** The long-lived, idle sandbox's memory in MiB (and, for zones, the guest memory it touched). */
  idleMemory?(): Promise<{ mib: number; guestTouchedMiB?: number }>;
  /** `n` sandboxes started at once, until each has answered an `echo`; then the memory they hold. */
  density?(n: number): Promise<{ ms: number; mib: number }>;
  /**
   * After a lost figure call: replace whatever it left broken (a dead long-lived sandbox) before it
   * runs again. `abandoned`: the call outlived its deadline, so what it left may still be
   * running (a hung exec, a start that never ended) and is to be removed, the long-lived one included.
   */
  recover?(after: { abandoned: boolean }): Promise<void>;
  /** Removes everything prepare() and the figures made. Safe to call twice and after a failed prepare. */
  cleanup(): Promise<void>;
}

export const MIB = 1024 * 1024;

/** The first stdout chunk of a readable, as a promise of its arrival time (performance.now()). */
export function firstChunk(stream: NodeJS.ReadableStream): Promise<number> {
  return new Promise((resolve, reject) => {
    stream.once('data', () => resolve(performance.now()));
    stream.once('end', () => reject(new Error('ended before any output')));
    stream.once('error', reject);
  });
}

/** Writes `bytes` of a repeating pattern into `sink` with backpressure, then ends it. */
export async function feed(sink: NodeJS.WritableStream, bytes: number): Promise<void> {
  const chunk = Buffer.alloc(Math.min(bytes, MIB), 0x5a);
  let left = bytes;
  while (left > 0) {
    const piece = left >= chunk.length ? chunk : chunk.subarray(0, left);
    left -= piece.length;
    if (!sink.write(piece)) await new Promise((resolve) => sink.once('drain', resolve));
  }
  sink.end();
}

/**
 * The shell command for pipeInside(), run with `sh -c`: busybox's `time` (the same binary in the zone's
 * image and in the containers' root) prints "real\t0m 1.23s" on stderr, sent to stdout here.
 */
export function pipeInsideCommand(bytes: number): string {
  return `time sh -c 'head -c ${bytes} /dev/zero | cat > /dev/null' 2>&1`;
}

/** MiB/s from pipeInsideCommand()'s output; a clear error when it is not busybox's `time` report. */
export function pipeInsideRate(bytes: number, output: string, where: string): number {
  const m = /^real\s+(\d+)m\s*([\d.]+)s$/m.exec(output);
  const seconds = m ? Number(m[1]) * 60 + Number(m[2]) : NaN;
  if (!(seconds > 0)) throw new BulkheadError('BENCH_FAILED', `the pipe inside ${where} gave no usable time (${JSON.stringify(output.slice(0, 200))}); use more bytes if it took under 10 ms`);
  return bytes / MIB / seconds;
}

/** Counts bytes until the stream ends. */
export function drain(source: NodeJS.ReadableStream): Promise<number> {
  return new Promise((resolve, reject) => {
    let n = 0;
    source.on('data', (c: Buffer) => (n += c.length));
    source.once('end', () => resolve(n));
    source.once('error', reject);
  });
}
