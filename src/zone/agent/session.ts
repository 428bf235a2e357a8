/**
 * One session of the agent protocol over a connected Duplex (a vsock bridge, a Unix socket, a
 * child's stdio): the handshake, the stream table, credit accounting and the checks that every
 * agent frame belongs where it arrives. Services (process.ts, requests.ts) plug in as stream
 * handlers. The first violation fails the session: every open stream, pending ping and waiting
 * opener gets the same typed error at once, and the Duplex is destroyed.
 */
import type { Duplex } from 'node:stream';
import { AbortedError } from '../../errors';
import { AgentDisconnectedError, AgentProtocolError, AgentRequestError } from './errors';
import {
  AgentType,
  Channel,
  DATA_CHUNK,
  decodeError,
  decodeHelloOk,
  encodeFrame,
  encodeHello,
  FLAG_EOF,
  FrameDecoder,
  HostType,
  Op,
  Reader,
  WINDOW,
  Writer,
  type FrameHeader,
  type HelloOk,
  type OpCode,
} from './protocol';

/** What a service implements for one stream. Throwing AgentProtocolError fails the session. */
export interface StreamHandler {
  /** Channels the agent may send DATA on, and those it may grant CREDIT for. */
  readonly dataChannels: readonly number[];
  readonly creditChannels: readonly number[];
  onReply?(payload: Buffer): void;
  onData?(channel: number, bytes: Buffer): void;
  onCredit?(channel: number): void;
  onEvent?(payload: Buffer): void;
  onEnd(payload: Buffer): void;
  onError(err: AgentRequestError): void;
  /** The session died (err is its error). */
  onFail(err: Error): void;
}

export const OP_NAMES: Record<number, string> = Object.fromEntries(Object.entries(Op).map(([k, v]) => [v, k.toLowerCase()]));

interface StreamEntry {
  id: number;
  op: OpCode;
  handler: StreamHandler;
  /** Bytes the agent may still send us, per channel (we grant more as they are consumed). */
  allowance: number[];
  /** Bytes we may still send the agent, and totals to check its grants against. */
  credit: number[];
  sent: number[];
  granted: number[];
  creditWaiters: Array<() => void>;
}

export interface ConnectOptions {
  /** Deadline for the agent's answer to HELLO (default 10 000 ms). Nothing else has a deadline. */
  handshakeTimeoutMs?: number;
  signal?: AbortSignal;
}

export class AgentSession {
  /** Resolves (never rejects) with the error that ended the session. */
  readonly closed: Promise<Error>;
  hello: HelloOk | undefined;
  /** performance.now() of the last bytes from the agent (any frame counts as a sign of life). */
  lastHeardAt = performance.now();

  private dead: Error | undefined;
  private resolveClosed!: (e: Error) => void;
  private readonly decoder = new FrameDecoder();
  private readonly streams = new Map<number, StreamEntry>();
  private lastId = 0;
  private readonly pings = new Map<bigint, { resolve: () => void; reject: (e: Error) => void }>();
  private nextNonce = 1n;
  private readonly slotWaiters: Array<{ resolve: () => void; reject: (e: Error) => void }> = [];
  private helloWaiter: { resolve: () => void; reject: (e: Error) => void } | undefined;

  private constructor(private readonly io: Duplex) {
    this.closed = new Promise((resolve) => (this.resolveClosed = resolve));
    io.on('data', (chunk: Buffer) => this.onBytes(chunk));
    io.on('error', (err) => this.fail(new AgentDisconnectedError(`connection error: ${err.message}`, { cause: err })));
    io.on('end', () => this.fail(new AgentDisconnectedError('the agent closed the connection')));
    io.on('close', () => this.fail(new AgentDisconnectedError('the connection closed')));
  }

  static async connect(io: Duplex, opts: ConnectOptions = {}): Promise<AgentSession> {
    const s = new AgentSession(io);
    const timeoutMs = opts.handshakeTimeoutMs ?? 10_000;
    let timer: NodeJS.Timeout | undefined;
    const onAbort = () => s.fail(new AbortedError('connecting to the agent', { cause: opts.signal?.reason }));
    try {
      await new Promise<void>((resolve, reject) => {
        s.helloWaiter = { resolve, reject };
        if (opts.signal?.aborted) return onAbort();
        opts.signal?.addEventListener('abort', onAbort, { once: true });
        timer = setTimeout(() => s.fail(new AgentDisconnectedError(`no answer to HELLO within ${timeoutMs} ms`)), timeoutMs);
        s.write(encodeFrame(0, HostType.HELLO, 0, encodeHello()));
      });
    } finally {
      clearTimeout(timer);
      opts.signal?.removeEventListener('abort', onAbort);
      s.helloWaiter = undefined;
    }
    return s;
  }

