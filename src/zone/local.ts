/**
 * LocalZone: a zone whose VM runs in this process, on /dev/kvm with hardware semantics.
 *
 * Its way, top to bottom: the spec is validated → the image becomes an erofs disk (src/image) →
 * the zone kernel is found or built (src/kernel) → the machine is built with a read-only root
 * disk, vsock, console and rng (./machine over src/kvm) → the agent, PID 1 of a small initramfs,
 * mounts the image under a tmpfs overlay and listens on vsock port 1024 → we connect, launch the
 * main process if there is one, and serve exec/files/metrics over that session.
 *
 * Whatever ends the zone — the main process, stop(), a deadline, an abort, a panic, a dead or hung agent —
 * goes through end(), which settles every pending call with a typed error and stops the VM;
 * destroy() then releases the VM, the sockets and the state directory.
 */
import { randomBytes } from 'node:crypto';
import * as os from 'node:os';
import * as path from 'node:path';
import { AbortedError, BulkheadError } from '../errors';
import { resolveImage, type ImageArtifact } from '../image';
import { buildKernel } from '../kernel';
import { AgentClient, livenessSettings, watchAgentLiveness, type LivenessSettings } from './agent';
import { ZoneStartError } from './errors';
import { planLaunch, type LaunchPlan } from './launch';
import { ZoneLog } from './log';
import { startZoneMachine, zoneCommandLine, type ZoneMachine, type ZoneMachineEnd } from './machine';
import { wrapAgentProcess } from './process';
import { validateZoneSpec, type ValidatedZoneSpec, type ZoneSpec } from './spec';
import { createStateDir, LOG_FILE, removeStateDir, writeRecord, API_SOCKET } from './state-dir';
import type { ImageRunConfig, LogEntry, LogOptions, SpawnOptions, ZoneExit, ZoneFiles, ZoneMetrics, ZoneProcess, ZoneStartup, ZoneState } from './types';
import { startupPhases } from './startup';
import { connectVsock } from './vsock';
import { Zone, type CreateOptions } from './zone';
import { zoneInitramfs } from './initramfs';
import { agentFiles } from './files';
import { FIRST_SAMPLE_GAP_MS, guestFigures } from './metrics';
import type { GuestMetrics } from './agent/protocol';

/** Where the agent listens in every zone. */
export const AGENT_VSOCK_PORT = 1024;
/** From machine start to the agent's answer. Generous: under nested TCG a boot takes 3-10 s. */
const BOOT_TIMEOUT_MS = 120_000;
const DEFAULT_STOP_GRACE_MS = 5000;

export interface LocalCreateOptions extends CreateOptions {
  /**
   * Expose the main process's stdin/stdout/stderr on `zone.main` (with backpressure) instead of
   * sending its output to the zone console and log. For `bulkhead run` in the foreground.
   */
  attachMain?: { stdin?: boolean; tty?: { cols: number; rows: number } };
  /**
   * When the agent counts as gone: pinged after this much silence, declared gone (the zone
   * 'failed', every call rejected) after that much. Default 10 s / 60 s; false: never.
   */
  agentLiveness?: Partial<LivenessSettings> | false;
}

export class LocalZone extends Zone {
  readonly id: string;
  readonly name: string;
  readonly backend = 'kvm' as const;
  readonly image: string;
  readonly labels: Readonly<Record<string, string>>;
  readonly createdAt: string;
  readonly memoryMiB: number;
  readonly vcpus: number;
  readonly files: ZoneFiles;
  /** The main process, when the zone was created with attachMain. */
  main: ZoneProcess | undefined;

  private readonly log: ZoneLog;
  private readonly stateDir: string;
  private machine: ZoneMachine | undefined;
  private agent: AgentClient | undefined;
  private plan: LaunchPlan | undefined;
  private artifact: ImageArtifact | undefined;
  private stopReason: ZoneExit['reason'] | undefined;
  private mainEnd: ZoneExit['main'] | undefined;
  private deadline: NodeJS.Timeout | undefined;
  private removeAbort: (() => void) | undefined;
  private destroyed: Promise<void> | undefined;
  private lastSample: GuestMetrics | undefined;
  private startupTimes: ZoneStartup | undefined;
  private stopLiveness: (() => void) | undefined;

  private constructor(private readonly spec: ValidatedZoneSpec) {
    super();
    this.id = randomBytes(6).toString('hex');
    this.name = spec.name ?? `zone-${this.id.slice(0, 6)}`;
    this.image = spec.image;
    this.labels = Object.freeze({ ...spec.labels });
    this.createdAt = new Date().toISOString();
    this.memoryMiB = spec.memoryMiB;
    this.vcpus = spec.vcpus;
    this.stateDir = createStateDir(this.id, this.name);
    this.log = new ZoneLog(path.join(this.stateDir, LOG_FILE));
    this.files = agentFiles(() => this.requireAgent('use the zone\'s files'), () => this.goneError('use the zone\'s files'));
    this.on('state', (state: ZoneState) => this.saveRecord(state));
    this.saveRecord('creating');
  }

