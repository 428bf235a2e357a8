/**
 * Opens a layer blob on disk as the tar stream inside it: decompressed by what its first bytes
 * say (gzip by zlib, zstd by Debian's `zstd`, since Node 20's zlib has no zstd), hashed for its
 * diff ID, and counted against the build's byte budget, so a decompression bomb stops at the
 * limit instead of filling the disk.
 */
import { spawn } from 'node:child_process';
import { createReadStream, closeSync, openSync, readSync } from 'node:fs';
import { PassThrough, Transform, pipeline, type Readable, type TransformCallback } from 'node:stream';
import * as zlib from 'node:zlib';
import { which } from '../util/process';
import { DigestStream } from './digest';
import { HostileLayerError, ImageBuildError, InvalidImageError } from './errors';
import { sniffCompression, type LayerCompression } from './media-types';

/** Bytes of uncompressed layer data this build may still read. Shared by all layers of one build. */
export class ByteBudget {
  used = 0;
  constructor(readonly limit: number) {}
  get remaining(): number {
    return this.limit - this.used;
  }
}

export interface OpenedLayer {
  readonly tar: Readable;
  readonly compression: LayerCompression;
  /** sha256 of the uncompressed tar; valid after `tar` has ended. */
  diffId(): string;
  uncompressedBytes(): number;
  /** Resolves once every stream is closed and any zstd child has exited: await it before cleaning up. */
  readonly settled: Promise<void>;
}

export function openLayer(file: string, layer: string, budget: ByteBudget): OpenedLayer {
  const compression = sniffCompression(readHead(file, 4));
  const hasher = new DigestStream();
  const limiter = new BudgetStream(budget, layer);
  let settle!: () => void;
  const pipelineDone = new Promise<void>((resolve) => (settle = resolve));
  // pipeline() destroys every stage with the first error; applyLayer reads it from the tar side
  // and turns zlib's Z_* errors into InvalidImageError.
  const done = (): void => settle();
  let childExited: Promise<void> = Promise.resolve();
  if (compression === 'zstd') {
    const z = zstdDecompress(file, layer);
    childExited = z.exited;
    pipeline(z.stream, hasher, limiter, done);
  } else if (compression === 'gzip') {
    // Accept several concatenated gzip members (Node's gunzip does), as tar+gzip tools may write.
    pipeline(createReadStream(file), zlib.createGunzip(), hasher, limiter, done);
  } else {
    pipeline(createReadStream(file), hasher, limiter, done);
  }
  const settled = Promise.all([pipelineDone, childExited]).then(() => undefined);
  return { tar: limiter, compression, diffId: () => hasher.digest(), uncompressedBytes: () => hasher.bytes, settled };
}

function readHead(file: string, n: number): Buffer {
  const fd = openSync(file, 'r');
  try {
    const buf = Buffer.alloc(n);
    const got = readSync(fd, buf, 0, n, 0);
    return buf.subarray(0, got);
  } finally {
    closeSync(fd);
  }
}


class BudgetStream extends Transform {
  constructor(
    private readonly budget: ByteBudget,
    private readonly layer: string,
  ) {
    super();
  }

  override _transform(chunk: Buffer, _enc: BufferEncoding, done: TransformCallback): void {
    this.budget.used += chunk.length;
    if (this.budget.used > this.budget.limit) {
      done(new HostileLayerError(this.layer, undefined, `the image unpacks to more than ${this.budget.limit} bytes (the maxUnpackedBytes limit)`));
      return;
    }
    done(null, chunk);
  }
}

/** `zstd -dc FILE` as a stream; a non-zero exit becomes the stream's error, and closing the stream early kills it. */
function zstdDecompress(file: string, layer: string): { stream: Readable; exited: Promise<void> } {
  const zstd = which('zstd');
  const out = new PassThrough();
  if (!zstd) {
    process.nextTick(() => out.destroy(new ImageBuildError(`layer ${layer} is zstd-compressed and the zstd command is missing (Debian package zstd)`)));
    return { stream: out, exited: Promise.resolve() };
  }
  const child = spawn(zstd, ['-d', '-c', '-q', '--no-progress', '--', file], { stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr.setEncoding('utf8').on('data', (d: string) => {
    if (stderr.length < 4096) stderr += d;
  });
  child.stdout.pipe(out, { end: false });
  const exited = new Promise<void>((resolve) => {
    child.once('close', () => resolve());
    child.once('error', () => resolve());
  });
  child.on('error', (err) => out.destroy(new ImageBuildError(`cannot run zstd: ${err.message}`, { cause: err })));
  child.on('close', (code, signal) => {
    if (code === 0) out.end();
    else if (!out.destroyed) out.destroy(new InvalidImageError(`layer ${layer}`, `corrupt zstd data: zstd ${signal ? `was killed by ${signal}` : `exited with ${code}`}: ${stderr.trim()}`));
  });
  out.on('close', () => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  });
  return { stream: out, exited };
}
