/**
 * The staged root filesystem → an erofs image, with Debian's mkfs.erofs (erofs-utils 1.5 builds
 * from a directory). Uncompressed: under TCG every decompressed byte costs emulated guest CPU,
 * and the image is read through the page cache of a read-only disk anyway.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { CommandFailedError, runChecked, which } from '../util/process';
import { AbortedError } from '../errors';
import { ImageBuildError } from './errors';
import { lstatOrUndefined } from './staging-root';

/** Sets the directory mtimes the layers asked for, deepest first (setting a child's would not change them, but order keeps intent clear). */
export function applyDirectoryTimes(rootDir: string, dirTimes: ReadonlyMap<string, Date>): void {
  const keys = [...dirTimes.keys()].sort((a, b) => b.split('/').length - a.split('/').length);
  for (const key of keys) {
    const p = key === '' ? rootDir : path.join(rootDir, ...key.split('/'));
    if (!lstatOrUndefined(p)?.isDirectory()) continue; // removed or replaced by a later layer
    const t = dirTimes.get(key)!;
    fs.utimesSync(p, t, t);
  }
}

/** A UUID made from the digest, so the same image gets the same filesystem UUID. */
export function uuidFromDigest(digest: string): string {
  const h = digest.replace(/^sha256:/, '').slice(0, 32);
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20, 32)}`;
}

export async function makeErofs(sourceDir: string, outFile: string, digest: string, signal?: AbortSignal): Promise<number> {
  const mkfs = which('mkfs.erofs');
  if (!mkfs) throw new ImageBuildError('mkfs.erofs is missing: install Debian package erofs-utils');
  try {
    // -x-1: no xattrs. The layers' xattrs are not carried (see apply-layer.ts), and the build
    // host's own (security.selinux and the like) must not leak into the image.
    await runChecked(mkfs, ['--quiet', '-x-1', '--preserve-mtime', `-U${uuidFromDigest(digest)}`, outFile, sourceDir], { signal });
  } catch (err) {
    if (err instanceof AbortedError) throw err;
    if (err instanceof CommandFailedError) throw new ImageBuildError(`mkfs.erofs failed for ${digest}: ${err.message}`, { cause: err });
    throw err;
  }
  return fs.statSync(outFile).size;
}
