/**
 * Unpacks an image archive (an `oci-archive:` tar, a `docker save` tar, either optionally gzipped)
 * into a work dir so that it can be read as a layout. The archive is untrusted like a layer: only
 * regular files, directories and symlinks are taken (symlinks are stored, never followed outside
 * the dir), names go through the same checks as layer entries, and counts and bytes are bounded.
 */
import * as fs from 'node:fs';
import * as fsp from 'node:fs/promises';
import { closeSync, openSync, readSync } from 'node:fs';
import { pipeline } from 'node:stream/promises';
import { Transform, type TransformCallback } from 'node:stream';
import * as zlib from 'node:zlib';
import * as tarStream from 'tar-stream';
import { AbortedError } from '../errors';
import { entryComponents } from './apply-layer';
import { InvalidImageError } from './errors';
import { type ImageLimits } from './limits';
import { sniffCompression } from './media-types';
import { lstatOrUndefined, StagingRoot } from './staging-root';

const MAX_ARCHIVE_ENTRIES = 100_000;

export async function extractArchive(file: string, dest: string, limits: ImageLimits, signal?: AbortSignal): Promise<void> {
  const head = Buffer.alloc(4);
  const fd = openSync(file, 'r');
  let got: number;
  try {
    got = readSync(fd, head, 0, 4, 0);
  } finally {
    closeSync(fd);
  }
  const compression = sniffCompression(head.subarray(0, got));
  if (compression === 'zstd') throw new InvalidImageError(file, 'zstd-compressed archives are not supported; decompress it first (zstd -d)');
  const root = new StagingRoot(dest, limits.maxSymlinkHops);
  const extract = tarStream.extract();
  const budget = new Limit(limits.maxBlobBytes, file);
  const source = fs.createReadStream(file);
  const stages = compression === 'gzip' ? [source, zlib.createGunzip(), budget, extract] : [source, budget, extract];
  let feedError: unknown;
  const feed = (pipeline as (...s: unknown[]) => Promise<void>)(...stages, { signal }).catch((err: unknown) => {
    feedError = err;
  });
  let count = 0;
  try {
    for await (const entry of extract) {
      try {
        if (++count > MAX_ARCHIVE_ENTRIES) throw new InvalidImageError(file, `more than ${MAX_ARCHIVE_ENTRIES} entries`);
        await extractEntry(entry, root, file, limits);
      } finally {
        entry.resume();
      }
    }
  } catch (err) {
    source.destroy();
    extract.destroy();
    await feed;
    throw explain(err, feedError, file, signal);
  }
  await feed;
  if (feedError) throw explain(feedError, undefined, file, signal);
}

function explain(err: unknown, feedError: unknown, file: string, signal?: AbortSignal): unknown {
  if (signal?.aborted) return new AbortedError(`unpacking ${file}`, { cause: signal.reason });
  for (const e of [feedError, err]) if (e instanceof InvalidImageError) return e;
  const e = (err ?? feedError) as Error;
  return new InvalidImageError(file, `not a readable image archive: ${e?.message ?? String(e)}`, { cause: e });
}

type Entry = tarStream.Extract extends AsyncIterable<infer S> ? S : never;

async function extractEntry(entry: Entry, root: StagingRoot, file: string, limits: ImageLimits): Promise<void> {
  const h = entry.header;
  if (!Number.isSafeInteger(h.size) || h.size < 0) throw new InvalidImageError(file, `entry ${JSON.stringify(h.name)} has no readable size`); // see apply-layer.ts
  let parts: string[];
  try {
    parts = entryComponents(h.name, file, limits);
  } catch (err) {
    throw new InvalidImageError(file, (err as Error).message);
  }
  if (parts.length === 0) return; // the archive's "./"
  const parent = root.ensureParent(parts.slice(0, -1), file, h.name);
  const target = root.abs([...parent, parts[parts.length - 1]!]);
  if (lstatOrUndefined(target)) throw new InvalidImageError(file, `${JSON.stringify(h.name)} appears twice`);
  switch (h.type) {
    case 'directory':
      fs.mkdirSync(target, 0o700);
      return;
    case 'file':
    case 'contiguous-file': {
      const fh = await fsp.open(target, fs.constants.O_WRONLY | fs.constants.O_CREAT | fs.constants.O_EXCL | fs.constants.O_NOFOLLOW, 0o600);
      try {
        for await (const chunk of entry as AsyncIterable<Buffer>) await fh.write(chunk);
      } finally {
        await fh.close();
      }
      return;
    }
    case 'symlink':
      if (!h.linkname || Buffer.byteLength(h.linkname) > limits.maxPathBytes) throw new InvalidImageError(file, `${JSON.stringify(h.name)} is a symlink without a sane target`);
      fs.symlinkSync(h.linkname, target);
      return;
    default:
      throw new InvalidImageError(file, `${JSON.stringify(h.name)} is a ${h.type}; an image archive holds only files, directories and symlinks`);
  }
}

class Limit extends Transform {
  private bytes = 0;
  constructor(
    private readonly max: number,
    private readonly file: string,
  ) {
    super();
  }

  override _transform(chunk: Buffer, _enc: BufferEncoding, done: TransformCallback): void {
    this.bytes += chunk.length;
    if (this.bytes > this.max) done(new InvalidImageError(this.file, `unpacks to more than ${this.max} bytes (the maxBlobBytes limit)`));
    else done(null, chunk);
  }
}
