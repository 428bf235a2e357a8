/**
 * `buildKernel`: config fragment + Debian kernel source → vmlinux and bzImage, cached under
 * ~/.cache/bulkhead/kernels/<source version>-<fragment hash>/ {vmlinux, bzImage, config, build.json}.
 *
 * The journey: resolve the source version → look in the cache (done if there) → take the key's
 * lock → fetch and extract the source → expand the fragment (allnoconfig + olddefconfig) and
 * check nothing asked for was dropped → make vmlinux bzImage in .build-<key>/ → rename the
 * finished files into place. An interrupted build leaves .build-<key>/, which the next run
 * resumes (make is incremental); a finished key is never rewritten.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { copyFileSync, createWriteStream, existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { BulkheadError } from '../errors';
import { cacheDir, publishDir, readJson, writeFileAtomic } from './cache';
import {
  describeDropped,
  findDroppedOptions,
  fragmentHash,
  isFlavor,
  KERNEL_RECIPE_VERSION,
  loadFragment,
  type KernelFragment,
} from './fragment';
import { acquireLock } from './lock';
import { ProgressLine, formatDuration, type ProgressOptions } from './progress';
import { ensureKernelSource, KERNEL_SOURCE_PACKAGE, resolveSourceVersion } from './source';

export interface KernelBuildOptions {
  /** `zone` (default), `host`, or the path of a fragment file. */
  config?: string;
  arch?: 'x86_64';
  /** Parallel make jobs (default: the number of CPUs). */
  jobs?: number;
  /** Debian version of linux-source-6.12 (default: apt's candidate). */
  sourceVersion?: string;
  /** Progress on stderr (default on); false for silence. */
  progress?: boolean | ProgressOptions;
}

/** What build.json records about a cached kernel. */
export interface KernelBuildInfo {
  key: string;
  config: string;
  fragmentHash: string;
  recipe: number;
  sourcePackage: string;
  sourceVersion: string;
  /** `uname -r` of the built kernel. */
  release: string;
  builtAt: string;
  buildSeconds: number;
  /** Number of kbuild steps (CC, LD, ...) the build printed; used as the next build's estimate. */
  steps: number;
  jobs: number;
  /** True when this build continued an interrupted one (buildSeconds and steps cover only the rest). */
  resumed: boolean;
}

export interface KernelArtifacts {
  key: string;
  dir: string;
  vmlinux: string;
  bzImage: string;
  /** The expanded .config the kernel was built with. */
  config: string;
  info: KernelBuildInfo;
  /** True when this call found the kernel already built. */
  cached: boolean;
}

/** The cache key of a fragment for a source version. */
export function kernelCacheKey(fragment: KernelFragment, sourceVersion: string): string {
  // Debian versions may contain ':' (epoch); keep the directory name portable.
  return `${sourceVersion.replace(/:/g, '_')}-${fragmentHash(fragment)}`;
}

/** The cached kernel for these options, or undefined if it has not been built. Never builds. */
export async function findKernel(opts: KernelBuildOptions = {}): Promise<KernelArtifacts | undefined> {
  const fragment = loadFragment(opts.config ?? 'zone', opts.arch);
  const version = await resolveSourceVersion({ version: opts.sourceVersion });
  return readCached(kernelCacheKey(fragment, version));
}

