/**
 * `bulkhead bench`: run the workload across runners and write results.json, report.md and chart.svg.
 * Progress goes to stderr; with --json the results also go to stdout. SIGINT/SIGTERM abort the run,
 * undo every runner's setup (containers, private dockerd, bundles, temp dirs), then exit 130/143.
 */
import * as path from 'node:path';
import { InvalidConfigError } from '../errors';
import { DEFAULT_RUNS, runBenchmark } from '../bench/method/run';
import { writeReport } from '../bench/report';
import { RUNNER_NAMES, type RunnerLocation, type RunnerName } from '../bench/runners/runner';
import { WORKLOAD_GROUPS, type WorkloadGroup } from '../bench/workload';

const USAGE = `usage: bulkhead bench [options]

  --only GROUPS      test groups, comma-separated: ${WORKLOAD_GROUPS.join(',')} (default: all)
  --runners NAMES    runners, comma-separated: ${RUNNER_NAMES.join(',')} (default: all)
  --where LOCATIONS  host, emulated-host (default: host, plus emulated-host where /dev/kvm cannot run zones)
  --runs N           counted runs per runner (default ${DEFAULT_RUNS}; use >= 5 for published figures)
  --warmups N        uncounted warm-up rounds (default 1)
  --scale F          multiplier on every iteration count (default 1; 0.01 for a quick look)
  --json             also print results.json to stdout
  --out DIR          output directory (default ./bench-results/<timestamp>)
`;

interface Args {
  groups: WorkloadGroup[];
  runners: RunnerName[];
  locations?: RunnerLocation[];
  runs: number;
  warmups: number;
  scale: number;
  json: boolean;
  out: string;
}

export function parseBenchArgs(argv: readonly string[]): Args | 'help' {
  const args: Args = {
    groups: [...WORKLOAD_GROUPS],
    runners: [...RUNNER_NAMES],
    runs: DEFAULT_RUNS,
    warmups: 1,
    scale: 1,
    json: false,
    out: path.join('bench-results', new Date().toISOString().replace(/[:.]/g, '-').slice(0, 19)),
  };
  for (let i = 0; i < argv.length; i++) {
    const flag = argv[i]!;
    const value = (): string => {
      const v = argv[++i];
      if (v === undefined) throw new InvalidConfigError(flag, undefined, 'a value after the flag');
      return v;
    };
    switch (flag) {
      case '-h':
      case '--help':
        return 'help';
      case '--only':
        args.groups = list(flag, value(), WORKLOAD_GROUPS);
        break;
      case '--runners':
        args.runners = list(flag, value(), RUNNER_NAMES);
        break;
      case '--where':
        args.locations = list(flag, value(), ['host', 'emulated-host'] as const);
        break;
      case '--runs':
        args.runs = integer(flag, value(), 1);
        break;
      case '--warmups':
        args.warmups = integer(flag, value(), 0);
        break;
      case '--scale': {
        const v = value();
        args.scale = Number(v);
        if (!(args.scale > 0)) throw new InvalidConfigError(flag, v, 'a number > 0');
        break;
      }
      case '--json':
        args.json = true;
        break;
      case '--out':
        args.out = value();
        break;
      default:
        throw new InvalidConfigError('option', flag, '--only, --runners, --where, --runs, --warmups, --scale, --json, --out');
    }
  }
  return args;
}

export async function run(argv: string[]): Promise<number> {
  const args = parseBenchArgs(argv);
  if (args === 'help') {
    process.stdout.write(USAGE);
    return 0;
  }
  const controller = new AbortController();
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
    const results = await runBenchmark({
      groups: args.groups,
      runners: args.runners,
      locations: args.locations,
      runs: args.runs,
      warmups: args.warmups,
      scale: args.scale,
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

function list<T extends string>(flag: string, value: string, allowed: readonly T[]): T[] {
  const items = value.split(',').map((s) => s.trim()).filter(Boolean);
  for (const item of items) if (!allowed.includes(item as T)) throw new InvalidConfigError(flag, item, allowed.join(', '));
  if (items.length === 0) throw new InvalidConfigError(flag, value, `one or more of ${allowed.join(', ')}`);
  return items as T[];
}

function integer(flag: string, value: string, min: number): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < min) throw new InvalidConfigError(flag, value, `an integer >= ${min}`);
  return n;
}
