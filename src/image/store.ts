/**
 * The content-addressed image store under the cache root:
 *
 *   images/sha256/<hex>/rootfs.erofs   the root filesystem a zone boots from (read-only disk)
 *                      /config.json    what the zone needs: entrypoint, cmd, env, cwd, user, labels…
 *                      /oci-config.json the image config as the image carried it
 *                      /image.json     how it was made: source, platform, layers, sizes, recipe
 *   images/refs.json                   names (docker.io/library/busybox:latest) → digests
 *   images/locks/                      one lock per digest being built, one for refs.json
 *   images/tmp/                        work dirs of builds in progress (named with their pid)
 *
 * `<hex>` is the manifest digest. A finished image dir is renamed into place whole, so readers
 * see all of it or nothing; a build killed halfway leaves only a tmp dir that the next store
 * user removes once its pid is dead.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { randomBytes } from 'node:crypto';
import { AbortedError } from '../errors';
import { isAlive } from '../util/process';
import { cacheRoot, publishDir, readJson, writeFileAtomic } from '../util/cache';
import { acquireLock, type FileLock } from '../util/lock';
import { digestHex, isDigest } from './digest';
import { type ImageConfig } from './manifest';
import { type Platform } from './platform';
import { familiarName } from './reference';

/** Bump when the way a rootfs is made changes: images made by an older recipe are rebuilt. */
export const ROOTFS_RECIPE = 1;

export type ImageSourceKind = 'oci-layout' | 'oci-archive' | 'docker-archive' | 'registry' | 'busybox-static';

export interface ImageSourceInfo {
  readonly kind: ImageSourceKind;
  /** A path for local sources, a registry URL for pulls, the busybox binary for the default image. */
  readonly location: string;
  /** The reference pulled or the name given at import, if any. */
  readonly reference?: string;
}

/** Everything image.json records. */
export interface ImageRecord {
  readonly recipe: number;
  readonly digest: string;
  readonly configDigest: string;
  readonly platform: Platform;
  readonly source: ImageSourceInfo;
  readonly layers: readonly { readonly digest: string; readonly diffId: string; readonly size: number }[];
  readonly builtAt: string;
  readonly buildMs: number;
  readonly sizeBytes: number;
}

/** A built image, ready to boot. */
export interface ImageArtifact {
  /** The manifest digest (for the default busybox image: the digest of what went into it). */
  readonly digest: string;
  /** The erofs image to attach as the zone's read-only root disk. */
  readonly erofsPath: string;
  /** config.json beside it (the same content as `config`). */
  readonly configPath: string;
  readonly config: ImageConfig;
  readonly platform: Platform;
  /** Size of the erofs file in bytes. */
  readonly sizeBytes: number;
  readonly source: ImageSourceInfo;
  /** Names in the store that point at this image, in their short form (`busybox:latest`). */
  readonly names: readonly string[];
  readonly builtAt: string;
  readonly layers: number;
}

interface RefsFile {
  version: 1;
  refs: Record<string, string>;
}

export class ImageStore {
  readonly root: string;

  constructor(root?: string) {
    this.root = root ?? path.join(cacheRoot(), 'images');
  }

  imageDir(digest: string): string {
    return path.join(this.root, 'sha256', digestHex(digest));
  }

  /** The image with this manifest digest, if it is fully built by the current recipe. */
  get(digest: string): ImageArtifact | undefined {
    if (!isDigest(digest)) return undefined;
    const dir = this.imageDir(digest);
    const record = readJson<ImageRecord>(path.join(dir, 'image.json'));
    const config = readJson<ImageConfig>(path.join(dir, 'config.json'));
    if (!record || !config || record.recipe !== ROOTFS_RECIPE || record.digest !== digest) return undefined;
    const erofsPath = path.join(dir, 'rootfs.erofs');
    let size: number;
    try {
      size = fs.statSync(erofsPath).size;
    } catch {
      return undefined;
    }
    if (size !== record.sizeBytes) return undefined;
    return {
      digest,
      erofsPath,
      configPath: path.join(dir, 'config.json'),
      config,
      platform: record.platform,
      sizeBytes: size,
      source: record.source,
      names: this.namesOf(digest),
      builtAt: record.builtAt,
      layers: record.layers.length,
    };
  }

  /** image.json of a built image. */
  record(digest: string): ImageRecord | undefined {
    return isDigest(digest) ? readJson<ImageRecord>(path.join(this.imageDir(digest), 'image.json')) : undefined;
  }

