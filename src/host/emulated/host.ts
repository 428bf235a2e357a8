/**
 * EmulatedHost: a whole virtualization host in a QEMU TCG VM, for tests that need /dev/kvm with
 * hardware semantics on a machine whose own /dev/kvm can't provide them.
 *
 *   await using host = await EmulatedHost.start();
 *   const { exitCode, stdout } = await host.run(['cat', '/proc/cpuinfo']);
 *
 * Inside: our host kernel (KVM + kvm_amd built in; `-cpu max` emulates SVM), the real host's root
 * read-only over virtio-9p under a tmpfs overlay (node, the project and ~/.cache/bulkhead sit at
 * the same paths; writes stay inside and vanish at stop()), and an agent under the host's node
 * that runs commands sent over a virtio-serial port.
 */
import type { ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import type { Duplex } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';
import { AbortedError, InvalidConfigError, InvalidStateError } from '../../errors';
import { buildKernel, findKernel } from '../../kernel';
import { isAlive } from '../../util/process';
import { packagePath } from '../../util/package-root';
import { ControlChannel, type HostProcess, type RunOptions, type RunResult, type SpawnOptions } from './channel';
import { EmulatedHostError } from './errors';
import type { InitSettings } from './init-script';
import { buildInitramfs } from './initramfs';
import { encodeMessage, type AgentToHost } from './protocol';
import { findQemu, launchQemu } from './qemu';

export type { HostProcess, ProcessEnd, RunOptions, RunResult, SpawnOptions } from './channel';

export interface EmulatedHostOptions {
  /** Host kernel (vmlinux with a PVH note, or a bzImage). Default: the cached `host` kernel. */
  kernel?: string;
  /** Build the `host` kernel if it is not cached yet (minutes, progress on stderr). Default false. */
  buildKernel?: boolean;
  /** Guest RAM in MiB (default 4096). */
  memoryMiB?: number;
  /** vCPUs (default 2). */
  cpus?: number;
  /** QEMU CPU model (default `max`: TCG emulates AMD SVM with it). */
  cpuModel?: string;
  /** qemu-system-x86_64 to use (default: from PATH). */
  qemu?: string;
  /** Real-host directory shared as the root (default `/`). */
  share?: string;
  /** 9p cache mode (default `loose`: fast, but host changes after boot may be seen late). */
  cache9p?: 'loose' | 'mmap' | 'none';
  /**
   * Real-host directories mounted read-write at the same path inside (uncached 9p), for results a
   * test wants to keep: everything else written inside is lost at stop().
   */
  writableDirs?: readonly string[];
  /** Boot deadline, from QEMU start to the agent's first message (default 60 000 ms). */
  bootTimeoutMs?: number;
  /**
   * TSC frequency (kHz) the emulated host's kernel is told at boot (default: the real host's, from
   * /proc/cpuinfo, when its TSC is constant; false to let the kernel calibrate). TCG's TSC is the
   * real one, but calibrating it under emulation is off by ~0.1% and then corrected ~1 s later,
   * after the built-in KVM recorded the first value; that mismatch (> 250 ppm, no TSC scaling)
   * left nested guests hanging with lost timer interrupts ("user requested TSC rate below hardware
   * speed" in the emulated host's dmesg).
   */
  tscKhz?: number | false;
  /** Extra kernel command-line arguments. */
  append?: string;
  /** Extra QEMU arguments. */
  qemuArgs?: readonly string[];
  /** Every chunk of the serial console (kernel log, init messages). */
  onConsole?: (text: string) => void;
  /** Stops the boot (QEMU is killed, its run directory removed); start() then rejects with an AbortedError. */
  signal?: AbortSignal;
  /**
   * Another machine to boot instead of the host kernel with our initramfs, as long as it ends in
   * the same agent on the same control port (the Xen test host, src/host/xen). Called with the run
   * directory (for its files) and the settings our init would have used.
   */
  machine?: (runDir: string, settings: InitSettings) => MachineImage;
}

/** What QEMU boots: `-kernel`, `-initrd` (a file, or a multiboot module list) and `-append`. */
export interface MachineImage {
  kernel: string;
  initrd: string;
  append: string;
}

/** What every way of reaching an emulated host offers: the owner (EmulatedHost) and a shared one's client. */
export interface HostSession extends AsyncDisposable {
  /** `uname -r` inside. */
  readonly kernelRelease: string;
  readonly running: boolean;
  /** Runs `argv` inside to its end, output collected (bounded by maxBuffer). A nonzero exit is not an error. */
  run(argv: readonly string[], opts?: RunOptions): Promise<RunResult>;
  /** Starts `argv` inside with Node streams (backpressure both ways). */
  spawn(argv: readonly string[], opts?: SpawnOptions): HostProcess;
  /** A connection to a Unix socket inside (e.g. a `bulkhead serve` running there). */
  connect(socketPath: string): Duplex;
  /** connect() as a HostProcess, for relays. */
  openSocket(socketPath: string): HostProcess;
  /** The real host's node (same binary, same path) with `args`. */
  runNode(args: readonly string[], opts?: RunOptions): Promise<RunResult>;
  /** This package's `bulkhead` CLI inside (dist/cjs/cli/main.js; run `npm run build:ts` first). */
  bulkhead(args: readonly string[], opts?: RunOptions): Promise<RunResult>;
  /** The owner stops the host; a client only disconnects. */
  stop(): Promise<void>;
}

type State = 'running' | 'stopping' | 'stopped';

const CONSOLE_KEEP = 64 * 1024;
const MOUNT_TAG = 'host';
const RUN_DIR_PREFIX = 'bulkhead-host-';

export class EmulatedHost implements HostSession {
  /** Milliseconds from QEMU start to the agent's first message. */
  readonly bootMs: number;
  /** `uname -r` inside. */
  readonly kernelRelease: string;
  /** True when QEMU will be killed by the kernel if this process dies (even by SIGKILL). */
  readonly diesWithParent: boolean;

  /** The run directory: the control socket, QEMU's pid file, the initramfs. Removed at stop. */
  readonly runDir: string;

  private state: State = 'running';
  private readonly channel: ControlChannel;
  private readonly exitPromise: Promise<void>;
  private readonly removeExitHook: () => void;

  private constructor(
    private readonly qemu: ChildProcess,
    socket: net.Socket,
    runDir: string,
    private readonly consoleLog: { text: string },
    boot: { bootMs: number; release: string; diesWithParent: boolean; rest: Buffer },
    exitPromise: Promise<void>,
    removeExitHook: () => void,
  ) {
    this.runDir = runDir;
    this.bootMs = boot.bootMs;
    this.kernelRelease = boot.release;
    this.diesWithParent = boot.diesWithParent;
    this.exitPromise = exitPromise;
    this.removeExitHook = removeExitHook;
    this.channel = new ControlChannel(
      socket,
      {
        onLog: (message) => this.keepConsole(`[agent] ${message}\n`),
        describeLoss: () =>
          this.state === 'running'
            ? new EmulatedHostError('exited', this.unexpectedExitMessage())
            : new EmulatedHostError('exited', 'the emulated host was stopped'),
        // A lost channel makes the host useless: end it now rather than when QEMU's exit is noticed.
        onLost: () => {
          if (this.state === 'running') this.finish();
        },
      },
      boot.rest,
    );
    void exitPromise.then(() => {
      if (this.state === 'running') {
        this.channel.fail(new EmulatedHostError('exited', this.unexpectedExitMessage()));
      }
      this.finish();
    });
  }

  /** Boots the emulated host and waits until its agent answers. */
  static async start(opts: EmulatedHostOptions = {}): Promise<EmulatedHost> {
    const memoryMiB = opts.memoryMiB ?? 4096;
    const cpus = opts.cpus ?? 2;
    if (!Number.isInteger(memoryMiB) || memoryMiB < 256) throw new InvalidConfigError('memoryMiB', memoryMiB, 'an integer >= 256');
    if (!Number.isInteger(cpus) || cpus < 1 || cpus > 16) throw new InvalidConfigError('cpus', cpus, 'an integer 1..16');
    const qemuBin = findQemu(opts.qemu);
    if (!qemuBin) {
      throw new EmulatedHostError('qemu-missing', `${opts.qemu ?? 'qemu-system-x86_64'} not found (apt-get install qemu-system-x86)`);
    }
    const kernel = opts.machine
      ? 'machine'
      : opts.kernel ??
      (opts.buildKernel
        ? (await buildKernel({ config: 'host', signal: opts.signal })).vmlinux
        : (await findKernel({ config: 'host' }))?.vmlinux);
    if (!kernel) {
      throw new EmulatedHostError(
        'kernel-missing',
        'no emulated-host kernel built yet; run: bulkhead kernel build --config host (or pass buildKernel: true)',
      );
    }
    if (!opts.machine && !existsSync(kernel)) throw new EmulatedHostError('kernel-missing', `the host kernel ${kernel} does not exist`);
    if (opts.signal?.aborted) throw new AbortedError('starting the emulated host');

    const writableDirs = (opts.writableDirs ?? []).map((d) => path.resolve(d));
    for (const dir of writableDirs) {
      if (!existsSync(dir) || /[\s,'"\\]/.test(dir)) {
        throw new InvalidConfigError('writableDirs', dir, 'existing directories whose paths have no spaces, commas or quotes');
      }
    }
    sweepStaleRunDirs();
    const runDir = mkdtempSync(path.join(os.tmpdir(), RUN_DIR_PREFIX));
    const initrd = path.join(runDir, 'initramfs.cpio');
    const controlSocket = path.join(runDir, 'ctl.sock');
    const settings: InitSettings = {
      nodePath: process.execPath,
      home: os.homedir(),
      mountTag: MOUNT_TAG,
      cache9p: opts.cache9p ?? 'loose',
      msize: 512000,
      hostname: 'bulkhead-emulated',
      writable: writableDirs.map((dir, i) => ({ tag: `rw${i}`, path: dir })),
    };
    let machine: MachineImage;
    try {
      machine = opts.machine ? opts.machine(runDir, settings) : { kernel, initrd, append: '' };
    } catch (err) {
      rmSync(runDir, { recursive: true, force: true });
      throw err;
    }
    if (!opts.machine) writeFileSync(initrd, buildInitramfs(settings));
    const tscKhz = opts.tscKhz === undefined ? realHostTscKhz() : opts.tscKhz;
    const append = opts.machine ? machine.append : [
      'console=ttyS0',
      'reboot=t',
      'panic=-1',
      'loglevel=4',
      'rdinit=/init',
      // The TSC under TCG is the real host's constant TSC: don't let the clocksource watchdog
      // (HPET, emulated, late under load) declare it unstable.
      tscKhz ? `tsc_early_khz=${tscKhz} tsc=reliable` : '',
      opts.append ?? '',
    ]
      .filter((a) => a !== '')
      .join(' ')
      .trim();

    const started = Date.now();
    const { child, diesWithParent } = launchQemu({
      qemu: qemuBin,
      kernel: machine.kernel,
      initrd: machine.initrd,
      append,
      memoryMiB,
      cpus,
      cpuModel: opts.cpuModel ?? 'max',
      share: opts.share ?? '/',
      mountTag: MOUNT_TAG,
      controlSocket,
      pidFile: path.join(runDir, 'qemu.pid'),
      writable: writableDirs.map((dir, i) => ({ tag: `rw${i}`, path: dir })),
      extraArgs: opts.qemuArgs ?? [],
    });

    // Belt and braces beside pdeathsig: kill QEMU on a normal exit of this process.
    const killOnExit = () => {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    };
    process.on('exit', killOnExit);
    const removeExitHook = () => process.off('exit', killOnExit);

    const consoleLog = { text: '' };
    const onConsole = (d: Buffer) => {
      const text = d.toString();
      consoleLog.text = (consoleLog.text + text).slice(-CONSOLE_KEEP);
      opts.onConsole?.(text);
    };
    child.stdout!.on('data', onConsole);
    child.stderr!.on('data', onConsole);
    const exited = new Promise<void>((resolve) => child.once('close', () => resolve()));
    let qemuError: Error | undefined;
    child.once('error', (err) => (qemuError = err));

    const fail = (why: string, cause?: unknown): never => {
      killOnExit();
      removeExitHook();
      rmSync(runDir, { recursive: true, force: true });
      if (opts.signal?.aborted) throw new AbortedError('starting the emulated host', { cause });
      throw new EmulatedHostError('boot-failed', `emulated host did not boot: ${why}\n--- console (tail) ---\n${consoleLog.text.slice(-4000)}`, {
        cause,
      });
    };
    // An abort kills QEMU; the waits below then fail and `fail` reports the abort.
    const onAbort = () => killOnExit();
    opts.signal?.addEventListener('abort', onAbort, { once: true });

    const deadline = started + (opts.bootTimeoutMs ?? 60_000);
    let socket: net.Socket | undefined;
    try {
      try {
        socket = await connectWhenReady(controlSocket, deadline, exited);
      } catch (err) {
        await Promise.race([exited, sleep(200)]);
        fail(qemuError ? `cannot start ${qemuBin}: ${qemuError.message}` : (err as Error).message, err);
      }
      const ready = await waitForReady(socket!, deadline, exited).catch((err: Error) => {
        socket?.destroy();
        return fail(err.message, err);
      });
      return new EmulatedHost(
        child,
        socket!,
        runDir,
        consoleLog,
        { bootMs: Date.now() - started, release: ready.release, diesWithParent, rest: ready.rest },
        exited,
        removeExitHook,
      );
    } finally {
      opts.signal?.removeEventListener('abort', onAbort);
    }
  }

  /** How QEMU ended (a signal tells a kill or a crash of QEMU from a guest power-off), then the console's tail. */
  private unexpectedExitMessage(): string {
    const { exitCode, signalCode } = this.qemu;
    const how = signalCode ? `QEMU was ended by ${signalCode}` : exitCode !== null ? `QEMU exited with code ${exitCode}` : 'its control channel closed while QEMU still ran';
    return `the emulated host exited unexpectedly (${how})\n${this.consoleLog.text.slice(-2000)}`;
  }

  /** The serial console so far (last 64 KiB): kernel messages and the init's progress. */
  get console(): string {
    return this.consoleLog.text;
  }

  get running(): boolean {
    return this.state === 'running';
  }

  /** QEMU's pid (for tests that check it is gone). */
  get pid(): number | undefined {
    return this.qemu.pid;
  }

  run(argv: readonly string[], opts: RunOptions = {}): Promise<RunResult> {
    if (this.state !== 'running') return Promise.reject(new InvalidStateError('run a command', this.state, ['running']));
    return this.channel.run(argv, opts);
  }

  spawn(argv: readonly string[], opts: SpawnOptions = {}): HostProcess {
    if (this.state !== 'running') throw new InvalidStateError('start a command', this.state, ['running']);
    return this.channel.spawn(argv, opts);
  }

  runNode(args: readonly string[], opts: RunOptions = {}): Promise<RunResult> {
    return this.run([process.execPath, ...args], opts);
  }

  connect(socketPath: string): Duplex {
    if (this.state !== 'running') throw new InvalidStateError('connect to a socket', this.state, ['running']);
    return this.channel.connect(socketPath);
  }

  openSocket(socketPath: string): HostProcess {
    if (this.state !== 'running') throw new InvalidStateError('connect to a socket', this.state, ['running']);
    return this.channel.openSocket(socketPath);
  }

  async bulkhead(args: readonly string[], opts: RunOptions = {}): Promise<RunResult> {
    return this.run(...bulkheadCommand(args, opts));
  }

  /** Stops the emulated host: asks the agent to power off, and kills QEMU if that takes too long. */
  async stop(opts: { timeoutMs?: number } = {}): Promise<void> {
    if (this.state === 'stopped') return;
    if (this.state === 'running') {
      this.state = 'stopping';
      this.channel.shutdown();
    }
    const timeoutMs = opts.timeoutMs ?? 5000;
    const timer = sleep(timeoutMs, undefined, { ref: false }).then(() => 'timeout' as const);
    if ((await Promise.race([this.exitPromise.then(() => 'exited' as const), timer])) === 'timeout') {
      this.qemu.kill('SIGKILL');
      await this.exitPromise;
    }
    this.finish();
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.stop();
  }

  private keepConsole(text: string): void {
    this.consoleLog.text = (this.consoleLog.text + text).slice(-CONSOLE_KEEP);
  }

  private finish(): void {
    if (this.state === 'stopped') return;
    this.state = 'stopped';
    this.channel.fail(new EmulatedHostError('exited', 'the emulated host was stopped'));
    if (this.qemu.exitCode === null && this.qemu.signalCode === null) this.qemu.kill('SIGKILL');
    this.removeExitHook();
    rmSync(this.runDir, { recursive: true, force: true });
  }
}

/** The argv and options that run this package's CLI inside with the host's node. */
export function bulkheadCommand(args: readonly string[], opts: RunOptions): [string[], RunOptions] {
  const main = packagePath('dist', 'cjs', 'cli', 'main.js');
  if (!existsSync(main)) throw new InvalidStateError(`run ${main}`, 'not built', ['after npm run build:ts']);
  return [[process.execPath, main, ...args], { cwd: packagePath(), ...opts }];
}

/** The real host's TSC frequency in kHz if its TSC is constant (what TCG's RDTSC returns). */
function realHostTscKhz(): number | undefined {
  try {
    const cpuinfo = readFileSync('/proc/cpuinfo', 'utf8');
    const first = cpuinfo.split('\n\n')[0] ?? '';
    if (!/^flags\s*:.*\bconstant_tsc\b/m.test(first)) return undefined;
    const mhz = Number(/^cpu MHz\s*:\s*([\d.]+)/m.exec(first)?.[1]);
    return mhz > 0 ? Math.round(mhz * 1000) : undefined;
  } catch {
    return undefined;
  }
}

/**
 * Removes run directories left by hosts whose owner was killed (no chance to clean up): those
 * whose QEMU is gone, or that never got a QEMU and are older than ten minutes.
 */
function sweepStaleRunDirs(): void {
  let names: string[];
  try {
    names = readdirSync(os.tmpdir()).filter((n) => n.startsWith(RUN_DIR_PREFIX));
  } catch {
    return;
  }
  for (const name of names) {
    const dir = path.join(os.tmpdir(), name);
    try {
      const pid = Number(readFileSync(path.join(dir, 'qemu.pid'), 'utf8').trim());
      if (pid > 0 && isAlive(pid)) continue;
    } catch {
      try {
        if (Date.now() - statSync(dir).mtimeMs < 10 * 60_000) continue;
      } catch {
        continue;
      }
    }
    rmSync(dir, { recursive: true, force: true });
  }
}

/** QEMU creates the control socket before the guest starts; connect as soon as it exists. */
async function connectWhenReady(socketPath: string, deadline: number, exited: Promise<void>): Promise<net.Socket> {
  let gone = false;
  void exited.then(() => (gone = true));
  for (;;) {
    if (gone) throw new Error('QEMU exited before creating the control socket');
    if (Date.now() > deadline) throw new Error('timed out waiting for the control socket');
    if (existsSync(socketPath)) {
      try {
        return await new Promise<net.Socket>((resolve, reject) => {
          const s = net.createConnection(socketPath, () => resolve(s));
          s.once('error', reject);
        });
      } catch {
        // not listening yet
      }
    }
    await sleep(20);
  }
}

/**
 * Says hello until the agent answers `ready` (a `ready` sent before we connected is lost, so we
 * ask again every few seconds). Returns the ready message and any bytes that came after it.
 */
async function waitForReady(
  socket: net.Socket,
  deadline: number,
  exited: Promise<void>,
): Promise<{ release: string; rest: Buffer }> {
  return new Promise((resolve, reject) => {
    let buffered = Buffer.alloc(0);
    const hello = () => socket.write(encodeMessage({ t: 'hello' }));
    const again = setInterval(hello, 3000);
    const timeout = setTimeout(() => done(new Error('timed out waiting for the agent')), Math.max(0, deadline - Date.now()));
    const onData = (d: Buffer) => {
      buffered = Buffer.concat([buffered, d]);
      let nl: number;
      while ((nl = buffered.indexOf(0x0a)) >= 0) {
        const line = buffered.subarray(0, nl).toString().trim();
        buffered = buffered.subarray(nl + 1);
        try {
          const msg = JSON.parse(line) as AgentToHost;
          if (msg.t === 'ready') {
            done(undefined, { release: msg.release, rest: Buffer.from(buffered) });
            return;
          }
        } catch {
          // noise before the agent started: ignore
        }
      }
    };
    const onClose = () => done(new Error('the control connection closed during boot'));
    function done(err?: Error, value?: { release: string; rest: Buffer }) {
      clearInterval(again);
      clearTimeout(timeout);
      socket.off('data', onData);
      socket.off('close', onClose);
      if (err) reject(err);
      else resolve(value!);
    }
    void exited.then(() => done(new Error('QEMU exited during boot')));
    socket.on('data', onData);
    socket.on('close', onClose);
    hello();
  });
}
