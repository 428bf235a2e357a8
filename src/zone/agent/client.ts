/**
 * AgentClient: the host's side of one session with a zone's agent, over any connected Duplex.
 *
 *   await using agent = await AgentClient.connect(socket);
 *   const p = await agent.exec(['sh', '-c', 'echo hi'], { env: { A: '1' } });
 *   p.stdout.pipe(process.stdout);
 *   const { exitCode } = await p.wait();
 *
 * Every call rejects at once with the session's error (AgentProtocolError, AgentDisconnectedError)
 * when the session dies; the agent's refusals are AgentRequestError; bad arguments are
 * InvalidConfigError. Only the handshake has a deadline.
 */
import type { Duplex, Readable } from 'node:stream';
import { InvalidConfigError } from '../../errors';
import { AgentProcess } from './process';
import {
  decodeMetrics,
  encodeExec,
  Op,
  PATH_MAX,
  readExitStatus,
  readStat,
  Writer,
  type DirEntry,
  type ExitStatus,
  type FileStat,
  type GuestMetrics,
  type HelloOk,
  type MainExitEvent,
  type OpCode,
  type Reader,
} from './protocol';
import { EventSubscription, FileReadStream, fileWriteHandler, listHandler, oneShot } from './requests';
import { AgentSession, type ConnectOptions, type StreamHandler } from './session';
import {
  checkArgv,
  checkCwd,
  checkDimension,
  checkEnv,
  checkHostname,
  checkMode,
  checkPath,
  checkRequestSize,
  checkSignal,
  checkUser,
} from './validate';

export interface ExecOptions {
  /** Exactly the environment of the process (the caller merges image and spec); PATH and HOME are added when absent. */
  env?: Record<string, string> | readonly string[];
  /** Absolute working directory (default /). */
  cwd?: string;
  /** "name", "uid", "name:group" or "uid:gid", resolved against the zone's /etc/passwd and /etc/group (default root). */
  user?: string;
  /** A pty instead of pipes (stdout and stderr merged); its initial size (default 24x80). */
  tty?: boolean | { rows: number; cols: number };
  /** A stdin pipe (default false: /dev/null). Always on with a tty. */
  stdin?: boolean;
}

export interface LaunchOptions extends ExecOptions {
  hostname?: string;
  /** Keep the zone up after the main process exits (default false: it powers off). */
  stayUp?: boolean;
  /** The main process writes to the zone console instead of this stream. */
  console?: boolean;
}

export interface WriteFileOptions {
  /** Mode of a file this creates (default 0o644); an existing file keeps its own. */
  mode?: number;
  /** 'truncate' (default), 'append', or 'exclusive' (fail if it exists). */
  how?: 'truncate' | 'append' | 'exclusive';
  /** Create missing parent directories (default false). */
  parents?: boolean;
}

export type FileData = Buffer | Uint8Array | string | Readable | AsyncIterable<Buffer | Uint8Array | string>;

const U64_MAX = (1n << 64n) - 1n;

export class AgentClient implements AsyncDisposable {
  private constructor(readonly session: AgentSession) {}

  static async connect(io: Duplex, opts?: ConnectOptions): Promise<AgentClient> {
    return new AgentClient(await AgentSession.connect(io, opts));
  }

  /** What the agent said in its handshake: version, limits, pid, main process state. */
  get info(): HelloOk {
    return this.session.hello!;
  }

  /** Resolves with the error that ended the session (never rejects). */
  get closed(): Promise<Error> {
    return this.session.closed;
  }

  get isOpen(): boolean {
    return this.session.isOpen;
  }

  /** performance.now() of the last bytes the agent sent. */
  get lastHeardAt(): number {
    return this.session.lastHeardAt;
  }

  /** Round trip time in ms. */
  ping(): Promise<number> {
    return this.session.ping();
  }

  close(): void {
    this.session.close();
  }

  async [Symbol.asyncDispose](): Promise<void> {
    this.close();
  }

  /** Starts a command. Resolves once it runs (with its pid); rejects if it cannot start. */
  exec(argv: readonly string[], opts: ExecOptions = {}): Promise<AgentProcess> {
    return this.startProcess(Op.EXEC, argv, opts);
  }

  /** Starts the zone's main process (once per zone). Its exit is also an event for every subscriber. */
  launch(argv: readonly string[], opts: LaunchOptions = {}): Promise<AgentProcess> {
    return this.startProcess(Op.LAUNCH, argv, opts);
  }

