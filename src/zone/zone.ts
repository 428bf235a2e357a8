/**
 * Zone: an OCI image booted in its own VM with its own kernel, driven like a child process.
 *
 *   await using zone = await Zone.create({ image: 'busybox', memoryMiB: 128 });
 *   const { stdout } = await zone.exec(['echo', 'hello']);
 *
 * This class holds what every backend shares — the state machine and its events, the buffered
 * exec() over spawn(), wait() and disposal. The backends (./local: a VM in this process; ./remote:
 * a zone served by `bulkhead serve`, also how zones run inside the emulated host) fill in the rest.
 */
import { EventEmitter, on } from 'node:events';
import { Readable } from 'node:stream';
import { InvalidStateError } from '../errors';
import { OutputLimitError } from '../host/emulated/errors';
import { ZoneClosedError } from './errors';
import type { ZoneSpec } from './spec';
import type {
  BufferedExecOptions,
  ExecResult,
  ImageRunConfig,
  LogEntry,
  LogOptions,
  SpawnOptions,
  ZoneBackendKind,
  ZoneEvent,
  ZoneExit,
  ZoneFiles,
  ZoneInfo,
  ZoneMetrics,
  ZoneProcess,
  ZoneStartup,
  ZoneState,
} from './types';

const DEFAULT_MAX_BUFFER = 64 * 1024 * 1024;

/** The transitions a zone may make; anything else is a bug and throws. */
const NEXT: Record<ZoneState, readonly ZoneState[]> = {
  creating: ['booting', 'failed', 'exited'],
  booting: ['running', 'stopping', 'failed', 'exited'],
  running: ['stopping', 'exited', 'failed'],
  stopping: ['exited', 'failed'],
  exited: ['destroyed'],
  failed: ['destroyed'],
  destroyed: [],
};

export interface CreateOptions {
  /** Which backend runs the zone (default 'auto': in-process on hardware KVM, else the emulated host). */
  backend?: 'auto' | 'kvm' | 'emulated-host';
  /** Progress of long steps (image import, kernel build, emulated-host boot), one line each. */
  onProgress?: (line: string) => void;
}

export abstract class Zone extends EventEmitter implements AsyncDisposable {
  abstract readonly id: string;
  abstract readonly name: string;
  abstract readonly backend: ZoneBackendKind;
  abstract readonly image: string;
  abstract readonly labels: Readonly<Record<string, string>>;
  abstract readonly createdAt: string;
  abstract readonly memoryMiB: number;
  abstract readonly vcpus: number;
  abstract readonly files: ZoneFiles;

  /** Where this zone's start went, phase by phase, once it runs; undefined where the backend cannot tell. */
  get startup(): ZoneStartup | undefined {
    return undefined;
  }

  private current: ZoneState = 'creating';
  private ended: ZoneExit | undefined;
  private readonly history: ZoneEvent[] = [];
  private readonly endPromise: Promise<ZoneExit>;
  private resolveEnd!: (exit: ZoneExit) => void;

  protected constructor() {
    super();
    this.setMaxListeners(0);
    this.endPromise = new Promise((resolve) => (this.resolveEnd = resolve));
  }

  /** Boots a zone and resolves once it runs (its agent answered and its main process, if any, started). */
  static async create(spec: ZoneSpec, opts: CreateOptions = {}): Promise<Zone> {
    const { createZone } = await import('./backend');
    return createZone(spec, opts);
  }

  /** The zones of every process on this host (from their state directories). */
  static async list(): Promise<ZoneInfo[]> {
    const { listZones } = await import('./backend');
    return listZones();
  }

  /** A zone another process (or this one) owns, by id, id prefix or name, reached through its API socket. */
  static async attach(ref: string): Promise<Zone> {
    const { attachZone } = await import('./backend');
    return attachZone(ref);
  }

  get state(): ZoneState {
    return this.current;
  }

  /** How the zone ended, once it has (states exited, failed, destroyed). */
  get exit(): ZoneExit | undefined {
    return this.ended;
  }

  /** The image's Entrypoint, Cmd, WorkingDir and User, once known. */
  get imageConfig(): ImageRunConfig | undefined {
    return undefined;
  }

  info(): ZoneInfo {
    const imageConfig = this.imageConfig;
    return {
      id: this.id,
      name: this.name,
      state: this.current,
      backend: this.backend,
      image: this.image,
      labels: { ...this.labels },
      createdAt: this.createdAt,
      memoryMiB: this.memoryMiB,
      vcpus: this.vcpus,
      ...(this.ended ? { exit: this.ended } : {}),
      ...(imageConfig ? { imageConfig } : {}),
    };
  }

