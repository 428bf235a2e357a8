/**
 * A client of a keeper's emulated host (keeper.ts): the same HostSession as the owner's, over the
 * keeper's socket. stop() only disconnects; the keeper decides when the host ends.
 */
import { createHash } from 'node:crypto';
import { readdirSync, statSync, type Dirent } from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';
import { cacheRoot } from '../../util/cache';
import { packagePath } from '../../util/package-root';
import { runtimeDir } from '../../util/runtime-dir';
import type { Duplex } from 'node:stream';
import { InvalidStateError } from '../../errors';
import { ControlChannel, type HostProcess, type RunOptions, type RunResult, type SpawnOptions } from './channel';
import { EmulatedHostError } from './errors';
import { bulkheadCommand, type HostSession } from './host';
import { keeperStopReason, liveKeeper } from './keeper';
import { encodeMessage, LineDecoder, type AgentToHost } from './protocol';

/** The shared emulated host's size: its RAM and vCPUs bound the zones inside it. */
export const SHARED_HOST_MEMORY_MIB = 4096;
export const SHARED_HOST_CPUS = 2;

/**
 * The keeper directory of this machine's shared emulated host (zones, `bulkhead host start`). Its
 * name carries a fingerprint of this package's build: the host sees the package through a cached
 * view of the root, so a host booted before a rebuild would run the old code. A new build gets a
 * host of its own; the old one stops once idle.
 */
export function sharedHostDir(): string {
  return path.join(runtimeDir(), `host-${buildFingerprint()}`);
}

let fingerprint: string | undefined;

/** Hash of the name, size and mtime of every file of the built package (dist/ and the addon). */
export function buildFingerprint(): string {
  if (fingerprint) return fingerprint;
  const hash = createHash('sha256');
  const walk = (dir: string) => {
    let entries: Dirent[];
    try {
      entries = readdirSync(dir, { withFileTypes: true });
    } catch {
      return;
    }
    for (const e of entries.sort((a, b) => a.name.localeCompare(b.name))) {
      const p = path.join(dir, e.name);
      if (e.isDirectory()) walk(p);
      else if (e.isFile()) {
        const st = statSync(p);
        hash.update(`${p}\0${st.size}\0${st.mtimeMs}\n`);
      }
    }
  };
  for (const dir of ['dist', path.join('build', 'Release'), 'prebuilds']) walk(packagePath(dir));
  fingerprint = hash.digest('hex').slice(0, 12);
  return fingerprint;
}

/**
 * How the shared host boots, wherever it is started from. The cache is shared live (uncached 9p,
 * read-write), so images and kernels prepared outside after it booted are seen inside at once;
 * so are the directories in $BULKHEAD_HOST_SHARES (colon-separated; the test runner's exchange).
 */
export function sharedHostOptions(): { memoryMiB: number; cpus: number; buildKernel: true; writableDirs: string[] } {
  const extra = (process.env.BULKHEAD_HOST_SHARES ?? '').split(':').filter((d) => d !== '');
  return { memoryMiB: SHARED_HOST_MEMORY_MIB, cpus: SHARED_HOST_CPUS, buildKernel: true, writableDirs: [cacheRoot(), ...extra] };
}

export class SharedEmulatedHost implements HostSession {
  private constructor(
    private readonly channel: ControlChannel,
    private readonly socket: net.Socket,
    readonly kernelRelease: string,
  ) {}

  /**
   * Connects to the keeper running in `dir` (see ensureKeeper). With `idleUnref`, the connection
   * keeps this process alive only while commands or connections that hold it are open.
   */
  static async connect(dir: string, opts: { timeoutMs?: number; idleUnref?: boolean } = {}): Promise<SharedEmulatedHost> {
    const timeoutMs = opts.timeoutMs ?? 10_000;
    const info = liveKeeper(dir);
    if (!info) throw new EmulatedHostError('channel-lost', `no keeper is running in ${dir}`);
    const socket = await new Promise<net.Socket>((resolve, reject) => {
      const s = net.createConnection(info.socket, () => resolve(s));
      s.once('error', (err) => reject(new EmulatedHostError('channel-lost', `cannot reach the keeper at ${info.socket}: ${err.message}`)));
    });
    const { release, rest } = await handshake(socket, timeoutMs);
    const channel = new ControlChannel(
      socket,
      {
        describeLoss: () => {
          const why = keeperStopReason(dir, info.pid);
          return new EmulatedHostError('channel-lost', `the shared emulated host (keeper ${info.pid}) went away${why ? `: its keeper stopped it (${why})` : ''}`);
        },
        idleUnref: opts.idleUnref,
      },
      rest,
    );
    return new SharedEmulatedHost(channel, socket, release);
  }

  get running(): boolean {
    return this.channel.open;
  }

  run(argv: readonly string[], opts: RunOptions = {}): Promise<RunResult> {
    return this.channel.run(argv, opts);
  }

  spawn(argv: readonly string[], opts: SpawnOptions = {}): HostProcess {
    if (!this.channel.open) throw new InvalidStateError('start a command', 'disconnected', ['connected']);
    return this.channel.spawn(argv, opts);
  }

  connect(socketPath: string): Duplex {
    if (!this.channel.open) throw new InvalidStateError('connect to a socket', 'disconnected', ['connected']);
    return this.channel.connect(socketPath);
  }

  openSocket(socketPath: string): HostProcess {
    if (!this.channel.open) throw new InvalidStateError('connect to a socket', 'disconnected', ['connected']);
    return this.channel.openSocket(socketPath);
  }

  runNode(args: readonly string[], opts: RunOptions = {}): Promise<RunResult> {
    return this.run([process.execPath, ...args], opts);
  }

  async bulkhead(args: readonly string[], opts: RunOptions = {}): Promise<RunResult> {
    return this.run(...bulkheadCommand(args, opts));
  }

  async stop(): Promise<void> {
    this.channel.fail(new EmulatedHostError('channel-lost', 'disconnected from the shared emulated host'));
    this.socket.destroy();
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.stop();
  }
}

function handshake(socket: net.Socket, timeoutMs: number): Promise<{ release: string; rest: Buffer }> {
  return new Promise((resolve, reject) => {
    let rest = Buffer.alloc(0);
    let ready: string | undefined;
    const decoder = new LineDecoder<AgentToHost>((msg) => {
      if (msg.t === 'ready') ready = msg.release;
    });
    const timer = setTimeout(() => done(new EmulatedHostError('channel-lost', 'the keeper did not answer hello')), timeoutMs);
    const onData = (d: Buffer) => {
      const nl = d.indexOf(0x0a);
      decoder.push(nl >= 0 ? d.subarray(0, nl + 1) : d);
      if (ready !== undefined) {
        rest = Buffer.from(d.subarray(nl + 1));
        done();
      }
    };
    const onClose = () => done(new EmulatedHostError('channel-lost', 'the keeper closed the connection during hello'));
    function done(err?: Error) {
      clearTimeout(timer);
      socket.off('data', onData);
      socket.off('close', onClose);
      if (err) {
        socket.destroy();
        reject(err);
      } else resolve({ release: ready!, rest });
    }
    socket.on('data', onData);
    socket.on('close', onClose);
    socket.write(encodeMessage({ t: 'hello' }));
  });
}
