/**
 * Getting the benchmarks into the emulated host: bh-boot and the guest init compiled from native/
 * (into our own work dir, so we never race other engineers' `make` in native/), the initramfs, and
 * running this package's run.js there with `--inner`.
 */
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { nativeLibrarySources } from './native-sources';
import { BulkheadError } from '../../errors';
import type { NestedHost } from '../method/emulated-host';
import { singleInitCpio } from '../../util/cpio';
import { packageRoot } from '../../util/package-root';
import { findKernel, listKernels, type KernelArtifacts } from '../../kernel';

const log = (m: string): void => void process.stderr.write(m);

/** bh-boot, the guest inits and the vsock peer, compiled into `dir` from native/ and bench/vmm/ (not in native/). */
export function buildNativeTools(dir: string): { bhBoot: string; init: string; devicesInit: string; vsockPeer: string } {
  const native = path.join(packageRoot(), 'native');
  const bhBoot = path.join(dir, 'bh-boot');
  const init = path.join(dir, 'init');
  const sources = ['tools/bh-boot.c', ...nativeLibrarySources(native)];
  const cc = (args: string[]): void => {
    try {
      execFileSync('cc', args, { cwd: native, stdio: ['ignore', 'ignore', 'pipe'] });
    } catch (err) {
      throw new BulkheadError('BENCH_FAILED', `cc ${args.slice(-3).join(' ')} failed: ${(err as { stderr?: Buffer }).stderr?.toString().slice(-2000)}`);
    }
  };
  cc(['-std=gnu11', '-O2', '-g', '-pthread', '-Iinclude', '-I.', ...sources, '-o', bhBoot]);
  cc(['-static', '-Os', 'tests/guest-init/init.c', '-o', init]);
  const devicesInit = path.join(dir, 'devices-init');
  const vsockPeer = path.join(dir, 'vsock-peer');
  const bench = path.join(packageRoot(), 'bench', 'vmm');
  cc(['-static', '-O2', path.join(bench, 'guest', 'devices-init.c'), '-o', devicesInit]);
  cc(['-O2', path.join(bench, 'vsock-peer.c'), '-o', vsockPeer]);
  return { bhBoot, init, devicesInit, vsockPeer };
}

export function writeInitramfs(file: string, init: string): void {
  fs.writeFileSync(
    file,
    singleInitCpio(fs.readFileSync(init)),
  );
}

/** Runs this script inside the emulated host with `--inner`, returning its JSON. */
export async function runInner<T>(host: NestedHost, mode: 'exits' | 'boot' | 'devices', payload: unknown, timeoutMs: number): Promise<T> {
  // The compiled entry (also when this module runs from src/ under tap): the emulated host runs node.
  const script = path.join(packageRoot(), 'dist', 'cjs', 'bench', 'vmm', 'run.js');
  if (!fs.existsSync(script)) throw new BulkheadError('BENCH_FAILED', `${script} does not exist: run npm run build:ts first`);
  const r = await host.node([script, '--inner', mode, '--payload', JSON.stringify(payload)], { timeoutMs });
  const line = r.stdout.trim().split('\n').pop() ?? '';
  return JSON.parse(line) as T;
}

/** The inner run's progress lines, marked as from in there (withEmulatedHost's onInnerLine). */
export function relayInnerLine(line: string): void {
  log(`${line.replace(/^\[bench:vmm/, '[bench:vmm @emulated-host')}\n`);
}

/**
 * The kernel built from the current config, or else the newest cached build of that flavour (a
 * config change makes the current one a cache miss until someone rebuilds it; any host kernel with
 * KVM serves the benchmark). `current` says which it was; the results record the key.
 */
export async function cachedKernel(flavor: 'host' | 'zone'): Promise<{ kernel: KernelArtifacts; current: boolean } | undefined> {
  const current = await findKernel({ config: flavor }).catch(() => undefined);
  if (current) return { kernel: current, current: true };
  let all: KernelArtifacts[] = [];
  try {
    all = listKernels().filter((k) => k.info.config === flavor);
  } catch {
    return undefined;
  }
  const newest = all.sort((a, b) => b.info.builtAt.localeCompare(a.info.builtAt))[0];
  return newest ? { kernel: newest, current: false } : undefined;
}
