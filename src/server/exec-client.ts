/**
 * The client's end of an exec stream: a ZoneProcess whose streams are frames on one upgraded
 * connection (see ./exec-frames.ts). What the caller writes before the connection is up is queued
 * (within the stdin window); stdout and stderr grant credit as the caller reads them. wait()
 * settles with the EXIT or ERROR frame, or at once with `lost(err)` when the connection is cut.
 */
import * as http from 'node:http';
import type * as net from 'node:net';
import { Readable, Writable, type Duplex } from 'node:stream';
import { AbortedError, InvalidConfigError, InvalidStateError, type BulkheadError } from '../errors';
import type { ProcessEnd, SpawnOptions, ZoneProcess } from '../zone/types';
import {
  DATA_CHUNK,
  encodeFrame,
  EXEC_PROTOCOL,
  Frame,
  FrameReader,
  INITIAL_WINDOW,
  jsonFrame,
  parseJson,
  parseWindow,
  windowFrame,
} from './exec-frames';
import { errorFromBody, readAll, type Endpoint } from './http-client';
import { readersCaughtUp } from '../util/streams';
import { errorFromWire } from './wire';

export interface ExecHooks {
  /**
   * The error the process fails with when its connection is cut without an EXIT; the zone checks
   * whether its server is still there (and if not, fails itself and all its calls).
   */
  lost(cause: Error): Promise<BulkheadError>;
  /** The server sent an ERROR: what the process fails with, once the zone has taken it in. */
  failed?(err: Error): Promise<Error>;
}

export class RemoteProcess implements ZoneProcess {
  readonly stdin: Writable;
  readonly stdout: Readable;
  readonly stderr: Readable;
  readonly pid: Promise<number>;

  private socket: Duplex | undefined;
  private readonly queue: Buffer[] = [];
  private stdinCredit = INITIAL_WINDOW;
  private creditWaiter: (() => void) | undefined;
  private readonly owed = { [Frame.STDOUT]: 0, [Frame.STDERR]: 0 } as Record<number, number>;
  private readonly done: Promise<ProcessEnd>;
  private resolveDone!: (end: ProcessEnd) => void;
  private rejectDone!: (err: Error) => void;
  private resolvePid!: (pid: number) => void;
  private rejectPid!: (err: Error) => void;
  private ended = false;
  private exited = false;
  private readonly req: http.ClientRequest | undefined;

  constructor(
    endpoint: Endpoint,
    zoneRef: string,
    argv: readonly string[],
    private readonly opts: SpawnOptions,
    private readonly hooks: ExecHooks,
  ) {
    this.done = new Promise((resolve, reject) => ((this.resolveDone = resolve), (this.rejectDone = reject)));
    this.pid = new Promise((resolve, reject) => ((this.resolvePid = resolve), (this.rejectPid = reject)));
    // Nobody has to await these: a failure is also reported by wait().
    this.done.catch(() => undefined);
    this.pid.catch(() => undefined);
    this.stdout = new Readable({ read: () => this.grant(Frame.STDOUT) });
    this.stderr = new Readable({ read: () => this.grant(Frame.STDERR) });
    this.stdin = new Writable({
      write: (chunk: Buffer, _enc, cb) => void this.writeStdin(chunk).then(() => cb()),
      final: (cb) => {
        this.send(encodeFrame(Frame.STDIN_END));
        cb();
      },
    });

    if (opts.signal?.aborted) {
      this.fail(new AbortedError(`running ${argv[0]} in the zone`));
      return;
    }
    opts.signal?.addEventListener('abort', this.onAbort, { once: true });
    const { signal: _signal, ...wireOpts } = opts;
    this.send(jsonFrame(Frame.START, { argv, ...wireOpts }));

    const req = http.request({
      method: 'GET',
      path: `/zones/${encodeURIComponent(zoneRef)}/exec`,
      headers: { host: 'bulkhead', connection: 'Upgrade', upgrade: EXEC_PROTOCOL },
      createConnection: () => endpoint.connect() as net.Socket,
    });
    this.req = req;
    req.once('error', (err) => this.cut(err));
    req.once('response', (res) => {
      readAll(res).then(
        (body) => this.fail(errorFromBody(body, res.statusCode ?? 0)),
        (err: Error) => this.cut(err),
      );
    });
    req.once('upgrade', (_res, socket: Duplex, head: Buffer) => this.attach(socket, head));
    req.end();
  }

  kill(signal: NodeJS.Signals | number = 'SIGTERM'): void {
    this.send(jsonFrame(Frame.SIGNAL, { signal }));
  }

