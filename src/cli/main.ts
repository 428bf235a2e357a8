#!/usr/bin/env node
/**
 * The `bulkhead` command. Each subcommand lives in its own module and is loaded only when used,
 * so `bulkhead doctor` works even where an unrelated subsystem's dependencies are missing.
 */
import { BulkheadError } from '../errors';

interface Subcommand {
  summary: string;
  load: () => Promise<{ run(argv: string[]): Promise<number> }>;
}

const subcommands: Record<string, Subcommand> = {
  doctor: {
    summary: 'what this host can run (KVM mode, Xen, vsock, QEMU); --json for machines',
    load: async () => import('./doctor'),
  },
  kernel: {
    summary: 'kernel build [--config zone|host]: build and cache a guest or host kernel',
    load: async () => import('./kernel'),
  },
  host: {
    summary: 'host run -- CMD...: run a command inside the emulated virtualization host',
    load: async () => import('./host'),
  },
  bench: {
    summary: 'run the benchmark suite across runners and write the report',
    load: async () => import('./bench'),
  },
};

function usage(): string {
  const lines = ['usage: bulkhead <command> [options]', '', 'commands:'];
  for (const [name, sub] of Object.entries(subcommands)) lines.push(`  ${name.padEnd(8)} ${sub.summary}`);
  return lines.join('\n');
}

async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (name === undefined || name === '-h' || name === '--help' || name === 'help') {
    process.stdout.write(usage() + '\n');
    return name === undefined ? 2 : 0;
  }
  const sub = subcommands[name];
  if (!sub) {
    process.stderr.write(`bulkhead: unknown command ${JSON.stringify(name)}\n\n${usage()}\n`);
    return 2;
  }
  const mod = await sub.load();
  return mod.run(rest);
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (err: unknown) => {
    if (err instanceof BulkheadError) {
      process.stderr.write(`bulkhead: ${err.message} [${err.code}]\n`);
    } else {
      process.stderr.write(`bulkhead: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
    }
    process.exitCode = 1;
  },
);
