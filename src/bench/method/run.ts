/**
 * The method: probe every runner, prepare the available ones, run the workload in interleaved rounds
 * (warm-ups first), summarise each metric as median [min-max] and as a ratio to the baseline (Docker,
 * or runc when Docker cannot run), and always undo every runner's setup, also when aborted.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { BulkheadError } from '../../errors';
import { caveatsFor, collectHostFacts } from '../host-facts';
import { BenchAbortedError } from '../process';
import { unmountUnder } from '../mounts';
import { OWNER_FILE, ownerRecord, sweepStaleRuns, WORK_ROOT_PREFIX } from '../stale';
import { createRunners, RUNNER_NAMES, type BenchRunner, type RunnerLocation, type RunnerName } from '../runners';
import { EmulatedHostRunner, runInEmulatedHost } from '../runners/emulated-host';
import { buildWorkload, iterationsFor, testsForGroups, WORKLOAD_GROUPS, type WorkloadGroup, type WorkloadTest } from '../workload';
import type { Baseline, BenchResults, EmulatedHostRun, MetricByRunner, MetricResult, RunnerOutcome } from './results';
import { interleavedSchedule, type ScheduledRun } from './schedule';
import { costRatio, geometricMean, summarize } from './stats';

export interface BenchOptions {
  /** Test groups to run; default all. */
  readonly groups?: readonly WorkloadGroup[];
  /** Runner names (or ready-made runners, e.g. for tests); default all. */
  readonly runners?: readonly (RunnerName | BenchRunner)[];
  /** Where to run them; default host, plus the emulated host where /dev/kvm cannot run zones. */
  readonly locations?: readonly RunnerLocation[];
  /** Counted runs per runner; at least 1 (5 or more for a published figure). Default 5. */
  readonly runs?: number;
  /** Uncounted warm-up rounds before them. Default 1. */
  readonly warmups?: number;
  /** Multiplier on every iteration count (0.01 for a smoke test). Default 1. */
  readonly scale?: number;
  /** Limit for one run of the workload in one runner. Default 5 minutes. */
  readonly runTimeoutMs?: number;
  readonly signal?: AbortSignal;
  readonly log?: (message: string) => void;
  /** Where the built workload is cached; default ~/.cache/bulkhead/bench. */
  readonly cacheDir?: string;
}

export const DEFAULT_RUNS = 5;
const BASELINE_PREFERENCE = ['docker', 'runc'];

