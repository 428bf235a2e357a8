/**
 * The method: probe every runner, prepare the available ones, run the workload in interleaved rounds
 * (warm-ups first), run the emulated host's share as one nested run, summarise each metric as
 * median [min-max] and as a ratio to the baseline (Docker, or runc when Docker cannot run), and always
 * undo every runner's setup, also when aborted.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { BulkheadError } from '../../errors';
import { caveatsFor, collectHostFacts, type HostFacts } from '../host-facts';
import { unmountUnder } from '../mounts';
import { AbortedError } from '../../errors';
import { createRunners, RUNNER_NAMES, type BenchRunner, type RunnerLocation, type RunnerName } from '../runners';
import { EmulatedHostRunner, runInEmulatedHost } from '../runners/emulated-host';
import { OWNER_FILE, ownerRecord, sweepStaleRuns, WORK_ROOT_PREFIX } from '../stale';
import { buildWorkload, iterationsFor, testsForGroups, WORKLOAD_GROUPS, type WorkloadGroup, type WorkloadTest } from '../workload';
import type { BenchResults, EmulatedHostRun, RunnerOutcome } from './results';
import { interleavedSchedule, newSeed, type ScheduledRun } from './schedule';
import { calibratedIterations, MIN_SAMPLE_MS } from './sample-floor';
import { baselinesFor, chooseBaseline, headlineRatios, metricFor, type Samples } from './summary';

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
  /** Seed of the per-round shuffle of the runner order (recorded in the results); default: a fresh one. */
  readonly seed?: number;
}

export const DEFAULT_RUNS = 5;
const DEFAULT_RUN_TIMEOUT_MS = 5 * 60_000;

interface Settings {
  readonly groups: readonly WorkloadGroup[];
  readonly tests: readonly WorkloadTest[];
  readonly runs: number;
  readonly warmups: number;
  readonly scale: number;
  readonly runTimeoutMs: number;
  readonly seed: number;
  readonly signal?: AbortSignal;
  readonly log: (message: string) => void;
}

export async function runBenchmark(options: BenchOptions = {}): Promise<BenchResults> {
  const startedAt = new Date().toISOString();
  const settings = validate(options);
  const hostAtStart = collectHostFacts();
  // Zones run on the host only with hardware virtualization; otherwise in the emulated host.
  const hardware = hostAtStart.virtualization === 'hardware';
  const locations = options.locations ?? (hardware ? ['host'] : ['host', 'emulated-host']);
  const runners = resolveRunners(options.runners ?? RUNNER_NAMES, locations, hardware ? 'host' : 'emulated-host');

  settings.log('building the workload ...');
  const workloadPath = await buildWorkload({ cacheDir: options.cacheDir });
  await sweepStaleRuns(os.tmpdir(), settings.log);

  const session = new Session(settings, runners, workloadPath);
  try {
    await session.probeAll();
    await session.prepareLocal();
    await session.runRounds();
    await session.runNested();
  } finally {
    await session.cleanup();
  }
  return session.results(startedAt, hostAtStart);
}

/** One benchmark run's state: what each runner did, the samples, and what must be undone. */
class Session {
  private readonly outcomes = new Map<string, RunnerOutcome>();
  private readonly samples: Samples = new Map();
  private readonly executed: ScheduledRun[] = [];
  private readonly versions: Record<string, string | null> = {};
  /** Every runner whose prepare() started: each gets cleanup(). */
  private readonly touched: BenchRunner[] = [];
  private readonly local: BenchRunner[];
  private readonly nested: EmulatedHostRunner[];
  private readonly workRoot: string;
  private emulatedHost: EmulatedHostRun | undefined;

  constructor(
    private readonly settings: Settings,
    private readonly runners: readonly BenchRunner[],
    private readonly workloadPath: string,
  ) {
    this.nested = runners.filter((r): r is EmulatedHostRunner => r instanceof EmulatedHostRunner);
    this.local = runners.filter((r) => !(r instanceof EmulatedHostRunner));
    this.workRoot = fs.mkdtempSync(path.join(os.tmpdir(), WORK_ROOT_PREFIX));
    fs.writeFileSync(path.join(this.workRoot, OWNER_FILE), ownerRecord());
  }