export async function buildKernel(opts: KernelBuildOptions = {}): Promise<KernelArtifacts> {
  const configName = opts.config ?? 'zone';
  const fragment = loadFragment(configName, opts.arch);
  const version = await resolveSourceVersion({ version: opts.sourceVersion });
  const key = kernelCacheKey(fragment, version);
  const hit = readCached(key);
  if (hit) return hit;

  const label = `kernel ${isFlavor(configName) ? configName : path.basename(configName)}`;
  const progress =
    opts.progress === false ? undefined : new ProgressLine(label, opts.progress === true ? {} : opts.progress);
  const log = (line: string) => progress?.note(line);
  const kernels = cacheDir('kernels');
  const lock = await acquireLock(path.join(kernels, `${key}.lock`), {
    onWait: (pid) => progress?.update(`waiting for pid ${pid}, which is building ${key}`),
  });
  try {
    const raced = readCached(key);
    if (raced) {
      progress?.done(`built by another process: ${raced.vmlinux}`);
      return raced;
    }
    checkBuildTools();
    const source = await ensureKernelSource({ version, log });
    const work = path.join(kernels, `.build-${key}`);
    const cfgDir = path.join(work, 'cfg');
    const objDir = path.join(work, 'obj');
    mkdirSync(cfgDir, { recursive: true });
    mkdirSync(objDir, { recursive: true });
    killStaleMake(work);

    // 1. Expand the fragment and make sure Kconfig kept every option it asked for.
    const fragmentFile = path.join(work, 'fragment.config');
    writeFileSync(fragmentFile, fragment.text);
    progress?.update('expanding config (allnoconfig + fragment)');
    await make(source.dir, cfgDir, ['-s', 'allnoconfig', `KCONFIG_ALLCONFIG=${fragmentFile}`]);
    await make(source.dir, cfgDir, ['-s', 'olddefconfig']);
    const expanded = readFileSync(path.join(cfgDir, '.config'), 'utf8');
    const dropped = findDroppedOptions(fragment, expanded);
    if (dropped.length > 0) {
      throw new BulkheadError(
        'KERNEL_BUILD_FAILED',
        `${fragment.path}: Kconfig did not keep ${dropped.length} requested option(s) (a missing dependency?): ${describeDropped(dropped)}`,
      );
    }
    // Copy only when different, so a resumed build keeps its objects' timestamps meaningful.
    const objConfig = path.join(objDir, '.config');
    if (!existsSync(objConfig) || readFileSync(objConfig, 'utf8') !== expanded) writeFileSync(objConfig, expanded);

    // 2. Compile.
    const jobs = opts.jobs ?? os.availableParallelism();
    const expected = estimateSteps(kernels, configName);
    const resumed = existsSync(path.join(objDir, 'Makefile')); // kbuild writes it on its first run
    const started = Date.now();
    const steps = await compile(source.dir, work, objDir, jobs, (n, last) =>
      progress?.update(`${n}${expected ? `/~${expected}` : ''} steps, ${last}`),
    );
    const buildSeconds = Math.round((Date.now() - started) / 100) / 10;

    // 3. Publish atomically.
    const out = path.join(work, 'out');
    rmSync(out, { recursive: true, force: true });
    mkdirSync(out);
    copyFileSync(path.join(objDir, 'vmlinux'), path.join(out, 'vmlinux'));
    copyFileSync(path.join(objDir, 'arch', 'x86', 'boot', 'bzImage'), path.join(out, 'bzImage'));
    writeFileSync(path.join(out, 'config'), expanded);
    const info: KernelBuildInfo = {
      key,
      config: isFlavor(configName) ? configName : fragment.path,
      fragmentHash: fragmentHash(fragment),
      recipe: KERNEL_RECIPE_VERSION,
      sourcePackage: source.package,
      sourceVersion: source.version,
      release: readFileSync(path.join(objDir, 'include', 'config', 'kernel.release'), 'utf8').trim(),
      builtAt: new Date().toISOString(),
      buildSeconds,
      steps,
      jobs,
      resumed,
    };
    writeFileSync(path.join(out, 'build.json'), JSON.stringify(info, null, 2) + '\n');
    if (!resumed) writeFileAtomic(path.join(kernels, `.steps-${isFlavor(configName) ? configName : 'custom'}`), String(steps));
    publishDir(out, path.join(kernels, key));
    progress?.done(`built ${info.release} in ${formatDuration(buildSeconds)} (${steps} steps, -j${jobs})`);
    rmSync(work, { recursive: true, force: true });
    const built = readCached(key);
    if (!built) throw new BulkheadError('KERNEL_BUILD_FAILED', `${key} vanished right after it was built`);
    return { ...built, cached: false };
  } catch (err) {
    progress?.done('failed');
    throw err;
  } finally {
    lock.release();
  }
}

function readCached(key: string): KernelArtifacts | undefined {
  const dir = path.join(cacheDir('kernels'), key);
  const info = readJson<KernelBuildInfo>(path.join(dir, 'build.json'));
  if (!info) return undefined;
  const vmlinux = path.join(dir, 'vmlinux');
  const bzImage = path.join(dir, 'bzImage');
  if (!existsSync(vmlinux) || !existsSync(bzImage)) return undefined;
  return { key, dir, vmlinux, bzImage, config: path.join(dir, 'config'), info, cached: true };
}

function estimateSteps(kernels: string, configName: string): number | undefined {
  try {
    const n = Number(readFileSync(path.join(kernels, `.steps-${isFlavor(configName) ? configName : 'custom'}`), 'utf8'));
    return n > 0 ? n : undefined;
  } catch {
    return undefined;
  }
}

/** The Debian packages whose absence makes a kernel build fail half-way; checked up front. */
const BUILD_TOOLS: { check: () => boolean; what: string; apt: string }[] = [
  { check: () => onPath('make'), what: 'make', apt: 'make' },
  { check: () => onPath('gcc'), what: 'gcc', apt: 'gcc' },
  { check: () => onPath('flex'), what: 'flex', apt: 'flex' },
  { check: () => onPath('bison'), what: 'bison', apt: 'bison' },
  { check: () => onPath('bc'), what: 'bc', apt: 'bc' },
  { check: () => onPath('xz'), what: 'xz', apt: 'xz-utils' },
  { check: () => onPath('dpkg-deb'), what: 'dpkg-deb', apt: 'dpkg' },
  { check: () => existsSync('/usr/include/gelf.h'), what: 'libelf headers (objtool)', apt: 'libelf-dev' },
  { check: () => existsSync('/usr/include/openssl/opensslv.h'), what: 'OpenSSL headers', apt: 'libssl-dev' },
];