export async function runBenchmark(options: BenchOptions = {}): Promise<BenchResults> {
  const startedAt = new Date().toISOString();
  const log = options.log ?? (() => undefined);
  const groups = options.groups ?? WORKLOAD_GROUPS;
  const runs = options.runs ?? DEFAULT_RUNS;
  const warmups = options.warmups ?? 1;
  const scale = options.scale ?? 1;
  if (!Number.isInteger(runs) || runs < 1) throw new BulkheadError('INVALID_CONFIG', `invalid runs: ${runs}; allowed: an integer >= 1`);
  if (!Number.isInteger(warmups) || warmups < 0) throw new BulkheadError('INVALID_CONFIG', `invalid warmups: ${warmups}; allowed: an integer >= 0`);
  if (!(scale > 0)) throw new BulkheadError('INVALID_CONFIG', `invalid scale: ${scale}; allowed: a number > 0`);
  const tests = testsForGroups(groups);
  if (tests.length === 0) throw new BulkheadError('INVALID_CONFIG', `invalid groups: ${groups.join(',')}; allowed: ${WORKLOAD_GROUPS.join(', ')}`);

  let host = collectHostFacts();
  const zoneLocation: RunnerLocation = host.virtualization === 'hardware' ? 'host' : 'emulated-host';
  const locations = options.locations ?? (host.virtualization === 'hardware' ? ['host'] : ['host', 'emulated-host']);
  const runners = resolveRunners(options.runners ?? RUNNER_NAMES, locations, zoneLocation);

  log(`building the workload ...`);
  const workloadPath = await buildWorkload({ cacheDir: options.cacheDir });

  const outcomes = new Map<string, RunnerOutcome>();
  const samples = new Map<string, Map<string, number[]>>(); // runner id -> test -> counted values
  const executed: ScheduledRun[] = [];
  let emulatedHost: EmulatedHostRun | undefined;
  const versions: Record<string, string | null> = {};
  const touched: BenchRunner[] = []; // every runner whose prepare() started: each gets cleanup()
  await sweepStaleRuns(os.tmpdir(), log);
  const tmpRoot = fs.mkdtempSync(path.join(os.tmpdir(), WORK_ROOT_PREFIX));
  fs.writeFileSync(path.join(tmpRoot, OWNER_FILE), ownerRecord());

  try {
    for (const runner of runners) {
      const availability = await runner.probe();
      outcomes.set(runner.id, {
        id: runner.id,
        name: runner.name,
        location: runner.location,
        description: runner.description,
        status: availability.available ? 'ok' : 'skipped',
        reason: availability.available ? undefined : availability.reason,
        iterations: Object.fromEntries(tests.map((t) => [t.name, iterationsFor(t, scale, runner.iterationScale)])),
        iterationScale: runner.iterationScale,
      });
      if (!availability.available) log(`${runner.id}: skipped: ${availability.reason}`);
    }

    const nested = runners.filter((r): r is EmulatedHostRunner => r instanceof EmulatedHostRunner);
    const local = runners.filter((r) => !(r instanceof EmulatedHostRunner));
    for (const runner of local) {
      const outcome = outcomes.get(runner.id)!;
      if (outcome.status !== 'ok') continue;
      throwIfAborted(options.signal);
      const workDir = path.join(tmpRoot, runner.id);
      fs.mkdirSync(workDir, { recursive: true });
      touched.push(runner);
      log(`${runner.id}: preparing ...`);
      try {
        await runner.prepare({ workloadPath, workDir, log, signal: options.signal });
        throwIfAborted(options.signal);
      } catch (err) {
        throwIfAborted(options.signal);
        markFailed(outcome, `prepare failed: ${messageOf(err)}`, log);
      }
    }

    for (const runner of local) versions[runner.id] = (await runner.version().catch(() => undefined)) ?? null;

    const active = local.filter((r) => outcomes.get(r.id)!.status === 'ok');
    const schedule = interleavedSchedule(active.map((r) => r.id), runs, warmups);
    const byId = new Map(active.map((r) => [r.id, r]));
    for (const [index, slot] of schedule.entries()) {
      throwIfAborted(options.signal);
      const runner = byId.get(slot.runnerId)!;
      const outcome = outcomes.get(runner.id)!;
      if (outcome.status !== 'ok') continue;
      const label = slot.warmup ? `warm-up ${slot.round + 1}` : `run ${slot.round - warmups + 1}/${runs}`;
      log(`[${index + 1}/${schedule.length}] ${runner.id}: ${label} ...`);
      const started = Date.now();
      try {
        const results = await runner.run(
          { args: tests.map((t) => `${t.name}=${outcome.iterations[t.name]}`), tests: tests.map((t) => t.name) },
          { signal: options.signal, timeoutMs: options.runTimeoutMs ?? 300_000 },
        );
        executed.push(slot);
        log(`[${index + 1}/${schedule.length}] ${runner.id}: ${label} done in ${((Date.now() - started) / 1000).toFixed(1)} s`);
        if (slot.warmup) continue;
        const perTest = samples.get(runner.id) ?? new Map<string, number[]>();
        samples.set(runner.id, perTest);
        for (const r of results) perTest.set(r.test, [...(perTest.get(r.test) ?? []), r.value]);
      } catch (err) {
        throwIfAborted(options.signal);
        markFailed(outcome, `run failed (${label}): ${messageOf(err)}`, log);
      }
    }

    const nestedOk = nested.filter((r) => outcomes.get(r.id)!.status === 'ok');
    if (nestedOk.length > 0) {
      throwIfAborted(options.signal);
      try {
        const run = await runInEmulatedHost({ names: nestedOk.map((r) => r.name), groups, runs, warmups, scale, signal: options.signal, log });
        emulatedHost = mergeNested(run.results, nestedOk, outcomes, samples, versions, executed);
        emulatedHost = { ...emulatedHost, bootMs: run.bootMs, kernelRelease: run.kernelRelease };
      } catch (err) {
        throwIfAborted(options.signal);
        for (const r of nestedOk) markFailed(outcomes.get(r.id)!, `the nested run in the emulated host failed: ${messageOf(err)}`, log);
      }
    }
  } finally {
    for (const runner of [...touched].reverse()) {
      log(`${runner.id}: cleaning up ...`);
      await runner.cleanup().catch((err: unknown) => log(`${runner.id}: cleanup failed: ${messageOf(err)}`));
    }
    removeWorkRoot(tmpRoot, log);
  }

  host = { ...host, runtimeVersions: versions, loadAverageAtEnd: os.loadavg().map((l) => Math.round(l * 100) / 100) };
  const outcomeList = runners.map((r) => outcomes.get(r.id)!);
  const baselines: Record<string, Baseline> = {};
  for (const location of new Set(outcomeList.map((o) => o.location))) baselines[location] = chooseBaseline(outcomeList, location);
  const baseline = baselines['host'] ?? chooseBaseline(outcomeList, 'host');
  const metrics = tests.map((t) => metricFor(t, outcomeList, samples, baselines));
  return {
    format: 'bulkhead-bench/1',
    startedAt,
    finishedAt: new Date().toISOString(),
    settings: { groups: [...groups], runs, warmups, scale },
    host,
    caveats: caveatsFor(host, [...new Set(outcomeList.filter((o) => o.status === 'ok').map((o) => o.location))]),
    baseline,
    baselines,
    tests,
    runners: outcomeList,
    metrics,
    headline: headlineRatios(groups, metrics, outcomeList),
    executed,
    ...(emulatedHost ? { emulatedHost } : {}),
  };
}

