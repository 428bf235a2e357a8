/**
 * The lifecycle run: zones against Docker (and runc for start-up), round by round. Each round measures
 * every figure once for every sandbox kind, in an order shuffled from the recorded seed, after one
 * uncounted warm-up round. Where this host's /dev/kvm cannot run zones (PVM, none), the whole run goes
 * into the emulated host (this harness run there, `bench --lifecycle --where host --json`), so zones and
 * containers are measured in the same machine; the results say which virtualization mode they are from.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { AbortedError, BulkheadError } from '../../errors';
import { collectHostFacts } from '../host-facts';
import { summarize } from '../method/stats';
import { interleavedSchedule, newSeed } from '../method/schedule';
import { OWNER_FILE, ownerRecord, sweepStaleRuns, WORK_ROOT_PREFIX } from '../stale';
import { DockerSandbox, RuncSandbox } from './container-sandbox';
import { densityMemory, densityTime, EXEC_TRUE, figureDefs, IDLE_MEMORY, PIPE_INSIDE, START_ECHO, STREAM_CAT } from './figures';
import { evaluateGoals } from './goals';
import { runLifecycleInEmulatedHost } from './nested';
import type { LifecycleSandbox } from './sandbox';
import { MIB } from './sandbox';
import type { FigureDef, LifecycleFigure, LifecycleResults, SandboxKind, SandboxOutcome, VirtualizationMode } from './types';
import { LIFECYCLE_ZONE_MEMORY_MIB, ZoneSandbox } from './zone-sandbox';

export const DEFAULT_STREAM_BYTES = 256 * MIB;
export const DEFAULT_DENSITIES: readonly number[] = [1, 4, 16];
export const DEFAULT_ROUNDS = 5;
/** exec round trips per round (each one a sample). */
const EXEC_SAMPLES = 5;
/** Tries of one figure call before its sandbox fails for the run (see measureRound). */
export const FIGURE_ATTEMPTS = 4;

/**
 * How long one call of a figure may take before it counts as lost, sized for a loaded TCG
 * host (where a zone's start is ~10 s and a 256 MiB stream about a minute): a hung call would
 * otherwise hold the whole run (a zone round once printed nothing for 21 minutes).
 */
export const FIGURE_DEADLINES_MS = {
  startEcho: 5 * 60_000,
  execTrue: 2 * 60_000,
  streamCat: 15 * 60_000,
  pipeInside: 30 * 60_000,
  idleMemory: 2 * 60_000,
  density: (n: number) => 5 * 60_000 + n * 60_000,
};

export interface LifecycleOptions {
  /** Counted rounds (default 5), after one warm-up. */
  readonly rounds?: number;
  readonly warmups?: number;
  /** Bytes through `cat` (default 256 MiB). */
  readonly streamBytes?: number;
  /** Sandboxes started at once, per density figure (default 1, 4, 16). */
  readonly densities?: readonly number[];
  /** host: measure here (zones need hardware virtualization); emulated-host: all of it in there. Default: host with hardware virtualization, else emulated-host. */
  readonly where?: 'host' | 'emulated-host';
  readonly seed?: number;
  readonly signal?: AbortSignal;
  readonly log?: (message: string) => void;
  /** Ready-made sandboxes (tests); default zone, docker, runc. */
  readonly sandboxes?: readonly LifecycleSandbox[];
  /** One deadline for every figure call instead of FIGURE_DEADLINES_MS (tests). */
  readonly figureDeadlineMs?: number;
}

interface Settings {
  rounds: number;
  warmups: number;
  streamBytes: number;
  densities: number[];
  seed: number;
  signal?: AbortSignal;
  log: (m: string) => void;
  figureDeadlineMs?: number;
}

