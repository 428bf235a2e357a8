/**
 * What runc, crun and runsc have in common: an OCI bundle in the runner's work dir, a private state
 * root (--root) so nothing lands in /run, `RUNTIME run --bundle B ID` per run, and `kill` + `delete -f`
 * for anything left when a run fails or is aborted.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { BulkheadError } from '../../errors';
import { killProcessesMentioning, runCommand, versionOf, which } from '../../util/process';
import { parseWorkloadOutput, type WorkloadGroup, type WorkloadResult } from '../workload';
import { containerCgroupsUnavailableReason } from './cgroups';
import { layOutBundle, writeBundleConfig } from './oci-bundle';
import type { Availability, BenchRunner, RunnerContext, RunnerName, RunOptions, WorkloadInvocation } from './runner';

let containerCounter = 0;

export abstract class OciRuntimeRunner implements BenchRunner {
  abstract readonly name: Exclude<RunnerName, 'bare' | 'docker' | 'zone'>;
  readonly location = 'host' as const;
  abstract readonly description: string;
  readonly iterationScale: Partial<Record<WorkloadGroup, number>> = {};
  /** The runtime's executable name on PATH. */
  protected abstract readonly binary: string;
  private bundleDir: string | undefined;
  private stateRoot: string | undefined;
  private workDir: string | undefined;
  private readonly live = new Set<string>();

  get id(): string {
    return this.name;
  }

  /** Options placed before the subcommand, after --root. */
  protected globalArgs(): string[] {
    return [];
  }

  /** runc and crun program the device cgroup themselves; gVisor does not. */
  protected needsCgroupDevices(): boolean {
    return true;
  }

  /** How to invoke the runtime: overridden where it must run inside a wrapper (crun's mount namespace). */
  protected command(args: string[]): [string, string[]] {
    return [this.binary, args];
  }

  async probe(): Promise<Availability> {
    if (!which(this.binary)) return { available: false, reason: `${this.binary} is not installed (not on PATH)` };
    if (process.getuid?.() !== 0) return { available: false, reason: `${this.binary} needs root here (rootless containers are not set up)` };
    const cgroups = this.needsCgroupDevices() ? containerCgroupsUnavailableReason() : undefined;
    if (cgroups) return { available: false, reason: cgroups };
    return { available: true };
  }

  async version(): Promise<string | undefined> {
    return which(this.binary) ? versionOf(this.binary) : undefined;
  }

  async prepare(context: RunnerContext): Promise<void> {
    this.workDir = context.workDir;
    this.bundleDir = path.join(context.workDir, 'bundle');
    this.stateRoot = path.join(context.workDir, 'state');
    fs.mkdirSync(this.stateRoot, { recursive: true });
    layOutBundle(this.bundleDir, context.workloadPath);
  }

  async run(invocation: WorkloadInvocation, options: RunOptions): Promise<WorkloadResult[]> {
    if (!this.bundleDir || !this.stateRoot) throw new BulkheadError('BENCH_FAILED', `${this.name} runner used before prepare()`);
    writeBundleConfig(this.bundleDir, invocation.args);
    const id = `bulkhead-bench-${process.pid}-${++containerCounter}`;
    this.live.add(id);
    try {
      const [cmd, args] = this.command(['--root', this.stateRoot, ...this.globalArgs(), 'run', '--bundle', this.bundleDir, id]);
      const r = await runCommand(cmd, args, options);
      if (r.code !== 0) throw new BulkheadError('BENCH_FAILED', `${this.name} run exited with ${r.code ?? r.signal}: ${r.stderr.trim().slice(-1000)}`);
      return parseWorkloadOutput(r.stdout, invocation.tests);
    } finally {
      await this.remove(id);
    }
  }

  /** Kills and deletes a container; a no-op if the runtime already removed it. */
  private async remove(id: string): Promise<void> {
    if (!this.stateRoot) return;
    const state = path.join(this.stateRoot, id);
    // runc/crun keep <root>/<id>/ while a container exists; runsc keeps files named after the id.
    const exists = fs.existsSync(this.stateRoot) && fs.readdirSync(this.stateRoot).some((f) => f.includes(id));
    if (exists || fs.existsSync(state)) {
      const [killCmd, killArgs] = this.command(['--root', this.stateRoot, ...this.globalArgs(), 'kill', id, 'KILL']);
      await runCommand(killCmd, killArgs, { timeoutMs: 10_000 }).catch(() => undefined);
      const [delCmd, delArgs] = this.command(['--root', this.stateRoot, ...this.globalArgs(), 'delete', this.forceDeleteFlag(), id]);
      await runCommand(delCmd, delArgs, { timeoutMs: 20_000 }).catch(() => undefined);
    }
    this.live.delete(id);
  }

  protected forceDeleteFlag(): string {
    return '--force';
  }

  async cleanup(): Promise<void> {
    for (const id of [...this.live]) await this.remove(id);
    // Anything of ours still alive (a runsc sandbox or gofer, a runtime killed mid-start) names our dir.
    if (this.workDir) await killProcessesMentioning(this.workDir);
    this.workDir = undefined;
    this.bundleDir = undefined;
    this.stateRoot = undefined;
  }
}
