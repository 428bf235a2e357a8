/**
 * The agent protocol, host side: constants, the frame header, encoders of what the host sends and
 * strict decoders of what the agent sends. native/agent/PROTOCOL.md is the specification and
 * native/agent/proto.h the C mirror; keep the three in step.
 *
 * Decoders trust nothing: every read is bounds-checked, every count and length is held to its
 * limit, and a payload must be consumed exactly. Any violation throws AgentProtocolError.
 */
import { AgentProtocolError } from './errors';

export const PROTOCOL_VERSION = 1;
export const MAGIC = 0x47414842; // "BHAG" as a little-endian u32
export const HEADER_SIZE = 12;
export const FRAME_MAX = 1 << 20;
export const DATA_CHUNK = 65536;
export const WINDOW = 256 * 1024;
export const MAX_STREAMS = 64;
export const PATH_MAX = 4096;
export const ARGV_MAX = 1024;
export const ENV_MAX = 1024;
export const STRING_MAX = 65536;
export const USER_MAX = 256;
export const HOSTNAME_MAX = 64;
export const MESSAGE_MAX = 1024;
export const PROCS_MAX = 1024;
export const CMDLINE_MAX = 256;
export const LIST_BATCH = 256;
export const VERSION_STRING_MAX = 256;

/** Host → agent frame types. */
export const HostType = {
  HELLO: 0x01,
  PING: 0x02,
  REQUEST: 0x03,
  DATA: 0x04,
  CREDIT: 0x05,
  SIGNAL: 0x06,
  RESIZE: 0x07,
  CANCEL: 0x08,
} as const;

/** Agent → host frame types. */
export const AgentType = {
  HELLO_OK: 0x41,
  PONG: 0x42,
  REPLY: 0x43,
  DATA: 0x44,
  CREDIT: 0x45,
  EVENT: 0x46,
  END: 0x47,
  ERROR: 0x48,
} as const;

export const FLAG_EOF = 0x01;

export const Channel = { STDIN: 0, STDOUT: 1, STDERR: 2, FILE: 3 } as const;

export const Op = {
  LAUNCH: 1,
  EXEC: 2,
  SIGNAL_MAIN: 3,
  SHUTDOWN: 4,
  EVENTS: 5,
  METRICS: 6,
  FILE_READ: 16,
  FILE_WRITE: 17,
  STAT: 18,
  LIST: 19,
  MKDIR: 20,
  REMOVE: 21,
  RENAME: 22,
} as const;
export type OpCode = (typeof Op)[keyof typeof Op];

export const EXEC_TTY = 0x01;
export const EXEC_STDIN = 0x02;
export const LAUNCH_STAY_UP = 0x01;
export const LAUNCH_CONSOLE = 0x02;

export interface FrameHeader {
  length: number;
  stream: number;
  type: number;
  flags: number;
}

// ---- encoding -------------------------------------------------------------------------------

/** Builds a payload. */
export class Writer {
  private parts: Buffer[] = [];

  u8(v: number): this {
    const b = Buffer.alloc(1);
    b.writeUInt8(v);
    this.parts.push(b);
    return this;
  }
  u16(v: number): this {
    const b = Buffer.alloc(2);
    b.writeUInt16LE(v);
    this.parts.push(b);
    return this;
  }
  u32(v: number): this {
    const b = Buffer.alloc(4);
    b.writeUInt32LE(v >>> 0);
    this.parts.push(b);
    return this;
  }
  u64(v: bigint | number): this {
    const b = Buffer.alloc(8);
    b.writeBigUInt64LE(BigInt(v));
    this.parts.push(b);
    return this;
  }
  bytes(b: Buffer): this {
    this.parts.push(b);
    return this;
  }
  str(s: string | Buffer): this {
    const b = typeof s === 'string' ? Buffer.from(s, 'utf8') : s;
    return this.u32(b.length).bytes(b);
  }
  done(): Buffer {
    return Buffer.concat(this.parts);
  }
}

