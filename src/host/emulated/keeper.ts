/**
 * A keeper: one process that owns a running emulated host and shares it with any number of client
 * processes over a Unix socket (`EmulatedHost.connect`), speaking protocol.ts unchanged. This is how
 * every end-to-end test file of a run uses one host, and how zones on a PVM machine reuse one host
 * across CLI calls instead of booting one each time.
 *
 * Its state directory holds:
 *   keeper.sock   the socket (0600)
 *   keeper.json   { pid, qemuPid, socket, kernelRelease, bootMs } once the host is up
 *   keeper.log    the keeper's own stderr and the host console's tail when it ends
 *   console.log   the host's whole serial console as it comes (its kernel's OOM kills and oopses
 *                 are how a process inside that died for no reason of its own says why), up to
 *                 CONSOLE_LOG_LIMIT bytes
 *
 * It stops the host and exits when its owner process dies, when it has had no client for
 * `idleTimeoutMs`, when a client sends `shutdown`, when the host itself ends, or when the host can
 * no longer be trusted (health.ts: its kernel faulted, it stopped answering, or a command it was told
 * to SIGKILL would not die). keeper.log's
 * `keeper <pid>: stopping (why)` line says which; clients quote it when their channel is lost.
 */
import { spawn } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, openSync, closeSync, readFileSync, rmSync, writeSync } from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { readJson, writeFileAtomic } from '../../util/cache';
import { acquireLock } from '../../util/lock';
import { packagePath } from '../../util/package-root';
import { isAlive } from '../../util/process';
import type { HostProcess } from './channel';
import { EmulatedHostError } from './errors';
import { startXenHost, type XenHostOptions } from '../xen/host';
import { KernelFaultWatch, startLivenessProbe, type LivenessProbeOptions } from './health';
import { EmulatedHost, type EmulatedHostOptions } from './host';
import { encodeMessage, LineDecoder, OUTPUT_WINDOW, PROTOCOL_VERSION, type AgentToHost, type HostToAgent } from './protocol';

export interface KeeperInfo {
  pid: number;
  /** The QEMU process of the host it keeps. */
  qemuPid: number;
  socket: string;
  kernelRelease: string;
  bootMs: number;
}

export interface KeeperOptions {
  /** The keeper's state directory (created). */
  dir: string;
  /** Stop when this process is gone (checked every second). */
  ownerPid?: number;
  /** Stop after this long without any client (default: never). */
  idleTimeoutMs?: number;
  host?: Omit<EmulatedHostOptions, 'signal' | 'onConsole' | 'machine'>;
  /** The liveness probe's settings (health.ts), or false for none. Default: `true` every 30 s, 2 misses of 60 s. */
  livenessProbe?: Pick<LivenessProbeOptions, 'intervalMs' | 'timeoutMs' | 'misses'> | false;
  /** How long a SIGKILLed command may take to end before the host counts as broken (default 60 s). */
  unkillableMs?: number;
  /** Keep a Xen test host (src/host/xen) instead of the emulated KVM host. */
  xen?: Omit<XenHostOptions, 'signal' | 'onConsole' | 'log'>;
}

export const KEEPER_INFO = 'keeper.json';
export const KEEPER_SOCKET = 'keeper.sock';
export const KEEPER_CONSOLE_LOG = 'console.log';
export const CONSOLE_LOG_LIMIT = 32 * 1024 * 1024;
/** After the first line of a kernel fault, how long the rest of the report gets to reach console.log. */
const FAULT_REPORT_MS = 2000;

/** Appends the host's console to console.log in `dir`, up to the limit (then one line says it stopped). */
function consoleLogger(dir: string): { write: (text: string) => void; close: () => void } {
  let fd: number | undefined = openSync(path.join(dir, KEEPER_CONSOLE_LOG), 'a', 0o600);
  let written = 0;
  const close = () => {
    if (fd !== undefined) closeSync(fd);
    fd = undefined;
  };
  const write = (text: string) => {
    if (written >= CONSOLE_LOG_LIMIT || fd === undefined) return;
    const bytes = Buffer.from(text);
    written += bytes.length;
    const tail = written >= CONSOLE_LOG_LIMIT ? Buffer.from(`\n[keeper: console.log reached ${CONSOLE_LOG_LIMIT} bytes; the rest is not kept]\n`) : Buffer.alloc(0);
    try {
      writeSync(fd, Buffer.concat([bytes, tail]));
    } catch {
      written = CONSOLE_LOG_LIMIT; // a full disk must not stop the host
    }
  };
  return { write, close };
}

