/**
 * The exec stream's framing (after `GET /zones/:ref/exec` is upgraded to `bulkhead-exec/1`): each
 * frame is a type byte, a big-endian u32 payload length and the payload, at most MAX_FRAME bytes.
 * stdin, stdout and stderr each flow under a credit window (WINDOW frames grant more), so a reader
 * that stops reading one stream stalls that stream only, and no side buffers more than a window.
 * See API.md for the frame table.
 */
import { BadRequestError } from './errors';

export const EXEC_PROTOCOL = 'bulkhead-exec/1';

export const Frame = {
  /** client → server, first frame: JSON { argv, env?, cwd?, user?, tty?, timeoutMs? } */
  START: 0x01,
  STDIN: 0x02,
  STDIN_END: 0x03,
  STDOUT: 0x04,
  STDERR: 0x05,
  STDOUT_END: 0x06,
  STDERR_END: 0x07,
  /** client → server: JSON { cols, rows } */
  RESIZE: 0x08,
  /** client → server: JSON { signal } (a name such as "SIGTERM", or a number) */
  SIGNAL: 0x09,
  /** client → server: the caller's AbortSignal fired; the process is killed and wait() rejects AbortedError */
  ABORT: 0x0a,
  /** either way: u8 stream (STDIN, STDOUT or STDERR) + u32 bytes of credit */
  WINDOW: 0x0b,
  /** server → client: JSON { pid } */
  PID: 0x0c,
  /** server → client: JSON ProcessEnd; the last frame */
  EXIT: 0x0d,
  /** server → client: JSON WireError; the last frame */
  ERROR: 0x0e,
} as const;

export type FrameType = (typeof Frame)[keyof typeof Frame];

const KNOWN = new Set<number>(Object.values(Frame));
export const HEADER_BYTES = 5;
/** The largest payload a frame may carry; data is cut to DATA_CHUNK. */
export const MAX_FRAME = 1024 * 1024;
export const DATA_CHUNK = 64 * 1024;
/** Credit each side starts with, per stream. */
export const INITIAL_WINDOW = 1024 * 1024;

export function encodeFrame(type: FrameType, payload: Buffer = Buffer.alloc(0)): Buffer {
  const header = Buffer.allocUnsafe(HEADER_BYTES);
  header.writeUInt8(type, 0);
  header.writeUInt32BE(payload.length, 1);
  return Buffer.concat([header, payload]);
}

export function jsonFrame(type: FrameType, value: unknown): Buffer {
  return encodeFrame(type, Buffer.from(JSON.stringify(value)));
}

export function windowFrame(stream: FrameType, bytes: number): Buffer {
  const payload = Buffer.allocUnsafe(5);
  payload.writeUInt8(stream, 0);
  payload.writeUInt32BE(bytes, 1);
  return encodeFrame(Frame.WINDOW, payload);
}

export function parseWindow(payload: Buffer): { stream: number; bytes: number } {
  if (payload.length !== 5) throw new BadRequestError(400, `a WINDOW frame carries 5 bytes, not ${payload.length}`);
  return { stream: payload.readUInt8(0), bytes: payload.readUInt32BE(1) };
}

export function parseJson(type: number, payload: Buffer): unknown {
  try {
    return JSON.parse(payload.toString('utf8')) as unknown;
  } catch {
    throw new BadRequestError(400, `frame 0x${type.toString(16)} does not carry valid JSON`);
  }
}

/**
 * Cuts a byte stream into frames. Bytes come in any split; a frame past MAX_FRAME or of an unknown
 * type throws (the peer is broken or hostile: the connection is dropped).
 */
export class FrameReader {
  private buffered: Buffer[] = [];
  private size = 0;

  push(chunk: Buffer, onFrame: (type: number, payload: Buffer) => void): void {
    this.buffered.push(chunk);
    this.size += chunk.length;
    while (this.size >= HEADER_BYTES) {
      const head = this.peek(HEADER_BYTES);
      const type = head.readUInt8(0);
      const length = head.readUInt32BE(1);
      if (!KNOWN.has(type)) throw new BadRequestError(400, `unknown exec frame type 0x${type.toString(16)}`);
      if (length > MAX_FRAME) throw new BadRequestError(413, `exec frame of ${length} bytes; at most ${MAX_FRAME}`);
      if (this.size < HEADER_BYTES + length) return;
      const frame = this.take(HEADER_BYTES + length);
      onFrame(type, frame.subarray(HEADER_BYTES));
    }
  }

  private peek(n: number): Buffer {
    if (this.buffered[0]!.length < n) this.buffered = [Buffer.concat(this.buffered)];
    return this.buffered[0]!.subarray(0, n);
  }

  private take(n: number): Buffer {
    const all = this.buffered.length === 1 ? this.buffered[0]! : Buffer.concat(this.buffered);
    const out = all.subarray(0, n);
    const rest = all.subarray(n);
    this.buffered = rest.length ? [rest] : [];
    this.size = rest.length;
    return out;
  }
}
