/**
 * QEMU's side of the exit benchmark: `qemu-system-x86_64 -accel kvm -M microvm` loading the same
 * multiboot image with `-kernel`, isa-debug-exit on the done port. One run is one QEMU process, timed
 * from spawn to exit (QEMU cannot be timed from inside), so start-up is in every figure; the exit
 * rate comes from two runs with different N, where it cancels out.
 *
 * microvm, not the default `pc`: microvm's firmware (qboot) is tiny while `pc` runs SeaBIOS first,
 * which on PVM is emulated (CPL0/real mode) and takes seconds. We compare against QEMU's fastest
 * machine for this guest.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { BulkheadError } from '../../errors';
import { DONE_PORT, QEMU_DONE_STATUS } from './guest';
import { GUEST_MEMORY_MIB } from './ours';

const RUN_TIMEOUT_MS = 180_000;

/** The CPU model for `-accel kvm`: `-cpu host` aborts on PVM (MSR 0x10a, see host-facts). */
export function qemuCpuModel(virtualization: string): string {
  return virtualization === 'pvm' ? 'kvm64' : 'host';
}

export function qemuExitArgs(imagePath: string, cpu: string): string[] {
  return [
    '-accel', 'kvm',
    '-cpu', cpu,
    '-M', 'microvm',
    '-m', String(GUEST_MEMORY_MIB),
    '-smp', '1',
    '-nodefaults', '-no-user-config', '-display', 'none', '-no-reboot',
    '-serial', 'none',
    '-device', `isa-debug-exit,iobase=0x${DONE_PORT.toString(16)},iosize=4`,
    '-kernel', imagePath,
  ];
}

const live = new Set<ChildProcess>();
let exitHookInstalled = false;

/** QEMU children never outlive this process on a normal exit or an interrupt. */
function trackChild(child: ChildProcess): void {
  live.add(child);
  child.once('exit', () => live.delete(child));
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  process.on('exit', () => {
    for (const c of live) c.kill('SIGKILL');
  });
}

/** Kills every QEMU this module started that is still running (for SIGINT handlers). */
export function killQemuChildren(): void {
  for (const c of live) c.kill('SIGKILL');
}

/** One QEMU process: spawn to exit, ns. Fails unless isa-debug-exit ended it with the guest's value. */
export function qemuRun(qemu: string, args: readonly string[]): Promise<number> {
  return new Promise((resolve, reject) => {
    const t0 = process.hrtime.bigint();
    const child = spawn(qemu, args, { stdio: ['ignore', 'ignore', 'pipe'] });
    trackChild(child);
    let stderr = '';
    child.stderr!.on('data', (d: Buffer) => (stderr = (stderr + d.toString()).slice(-4000)));
    const timer = setTimeout(() => child.kill('SIGKILL'), RUN_TIMEOUT_MS);
    child.once('error', (err) => {
      clearTimeout(timer);
      reject(new BulkheadError('BENCH_FAILED', `cannot start ${qemu}: ${err.message}`));
    });
    child.once('exit', (code, signal) => {
      const t1 = process.hrtime.bigint();
      clearTimeout(timer);
      if (code === QEMU_DONE_STATUS) return resolve(Number(t1 - t0));
      reject(
        new BulkheadError(
          'BENCH_FAILED',
          `QEMU ended with ${signal ? `signal ${signal}` : `status ${code}`} (expected ${QEMU_DONE_STATUS} from isa-debug-exit): ${stderr.trim().slice(-1500)}`,
        ),
      );
    });
  });
}
