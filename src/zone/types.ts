/**
 * The shapes of the Zone API: states, exec and files, logs, metrics and events. Every way of
 * reaching a zone — in this process, through the emulated host, through `bulkhead serve` — offers
 * exactly these, so code written against one runs against all.
 */
import type { Readable, Writable } from 'node:stream';
import type { FileStat, FileType } from './agent/protocol';

/** creating → booting → running → stopping → exited → destroyed, or failed (with a reason) from any of the first four. */
export type ZoneState = 'creating' | 'booting' | 'running' | 'stopping' | 'exited' | 'failed' | 'destroyed';

export const ZONE_STATES: readonly ZoneState[] = ['creating', 'booting', 'running', 'stopping', 'exited', 'failed', 'destroyed'];

/** Where a zone's VM runs. */
export type ZoneBackendKind = 'kvm' | 'emulated-host' | 'remote';

/** How a zone ended. */
export interface ZoneExit {
  /**
   * main-exited: its main process ended and it powered off; stopped: stop() or destroy();
   * timeout: spec.timeoutMs; aborted: spec.signal; powered-off / rebooted: the guest did it itself;
   * failed: see `failure`.
   */
  reason: 'main-exited' | 'stopped' | 'timeout' | 'aborted' | 'powered-off' | 'rebooted' | 'failed';
  /** The main process's end, when there was one and it ended. */
  main?: { exitCode: number | null; signal: string | null };
  /** For reason 'failed': what went wrong, e.g. 'guest kernel panic', 'the agent died'. */
  failure?: string;
  /** The last console lines, for failures. */
  consoleTail?: string;
}

export interface ZoneInfo {
  id: string;
  name: string;
  state: ZoneState;
  backend: ZoneBackendKind;
  image: string;
  labels: Record<string, string>;
  createdAt: string;
  memoryMiB: number;
  vcpus: number;
  exit?: ZoneExit;
  /** What the image's config says to run and as whom (for tools that compose commands as Docker does). */
  imageConfig?: ImageRunConfig;
}

export interface ImageRunConfig {
  entrypoint: string[];
  cmd: string[];
  workingDir: string;
  user: string;
}

export interface ExecOptions {
  /** Added to (and overriding) the zone's environment. */
  env?: Record<string, string>;
  cwd?: string;
  /** `uid`, `uid:gid`, `name` or `name:group` inside the zone (default: the zone's user). */
  user?: string;
  /** Kill the process after this long; the result then has timedOut true. No default: streams may run for hours. */
  timeoutMs?: number;
  /** Kill the process; the call rejects with an AbortedError. */
  signal?: AbortSignal;
}

export interface BufferedExecOptions extends ExecOptions {
  /** Bytes for stdin (default: empty, closed at once). */
  stdin?: string | Buffer;
  /** Most bytes kept of stdout and of stderr (default 64 MiB); past it: an OutputLimitError and the process killed. */
  maxBuffer?: number;
}

export interface SpawnOptions extends ExecOptions {
  /** A pseudo-terminal of this size: stdout carries everything, stderr stays empty, resize() works. */
  tty?: { cols: number; rows: number };
}

export interface ExecResult {
  exitCode: number | null;
  signal: string | null;
  /** UTF-8 decoded; stdoutBytes holds the bytes as they came. */
  stdout: string;
  stderr: string;
  stdoutBytes: Buffer;
  stderrBytes: Buffer;
  timedOut: boolean;
  durationMs: number;
}

export interface ProcessEnd {
  exitCode: number | null;
  signal: string | null;
  timedOut: boolean;
  durationMs: number;
}

/** A process in a zone, shaped like a ChildProcess. */
export interface ZoneProcess {
  readonly stdin: Writable;
  readonly stdout: Readable;
  readonly stderr: Readable;
  /** Its pid inside the zone, once started. */
  readonly pid: Promise<number>;
  kill(signal?: NodeJS.Signals | number): void;
  /** Only for tty processes. */
  resize(cols: number, rows: number): void;
  /** Resolves when it has ended; rejects (typed) when the zone dies first. */
  wait(): Promise<ProcessEnd>;
}

