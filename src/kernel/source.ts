/**
 * The kernel source: Debian's linux-source-6.12 package, fetched with `apt-get download` (no root
 * needed, installs nothing), cached as ~/.cache/bulkhead/debs/<name>_<version>_all.deb, and its
 * tarball extracted once into ~/.cache/bulkhead/src/<name>_<version>/. Builds use it out of tree
 * (make O=...), so one extracted tree serves every config.
 */
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, renameSync, rmSync } from 'node:fs';
import * as path from 'node:path';
import { BulkheadError } from '../errors';
import { cacheDir, publishDir, tempName } from './cache';

export const KERNEL_SOURCE_PACKAGE = 'linux-source-6.12';

export interface KernelSource {
  package: string;
  /** Debian version, e.g. 6.12.117-1~deb12u1. */
  version: string;
  deb: string;
  /** The extracted tree (contains Makefile). */
  dir: string;
}

export interface SourceOptions {
  package?: string;
  /** A Debian version to use instead of apt's candidate (also: $BULKHEAD_KERNEL_SOURCE_VERSION). */
  version?: string;
  log?: (line: string) => void;
}

/**
 * The version we build: an explicit one, else apt's candidate, else the newest .deb already in
 * the cache (offline machines keep working).
 */
export async function resolveSourceVersion(opts: SourceOptions = {}): Promise<string> {
  const pkg = opts.package ?? KERNEL_SOURCE_PACKAGE;
  const explicit = opts.version ?? process.env.BULKHEAD_KERNEL_SOURCE_VERSION;
  if (explicit) return explicit;
  const policy = await capture('apt-cache', ['policy', pkg]).catch(() => '');
  const candidate = /Candidate:\s*(\S+)/.exec(policy)?.[1];
  if (candidate && candidate !== '(none)') return candidate;
  const cached = cachedDebs(pkg);
  if (cached.length > 0) return cached[cached.length - 1]!.version;
  throw new BulkheadError(
    'KERNEL_BUILD_FAILED',
    `cannot find a version of ${pkg}: apt-cache has no candidate (run apt-get update?) and nothing is cached`,
  );
}

export async function ensureKernelSource(opts: SourceOptions = {}): Promise<KernelSource> {
  const pkg = opts.package ?? KERNEL_SOURCE_PACKAGE;
  const version = await resolveSourceVersion(opts);
  const deb = await ensureDeb(pkg, version, opts.log);
  const srcRoot = cacheDir('src');
  const dir = path.join(srcRoot, `${pkg}_${version}`);
  if (!existsSync(path.join(dir, 'Makefile'))) {
    opts.log?.(`extracting ${path.basename(deb)}`);
    const tmp = path.join(srcRoot, tempName(pkg));
    mkdirSync(tmp, { recursive: true });
    try {
      // The .deb holds usr/src/<pkg>.tar.xz; take that one member, then unpack it.
      await run('sh', ['-c', 'dpkg-deb --fsys-tarfile "$1" | tar -x --wildcards "usr/src/*.tar.xz"', 'sh', deb], tmp);
      const tarball = readdirSync(path.join(tmp, 'usr', 'src')).find((f) => f.endsWith('.tar.xz'));
      if (!tarball) throw new BulkheadError('KERNEL_BUILD_FAILED', `${deb} holds no usr/src/*.tar.xz`);
      await run('tar', ['-xJf', path.join('usr', 'src', tarball)], tmp);
      const top = readdirSync(tmp).find((f) => f !== 'usr' && existsSync(path.join(tmp, f, 'Makefile')));
      if (!top) throw new BulkheadError('KERNEL_BUILD_FAILED', `${tarball} holds no kernel tree`);
      rmSync(dir, { recursive: true, force: true }); // a tree without Makefile is a broken leftover
      publishDir(path.join(tmp, top), dir);
    } finally {
      rmSync(tmp, { recursive: true, force: true });
    }
  }
  return { package: pkg, version, deb, dir };
}

async function ensureDeb(pkg: string, version: string, log?: (line: string) => void): Promise<string> {
  const debs = cacheDir('debs');
  const existing = cachedDebs(pkg).find((d) => d.version === version);
  if (existing) return existing.path;
  log?.(`downloading ${pkg}=${version} (apt-get download)`);
  const tmp = path.join(debs, tempName(pkg));
  mkdirSync(tmp, { recursive: true });
  try {
    await run('apt-get', ['download', '-q', `${pkg}=${version}`], tmp).catch((err: unknown) => {
      throw new BulkheadError(
        'KERNEL_BUILD_FAILED',
        `apt-get download ${pkg}=${version} failed (is the Debian security/main archive in sources.list?)`,
        { cause: err },
      );
    });
    const file = readdirSync(tmp).find((f) => f.endsWith('.deb'));
    if (!file) throw new BulkheadError('KERNEL_BUILD_FAILED', `apt-get download left no .deb for ${pkg}`);
    const final = path.join(debs, debFileName(pkg, version));
    renameSync(path.join(tmp, file), final);
    return final;
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
}

/** apt names files <pkg>_<version with ':' as %3a>_<arch>.deb; we key on package and version. */
function debFileName(pkg: string, version: string): string {
  return `${pkg}_${version.replace(/:/g, '%3a')}_all.deb`;
}

function cachedDebs(pkg: string): { version: string; path: string }[] {
  const debs = cacheDir('debs');
  const prefix = `${pkg}_`;
  return readdirSync(debs)
    .filter((f) => f.startsWith(prefix) && f.endsWith('.deb'))
    .map((f) => ({ version: f.slice(prefix.length).split('_')[0]!.replace(/%3a/gi, ':'), path: path.join(debs, f) }))
    .sort((a, b) => (a.path < b.path ? -1 : 1));
}

function run(cmd: string, args: string[], cwd: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { cwd, stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => {
      stderr = (stderr + d.toString()).slice(-4000);
    });
    child.on('error', reject);
    child.on('close', (code) => {
      if (code === 0) resolve();
      else reject(new Error(`${cmd} ${args.join(' ')} exited ${code}: ${stderr.trim()}`));
    });
  });
}

export function capture(cmd: string, args: string[], cwd?: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { cwd, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (err = (err + d.toString()).slice(-4000)));
    child.on('error', reject);
    child.on('close', (code) => (code === 0 ? resolve(out) : reject(new Error(`${cmd} exited ${code}: ${err.trim()}`))));
  });
}