  static override async create(spec: ZoneSpec, opts: LocalCreateOptions = {}): Promise<LocalZone> {
    const validated = validateZoneSpec(spec, { hostMemoryMiB: Math.floor(os.totalmem() / 1024 / 1024), hostCpus: os.availableParallelism() });
    // Checked before anything starts; a bad setting is the caller's error, not a failed zone.
    const liveness = opts.agentLiveness === false ? false : livenessSettings(opts.agentLiveness);
    const zone = new LocalZone(validated);
    try {
      await zone.start(spec.signal, opts, liveness);
      return zone;
    } catch (err) {
      await zone.destroy();
      throw err;
    }
  }

  override get imageConfig(): ImageRunConfig | undefined {
    const c = this.artifact?.config;
    return c ? { entrypoint: [...c.entrypoint], cmd: [...c.cmd], workingDir: c.workingDir, user: c.user } : undefined;
  }

  /** Where this zone's start went, once it runs. */
  override get startup(): ZoneStartup | undefined {
    return this.startupTimes;
  }

  /** The state directory's vsock socket (the VMM listens there; guest ports P connect to <uds>_P). */
  get vsockSocket(): string {
    return path.join(this.stateDir, 'vsock.sock');
  }

  private async start(signal: AbortSignal | undefined, opts: LocalCreateOptions, liveness: LivenessSettings | false): Promise<void> {
    const progress = (line: string) => {
      this.log.add('zone', line);
      opts.onProgress?.(line);
    };
    if (signal) {
      if (signal.aborted) throw new AbortedError('creating a zone');
      // Aborting stops and destroys the zone (a pending create() rejects and destroys it itself).
      const onAbort = () => void this.end('aborted', 0).then(() => this.destroy());
      signal.addEventListener('abort', onAbort, { once: true });
      this.removeAbort = () => signal.removeEventListener('abort', onAbort);
    }
    if (this.spec.timeoutMs !== undefined) this.deadline = setTimeout(() => void this.end('timeout'), this.spec.timeoutMs);
    const aborted = () => this.state !== 'creating' && this.state !== 'booting';
    const begin = performance.now();
    const markers = new Map<number, number>();

    try {
      this.artifact = await resolveImage(this.spec.imageDigest ?? this.spec.image, { signal, onProgress: (e) => progress(`image: ${e.message}`) });
    } catch (err) {
      throw rethrow(err, 'image', `image ${this.spec.image}`);
    }
    const imageResolved = performance.now();
    this.plan = planLaunch(this.spec, this.artifact.config, this.name);
    let kernel: string;
    try {
      kernel = this.spec.kernel ?? (await buildKernel({ config: 'zone', signal, progress: { onLine: progress } })).vmlinux;
    } catch (err) {
      throw rethrow(err, 'kernel', 'the zone kernel');
    }
    if (aborted()) throw this.goneError('create the zone');
    const kernelFound = performance.now();

    this.transition('booting');
    const vmmBegin = performance.now();
    try {
      this.machine = await startZoneMachine({
        kernel,
        initrd: zoneInitramfs(),
        cmdline: zoneCommandLine(this.plan.hostname),
        memoryMiB: this.memoryMiB,
        vcpus: this.vcpus,
        rootDisk: this.artifact.erofsPath,
        vsockSocket: this.vsockSocket,
        onConsole: (bytes) => this.log.console(bytes),
        onVmmEvent: (text) => this.log.add('vmm', text),
        onBootMarker: (marker, sinceCreateMs) => void (markers.has(marker) || markers.set(marker, sinceCreateMs)),
      });
    } catch (err) {
      throw rethrow(err, 'machine', 'the zone\'s VM');
    }
    void this.machine.ended.then((end) => this.onMachineEnd(end));
    const vmmStarted = performance.now();

    const socket = await Promise.race([
      connectVsock(this.vsockSocket, AGENT_VSOCK_PORT, { until: Date.now() + BOOT_TIMEOUT_MS, signal }),
      this.machine.ended.then((end) => {
        throw new ZoneStartError('boot', `the zone's VM ended during boot: ${end.kind}: ${end.detail}`, end.consoleTail ?? this.log.consoleTail());
      }),
    ]).catch((err: unknown) => {
      // The VM ending on its own (a crash, a panic) is a start failure with the console's last
      // lines; only a stop asked for (destroy, abort, timeout) is "the zone is gone".
      if (err instanceof ZoneStartError && this.stopReason === undefined) throw err;
      if (aborted()) throw this.goneError('create the zone');
      throw err instanceof ZoneStartError ? err : new ZoneStartError('agent', `the zone's agent did not answer: ${(err as Error).message}`, this.log.consoleTail(), { cause: err });
    });
    try {
      this.agent = await AgentClient.connect(socket);
    } catch (err) {
      socket.destroy();
      throw new ZoneStartError('agent', `the zone's agent refused the session: ${(err as Error).message}`, this.log.consoleTail(), { cause: err });
    }
    void this.agent.closed.then((why) => this.onAgentLost(why));
    if (liveness) this.stopLiveness = watchAgentLiveness(this.agent, (ms) => this.onAgentSilent(ms), liveness);
    this.log.add('agent', `agent ${this.agent.info.agentVersion} (pid ${this.agent.info.agentPid}) answered`);
    const agentConnected = performance.now();

    if (this.plan.argv) await this.launchMain(this.plan, opts);
    if (aborted()) throw this.goneError('create the zone');
    this.startupTimes = startupPhases({ begin, imageResolved, kernelFound, vmmBegin, vmmStarted, agentConnected, running: performance.now(), markers });
    this.transition('running');
  }

