/**
 * The dom0 kernel's modules the Xen test host loads from its initramfs, in an order that insmod
 * accepts. Debian's .deb ships no modules.dep (depmod writes it at install), so dependencies come
 * from each module's own `.modinfo` section (`depends=a,b`); modules.order maps names to files and
 * modules.builtin says what needs no loading.
 */
import { readFileSync } from 'node:fs';
import * as path from 'node:path';
import { BulkheadError } from '../../errors';

/** What dom0 needs: the virtio devices QEMU gives it (9p root, control port, entropy), overlayfs, Xen's devices. */
export const DOM0_MODULES: readonly string[] = [
  'virtio_pci',
  'virtio_console',
  'virtio-rng',
  '9pnet_virtio',
  '9p',
  'overlay',
  'xenfs',
  'xen-privcmd',
  'xen-evtchn',
  'xen-gntdev',
  'xen-gntalloc',
];

export interface KernelModule {
  name: string;
  /** Path relative to the modules directory (kernel/…/x.ko). */
  file: string;
}

/** Module names as the kernel compares them: '-' and '_' are the same. */
const norm = (name: string) => name.replace(/-/g, '_');

/** `wanted` and everything they depend on, dependencies first; built-in ones are left out. */
export function moduleLoadOrder(modulesDir: string, wanted: readonly string[] = DOM0_MODULES): KernelModule[] {
  const files = new Map<string, string>();
  for (const line of readFileSync(path.join(modulesDir, 'modules.order'), 'utf8').split('\n')) {
    const file = line.trim();
    if (file) files.set(norm(path.basename(file, '.ko')), file);
  }
  const builtin = new Set(
    readFileSync(path.join(modulesDir, 'modules.builtin'), 'utf8')
      .split('\n')
      .filter(Boolean)
      .map((l) => norm(path.basename(l.trim(), '.ko'))),
  );
  const order: KernelModule[] = [];
  const state = new Map<string, 'visiting' | 'done'>();
  const visit = (name: string, via: string) => {
    const key = norm(name);
    if (builtin.has(key) || state.get(key) === 'done') return;
    if (state.get(key) === 'visiting') throw new BulkheadError('HOST_UNAVAILABLE', `module dependency cycle through ${name}`);
    const file = files.get(key);
    if (!file) throw new BulkheadError('HOST_UNAVAILABLE', `the dom0 kernel has no module ${name} (needed by ${via}), neither built in nor in modules.order`);
    state.set(key, 'visiting');
    for (const dep of moduleDepends(readFileSync(path.join(modulesDir, file)))) visit(dep, name);
    state.set(key, 'done');
    order.push({ name: key, file });
  };
  for (const name of wanted) visit(name, 'the Xen test host');
  return order;
}

/** The `depends=` entry of a module's .modinfo strings (NUL-separated key=value pairs). */
export function moduleDepends(ko: Buffer): string[] {
  const key = Buffer.from('\0depends=');
  const at = ko.indexOf(key);
  if (at < 0) return [];
  const start = at + key.length;
  const end = ko.indexOf(0, start);
  const value = ko.subarray(start, end < 0 ? ko.length : end).toString('latin1');
  return value.split(',').filter(Boolean);
}