/** Runs a keeper in this process until it stops (see the file comment). */
export async function runKeeper(opts: KeeperOptions): Promise<void> {
  mkdirSync(opts.dir, { recursive: true, mode: 0o700 });
  const socketPath = path.join(opts.dir, KEEPER_SOCKET);
  rmSync(socketPath, { force: true });
  const consoleLog = consoleLogger(opts.dir);
  // A fault of the host's kernel makes the host untrustworthy (health.ts): it is stopped a moment
  // later, once the report's trace has reached console.log, so its clients fail now instead of hanging.
  const faults = new KernelFaultWatch();
  let onFault: (line: string) => void = () => undefined;
  const onConsole = (text: string) => {
    consoleLog.write(text);
    const line = faults.push(text);
    if (line !== undefined) onFault(line);
  };
  let host: EmulatedHost;
  try {
    host = opts.xen ? await startXenHost({ ...opts.xen, onConsole }) : await EmulatedHost.start({ ...opts.host, onConsole });
  } catch (err) {
    consoleLog.close();
    throw err;
  }
  const clients = new Set<net.Socket>();
  let idleSince = Date.now();
  let stopping = false;

  const server = net.createServer((socket) => {
    if (stopping || !host.running) {
      socket.destroy(); // a client that raced the stop goes to the next keeper
      return;
    }
    clients.add(socket);
    serveClient(host, socket, {
      unkillableMs: opts.unkillableMs ?? UNKILLABLE_MS,
      onShutdown: () => void stop('a client asked'),
      onHostGone: () => void stop('the emulated host ended'),
      onUnkillable: (what) => void stop(`the emulated host is broken: ${what}`),
    });
    socket.on('close', () => {
      clients.delete(socket);
      if (clients.size === 0) idleSince = Date.now();
    });
  });
  await new Promise<void>((resolve, reject) => server.once('error', reject).listen(socketPath, resolve));
  chmodSync(socketPath, 0o600);
  const info: KeeperInfo = { pid: process.pid, qemuPid: host.pid ?? 0, socket: socketPath, kernelRelease: host.kernelRelease, bootMs: host.bootMs };
  writeFileAtomic(path.join(opts.dir, KEEPER_INFO), JSON.stringify(info) + '\n');

  let resolveDone!: () => void;
  const done = new Promise<void>((resolve) => (resolveDone = resolve));
  const stop = async (why: string): Promise<void> => {
    if (stopping) return;
    stopping = true;
    process.stderr.write(`keeper ${process.pid}: stopping (${why})\n`);
    // No longer live from here: a client that retries at once finds no keeper and starts a new one.
    rmSync(path.join(opts.dir, KEEPER_INFO), { force: true });
    rmSync(socketPath, { force: true });
    clearInterval(watch);
    stopProbe();
    server.close();
    for (const c of clients) c.destroy();
    await host.stop();
    consoleLog.close();
    resolveDone();
  };
  onFault = (line) => void sleep(FAULT_REPORT_MS).then(() => stop(`its kernel reported a fault: ${line}`));
  if (faults.fault !== undefined) onFault(faults.fault); // during boot
  const stopProbe =
    opts.livenessProbe === false
      ? () => undefined
      : startLivenessProbe({ ...opts.livenessProbe, run: (argv, o) => host.run(argv, o), onUnresponsive: (why) => void stop(`the emulated host is unresponsive: ${why}`) });
  const watch = setInterval(() => {
    if (!host.running) void stop('the emulated host ended');
    else if (opts.ownerPid !== undefined && !isAlive(opts.ownerPid)) void stop(`owner ${opts.ownerPid} is gone`);
    else if (opts.idleTimeoutMs !== undefined && clients.size === 0 && Date.now() - idleSince > opts.idleTimeoutMs) {
      void stop(`no client for ${opts.idleTimeoutMs} ms`);
    }
  }, 1000);
  await done;
}

/** A command (or socket connection) relayed for a client. */
interface Relayed {
  proc: HostProcess;
  /** Output bytes sent and not yet acknowledged by the client. */
  unacked: number;
  paused: boolean;
  /** What it is, for a verdict that names it. */
  what: string;
  /** Set once it was SIGKILLed: fires if it has not ended by then. */
  killTimer?: NodeJS.Timeout;
}