function checkBuildTools(): void {
  const missing = BUILD_TOOLS.filter((t) => !t.check());
  if (missing.length > 0) {
    throw new BulkheadError(
      'KERNEL_BUILD_FAILED',
      `missing kernel build tools: ${missing.map((m) => m.what).join(', ')}; install: apt-get install ${missing.map((m) => m.apt).join(' ')}`,
    );
  }
}

function onPath(cmd: string): boolean {
  return (process.env.PATH ?? '').split(':').some((dir) => dir !== '' && existsSync(path.join(dir, cmd)));
}

const BUILD_ENV = { KBUILD_BUILD_USER: 'bulkhead', KBUILD_BUILD_HOST: 'bulkhead' };

function make(srcDir: string, objDir: string, args: string[]): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn('make', ['-C', srcDir, `O=${objDir}`, ...args], {
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, ...BUILD_ENV },
    });
    let output = '';
    const keep = (d: Buffer) => (output = (output + d.toString()).slice(-8000));
    child.stdout.on('data', keep);
    child.stderr.on('data', keep);
    child.on('error', reject);
    child.on('close', (code) =>
      code === 0
        ? resolve()
        : reject(new BulkheadError('KERNEL_BUILD_FAILED', `make ${args.join(' ')} failed (${code}):\n${output.trim()}`)),
    );
  });
}

/**
 * make -jN vmlinux bzImage in its own process group (so we can stop all of it), with the full log
 * in <work>/build.log. If this process dies, the next build finds make.pid and stops the orphan
 * before resuming in the same directory.
 */
function compile(
  srcDir: string,
  work: string,
  objDir: string,
  jobs: number,
  onStep: (count: number, last: string) => void,
): Promise<number> {
  return new Promise((resolve, reject) => {
    const logFile = createWriteStream(path.join(work, 'build.log'));
    const child: ChildProcess = spawn('make', ['-C', srcDir, `O=${objDir}`, `-j${jobs}`, 'vmlinux', 'bzImage'], {
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, ...BUILD_ENV },
      detached: true,
    });
    const pidFile = path.join(work, 'make.pid');
    if (child.pid) writeFileSync(pidFile, String(child.pid));
    const stopChild = () => {
      if (child.pid && child.exitCode === null) {
        try {
          process.kill(-child.pid, 'SIGTERM');
        } catch {
          // already gone
        }
      }
    };
    const onSignal = (sig: NodeJS.Signals) => {
      stopChild();
      cleanup();
      process.kill(process.pid, sig);
    };
    const cleanup = () => {
      process.off('exit', stopChild);
      process.off('SIGINT', onSignal);
      process.off('SIGTERM', onSignal);
      process.off('SIGHUP', onSignal);
    };
    process.on('exit', stopChild);
    process.once('SIGINT', onSignal);
    process.once('SIGTERM', onSignal);
    process.once('SIGHUP', onSignal);

    let steps = 0;
    let pending = '';
    let tail = '';
    child.stdout!.on('data', (d: Buffer) => {
      logFile.write(d);
      pending += d.toString();
      const lines = pending.split('\n');
      pending = lines.pop() ?? '';
      for (const line of lines) {
        // kbuild's quiet output: "  CC      kernel/fork.o"
        const m = /^\s{2}([A-Z][A-Z0-9_-]*)\s+(\S+)/.exec(line);
        if (m) {
          steps++;
          onStep(steps, `${m[1]} ${m[2]}`);
        }
      }
    });
    child.stderr!.on('data', (d: Buffer) => {
      logFile.write(d);
      tail = (tail + d.toString()).slice(-6000);
    });
    child.on('error', (err) => {
      cleanup();
      reject(err);
    });
    child.on('close', (code) => {
      cleanup();
      logFile.end();
      rmSync(pidFile, { force: true });
      if (code === 0) resolve(steps);
      else
        reject(
          new BulkheadError(
            'KERNEL_BUILD_FAILED',
            `make vmlinux bzImage failed (exit ${code}); full log: ${path.join(work, 'build.log')}\n${tail.trim()}`,
          ),
        );
    });
  });
}

/** Stops a make left running by a build whose node process died (it would race with ours). */
function killStaleMake(work: string): void {
  const pidFile = path.join(work, 'make.pid');
  if (!existsSync(pidFile)) return;
  const pid = Number(readFileSync(pidFile, 'utf8'));
  if (Number.isInteger(pid) && pid > 0) {
    try {
      const cmdline = readFileSync(`/proc/${pid}/cmdline`, 'utf8');
      if (cmdline.startsWith('make')) process.kill(-pid, 'SIGKILL');
    } catch {
      // not running
    }
  }
  rmSync(pidFile, { force: true });
}

/** Every kernel in the cache (for `bulkhead kernel list`). */
export function listKernels(): KernelArtifacts[] {
  const kernels = cacheDir('kernels');
  return readdirSync(kernels)
    .filter((name) => !name.startsWith('.') && !name.endsWith('.lock'))
    .map((name) => readCached(name))
    .filter((k): k is KernelArtifacts => k !== undefined);
}

export { KERNEL_SOURCE_PACKAGE };