  private async launchMain(plan: LaunchPlan, opts: LocalCreateOptions): Promise<void> {
    const agent = this.agent!;
    const events = await agent.events();
    void (async () => {
      try {
        for await (const ev of events) {
          this.mainEnd = { exitCode: ev.status.exitCode, signal: ev.status.signal };
          this.record({ type: 'main-exit', time: Date.now(), exitCode: ev.status.exitCode, signal: ev.status.signal });
          this.log.add('agent', `main process ${ev.pid} ended: ${ev.status.signal ?? `exit ${ev.status.exitCode}`}`);
        }
      } catch {
        // the session ended: onAgentLost handles it
      }
    })();
    const attach = opts.attachMain;
    const started = agent.launch(plan.argv!, {
      env: plan.env,
      cwd: plan.cwd,
      user: plan.user,
      hostname: plan.hostname,
      stayUp: plan.keepAlive,
      console: attach === undefined,
      stdin: attach?.stdin ?? false,
      tty: attach?.tty ? { rows: attach.tty.rows, cols: attach.tty.cols } : undefined,
    });
    if (attach) this.main = wrapAgentProcess(started, { zoneGone: () => this.goneError('run the main process') });
    try {
      await started;
    } catch (err) {
      throw new ZoneStartError('launch', `the main process ${JSON.stringify(plan.argv)} did not start: ${(err as Error).message}`, undefined, { cause: err });
    }
  }

  spawn(argv: readonly string[], opts: SpawnOptions = {}): ZoneProcess {
    const agent = this.agent;
    if (!agent || this.state !== 'running') throw this.goneError('start a process') ?? this.closedError('start a process');
    const plan = this.plan!;
    const start = agent.exec(argv, {
      env: { ...plan.env, ...opts.env },
      cwd: opts.cwd ?? plan.cwd,
      user: opts.user ?? plan.user,
      stdin: true,
      tty: opts.tty ? { rows: opts.tty.rows, cols: opts.tty.cols } : undefined,
    });
    return wrapAgentProcess(start, { timeoutMs: opts.timeoutMs, signal: opts.signal, zoneGone: () => this.goneError('run a process') });
  }

  logs(opts: LogOptions = {}): AsyncIterable<LogEntry> {
    return this.log.read(opts);
  }

  async metrics(): Promise<ZoneMetrics> {
    const host = this.machine?.stats() ?? {};
    const agent = this.agent;
    let guest: ZoneMetrics['guest'];
    if (agent && this.state === 'running') {
      try {
        let prev = this.lastSample;
        if (!prev) {
          prev = await agent.metrics();
          await new Promise((resolve) => setTimeout(resolve, FIRST_SAMPLE_GAP_MS));
        }
        const cur = await agent.metrics();
        this.lastSample = cur;
        guest = guestFigures(prev, cur);
      } catch (err) {
        throw this.goneError('read the zone\'s metrics') ?? err;
      }
    }
    return { time: Date.now(), host, ...(guest ? { guest } : {}) };
  }

  async stop(opts: { graceMs?: number } = {}): Promise<ZoneExit> {
    await this.end('stopped', opts.graceMs ?? DEFAULT_STOP_GRACE_MS);
    return this.wait();
  }

  destroy(): Promise<void> {
    this.destroyed ??= (async () => {
      this.stopLiveness?.();
      await this.end('stopped', 0);
      await this.machine?.destroy();
      this.agent?.close();
      await this.log.close();
      removeStateDir(this.id, this.name);
      if (this.state !== 'destroyed') this.transition('destroyed');
    })();
    return this.destroyed;
  }

