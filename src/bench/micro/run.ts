/**
 * Library microbenchmarks (tinybench) of the KVM layer: VM create + destroy, and the port-I/O exit
 * round trip to a JavaScript handler. `npm run bench` runs this. It shares the harness of the other
 * benchmarks: interleaved rounds in an order shuffled from a recorded seed (one uncounted warm-up),
 * median [min–max] over the rounds' medians, and results.json + report.md + chart.svg in --out.
 * On this kind of host /dev/kvm is PVM: the figures say what bulkhead's own layer costs on it, not what
 * it would cost with hardware virtualization (the report says which mode was measured).
 *
 *   node dist/cjs/bench/micro/run.js [--rounds N] [--seed N] [--time-ms N] [--out DIR] [--json]
 */
import { parseArgs } from 'node:util';
import { Bench } from 'tinybench';
import { InvalidConfigError } from '../../errors';
import { collectHostFacts, type HostFacts } from '../host-facts';
import { openHypervisor, type Kvm } from '../../kvm';
import { summarize } from '../method/stats';
import { interleavedSchedule, newSeed } from '../method/schedule';
import { defaultOutDir, writeBenchOutputs } from '../report/outputs';
import { renderRatioChart } from '../report/ratio-chart';
import { formatValue } from '../report/format';
import { EXIT_PORT, loadOutLoop } from './guest';

const EXITS_PER_ITERATION = 100;

export interface MicroResult {
  readonly name: string;
  readonly unit: string;
  /** Median of the rounds' medians, with their min and max. */
  readonly median: number;
  readonly min: number;
  readonly max: number;
  /** Each counted round's median, in the order they ran. */
  readonly rounds: readonly number[];
  /** tinybench iterations over the counted rounds. */
  readonly samples: number;
}

export interface MicroOptions {
  /** tinybench time per task and round (default 2000 ms). */
  readonly timeMs?: number;
  /** Counted rounds (default 5), after one warm-up. */
  readonly rounds?: number;
  readonly warmups?: number;
  readonly seed?: number;
}

export interface MicroResults {
  readonly format: 'bulkhead-bench-micro/1';
  readonly startedAt: string;
  readonly host: HostFacts;
  readonly settings: { rounds: number; warmups: number; timeMs: number; seed: number };
  readonly results: readonly MicroResult[];
}

interface Task {
  readonly name: string;
  readonly perIteration: number;
  add(bench: Bench): void;
}

function tasks(kvm: Kvm): Task[] {
  return [
    {
      name: 'VM create + destroy (2 MiB, 1 vCPU)',
      perIteration: 1,
      add: (bench) =>
        bench.add('create', async () => {
          const vm = kvm.createVm({ memoryMiB: 2, vcpus: 1 });
          await vm.destroy();
        }),
    },
    {
      name: 'port-I/O exit round trip to a JS handler',
      perIteration: EXITS_PER_ITERATION,
      add: (bench) => {
        const exits = exitRoundTrip(kvm);
        bench.add('exits', () => exits.next(EXITS_PER_ITERATION), { beforeAll: () => exits.start(), afterAll: () => exits.stop() });
      },
    },
  ];
}

function checkCount(field: string, v: number | undefined, fallback: number, min: number): number {
  const n = v ?? fallback;
  if (!Number.isInteger(n) || n < min) throw new InvalidConfigError(field, n, `an integer >= ${min}`);
  return n;
}

export async function runMicroBenchmarks(options: MicroOptions = {}): Promise<MicroResults> {
  const settings = {
    rounds: checkCount('rounds', options.rounds, 5, 1),
    warmups: checkCount('warmups', options.warmups, 1, 0),
    timeMs: checkCount('timeMs', options.timeMs, 2000, 1),
    seed: options.seed ?? newSeed(),
  };
  const startedAt = new Date().toISOString();
  const kvm = openHypervisor();
  try {
    const all = tasks(kvm);
    const perRound = new Map<string, number[]>(all.map((t) => [t.name, []]));
    const samples = new Map<string, number>(all.map((t) => [t.name, 0]));
    for (const slot of interleavedSchedule(all.map((t) => t.name), settings.rounds, settings.warmups, settings.seed)) {
      const task = all.find((t) => t.name === slot.runnerId)!;
      const bench = new Bench({ time: settings.timeMs, warmupTime: Math.min(300, settings.timeMs) });
      task.add(bench);
      await bench.run();
      const r = bench.tasks[0]!.result;
      if (r.state !== 'completed') throw new Error(`${task.name}: ${r.state === 'errored' ? r.error.message : r.state}`);
      if (slot.warmup) continue;
      // Latency statistics are in ms per iteration: the figures are µs per operation.
      perRound.get(task.name)!.push((r.latency.p50 * 1000) / task.perIteration);
      samples.set(task.name, samples.get(task.name)! + (r.period > 0 ? Math.round(r.totalTime / r.period) : 0));
    }
    const results = all.map((t): MicroResult => {
      const rounds = perRound.get(t.name)!;
      const s = summarize(rounds);
      return { name: t.name, unit: 'µs/op', median: s.median, min: s.min, max: s.max, rounds, samples: samples.get(t.name)! };
    });
    return { format: 'bulkhead-bench-micro/1', startedAt, host: collectHostFacts(), settings, results };
  } finally {
    kvm.close();
  }
}

