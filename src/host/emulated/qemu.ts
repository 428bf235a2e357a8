/**
 * The QEMU side of the emulated host: the command line (TCG, `-cpu max` for emulated SVM, the host
 * kernel booted directly, the real root shared over virtio-9p, the control port on a Unix socket)
 * and a launcher that ties QEMU's life to ours.
 *
 * QEMU must never outlive the node process that started it, even when that process is SIGKILLed:
 * QEMU is started through `setpriv --pdeathsig SIGKILL` (util-linux), so the kernel kills it when
 * its parent dies. Without setpriv we fall back to exit/signal handlers (which SIGKILL can skip).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import * as path from 'node:path';
import { diesWithParent, which } from '../../util/process';
import { CONTROL_PORT_NAME } from './protocol';

export interface QemuSettings {
  qemu: string;
  kernel: string;
  initrd: string;
  append: string;
  memoryMiB: number;
  cpus: number;
  cpuModel: string;
  /** Directory of the real host shared as the guest's root (read-only). */
  share: string;
  mountTag: string;
  controlSocket: string;
  pidFile: string;
  /** Extra read-write shares: 9p tag and real-host path. */
  writable: readonly { tag: string; path: string }[];
  extraArgs: readonly string[];
}

export function qemuArgs(s: QemuSettings): string[] {
  return [
    '-accel', 'tcg',
    '-M', 'pc',
    '-cpu', s.cpuModel,
    '-smp', String(s.cpus),
    '-m', String(s.memoryMiB),
    '-nodefaults', '-no-user-config', '-display', 'none', '-no-reboot',
    '-serial', 'stdio',
    '-kernel', s.kernel,
    '-initrd', s.initrd,
    '-append', s.append,
    '-virtfs', `local,path=${s.share},mount_tag=${s.mountTag},security_model=none,readonly=on,multidevs=remap`,
    ...s.writable.flatMap((w) => [
      '-virtfs', `local,path=${w.path},mount_tag=${w.tag},security_model=none,multidevs=remap`,
    ]),
    '-device', 'virtio-serial-pci',
    '-chardev', `socket,path=${s.controlSocket},server=on,wait=off,id=ctl`,
    '-device', `virtserialport,chardev=ctl,name=${CONTROL_PORT_NAME}`,
    // Entropy right away: node's startup calls getrandom().
    '-device', 'virtio-rng-pci',
    '-pidfile', s.pidFile,
    ...s.extraArgs,
  ];
}

export interface LaunchedQemu {
  child: ChildProcess;
  /** True when the kernel will kill QEMU if we die (setpriv --pdeathsig). */
  diesWithParent: boolean;
}

export function launchQemu(s: QemuSettings): LaunchedQemu {
  const launch = diesWithParent(s.qemu, qemuArgs(s));
  const child = spawn(launch.command, launch.args, { stdio: ['ignore', 'pipe', 'pipe'], cwd: path.dirname(s.controlSocket) });
  return { child, diesWithParent: launch.diesWithParent };
}

/** `explicit` if it exists, else qemu-system-x86_64 on PATH: the one lookup every QEMU user here shares. */
export function findQemu(explicit?: string): string | undefined {
  if (explicit) return existsSync(explicit) ? explicit : undefined;
  return which('qemu-system-x86_64');
}