function validate(o: LifecycleOptions): Settings {
  const rounds = o.rounds ?? DEFAULT_ROUNDS;
  const warmups = o.warmups ?? 1;
  const streamBytes = o.streamBytes ?? DEFAULT_STREAM_BYTES;
  const densities = [...(o.densities ?? DEFAULT_DENSITIES)];
  const seed = o.seed ?? newSeed();
  const bad = (field: string, value: unknown, allowed: string) => new BulkheadError('INVALID_CONFIG', `invalid ${field}: ${JSON.stringify(value)}; allowed: ${allowed}`);
  if (!Number.isInteger(rounds) || rounds < 1) throw bad('rounds', rounds, 'an integer >= 1');
  if (!Number.isInteger(warmups) || warmups < 0) throw bad('warmups', warmups, 'an integer >= 0');
  if (!Number.isInteger(streamBytes) || streamBytes < 1) throw bad('streamBytes', streamBytes, 'an integer number of bytes >= 1');
  if (densities.length === 0 || densities.some((n) => !Number.isInteger(n) || n < 1 || n > 64)) throw bad('densities', densities, 'integers in 1..64');
  if (!Number.isInteger(seed) || seed < 0 || seed >= 2 ** 32) throw bad('seed', seed, 'an integer in [0, 2^32)');
  const deadline = o.figureDeadlineMs;
  if (deadline !== undefined && !(Number.isInteger(deadline) && deadline > 0)) throw bad('figureDeadlineMs', deadline, 'a positive integer number of milliseconds');
  return { rounds, warmups, streamBytes, densities, seed, signal: o.signal, log: o.log ?? (() => undefined), ...(deadline !== undefined ? { figureDeadlineMs: deadline } : {}) };
}