export function encodeFrame(stream: number, type: number, flags: number, payload: Buffer = Buffer.alloc(0)): Buffer {
  if (payload.length > FRAME_MAX) throw new RangeError(`frame payload of ${payload.length} bytes exceeds ${FRAME_MAX}`);
  const h = Buffer.alloc(HEADER_SIZE);
  h.writeUInt32LE(payload.length, 0);
  h.writeUInt32LE(stream >>> 0, 4);
  h.writeUInt8(type, 8);
  h.writeUInt8(flags, 9);
  return payload.length ? Buffer.concat([h, payload]) : h;
}

export function encodeHello(): Buffer {
  return new Writer().u32(MAGIC).u16(PROTOCOL_VERSION).u16(PROTOCOL_VERSION).done();
}

/** What an EXEC or LAUNCH carries; the client validates it before encoding. */
export interface ExecPayload {
  argv: readonly string[];
  env: readonly string[];
  cwd: string;
  user: string;
  tty: boolean;
  stdin: boolean;
  rows: number;
  cols: number;
  hostname?: string;
  stayUp?: boolean;
  console?: boolean;
}

export function encodeExec(op: typeof Op.EXEC | typeof Op.LAUNCH, e: ExecPayload): Buffer {
  const w = new Writer().u8(op).u16(e.argv.length);
  for (const a of e.argv) w.str(a);
  w.u16(e.env.length);
  for (const kv of e.env) w.str(kv);
  w.str(e.cwd).str(e.user);
  w.u8((e.tty ? EXEC_TTY : 0) | (e.stdin ? EXEC_STDIN : 0));
  w.u16(e.rows).u16(e.cols);
  if (op === Op.LAUNCH) {
    w.str(e.hostname ?? '');
    w.u8((e.stayUp ? LAUNCH_STAY_UP : 0) | (e.console ? LAUNCH_CONSOLE : 0));
  }
  return w.done();
}

// ---- decoding -------------------------------------------------------------------------------

/** Reads a payload; every failure is an AgentProtocolError naming `what`. */
export class Reader {
  private off = 0;

  constructor(
    private readonly buf: Buffer,
    private readonly what: string,
  ) {}

  private need(n: number): void {
    if (this.buf.length - this.off < n) throw new AgentProtocolError(`${this.what} is truncated`);
  }
  u8(): number {
    this.need(1);
    return this.buf.readUInt8(this.off++);
  }
  u16(): number {
    this.need(2);
    const v = this.buf.readUInt16LE(this.off);
    this.off += 2;
    return v;
  }
  u32(): number {
    this.need(4);
    const v = this.buf.readUInt32LE(this.off);
    this.off += 4;
    return v;
  }
  i64(): number {
    this.need(8);
    const v = this.buf.readBigInt64LE(this.off);
    this.off += 8;
    return Number(v);
  }
  u64(): number {
    this.need(8);
    const v = this.buf.readBigUInt64LE(this.off);
    this.off += 8;
    return Number(v);
  }
  /** A u32-length string of at most `max` bytes, decoded as UTF-8 (invalid bytes become U+FFFD). */
  str(max: number, field: string): string {
    const len = this.u32();
    if (len > max) throw new AgentProtocolError(`${this.what}: ${field} of ${len} bytes exceeds ${max}`);
    this.need(len);
    const s = this.buf.toString('utf8', this.off, this.off + len);
    this.off += len;
    return s;
  }
  bool(field: string): boolean {
    const v = this.u8();
    if (v > 1) throw new AgentProtocolError(`${this.what}: ${field} is ${v}, not 0 or 1`);
    return v === 1;
  }
  get remaining(): number {
    return this.buf.length - this.off;
  }
  end(): void {
    if (this.off !== this.buf.length) {
      throw new AgentProtocolError(`${this.what} has ${this.buf.length - this.off} trailing bytes`);
    }
  }
}

