/**
 * Stream handlers of the request/response services: one-shot requests (stat, mkdir, remove,
 * rename, signal-main, shutdown, metrics), directory listings, streamed file reads and writes,
 * and the events subscription. Each checks that the agent's frames come in the order PROTOCOL.md
 * gives, and settles its promise exactly once: on END, ERROR or the session's death.
 */
import { Readable } from 'node:stream';
import { AgentProtocolError, type AgentRequestError } from './errors';
import { failReadable } from './process';
import {
  Channel,
  decodeEvent,
  decodeListBatch,
  Reader,
  readStat,
  type DirEntry,
  type FileStat,
  type MainExitEvent,
} from './protocol';
import type { StreamHandler } from './session';

interface Settle<T> {
  resolve: (v: T) => void;
  reject: (e: Error) => void;
}

/** A request answered by one END, whose payload `decode` turns into the result. */
export function oneShot<T>(decode: (r: Reader) => T, what: string, settle: Settle<T>): StreamHandler {
  return {
    dataChannels: [],
    creditChannels: [],
    onEnd: (p) => {
      const r = new Reader(p, `${what} END`);
      const v = decode(r);
      r.end();
      settle.resolve(v);
    },
    onError: (e: AgentRequestError) => settle.reject(e),
    onFail: (e) => settle.reject(e),
  };
}

export function listHandler(settle: Settle<{ entries: DirEntry[]; truncated: boolean }>): StreamHandler {
  const entries: DirEntry[] = [];
  return {
    dataChannels: [],
    creditChannels: [],
    onReply: (p) => {
      entries.push(...decodeListBatch(p));
      if (entries.length > 65536) throw new AgentProtocolError('LIST sent more than 65536 entries');
    },
    onEnd: (p) => {
      const r = new Reader(p, 'LIST END');
      const total = r.u32();
      const truncated = r.bool('truncated');
      r.end();
      if (total !== entries.length) throw new AgentProtocolError(`LIST END counts ${total} entries, ${entries.length} came`);
      settle.resolve({ entries, truncated });
    },
    onError: (e: AgentRequestError) => settle.reject(e),
    onFail: (e) => settle.reject(e),
  };
}

/**
 * A streamed file read into a Readable. Credit is granted as the reader consumes; `opened`
 * settles with the file's stat (or the agent's error), `done` with the bytes read.
 */
export class FileReadStream {
  readonly readable: Readable;
  readonly opened: Promise<FileStat>;
  readonly done: Promise<number>;
  id = 0;
  private pending = 0;
  private received = 0;
  private stat: FileStat | undefined;
  private settleOpen!: Settle<FileStat>;
  private settleDone!: Settle<number>;

  constructor(
    private readonly grant: (id: number, bytes: number) => void,
    private readonly offset: number,
    private readonly limit: number,
  ) {
    this.opened = new Promise((resolve, reject) => (this.settleOpen = { resolve, reject }));
    this.done = new Promise((resolve, reject) => (this.settleDone = { resolve, reject }));
    this.opened.catch(() => undefined);
    this.done.catch(() => undefined);
    this.readable = new Readable({
      highWaterMark: 64 * 1024,
      read: () => {
        if (this.pending && this.id) {
          this.grant(this.id, this.pending);
          this.pending = 0;
        }
      },
    });
  }

  private fail(e: Error): void {
    this.settleOpen.reject(e);
    this.settleDone.reject(e);
    failReadable(this.readable, e);
  }

  handler(): StreamHandler {
    return {
      dataChannels: [Channel.FILE],
      creditChannels: [],
      onReply: (p) => {
        if (this.stat) throw new AgentProtocolError('a second REPLY on a file read');
        const r = new Reader(p, 'FILE_READ REPLY');
        this.stat = readStat(r);
        r.end();
        this.settleOpen.resolve(this.stat);
      },
      onData: (_ch, bytes) => {
        if (!this.stat) throw new AgentProtocolError('file DATA before its REPLY');
        this.received += bytes.length;
        if (this.received > this.limit) throw new AgentProtocolError('the agent sent more of the file than was asked for');
        if (this.readable.destroyed || this.readable.push(Buffer.from(bytes))) this.grant(this.id, bytes.length);
        else this.pending += bytes.length;
      },
      onEnd: (p) => {
        if (!this.stat) throw new AgentProtocolError('file END before its REPLY');
        const r = new Reader(p, 'FILE_READ END');
        const position = r.u64();
        r.end();
        if (position !== this.offset + this.received) {
          throw new AgentProtocolError(`FILE_READ END at ${position}, but ${this.received} bytes came from ${this.offset}`);
        }
        this.readable.push(null);
        this.settleDone.resolve(this.received);
      },
      onError: (e: AgentRequestError) => this.fail(e),
      onFail: (e) => this.fail(e),
    };
  }
}