export async function runLifecycle(options: LifecycleOptions = {}): Promise<LifecycleResults> {
  const settings = validate(options);
  const facts = collectHostFacts();
  const where = options.where ?? (facts.virtualization === 'hardware' ? 'host' : 'emulated-host');
  if (where === 'emulated-host' && !options.sandboxes) {
    return runLifecycleInEmulatedHost({ ...settings, log: settings.log });
  }
  const startedAt = new Date().toISOString();
  const sandboxes: readonly LifecycleSandbox[] = options.sandboxes ?? [new ZoneSandbox('kvm'), new DockerSandbox(), new RuncSandbox()];
  // Inside the emulated host its own facts say `hardware` (nested SVM): the outer run relabels them.
  const mode: VirtualizationMode = { where: 'host', mode: facts.virtualization, detail: facts.virtualizationDetail };
  await sweepStaleRuns(os.tmpdir(), settings.log);
  const workRoot = fs.mkdtempSync(path.join(os.tmpdir(), WORK_ROOT_PREFIX));
  fs.writeFileSync(path.join(workRoot, OWNER_FILE), ownerRecord());
  const outcomes = new Map<SandboxKind, SandboxOutcome>();
  const samples = new Map<string, Map<SandboxKind, number[]>>();
  const splits = new Map<string, number[]>();
  const idle: { rss: number[]; touched: number[] } = { rss: [], touched: [] };
  const executed: { round: number; kind: SandboxKind }[] = [];
  const retried: LifecycleResults['retried'][number][] = [];
  const add = (figure: string, kind: SandboxKind, value: number) => {
    const perKind = samples.get(figure) ?? new Map<SandboxKind, number[]>();
    samples.set(figure, perKind);
    perKind.set(kind, [...(perKind.get(kind) ?? []), value]);
  };
  /** One round of every figure `s` has; samples land in `round` (kept only if the whole round succeeds). */
  const measureRound = async (s: LifecycleSandbox, roundNo: number, label: string, warmup: boolean, round: RoundSamples) => {
    // Each figure's value is logged as it comes, so a slow or stuck run shows where it is.
    const keep = (def: FigureDef, value: number) => {
      settings.log(`${s.kind}: ${label}: ${def.title}: ${formatValue(value, def.unit)}`);
      if (!warmup) round.values.push([def.id, value]);
    };
    // A call lost (under TCG a zone now and then dies of the nested-SVM flake, and density 16 boots
    // 16 of them) runs again from a recovered sandbox, each loss recorded; FIGURE_ATTEMPTS losses in a
    // row, or one by a sandbox that cannot recover, fail the sandbox for the run.
    const timed = async <T>(call: string, deadlineMs: number, run: () => Promise<T>): Promise<T> => {
      let abandoned = false;
      let last = '';
      for (let attempt = 1; attempt <= FIGURE_ATTEMPTS; attempt++) {
        try {
          if (attempt > 1) await s.recover!({ abandoned });
          return await withDeadline(run(), settings.figureDeadlineMs ?? deadlineMs, `${s.kind}: ${call}`);
        } catch (err) {
          throwIfAborted(settings.signal);
          last = messageOf(err).replace(/\s+/g, ' ').slice(0, 300);
          if (!s.recover) throw new BulkheadError('BENCH_FAILED', `${call}: ${last}`);
          abandoned = err instanceof FigureDeadlineError;
          retried.push({ round: roundNo, kind: s.kind, figure: call, reason: last });
          settings.log(`${s.kind}: ${label}: ${call} lost (${last})${attempt < FIGURE_ATTEMPTS ? '; once more' : ''}`);
        }
      }
      throw new BulkheadError('BENCH_FAILED', `${call} lost ${FIGURE_ATTEMPTS} times in a row; the last: ${last}`);
    };
    if (s.startEcho) {
      const r = await timed('start → echo', FIGURE_DEADLINES_MS.startEcho, () => s.startEcho!());
      keep(START_ECHO, r.ms);
      if (!warmup) round.split.push(r.split ?? {});
    }
    if (s.execTrue) for (let i = 0; i < EXEC_SAMPLES; i++) keep(EXEC_TRUE, await timed('exec true', FIGURE_DEADLINES_MS.execTrue, () => s.execTrue!()));
    if (s.streamCat) keep(STREAM_CAT, await timed('stream through cat', FIGURE_DEADLINES_MS.streamCat, () => s.streamCat!(settings.streamBytes)));
    if (s.pipeInside) keep(PIPE_INSIDE, await timed('pipe inside', FIGURE_DEADLINES_MS.pipeInside, () => s.pipeInside!(settings.streamBytes)));
    if (s.idleMemory) {
      const m = await timed('idle memory', FIGURE_DEADLINES_MS.idleMemory, () => s.idleMemory!());
      keep(IDLE_MEMORY, m.mib);
      if (!warmup && m.guestTouchedMiB !== undefined) round.idle.push([m.mib, m.guestTouchedMiB]);
    }
    if (s.density) {
      for (const n of settings.densities) {
        throwIfAborted(settings.signal);
        const d = await timed(`density ${n}`, FIGURE_DEADLINES_MS.density(n), () => s.density!(n));
        keep(densityTime(n), d.ms);
        keep(densityMemory(n), d.mib);
      }
    }
  };
  const touched: LifecycleSandbox[] = [];
  try {
    for (const s of sandboxes) {
      const a = await s.probe();
      outcomes.set(s.kind, { kind: s.kind, status: a.available ? 'ok' : 'skipped', ...(a.available ? {} : { reason: a.reason }) });
      if (!a.available) settings.log(`${s.kind}: skipped: ${a.reason}`);
    }
    for (const s of sandboxes.filter((x) => outcomes.get(x.kind)?.status === 'ok')) {
      throwIfAborted(settings.signal);
      touched.push(s);
      const workDir = path.join(workRoot, s.kind);
      fs.mkdirSync(workDir, { recursive: true });
      settings.log(`${s.kind}: preparing ...`);
      try {
        await s.prepare({ workDir, log: settings.log, signal: settings.signal });
      } catch (err) {
        throwIfAborted(settings.signal);
        fail(outcomes.get(s.kind)!, `prepare failed: ${messageOf(err)}`, settings.log);
      }
    }
    const active = sandboxes.filter((x) => outcomes.get(x.kind)?.status === 'ok');
    const byKind = new Map(active.map((s) => [s.kind as string, s]));
    for (const slot of interleavedSchedule(active.map((s) => s.kind), settings.rounds, settings.warmups, settings.seed)) {
      throwIfAborted(settings.signal);
      const s = byKind.get(slot.runnerId)!;
      const outcome = outcomes.get(s.kind)!;
      if (outcome.status !== 'ok') continue;
      const label = slot.warmup ? 'warm-up' : `round ${slot.round - settings.warmups + 1}/${settings.rounds}`;
      settings.log(`${s.kind}: ${label} ...`);
      const round: RoundSamples = { values: [], split: [], idle: [] };
      try {
        await measureRound(s, slot.round, label, slot.warmup, round);
      } catch (err) {
        throwIfAborted(settings.signal);
        fail(outcome, `${label}: ${messageOf(err)}`, settings.log);
        continue;
      }
      for (const [figure, value] of round.values) add(figure, s.kind, value);
      for (const split of round.split) for (const [k, v] of Object.entries(split)) splits.set(k, [...(splits.get(k) ?? []), v]);
      for (const [rss, touchedMiB] of round.idle) {
        idle.rss.push(rss);
        idle.touched.push(touchedMiB);
      }
      executed.push({ round: slot.round, kind: s.kind });
    }
  } finally {
    for (const s of [...touched].reverse()) {
      settings.log(`${s.kind}: cleaning up ...`);
      await s.cleanup().catch((err: unknown) => settings.log(`${s.kind}: cleanup failed: ${messageOf(err)}`));
    }
    fs.rmSync(workRoot, { recursive: true, force: true });
  }
  const figures: LifecycleFigure[] = figureDefs(settings.densities).map((def) => {
    const bySandbox: LifecycleFigure['bySandbox'] = {};
    for (const [kind, values] of samples.get(def.id) ?? []) {
      if (outcomes.get(kind)?.status === 'ok' && values.length > 0) bySandbox[kind] = { ...summarize(values), samples: values };
    }
    return { ...def, bySandbox };
  });
  // Like every figure, the zone's split and idle memory only count when all its rounds succeeded.
  const zoneOk = outcomes.get('zone')?.status === 'ok';
  const startSplit = zoneOk ? Object.fromEntries([...splits].map(([k, v]) => [k, summarize(v).median])) : {};
  const zoneIdle = zoneOk && idle.rss.length > 0 ? { hostRssMiB: summarize(idle.rss).median, guestTouchedMiB: summarize(idle.touched).median } : undefined;
  return {
    format: 'bulkhead-lifecycle/1',
    startedAt,
    finishedAt: new Date().toISOString(),
    settings: { rounds: settings.rounds, warmups: settings.warmups, seed: settings.seed, streamBytes: settings.streamBytes, densities: settings.densities, execSamples: EXEC_SAMPLES, zoneMemoryMiB: LIFECYCLE_ZONE_MEMORY_MIB },
    virtualization: mode,
    sandboxes: sandboxes.map((s) => outcomes.get(s.kind)!),
    figures,
    executed,
    retried,
    startSplit,
    ...(zoneIdle ? { zoneIdle } : {}),
    goals: evaluateGoals(figures, zoneIdle, {}, startSplit),
  };
}