  /** Resolves when the zone has ended (exited or failed), with how. Never rejects. */
  wait(): Promise<ZoneExit> {
    return this.endPromise;
  }

  /** Starts a process in the zone, with Node streams. */
  abstract spawn(argv: readonly string[], opts?: SpawnOptions): ZoneProcess;

  /** Runs a command to its end and collects its output. A nonzero exit is not an error. */
  async exec(argv: readonly string[], opts: BufferedExecOptions = {}): Promise<ExecResult> {
    const { stdin, maxBuffer = DEFAULT_MAX_BUFFER, ...spawnOpts } = opts;
    const proc = this.spawn(argv, spawnOpts);
    let overflow: OutputLimitError | undefined;
    const collect = (stream: Readable, label: 'stdout' | 'stderr') => {
      const chunks: Buffer[] = [];
      let size = 0;
      stream.on('data', (chunk: Buffer) => {
        size += chunk.length;
        if (size > maxBuffer) {
          if (!overflow) {
            overflow = new OutputLimitError(label, maxBuffer, argv);
            proc.kill('SIGKILL');
          }
          return;
        }
        chunks.push(chunk);
      });
      return new Promise<Buffer>((resolve) => {
        stream.once('end', () => resolve(Buffer.concat(chunks)));
        stream.once('close', () => resolve(Buffer.concat(chunks)));
      });
    };
    const out = collect(proc.stdout, 'stdout');
    const err = collect(proc.stderr, 'stderr');
    proc.stdin.on('error', () => undefined); // a process that exits without reading its stdin
    proc.stdin.end(stdin === undefined ? undefined : typeof stdin === 'string' ? Buffer.from(stdin) : stdin);
    const [end, stdoutBytes, stderrBytes] = await Promise.all([proc.wait(), out, err]);
    if (overflow) throw overflow;
    return { ...end, stdoutBytes, stderrBytes, stdout: stdoutBytes.toString('utf8'), stderr: stderrBytes.toString('utf8') };
  }

  /** One timeline of console output, agent and VMM events; `follow` keeps it open. */
  abstract logs(opts?: LogOptions): AsyncIterable<LogEntry>;

  /** Host-side figures (VMM) and guest-side figures (from the agent). */
  abstract metrics(): Promise<ZoneMetrics>;

  /**
   * Stops the zone: asks the agent to end its processes and power off, then forces the VM off
   * after `graceMs` (default 5000). Resolves when it has exited.
   */
  abstract stop(opts?: { graceMs?: number }): Promise<ZoneExit>;

  /** Stops the zone if needed and releases everything: VM, threads, sockets, state directory. */
  abstract destroy(): Promise<void>;

  async [Symbol.asyncDispose](): Promise<void> {
    await this.destroy();
  }

  /** Every event so far, then new ones as they come, until the zone is destroyed. */
  async *events(opts: { signal?: AbortSignal } = {}): AsyncGenerator<ZoneEvent> {
    const live = this.current === 'destroyed' ? undefined : on(this, 'event', { signal: opts.signal });
    const replay = [...this.history];
    for (const e of replay) yield e;
    if (!live) return;
    try {
      for await (const [event] of live as AsyncIterable<[ZoneEvent]>) {
        if (replay.includes(event)) continue;
        yield event;
        if (event.type === 'state' && event.state === 'destroyed') return;
      }
    } catch (err) {
      if ((err as Error).name !== 'AbortError') throw err;
    }
  }

  /** For backends: moves to `next`, emitting 'state' and 'event'; ends wait() on exited/failed. */
  protected transition(next: ZoneState, reason?: string, exit?: ZoneExit): void {
    const previous = this.current;
    if (previous === next) return;
    if (!NEXT[previous].includes(next)) throw new InvalidStateError(`move to ${next}`, previous, [...NEXT[previous]]);
    this.current = next;
    if ((next === 'exited' || next === 'failed') && !this.ended) {
      this.ended = exit ?? { reason: next === 'failed' ? 'failed' : 'stopped', failure: next === 'failed' ? reason : undefined };
      this.resolveEnd(this.ended);
    }
    this.record({ type: 'state', time: Date.now(), state: next, previous, ...(reason ? { reason } : {}) });
    this.emit('state', next, previous);
  }

  /** For backends: records and emits any event. */
  protected record(event: ZoneEvent): void {
    this.history.push(event);
    this.emit('event', event);
  }

  /** The error pending calls get once the zone has ended. */
  protected closedError(operation: string): ZoneClosedError {
    return new ZoneClosedError(this.name, operation, this.current, this.ended);
  }
}