export function decodeHeader(b: Buffer): FrameHeader {
  const h = { length: b.readUInt32LE(0), stream: b.readUInt32LE(4), type: b.readUInt8(8), flags: b.readUInt8(9) };
  if (b.readUInt16LE(10) !== 0) throw new AgentProtocolError('reserved header bytes are not zero');
  if (h.length > FRAME_MAX) throw new AgentProtocolError(`a frame of ${h.length} bytes exceeds the ${FRAME_MAX}-byte cap`);
  const known = Object.values(AgentType) as number[];
  if (!known.includes(h.type)) throw new AgentProtocolError(`unknown frame type 0x${h.type.toString(16)}`);
  if (h.flags !== 0) throw new AgentProtocolError(`frame flags 0x${h.flags.toString(16)} on type 0x${h.type.toString(16)}`);
  const control = h.type === AgentType.HELLO_OK || h.type === AgentType.PONG;
  if (control && h.stream !== 0) throw new AgentProtocolError(`HELLO_OK/PONG on stream ${h.stream}, not 0`);
  if (!control && h.type !== AgentType.ERROR && h.stream === 0) {
    throw new AgentProtocolError(`frame type 0x${h.type.toString(16)} on stream 0`);
  }
  return h;
}

/**
 * Splits a byte stream into frames. Holds at most one frame (capped by the header check) plus
 * one header; throws AgentProtocolError on a bad header.
 */
export class FrameDecoder {
  private chunks: Buffer[] = [];
  private buffered = 0;
  private header: FrameHeader | undefined;

  push(chunk: Buffer, onFrame: (h: FrameHeader, payload: Buffer) => void): void {
    this.chunks.push(chunk);
    this.buffered += chunk.length;
    for (;;) {
      if (!this.header) {
        if (this.buffered < HEADER_SIZE) return;
        this.header = decodeHeader(this.take(HEADER_SIZE));
      }
      if (this.buffered < this.header.length) return;
      const h = this.header;
      this.header = undefined;
      onFrame(h, this.take(h.length));
    }
  }

  private take(n: number): Buffer {
    if (n === 0) return Buffer.alloc(0);
    const all = this.chunks.length === 1 ? this.chunks[0]! : Buffer.concat(this.chunks);
    const out = all.subarray(0, n);
    const rest = all.subarray(n);
    this.chunks = rest.length ? [rest] : [];
    this.buffered = rest.length;
    return out;
  }
}

export interface HelloOk {
  version: number;
  frameMax: number;
  window: number;
  maxStreams: number;
  agentPid: number;
  mainState: 'none' | 'running' | 'exited';
  agentVersion: string;
}

export function decodeHelloOk(p: Buffer): HelloOk {
  const r = new Reader(p, 'HELLO_OK');
  const version = r.u16();
  const frameMax = r.u32();
  const window = r.u32();
  const maxStreams = r.u16();
  const agentPid = r.u32();
  const state = r.u8();
  const agentVersion = r.str(VERSION_STRING_MAX, 'agent version');
  r.end();
  if (version !== PROTOCOL_VERSION) throw new AgentProtocolError(`HELLO_OK chose version ${version}; we speak ${PROTOCOL_VERSION}`);
  if (frameMax !== FRAME_MAX || window !== WINDOW) {
    throw new AgentProtocolError(`HELLO_OK limits (frame ${frameMax}, window ${window}) differ from version 1's`);
  }
  if (maxStreams < 1 || maxStreams > MAX_STREAMS) throw new AgentProtocolError(`HELLO_OK max streams ${maxStreams} outside 1..${MAX_STREAMS}`);
  if (state > 2) throw new AgentProtocolError(`HELLO_OK main state ${state}`);
  return { version, frameMax, window, maxStreams, agentPid, mainState: (['none', 'running', 'exited'] as const)[state]!, agentVersion };
}

export interface AgentErrorPayload {
  code: number;
  errno: number;
  message: string;
}

export function decodeError(p: Buffer): AgentErrorPayload {
  const r = new Reader(p, 'ERROR');
  const code = r.u16();
  const errno = r.u32();
  const message = r.str(MESSAGE_MAX, 'message');
  r.end();
  if (code < 1 || code > 8) throw new AgentProtocolError(`ERROR code ${code} is not one of 1..8`);
  return { code, errno, message };
}

export interface ExitStatus {
  /** The exit code, or null when a signal ended the process. */
  exitCode: number | null;
  /** The signal's name (SIGKILL, ...) or `SIG<number>`, or null after a normal exit. */
  signal: string | null;
  signalNumber: number | null;
  coreDumped: boolean;
}