  /**
   * Ends the zone for `reason`: asks the agent to power off (when it can and there is grace), and
   * stops the VM when that takes longer than `graceMs`. Idempotent; the first reason wins.
   */
  private async end(reason: ZoneExit['reason'], graceMs = DEFAULT_STOP_GRACE_MS): Promise<void> {
    this.stopReason ??= reason;
    clearTimeout(this.deadline);
    this.removeAbort?.();
    if (this.state === 'exited' || this.state === 'failed' || this.state === 'destroyed') return;
    if (this.state === 'running' || this.state === 'booting') this.transition('stopping', reason);
    if (!this.machine) {
      this.finish({ reason: this.stopReason });
      return;
    }
    if (graceMs > 0 && this.agent?.isOpen) {
      await this.agent.shutdown('power-off').catch(() => undefined);
      const timer = new Promise<'late'>((resolve) => setTimeout(() => resolve('late'), graceMs).unref());
      if ((await Promise.race([this.machine.ended.then(() => 'ended' as const), timer])) === 'ended') return;
    }
    await this.machine.stop();
    await this.machine.ended;
  }

  private onMachineEnd(end: ZoneMachineEnd): void {
    this.agent?.close();
    if (end.kind === 'panic' || end.kind === 'crash' || end.kind === 'device-failure' || end.kind === 'error') {
      if (this.stopReason === undefined || end.kind !== 'crash') {
        this.finish({ reason: 'failed', failure: `${end.kind === 'panic' ? 'guest kernel panic' : end.kind}: ${end.detail}`, consoleTail: end.consoleTail ?? this.log.consoleTail() });
        return;
      }
    }
    if (this.stopReason) this.finish({ reason: this.stopReason, ...(this.mainEnd ? { main: this.mainEnd } : {}) });
    else if (this.mainEnd) this.finish({ reason: 'main-exited', main: this.mainEnd });
    else this.finish({ reason: end.kind === 'reboot' ? 'rebooted' : 'powered-off' });
  }

  private onAgentLost(why: Error): void {
    if (this.state !== 'running' || this.stopReason !== undefined) return; // an end we asked for
    // The agent is PID 1: its session dying while the VM runs means the zone is broken.
    this.log.add('zone', `the agent's session ended: ${why.message}`);
    this.finish({ reason: 'failed', failure: `the agent died: ${why.message}`, consoleTail: this.log.consoleTail() });
    void this.machine?.stop();
  }

  private onAgentSilent(silentMs: number): void {
    if (this.state !== 'running' && this.state !== 'booting') return;
    const failure = `the agent stopped answering: nothing from it for ${Math.round(silentMs / 1000)} s, a ping unanswered (the guest is hung or PID 1 is stuck)`;
    this.log.add('zone', failure);
    this.finish({ reason: 'failed', failure, consoleTail: this.log.consoleTail() });
    void this.machine?.stop();
  }

  private finish(exit: ZoneExit): void {
    this.stopLiveness?.();
    if (this.state === 'exited' || this.state === 'failed' || this.state === 'destroyed') return;
    clearTimeout(this.deadline);
    this.removeAbort?.();
    this.log.add('zone', `ended: ${exit.reason}${exit.failure ? `: ${exit.failure}` : ''}`);
    this.transition(exit.reason === 'failed' ? 'failed' : 'exited', exit.failure ?? exit.reason, exit);
    this.agent?.close();
  }

  private requireAgent(operation: string): AgentClient {
    const gone = this.goneError(operation);
    if (gone || !this.agent) throw gone ?? this.closedError(operation);
    return this.agent;
  }

  /** The error for a call when the zone can no longer serve it, or undefined while it can. */
  private goneError(operation: string): Error | undefined {
    return this.state === 'running' || this.state === 'booting' || this.state === 'creating' ? undefined : this.closedError(operation);
  }

  private saveRecord(state: ZoneState): void {
    if (state === 'destroyed') return;
    writeRecord({
      id: this.id,
      name: this.name,
      ownerPid: process.pid,
      backend: 'kvm',
      image: this.image,
      createdAt: this.createdAt,
      labels: { ...this.labels },
      memoryMiB: this.memoryMiB,
      vcpus: this.vcpus,
      state,
      apiSocket: path.join(this.stateDir, API_SOCKET),
    });
  }
}

function rethrow(err: unknown, stage: ZoneStartError['stage'], what: string): Error {
  if (err instanceof AbortedError || (err instanceof BulkheadError && err.code === 'INVALID_CONFIG')) return err;
  if (err instanceof BulkheadError && /^IMAGE_/.test(err.code)) return err; // typed image errors say what was looked for
  return new ZoneStartError(stage, `${what}: ${(err as Error).message}`, undefined, { cause: err });
}