  resize(cols: number, rows: number): void {
    if (!this.opts.tty) throw new InvalidStateError('resize', 'not a tty process', ['started with tty']);
    for (const [field, v] of [['cols', cols], ['rows', rows]] as const) {
      if (!Number.isInteger(v) || v < 1 || v > 65535) throw new InvalidConfigError(field, v, 'an integer 1..65535');
    }
    this.send(jsonFrame(Frame.RESIZE, { cols, rows }));
  }

  wait(): Promise<ProcessEnd> {
    return this.done;
  }

  private readonly onAbort = () => this.send(encodeFrame(Frame.ABORT));

  private attach(socket: Duplex, head: Buffer): void {
    if (this.ended) {
      socket.destroy();
      return;
    }
    this.socket = socket;
    const reader = new FrameReader();
    socket.on('data', (chunk: Buffer) => {
      try {
        reader.push(chunk, (type, payload) => this.onFrame(type, payload));
      } catch (err) {
        socket.destroy();
        this.cut(err as Error);
      }
    });
    socket.once('error', (err) => this.cut(err));
    socket.once('close', () => {
      if (this.exited) this.finish();
      else this.cut(new Error('the exec connection closed before the process ended'));
    });
    for (const frame of this.queue.splice(0)) socket.write(frame);
    if (head.length) socket.emit('data', head);
  }

  private onFrame(type: number, payload: Buffer): void {
    switch (type) {
      case Frame.STDOUT:
      case Frame.STDERR: {
        const stream = type === Frame.STDOUT ? this.stdout : this.stderr;
        this.owed[type]! += payload.length;
        if (stream.push(payload)) this.grant(type);
        return;
      }
      case Frame.STDOUT_END:
        this.stdout.push(null);
        return;
      case Frame.STDERR_END:
        this.stderr.push(null);
        return;
      case Frame.WINDOW: {
        const { stream, bytes } = parseWindow(payload);
        if (stream !== Frame.STDIN) return;
        this.stdinCredit += bytes;
        const waiter = this.creditWaiter;
        this.creditWaiter = undefined;
        waiter?.();
        return;
      }
      case Frame.PID:
        this.resolvePid((parseJson(type, payload) as { pid: number }).pid);
        return;
      case Frame.EXIT: {
        this.exited = true;
        const end = parseJson(type, payload) as ProcessEnd;
        void readersCaughtUp([this.stdout, this.stderr]).then(() => this.resolveDone(end));
        return;
      }
      case Frame.ERROR: {
        const err = errorFromWire(parseJson(type, payload));
        if (this.hooks.failed) void this.hooks.failed(err).then((e) => this.fail(e));
        else this.fail(err);
        return;
      }
    }
  }

  private grant(stream: number): void {
    const owed = this.owed[stream]!;
    if (owed > 0) {
      this.owed[stream] = 0;
      this.send(windowFrame(stream as typeof Frame.STDOUT, owed));
    }
  }

  private async writeStdin(chunk: Buffer): Promise<void> {
    for (let at = 0; at < chunk.length && !this.ended; ) {
      if (this.stdinCredit <= 0) {
        await new Promise<void>((resolve) => (this.creditWaiter = resolve));
        continue;
      }
      const n = Math.min(DATA_CHUNK, this.stdinCredit, chunk.length - at);
      this.send(encodeFrame(Frame.STDIN, chunk.subarray(at, at + n)));
      this.stdinCredit -= n;
      at += n;
    }
  }

  private send(frame: Buffer): void {
    if (this.ended) return;
    if (this.socket) {
      if (!this.socket.destroyed) this.socket.write(frame);
    } else this.queue.push(frame);
  }

  /** The connection broke before the process's end: fail with what the zone makes of it. */
  private cut(cause: Error): void {
    if (this.ended) return;
    if (this.exited) {
      this.finish();
      return;
    }
    void this.hooks.lost(cause).then((err) => this.fail(err));
  }

  /** The connection is done after EXIT: outputs that did not end are ended. */
  private finish(): void {
    if (this.ended) return;
    this.ended = true;
    this.cleanup();
    if (!this.stdout.readableEnded) this.stdout.push(null);
    if (!this.stderr.readableEnded) this.stderr.push(null);
  }

  private fail(err: Error): void {
    if (this.ended) return;
    if (this.exited) {
      this.finish();
      return;
    }
    this.ended = true;
    this.cleanup();
    this.rejectPid(err);
    this.rejectDone(err);
    // Closed, not errored: a caller who reads only the streams sees them end; wait() has the reason.
    this.stdout.destroy();
    this.stderr.destroy();
  }

  private cleanup(): void {
    this.opts.signal?.removeEventListener('abort', this.onAbort);
    const waiter = this.creditWaiter;
    this.creditWaiter = undefined;
    waiter?.();
    this.socket?.destroy();
    this.req?.destroy();
  }

  /** For the zone: ends this process at once with `err` (the zone died, or the client detached). */
  abort(err: Error): void {
    this.fail(err);
  }
}
