/**
 * Benchmark C: the virtio devices, ours against QEMU `-M microvm` on the same zone kernel, inside the emulated
 * host (run.ts launches it there with `--inner devices`), interleaved round by round:
 *   - virtio-blk sequential read: the guest reads a diskMiB read-only disk to its end (guest clock);
 *   - vsock throughput, ours in user space against QEMU's vhost-vsock: guest -> host (the host receiver's time,
 *     first byte to EOF) and host -> guest (the guest receiver's time);
 *   - boot to the userspace marker with every device attached, and the VMM's memory overhead then (boot.ts).
 * One guest binary for both VMMs (bench/vmm/guest/devices-init.c), one host helper (bench/vmm/vsock-peer.c):
 * ours is reached through its Unix socket (`CONNECT <port>`), QEMU's vhost-vsock through AF_VSOCK (guest CID 3).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { BulkheadError } from '../../errors';
import { qemuDeviceArgs, oursDeviceArgs, runBootBenchmark, type BootConfig, type BootSample } from './boot';
import { scheduledRounds } from '../method/schedule';
import { onInterrupt } from './cleanup';
import type { VmmKind } from './memory';

export type ThroughputKind = 'blk' | 'vsock-out' | 'vsock-in';

export interface DevicesConfig {
  bhBoot: string;
  qemu: string;
  peer: string;
  kernel: string;
  initrd: string;
  /** A directory inside the emulated host on its own filesystem (Unix sockets cannot live on 9p). */
  workDir: string;
  diskMiB: number;
  vsockMiB: number;
  memoryMiB: number;
  runs: number;
  warmups: number;
  /** The rounds' order is shuffled from it (method/schedule.ts); recorded with the results. */
  seed: number;
  timeoutMs: number;
}

export interface ThroughputSample {
  vmm: VmmKind;
  kind: ThroughputKind;
  round: number;
  warmup: boolean;
  bytes: number;
  ns: number;
  mibPerS: number;
  /** vsock-out: the guest sender's own figure (it stops when the last write returns). */
  senderNs?: number;
}

export interface DevicesInnerResult {
  throughput: ThroughputSample[];
  boot: BootSample[];
  qemuVersion?: string;
}

/** A 1 MiB pattern written diskMiB times (not zeros: no sparse-file shortcuts on either side). */
function makeDisk(file: string, mib: number): void {
  const chunk = Buffer.alloc(1 << 20);
  for (let i = 0; i < chunk.length; i += 4) chunk.writeUInt32LE((i * 2654435761) >>> 0, i);
  const fd = fs.openSync(file, 'w');
  try {
    for (let i = 0; i < mib; i++) fs.writeSync(fd, chunk);
  } finally {
    fs.closeSync(fd);
  }
}

function cmdline(kind: ThroughputKind, c: DevicesConfig): string {
  return `console=hvc0 quiet bhbench=${kind} bhmib=${c.vsockMiB}`;
}

function vmmCommand(c: DevicesConfig, vmm: VmmKind, kind: ThroughputKind, disk: string, uds: string): { cmd: string; args: string[] } {
  const devices = { disk, vsockUds: uds };
  if (vmm === 'ours') {
    return {
      cmd: c.bhBoot,
      args: ['--kernel', c.kernel, '--initrd', c.initrd, '--cmdline', cmdline(kind, c), '--memory-mib', String(c.memoryMiB), '--vcpus', '1', ...oursDeviceArgs(devices)],
    };
  }
  return {
    cmd: c.qemu,
    args: [
      '-accel', 'kvm', '-cpu', 'host', '-M', 'microvm,acpi=off', '-m', String(c.memoryMiB), '-smp', '1',
      '-nodefaults', '-no-user-config', '-display', 'none', '-no-reboot', ...qemuDeviceArgs(devices),
      '-kernel', c.kernel, '-initrd', c.initrd, '-append', cmdline(kind, c),
    ],
  };
}

/** A child whose stdout lines are watched; killed (SIGKILL) on finish. */
function watch(cmd: string, args: string[], onLine: (line: string) => void): { child: ChildProcess; tail: () => string } {
  const child = spawn(cmd, args, { stdio: ['pipe', 'pipe', 'pipe'] });
  let partial = '';
  let tail = '';
  child.stdout!.on('data', (d: Buffer) => {
    const text = d.toString('latin1');
    tail = (tail + text).slice(-4000);
    partial += text;
    let nl;
    while ((nl = partial.indexOf('\n')) >= 0) {
      onLine(partial.slice(0, nl).replace(/\r$/, ''));
      partial = partial.slice(nl + 1);
    }
  });
  child.stderr!.on('data', (d: Buffer) => (tail = (tail + d.toString()).slice(-4000)));
  return { child, tail: () => tail };
}

