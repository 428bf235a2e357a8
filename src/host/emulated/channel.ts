/**
 * ControlChannel: commands inside the emulated host, over one byte stream speaking protocol.ts —
 * QEMU's control socket when we own the host, or a keeper's socket when we share one.
 *
 * Each command runs in its own process group inside. `timeoutMs` is a hard deadline: the whole
 * group is killed, and the call settles within KILL_GRACE_MS even if the inside never answers.
 * When the channel is lost, every pending command ends at once with an EmulatedHostError.
 */
import { Duplex, Readable, Writable } from 'node:stream';
import { AbortedError, InvalidConfigError } from '../../errors';
import { EmulatedHostError, OutputLimitError } from './errors';
import {
  encodeMessage,
  LineDecoder,
  PROTOCOL_VERSION,
  STDIN_WINDOW,
  type AgentToHost,
  type HostToAgent,
} from './protocol';

export interface SpawnOptions {
  /** Working directory inside (default: this process's cwd, which exists at the same path). */
  cwd?: string;
  /** Added to (and overriding) the default environment: PATH, HOME, LANG=C.UTF-8, TERM=dumb. */
  env?: Record<string, string>;
  /** 'pipe' gives the process a stdin stream; default 'ignore' (/dev/null). */
  stdin?: 'pipe' | 'ignore';
  /** Kill the whole process group after this long; the end then has timedOut: true. No default. */
  timeoutMs?: number;
  /** Kill the process group; wait() then rejects with an AbortedError. */
  signal?: AbortSignal;
  /**
   * Whether this command keeps the Node process alive while it runs (default true), on a channel
   * opened with `idleUnref`. A background server inside can say false.
   */
  holdProcess?: boolean;
}

export interface RunOptions extends Omit<SpawnOptions, 'stdin'> {
  /** Bytes for the command's stdin (default: /dev/null). */
  stdin?: string | Buffer;
  /** Most bytes of stdout, and of stderr, kept in the result (default 64 MiB); past it: OutputLimitError. */
  maxBuffer?: number;
  onStdout?: (chunk: Buffer) => void;
  onStderr?: (chunk: Buffer) => void;
}

export interface ProcessEnd {
  /** The exit status, or null when the command was killed by a signal. */
  exitCode: number | null;
  signal: string | null;
  timedOut: boolean;
  durationMs: number;
}

export interface RunResult extends ProcessEnd {
  /** stdout decoded as UTF-8 (`stdoutBytes` holds the bytes as they came). */
  stdout: string;
  stderr: string;
  stdoutBytes: Buffer;
  stderrBytes: Buffer;
}

/** A command running inside, with Node streams. */
export interface HostProcess {
  readonly stdin: Writable | null;
  readonly stdout: Readable;
  readonly stderr: Readable;
  /** Signals the command's whole process group (default SIGTERM). */
  kill(signal?: NodeJS.Signals): void;
  /** Resolves when the command has ended; what it wrote stays readable from stdout/stderr. */
  wait(): Promise<ProcessEnd>;
}

export const DEFAULT_MAX_BUFFER = 64 * 1024 * 1024;
/** After a kill for a deadline or an abort, how long the inside gets to report the end. */
const KILL_GRACE_MS = 2000;

interface Pending {
  id: number;
  started: number;
  stdout: Readable;
  stderr: Readable;
  stdin: Writable | null;
  /** Output bytes pushed to a stream that is full: acked when the reader asks for more. */
  heldAck: number;
  stdinInFlight: number;
  stdinWaiters: (() => void)[];
  timedOut: boolean;
  aborted: boolean;
  timer?: NodeJS.Timeout;
  graceTimer?: NodeJS.Timeout;
  removeAbort?: () => void;
  /** Counted in the channel's holds (see idleUnref). */
  held?: boolean;
  settle: (end: ProcessEnd | Error) => void;
}

export class ControlChannel {
  private nextId = 1;
  private readonly runs = new Map<number, Pending>();
  private lost: Error | undefined;
  private readonly closed: Promise<void>;
  private holds = 0;