/**
 * Relays one client's commands to the host, with the protocol's flow control kept end to end. A
 * command that outlives a SIGKILL by `unkillableMs` is stuck in the host's kernel (health.ts), which
 * `onUnkillable` hears.
 */
function serveClient(
  host: EmulatedHost,
  socket: net.Socket,
  hooks: { unkillableMs: number; onShutdown: () => void; onHostGone: () => void; onUnkillable: (what: string) => void },
): void {
  const procs = new Map<number, Relayed>();
  const send = (msg: AgentToHost) => {
    if (!socket.destroyed) socket.write(encodeMessage(msg));
  };
  const start = (msg: Extract<HostToAgent, { t: 'run' | 'connect' }>) => {
    let proc: HostProcess;
    try {
      proc =
        msg.t === 'run'
          ? host.spawn(msg.argv, { cwd: msg.cwd, env: msg.env, stdin: msg.stdin ? 'pipe' : 'ignore' })
          : host.openSocket(msg.path);
    } catch (err) {
      if (!host.running) {
        hooks.onHostGone(); // says why in keeper.log before the client hears of it
        socket.destroy();
        return;
      }
      send({ t: 'out', id: msg.id, fd: 2, data: Buffer.from(`keeper: ${(err as Error).message}\n`).toString('base64') });
      send({ t: 'exit', id: msg.id, code: 126, signal: null });
      return;
    }
    const entry: Relayed = {
      proc,
      unacked: 0,
      paused: false,
      what: msg.t === 'run' ? msg.argv.join(' ').slice(0, 120) : `a connection to ${msg.path}`,
    };
    procs.set(msg.id, entry);
    const forward = (fd: 1 | 2) => (chunk: Buffer) => {
      send({ t: 'out', id: msg.id, fd, data: chunk.toString('base64') });
      entry.unacked += chunk.length;
      if (entry.unacked > OUTPUT_WINDOW && !entry.paused) {
        entry.paused = true;
        proc.stdout.pause();
        proc.stderr.pause();
      }
    };
    proc.stdout.on('data', forward(1));
    proc.stderr.on('data', forward(2));
    const ended = (s: NodeJS.ReadableStream) => new Promise<void>((resolve) => s.once('end', resolve).once('close', resolve));
    Promise.all([proc.wait(), ended(proc.stdout), ended(proc.stderr)]).then(
      ([end]) => {
        clearTimeout(entry.killTimer);
        procs.delete(msg.id);
        send({ t: 'exit', id: msg.id, code: end.exitCode, signal: end.signal });
      },
      () => {
        clearTimeout(entry.killTimer);
        procs.delete(msg.id);
        hooks.onHostGone(); // says why in keeper.log before the client hears of it
        socket.destroy(); // the host is gone: the client's channel reports it
      },
    );
  };
  const decoder = new LineDecoder<HostToAgent>(
    (msg) => {
      if (msg.t === 'hello') {
        send({ t: 'ready', protocol: PROTOCOL_VERSION, release: host.kernelRelease, nodeVersion: process.version, uptime: 0 });
      } else if (msg.t === 'run' || msg.t === 'connect') start(msg);
      else if (msg.t === 'shutdown') hooks.onShutdown();
      else {
        const entry = procs.get(msg.id);
        if (!entry) return;
        if (msg.t === 'signal') {
          entry.proc.kill(msg.signal as NodeJS.Signals);
          if (msg.signal === 'SIGKILL') entry.killTimer ??= unkillableTimer(entry.what, hooks);
        }
        else if (msg.t === 'stdin') {
          const bytes = Buffer.from(msg.data, 'base64');
          entry.proc.stdin?.write(bytes, () => send({ t: 'stdin-ack', id: msg.id, bytes: bytes.length }));
        } else if (msg.t === 'stdin-end') entry.proc.stdin?.end();
        else if (msg.t === 'ack') {
          entry.unacked = Math.max(0, entry.unacked - msg.bytes);
          if (entry.paused && entry.unacked <= OUTPUT_WINDOW / 2) {
            entry.paused = false;
            entry.proc.stdout.resume();
            entry.proc.stderr.resume();
          }
        }
      }
    },
    undefined,
    () => socket.destroy(),
  );
  socket.on('data', (d: Buffer) => decoder.push(d));
  socket.on('error', () => undefined);
  socket.on('close', () => {
    // Their ends still clear these timers: a kill the host cannot carry out is still a broken host.
    for (const entry of procs.values()) {
      entry.proc.kill('SIGKILL');
      entry.killTimer ??= unkillableTimer(entry.what, hooks);
    }
  });
}