const SIGNAL_NAMES: Record<number, string> = {
  1: 'SIGHUP', 2: 'SIGINT', 3: 'SIGQUIT', 4: 'SIGILL', 5: 'SIGTRAP', 6: 'SIGABRT', 7: 'SIGBUS', 8: 'SIGFPE',
  9: 'SIGKILL', 10: 'SIGUSR1', 11: 'SIGSEGV', 12: 'SIGUSR2', 13: 'SIGPIPE', 14: 'SIGALRM', 15: 'SIGTERM',
  16: 'SIGSTKFLT', 17: 'SIGCHLD', 18: 'SIGCONT', 19: 'SIGSTOP', 20: 'SIGTSTP', 21: 'SIGTTIN', 22: 'SIGTTOU',
  23: 'SIGURG', 24: 'SIGXCPU', 25: 'SIGXFSZ', 26: 'SIGVTALRM', 27: 'SIGPROF', 28: 'SIGWINCH', 29: 'SIGIO',
  30: 'SIGPWR', 31: 'SIGSYS',
};

/** Linux signal numbers by name (the zone is Linux on x86-64 whatever the host is). */
export const SIGNAL_NUMBERS: Record<string, number> = Object.fromEntries(
  Object.entries(SIGNAL_NAMES).map(([n, name]) => [name, Number(n)]),
);

export function signalName(n: number): string {
  return SIGNAL_NAMES[n] ?? `SIG${n}`;
}

export function readExitStatus(r: Reader): ExitStatus {
  const kind = r.u8();
  const value = r.u32();
  const core = r.bool('core dumped');
  if (kind === 0) {
    if (value > 255 || core) throw new AgentProtocolError(`exit status ${value}${core ? ' with a core dump' : ''} is impossible`);
    return { exitCode: value, signal: null, signalNumber: null, coreDumped: false };
  }
  if (kind === 1) {
    if (value < 1 || value > 64) throw new AgentProtocolError(`signal ${value} is outside 1..64`);
    return { exitCode: null, signal: signalName(value), signalNumber: value, coreDumped: core };
  }
  throw new AgentProtocolError(`exit status kind ${kind} is neither 0 (exited) nor 1 (signalled)`);
}

export type FileType = 'other' | 'file' | 'directory' | 'symlink' | 'char-device' | 'block-device' | 'fifo' | 'socket';
const FILE_TYPES: readonly FileType[] = ['other', 'file', 'directory', 'symlink', 'char-device', 'block-device', 'fifo', 'socket'];

export interface FileStat {
  type: FileType;
  /** Permission bits with setuid/setgid/sticky (st_mode & 0o7777). */
  mode: number;
  uid: number;
  gid: number;
  size: number;
  mtimeMs: number;
}

export function readStat(r: Reader): FileStat {
  const t = r.u8();
  const type = FILE_TYPES[t];
  if (!type) throw new AgentProtocolError(`file type ${t} is not one of 0..7`);
  const mode = r.u32();
  if (mode > 0o7777) throw new AgentProtocolError(`file mode 0o${mode.toString(8)} above 0o7777`);
  const uid = r.u32();
  const gid = r.u32();
  const size = r.u64();
  const sec = r.i64();
  const nsec = r.u32();
  if (nsec >= 1e9) throw new AgentProtocolError(`mtime nanoseconds ${nsec} >= 1e9`);
  return { type, mode, uid, gid, size, mtimeMs: sec * 1000 + Math.floor(nsec / 1e6) };
}

export interface DirEntry extends FileStat {
  name: string;
}

export function decodeListBatch(p: Buffer): DirEntry[] {
  const r = new Reader(p, 'LIST reply');
  const n = r.u16();
  if (n < 1 || n > LIST_BATCH) throw new AgentProtocolError(`LIST batch of ${n} entries outside 1..${LIST_BATCH}`);
  const out: DirEntry[] = [];
  for (let i = 0; i < n; i++) {
    const name = r.str(255, 'entry name');
    if (name === '' || name.includes('/') || name === '.' || name === '..') {
      throw new AgentProtocolError(`LIST entry name ${JSON.stringify(name)} is not a file name`);
    }
    out.push({ name, ...readStat(r) });
  }
  r.end();
  return out;
}

export interface PsiFigures {
  /** Percent of time stalled, averaged over 10 s, 60 s and 300 s. */
  avg10: number;
  avg60: number;
  avg300: number;
  totalUs: number;
}