  constructor(
    private readonly stream: Duplex,
    private readonly hooks: {
      onLog?: (message: string) => void;
      /** The error pending commands get when the stream closes without fail() having been called. */
      describeLoss?: () => EmulatedHostError;
      /** Called once when the channel is lost, for whatever reason. */
      onLost?: (err: Error) => void;
      /**
       * Let the stream keep the Node process alive only while commands that hold it run (a client
       * that may sit idle for long, as the zone backend's connection to the shared host does).
       */
      idleUnref?: boolean;
    } = {},
    initial?: Buffer,
  ) {
    const decoder = new LineDecoder<AgentToHost>(
      (msg) => this.onMessage(msg),
      (line) => hooks.onLog?.(`unparsable line from the agent: ${line}`),
      () => this.fail(new EmulatedHostError('channel-lost', 'the agent sent a line longer than the protocol allows')),
    );
    stream.on('data', (d: Buffer) => decoder.push(d));
    stream.on('error', () => undefined); // 'close' below reports it
    this.closed = new Promise((resolve) => stream.once('close', () => resolve()));
    void this.closed.then(() =>
      this.fail(hooks.describeLoss?.() ?? new EmulatedHostError('channel-lost', 'the control channel to the emulated host closed')),
    );
    if (initial && initial.length > 0) decoder.push(initial);
    if (hooks.idleUnref) this.setHeld(false);
  }

  private setHeld(held: boolean): void {
    const s = this.stream as Duplex & { ref?: () => void; unref?: () => void };
    if (held) s.ref?.();
    else s.unref?.();
  }

  get open(): boolean {
    return this.lost === undefined;
  }

  /** Starts `argv` inside and returns at once with its streams. */
  spawn(argv: readonly string[], opts: SpawnOptions = {}): HostProcess {
    if (argv.length === 0 || argv.some((a) => typeof a !== 'string')) {
      throw new InvalidConfigError('argv', argv, 'a non-empty array of strings');
    }
    return this.start(
      (id) => ({
        t: 'run',
        id,
        argv: [...argv],
        cwd: opts.cwd ?? process.cwd(),
        env: {
          PATH: process.env.PATH ?? '/usr/local/bin:/usr/bin:/bin:/usr/local/sbin:/usr/sbin:/sbin',
          HOME: process.env.HOME ?? '/root',
          LANG: 'C.UTF-8',
          TERM: 'dumb',
          ...opts.env,
        },
        stdin: opts.stdin === 'pipe',
      }),
      opts,
      argv[0]!,
    );
  }

  /**
   * A connection to the Unix socket `socketPath` inside the emulated host, as a Duplex: what is
   * written reaches the socket, what the socket sends is read. A socket that cannot be reached
   * destroys the stream with an EmulatedHostError (reason 'connect-failed').
   */
  connect(socketPath: string): Duplex {
    const proc = this.openSocket(socketPath);
    const why: Buffer[] = [];
    proc.stderr.on('data', (d: Buffer) => why.push(d));
    const duplex = new Duplex({
      read: () => void proc.stdout.resume(),
      write: (chunk: Buffer, _enc, done) => void proc.stdin!.write(chunk, () => done()),
      final: (done) => {
        proc.stdin!.end();
        done();
      },
      destroy: (err, done) => {
        proc.kill('SIGKILL');
        done(err);
      },
    });
    proc.stdout.on('data', (d: Buffer) => {
      if (!duplex.push(d)) proc.stdout.pause();
    });
    // The relay's end says how the connection ended: cleanly, or because it never connected.
    const settle = () =>
      proc.wait().then(
        (end) =>
          end.exitCode === 0
            ? duplex.push(null)
            : duplex.destroy(
                new EmulatedHostError('connect-failed', `cannot connect to ${socketPath} inside the emulated host: ${Buffer.concat(why).toString().trim()}`),
              ),
        (err: Error) => duplex.destroy(err),
      );
    proc.stdout.once('end', settle);
    proc.stdout.once('close', () => !proc.stdout.readableEnded && settle());
    return duplex;
  }

  /** connect()'s relay as a HostProcess: stdout is what the socket sends, stdin what it gets (for relays such as the keeper). */
  openSocket(socketPath: string): HostProcess {
    return this.start((id) => ({ t: 'connect', id, path: socketPath }), { stdin: 'pipe' }, socketPath);
  }

