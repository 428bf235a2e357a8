/**
 * The workload catalog and its build. The C program (bench/workloads/workload.c) knows how to run each
 * test; this file knows what each figure means (unit, which direction is better) and how many iterations
 * a default run uses. Iteration counts are chosen so one bare run of everything takes ~2 s here.
 */
import { createHash } from 'node:crypto';
import { execFile } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { promisify } from 'node:util';
import { BulkheadError } from '../errors';
import { packagePath } from '../util/package-root';

export type WorkloadGroup = 'cpu' | 'memory' | 'syscall';
export const WORKLOAD_GROUPS: readonly WorkloadGroup[] = ['cpu', 'memory', 'syscall'];

export interface WorkloadTest {
  /** The name the C program knows it by. */
  readonly name: string;
  readonly group: WorkloadGroup;
  readonly title: string;
  readonly unit: string;
  /** Which direction is better for `value`; ratios are turned so that >1 always means "costs more". */
  readonly better: 'lower' | 'higher';
  readonly defaultIterations: number;
}

export const WORKLOAD_TESTS: readonly WorkloadTest[] = [
  { name: 'cpu_int', group: 'cpu', title: 'integer ALU loop', unit: 'ns/iter', better: 'lower', defaultIterations: 100_000_000 },
  { name: 'cpu_float', group: 'cpu', title: 'floating-point chain', unit: 'ns/iter', better: 'lower', defaultIterations: 50_000_000 },
  { name: 'cpu_hash', group: 'cpu', title: 'FNV-1a hashing', unit: 'MiB/s', better: 'higher', defaultIterations: 128 },
  { name: 'mem_memcpy', group: 'memory', title: 'memcpy 64 MiB', unit: 'GiB/s', better: 'higher', defaultIterations: 32 },
  { name: 'mem_chase', group: 'memory', title: 'random access (pointer chase, 64 MiB)', unit: 'ns/load', better: 'lower', defaultIterations: 2_000_000 },
  { name: 'mem_pagefault', group: 'memory', title: 'page fault on fresh mmap', unit: 'ns/page', better: 'lower', defaultIterations: 16 },
  { name: 'sys_getppid', group: 'syscall', title: 'getppid()', unit: 'ns/call', better: 'lower', defaultIterations: 1_000_000 },
  { name: 'sys_read', group: 'syscall', title: '1-byte read of /dev/zero', unit: 'ns/call', better: 'lower', defaultIterations: 1_000_000 },
  { name: 'sys_openclose', group: 'syscall', title: 'open + close /dev/null', unit: 'ns/pair', better: 'lower', defaultIterations: 100_000 },
  { name: 'sys_pipe', group: 'syscall', title: 'pipe ping-pong, 2 processes', unit: 'ns/round trip', better: 'lower', defaultIterations: 10_000 },
  { name: 'sys_fork', group: 'syscall', title: 'fork + exit + wait', unit: 'µs/fork', better: 'lower', defaultIterations: 2_000 },
];

/** Fewer than this many iterations would make a figure mostly timer noise. */
const MIN_ITERATIONS = 5;

export function testsForGroups(groups: readonly WorkloadGroup[]): WorkloadTest[] {
  return WORKLOAD_TESTS.filter((t) => groups.includes(t.group));
}

export function findTest(name: string): WorkloadTest {
  const test = WORKLOAD_TESTS.find((t) => t.name === name);
  if (!test) throw new BulkheadError('BENCH_FAILED', `unknown workload test ${JSON.stringify(name)}`);
  return test;
}

/** Iterations for one test: default × global scale × the runner's per-group scale, never below a floor. */
export function iterationsFor(test: WorkloadTest, scale: number, runnerScale: Partial<Record<WorkloadGroup, number>> = {}): number {
  const n = Math.round(test.defaultIterations * scale * (runnerScale[test.group] ?? 1));
  return Math.max(MIN_ITERATIONS, n);
}

/** The argv the workload binary takes: `TEST=ITERATIONS ...`. */
export function workloadArgs(tests: readonly WorkloadTest[], scale: number, runnerScale?: Partial<Record<WorkloadGroup, number>>): string[] {
  return tests.map((t) => `${t.name}=${iterationsFor(t, scale, runnerScale)}`);
}