/** How long a SIGKILLed command may take to end before its host counts as broken (health.ts). */
const UNKILLABLE_MS = 60_000;

function unkillableTimer(what: string, hooks: { unkillableMs: number; onUnkillable: (what: string) => void }): NodeJS.Timeout {
  const ms = hooks.unkillableMs;
  const timer = setTimeout(() => hooks.onUnkillable(`\`${what}\` was still running ${ms / 1000} s after SIGKILL (stuck in its kernel)`), ms);
  timer.unref();
  return timer;
}

export interface StartKeeperOptions extends KeeperOptions {
  /** How long to wait for the host to boot (default 180 s: the host kernel may be cold in cache). */
  startTimeoutMs?: number;
}

/**
 * The keeper of `dir`, started in the background (detached, its own log) unless one is already
 * running there. Concurrent callers wait for the same keeper. Returns its info.
 */
export async function ensureKeeper(opts: StartKeeperOptions): Promise<KeeperInfo> {
  mkdirSync(opts.dir, { recursive: true, mode: 0o700 });
  const running = liveKeeper(opts.dir);
  if (running) return running;
  const lock = await acquireLock(path.join(opts.dir, 'keeper.lock'));
  try {
    const raced = liveKeeper(opts.dir);
    if (raced) return raced;
    const main = packagePath('dist', 'cjs', 'host', 'emulated', 'keeper-main.js');
    if (!existsSync(main)) throw new EmulatedHostError('boot-failed', `${main} is missing: run npm run build:ts`);
    const logFile = path.join(opts.dir, 'keeper.log');
    const log = openSync(logFile, 'a');
    const child = spawn(process.execPath, [main, JSON.stringify(opts)], { detached: true, stdio: ['ignore', log, log] });
    closeSync(log);
    child.unref();
    const deadline = Date.now() + (opts.startTimeoutMs ?? 180_000);
    while (Date.now() < deadline) {
      const info = liveKeeper(opts.dir);
      if (info) return info;
      if (child.exitCode !== null || child.signalCode !== null) break;
      await sleep(100);
    }
    if (child.pid && isAlive(child.pid)) process.kill(child.pid, 'SIGKILL');
    const tail = existsSync(logFile) ? readFileSync(logFile, 'utf8').slice(-4000) : '';
    throw new EmulatedHostError('boot-failed', `the shared emulated host did not start (log ${logFile}):\n${tail}`);
  } finally {
    lock.release();
  }
}

/** Why keeper `pid` of `dir` stopped, from its log, or undefined when it did not say (yet). */
export function keeperStopReason(dir: string, pid: number): string | undefined {
  let log: string;
  try {
    log = readFileSync(path.join(dir, 'keeper.log'), 'utf8');
  } catch {
    return undefined;
  }
  const marker = `keeper ${pid}: stopping (`;
  const at = log.lastIndexOf(marker);
  if (at < 0) return undefined;
  const line = log.slice(at + marker.length).split('\n')[0] ?? '';
  return line.endsWith(')') ? line.slice(0, -1) : line;
}

/** The keeper running in `dir`, or undefined. */
export function liveKeeper(dir: string): KeeperInfo | undefined {
  const info = readJson<KeeperInfo>(path.join(dir, KEEPER_INFO));
  return info && isAlive(info.pid) && existsSync(info.socket) ? info : undefined;
}

/** Asks the keeper of `dir` to stop its host, and waits (bounded) until it has exited. */
export async function stopKeeper(dir: string, timeoutMs = 15_000): Promise<void> {
  const info = liveKeeper(dir);
  if (!info) return;
  await new Promise<void>((resolve) => {
    const s = net.createConnection(info.socket, () => s.end(encodeMessage({ t: 'shutdown' })));
    s.on('error', () => resolve());
    s.on('close', () => resolve());
  });
  const deadline = Date.now() + timeoutMs;
  while (isAlive(info.pid) && Date.now() < deadline) await sleep(100);
  if (isAlive(info.pid)) process.kill(info.pid, 'SIGKILL');
}