  private start(request: (id: number) => HostToAgent, opts: SpawnOptions, what: string): HostProcess {
    if (opts.timeoutMs !== undefined && !(Number.isFinite(opts.timeoutMs) && opts.timeoutMs > 0)) {
      throw new InvalidConfigError('timeoutMs', opts.timeoutMs, 'a positive number of milliseconds');
    }
    const id = this.nextId++;
    let settleEnd!: (end: ProcessEnd | Error) => void;
    const ended = new Promise<ProcessEnd>((resolve, reject) => {
      settleEnd = (end) => (end instanceof Error ? reject(end) : resolve(end));
    });
    ended.catch(() => undefined); // observed through wait()
    const run: Pending = {
      id,
      started: Date.now(),
      stdout: this.outputStream(id),
      stderr: this.outputStream(id),
      stdin: null,
      heldAck: 0,
      stdinInFlight: 0,
      stdinWaiters: [],
      timedOut: false,
      aborted: false,
      settle: settleEnd,
    };
    if (opts.stdin === 'pipe') run.stdin = this.stdinStream(run);
    const kill = (signal: NodeJS.Signals = 'SIGTERM') => {
      if (this.runs.has(id)) this.send({ t: 'signal', id, signal });
    };
    const handle: HostProcess = { stdin: run.stdin, stdout: run.stdout, stderr: run.stderr, kill, wait: () => ended };

    if (this.lost) {
      this.finishRun(run, this.lost);
      return handle;
    }
    if (opts.signal?.aborted) {
      this.finishRun(run, new AbortedError(`starting ${what} in the emulated host`));
      return handle;
    }
    this.runs.set(id, run);
    if (this.hooks.idleUnref && opts.holdProcess !== false) {
      run.held = true;
      if (this.holds++ === 0) this.setHeld(true);
    }
    const hardStop = (why: 'timeout' | 'abort') => {
      if (why === 'timeout') run.timedOut = true;
      else run.aborted = true;
      kill('SIGKILL');
      run.graceTimer ??= setTimeout(
        () => this.finishRun(run, { exitCode: null, signal: 'SIGKILL', timedOut: run.timedOut, durationMs: Date.now() - run.started }),
        KILL_GRACE_MS,
      );
    };
    if (opts.timeoutMs !== undefined) run.timer = setTimeout(() => hardStop('timeout'), opts.timeoutMs);
    if (opts.signal) {
      const onAbort = () => hardStop('abort');
      opts.signal.addEventListener('abort', onAbort, { once: true });
      run.removeAbort = () => opts.signal?.removeEventListener('abort', onAbort);
    }
    this.send(request(id));
    return handle;
  }

  /** Runs `argv` to its end and collects its output (bounded by maxBuffer). A nonzero exit is not an error. */
  async run(argv: readonly string[], opts: RunOptions = {}): Promise<RunResult> {
    const { stdin, maxBuffer = DEFAULT_MAX_BUFFER, onStdout, onStderr, ...spawnOpts } = opts;
    const proc = this.spawn(argv, { ...spawnOpts, stdin: stdin === undefined ? 'ignore' : 'pipe' });
    const collect = (stream: Readable, label: 'stdout' | 'stderr', on?: (chunk: Buffer) => void) => {
      const chunks: Buffer[] = [];
      let size = 0;
      stream.on('data', (chunk: Buffer) => {
        on?.(chunk);
        size += chunk.length;
        if (size > maxBuffer) {
          overflow ??= new OutputLimitError(label, maxBuffer, argv);
          proc.kill('SIGKILL');
          return;
        }
        chunks.push(chunk);
      });
      return () => Buffer.concat(chunks);
    };
    let overflow: OutputLimitError | undefined;
    const out = collect(proc.stdout, 'stdout', onStdout);
    const err = collect(proc.stderr, 'stderr', onStderr);
    proc.stdin?.end(typeof stdin === 'string' ? Buffer.from(stdin) : stdin);
    const drained = (s: Readable) => new Promise<void>((resolve) => s.once('end', resolve).once('close', resolve));
    const [end] = await Promise.all([proc.wait(), drained(proc.stdout), drained(proc.stderr)]);
    if (overflow) throw overflow;
    const stdoutBytes = out();
    const stderrBytes = err();
    return { ...end, stdoutBytes, stderrBytes, stdout: stdoutBytes.toString('utf8'), stderr: stderrBytes.toString('utf8') };
  }

