/**
 * `bulkhead kernel build [--config zone|host|FILE] [--jobs N] [--json]`: build (or find in the
 * cache) a kernel and print its vmlinux path as the last stdout line.
 * `bulkhead kernel path [--config ...]`: print the cached vmlinux path, exit 1 if not built.
 * `bulkhead kernel list`: the cached kernels.
 */
import { buildKernel, findKernel, listKernels, type KernelArtifacts } from '../kernel';

const USAGE = `usage:
  bulkhead kernel build [--config zone|host|FILE] [--jobs N] [--json]
  bulkhead kernel path  [--config zone|host|FILE]
  bulkhead kernel list`;

interface Flags {
  config: string;
  jobs?: number;
  json: boolean;
}

function parseFlags(args: string[]): Flags | string {
  const flags: Flags = { config: 'zone', json: false };
  for (let i = 0; i < args.length; i++) {
    const arg = args[i]!;
    const [name, inline] = arg.startsWith('--') && arg.includes('=') ? arg.split(/=(.*)/s) : [arg, undefined];
    const value = () => inline ?? args[++i];
    if (name === '--config' || name === '-c') {
      const v = value();
      if (!v) return '--config needs a value';
      flags.config = v;
    } else if (name === '--jobs' || name === '-j') {
      const n = Number(value());
      if (!Number.isInteger(n) || n < 1) return '--jobs needs a positive integer';
      flags.jobs = n;
    } else if (name === '--json') {
      flags.json = true;
    } else {
      return `unknown option ${JSON.stringify(arg)}`;
    }
  }
  return flags;
}

function print(k: KernelArtifacts, json: boolean): void {
  if (json) process.stdout.write(JSON.stringify({ ...k }, null, 2) + '\n');
  process.stdout.write(k.vmlinux + '\n');
}

export async function run(argv: string[]): Promise<number> {
  const [sub, ...rest] = argv;
  if (sub === undefined || sub === '-h' || sub === '--help') {
    process.stdout.write(USAGE + '\n');
    return sub === undefined ? 2 : 0;
  }
  if (sub === 'list') {
    for (const k of listKernels()) {
      process.stdout.write(`${k.info.config.padEnd(6)} ${k.info.release.padEnd(12)} ${k.dir}\n`);
    }
    return 0;
  }
  const flags = parseFlags(rest);
  if (typeof flags === 'string') {
    process.stderr.write(`bulkhead kernel: ${flags}\n${USAGE}\n`);
    return 2;
  }
  if (sub === 'build') {
    const k = await buildKernel({ config: flags.config, jobs: flags.jobs });
    if (k.cached) process.stderr.write(`kernel ${flags.config}: cached (${k.info.release}, ${k.key})\n`);
    print(k, flags.json);
    return 0;
  }
  if (sub === 'path') {
    const k = await findKernel({ config: flags.config });
    if (!k) {
      process.stderr.write(`bulkhead kernel: no ${flags.config} kernel built yet; run: bulkhead kernel build --config ${flags.config}\n`);
      return 1;
    }
    print(k, flags.json);
    return 0;
  }
  process.stderr.write(`bulkhead kernel: unknown subcommand ${JSON.stringify(sub)}\n${USAGE}\n`);
  return 2;
}
