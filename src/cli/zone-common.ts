/**
 * What the zone commands (run, exec, ps, logs, top, stop, rm) share: where zones are found, flag
 * values (memory sizes, K=V lists), the terminal, and how a process's end becomes an exit status.
 *
 * Zones are reached the way Docker reaches containers: by default through this host's state
 * directories (Zone.create/list/attach: a zone another process owns is reached through its
 * api.sock); with BULKHEAD_SERVER=<socket> (like DOCKER_HOST), through that `bulkhead serve`.
 */
import * as os from 'node:os';
import { InvalidConfigError } from '../errors';
import type { ZoneClient } from '../server/client';
import type { ZoneSpec } from '../zone/spec';
import type { ProcessEnd, ZoneInfo, ZoneProcess } from '../zone/types';
import { Zone } from '../zone/zone';

export interface ZoneSource {
  create(spec: ZoneSpec): Promise<Zone>;
  list(): Promise<ZoneInfo[]>;
  /** A zone by id, name or id prefix; `await using` it detaches (the zone keeps running). */
  attach(ref: string): Promise<Zone>;
  /** True when zones are owned by a server (no supervising process is needed for -d). */
  readonly served: boolean;
  close(): void;
}

export async function zoneSource(): Promise<ZoneSource> {
  const address = process.env.BULKHEAD_SERVER;
  if (!address) {
    return {
      create: (spec) => Zone.create(spec, { onProgress: (line) => process.stderr.write(`${line}\n`) }),
      list: () => Zone.list(),
      attach: (ref) => Zone.attach(ref),
      served: false,
      close: () => undefined,
    };
  }
  const { connect } = await import('../server/client');
  const client: ZoneClient = await connect(address);
  return {
    create: (spec) => client.create(spec),
    list: () => client.list(),
    attach: (ref) => client.get(ref),
    served: true,
    close: () => client.close(),
  };
}

let toldEmulated = false;

/** Says once per process, on stderr, that zones run inside the emulated host (and so start slowly). */
export function noteBackend(zone: Zone): void {
  if (zone.backend !== 'emulated-host' || toldEmulated) return;
  toldEmulated = true;
  process.stderr.write(
    'bulkhead: zones run inside the emulated host (QEMU TCG with nested SVM), because this machine has no hardware virtualization that can boot them (see bulkhead doctor); expect slow starts\n',
  );
}

/** `256` (MiB), `128m`, `1g`, `512MiB`, `2G`: a size in whole MiB. */
export function parseMemory(flag: string, text: string | undefined): number | undefined {
  if (text === undefined) return undefined;
  const m = /^(\d+(?:\.\d+)?)\s*([kmgt]?)(i?b)?$/i.exec(text.trim());
  const factor = { '': 1, k: 1 / 1024, m: 1, g: 1024, t: 1024 * 1024 }[(m?.[2] ?? '').toLowerCase() as '' | 'k' | 'm' | 'g' | 't'];
  const mib = m ? Number(m[1]) * factor : NaN;
  if (!Number.isInteger(mib) || mib <= 0) throw new InvalidConfigError(flag, text, 'a size in whole MiB: 256 (MiB), 128m, 1g');
  return mib;
}

/** `-e K=V` / `--label K=V` lists; `-e K` alone takes K from this environment, as Docker does. */
export function parsePairs(flag: string, items: readonly string[] | undefined, fromEnv: boolean): Record<string, string> {
  const out: Record<string, string> = {};
  for (const item of items ?? []) {
    const eq = item.indexOf('=');
    if (eq > 0) out[item.slice(0, eq)] = item.slice(eq + 1);
    else if (eq < 0 && fromEnv && item && process.env[item] !== undefined) out[item] = process.env[item]!;
    else if (!(eq < 0 && fromEnv)) throw new InvalidConfigError(flag, item, 'KEY=VALUE');
  }
  return out;
}

/** The exit status a shell would show for a process's end: its code, or 128 + the signal. */
export function exitStatus(end: Pick<ProcessEnd, 'exitCode' | 'signal'>): number {
  if (end.exitCode !== null) return end.exitCode;
  return 128 + ((end.signal && os.constants.signals[end.signal as NodeJS.Signals]) || 1);
}

/**
 * Connects this terminal to a zone process: stdin (with -i; in raw mode with a tty), stdout and
 * stderr, terminal resizes, and Ctrl-C etc. passed on (a tty passes them as bytes). Resolves with
 * its end; the terminal is restored whatever happens.
 */
export async function attachTerminal(proc: ZoneProcess, opts: { interactive: boolean; tty: boolean }): Promise<ProcessEnd> {
  const stdin = process.stdin;
  const raw = opts.tty && opts.interactive && stdin.isTTY;
  const onResize = () => {
    if (process.stdout.columns && process.stdout.rows) proc.resize(process.stdout.columns, process.stdout.rows);
  };
  const forward = (signal: NodeJS.Signals) => () => proc.kill(signal);
  const forwarders = (['SIGINT', 'SIGTERM', 'SIGHUP'] as const).map((s) => [s, forward(s)] as const);
  if (raw) stdin.setRawMode(true);
  if (opts.tty) process.stdout.on('resize', onResize);
  if (!raw) for (const [s, f] of forwarders) process.on(s, f);
  try {
    if (opts.interactive) {
      stdin.pipe(proc.stdin);
    } else proc.stdin.end();
    proc.stdout.pipe(process.stdout, { end: false });
    proc.stderr.pipe(process.stderr, { end: false });
    const outputs = Promise.all([ended(proc.stdout), ended(proc.stderr)]);
    const end = await proc.wait();
    await outputs;
    return end;
  } finally {
    if (opts.interactive) {
      stdin.unpipe(proc.stdin);
      stdin.pause();
    }
    if (raw) stdin.setRawMode(false);
    process.stdout.off('resize', onResize);
    for (const [s, f] of forwarders) process.off(s, f);
  }
}

/** The terminal size for a new tty process. */
export function terminalSize(): { cols: number; rows: number } {
  return { cols: process.stdout.columns || 80, rows: process.stdout.rows || 24 };
}

function ended(stream: NodeJS.ReadableStream & { readableEnded?: boolean; destroyed?: boolean }): Promise<void> {
  if (stream.readableEnded || stream.destroyed) return Promise.resolve();
  return new Promise((resolve) => {
    stream.once('end', resolve);
    stream.once('close', resolve);
  });
}

/** Detaches from a zone reached through a server or api.sock (a no-op for one this process runs). */
export function detach(zone: Zone): void {
  (zone as Zone & { detach?: () => void }).detach?.();
}
