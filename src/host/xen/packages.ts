/**
 * The Debian packages the Xen test host boots from: the hypervisor, the toolstack's daemons and
 * libraries, and the generic kernel that runs as PV dom0. Nothing is installed on this machine:
 * each .deb is fetched with `apt-get download` (no root needed), checked against the SHA256 apt's
 * index gives, kept as ~/.cache/bulkhead/debs/<sha256>.deb, and all of them are unpacked once into
 * ~/.cache/bulkhead/xen/<key>/, where the key hashes every package's SHA256: new packages from the
 * archive make a new tree, the same packages reuse the old one.
 *
 * The tree also holds `xen` (the hypervisor, gunzipped: QEMU's multiboot loader wants an ELF) and
 * `vmlinux` (the dom0 kernel without its xz wrapper: Xen then skips decompressing it under TCG, ~8 s).
 */
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { gunzipSync } from 'node:zlib';
import { BulkheadError } from '../../errors';
import { cacheDir, publishDir, readJson, tempName } from '../../util/cache';
import { runChecked, runCommand } from '../../util/process';
import { sha256File } from '../../kernel/source';

/** Xen's own packages (the same version throughout), plus libyajl2, which libxenlight links. */
export const XEN_PACKAGES: readonly string[] = [
  'xen-hypervisor-4.17-amd64',
  'xen-utils-4.17',
  'xen-utils-common',
  'xenstore-utils',
  'libxencall1',
  'libxendevicemodel1',
  'libxenevtchn1',
  'libxenforeignmemory1',
  'libxengnttab1',
  'libxenhypfs1',
  'libxenmisc4.17',
  'libxenstore4',
  'libxentoolcore1',
  'libxentoollog1',
  'libxen-dev',
  'libyajl2',
];

/** The metapackage whose one dependency names the current generic kernel. */
export const DOM0_KERNEL_METAPACKAGE = 'linux-image-amd64';

export interface XenTree {
  /** The unpacked packages (usr/, etc/, lib/modules/, boot/). */
  root: string;
  /** The hypervisor as an ELF with a multiboot header. */
  hypervisor: string;
  /** The dom0 kernel, uncompressed (an ELF with Xen's notes). */
  dom0Kernel: string;
  /** `uname -r` of the dom0 kernel. */
  kernelRelease: string;
  /** lib/modules/<release> in the tree. */
  modulesDir: string;
  /** Xen's programs (xl, xenstored, xenconsoled, xen-init-dom0). */
  binDir: string;
  /** The libraries (libxenctrl.so.4.17, …). */
  libDir: string;
  /** The packages, as `name=version`. */
  packages: string[];
}

interface PackageRecord {
  name: string;
  version: string;
  sha256: string;
}

interface TreeInfo {
  packages: string[];
  kernelRelease: string;
}

export interface XenPackageOptions {
  log?: (line: string) => void;
  signal?: AbortSignal;
}

/** The unpacked Xen tree, downloading and unpacking what the cache lacks. */
export async function ensureXenTree(opts: XenPackageOptions = {}): Promise<XenTree> {
  const kernelPackage = await dom0KernelPackage(opts.signal);
  const records = await packageRecords([...XEN_PACKAGES, kernelPackage], opts.signal);
  const key = createHash('sha256')
    .update(records.map((r) => `${r.name}=${r.version} ${r.sha256}`).sort().join('\n'))
    .digest('hex')
    .slice(0, 16);
  const xenRoot = cacheDir('xen');
  const dir = path.join(xenRoot, key);
  let info = readJson<TreeInfo>(path.join(dir, 'tree.json'));
  if (!info) {
    const debs = [];
    for (const r of records) debs.push(await ensureDeb(r, opts));
    const tmp = path.join(xenRoot, tempName(key));
    mkdirSync(tmp, { recursive: true });
    try {
      opts.log?.(`unpacking ${debs.length} Xen packages into ${dir}`);
      for (const deb of debs) await runChecked('dpkg-deb', ['-x', deb, tmp], { signal: opts.signal });
      info = { packages: records.map((r) => `${r.name}=${r.version}`), kernelRelease: kernelRelease(tmp) };
      const boot = path.join(tmp, 'boot');
      const xenGz = readdirSync(boot).find((f) => /^xen-4\.17-amd64\.gz$/.test(f));
      if (!xenGz) throw new BulkheadError('HOST_UNAVAILABLE', `${XEN_PACKAGES[0]} has no boot/xen-4.17-amd64.gz`);
      writeFileSync(path.join(tmp, 'xen'), gunzipSync(readFileSync(path.join(boot, xenGz))));
      await unwrapKernel(path.join(boot, `vmlinuz-${info.kernelRelease}`), path.join(tmp, 'vmlinux'), opts.signal);
      writeFileSync(path.join(tmp, 'tree.json'), JSON.stringify(info) + '\n');
      rmSync(dir, { recursive: true, force: true }); // a tree without tree.json is a broken leftover
      publishDir(tmp, dir);
    } finally {
      rmSync(tmp, { recursive: true, force: true });
    }
  }
  return {
    root: dir,
    hypervisor: path.join(dir, 'xen'),
    dom0Kernel: path.join(dir, 'vmlinux'),
    kernelRelease: info.kernelRelease,
    modulesDir: path.join(dir, 'lib', 'modules', info.kernelRelease),
    binDir: path.join(dir, 'usr', 'lib', 'xen-4.17', 'bin'),
    libDir: path.join(dir, 'usr', 'lib', 'x86_64-linux-gnu'),
    packages: info.packages,
  };
}

