/**
 * Docker and runc for the lifecycle figures. Both run a FROM-scratch image of the host's static
 * busybox (sh, echo, cat, true, sleep, head, time), so they execute the same binaries as the zone's busybox image.
 * Docker: `docker run --rm` for start-up, one long-lived `docker run -d` container for `docker exec`
 * and `docker exec -i cat`; its memory is the container cgroup's memory.current (or v1 usage) plus its
 * shim's RSS. runc: `runc run` of a bundle for start-up only. Docker uses a reachable daemon, or a
 * private one (runners/dockerd.ts) that is stopped by PID in cleanup().
 */
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { BulkheadError } from '../../errors';
import { killProcessesMentioning, runChecked, runCommand, which } from '../../util/process';
import { containerCgroupsUnavailableReason } from '../runners/cgroups';
import { PrivateDockerd } from '../runners/dockerd';
import { ociConfig } from '../runners/oci-bundle';
import type { Availability } from '../runners/runner';
import { drain, feed, firstChunk, MIB, pipeInsideCommand, pipeInsideRate, type LifecycleSandbox, type SandboxContext, type StartSample } from './sandbox';

const BUSYBOX = '/bin/busybox';
const APPLETS = ['sh', 'echo', 'cat', 'true', 'sleep', 'head', 'time'];
let counter = 0;

/** A rootfs directory holding only the static busybox and its applet links. */
function layOutBusyboxRoot(root: string): void {
  for (const dir of ['bin', 'proc', 'dev', 'sys', 'tmp']) fs.mkdirSync(path.join(root, dir), { recursive: true });
  fs.copyFileSync(BUSYBOX, path.join(root, 'bin', 'busybox'));
  fs.chmodSync(path.join(root, 'bin', 'busybox'), 0o755);
  for (const a of APPLETS) fs.symlinkSync('busybox', path.join(root, 'bin', a));
}

function busyboxMissing(): string | undefined {
  return fs.existsSync(BUSYBOX) ? undefined : `${BUSYBOX} is missing (apt-get install busybox-static)`;
}

/** A process's RSS in bytes, from /proc (0 when it is gone). */
function rssOf(pid: number): number {
  try {
    const kb = /^VmRSS:\s+(\d+) kB/m.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1];
    return kb ? Number(kb) * 1024 : 0;
  } catch {
    return 0;
  }
}

/** A container's memory as its cgroup counts it (v2 memory.current, v1 memory.usage_in_bytes), plus its parent's (the shim's) RSS. */
export function containerMemoryBytes(pid: number): number {
  const cgroups = fs.readFileSync(`/proc/${pid}/cgroup`, 'utf8').split('\n');
  const v1 = cgroups.find((l) => /^\d+:([^:]*,)?memory(,[^:]*)?:/.test(l))?.split(':')[2];
  const v2 = cgroups.find((l) => l.startsWith('0::'))?.slice(3);
  const file = v1 !== undefined ? path.join('/sys/fs/cgroup/memory', v1, 'memory.usage_in_bytes') : path.join('/sys/fs/cgroup', v2 ?? '', 'memory.current');
  const cgroup = Number(fs.readFileSync(file, 'utf8').trim());
  const ppid = Number(fs.readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]?.split(' ')[1]);
  return cgroup + (ppid > 1 ? rssOf(ppid) : 0);
}

export class DockerSandbox implements LifecycleSandbox {
  readonly kind = 'docker' as const;
  private daemon: PrivateDockerd | undefined;
  private env: NodeJS.ProcessEnv = process.env;
  private image: string | undefined;
  private long: string | undefined;
  private readonly live = new Set<string>();
  private context: SandboxContext | undefined;

  async probe(): Promise<Availability> {
    if (!which('docker')) return { available: false, reason: 'the docker client is not installed' };
    const bb = busyboxMissing();
    if (bb) return { available: false, reason: bb };
    if (await this.reachable()) return { available: true };
    const cgroups = containerCgroupsUnavailableReason();
    if (cgroups) return { available: false, reason: cgroups };
    if (!which('dockerd')) return { available: false, reason: 'no Docker daemon is reachable and dockerd is not installed' };
    if (process.getuid?.() !== 0) return { available: false, reason: 'no Docker daemon is reachable and starting dockerd needs root' };
    return { available: true };
  }