interface RoundSamples {
  values: [figure: string, value: number][];
  split: Record<string, number>[];
  idle: [rssMiB: number, guestTouchedMiB: number][];
}

/** A figure call that outlived its deadline: the call is lost, and what it left running is abandoned. */
class FigureDeadlineError extends BulkheadError {
  constructor(what: string, ms: number) {
    super('BENCH_FAILED', `${what} took longer than ${ms < 10_000 ? `${ms} ms` : `${Math.round(ms / 1000)} s`} (its deadline)`);
  }
}

function withDeadline<T>(work: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const expired = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new FigureDeadlineError(what, ms)), ms);
  });
  work.catch(() => undefined); // an abandoned call may still fail later
  return Promise.race([work, expired]).finally(() => clearTimeout(timer));
}

function formatValue(value: number, unit: string): string {
  return `${value >= 100 ? value.toFixed(0) : value.toPrecision(3)} ${unit}`;
}

function fail(outcome: SandboxOutcome, reason: string, log: (m: string) => void): void {
  outcome.status = 'failed';
  outcome.reason = reason.replace(/\s+/g, ' ').slice(0, 400);
  log(`${outcome.kind}: ${reason}`);
}

function throwIfAborted(signal: AbortSignal | undefined): void {
  if (signal?.aborted) throw new AbortedError('running the lifecycle benchmark');
}

function messageOf(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