/** One throughput run: the VMM (and the host peer for vsock) until the result line, then both are killed. */
function throughputOnce(c: DevicesConfig, vmm: VmmKind, kind: ThroughputKind, disk: string, uds: string): Promise<Omit<ThroughputSample, 'round' | 'warmup'>> {
  return new Promise((resolve, reject) => {
    const children: ChildProcess[] = [];
    let done = false;
    let senderNs: number | undefined;
    const kill = (): void => children.forEach((ch) => ch.kill('SIGKILL'));
    const unregister = onInterrupt(kill);
    const finish = (err: Error | undefined, bytes = 0, ns = 0): void => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      unregister();
      kill();
      if (err) return reject(err);
      resolve({ vmm, kind, bytes, ns, mibPerS: bytes / (1 << 20) / (ns / 1e9), ...(senderNs !== undefined ? { senderNs } : {}) });
    };
    const result = (line: string, prefix: string): boolean => {
      const m = new RegExp(`^${prefix} (\\d+) (\\d+)`).exec(line);
      if (!m) return false;
      finish(undefined, Number(m[1]), Number(m[2]));
      return true;
    };
    let vmmProc: ReturnType<typeof watch> | undefined;
    const timer = setTimeout(
      () => finish(new BulkheadError('BENCH_FAILED', `${vmm} ${kind}: no result within ${c.timeoutMs} ms; tail:\n${vmmProc?.tail() ?? ''}`)),
      c.timeoutMs,
    );
    const startVmm = (): void => {
      vmmProc = watch(vmmCommand(c, vmm, kind, disk, uds).cmd, vmmCommand(c, vmm, kind, disk, uds).args, (line) => {
        if (kind === 'blk') result(line, 'BH-BLK');
        else if (kind === 'vsock-in') {
          if (line.startsWith('BH-LISTEN')) {
            const args = vmm === 'ours' ? ['send-unix', uds, '5001', String(c.vsockMiB)] : ['send-vsock', '3', '5001', String(c.vsockMiB)];
            const peer = watch(c.peer, args, () => undefined);
            children.push(peer.child);
          }
          result(line, 'BH-VSOCK-IN');
        } else {
          const m = /^BH-VSOCK-OUT (\d+) (\d+)/.exec(line);
          if (m) senderNs = Number(m[2]);
        }
      });
      children.push(vmmProc.child);
      vmmProc.child.once('close', (code, signal) => {
        if (!done) finish(new BulkheadError('BENCH_FAILED', `${vmm} ${kind}: the VMM ended (${signal ?? `status ${code}`}) before a result; tail:\n${vmmProc?.tail()}`));
      });
    };
    fs.rmSync(uds, { force: true });
    if (kind === 'vsock-out') {
      // The host receiver first: the guest connects to CID 2 port 5000 as soon as it is up.
      const args = vmm === 'ours' ? ['recv-unix', `${uds}_5000`] : ['recv-vsock', '5000'];
      const peer = watch(c.peer, args, (line) => {
        if (line === 'LISTENING') startVmm();
        else result(line, 'RECV');
      });
      children.push(peer.child);
    } else {
      startVmm();
    }
  });
}

async function retryOnce<T>(what: string, run: () => Promise<T>, log: (m: string) => void): Promise<T> {
  try {
    return await run();
  } catch (err) {
    // Nested SVM under TCG now and then kills a guest in early boot (test/e2e/fixtures/early-boot-death.ts).
    log(`${what}: ${(err as Error).message.split('\n')[0]}; retrying once`);
    return run();
  }
}

export async function runDevicesBenchmark(c: DevicesConfig, log: (m: string) => void): Promise<DevicesInnerResult> {
  fs.mkdirSync(c.workDir, { recursive: true });
  const disk = path.join(c.workDir, 'disk.img');
  const uds = path.join(c.workDir, 'v.sock');
  log(`writing a ${c.diskMiB} MiB disk image ...`);
  makeDisk(disk, c.diskMiB);
  const throughput: ThroughputSample[] = [];
  const kinds: ThroughputKind[] = ['blk', 'vsock-out', 'vsock-in'];
  for (const { round, warmup, label, order } of scheduledRounds<VmmKind>(['ours', 'qemu'], c.runs, c.warmups, c.seed)) {
    for (const kind of kinds) {
      for (const vmm of order) {
        const s = await retryOnce(`${vmm} ${kind}`, () => throughputOnce(c, vmm, kind, disk, uds), log);
        throughput.push({ ...s, round, warmup });
        log(`${kind} ${label} ${vmm}: ${s.mibPerS.toFixed(1)} MiB/s (${(s.bytes / (1 << 20)).toFixed(0)} MiB in ${(s.ns / 1e6).toFixed(0)} ms)`);
      }
    }
  }
  log('boot to the marker with every device attached ...');
  const bootConfig: BootConfig = {
    bhBoot: c.bhBoot,
    qemu: c.qemu,
    kernel: c.kernel,
    initrd: c.initrd,
    cmdline: 'console=hvc0 bhbench=boot',
    marker: 'BH-INIT',
    memoryMiB: c.memoryMiB,
    runs: c.runs,
    warmups: c.warmups,
    seed: c.seed,
    timeoutMs: c.timeoutMs,
    devices: { disk, vsockUds: uds },
  };
  const boot = await runBootBenchmark(bootConfig, log);
  fs.rmSync(c.workDir, { recursive: true, force: true });
  return { throughput, boot };
}