  private async startProcess(op: typeof Op.EXEC | typeof Op.LAUNCH, argv: readonly string[], opts: LaunchOptions): Promise<AgentProcess> {
    const tty = opts.tty === undefined || opts.tty === false ? undefined : opts.tty === true ? { rows: 24, cols: 80 } : opts.tty;
    const payload = checkRequestSize(
      'argv/env',
      encodeExec(op, {
        argv: checkArgv(argv),
        env: checkEnv(opts.env),
        cwd: checkCwd(opts.cwd),
        user: checkUser(opts.user),
        tty: tty !== undefined,
        stdin: opts.stdin === true || tty !== undefined,
        rows: tty ? checkDimension('tty.rows', tty.rows) : 0,
        cols: tty ? checkDimension('tty.cols', tty.cols) : 0,
        hostname: op === Op.LAUNCH ? checkHostname(opts.hostname) : undefined,
        stayUp: opts.stayUp === true,
        console: opts.console === true,
      }),
    );
    const console = op === Op.LAUNCH && opts.console === true;
    const proc = new AgentProcess(this.session, { stdin: !console && opts.stdin === true, tty: !console && tty !== undefined });
    return proc.start((handler) => this.session.open(op, payload, handler));
  }

  /** Exec and collect: stdout, stderr and the exit status, with `stdin` written and closed. */
  async run(argv: readonly string[], opts: ExecOptions & { input?: Buffer | string } = {}): Promise<ExitStatus & { stdout: Buffer; stderr: Buffer }> {
    const p = await this.exec(argv, { ...opts, stdin: opts.input !== undefined || opts.stdin });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    p.stdout.on('data', (b: Buffer) => out.push(b));
    p.stderr.on('data', (b: Buffer) => err.push(b));
    if (opts.input !== undefined) p.stdin!.end(opts.input);
    const ended = (r: Readable) => new Promise<void>((resolve) => (r.readableEnded || r.destroyed ? resolve() : r.once('end', resolve).once('close', resolve)));
    const status = await p.wait();
    await Promise.all([ended(p.stdout), ended(p.stderr)]); // bytes pushed before END are emitted by then
    return { ...status, stdout: Buffer.concat(out), stderr: Buffer.concat(err) };
  }

