/**
 * Zones for the lifecycle figures, through the zone API only. A long-lived sandbox zone (no main
 * process) answers exec, stream and idle memory; start-up and density make zones of their own.
 * Memory: the zone's host RSS when the backend reports one; an in-process VM (the kvm backend) does
 * not, so there it is how much this process's RSS grew from before the zone to now (guest pages the
 * VM touched plus the VMM's own), which also counts any heap growth of ours: an upper bound. The
 * guest memory touched is the guest RAM the host holds for it (zone.metrics().host.guestResidentBytes),
 * else the guest kernel's used memory.
 * Start-up's split: the zone's own account of its start (zone.startup: VMM setup, kernel boot, agent
 * start, agent session), then the first exec.
 */
import { BulkheadError } from '../../errors';
import type { Zone } from '../../zone';
import type { Availability } from '../runners/runner';
import { drain, feed, firstChunk, MIB, pipeInsideCommand, pipeInsideRate, type LifecycleSandbox, type SandboxContext, type StartSample } from './sandbox';

/** Small but roomy: busybox, the agent and a 256 MiB stream's buffers fit. */
export const LIFECYCLE_ZONE_MEMORY_MIB = 128;

export class ZoneSandbox implements LifecycleSandbox {
  readonly kind = 'zone' as const;
  private sandbox: Zone | undefined;
  private readonly extra = new Set<Zone>();
  private context: SandboxContext | undefined;
  /** This process's RSS before the sandbox zone existed (in-process zones: see hostBytes). */
  private rssBefore = 0;
  /** The busybox image's digest, resolved once: every zone then takes it from the store as is. */
  private imageDigest: string | undefined;

  /** `backend`: as Zone.create takes it; the lifecycle run passes `kvm` (a host with hardware virtualization, or inside the emulated host). */
  constructor(private readonly backend: 'kvm' | 'emulated-host' | 'auto' = 'kvm') {}

  async probe(): Promise<Availability> {
    const { defaultBackend } = await import('../../zone');
    const b = defaultBackend();
    if (this.backend === 'kvm' && b.kind !== 'kvm') return { available: false, reason: `zones cannot run on this host's KVM: ${b.why}` };
    return { available: true };
  }

  async prepare(context: SandboxContext): Promise<void> {
    this.context = context;
    // Like Docker's image, imported once: a zone's start then does not re-derive the image (minutes under TCG load).
    const { resolveImage } = await import('../../image');
    this.imageDigest = (await resolveImage('busybox', { signal: context.signal })).digest;
    this.rssBefore = process.memoryUsage.rss();
    this.sandbox = await this.create();
    context.log(`zone: sandbox zone ${this.sandbox.name} is up`);
  }

  async startEcho(): Promise<StartSample> {
    const t0 = performance.now();
    const zone = await this.create();
    try {
      const created = performance.now();
      const proc = zone.spawn(['echo', 'hi']);
      proc.stdin.end();
      const first = await firstChunk(proc.stdout);
      proc.stdout.resume();
      await proc.wait();
      const split: Record<string, number> = { ...createSplit(zone, created - t0), 'first exec to first output': first - created };
      return { ms: first - t0, split };
    } finally {
      await this.remove(zone);
    }
  }

  async execTrue(): Promise<number> {
    const t0 = performance.now();
    const r = await this.zoneOrThrow().exec(['true'], { timeoutMs: 60_000 });
    const ms = performance.now() - t0;
    if (r.exitCode !== 0) throw new BulkheadError('BENCH_FAILED', `true in the zone exited with ${r.exitCode ?? r.signal}`);
    return ms;
  }

  async streamCat(bytes: number): Promise<number> {
    const proc = this.zoneOrThrow().spawn(['cat']);
    const t0 = performance.now();
    const [, got] = await Promise.all([feed(proc.stdin, bytes), drain(proc.stdout), proc.wait()]);
    const ms = performance.now() - t0;
    if (got !== bytes) throw new BulkheadError('BENCH_FAILED', `cat in the zone returned ${got} of ${bytes} bytes`);
    return bytes / MIB / (ms / 1000);
  }

  async pipeInside(bytes: number): Promise<number> {
    const r = await this.zoneOrThrow().exec(['sh', '-c', pipeInsideCommand(bytes)], { timeoutMs: 30 * 60_000 });
    if (r.exitCode !== 0) throw new BulkheadError('BENCH_FAILED', `the pipe in the zone exited with ${r.exitCode ?? r.signal}: ${r.stdout.slice(0, 200)}`);
    return pipeInsideRate(bytes, r.stdout, 'the zone');
  }