function resolveRunners(requested: readonly (RunnerName | BenchRunner)[], locations: readonly RunnerLocation[], zoneLocation: RunnerLocation): BenchRunner[] {
  const names = requested.filter((r): r is RunnerName => typeof r === 'string');
  for (const name of names) {
    if (!RUNNER_NAMES.includes(name)) throw new BulkheadError('INVALID_CONFIG', `invalid runner: ${JSON.stringify(name)}; allowed: ${RUNNER_NAMES.join(', ')}`);
  }
  const given = requested.filter((r): r is BenchRunner => typeof r !== 'string');
  return [...given, ...createRunners(names, locations, zoneLocation)];
}

/** Docker if it ran at `location`, else runc, else none: ratios only compare runners in one place. */
function chooseBaseline(outcomes: readonly RunnerOutcome[], location: RunnerLocation): Baseline {
  const here = (name: string): RunnerOutcome | undefined => outcomes.find((o) => o.name === name && o.location === location);
  const docker = here('docker');
  const runc = here('runc');
  const where = location === 'host' ? '' : ' inside the emulated host';
  if (docker?.status === 'ok') return { runnerId: docker.id, note: `ratios${where} are relative to bare Docker (docker run with runc)` };
  const why = docker ? `${docker.id} ${docker.status}: ${docker.reason}` : 'docker was not requested';
  if (runc?.status === 'ok') return { runnerId: runc.id, note: `ratios${where} are relative to runc, not Docker (${why}); runc is what Docker runs, minus Docker's seccomp profile` };
  return { runnerId: null, note: `no baseline${where}: neither docker nor runc ran (${why}); no ratios` };
}