/** One line of the workload's output. */
export interface WorkloadResult {
  readonly test: string;
  readonly iterations: number;
  readonly elapsedNs: number;
  readonly value: number;
}

/**
 * Parses the workload's stdout: one JSON object per line. Anything else on stdout (a runtime's own
 * chatter) is an error, as is a missing or duplicated test: a silently partial run would skew medians.
 */
export function parseWorkloadOutput(stdout: string, expected: readonly string[]): WorkloadResult[] {
  const results: WorkloadResult[] = [];
  for (const line of stdout.split('\n')) {
    const trimmed = line.trim();
    if (trimmed === '') continue;
    let obj: unknown;
    try {
      obj = JSON.parse(trimmed);
    } catch {
      throw new BulkheadError('BENCH_FAILED', `workload printed a line that is not JSON: ${JSON.stringify(trimmed.slice(0, 200))}`);
    }
    const o = obj as Record<string, unknown>;
    if (typeof o.test !== 'string' || typeof o.value !== 'number' || typeof o.iterations !== 'number' || typeof o.elapsed_ns !== 'number') {
      throw new BulkheadError('BENCH_FAILED', `workload printed an unexpected object: ${trimmed.slice(0, 200)}`);
    }
    if (!Number.isFinite(o.value) || o.value <= 0) {
      throw new BulkheadError('BENCH_FAILED', `workload test ${o.test} gave a non-positive figure: ${o.value}`);
    }
    results.push({ test: o.test, iterations: o.iterations, elapsedNs: o.elapsed_ns, value: o.value });
  }
  const got = results.map((r) => r.test);
  if (got.length !== expected.length || expected.some((name, i) => got[i] !== name)) {
    throw new BulkheadError('BENCH_FAILED', `workload ran [${got.join(', ')}] but was asked for [${expected.join(', ')}]`);
  }
  return results;
}

/** Where the workload's C source lives in the package (shipped under bench/workloads/). */
export function workloadSourcePath(): string {
  const candidate = packagePath('bench', 'workloads', 'workload.c');
  if (!fs.existsSync(candidate)) throw new BulkheadError('BENCH_FAILED', `${candidate} is missing from the package`);
  return candidate;
}

export function defaultCacheDir(): string {
  const base = process.env.XDG_CACHE_HOME || path.join(os.homedir(), '.cache');
  return path.join(base, 'bulkhead', 'bench');
}

const CFLAGS = ['-static', '-O2', '-Wall', '-Wextra'];

/**
 * Builds the workload with gcc (static, so it runs in a FROM-scratch image) into
 * <cacheDir>/<hash of source and flags>/workload, or returns the cached build.
 */
export async function buildWorkload(options: { cacheDir?: string; sourcePath?: string; cc?: string } = {}): Promise<string> {
  const source = options.sourcePath ?? workloadSourcePath();
  const cc = options.cc ?? process.env.CC ?? 'gcc';
  let text: Buffer;
  try {
    text = fs.readFileSync(source);
  } catch (err) {
    throw new BulkheadError('BENCH_FAILED', `cannot read the workload source ${source}`, { cause: err });
  }
  const hash = createHash('sha256').update(text).update(JSON.stringify([cc, CFLAGS])).digest('hex').slice(0, 16);
  const dir = path.join(options.cacheDir ?? defaultCacheDir(), hash);
  const binary = path.join(dir, 'workload');
  if (fs.existsSync(binary)) return binary;
  fs.mkdirSync(dir, { recursive: true });
  // Build under a temporary name and rename, so a concurrent or interrupted build never leaves half a binary.
  const partial = `${binary}.${process.pid}.tmp`;
  try {
    await promisify(execFile)(cc, [...CFLAGS, '-o', partial, source, '-lm']);
    fs.renameSync(partial, binary);
  } catch (err) {
    fs.rmSync(partial, { force: true });
    const stderr = (err as { stderr?: string }).stderr ?? '';
    throw new BulkheadError('BENCH_FAILED', `building the workload with ${cc} failed (is gcc with static glibc, libc6-dev, installed?)\n${stderr}`, { cause: err });
  }
  return binary;
}
