#!/usr/bin/env node
/**
 * The `bulkhead` command. Each subcommand lives in its own module, parses its arguments through
 * ./args.ts, and is loaded only when used, so `bulkhead doctor` works even where an unrelated
 * subsystem's dependencies are missing.
 */
import { BulkheadError } from '../errors';
import type { Command } from './args';

interface Entry {
  summary: string;
  load: () => Promise<Command>;
  /** Internal: not listed in the usage (still parsed like any other). */
  hidden?: boolean;
}

const commands: Record<string, Entry> = {
  doctor: { summary: 'what this host can run (KVM mode, Xen, vsock, QEMU); --json for machines', load: async () => (await import('./doctor')).command },
  kernel: { summary: 'build, find, list kernels; show or move the kernel-source pin', load: async () => (await import('./kernel')).command },
  host: { summary: 'the emulated virtualization host: run a command in it, or keep a shared one', load: async () => (await import('./host')).command },
  image: { summary: 'the image store: import, pull, ls, rm, path', load: async () => (await import('./image')).command },
  bench: { summary: 'run the benchmark suite across runners and write the report', load: async () => (await import('./bench')).command },
  run: { summary: 'run a command in a new zone from an image (Docker habits: --rm -i -t -e -m -d)', load: async () => (await import('./run')).command },
  exec: { summary: 'run a command in a running zone', load: async () => (await import('./exec')).command },
  ps: { summary: 'list zones', load: async () => (await import('./ps')).command },
  logs: { summary: "a zone's console and events (-f follows)", load: async () => (await import('./logs')).command },
  top: { summary: "a zone's processes, memory and CPU", load: async () => (await import('./top')).command },
  stop: { summary: 'stop zones', load: async () => (await import('./stop')).command },
  rm: { summary: 'remove zones', load: async () => (await import('./rm')).command },
  serve: { summary: 'serve the Zone API over HTTP on a Unix socket', load: async () => (await import('./serve')).command },
  __supervise: { summary: 'internal: the process that owns a zone started with run -d', load: async () => (await import('./supervise')).command, hidden: true },
};

/** The top-level command names, for tests that check every subcommand's --help. */
export const COMMAND_NAMES = Object.keys(commands).filter((n) => !commands[n]!.hidden);

/** Every runnable command, groups expanded (`kernel build`, …), for tests. */
export async function allCommands(): Promise<Command[]> {
  const out: Command[] = [];
  for (const entry of Object.values(commands)) {
    const c = await entry.load();
    out.push(...(c.subcommands ?? [c]));
  }
  return out;
}

function usage(): string {
  const lines = ['usage: bulkhead <command> [options]', '', 'commands:'];
  for (const [name, entry] of Object.entries(commands)) if (!entry.hidden) lines.push(`  ${name.padEnd(8)} ${entry.summary}`);
  lines.push('', 'bulkhead <command> --help shows its options.');
  return lines.join('\n') + '\n';
}

async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (name === undefined || name === '-h' || name === '--help' || name === 'help') {
    (name === undefined ? process.stderr : process.stdout).write(usage());
    return name === undefined ? 2 : 0;
  }
  const entry = commands[name];
  if (!entry) {
    process.stderr.write(`bulkhead: unknown command ${JSON.stringify(name)}; valid: ${COMMAND_NAMES.join(', ')}\n\n${usage()}`);
    return 2;
  }
  return (await entry.load()).main(rest);
}

if (require.main === module) {
  main(process.argv.slice(2)).then(
    (code) => {
      process.exitCode = code;
    },
    (err: unknown) => {
      if (err instanceof BulkheadError) {
        process.stderr.write(`bulkhead: ${err.message} [${err.code}]\n`);
        process.exitCode = err.code === 'INVALID_CONFIG' ? 2 : 1;
      } else {
        process.stderr.write(`bulkhead: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
        process.exitCode = 1;
      }
    },
  );
}
