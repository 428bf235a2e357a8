/**
 * Kernel config fragments: the defconfig-style files under kernel-configs/<arch>/. A fragment lists
 * only what differs from `make allnoconfig`; this module parses one, derives the cache key from it
 * and checks that an expanded .config kept every option the fragment asked for.
 */
import { createHash } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import * as path from 'node:path';
import { BulkheadError, InvalidConfigError } from '../errors';
import { packagePath } from '../util/package-root';

/** The configs bulkhead ships. */
export type KernelFlavor = 'zone' | 'host' | 'xen';
export const KERNEL_FLAVORS: readonly KernelFlavor[] = ['zone', 'host', 'xen'];

/** One requested option: `CONFIG_X=value` (value `y`, a number, a string) or `# CONFIG_X is not set` (`n`). */
export interface KernelOption {
  name: string;
  value: string;
  line: number;
}

export interface KernelFragment {
  /** Where it was read from. */
  path: string;
  text: string;
  options: KernelOption[];
}

/** A requested option that the expanded .config does not honour. */
export interface DroppedOption {
  name: string;
  wanted: string;
  /** What the expanded .config says; `n` when unset. */
  got: string;
}

/**
 * Bump when the build recipe changes in a way that changes the output for the same fragment
 * (make targets, kconfig base, build environment): every cached kernel is then rebuilt.
 */
export const KERNEL_RECIPE_VERSION = 1;

const SET_RE = /^(CONFIG_[A-Za-z0-9_]+)=(.*)$/;
const UNSET_RE = /^# (CONFIG_[A-Za-z0-9_]+) is not set$/;

export function parseFragment(text: string, where = '<fragment>'): KernelFragment {
  const options: KernelOption[] = [];
  const seen = new Map<string, number>();
  text.split('\n').forEach((raw, i) => {
    const line = raw.trim();
    const set = SET_RE.exec(line);
    const unset = set ? null : UNSET_RE.exec(line);
    if (!set && !unset) {
      if (line !== '' && !line.startsWith('#')) {
        throw new BulkheadError('KERNEL_INVALID', `${where}:${i + 1}: not a config line: ${JSON.stringify(raw)}`);
      }
      return;
    }
    const name = (set ?? unset)![1]!;
    const value = set ? set[2]! : 'n';
    const previous = seen.get(name);
    if (previous !== undefined) {
      throw new BulkheadError('KERNEL_INVALID', `${where}:${i + 1}: ${name} already set on line ${previous}`);
    }
    seen.set(name, i + 1);
    options.push({ name, value, line: i + 1 });
  });
  return { path: where, text, options };
}

/** Reads a fragment: a flavor name (`zone`, `host`) or a path to a fragment file. */
export function loadFragment(config: string, arch = 'x86_64'): KernelFragment {
  const file = isFlavor(config) ? path.join(kernelConfigsDir(), arch, `${config}.config`) : path.resolve(config);
  if (!existsSync(file)) {
    throw new InvalidConfigError('config', config, `${KERNEL_FLAVORS.join(', ')} or the path of a fragment file`);
  }
  return parseFragment(readFileSync(file, 'utf8'), file);
}

export function isFlavor(name: string): name is KernelFlavor {
  return (KERNEL_FLAVORS as readonly string[]).includes(name);
}

/**
 * The hash part of the cache key: the options only (comments and ordering of blank lines do not
 * change the kernel), plus the recipe version. 16 hex digits.
 */
export function fragmentHash(fragment: KernelFragment): string {
  const body = fragment.options.map((o) => (o.value === 'n' ? `# ${o.name} is not set` : `${o.name}=${o.value}`));
  return createHash('sha256')
    .update(`bulkhead-kernel-recipe-${KERNEL_RECIPE_VERSION}\n${body.join('\n')}\n`)
    .digest('hex')
    .slice(0, 16);
}

/** Parses an expanded .config into name → value (`n` entries for "is not set"). */
export function parseDotConfig(text: string): Map<string, string> {
  const out = new Map<string, string>();
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    const set = SET_RE.exec(line);
    if (set) out.set(set[1]!, set[2]!);
    else {
      const unset = UNSET_RE.exec(line);
      if (unset) out.set(unset[1]!, 'n');
    }
  }
  return out;
}

/**
 * The options the fragment asked for that Kconfig did not keep (a missing dependency, a typo, an
 * option that does not exist in this kernel version). Empty when everything survived.
 */
export function findDroppedOptions(fragment: KernelFragment, dotConfig: string): DroppedOption[] {
  const expanded = parseDotConfig(dotConfig);
  const dropped: DroppedOption[] = [];
  for (const opt of fragment.options) {
    const got = expanded.get(opt.name) ?? 'n';
    const ok = opt.value === 'n' ? got === 'n' : got === opt.value;
    if (!ok) dropped.push({ name: opt.name, wanted: opt.value, got });
  }
  return dropped;
}

export function describeDropped(dropped: readonly DroppedOption[]): string {
  return dropped.map((d) => `${d.name}: asked ${d.wanted}, got ${d.got}`).join('; ');
}

/**
 * kernel-configs/ of this package, or $BULKHEAD_KERNEL_CONFIG_DIR: a directory of the same shape
 * (x86_64/<flavor>.config, source.json) for custom kernels, and for tests that need a broken one.
 */
export function kernelConfigsDir(): string {
  const dir = process.env.BULKHEAD_KERNEL_CONFIG_DIR ? path.resolve(process.env.BULKHEAD_KERNEL_CONFIG_DIR) : packagePath('kernel-configs');
  if (!existsSync(dir)) throw new BulkheadError('KERNEL_INVALID', `${dir} is missing from the package`);
  return dir;
}