  /** Asks the agent to stop (the init then powers off). */
  shutdown(): void {
    this.send({ t: 'shutdown' });
  }

  /** Ends every pending command with `err` and closes the stream. */
  fail(err: Error): void {
    if (this.lost) return;
    this.lost = err;
    for (const run of [...this.runs.values()]) this.finishRun(run, err);
    this.stream.destroy();
    this.hooks.onLost?.(err);
  }

  private send(msg: HostToAgent): void {
    if (!this.lost) this.stream.write(encodeMessage(msg));
  }

  private outputStream(id: number): Readable {
    return new Readable({
      read: () => {
        const run = this.runs.get(id);
        if (run && run.heldAck > 0) {
          this.send({ t: 'ack', id, bytes: run.heldAck });
          run.heldAck = 0;
        }
      },
    });
  }

  private stdinStream(run: Pending): Writable {
    return new Writable({
      write: (chunk: Buffer, _enc, done) => {
        if (!this.runs.has(run.id)) return done(); // the command has ended: drop, as a closed pipe would
        for (let off = 0; off < chunk.length; off += 256 * 1024) {
          const part = chunk.subarray(off, off + 256 * 1024);
          this.send({ t: 'stdin', id: run.id, data: part.toString('base64') });
          run.stdinInFlight += part.length;
        }
        if (run.stdinInFlight < STDIN_WINDOW) done();
        else run.stdinWaiters.push(() => done());
      },
      final: (done) => {
        if (this.runs.has(run.id)) this.send({ t: 'stdin-end', id: run.id });
        done();
      },
    });
  }

  private onMessage(msg: AgentToHost): void {
    if (msg.t === 'log') {
      this.hooks.onLog?.(msg.message);
      return;
    }
    if (msg.t === 'ready') {
      if (msg.protocol !== PROTOCOL_VERSION) {
        this.fail(new EmulatedHostError('channel-lost', `the agent speaks protocol ${msg.protocol}, we speak ${PROTOCOL_VERSION}`));
      }
      return;
    }
    const run = this.runs.get(msg.id);
    if (!run) return; // a command we already gave up on
    if (msg.t === 'out') {
      const chunk = Buffer.from(msg.data, 'base64');
      const stream = msg.fd === 1 ? run.stdout : run.stderr;
      if (stream.push(chunk)) this.send({ t: 'ack', id: run.id, bytes: chunk.length });
      else run.heldAck += chunk.length;
    } else if (msg.t === 'stdin-ack') {
      run.stdinInFlight = Math.max(0, run.stdinInFlight - msg.bytes);
      if (run.stdinInFlight < STDIN_WINDOW) for (const wake of run.stdinWaiters.splice(0)) wake();
    } else if (msg.t === 'exit') {
      this.finishRun(run, { exitCode: msg.code, signal: msg.signal, timedOut: run.timedOut, durationMs: Date.now() - run.started });
    }
  }

  private finishRun(run: Pending, end: ProcessEnd | Error): void {
    this.runs.delete(run.id);
    if (run.held) {
      run.held = false;
      if (--this.holds === 0 && !this.lost) this.setHeld(false);
    }
    clearTimeout(run.timer);
    clearTimeout(run.graceTimer);
    run.removeAbort?.();
    for (const wake of run.stdinWaiters.splice(0)) wake();
    const result: ProcessEnd | Error = run.aborted && !(end instanceof Error) ? new AbortedError('running a command in the emulated host') : end;
    if (result instanceof Error) {
      // The error reaches the caller through wait(); a stream 'error' nobody listens for would throw.
      run.stdout.destroy();
      run.stderr.destroy();
      run.stdin?.destroy();
      run.settle(result);
      return;
    }
    run.stdin?.destroy();
    run.stdout.push(null);
    run.stderr.push(null);
    run.settle(result);
  }
}
