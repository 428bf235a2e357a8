/**
 * Content digests. Only sha256 is accepted: it is what every registry and tool writes, and one
 * algorithm means one way to verify. Verification is by the bytes read, never by a name on disk.
 */
import { createHash, type Hash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { Transform, type TransformCallback } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { DigestMismatchError } from './errors';

const DIGEST = /^sha256:[a-f0-9]{64}$/;

export function isDigest(value: unknown): value is string {
  return typeof value === 'string' && DIGEST.test(value);
}

/** The same test for a string already known to be one (a type guard would narrow the other branch to never). */
export function looksLikeDigest(value: string): boolean {
  return DIGEST.test(value);
}

export function digestHex(digest: string): string {
  return digest.slice('sha256:'.length);
}

export function sha256(data: Buffer | string): string {
  return `sha256:${createHash('sha256').update(data).digest('hex')}`;
}

export async function sha256File(file: string, signal?: AbortSignal): Promise<{ digest: string; size: number }> {
  const counter = new DigestStream();
  await pipeline(createReadStream(file), counter, async function* (source) {
    for await (const _ of source) {
      // drained: DigestStream has seen the bytes
    }
  }, { signal });
  return { digest: counter.digest(), size: counter.bytes };
}

export async function verifyFile(file: string, what: string, expected: { digest: string; size?: number }, signal?: AbortSignal): Promise<void> {
  const actual = await sha256File(file, signal);
  if (expected.size !== undefined && actual.size !== expected.size) {
    throw new DigestMismatchError(`${what} size`, `${expected.size} bytes`, `${actual.size} bytes`);
  }
  if (actual.digest !== expected.digest) throw new DigestMismatchError(what, expected.digest, actual.digest);
}

export function verifyBytes(data: Buffer, what: string, expected: { digest: string; size?: number }): void {
  if (expected.size !== undefined && data.length !== expected.size) {
    throw new DigestMismatchError(`${what} size`, `${expected.size} bytes`, `${data.length} bytes`);
  }
  const actual = sha256(data);
  if (actual !== expected.digest) throw new DigestMismatchError(what, expected.digest, actual);
}

/** A pass-through stream that hashes and counts what flows through it. */
export class DigestStream extends Transform {
  private readonly hash: Hash = createHash('sha256');
  bytes = 0;

  override _transform(chunk: Buffer, _enc: BufferEncoding, done: TransformCallback): void {
    this.hash.update(chunk);
    this.bytes += chunk.length;
    done(null, chunk);
  }

  /** Valid once the stream has ended. */
  digest(): string {
    return `sha256:${this.hash.copy().digest('hex')}`;
  }
}
