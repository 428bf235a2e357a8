/**
 * The zone runner: the workload run inside a zone, through the zone API only.
 *   prepare(): Zone.create() of the built-in busybox image (a sandbox: no main process), then
 *              zone.files.write() of the same static workload binary the container runners use; boot
 *              is not timed (the lifecycle figures time it).
 *   run():     zone.exec(['/workload', 'TEST=N', ...]); stdout is parsed like every other runner's.
 *   cleanup(): zone.destroy().
 * One zone serves every round: the workload times itself from inside, so a fresh VM per run would only
 * add minutes of boot under emulation and change no figure (Docker's per-run start is outside them too).
 *
 * Where it runs: `host` means Zone.create's in-process KVM backend (hardware virtualization: on a
 * hardware-virt host, or inside the emulated host during the nested run). `emulated-host` means the zone
 * API's emulated-host backend from out here; the benchmark itself puts zone@emulated-host into the nested
 * run instead (runners/index.ts), so that it is measured next to docker, runc and crun in the same machine.
 */
import * as fs from 'node:fs';
import { BulkheadError } from '../../errors';
import type { Zone } from '../../zone';
import { parseWorkloadOutput, type WorkloadResult } from '../workload';
import { runnerId, type Availability, type BenchRunner, type RunnerContext, type RunnerLocation, type RunOptions, type WorkloadInvocation } from './runner';

/** Guest RAM: the memory tests hold two 64 MiB buffers at once, plus the agent and page cache. */
export const ZONE_RUNNER_MEMORY_MIB = 512;
/** Where the workload binary is written inside the zone (the rootfs is a tmpfs overlay: writable). */
export const ZONE_WORKLOAD_PATH = '/workload';

export class ZoneRunner implements BenchRunner {
  readonly name = 'zone' as const;
  readonly id: string;
  readonly description: string;
  readonly iterationScale = {};
  private zone: Zone | undefined;
  private kernelRelease: string | undefined;

  /** `location`: where the zone's VM runs: this machine's KVM (`host`), or the emulated host. */
  constructor(readonly location: RunnerLocation) {
    this.id = runnerId('zone', location);
    this.description =
      location === 'host'
        ? 'the workload exec()ed in a zone (busybox image, its own VM and kernel, in-process KVM)'
        : 'the workload exec()ed in a zone whose VM runs inside the emulated host (QEMU TCG with nested SVM)';
  }

  async probe(): Promise<Availability> {
    const { defaultBackend } = await import('../../zone');
    const backend = defaultBackend();
    if (this.location === 'host' && backend.kind !== 'kvm') return { available: false, reason: `zones cannot run on this host's KVM: ${backend.why}` };
    if (this.location === 'emulated-host') {
      const { findQemu } = await import('../../host/emulated/qemu');
      if (!findQemu()) return { available: false, reason: 'zones need the emulated host here, and this machine has no qemu-system-x86_64' };
    }
    return { available: true };
  }

  async version(): Promise<string | undefined> {
    return this.kernelRelease ? `zone kernel ${this.kernelRelease}` : undefined;
  }

  async prepare(context: RunnerContext): Promise<void> {
    const { Zone } = await import('../../zone');
    const { resolveImage } = await import('../../image');
    const { digest } = await resolveImage('busybox', { signal: context.signal });
    context.log(`${this.id}: booting a zone (${ZONE_RUNNER_MEMORY_MIB} MiB) ...`);
    this.zone = await Zone.create(
      { image: 'busybox', imageDigest: digest, memoryMiB: ZONE_RUNNER_MEMORY_MIB, labels: { 'bulkhead.bench': String(process.pid) }, signal: context.signal },
      { backend: this.location === 'host' ? 'kvm' : 'emulated-host', onProgress: (line) => context.log(`${this.id}: ${line}`) },
    );
    await this.zone.files.write(ZONE_WORKLOAD_PATH, fs.readFileSync(context.workloadPath), { mode: 0o755 });
    const uname = await this.zone.exec(['uname', '-r'], { timeoutMs: 60_000 });
    this.kernelRelease = uname.exitCode === 0 ? uname.stdout.trim() : undefined;
    context.log(`${this.id}: zone ${this.zone.name} is up (kernel ${this.kernelRelease ?? 'unknown'})`);
  }

  async run(invocation: WorkloadInvocation, options: RunOptions): Promise<WorkloadResult[]> {
    if (!this.zone) throw new BulkheadError('BENCH_FAILED', 'zone runner used before prepare()');
    const r = await this.zone.exec([ZONE_WORKLOAD_PATH, ...invocation.args], { timeoutMs: options.timeoutMs, signal: options.signal });
    if (r.timedOut) throw new BulkheadError('BENCH_FAILED', `the workload in the zone timed out after ${options.timeoutMs} ms`);
    if (r.exitCode !== 0) throw new BulkheadError('BENCH_FAILED', `the workload in the zone exited with ${r.exitCode ?? r.signal}: ${r.stderr.trim().slice(-1000)}`);
    return parseWorkloadOutput(r.stdout, invocation.tests);
  }

  async cleanup(): Promise<void> {
    const zone = this.zone;
    this.zone = undefined;
    if (zone) await zone.destroy();
  }
}