export interface ProcessInfo {
  pid: number;
  ppid: number;
  uid: number;
  /** /proc state letter: R, S, D, Z, T, ... */
  state: string;
  threads: number;
  rssBytes: number;
  userTicks: number;
  systemTicks: number;
  /** Clock ticks after boot when it started. */
  startTicks: number;
  command: string;
  cmdline: string;
}

export interface GuestMetrics {
  uptimeMs: number;
  memory: {
    totalBytes: number;
    freeBytes: number;
    availableBytes: number;
    buffersBytes: number;
    cachedBytes: number;
    shmemBytes: number;
    swapTotalBytes: number;
    swapFreeBytes: number;
  };
  /** Memory pressure (PSI), or null when the zone kernel has no CONFIG_PSI. */
  pressure: { some: PsiFigures; full: PsiFigures } | null;
  cpu: {
    ticksPerSecond: number;
    cpus: number;
    userTicks: number;
    niceTicks: number;
    systemTicks: number;
    idleTicks: number;
    iowaitTicks: number;
    irqTicks: number;
    softirqTicks: number;
    stealTicks: number;
  };
  load: [number, number, number];
  processes: ProcessInfo[];
  /** More than PROCS_MAX processes: the rest are not listed. */
  processesTruncated: boolean;
}

function readPsi(r: Reader): PsiFigures {
  const avg = () => {
    const v = r.u32();
    if (v > 10000) throw new AgentProtocolError(`PSI average ${v / 100}% above 100%`);
    return v / 100;
  };
  return { avg10: avg(), avg60: avg(), avg300: avg(), totalUs: r.u64() };
}

export function decodeMetrics(p: Buffer): GuestMetrics {
  const r = new Reader(p, 'METRICS');
  const uptimeMs = r.u64();
  const memory = {
    totalBytes: r.u64(),
    freeBytes: r.u64(),
    availableBytes: r.u64(),
    buffersBytes: r.u64(),
    cachedBytes: r.u64(),
    shmemBytes: r.u64(),
    swapTotalBytes: r.u64(),
    swapFreeBytes: r.u64(),
  };
  const hasPsi = r.bool('PSI present');
  const some = readPsi(r);
  const full = readPsi(r);
  const cpu = {
    ticksPerSecond: r.u32(),
    cpus: r.u16(),
    userTicks: r.u64(),
    niceTicks: r.u64(),
    systemTicks: r.u64(),
    idleTicks: r.u64(),
    iowaitTicks: r.u64(),
    irqTicks: r.u64(),
    softirqTicks: r.u64(),
    stealTicks: r.u64(),
  };
  const load: [number, number, number] = [r.u32() / 100, r.u32() / 100, r.u32() / 100];
  const count = r.u32();
  const processesTruncated = r.bool('processes truncated');
  if (count > PROCS_MAX) throw new AgentProtocolError(`METRICS lists ${count} processes, above ${PROCS_MAX}`);
  const processes: ProcessInfo[] = [];
  for (let i = 0; i < count; i++) {
    const pid = r.u32();
    const ppid = r.u32();
    const uid = r.u32();
    const state = String.fromCharCode(r.u8());
    processes.push({
      pid,
      ppid,
      uid,
      state,
      threads: r.u32(),
      rssBytes: r.u64(),
      userTicks: r.u64(),
      systemTicks: r.u64(),
      startTicks: r.u64(),
      command: r.str(31, 'command'),
      cmdline: r.str(CMDLINE_MAX, 'cmdline'),
    });
  }
  r.end();
  return { uptimeMs, memory, pressure: hasPsi ? { some, full } : null, cpu, load, processes, processesTruncated };
}

export interface MainExitEvent {
  type: 'main-exit';
  pid: number;
  status: ExitStatus;
}

export function decodeEvent(p: Buffer): MainExitEvent {
  const r = new Reader(p, 'EVENT');
  const kind = r.u8();
  if (kind !== 1) throw new AgentProtocolError(`unknown event kind ${kind}`);
  const pid = r.u32();
  const status = readExitStatus(r);
  r.end();
  return { type: 'main-exit', pid, status };
}