function metricFor(test: WorkloadTest, outcomes: readonly RunnerOutcome[], samples: Map<string, Map<string, number[]>>, baselines: Record<string, Baseline>): MetricResult {
  const byRunner: Record<string, MetricByRunner> = {};
  for (const o of outcomes) {
    const values = samples.get(o.id)?.get(test.name);
    if (o.status !== 'ok' || !values || values.length === 0) continue;
    const baseId = baselines[o.location]?.runnerId;
    const baseValues = baseId ? samples.get(baseId)?.get(test.name) : undefined;
    const baseMedian = baseValues && baseValues.length > 0 ? summarize(baseValues).median : undefined;
    const s = summarize(values);
    byRunner[o.id] = { ...s, samples: values, ratio: baseMedian !== undefined ? costRatio(s.median, baseMedian, test.better) : null };
  }
  return { test: test.name, group: test.group, title: test.title, unit: test.unit, better: test.better, byRunner };
}

/** Takes the nested run's outcomes and samples in as `<name>@emulated-host`. */
function mergeNested(
  inner: BenchResults,
  runners: readonly EmulatedHostRunner[],
  outcomes: Map<string, RunnerOutcome>,
  samples: Map<string, Map<string, number[]>>,
  versions: Record<string, string | null>,
  executed: ScheduledRun[],
): EmulatedHostRun {
  for (const r of runners) {
    const outer = outcomes.get(r.id)!;
    const got = inner.runners.find((o) => o.id === r.name);
    if (!got) {
      outer.status = 'failed';
      outer.reason = 'the harness inside the emulated host did not report this runner';
      continue;
    }
    outcomes.set(r.id, { ...got, id: r.id, location: 'emulated-host', description: `${got.description}, inside the emulated host`, reason: got.reason && oneLine(`inside the emulated host: ${got.reason}`) });
    versions[r.id] = inner.host.runtimeVersions[r.name] ?? null;
    const perTest = new Map<string, number[]>();
    for (const m of inner.metrics) {
      const v = m.byRunner[r.name];
      if (v) perTest.set(m.test, [...v.samples]);
    }
    samples.set(r.id, perTest);
  }
  for (const e of inner.executed) executed.push({ ...e, runnerId: `${e.runnerId}@emulated-host` });
  return { host: inner.host, scale: inner.settings.scale, bootMs: 0, kernelRelease: '' };
}

function headlineRatios(groups: readonly WorkloadGroup[], metrics: readonly MetricResult[], outcomes: readonly RunnerOutcome[]): Record<string, Record<string, number>> {
  const headline: Record<string, Record<string, number>> = {};
  for (const g of groups) {
    headline[g] = {};
    for (const o of outcomes) {
      const ratios = metrics.filter((m) => m.group === g).map((m) => m.byRunner[o.id]?.ratio).filter((r): r is number => typeof r === 'number');
      if (ratios.length > 0) headline[g]![o.id] = geometricMean(ratios);
    }
  }
  return headline;
}

/** Removes the run's temp root; a mount a runner failed to undo is unmounted first, never left busy. */
function removeWorkRoot(dir: string, log: (m: string) => void): void {
  unmountUnder(dir, log);
  try {
    fs.rmSync(dir, { recursive: true, force: true });
  } catch (err) {
    log(`could not remove ${dir}: ${messageOf(err)}`);
  }
}

function markFailed(outcome: RunnerOutcome, reason: string, log: (m: string) => void): void {
  outcome.status = 'failed';
  outcome.reason = oneLine(reason);
  log(`${outcome.id}: ${reason}`);
}

/** Reasons go in table cells and sentences: one line, and not a whole log. */
function oneLine(text: string, max = 400): string {
  const flat = text.replace(/\s+/g, ' ').trim();
  return flat.length > max ? `${flat.slice(0, max - 1)}…` : flat;
}

function throwIfAborted(signal: AbortSignal | undefined): void {
  if (signal?.aborted) throw new BenchAbortedError('the benchmark');
}

function messageOf(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
