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
import { AbortedError, BulkheadError } from '../errors';
import { diesWithParent, runCommand } from '../util/process';
import { cacheDir, publishDir, readJson, writeFileAtomic } from '../util/cache';
import {
  describeDropped,
  findDroppedOptions,
  fragmentHash,
  isFlavor,
  KERNEL_RECIPE_VERSION,
  loadFragment,
  type KernelFragment,
} from './fragment';
import { acquireLock } from '../util/lock';
import { ProgressLine, formatDuration, type ProgressOptions } from './progress';
import { readPin, type KernelSourcePin } from './pin';
import { ensureKernelSource } from './source';

export interface KernelBuildOptions {
  /** `zone` (default), `host`, or the path of a fragment file. */
  config?: string;
  arch?: 'x86_64';
  /** Parallel make jobs (default: the number of CPUs). */
  jobs?: number;
  /** The kernel source to build from (default: the pin in kernel-configs/source.json). */
  pin?: KernelSourcePin;
  /** Progress on stderr (default on); false for silence. */
  progress?: boolean | ProgressOptions;
  /** Stops the build (make's whole process group); the call then rejects with an AbortedError. */
  signal?: AbortSignal;
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

/** The cache key of a fragment for a pinned source version. */
export function kernelCacheKey(fragment: KernelFragment, pin: KernelSourcePin): string {
  // Debian versions may contain ':' (epoch); keep the directory name portable.
  return `${pin.version.replace(/:/g, '_')}-${fragmentHash(fragment)}`;
}

/** The cached kernel for these options, or undefined if it has not been built. Never builds. */
export async function findKernel(opts: KernelBuildOptions = {}): Promise<KernelArtifacts | undefined> {
  const fragment = loadFragment(opts.config ?? 'zone', opts.arch);
  return readCached(kernelCacheKey(fragment, opts.pin ?? readPin()));
}

export async function buildKernel(opts: KernelBuildOptions = {}): Promise<KernelArtifacts> {
  const configName = opts.config ?? 'zone';
  const fragment = loadFragment(configName, opts.arch);
  const pin = opts.pin ?? readPin();
  const key = kernelCacheKey(fragment, pin);
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
    const source = await ensureKernelSource({ pin, log, signal: opts.signal });
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
    await make(source.dir, cfgDir, ['-s', 'allnoconfig', `KCONFIG_ALLCONFIG=${fragmentFile}`], opts.signal);
    await make(source.dir, cfgDir, ['-s', 'olddefconfig'], opts.signal);
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
    const steps = await compile(source.dir, work, objDir, jobs, opts.signal, (n, last) =>
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

async function make(srcDir: string, objDir: string, args: string[], signal?: AbortSignal): Promise<void> {
  const r = await runCommand('make', ['-C', srcDir, `O=${objDir}`, ...args], { env: { ...process.env, ...BUILD_ENV }, signal });
  if (r.code !== 0) {
    const output = (r.stdout + r.stderr).trim().slice(-8000);
    throw new BulkheadError('KERNEL_BUILD_FAILED', `make ${args.join(' ')} failed (${r.code ?? r.signal}):\n${output}`);
  }
}

/**
 * make -jN vmlinux bzImage in its own process group (so an abort stops all of it), started so the
 * kernel stops it if this process dies, with the full log in <work>/build.log. If make outlives us
 * anyway, the next build finds make.pid and stops the orphan before resuming in the same directory.
 * No process-wide signal handlers: the embedder owns those.
 */
function compile(
  srcDir: string,
  work: string,
  objDir: string,
  jobs: number,
  signal: AbortSignal | undefined,
  onStep: (count: number, last: string) => void,
): Promise<number> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) {
      reject(new AbortedError('building a kernel'));
      return;
    }
    const logFile = createWriteStream(path.join(work, 'build.log'));
    // GNU make passes a fatal signal on to the jobs it started, so SIGTERM to make stops the build.
    const launch = diesWithParent('make', ['-C', srcDir, `O=${objDir}`, `-j${jobs}`, 'vmlinux', 'bzImage'], 'SIGTERM');
    const child: ChildProcess = spawn(launch.command, launch.args, {
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, ...BUILD_ENV },
      detached: true,
    });
    const pidFile = path.join(work, 'make.pid');
    if (child.pid) writeFileSync(pidFile, String(child.pid));
    let aborted = false;
    const onAbort = () => {
      aborted = true;
      if (child.pid && child.exitCode === null) {
        try {
          process.kill(-child.pid, 'SIGTERM');
        } catch {
          // already gone
        }
      }
    };
    signal?.addEventListener('abort', onAbort, { once: true });
    const cleanup = () => signal?.removeEventListener('abort', onAbort);

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
      if (aborted) reject(new AbortedError('building a kernel'));
      else if (code === 0) resolve(steps);
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
      if (/(^|\/|\0)make\0/.test(cmdline)) process.kill(-pid, 'SIGKILL');
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

