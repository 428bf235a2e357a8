/**
 * Benchmark B: boot to the userspace marker, ours (native bh-boot) vs QEMU `-M microvm -accel kvm`,
 * same kernel, initramfs and command line, and each VMM's memory overhead at that moment.
 *
 * Runs where /dev/kvm can boot Linux (inside the emulated host on this kind of machine): this module
 * is what executes there, launched by run.ts through `--inner boot`. Each boot is a child process
 * timed from spawn to the first stdout line containing the marker; at that line we read the child's
 * /proc/PID/smaps and status (memory.ts), then SIGKILL it (the guest would otherwise sit halted).
 */
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import { BulkheadError } from '../../errors';
import { scheduledRounds } from '../method/schedule';
import { onInterrupt } from './cleanup';
import { memoryOverhead, type MemoryOverhead, type VmmKind } from './memory';

export interface BootConfig {
  bhBoot: string;
  qemu: string;
  kernel: string;
  initrd: string;
  cmdline: string;
  marker: string;
  memoryMiB: number;
  runs: number;
  warmups: number;
  /** The rounds' order is shuffled from it (method/schedule.ts); recorded with the results. */
  seed: number;
  timeoutMs: number;
  /** Boot with every device attached (the devices benchmark): each VMM's disk, console (hvc0), rng, vsock. */
  devices?: DeviceArgs;
}

/** What a devices run attaches: the same disk image, and each VMM's vsock. */
export interface DeviceArgs {
  disk: string;
  /** Ours: the vsock Unix socket. QEMU uses vhost-vsock with guest CID 3. */
  vsockUds: string;
}

/** bh-boot's device options: the disk read-only, hvc0, rng, vsock (CID 3). */
export function oursDeviceArgs(d: DeviceArgs): string[] {
  return ['--disk', `${d.disk},ro`, '--hvc', '--rng', '--vsock-uds', d.vsockUds];
}

/** QEMU microvm's equivalents: virtio-mmio blk (read-only), virtconsole (hvc0 on stdio), rng, vhost-vsock. */
export function qemuDeviceArgs(d: DeviceArgs): string[] {
  return [
    '-chardev', 'stdio,id=con,signal=off', '-device', 'virtio-serial-device', '-device', 'virtconsole,chardev=con',
    '-drive', `id=d0,file=${d.disk},format=raw,if=none,readonly=on`, '-device', 'virtio-blk-device,drive=d0',
    '-device', 'virtio-rng-device', '-device', 'vhost-vsock-device,guest-cid=3',
  ];
}

export interface BootSample {
  vmm: VmmKind;
  round: number;
  warmup: boolean;
  /** Spawn to the marker line on the child's stdout, ms. */
  markerMs: number;
  /** bh-boot's own figure (its process start to the marker), when it printed one. */
  selfReportedMs?: number;
  /**
   * The last kernel printk timestamp before the marker (guest uptime, ms): markerMs minus this is
   * roughly the VMM's own share (process start, setup, firmware, loading) before the kernel's clock ran.
   */
  guestUptimeMs?: number;
  memory: MemoryOverhead;
}

export function bootCommand(c: BootConfig, vmm: VmmKind): { cmd: string; args: string[] } {
  if (vmm === 'ours') {
    return {
      cmd: c.bhBoot,
      args: [
        '--kernel', c.kernel, '--initrd', c.initrd, '--cmdline', c.cmdline, '--memory-mib', String(c.memoryMiB), '--vcpus', '1',
        '--marker', c.marker, ...(c.devices ? oursDeviceArgs(c.devices) : []),
      ],
    };
  }
  return {
    cmd: c.qemu,
    // The command from host-facts, unchanged apart from the file names and the memory size (and, with devices,
    // the console on virtconsole instead of the serial port).
    args: [
      '-accel', 'kvm', '-cpu', 'host', '-M', 'microvm,acpi=off', '-m', String(c.memoryMiB), '-smp', '1',
      '-nodefaults', '-no-user-config', '-display', 'none', '-no-reboot',
      ...(c.devices ? qemuDeviceArgs(c.devices) : ['-serial', 'stdio']),
      '-kernel', c.kernel, '-initrd', c.initrd, '-append', c.cmdline,
    ],
  };
}

