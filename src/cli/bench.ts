/**
 * `bulkhead bench`: run the workload across runners and write results.json, report.md and chart.svg.
 * Progress goes to stderr; with --json the results also go to stdout. SIGINT/SIGTERM abort the run,
 * undo every runner's setup (containers, private dockerd, bundles, temp dirs), then exit 130/143.
 */
import { setMaxListeners } from 'node:events';
import { InvalidConfigError } from '../errors';
import { DEFAULT_RUNS, runBenchmark } from '../bench/method/run';
import { writeReport } from '../bench/report';
import { defaultOutDir } from '../bench/report/outputs';
import { runLifecycle } from '../bench/lifecycle/run';
import { writeLifecycleReport } from '../bench/lifecycle/report';
import { RUNNER_NAMES, type RunnerLocation, type RunnerName } from '../bench/runners/runner';
import { WORKLOAD_GROUPS, type WorkloadGroup } from '../bench/workload';
import { defineCommand, integerFlag, listFlag, parseCommand, type Parsed } from './args';

const benchCommand = {
  name: 'bench',
  summary: 'run one static workload bare, under Docker, runc, crun and gVisor (and zones), interleaved, into a report',
  options: {
    only: { type: 'string', value: 'GROUPS', description: `test groups, comma-separated: ${WORKLOAD_GROUPS.join(',')} (default: all)` },
    runners: { type: 'string', value: 'NAMES', description: `runners, comma-separated: ${RUNNER_NAMES.join(',')} (default: all)` },
    where: { type: 'string', value: 'LOCATIONS', description: 'host, emulated-host (default: host, plus emulated-host where /dev/kvm cannot run zones)' },
    runs: { type: 'string', value: 'N', description: `counted runs per runner (default ${DEFAULT_RUNS}; use >= 5 for published figures)` },
    warmups: { type: 'string', value: 'N', description: 'uncounted warm-up rounds (default 1)' },
    scale: { type: 'string', value: 'F', description: 'multiplier on every iteration count (default 1; 0.01 for a quick look)' },
    seed: { type: 'string', value: 'N', description: 'seed of the per-round shuffle of the runner order (default: a fresh one, recorded in results.json)' },
    lifecycle: { type: 'boolean', description: 'the lifecycle figures instead (zone vs docker/runc start-up, exec, stream, idle memory, density); --runs = rounds' },
    'stream-bytes': { type: 'string', value: 'N', description: 'with --lifecycle: bytes through cat (default 268435456 = 256 MiB)' },
    densities: { type: 'string', value: 'N,N', description: 'with --lifecycle: sandboxes started at once (default 1,4,16)' },
    json: { type: 'boolean', description: 'also print results.json to stdout' },
    out: { type: 'string', value: 'DIR', description: 'output directory (default $TMPDIR/bulkhead-bench-<timestamp>: never the source tree)' },
  },
} as const;

interface Args {
  groups: WorkloadGroup[];
  runners: RunnerName[];
  locations?: RunnerLocation[];
  runs: number;
  warmups: number;
  scale: number;
  seed?: number;
  lifecycle: boolean;
  streamBytes?: number;
  densities?: number[];
  json: boolean;
  out: string;
}

/** The benchmark's settings from argv (for tests; the command parses through defineCommand). */
export function parseBenchArgs(argv: readonly string[]): Args | 'help' {
  const parsed = parseCommand({ ...benchCommand, run: async () => 0 }, argv);
  return parsed === 'help' ? 'help' : benchArgs(parsed.values);
}

function benchArgs(v: Parsed<typeof benchCommand.options>['values']): Args {
  const scale = v.scale === undefined ? 1 : Number(v.scale);
  if (!(scale > 0)) throw new InvalidConfigError('--scale', v.scale, 'a number > 0');
  return {
    groups: listFlag('only', v.only, WORKLOAD_GROUPS) ?? [...WORKLOAD_GROUPS],
    runners: listFlag('runners', v.runners, RUNNER_NAMES) ?? [...RUNNER_NAMES],
    locations: listFlag('where', v.where, ['host', 'emulated-host'] as const),
    runs: integerFlag('runs', v.runs, 1) ?? DEFAULT_RUNS,
    warmups: integerFlag('warmups', v.warmups, 0) ?? 1,
    scale,
    seed: integerFlag('seed', v.seed, 0),
    lifecycle: v.lifecycle ?? false,
    streamBytes: integerFlag('stream-bytes', v['stream-bytes'], 1),
    densities: v.densities === undefined ? undefined : v.densities.split(',').map((n) => integerFlag('densities', n, 1)!),
    json: v.json ?? false,
    // Not the working directory by default: run from a checkout, results would land in the source tree.
    out: v.out ?? defaultOutDir('bench'),
  };
}

async function runLifecycleCommand(args: Args, signal: AbortSignal): Promise<number> {
  const where = args.locations?.length === 1 ? args.locations[0] : undefined;
  const results = await runLifecycle({
    rounds: args.runs,
    warmups: args.warmups,
    streamBytes: args.streamBytes,
    densities: args.densities,
    where,
    seed: args.seed,
    signal,
    log: (m) => process.stderr.write(`bench: ${m}\n`),
  });
  const written = writeLifecycleReport(results, args.out);
  if (args.json) process.stdout.write(JSON.stringify(results, null, 2) + '\n');
  process.stderr.write(`bench: wrote ${written.reportMd}, ${written.chartSvg}, ${written.resultsJson}\n`);
  return results.sandboxes.some((s) => s.status === 'ok') ? 0 : 1;
}

export const command = defineCommand({ ...benchCommand, run: async ({ values }) => runBench(benchArgs(values)) });

async function runBench(args: Args): Promise<number> {
  const controller = new AbortController();
  // Every sandbox of a density round (up to 16 zones or containers at once) listens on this one
  // signal: more than Node's default of 10 listeners is expected here, not a leak.
  setMaxListeners(256, controller.signal);
  let stoppedBy: NodeJS.Signals | undefined;
  const onSignal = (signal: NodeJS.Signals): void => {
    if (stoppedBy) return; // already stopping; cleanup is under way
    stoppedBy = signal;
    process.stderr.write(`\nbulkhead bench: ${signal}: stopping and cleaning up ...\n`);
    controller.abort();
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  try {
    if (args.lifecycle) return await runLifecycleCommand(args, controller.signal);
    const results = await runBenchmark({
      groups: args.groups,
      runners: args.runners,
      locations: args.locations,
      runs: args.runs,
      warmups: args.warmups,
      scale: args.scale,
      seed: args.seed,
      signal: controller.signal,
      log: (m) => process.stderr.write(`bench: ${m}\n`),
    });
    const written = writeReport(results, args.out);
    if (args.json) process.stdout.write(JSON.stringify(results, null, 2) + '\n');
    process.stderr.write(`bench: wrote ${written.reportMd}, ${written.chartSvg}, ${written.resultsJson}\n`);
    return results.runners.some((r) => r.status === 'ok') ? 0 : 1;
  } catch (err) {
    if (stoppedBy) {
      process.stderr.write(`bulkhead bench: aborted by ${stoppedBy}; everything it set up has been removed\n`);
      return stoppedBy === 'SIGINT' ? 130 : 143;
    }
    throw err;
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  }
}