  async prepare(context: SandboxContext): Promise<void> {
    this.context = context;
    if (!(await this.reachable())) {
      context.log('docker: starting a private dockerd (no bridge, no iptables) ...');
      this.daemon = new PrivateDockerd(path.join(context.workDir, 'd'));
      await this.daemon.start(which('dockerd')!, context.signal);
      this.env = this.daemon.env;
    }
    const root = path.join(context.workDir, 'rootfs');
    layOutBusyboxRoot(root);
    const tar = path.join(context.workDir, 'busybox.tar');
    await runChecked('tar', ['-C', root, '-cf', tar, '.']);
    this.image = `bulkhead-bench-busybox:${process.pid}`;
    await runChecked('docker', ['import', tar, this.image], { env: this.env, timeoutMs: 120_000, signal: context.signal });
    this.long = await this.runDetached();
  }

  async startEcho(): Promise<StartSample> {
    const name = this.nextName();
    this.live.add(name);
    try {
      const t0 = performance.now();
      const child = spawn('docker', ['run', '--rm', '--name', name, '--network', 'none', this.imageOrThrow(), 'echo', 'hi'], { env: this.env, stdio: ['ignore', 'pipe', 'pipe'] });
      const first = firstChunk(child.stdout);
      const code = await new Promise<number | null>((resolve) => child.once('close', resolve));
      if (code !== 0) throw new BulkheadError('BENCH_FAILED', `docker run exited with ${code}`);
      return { ms: (await first) - t0 };
    } finally {
      await this.removeContainer(name);
    }
  }

  async execTrue(): Promise<number> {
    const t0 = performance.now();
    const r = await runCommand('docker', ['exec', this.longOrThrow(), 'true'], { env: this.env, timeoutMs: 60_000 });
    const ms = performance.now() - t0;
    if (r.code !== 0) throw new BulkheadError('BENCH_FAILED', `docker exec true exited with ${r.code}: ${r.stderr.trim()}`);
    return ms;
  }

  async streamCat(bytes: number): Promise<number> {
    const child = spawn('docker', ['exec', '-i', this.longOrThrow(), 'cat'], { env: this.env, stdio: ['pipe', 'pipe', 'ignore'] });
    const t0 = performance.now();
    const closed = new Promise<number | null>((resolve) => child.once('close', resolve));
    const [, got, code] = await Promise.all([feed(child.stdin, bytes), drain(child.stdout), closed]);
    const ms = performance.now() - t0;
    if (code !== 0 || got !== bytes) throw new BulkheadError('BENCH_FAILED', `docker exec -i cat exited with ${code} after ${got} of ${bytes} bytes`);
    return bytes / MIB / (ms / 1000);
  }

  async pipeInside(bytes: number): Promise<number> {
    const r = await runCommand('docker', ['exec', this.longOrThrow(), 'sh', '-c', pipeInsideCommand(bytes)], { env: this.env, timeoutMs: 30 * 60_000 });
    if (r.code !== 0) throw new BulkheadError('BENCH_FAILED', `the pipe in the container exited with ${r.code}: ${r.stdout.slice(0, 200)}${r.stderr.trim()}`);
    return pipeInsideRate(bytes, r.stdout, 'the container');
  }

  async idleMemory(): Promise<{ mib: number }> {
    return { mib: containerMemoryBytes(await this.pidOf(this.longOrThrow())) / MIB };
  }

  async density(n: number): Promise<{ ms: number; mib: number }> {
    const t0 = performance.now();
    const settled = await Promise.allSettled(Array.from({ length: n }, () => this.runDetached()));
    const names = settled.flatMap((s) => (s.status === 'fulfilled' ? [s.value] : []));
    try {
      const failed = settled.find((s): s is PromiseRejectedResult => s.status === 'rejected');
      if (failed) throw failed.reason;
      await Promise.all(names.map(async (name) => {
        const r = await runCommand('docker', ['exec', name, 'echo', 'hi'], { env: this.env, timeoutMs: 120_000 });
        if (r.stdout !== 'hi\n') throw new BulkheadError('BENCH_FAILED', `echo in a density container printed ${JSON.stringify(r.stdout)}: ${r.stderr.trim()}`);
      }));
      const ms = performance.now() - t0;
      let bytes = 0;
      for (const name of names) bytes += containerMemoryBytes(await this.pidOf(name));
      return { ms, mib: bytes / MIB };
    } finally {
      await Promise.all(names.map((name) => this.removeContainer(name)));
    }
  }