/** linux-image-<release>-amd64, the package linux-image-amd64 depends on. */
async function dom0KernelPackage(signal?: AbortSignal): Promise<string> {
  const out = await aptCache(['depends', DOM0_KERNEL_METAPACKAGE], signal);
  const name = /Depends:\s*(linux-image-[\w.+-]+)/.exec(out)?.[1];
  if (!name) throw new BulkheadError('HOST_UNAVAILABLE', `apt-cache depends ${DOM0_KERNEL_METAPACKAGE} names no linux-image package`);
  return name;
}

/** The candidate version of each package and its SHA256, from apt's local index (one apt-cache run, no network). */
async function packageRecords(names: readonly string[], signal?: AbortSignal): Promise<PackageRecord[]> {
  const out = await aptCache(['show', '--no-all-versions', ...names], signal);
  const byName = new Map<string, PackageRecord>();
  for (const stanza of out.split(/\n\s*\n/)) {
    const name = /^Package:\s*(\S+)/m.exec(stanza)?.[1];
    const version = /^Version:\s*(\S+)/m.exec(stanza)?.[1];
    const sha256 = /^SHA256:\s*([0-9a-f]{64})/m.exec(stanza)?.[1];
    if (name && version && sha256 && !byName.has(name)) byName.set(name, { name, version, sha256 });
  }
  return names.map((name) => {
    const r = byName.get(name);
    if (!r) throw new BulkheadError('HOST_UNAVAILABLE', `apt-cache show ${name} gives no Version and SHA256`);
    return r;
  });
}

async function aptCache(args: string[], signal?: AbortSignal): Promise<string> {
  const r = await runCommand('apt-cache', args, { signal });
  if (r.code !== 0) {
    throw new BulkheadError(
      'HOST_UNAVAILABLE',
      `apt-cache ${args.join(' ')} failed (${r.stderr.trim() || `exit ${r.code}`}): the Xen test host needs Debian bookworm's archive in apt's sources (run apt-get update)`,
    );
  }
  return r.stdout;
}

/** debs/<sha256>.deb, downloaded when missing; its content must match apt's index either way. */
async function ensureDeb(r: PackageRecord, opts: XenPackageOptions): Promise<string> {
  const debs = cacheDir('debs');
  const final = path.join(debs, `${r.sha256}.deb`);
  if (existsSync(final) && (await sha256File(final)) === r.sha256) return final;
  opts.log?.(`downloading ${r.name}=${r.version}`);
  const tmp = path.join(debs, tempName(r.name));
  mkdirSync(tmp, { recursive: true });
  try {
    await runChecked('apt-get', ['download', '-q', `${r.name}=${r.version}`], { cwd: tmp, signal: opts.signal });
    const file = readdirSync(tmp).find((f) => f.endsWith('.deb'));
    if (!file) throw new BulkheadError('HOST_UNAVAILABLE', `apt-get download left no .deb for ${r.name}=${r.version}`);
    const actual = await sha256File(path.join(tmp, file));
    if (actual !== r.sha256) {
      throw new BulkheadError('HOST_UNAVAILABLE', `${r.name}=${r.version} downloaded with sha256 ${actual}, but apt's index says ${r.sha256}`);
    }
    renameSync(path.join(tmp, file), final);
    return final;
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
}

function kernelRelease(tree: string): string {
  const releases = readdirSync(path.join(tree, 'lib', 'modules'));
  if (releases.length !== 1) throw new BulkheadError('HOST_UNAVAILABLE', `expected one kernel in lib/modules, found ${releases.join(', ') || 'none'}`);
  return releases[0]!;
}

/** Debian's bzImage carries an xz stream: decompress the first one found (the rest is setup code). */
async function unwrapKernel(bzImage: string, out: string, signal?: AbortSignal): Promise<void> {
  const bytes = readFileSync(bzImage);
  const at = bytes.indexOf(Buffer.from([0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00]));
  if (at < 0) throw new BulkheadError('HOST_UNAVAILABLE', `${bzImage} holds no xz stream (not CONFIG_KERNEL_XZ?)`);
  const payload = `${out}.xz`;
  writeFileSync(payload, bytes.subarray(at));
  try {
    await runChecked('sh', ['-c', 'xz -dc --single-stream "$1" > "$2"', 'sh', payload, out], { signal });
  } finally {
    rmSync(payload, { force: true });
  }
  const elf = readFileSync(out).subarray(0, 4);
  if (elf.readUInt32BE(0) !== 0x7f454c46) throw new BulkheadError('HOST_UNAVAILABLE', `${bzImage} did not unwrap into an ELF vmlinux`);
}
