/**
 * The kernel source: the pinned Debian linux-source package (kernel-configs/source.json), fetched
 * with `apt-get download` (no root needed, installs nothing), checked against the pin's sha256,
 * cached as ~/.cache/bulkhead/debs/<name>_<version>_all.deb, and its tarball extracted once into
 * ~/.cache/bulkhead/src/<name>_<version>/. Builds use it out of tree (make O=...), so one extracted
 * tree serves every config.
 */
import { createHash } from 'node:crypto';
import { createReadStream, existsSync, mkdirSync, readdirSync, renameSync, rmSync } from 'node:fs';
import * as path from 'node:path';
import { BulkheadError } from '../errors';
import { runChecked } from '../util/process';
import { cacheDir, publishDir, tempName } from '../util/cache';
import { describeOffered, MOVE_PIN_HINT, offeredVersions, readPin, type KernelSourcePin } from './pin';

export interface KernelSource {
  package: string;
  /** Debian version, e.g. 6.12.117-1~deb12u1. */
  version: string;
  deb: string;
  /** The extracted tree (contains Makefile). */
  dir: string;
}

export interface SourceOptions {
  /** The pin to use (default: kernel-configs/source.json). */
  pin?: KernelSourcePin;
  log?: (line: string) => void;
  signal?: AbortSignal;
}

export async function ensureKernelSource(opts: SourceOptions = {}): Promise<KernelSource> {
  const pin = opts.pin ?? readPin();
  const deb = await ensureDeb(pin, opts);
  const srcRoot = cacheDir('src');
  const dir = path.join(srcRoot, `${pin.package}_${pin.version}`);
  if (!existsSync(path.join(dir, 'Makefile'))) {
    opts.log?.(`extracting ${path.basename(deb)}`);
    const tmp = path.join(srcRoot, tempName(pin.package));
    mkdirSync(tmp, { recursive: true });
    try {
      await extractKernelTree(deb, tmp, opts.signal);
      rmSync(dir, { recursive: true, force: true }); // a tree without Makefile is a broken leftover
      publishDir(path.join(tmp, 'tree'), dir);
    } finally {
      rmSync(tmp, { recursive: true, force: true });
    }
  }
  return { package: pin.package, version: pin.version, deb, dir };
}

/**
 * Unpacks a linux-source .deb into `<work>/tree`: `dpkg-deb -x` (which copes with members named
 * `./usr/src/…` or `usr/src/…` alike), then the one usr/src/*.tar.xz it holds.
 */
export async function extractKernelTree(deb: string, work: string, signal?: AbortSignal): Promise<string> {
  const debRoot = path.join(work, 'deb');
  const unpacked = path.join(work, 'unpacked');
  mkdirSync(debRoot, { recursive: true });
  mkdirSync(unpacked, { recursive: true });
  await runChecked('dpkg-deb', ['-x', deb, debRoot], { signal });
  const srcDir = path.join(debRoot, 'usr', 'src');
  const tarball = existsSync(srcDir) ? readdirSync(srcDir).find((f) => f.endsWith('.tar.xz')) : undefined;
  if (!tarball) throw new BulkheadError('KERNEL_SOURCE_UNAVAILABLE', `${deb} holds no usr/src/*.tar.xz`);
  await runChecked('tar', ['-xJf', path.join(srcDir, tarball), '-C', unpacked], { signal });
  rmSync(debRoot, { recursive: true, force: true });
  const top = readdirSync(unpacked).find((f) => existsSync(path.join(unpacked, f, 'Makefile')));
  if (!top) throw new BulkheadError('KERNEL_SOURCE_UNAVAILABLE', `${tarball} holds no kernel tree (no top-level Makefile)`);
  const tree = path.join(work, 'tree');
  renameSync(path.join(unpacked, top), tree);
  rmSync(unpacked, { recursive: true, force: true });
  return tree;
}

/** The cached .deb of the pin, downloading it when missing; either way its sha256 must match the pin. */
async function ensureDeb(pin: KernelSourcePin, opts: SourceOptions): Promise<string> {
  const debs = cacheDir('debs');
  const final = path.join(debs, debFileName(pin));
  if (existsSync(final)) {
    if ((await sha256File(final)) === pin.sha256) return final;
    opts.log?.(`${path.basename(final)} in the cache does not match the pin's sha256; downloading it again`);
    rmSync(final, { force: true });
  }
  opts.log?.(`downloading ${pin.package}=${pin.version} (apt-get download, ~150 MB)`);
  const tmp = path.join(debs, tempName(pin.package));
  mkdirSync(tmp, { recursive: true });
  try {
    try {
      await runChecked('apt-get', ['download', '-q', `${pin.package}=${pin.version}`], { cwd: tmp, signal: opts.signal });
    } catch (err) {
      if ((err as BulkheadError).code === 'ABORTED') throw err;
      const offered = await offeredVersions(pin.package);
      throw new BulkheadError(
        'KERNEL_SOURCE_UNAVAILABLE',
        `the pinned kernel source ${pin.package}=${pin.version} cannot be downloaded; ${describeOffered(pin, offered)}; ${MOVE_PIN_HINT}`,
        { cause: err },
      );
    }
    const file = readdirSync(tmp).find((f) => f.endsWith('.deb'));
    if (!file) throw new BulkheadError('KERNEL_SOURCE_UNAVAILABLE', `apt-get download left no .deb for ${pin.package}=${pin.version}`);
    const actual = await sha256File(path.join(tmp, file));
    if (actual !== pin.sha256) {
      throw new BulkheadError(
        'KERNEL_SOURCE_UNAVAILABLE',
        `the archive's ${pin.package}=${pin.version} has sha256 ${actual}, but the pin says ${pin.sha256}: the archive changed under the same version; check it, then ${MOVE_PIN_HINT}`,
      );
    }
    renameSync(path.join(tmp, file), final);
    return final;
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
}

/** apt names files <pkg>_<version with ':' as %3a>_<arch>.deb; we key on package and version. */
function debFileName(pin: KernelSourcePin): string {
  return `${pin.package}_${pin.version.replace(/:/g, '%3a')}_all.deb`;
}

export function sha256File(file: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const hash = createHash('sha256');
    createReadStream(file)
      .on('data', (d) => hash.update(d))
      .on('error', reject)
      .on('end', () => resolve(hash.digest('hex')));
  });
}