  async cleanup(): Promise<void> {
    for (const name of [...this.live]) await this.removeContainer(name);
    this.long = undefined;
    if (this.image && !this.daemon) await runCommand('docker', ['rmi', this.image], { env: this.env, timeoutMs: 30_000 }).catch(() => undefined);
    this.image = undefined;
    if (this.daemon) await this.daemon.stop();
    this.daemon = undefined;
    this.env = process.env;
  }

  private async runDetached(): Promise<string> {
    const name = this.nextName();
    this.live.add(name);
    await runChecked('docker', ['run', '-d', '--name', name, '--network', 'none', this.imageOrThrow(), 'sleep', '1000000'], { env: this.env, timeoutMs: 120_000, signal: this.context?.signal });
    return name;
  }

  private async pidOf(name: string): Promise<number> {
    const r = await runChecked('docker', ['inspect', '-f', '{{.State.Pid}}', name], { env: this.env, timeoutMs: 30_000 });
    return Number(r.stdout.trim());
  }

  private async removeContainer(name: string): Promise<void> {
    await runCommand('docker', ['rm', '-f', name], { env: this.env, timeoutMs: 30_000 }).catch(() => undefined);
    this.live.delete(name);
  }

  private nextName(): string {
    return `bulkhead-lifecycle-${process.pid}-${++counter}`;
  }

  private imageOrThrow(): string {
    if (!this.image) throw new BulkheadError('BENCH_FAILED', 'docker sandbox used before prepare()');
    return this.image;
  }

  private longOrThrow(): string {
    if (!this.long) throw new BulkheadError('BENCH_FAILED', 'docker sandbox used before prepare()');
    return this.long;
  }

  private async reachable(): Promise<boolean> {
    const r = await runCommand('docker', ['version', '--format', '{{.Server.Version}}'], { env: this.env, timeoutMs: 10_000 }).catch(() => undefined);
    return r?.code === 0;
  }
}

/** `runc run` of a busybox bundle: the start-up figure only. */
export class RuncSandbox implements LifecycleSandbox {
  readonly kind = 'runc' as const;
  private bundle: string | undefined;
  private stateRoot: string | undefined;

  async probe(): Promise<Availability> {
    if (!which('runc')) return { available: false, reason: 'runc is not installed' };
    const bb = busyboxMissing();
    if (bb) return { available: false, reason: bb };
    if (process.getuid?.() !== 0) return { available: false, reason: 'runc needs root here' };
    const cgroups = containerCgroupsUnavailableReason();
    return cgroups ? { available: false, reason: cgroups } : { available: true };
  }

  async prepare(context: SandboxContext): Promise<void> {
    this.bundle = path.join(context.workDir, 'bundle');
    this.stateRoot = path.join(context.workDir, 'state');
    layOutBusyboxRoot(path.join(this.bundle, 'rootfs'));
    fs.mkdirSync(this.stateRoot, { recursive: true });
    fs.writeFileSync(path.join(this.bundle, 'config.json'), JSON.stringify(ociConfig(['/bin/echo', 'hi'])));
  }

  async startEcho(): Promise<StartSample> {
    if (!this.bundle || !this.stateRoot) throw new BulkheadError('BENCH_FAILED', 'runc sandbox used before prepare()');
    const id = `bulkhead-lifecycle-${process.pid}-${++counter}`;
    try {
      const t0 = performance.now();
      const child = spawn('runc', ['--root', this.stateRoot, 'run', '--bundle', this.bundle, id], { stdio: ['ignore', 'pipe', 'pipe'] });
      const first = firstChunk(child.stdout);
      const code = await new Promise<number | null>((resolve) => child.once('close', resolve));
      if (code !== 0) throw new BulkheadError('BENCH_FAILED', `runc run exited with ${code}`);
      return { ms: (await first) - t0 };
    } finally {
      await runCommand('runc', ['--root', this.stateRoot, 'delete', '-f', id], { timeoutMs: 30_000 }).catch(() => undefined);
    }
  }

  async cleanup(): Promise<void> {
    if (this.stateRoot) await killProcessesMentioning(this.stateRoot);
    this.bundle = undefined;
    this.stateRoot = undefined;
  }
}
