/**
 * Docker: the baseline ("bare Docker") every other runner is compared with. Uses a daemon that is
 * already reachable; otherwise starts a private one (see dockerd.ts) and stops it in cleanup().
 * The image is made with `docker import` of a tar holding only the static workload (no registry, no
 * builder); containers run with --network none and are removed by name if a run fails or is aborted.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { BulkheadError } from '../../errors';
import { runChecked, runCommand, versionOf, which } from '../../util/process';
import { parseWorkloadOutput, type WorkloadResult } from '../workload';
import { containerCgroupsUnavailableReason } from './cgroups';
import { PrivateDockerd } from './dockerd';
import type { Availability, BenchRunner, RunnerContext, RunOptions, WorkloadInvocation } from './runner';

let containerCounter = 0;

export class DockerRunner implements BenchRunner {
  readonly name = 'docker' as const;
  readonly location = 'host' as const;
  readonly id = 'docker';
  readonly description = 'docker run (runc, default seccomp profile); a private dockerd is started when none is reachable';
  readonly iterationScale = {};
  private daemon: PrivateDockerd | undefined;
  private env: NodeJS.ProcessEnv = process.env;
  private image: string | undefined;
  private ownDaemon = false;
  private readonly live = new Set<string>();

  async probe(): Promise<Availability> {
    if (!which('docker')) return { available: false, reason: 'the docker client is not installed' };
    if (await this.reachable(process.env)) return { available: true };
    // A private dockerd runs its containers with runc on this kernel (a reachable daemon may be elsewhere).
    const cgroups = containerCgroupsUnavailableReason();
    if (cgroups) return { available: false, reason: `${cgroups} (Docker runs them with runc)` };
    if (!which('dockerd')) return { available: false, reason: 'no Docker daemon is reachable and dockerd is not installed (apt-get install docker.io)' };
    if (process.getuid?.() !== 0) return { available: false, reason: 'no Docker daemon is reachable and starting dockerd needs root' };
    return { available: true };
  }

  /** Server and client versions while a daemon is up (call after prepare()), else dockerd's own. */
  async version(): Promise<string | undefined> {
    if (!which('docker')) return undefined;
    const format = 'server {{.Server.Version}}, client {{.Client.Version}}';
    const r = await runCommand('docker', ['version', '--format', format], { env: this.env, timeoutMs: 10_000 }).catch(() => undefined);
    if (r?.code === 0) return r.stdout.trim();
    return (await versionOf('dockerd')) ?? (await versionOf('docker'));
  }

  async prepare(context: RunnerContext): Promise<void> {
    if (await this.reachable(process.env)) {
      context.log('docker: using the reachable Docker daemon');
    } else {
      const dockerd = which('dockerd');
      if (!dockerd) throw new BulkheadError('BENCH_RUNNER_UNAVAILABLE', 'dockerd is not installed');
      context.log('docker: starting a private dockerd (no bridge, no iptables) ...');
      this.daemon = new PrivateDockerd(path.join(context.workDir, 'd'));
      this.ownDaemon = true;
      await this.daemon.start(dockerd, context.signal);
      this.env = this.daemon.env;
      context.log(`docker: private dockerd is up (pid ${this.daemon.pid})`);
    }
    if (context.signal?.aborted) return;
    // The image is named after the binary's cache dir (a hash of its source), so re-runs reuse it.
    const tag = `bulkhead-bench-workload:${path.basename(path.dirname(context.workloadPath)).slice(0, 16) || 'latest'}`;
    const tarDir = path.join(context.workDir, 'image');
    fs.mkdirSync(tarDir, { recursive: true });
    fs.copyFileSync(context.workloadPath, path.join(tarDir, 'workload'));
    fs.chmodSync(path.join(tarDir, 'workload'), 0o755);
    const tar = path.join(context.workDir, 'image.tar');
    await runChecked('tar', ['-C', tarDir, '-cf', tar, 'workload']);
    await runChecked('docker', ['import', '--change', 'ENTRYPOINT ["/workload"]', tar, tag], { env: this.env, timeoutMs: 120_000, signal: context.signal });
    this.image = tag;
  }

  async run(invocation: WorkloadInvocation, options: RunOptions): Promise<WorkloadResult[]> {
    if (!this.image) throw new BulkheadError('BENCH_FAILED', 'docker runner used before prepare()');
    const name = `bulkhead-bench-${process.pid}-${++containerCounter}`;
    this.live.add(name);
    try {
      const r = await runCommand('docker', ['run', '--rm', '--name', name, '--network', 'none', this.image, ...invocation.args], { ...options, env: this.env });
      if (r.code !== 0) throw new BulkheadError('BENCH_FAILED', `docker run exited with ${r.code ?? r.signal}: ${r.stderr.trim().slice(-1000)}`);
      return parseWorkloadOutput(r.stdout, invocation.tests);
    } finally {
      await this.removeContainer(name);
    }
  }

  private async removeContainer(name: string): Promise<void> {
    // `docker run --rm` removes it on a normal exit; after a kill of the client it may still run.
    const r = await runCommand('docker', ['ps', '-aq', '--filter', `name=^${name}$`], { env: this.env, timeoutMs: 20_000 }).catch(() => undefined);
    if (r?.stdout.trim()) await runCommand('docker', ['rm', '-f', name], { env: this.env, timeoutMs: 30_000 }).catch(() => undefined);
    this.live.delete(name);
  }

  async cleanup(): Promise<void> {
    for (const name of [...this.live]) await this.removeContainer(name);
    if (this.image && !this.ownDaemon) {
      // A shared daemon keeps no trace of us; a private one goes away with its data-root.
      await runCommand('docker', ['rmi', this.image], { env: this.env, timeoutMs: 30_000 }).catch(() => undefined);
    }
    this.image = undefined;
    if (this.daemon) await this.daemon.stop();
    this.daemon = undefined;
    this.ownDaemon = false;
    this.env = process.env;
  }

  private async reachable(env: NodeJS.ProcessEnv): Promise<boolean> {
    const r = await runCommand('docker', ['version', '--format', '{{.Server.Version}}'], { env, timeoutMs: 10_000 }).catch(() => undefined);
    return r?.code === 0;
  }
}