/** As the agent reports them (src/zone/agent): type, mode with setuid/setgid/sticky, owner, size, mtime. */
export type { FileStat, FileType } from './agent/protocol';

export interface DirEntry {
  name: string;
  type: FileType;
}

export interface ZoneFiles {
  read(path: string): Promise<Buffer>;
  readStream(path: string): Readable;
  write(path: string, data: string | Buffer | Readable, opts?: { mode?: number }): Promise<void>;
  stat(path: string): Promise<FileStat>;
  exists(path: string): Promise<boolean>;
  list(path: string): Promise<DirEntry[]>;
  mkdir(path: string, opts?: { recursive?: boolean; mode?: number }): Promise<void>;
  remove(path: string, opts?: { recursive?: boolean }): Promise<void>;
  rename(from: string, to: string): Promise<void>;
}

export interface LogEntry {
  /** Milliseconds since the epoch. */
  time: number;
  /** console: the guest's hvc0 and early serial output; agent: what the in-zone agent reports; vmm: the VMM and devices; zone: lifecycle. */
  source: 'console' | 'agent' | 'vmm' | 'zone';
  text: string;
}

export interface LogOptions {
  /** Keep the iterator open and yield new entries as they come, until the zone is destroyed or `signal` aborts. */
  follow?: boolean;
  /** Only entries from this time (ms since the epoch) on. */
  since?: number;
  signal?: AbortSignal;
}

export interface ProcessMetrics {
  pid: number;
  command: string;
  user: string;
  rssBytes: number;
  cpuPercent: number;
  state: string;
}

/**
 * Where a zone's start went, in ms, phase by phase (each from the end of the one before). A backend
 * that cannot see a phase leaves it out; the kernel's boot and the agent's start are split at the
 * boot markers the agent writes to the power device (2: it runs, 1: it listens on vsock).
 */
export interface ZoneStartup {
  /** Zone.create() until the zone was running. */
  totalMs: number;
  /** Resolving the image to its erofs (a lookup once it is cached). */
  imageMs: number;
  /** Finding the zone kernel (a lookup once it is built). */
  kernelMs: number;
  /** Creating the VM and its devices, loading the kernel and initramfs, starting the vCPUs. */
  vmmSetupMs: number;
  /** From the vCPUs' start until the agent ran as PID 1 (boot marker 2). */
  kernelBootMs?: number;
  /** From then until the agent listened on vsock (boot marker 1). */
  agentStartMs?: number;
  /** Until the host's session with the agent was up (from marker 1; without markers, from the VMM's start). */
  agentConnectMs: number;
  /** Launching the image's main process, when the zone has one. */
  mainLaunchMs: number;
}

export interface ZoneMetrics {
  time: number;
  host: {
    /** The VMM's resident memory attributable to this zone, when it has a process of its own. */
    rssBytes?: number;
    /**
     * Guest RAM the host holds for this zone (pages allocated to its memory file, whoever touched them).
     * For an in-process zone this is the part of the owning process's RSS that is the zone's guest; the
     * VMM's own per-zone memory (threads, queues) is in that process too and not told apart.
     */
    guestResidentBytes?: number;
    vcpuTimeMs?: number;
    exits?: number;
  };
  guest?: {
    memory: { totalBytes: number; availableBytes: number; usedBytes: number; pressure?: { some10: number; full10: number } };
    cpu: { count: number; busyPercent: number; loadAverage: [number, number, number] };
    uptimeMs: number;
    processes: ProcessMetrics[];
  };
}

export type ZoneEvent =
  | { type: 'state'; time: number; state: ZoneState; previous: ZoneState; reason?: string }
  | { type: 'main-exit'; time: number; exitCode: number | null; signal: string | null }
  | { type: 'device'; time: number; device: string; message: string };