  /** Availability of every runner; the unavailable ones are recorded as skipped, with the reason. */
  async probeAll(): Promise<void> {
    const { tests, scale, log } = this.settings;
    for (const runner of this.runners) {
      const availability = await runner.probe();
      this.outcomes.set(runner.id, {
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
  }

  /** One-time setup of each available runner on this machine; a failure marks that runner failed. */
  async prepareLocal(): Promise<void> {
    const { log, signal } = this.settings;
    for (const runner of this.local) {
      const outcome = this.outcome(runner);
      if (outcome.status !== 'ok') continue;
      throwIfAborted(signal);
      const workDir = path.join(this.workRoot, runner.id);
      fs.mkdirSync(workDir, { recursive: true });
      this.touched.push(runner);
      log(`${runner.id}: preparing ...`);
      try {
        await runner.prepare({ workloadPath: this.workloadPath, workDir, log, signal });
        throwIfAborted(signal);
      } catch (err) {
        throwIfAborted(signal);
        markFailed(outcome, `prepare failed: ${messageOf(err)}`, log);
      }
    }
    for (const runner of this.local) this.versions[runner.id] = (await runner.version().catch(() => undefined)) ?? null;
  }

  /** Interleaved rounds over the prepared runners; warm-up rounds are run but not counted. */
  async runRounds(): Promise<void> {
    const { tests, runs, warmups, runTimeoutMs, seed, log, signal } = this.settings;
    const active = this.local.filter((r) => this.outcome(r).status === 'ok');
    const byId = new Map(active.map((r) => [r.id, r]));
    const schedule = interleavedSchedule(active.map((r) => r.id), runs, warmups, seed);
    for (const [index, slot] of schedule.entries()) {
      throwIfAborted(signal);
      const runner = byId.get(slot.runnerId)!;
      const outcome = this.outcome(runner);
      if (outcome.status !== 'ok') continue; // failed in an earlier round
      const label = slot.warmup ? `warm-up ${slot.round + 1}` : `run ${slot.round - warmups + 1}/${runs}`;
      const step = `[${index + 1}/${schedule.length}] ${runner.id}: ${label}`;
      log(`${step} ...`);
      const started = Date.now();
      try {
        const results = await runner.run(
          { args: tests.map((t) => `${t.name}=${outcome.iterations[t.name]}`), tests: tests.map((t) => t.name) },
          { signal, timeoutMs: runTimeoutMs },
        );
        this.executed.push(slot);
        log(`${step} done in ${((Date.now() - started) / 1000).toFixed(1)} s`);
        if (!slot.warmup) for (const r of results) this.addSample(runner.id, r.test, r.value);
        // The last warm-up sets the counted runs' iterations, so that no counted sample is mostly timer noise.
        if (slot.warmup && slot.round === warmups - 1) this.calibrate(runner, results);
      } catch (err) {
        throwIfAborted(signal);
        markFailed(outcome, `run failed (${label}): ${messageOf(err)}`, log);
      }
    }
  }

  /** Raises the counted runs' iterations of every test whose warm-up sample was shorter than MIN_SAMPLE_MS. */
  private calibrate(runner: BenchRunner, warmup: readonly { test: string; iterations: number; elapsedNs: number }[]): void {
    const outcome = this.outcome(runner);
    for (const r of warmup) {
      const next = calibratedIterations(r.iterations, r.elapsedNs);
      if (next === r.iterations) continue;
      this.settings.log(`${runner.id}: ${r.test}: ${r.iterations} iterations took ${(r.elapsedNs / 1e6).toFixed(1)} ms; counted runs use ${next} (>= ${MIN_SAMPLE_MS} ms a sample)`);
      outcome.iterations[r.test] = next;
    }
  }

  /** The emulated host's runners: one nested run of this harness in there, merged back. */
  async runNested(): Promise<void> {
    const { groups, runs, warmups, scale, seed, log, signal } = this.settings;
    const runners = this.nested.filter((r) => this.outcome(r).status === 'ok');
    if (runners.length === 0) return;
    throwIfAborted(signal);
    try {
      const run = await runInEmulatedHost({ names: runners.map((r) => r.name), groups, runs, warmups, scale, seed, signal, log });
      this.mergeNested(run.results, runners);
      this.emulatedHost = { host: run.results.host, scale: run.results.settings.scale, bootMs: run.bootMs, kernelRelease: run.kernelRelease };
    } catch (err) {
      throwIfAborted(signal);
      for (const r of runners) markFailed(this.outcome(r), `the nested run in the emulated host failed: ${messageOf(err)}`, log);
    }
  }

  /** Undoes every runner's setup (last prepared first), then removes the work root. Never throws. */
  async cleanup(): Promise<void> {
    const { log } = this.settings;
    for (const runner of [...this.touched].reverse()) {
      log(`${runner.id}: cleaning up ...`);
      await runner.cleanup().catch((err: unknown) => log(`${runner.id}: cleanup failed: ${messageOf(err)}`));
    }
    // A mount a runner failed to undo is unmounted first, so the removal never meets a busy dir.
    unmountUnder(this.workRoot, log);
    try {
      fs.rmSync(this.workRoot, { recursive: true, force: true });
    } catch (err) {
      log(`could not remove ${this.workRoot}: ${messageOf(err)}`);
    }
  }

  results(startedAt: string, hostAtStart: HostFacts): BenchResults {
    const { groups, tests, runs, warmups, scale } = this.settings;
    const host: HostFacts = { ...hostAtStart, runtimeVersions: this.versions, loadAverageAtEnd: os.loadavg().map((l) => Math.round(l * 100) / 100) };
    const outcomes = this.runners.map((r) => this.outcome(r));
    const baselines = baselinesFor(outcomes);
    const metrics = tests.map((t) => metricFor(t, outcomes, this.samples, baselines));
    const measuredAt = [...new Set(outcomes.filter((o) => o.status === 'ok').map((o) => o.location))];
    return {
      format: 'bulkhead-bench/1',
      startedAt,
      finishedAt: new Date().toISOString(),
      settings: { groups: [...groups], runs, warmups, scale, seed: this.settings.seed, minSampleMs: MIN_SAMPLE_MS },
      host,
      caveats: caveatsFor(host, measuredAt),
      baseline: baselines['host'] ?? chooseBaseline(outcomes, 'host'),
      baselines,
      tests,
      runners: outcomes,
      metrics,
      headline: headlineRatios(groups, metrics, outcomes),
      executed: this.executed,
      ...(this.emulatedHost ? { emulatedHost: this.emulatedHost } : {}),
    };
  }

  /** Takes the nested run's outcomes and samples in as `<name>@emulated-host`. */
  private mergeNested(inner: BenchResults, runners: readonly EmulatedHostRunner[]): void {
    for (const r of runners) {
      const got = inner.runners.find((o) => o.id === r.name);
      if (!got) {
        markFailed(this.outcome(r), 'the harness inside the emulated host did not report this runner', this.settings.log);
        continue;
      }
      this.outcomes.set(r.id, {
        ...got,
        id: r.id,
        location: 'emulated-host',
        description: `${got.description}, inside the emulated host`,
        reason: got.reason && oneLine(`inside the emulated host: ${got.reason}`),
      });
      this.versions[r.id] = inner.host.runtimeVersions[r.name] ?? null;
      for (const m of inner.metrics) for (const value of m.byRunner[r.name]?.samples ?? []) this.addSample(r.id, m.test, value);
    }
    for (const e of inner.executed) this.executed.push({ ...e, runnerId: `${e.runnerId}@emulated-host` });
  }

  private addSample(runnerId: string, test: string, value: number): void {
    const perTest = this.samples.get(runnerId) ?? new Map<string, number[]>();
    this.samples.set(runnerId, perTest);
    perTest.set(test, [...(perTest.get(test) ?? []), value]);
  }

  private outcome(runner: BenchRunner): RunnerOutcome {
    return this.outcomes.get(runner.id)!;
  }
}

function validate(options: BenchOptions): Settings {
  const groups = options.groups ?? WORKLOAD_GROUPS;
  const runs = options.runs ?? DEFAULT_RUNS;
  const warmups = options.warmups ?? 1;
  const scale = options.scale ?? 1;
  const seed = options.seed ?? newSeed();
  if (!Number.isInteger(seed) || seed < 0 || seed >= 2 ** 32) throw new BulkheadError('INVALID_CONFIG', `invalid seed: ${seed}; allowed: an integer in [0, 2^32)`);
  if (!Number.isInteger(runs) || runs < 1) throw new BulkheadError('INVALID_CONFIG', `invalid runs: ${runs}; allowed: an integer >= 1`);
  if (!Number.isInteger(warmups) || warmups < 0) throw new BulkheadError('INVALID_CONFIG', `invalid warmups: ${warmups}; allowed: an integer >= 0`);
  if (!(scale > 0)) throw new BulkheadError('INVALID_CONFIG', `invalid scale: ${scale}; allowed: a number > 0`);
  const tests = testsForGroups(groups);
  if (tests.length === 0) throw new BulkheadError('INVALID_CONFIG', `invalid groups: ${groups.join(',')}; allowed: ${WORKLOAD_GROUPS.join(', ')}`);
  return {
    groups,
    tests,
    runs,
    warmups,
    scale,
    runTimeoutMs: options.runTimeoutMs ?? DEFAULT_RUN_TIMEOUT_MS,
    seed,
    signal: options.signal,
    log: options.log ?? (() => undefined),
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
  if (signal?.aborted) throw new AbortedError('running the benchmark');
}

function messageOf(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