  private request<T>(op: OpCode, payload: Buffer, decode: (r: Reader) => T, what: string): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      this.session.open(op, payload, oneShot(decode, what, { resolve, reject })).catch(reject);
    });
  }

  /** Signals the main process. */
  signalMain(signal: string | number = 'SIGTERM'): Promise<void> {
    return this.request(Op.SIGNAL_MAIN, new Writer().u8(Op.SIGNAL_MAIN).u32(checkSignal(signal)).done(), () => undefined, 'SIGNAL_MAIN');
  }

  /** Asks the agent to end the zone (it answers, flushes, then powers off or reboots). */
  shutdown(action: 'power-off' | 'reboot' = 'power-off'): Promise<void> {
    if (action !== 'power-off' && action !== 'reboot') throw new InvalidConfigError('action', action, "'power-off' or 'reboot'");
    return this.request(Op.SHUTDOWN, new Writer().u8(Op.SHUTDOWN).u8(action === 'reboot' ? 1 : 0).done(), () => undefined, 'SHUTDOWN');
  }

  metrics(): Promise<GuestMetrics> {
    return new Promise<GuestMetrics>((resolve, reject) => {
      const handler: StreamHandler = {
        ...oneShot(() => undefined, 'METRICS', { resolve: () => undefined, reject }),
        onEnd: (p) => resolve(decodeMetrics(p)),
      };
      this.session.open(Op.METRICS, Buffer.from([Op.METRICS]), handler).catch(reject);
    });
  }

  /** Subscribes to the agent's events (the main process's exit; sent at once if it already exited). */
  async events(): Promise<EventSubscription> {
    const sub = new EventSubscription((id) => this.session.cancel(id));
    sub.id = await this.session.open(Op.EVENTS, Buffer.from([Op.EVENTS]), sub.handler());
    await sub.ready;
    return sub;
  }

  /** Waits for the main process's exit (no deadline). */
  async waitForMainExit(): Promise<MainExitEvent> {
    const sub = await this.events();
    try {
      const r = await sub.next();
      if (r.done) throw new InvalidConfigError('events', 'closed', 'an open subscription');
      return r.value;
    } finally {
      sub.close();
    }
  }

  // ---- files --------------------------------------------------------------------------

  stat(path: string, opts: { follow?: boolean } = {}): Promise<FileStat> {
    const payload = new Writer().u8(Op.STAT).str(checkPath('path', path)).u8(opts.follow === false ? 0 : 1).done();
    return this.request(Op.STAT, payload, readStat, 'STAT');
  }

  async list(path: string): Promise<DirEntry[]> {
    const payload = new Writer().u8(Op.LIST).str(checkPath('path', path)).done();
    const { entries } = await new Promise<{ entries: DirEntry[]; truncated: boolean }>((resolve, reject) => {
      this.session.open(Op.LIST, payload, listHandler({ resolve, reject })).catch(reject);
    });
    return entries;
  }

  mkdir(path: string, opts: { mode?: number; parents?: boolean } = {}): Promise<void> {
    const payload = new Writer()
      .u8(Op.MKDIR)
      .str(checkPath('path', path))
      .u32(checkMode('mode', opts.mode, 0o755))
      .u8(opts.parents ? 1 : 0)
      .done();
    return this.request(Op.MKDIR, payload, () => undefined, 'MKDIR');
  }

  remove(path: string, opts: { recursive?: boolean } = {}): Promise<void> {
    const payload = new Writer().u8(Op.REMOVE).str(checkPath('path', path)).u8(opts.recursive ? 1 : 0).done();
    return this.request(Op.REMOVE, payload, () => undefined, 'REMOVE');
  }

  rename(from: string, to: string): Promise<void> {
    const payload = new Writer().u8(Op.RENAME).str(checkPath('from', from)).str(checkPath('to', to)).done();
    return this.request(Op.RENAME, payload, () => undefined, 'RENAME');
  }

  /**
   * A file's bytes as a Readable (streamed with backpressure). `opened` settles with its stat
   * or the agent's error (ENOENT, ...); errors also reach the Readable's 'error' listeners.
   */
  async createReadStream(path: string, opts: { offset?: number; length?: number } = {}): Promise<{ stream: Readable; stat: FileStat; done: Promise<number> }> {
    const offset = opts.offset ?? 0;
    if (!Number.isSafeInteger(offset) || offset < 0) throw new InvalidConfigError('offset', offset, 'a non-negative safe integer');
    const length = opts.length;
    if (length !== undefined && (!Number.isSafeInteger(length) || length < 0)) {
      throw new InvalidConfigError('length', length, 'a non-negative safe integer');
    }
    const payload = new Writer()
      .u8(Op.FILE_READ)
      .str(checkPath('path', path))
      .u64(offset)
      .u64(length === undefined ? U64_MAX : BigInt(length))
      .done();
    const r = new FileReadStream((id, n) => this.session.grant(id, 3, n), offset, length ?? Number.MAX_SAFE_INTEGER);
    r.id = await this.session.open(Op.FILE_READ, payload, r.handler());
    const stat = await r.opened;
    return { stream: r.readable, stat, done: r.done };
  }

  async readFile(path: string, opts: { offset?: number; length?: number } = {}): Promise<Buffer> {
    const { stream, done } = await this.createReadStream(path, opts);
    const parts: Buffer[] = [];
    stream.on('error', () => undefined); // `done` carries the error
    // `done` can settle before the buffered bytes are emitted: wait for the stream's own end.
    await new Promise<void>((resolve) => {
      stream.on('data', (b: Buffer) => parts.push(b));
      stream.once('end', resolve);
      stream.once('close', resolve);
    });
    await done;
    return Buffer.concat(parts);
  }

  /** Writes a file from bytes, a string, a Readable or an async iterable. Resolves with the byte count. */
  async writeFile(path: string, data: FileData, opts: WriteFileOptions = {}): Promise<number> {
    const how = opts.how ?? 'truncate';
    const howCode = { truncate: 0, append: 1, exclusive: 2 }[how];
    if (howCode === undefined) throw new InvalidConfigError('how', how, "'truncate', 'append' or 'exclusive'");
    const payload = new Writer()
      .u8(Op.FILE_WRITE)
      .str(checkPath('path', path))
      .u32(checkMode('mode', opts.mode, 0o644))
      .u8(howCode)
      .u8(opts.parents ? 1 : 0)
      .done();
    let sent = 0;
    let dead = false;
    let settle!: { resolve: (n: number) => void; reject: (e: Error) => void };
    const result = new Promise<number>((resolve, reject) => (settle = { resolve, reject }));
    result.catch(() => undefined);
    const id = await this.session.open(Op.FILE_WRITE, payload, fileWriteHandler(() => sent, settle, () => (dead = true)));
    const chunks: AsyncIterable<Buffer | Uint8Array | string> | Iterable<Buffer | Uint8Array | string> =
      typeof data === 'string' || data instanceof Uint8Array ? [data] : data;
    for await (const c of chunks) {
      if (dead) break;
      const b = typeof c === 'string' ? Buffer.from(c) : Buffer.from(c.buffer, c.byteOffset, c.byteLength);
      if (!(await this.session.sendData(id, 3, b, false))) break;
      sent += b.length;
    }
    if (!dead) await this.session.sendData(id, 3, Buffer.alloc(0), true);
    return result;
  }
}

export type { ExitStatus, FileStat, DirEntry, GuestMetrics, MainExitEvent, HelloOk, ConnectOptions };
export { AgentProcess, EventSubscription, PATH_MAX, readExitStatus };