  get isOpen(): boolean {
    return this.dead === undefined;
  }

  /** The error that ended the session, if it ended. */
  get error(): Error | undefined {
    return this.dead;
  }

  /** Ends the session from this side; pending calls reject with AgentDisconnectedError. */
  close(reason = 'closed by this side'): void {
    this.fail(new AgentDisconnectedError(reason));
  }

  async ping(): Promise<number> {
    this.throwIfDead();
    const nonce = this.nextNonce++;
    const started = performance.now();
    await new Promise<void>((resolve, reject) => {
      this.pings.set(nonce, { resolve, reject });
      this.write(encodeFrame(0, HostType.PING, 0, new Writer().u64(nonce).done()));
    });
    return performance.now() - started;
  }

  /** Opens a stream: waits for a free slot (the agent's stream limit), then sends the REQUEST. */
  async open(op: OpCode, payload: Buffer, handler: StreamHandler): Promise<number> {
    const max = this.hello?.maxStreams ?? 1;
    while (this.streams.size >= max) {
      this.throwIfDead();
      await new Promise<void>((resolve, reject) => this.slotWaiters.push({ resolve, reject }));
    }
    this.throwIfDead();
    if (this.lastId >= 0xffffffff) throw new AgentDisconnectedError('this session used up its 2^32 stream ids');
    const id = ++this.lastId;
    this.streams.set(id, {
      id,
      op,
      handler,
      allowance: [WINDOW, WINDOW, WINDOW, WINDOW],
      credit: [WINDOW, WINDOW, WINDOW, WINDOW],
      sent: [0, 0, 0, 0],
      granted: [0, 0, 0, 0],
      creditWaiters: [],
    });
    this.write(encodeFrame(id, HostType.REQUEST, 0, payload));
    return id;
  }

  /** Lets the agent send `bytes` more on `channel` (they were consumed). */
  grant(id: number, channel: number, bytes: number): void {
    const st = this.streams.get(id);
    if (!st || bytes <= 0 || this.dead) return;
    st.allowance[channel]! += bytes;
    this.write(encodeFrame(id, HostType.CREDIT, 0, new Writer().u8(channel).u32(bytes).done()));
  }

  /**
   * Sends bytes on a host→agent channel, waiting for credit (and for the socket to drain) as
   * needed; `eof` ends the channel. Resolves false when the stream ended first (bytes dropped).
   */
  async sendData(id: number, channel: number, bytes: Buffer, eof: boolean): Promise<boolean> {
    let off = 0;
    do {
      const st = this.streams.get(id);
      if (!st || this.dead) return false;
      if (st.credit[channel]! <= 0 && off < bytes.length) {
        await new Promise<void>((resolve) => st.creditWaiters.push(resolve));
        continue;
      }
      const n = Math.min(bytes.length - off, st.credit[channel]!, DATA_CHUNK);
      const last = off + n === bytes.length;
      st.credit[channel]! -= n;
      st.sent[channel]! += n;
      const payload = Buffer.concat([Buffer.from([channel]), bytes.subarray(off, off + n)]);
      off += n;
      const drained = this.write(encodeFrame(id, HostType.DATA, last && eof ? FLAG_EOF : 0, payload));
      if (!drained) await this.waitDrain();
    } while (off < bytes.length);
    return true;
  }

  signal(id: number, signo: number): void {
    if (this.streams.has(id)) this.write(encodeFrame(id, HostType.SIGNAL, 0, new Writer().u32(signo).done()));
  }

  resize(id: number, rows: number, cols: number): void {
    if (this.streams.has(id)) this.write(encodeFrame(id, HostType.RESIZE, 0, new Writer().u16(rows).u16(cols).done()));
  }

  cancel(id: number): void {
    if (this.streams.has(id)) this.write(encodeFrame(id, HostType.CANCEL, 0));
  }

  /** Raw bytes on the wire (tests use it to send what a correct client never would). */
  writeRaw(bytes: Buffer): void {
    this.write(bytes);
  }

  private throwIfDead(): void {
    if (this.dead) throw this.dead;
  }

  private write(frame: Buffer): boolean {
    if (this.dead || this.io.destroyed) return true;
    return this.io.write(frame);
  }

  private waitDrain(): Promise<void> {
    return new Promise((resolve) => {
      const done = () => {
        this.io.off('drain', done);
        this.io.off('close', done);
        resolve();
      };
      this.io.once('drain', done);
      this.io.once('close', done);
    });
  }