/** A streamed file write: the caller sends the bytes; this settles with the count the agent wrote. */
export function fileWriteHandler(expected: () => number, settle: Settle<number>, onDead: () => void): StreamHandler {
  let opened = false;
  const fail = (e: Error) => {
    onDead();
    settle.reject(e);
  };
  return {
    dataChannels: [],
    creditChannels: [Channel.FILE],
    onReply: (p) => {
      if (opened || p.length) throw new AgentProtocolError('FILE_WRITE REPLY is sent once, empty');
      opened = true;
    },
    onEnd: (p) => {
      if (!opened) throw new AgentProtocolError('FILE_WRITE END before its REPLY');
      const r = new Reader(p, 'FILE_WRITE END');
      const n = r.u64();
      r.end();
      if (n !== expected()) throw new AgentProtocolError(`FILE_WRITE END says ${n} bytes, ${expected()} were sent`);
      settle.resolve(n);
    },
    onError: (e: AgentRequestError) => fail(e),
    onFail: (e) => fail(e),
  };
}

/** An async iterator of events; ends when closed, throws when the session dies. */
export class EventSubscription implements AsyncIterableIterator<MainExitEvent>, AsyncDisposable {
  id = 0;
  private readonly queue: MainExitEvent[] = [];
  private waiter: Settle<IteratorResult<MainExitEvent>> | undefined;
  private ended: Error | null | undefined; // null: ended cleanly
  private subscribed = false;
  readonly ready: Promise<void>;
  private settleReady!: Settle<void>;

  constructor(private readonly cancel: (id: number) => void) {
    this.ready = new Promise((resolve, reject) => (this.settleReady = { resolve, reject }));
    this.ready.catch(() => undefined);
  }

  handler(): StreamHandler {
    return {
      dataChannels: [],
      creditChannels: [],
      onReply: (p) => {
        if (this.subscribed || p.length) throw new AgentProtocolError('EVENTS REPLY is sent once, empty');
        this.subscribed = true;
        this.settleReady.resolve();
      },
      onEvent: (p) => {
        if (!this.subscribed) throw new AgentProtocolError('EVENT before the EVENTS REPLY');
        const ev = decodeEvent(p);
        if (this.queue.length > 1024) throw new AgentProtocolError('more than 1024 events unread');
        if (this.waiter) {
          this.waiter.resolve({ value: ev, done: false });
          this.waiter = undefined;
        } else this.queue.push(ev);
      },
      onEnd: () => {
        throw new AgentProtocolError('END on an events stream (only CANCEL ends it)');
      },
      onError: (e: AgentRequestError) => this.stop(e.kind === 'cancelled' ? null : e),
      onFail: (e) => this.stop(e),
    };
  }

  private stop(err: Error | null): void {
    if (this.ended !== undefined) return;
    this.ended = err;
    this.settleReady.reject(err ?? new Error('closed'));
    if (this.waiter) {
      if (err) this.waiter.reject(err);
      else this.waiter.resolve({ value: undefined, done: true });
      this.waiter = undefined;
    }
  }

  next(): Promise<IteratorResult<MainExitEvent>> {
    const ev = this.queue.shift();
    if (ev) return Promise.resolve({ value: ev, done: false });
    if (this.ended === null) return Promise.resolve({ value: undefined, done: true });
    if (this.ended) return Promise.reject(this.ended);
    return new Promise((resolve, reject) => (this.waiter = { resolve, reject }));
  }

  /** Unsubscribes; a pending next() ends with done. */
  close(): void {
    if (this.ended === undefined && this.id) this.cancel(this.id);
    this.stop(null);
  }

  async return(): Promise<IteratorResult<MainExitEvent>> {
    this.close();
    return { value: undefined, done: true };
  }

  [Symbol.asyncIterator](): this {
    return this;
  }

  async [Symbol.asyncDispose](): Promise<void> {
    this.close();
  }
}
