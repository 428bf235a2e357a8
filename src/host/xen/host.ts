/**
 * The Xen test host: Xen 4.17 under QEMU TCG with Debian's generic kernel as PV dom0, the real
 * host's root reachable inside over virtio-9p, Xen's daemons started, and the emulated host's
 * agent on the same control port. It is an EmulatedHost booted from another machine image, so it
 * is run, shared (keeper.ts), stopped and cleaned up the same way, and QEMU dies with its parent.
 *
 *   await using host = await startXenHost();
 *   const { stdout } = await host.run(['xl', 'info']);
 */
import { readFileSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { InvalidConfigError } from '../../errors';
import { staticBusybox } from '../../util/busybox';
import { writeCpio, type CpioEntry } from '../../util/cpio';
import { agentSource } from '../emulated/agent';
import { EmulatedHost, type EmulatedHostOptions } from '../emulated/host';
import { XEN_INIT_SCRIPT, xenEnvFile } from './init-script';
import { moduleLoadOrder } from './modules';
import { ensureXenTree, type XenTree } from './packages';

export interface XenHostOptions
  extends Pick<EmulatedHostOptions, 'qemu' | 'writableDirs' | 'bootTimeoutMs' | 'onConsole' | 'signal' | 'qemuArgs' | 'cache9p'> {
  /** Machine RAM in MiB, Xen's and every domain's (default 3072). */
  memoryMiB?: number;
  /** dom0's share of it in MiB (default 1536); the rest is free for domUs. */
  dom0MemoryMiB?: number;
  /** vCPUs (default 1: on two shared host cores one TCG vCPU boots fastest). */
  cpus?: number;
  /** Extra hypervisor command-line arguments. */
  xenAppend?: string;
  /** Extra dom0 kernel command-line arguments (no commas: QEMU's module list splits on them). */
  dom0Append?: string;
  /** Progress of the package download (first run only). */
  log?: (line: string) => void;
}

/** Xen's CPU model under TCG: `max` with SMAP, which TCG's PV dom0 crashes on, turned off. */
export const XEN_CPU_MODEL = 'max,-smap';

/** Boots the Xen test host (downloading its packages on the first run) and waits for its agent. */
export async function startXenHost(opts: XenHostOptions = {}): Promise<EmulatedHost> {
  const memoryMiB = opts.memoryMiB ?? 3072;
  const dom0MiB = opts.dom0MemoryMiB ?? 1536;
  if (!Number.isInteger(dom0MiB) || dom0MiB < 512 || dom0MiB > memoryMiB - 256) {
    throw new InvalidConfigError('dom0MemoryMiB', dom0MiB, `an integer from 512 to memoryMiB - 256 (${memoryMiB - 256})`);
  }
  for (const [name, value] of [['xenAppend', opts.xenAppend], ['dom0Append', opts.dom0Append]] as const) {
    if (value !== undefined && /,/.test(value)) throw new InvalidConfigError(name, value, 'arguments without commas');
  }
  const tree = await ensureXenTree({ log: opts.log, signal: opts.signal });
  const modules = moduleLoadOrder(tree.modulesDir);
  return EmulatedHost.start({
    qemu: opts.qemu,
    writableDirs: opts.writableDirs,
    bootTimeoutMs: opts.bootTimeoutMs ?? 180_000,
    onConsole: opts.onConsole,
    signal: opts.signal,
    qemuArgs: opts.qemuArgs,
    cache9p: opts.cache9p,
    memoryMiB,
    cpus: opts.cpus ?? 1,
    cpuModel: XEN_CPU_MODEL,
    machine: (runDir, settings) => {
      const initrd = path.join(runDir, 'dom0-initramfs.cpio');
      const entries: CpioEntry[] = [
        { name: 'bin', type: 'dir', mode: 0o755 },
        { name: 'bin/busybox', type: 'file', mode: 0o755, data: staticBusybox() },
        { name: 'bin/sh', type: 'symlink', mode: 0o777, data: 'busybox' },
        { name: 'dev', type: 'dir', mode: 0o755 },
        { name: 'dev/console', type: 'chardev', mode: 0o600, rdev: [5, 1] },
        { name: 'etc', type: 'dir', mode: 0o755 },
        { name: 'lib', type: 'dir', mode: 0o755 },
        { name: 'lib/modules', type: 'dir', mode: 0o755 },
        ...modules.map((m): CpioEntry => ({ name: `lib/modules/${m.name}.ko`, type: 'file', mode: 0o644, data: readFileSync(path.join(tree.modulesDir, m.file)) })),
        {
          name: 'etc/bulkhead.env',
          type: 'file',
          mode: 0o644,
          data: xenEnvFile({ ...settings, hostname: 'bulkhead-xen', xenRoot: tree.root, modules: modules.map((m) => `${m.name}.ko`) }),
        },
        { name: 'init', type: 'file', mode: 0o755, data: XEN_INIT_SCRIPT },
        { name: 'agent.js', type: 'file', mode: 0o644, data: agentSource() },
      ];
      writeFileSync(initrd, writeCpio(entries));
      const dom0 = ['console=hvc0', 'earlyprintk=xen', 'rdinit=/init', 'loglevel=4', 'panic=-1', opts.dom0Append ?? ''].filter(Boolean).join(' ');
      const xen = [
        'console=com1',
        'com1=115200,8n1',
        `dom0_mem=${dom0MiB}M,max:${dom0MiB}M`,
        'dom0_max_vcpus=1',
        // dom0's `reboot -f` at stop(): reset by triple fault, on which QEMU (-no-reboot) exits.
        // (Stops still sometimes reach stop()'s 5 s kill under load; the host is cleaned up either way.)
        'reboot=triple',
        opts.xenAppend ?? '',
      ]
        .filter(Boolean)
        .join(' ');
      return { kernel: tree.hypervisor, initrd: `${tree.dom0Kernel} ${dom0},${initrd}`, append: xen };
    },
  });
}

export type { XenTree };