/** One boot: spawn, wait for the marker, sample memory, kill, wait for the exit. */
export function bootOnce(c: BootConfig, vmm: VmmKind): Promise<Omit<BootSample, 'round' | 'warmup'>> {
  const { cmd, args } = bootCommand(c, vmm);
  const imageSizes = [fs.statSync(c.kernel).size, fs.statSync(c.initrd).size];
  return new Promise((resolve, reject) => {
    const t0 = process.hrtime.bigint();
    // QEMU's stdio chardev (the devices boot's console) wants a stdin.
    const child = spawn(cmd, args, { stdio: [c.devices ? 'pipe' : 'ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    let result: Omit<BootSample, 'round' | 'warmup'> | undefined;
    let failure: Error | undefined;
    const timer = setTimeout(() => {
      failure = new BulkheadError('BENCH_FAILED', `${vmm}: no "${c.marker}" within ${c.timeoutMs} ms; console tail:\n${out.slice(-2000)}\n${err.slice(-1000)}`);
      child.kill('SIGKILL');
    }, c.timeoutMs);
    const kill = (): void => void child.kill('SIGKILL');
    process.once('exit', kill);
    const unregister = onInterrupt(kill);
    child.stdout!.on('data', (d: Buffer) => {
      if (result || failure) return;
      out = (out + d.toString('latin1')).slice(-64 * 1024);
      const at = out.indexOf(c.marker);
      if (at < 0 || out.indexOf('\n', at) < 0) return; // the whole marker line, as bh-boot counts it
      const markerMs = Number(process.hrtime.bigint() - t0) / 1e6;
      const stamps = [...out.slice(0, at).matchAll(/\[\s*(\d+\.\d+)\]/g)];
      const guestUptimeMs = stamps.length ? Number(stamps[stamps.length - 1]![1]) * 1000 : undefined;
      try {
        const smaps = fs.readFileSync(`/proc/${child.pid}/smaps`, 'utf8');
        const status = fs.readFileSync(`/proc/${child.pid}/status`, 'utf8');
        result = { vmm, markerMs, ...(guestUptimeMs !== undefined ? { guestUptimeMs } : {}), memory: memoryOverhead(smaps, status, vmm, c.memoryMiB, imageSizes) };
      } catch (e) {
        failure = new BulkheadError('BENCH_FAILED', `${vmm}: reading /proc/${child.pid} at the marker: ${(e as Error).message}`);
      }
      child.kill('SIGKILL');
    });
    child.stderr!.on('data', (d: Buffer) => (err = (err + d.toString()).slice(-16 * 1024)));
    child.once('error', (e) => (failure = new BulkheadError('BENCH_FAILED', `cannot start ${cmd}: ${e.message}`)));
    child.once('close', (code, signal) => {
      clearTimeout(timer);
      process.off('exit', kill);
      unregister();
      if (result) {
        const self = /marker ".*" after ([\d.]+) s/.exec(err);
        if (self) result.selfReportedMs = Number(self[1]) * 1000;
        return resolve(result);
      }
      reject(
        failure ??
          new BulkheadError('BENCH_FAILED', `${vmm} ended (${signal ?? `status ${code}`}) before "${c.marker}"; tail:\n${out.slice(-2000)}\n${err.slice(-1500)}`),
      );
    });
  });
}

/**
 * Nested SVM under TCG now and then kills a guest (QEMU's as well as ours) early in boot when the
 * machine is loaded (see test/e2e/fixtures/early-boot-death.ts): a boot that ends before the
 * marker is retried once, and the log says so; a second failure ends the benchmark.
 */
async function bootOnceRetryingEarlyFault(c: BootConfig, vmm: VmmKind, log: (m: string) => void) {
  try {
    return await bootOnce(c, vmm);
  } catch (err) {
    log(`boot ${vmm}: ended before the marker (${err instanceof Error ? err.message.split('\n')[0] : String(err)}); retrying once`);
    return bootOnce(c, vmm);
  }
}

/** Interleaved boots, the order shuffled each round from the seed; warm-ups first (they fill the page cache). */
export async function runBootBenchmark(c: BootConfig, log: (m: string) => void): Promise<BootSample[]> {
  const samples: BootSample[] = [];
  for (const { round, warmup, label, order } of scheduledRounds<VmmKind>(['ours', 'qemu'], c.runs, c.warmups, c.seed)) {
    for (const vmm of order) {
      const s = await bootOnceRetryingEarlyFault(c, vmm, log);
      samples.push({ ...s, round, warmup });
      log(
        `boot ${label} ${vmm}: marker ${s.markerMs.toFixed(0)} ms, ` +
          `RSS ${(s.memory.rssKb / 1024).toFixed(1)} MiB, guest ${(s.memory.guestKb / 1024).toFixed(1)} MiB, overhead ${(s.memory.overheadKb / 1024).toFixed(2)} MiB`,
      );
    }
  }
  return samples;
}