  list(): ImageArtifact[] {
    let entries: string[];
    try {
      entries = fs.readdirSync(path.join(this.root, 'sha256'));
    } catch {
      return [];
    }
    const out: ImageArtifact[] = [];
    for (const hex of entries) {
      const a = this.get(`sha256:${hex}`);
      if (a) out.push(a);
    }
    return out.sort((a, b) => b.builtAt.localeCompare(a.builtAt));
  }

  /**
   * Takes the build lock of one digest; `onWait` is told once if another live process holds it.
   * An abort while waiting rejects at once; the lock, if it comes later, is released on arrival.
   */
  lockDigest(digest: string, onWait?: (pid: number) => void, signal?: AbortSignal): Promise<FileLock> {
    const dir = this.ensure('locks');
    const taking = acquireLock(path.join(dir, `${digestHex(digest)}.lock`), { onWait, pollMs: 100 });
    if (!signal) return taking;
    return new Promise((resolve, reject) => {
      const onAbort = (): void => reject(new AbortedError(`waiting for the build lock of ${digest}`, { cause: signal.reason }));
      if (signal.aborted) onAbort();
      else signal.addEventListener('abort', onAbort, { once: true });
      taking.then(
        (lock) => {
          signal.removeEventListener('abort', onAbort);
          if (signal.aborted) lock.release();
          else resolve(lock);
        },
        (err: unknown) => {
          signal.removeEventListener('abort', onAbort);
          reject(err);
        },
      );
    });
  }

  /** A fresh work dir for one build, removed by the caller; litter of dead builders is swept first. */
  makeWorkDir(): string {
    const tmp = this.ensure('tmp');
    this.sweepStaleWork(tmp);
    const dir = path.join(tmp, `build-${process.pid}-${randomBytes(6).toString('hex')}`);
    fs.mkdirSync(dir, { mode: 0o700 });
    return dir;
  }

  /** Renames a finished image dir into place. Returns false if another builder published first. */
  publish(finishedDir: string, digest: string): boolean {
    fs.mkdirSync(path.join(this.root, 'sha256'), { recursive: true });
    return publishDir(finishedDir, this.imageDir(digest));
  }

  /** Removes an image dir: renamed away first, so a reader never sees half of it. */
  async removeImage(digest: string): Promise<void> {
    const lock = await this.lockDigest(digest);
    try {
      const dir = this.imageDir(digest);
      if (!fs.existsSync(dir)) return;
      const doomed = path.join(this.ensure('tmp'), `rm-${process.pid}-${randomBytes(6).toString('hex')}`);
      fs.renameSync(dir, doomed);
      fs.rmSync(doomed, { recursive: true, force: true });
    } finally {
      lock.release();
    }
  }

  // ---- names ----

  /** All names (canonical form) → digests. */
  refs(): Record<string, string> {
    const file = readJson<RefsFile>(path.join(this.root, 'refs.json'));
    return file?.version === 1 && typeof file.refs === 'object' && file.refs ? { ...file.refs } : {};
  }

  lookup(canonicalName: string): string | undefined {
    const d = this.refs()[canonicalName];
    return isDigest(d) ? d : undefined;
  }

  namesOf(digest: string): string[] {
    return Object.entries(this.refs())
      .filter(([, d]) => d === digest)
      .map(([name]) => familiarName(name))
      .sort();
  }

  /** Read-modify-write of refs.json under its lock. */
  async updateRefs<T>(change: (refs: Record<string, string>) => T): Promise<T> {
    const lock = await acquireLock(path.join(this.ensure('locks'), 'refs.lock'), { pollMs: 50 });
    try {
      const refs = this.refs();
      const result = change(refs);
      writeFileAtomic(path.join(this.root, 'refs.json'), JSON.stringify({ version: 1, refs } satisfies RefsFile, null, 2) + '\n');
      return result;
    } finally {
      lock.release();
    }
  }

  async tag(digest: string, canonicalNames: readonly string[]): Promise<void> {
    if (canonicalNames.length === 0) return;
    await this.updateRefs((refs) => {
      for (const n of canonicalNames) refs[n] = digest;
    });
  }

  private ensure(sub: string): string {
    const dir = path.join(this.root, sub);
    fs.mkdirSync(dir, { recursive: true });
    return dir;
  }

  /** Work dirs are named `build-<pid>-…` / `rm-<pid>-…`; those whose process is gone are litter. */
  private sweepStaleWork(tmp: string): void {
    for (const name of fs.readdirSync(tmp)) {
      const m = /^(?:build|rm|extract)-(\d+)-/.exec(name);
      if (!m) continue;
      const pid = Number(m[1]);
      if (pid !== process.pid && !isAlive(pid)) fs.rmSync(path.join(tmp, name), { recursive: true, force: true });
    }
  }
}