export function renderMicroMarkdown(r: MicroResults): string {
  const h = r.host;
  const out = [`# bulkhead microbenchmarks, ${r.startedAt.slice(0, 16).replace('T', ' ')} UTC`, ''];
  out.push(`Virtualization mode of every figure: **${h.virtualization}** (${h.virtualizationDetail}); ${h.cpuModel}.`);
  if (h.virtualization !== 'hardware') out.push('Not hardware virtualization: these figures do not stand for a vmx/svm host.');
  out.push('', `Median of ${r.settings.rounds} rounds' medians [min–max], ${r.settings.timeMs} ms of tinybench per task and round, after ${r.settings.warmups} warm-up round(s); round order shuffled with seed ${r.settings.seed}.`, '');
  out.push('| figure | unit | median [min–max] | rounds | iterations |', '|---|---|---:|---:|---:|');
  for (const x of r.results) out.push(`| ${x.name} | ${x.unit} | ${formatValue(x.median)} [${formatValue(x.min)}–${formatValue(x.max)}] | ${x.rounds.length} | ${x.samples} |`);
  out.push('');
  return out.join('\n');
}

/** No other implementation is measured here: the chart shows each round against the median of all rounds (the run's noise). */
export function renderMicroSvg(r: MicroResults): string {
  return renderRatioChart({
    title: `bulkhead microbenchmarks: each round relative to the median of its figure (log scale) — ${r.host.virtualization}`,
    reference: 'median of the rounds = 1',
    rows: r.results.flatMap((x) => x.rounds.map((v, i) => ({ label: `${x.name}, round ${i + 1}`, series: x.name, ratio: v / x.median }))),
    empty: 'No round was counted.',
  });
}

/** A VM that runs the exit loop for the whole task; next(n) resolves after n more exits. */
function exitRoundTrip(kvm: Kvm): { start(): void; next(n: number): Promise<void>; stop(): Promise<void> } {
  let vm: ReturnType<Kvm['createVm']> | undefined;
  let count = 0;
  let waiter: { target: number; resolve: () => void } | undefined;
  return {
    start() {
      vm = kvm.createVm({ memoryMiB: 2, vcpus: 1 });
      loadOutLoop(vm);
      vm.onPort(EXIT_PORT, 1, () => {
        count++;
        if (waiter && count >= waiter.target) {
          const w = waiter;
          waiter = undefined;
          w.resolve();
        }
      });
      vm.start();
    },
    next(n) {
      return new Promise((resolve) => (waiter = { target: count + n, resolve }));
    },
    async stop() {
      await vm?.destroy();
      vm = undefined;
    },
  };
}

async function main(argv: string[]): Promise<number> {
  const { values: v } = parseArgs({
    args: argv,
    options: { rounds: { type: 'string' }, seed: { type: 'string' }, 'time-ms': { type: 'string' }, out: { type: 'string' }, json: { type: 'boolean' } },
    strict: true,
  });
  const int = (field: string, s: string | undefined): number | undefined => {
    if (s === undefined) return undefined;
    if (!/^\d+$/.test(s)) throw new InvalidConfigError(field, s, 'a non-negative integer');
    return Number(s);
  };
  let results: MicroResults;
  try {
    results = await runMicroBenchmarks({ rounds: int('--rounds', v.rounds), seed: int('--seed', v.seed), timeMs: int('--time-ms', v['time-ms']) });
  } catch (err) {
    process.stderr.write(`bench micro: cannot run: ${err instanceof Error ? err.message : String(err)}\n`);
    return 1;
  }
  const markdown = renderMicroMarkdown(results);
  const written = writeBenchOutputs(v.out ?? defaultOutDir('bench-micro'), { results, markdown, svg: renderMicroSvg(results) });
  process.stderr.write(`wrote ${written.resultsJson}, ${written.reportMd} and ${written.chartSvg}\n`);
  process.stdout.write(v.json ? JSON.stringify(results, null, 2) + '\n' : markdown);
  return 0;
}

if (require.main === module) {
  main(process.argv.slice(2)).then(
    (code) => (process.exitCode = code),
    (err: unknown) => {
      process.stderr.write(`bench micro: ${err instanceof Error ? err.message : String(err)}\n`);
      process.exitCode = 2;
    },
  );
}
