/**
 * A process in the zone (EXEC, or the main process of LAUNCH), with Node streams. Credit flows
 * with consumption: bytes the agent sends are granted back as the reader takes them from
 * stdout/stderr, and stdin writes wait for the agent's credit. wait() has no deadline.
 *
 * When the session dies, wait() rejects with the session's error at once, and stdout/stderr are
 * destroyed (with that error if anyone listens for 'error', so an unwatched stream cannot crash
 * the host process). Writes to stdin after the process ended are dropped, without an error event.
 */
import { Readable, Writable } from 'node:stream';
import { InvalidStateError } from '../../errors';
import { readersCaughtUp } from '../../util/streams';
import { AgentProtocolError, type AgentRequestError } from './errors';
import { Channel, Reader, readExitStatus, type ExitStatus } from './protocol';
import type { AgentSession, StreamHandler } from './session';
import { checkDimension, checkSignal } from './validate';

const HIGH_WATER = 64 * 1024;

export function failReadable(r: Readable, err: Error): void {
  if (r.destroyed) return;
  if (r.listenerCount('error') > 0) r.destroy(err);
  else r.destroy();
}

export class AgentProcess {
  /** Set once the agent started it. */
  pid = 0;
  /** Null unless stdin (or a tty) was asked for. */
  readonly stdin: Writable | null;
  readonly stdout: Readable;
  /** With a tty, everything comes on stdout and this ends empty. */
  readonly stderr: Readable;
  readonly tty: boolean;

  private id = 0;
  private exitStatus: ExitStatus | undefined;
  private failure: Error | undefined;
  private readonly exit: Promise<ExitStatus>;
  private settleExit!: { resolve: (s: ExitStatus) => void; reject: (e: Error) => void };
  private readonly started: Promise<void>;
  private settleStart!: { resolve: () => void; reject: (e: Error) => void };
  private readonly pending = [0, 0, 0, 0];

  /** @internal Built by AgentClient.exec/launch. */
  constructor(
    private readonly session: AgentSession,
    opts: { stdin: boolean; tty: boolean },
  ) {
    this.tty = opts.tty;
    this.exit = new Promise((resolve, reject) => (this.settleExit = { resolve, reject }));
    this.exit.catch(() => undefined); // reported through wait(); never an unhandled rejection
    this.started = new Promise((resolve, reject) => (this.settleStart = { resolve, reject }));
    this.started.catch(() => undefined);
    this.stdout = new Readable({ highWaterMark: HIGH_WATER, read: () => this.release(Channel.STDOUT) });
    this.stderr = new Readable({ highWaterMark: HIGH_WATER, read: () => this.release(Channel.STDERR) });
    if (opts.tty) this.stderr.push(null);
    this.stdin =
      opts.stdin || opts.tty
        ? new Writable({
            highWaterMark: HIGH_WATER,
            write: (chunk: Buffer, _enc, cb) => {
              this.session.sendData(this.id, Channel.STDIN, chunk, false).then(() => cb(), () => cb());
            },
            final: (cb) => {
              this.session.sendData(this.id, Channel.STDIN, Buffer.alloc(0), true).then(() => cb(), () => cb());
            },
          })
        : null;
  }

  /** @internal */
  async start(open: (handler: StreamHandler) => Promise<number>): Promise<this> {
    this.id = await open(this.handler());
    await this.started;
    return this;
  }

  /** The exit status, once the process ended and its output is all read. No deadline. */
  wait(): Promise<ExitStatus> {
    return this.exit;
  }

  get exited(): boolean {
    return this.exitStatus !== undefined;
  }

  /** Sends a signal (default SIGTERM). Does nothing once the process has ended. */
  kill(signal: string | number = 'SIGTERM'): void {
    const signo = checkSignal(signal);
    if (!this.exitStatus && !this.failure) this.session.signal(this.id, signo);
  }

  /** Resizes the terminal (tty processes only). */
  resize(rows: number, cols: number): void {
    if (!this.tty) throw new InvalidStateError('resize', 'running without a tty', ['running with tty: true']);
    this.session.resize(this.id, checkDimension('rows', rows), checkDimension('cols', cols));
  }

  /** Kills an exec'd process (SIGKILL to its group); wait() then rejects with kind 'cancelled'. */
  cancel(): void {
    if (!this.exitStatus && !this.failure) this.session.cancel(this.id);
  }

  private release(ch: number): void {
    const n = this.pending[ch]!;
    if (n > 0 && this.id) {
      this.pending[ch] = 0;
      this.session.grant(this.id, ch, n);
    }
  }

  private finish(err: Error | undefined, status?: ExitStatus): void {
    if (err) {
      this.failure = err;
      this.settleStart.reject(err);
      this.settleExit.reject(err);
      failReadable(this.stdout, err);
      failReadable(this.stderr, err);
      return;
    }
    this.exitStatus = status;
    this.stdout.push(null);
    if (!this.tty) this.stderr.push(null);
    // "its output is all read": a listener attached just now gets its bytes before wait() settles.
    void readersCaughtUp([this.stdout, this.stderr]).then(() => this.settleExit.resolve(status!));
    // stdin stays writable: what is written now is dropped (sendData finds no stream), so a
    // write racing the exit is never an 'error' event.
  }

  private handler(): StreamHandler {
    let replied = false;
    return {
      dataChannels: this.tty ? [Channel.STDOUT] : [Channel.STDOUT, Channel.STDERR],
      creditChannels: this.stdin ? [Channel.STDIN] : [],
      onReply: (p) => {
        if (replied) throw new AgentProtocolError('a second REPLY on a process stream');
        const r = new Reader(p, 'process REPLY');
        const pid = r.u32();
        r.end();
        if (pid < 1) throw new AgentProtocolError('process REPLY with pid 0');
        replied = true;
        this.pid = pid;
        this.settleStart.resolve();
      },
      onData: (ch, bytes) => {
        if (!replied) throw new AgentProtocolError('process DATA before its REPLY');
        const r = ch === Channel.STDOUT ? this.stdout : this.stderr;
        if (r.destroyed) {
          this.session.grant(this.id, ch, bytes.length); // nobody reads: keep the agent moving
          return;
        }
        if (r.push(Buffer.from(bytes))) this.session.grant(this.id, ch, bytes.length);
        else this.pending[ch]! += bytes.length;
      },
      onEnd: (p) => {
        if (!replied) throw new AgentProtocolError('process END before its REPLY');
        const r = new Reader(p, 'process END');
        const status = readExitStatus(r);
        r.end();
        this.finish(undefined, status);
      },
      onError: (e: AgentRequestError) => this.finish(e),
      onFail: (e) => this.finish(e),
    };
  }
}