  private fail(err: Error): void {
    if (this.dead) return;
    this.dead = err;
    this.helloWaiter?.reject(err);
    const streams = [...this.streams.values()];
    this.streams.clear();
    for (const st of streams) {
      for (const w of st.creditWaiters) w();
      try {
        st.handler.onFail(err);
      } catch {
        // a handler must not keep the others from hearing about it
      }
    }
    for (const p of this.pings.values()) p.reject(err);
    this.pings.clear();
    for (const w of this.slotWaiters.splice(0)) w.reject(err);
    this.io.destroy();
    this.resolveClosed(err);
  }

  private onBytes(chunk: Buffer): void {
    if (this.dead) return;
    this.lastHeardAt = performance.now();
    try {
      this.decoder.push(chunk, (h, p) => {
        if (!this.dead) this.onFrame(h, p);
      });
    } catch (err) {
      this.fail(err instanceof AgentProtocolError ? err : new AgentProtocolError(`internal: ${(err as Error).message}`));
    }
  }

  private endStream(st: StreamEntry): void {
    this.streams.delete(st.id);
    for (const w of st.creditWaiters.splice(0)) w();
    this.slotWaiters.shift()?.resolve();
  }

  private onFrame(h: FrameHeader, p: Buffer): void {
    if (!this.hello) {
      if (h.type === AgentType.ERROR && h.stream === 0) {
        const e = decodeError(p);
        throw new AgentProtocolError(e.message, true);
      }
      if (h.type !== AgentType.HELLO_OK) throw new AgentProtocolError(`frame type 0x${h.type.toString(16)} before HELLO_OK`);
      this.hello = decodeHelloOk(p);
      this.helloWaiter?.resolve();
      return;
    }
    if (h.stream === 0) {
      if (h.type === AgentType.HELLO_OK) throw new AgentProtocolError('a second HELLO_OK');
      if (h.type === AgentType.ERROR) throw new AgentProtocolError(decodeError(p).message, true);
      // PONG
      const r = new Reader(p, 'PONG');
      r.u64();
      r.end();
      const nonce = p.readBigUInt64LE(0);
      const ping = this.pings.get(nonce);
      if (!ping) throw new AgentProtocolError(`PONG for nonce ${nonce}, which was never sent`);
      this.pings.delete(nonce);
      ping.resolve();
      return;
    }
    const st = this.streams.get(h.stream);
    if (!st) throw new AgentProtocolError(`frame type 0x${h.type.toString(16)} for stream ${h.stream}, which is not open`);
    const name = OP_NAMES[st.op] ?? String(st.op);
    switch (h.type) {
      case AgentType.REPLY:
        if (!st.handler.onReply) throw new AgentProtocolError(`REPLY on a ${name} stream`);
        st.handler.onReply(p);
        return;
      case AgentType.DATA: {
        if (p.length < 1) throw new AgentProtocolError('DATA without a channel byte');
        const ch = p[0]!;
        const n = p.length - 1;
        if (!st.handler.dataChannels.includes(ch)) throw new AgentProtocolError(`DATA on channel ${ch} of a ${name} stream`);
        if (n > DATA_CHUNK) throw new AgentProtocolError(`DATA of ${n} bytes exceeds ${DATA_CHUNK}`);
        if (n > st.allowance[ch]!) throw new AgentProtocolError(`DATA beyond the credit granted on channel ${ch}`);
        st.allowance[ch]! -= n;
        st.handler.onData?.(ch, p.subarray(1));
        return;
      }
      case AgentType.CREDIT: {
        const r = new Reader(p, 'CREDIT');
        const ch = r.u8();
        const n = r.u32();
        r.end();
        if (!st.handler.creditChannels.includes(ch)) throw new AgentProtocolError(`CREDIT on channel ${ch} of a ${name} stream`);
        if (st.granted[ch]! + n > st.sent[ch]!) {
          throw new AgentProtocolError(`CREDIT returns more than was sent on channel ${ch}`);
        }
        st.granted[ch]! += n;
        st.credit[ch]! += n;
        for (const w of st.creditWaiters.splice(0)) w();
        st.handler.onCredit?.(ch);
        return;
      }
      case AgentType.EVENT:
        if (!st.handler.onEvent) throw new AgentProtocolError(`EVENT on a ${name} stream`);
        st.handler.onEvent(p);
        return;
      case AgentType.END:
        // The handler parses first: if the payload is bad, the stream is still in the table and
        // hears about the failure like every other one.
        st.handler.onEnd(p);
        this.endStream(st);
        return;
      case AgentType.ERROR: {
        const e = decodeError(p);
        if (e.code === 1) throw new AgentProtocolError(e.message, true);
        this.endStream(st);
        st.handler.onError(new AgentRequestError(name, AgentRequestError.kindOf(e.code)!, e.errno, e.message));
        return;
      }
      default:
        throw new AgentProtocolError(`frame type 0x${h.type.toString(16)} on a stream`);
    }
  }
}

export { Channel };