  async idleMemory(): Promise<{ mib: number; guestTouchedMiB?: number }> {
    const m = await this.zoneOrThrow().metrics();
    const bytes = m.host.rssBytes ?? process.memoryUsage.rss() - this.rssBefore;
    const touched = m.host.guestResidentBytes ?? m.guest?.memory.usedBytes;
    return { mib: bytes / MIB, ...(touched !== undefined ? { guestTouchedMiB: touched / MIB } : {}) };
  }

  async density(n: number): Promise<{ ms: number; mib: number }> {
    const rssStart = process.memoryUsage.rss();
    const t0 = performance.now();
    const settled = await Promise.allSettled(Array.from({ length: n }, () => this.create()));
    const zones = settled.flatMap((s) => (s.status === 'fulfilled' ? [s.value] : []));
    try {
      const failed = settled.find((s): s is PromiseRejectedResult => s.status === 'rejected');
      if (failed) throw failed.reason;
      await Promise.all(zones.map(async (z) => {
        const r = await z.exec(['echo', 'hi'], { timeoutMs: 120_000 });
        if (r.stdout !== 'hi\n') throw new BulkheadError('BENCH_FAILED', `echo in a density zone printed ${JSON.stringify(r.stdout)}`);
      }));
      const ms = performance.now() - t0;
      const rss = await Promise.all(zones.map(async (z) => (await z.metrics()).host.rssBytes));
      // An in-process VM reports no RSS of its own: what this process grew by while they ran is theirs.
      const bytes = rss.every((r) => r !== undefined) ? rss.reduce((a, b) => a! + b!, 0)! : process.memoryUsage.rss() - rssStart;
      return { ms, mib: bytes / MIB };
    } finally {
      await Promise.all(zones.map((z) => this.remove(z)));
    }
  }

  /**
   * A long-lived zone that died (nested SVM under TCG loses one now and then) is replaced by a fresh
   * one; after a deadline every zone held goes first, since a hung call may still hold them.
   */
  async recover(after: { abandoned: boolean }): Promise<void> {
    const old = this.sandbox;
    if (after.abandoned) await this.cleanup();
    else if (old && old.state === 'running') return;
    else if (old) await this.remove(old);
    this.rssBefore = process.memoryUsage.rss();
    this.sandbox = await this.create();
    this.context?.log(`zone: sandbox zone replaced by ${this.sandbox.name}`);
  }

  async cleanup(): Promise<void> {
    const zones = [...this.extra]; // the sandbox zone is among them
    this.sandbox = undefined;
    await Promise.all(zones.map((z) => this.remove(z)));
  }

  private async create(): Promise<Zone> {
    const { Zone } = await import('../../zone');
    const context = this.context;
    const zone = await Zone.create(
      { image: 'busybox', imageDigest: this.imageDigest, memoryMiB: LIFECYCLE_ZONE_MEMORY_MIB, labels: { 'bulkhead.bench': String(process.pid) }, signal: context?.signal },
      { backend: this.backend, onProgress: (line) => context?.log(`zone: ${line}`) },
    );
    this.extra.add(zone);
    return zone;
  }

  private async remove(zone: Zone): Promise<void> {
    this.extra.delete(zone);
    await zone.destroy().catch((err: unknown) => this.context?.log(`zone: destroy failed: ${(err as Error).message}`));
  }

  private zoneOrThrow(): Zone {
    if (!this.sandbox) throw new BulkheadError('BENCH_FAILED', 'zone sandbox used before prepare()');
    return this.sandbox;
  }
}

/** Zone.create()'s part of the start-up, by the zone's phases when it reports them. */
function createSplit(zone: Zone, createMs: number): Record<string, number> {
  const s = zone.startup;
  if (!s) return { 'Zone.create (VMM setup, kernel boot, agent start)': createMs };
  const out: Record<string, number> = { 'image and kernel lookup': s.imageMs + s.kernelMs, 'VMM setup (VM, devices, kernel load)': s.vmmSetupMs };
  if (s.kernelBootMs !== undefined && s.agentStartMs !== undefined) {
    out['kernel boot (to the agent as PID 1)'] = s.kernelBootMs;
    out['agent start (mounts, to listening on vsock)'] = s.agentStartMs;
  }
  out['agent session (vsock connect, handshake)'] = s.agentConnectMs;
  if (s.mainLaunchMs > 0) out['main process launch'] = s.mainLaunchMs;
  const rest = createMs - s.totalMs;
  if (rest > 0.5) out['Zone.create outside the zone (validation, state directory)'] = rest;
  return out;
}
