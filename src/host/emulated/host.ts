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
import { setTimeout as sleep } from 'node:timers/promises';
import { BulkheadError, InvalidConfigError, InvalidStateError } from '../../errors';
import { buildKernel, findKernel } from '../../kernel';
import { buildInitramfs } from './initramfs';
import { encodeMessage, LineDecoder, type AgentToHost, type HostToAgent } from './protocol';
import { findQemu, launchQemu } from './qemu';

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
}

export interface RunOptions {
  /** Working directory inside (default: this process's cwd, which exists at the same path). */
  cwd?: string;
  /** Added to (and overriding) the default environment: PATH, HOME, LANG=C.UTF-8, TERM=dumb. */
  env?: Record<string, string>;
  /** Bytes for the command's stdin (default: /dev/null). */
  stdin?: string | Buffer;
  /** Kill the command (SIGKILL) after this long; the result then has timedOut: true. */
  timeoutMs?: number;
  onStdout?: (chunk: Buffer) => void;
  onStderr?: (chunk: Buffer) => void;
}

export interface RunResult {
  /** The exit status, or null when the command was killed by a signal. */
  exitCode: number | null;
  signal: string | null;
  stdout: string;
  stderr: string;
  timedOut: boolean;
  durationMs: number;
}

interface PendingRun {
  stdout: Buffer[];
  stderr: Buffer[];
  opts: RunOptions;
  started: number;
  timedOut: boolean;
  timer?: NodeJS.Timeout;
  resolve: (r: RunResult) => void;
  reject: (e: Error) => void;
}

type State = 'running' | 'stopping' | 'stopped';

const CONSOLE_KEEP = 64 * 1024;
const MOUNT_TAG = 'host';
const RUN_DIR_PREFIX = 'bulkhead-host-';

export class EmulatedHost {
  /** Milliseconds from QEMU start to the agent's first message. */
  readonly bootMs: number;
  /** `uname -r` inside. */
  readonly kernelRelease: string;
  /** True when QEMU will be killed by the kernel if this process dies (even by SIGKILL). */
  readonly diesWithParent: boolean;

  private state: State = 'running';
  private nextId = 1;
  private readonly runs = new Map<number, PendingRun>();
  private exitPromise: Promise<void>;
  private readonly removeExitHook: () => void;

  private constructor(
    private readonly qemu: ChildProcess,
    private readonly socket: net.Socket,
    private readonly runDir: string,
    private readonly consoleLog: { text: string },
    boot: { bootMs: number; release: string; diesWithParent: boolean },
    exitPromise: Promise<void>,
    removeExitHook: () => void,
  ) {
    this.bootMs = boot.bootMs;
    this.kernelRelease = boot.release;
    this.diesWithParent = boot.diesWithParent;
    this.exitPromise = exitPromise;
    this.removeExitHook = removeExitHook;
  }

  /** Boots the emulated host and waits until its agent answers. */
  static async start(opts: EmulatedHostOptions = {}): Promise<EmulatedHost> {
    const memoryMiB = opts.memoryMiB ?? 4096;
    const cpus = opts.cpus ?? 2;
    if (!Number.isInteger(memoryMiB) || memoryMiB < 256) throw new InvalidConfigError('memoryMiB', memoryMiB, 'an integer >= 256');
    if (!Number.isInteger(cpus) || cpus < 1 || cpus > 16) throw new InvalidConfigError('cpus', cpus, 'an integer 1..16');
    const qemuBin = findQemu(opts.qemu);
    if (!qemuBin) {
      throw new BulkheadError('HOST_UNAVAILABLE', 'qemu-system-x86_64 not found (apt-get install qemu-system-x86)');
    }
    const kernel =
      opts.kernel ??
      (opts.buildKernel ? (await buildKernel({ config: 'host' })).vmlinux : (await findKernel({ config: 'host' }))?.vmlinux);
    if (!kernel) {
      throw new BulkheadError(
        'HOST_UNAVAILABLE',
        'no emulated-host kernel built yet; run: bulkhead kernel build --config host (or pass buildKernel: true)',
      );
    }
    if (!existsSync(kernel)) throw new InvalidConfigError('kernel', kernel, 'an existing vmlinux or bzImage');

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
    writeFileSync(
      initrd,
      buildInitramfs({
        nodePath: process.execPath,
        home: os.homedir(),
        mountTag: MOUNT_TAG,
        cache9p: opts.cache9p ?? 'loose',
        msize: 512000,
        hostname: 'bulkhead-emulated',
        writable: writableDirs.map((dir, i) => ({ tag: `rw${i}`, path: dir })),
      }),
    );
    const tscKhz = opts.tscKhz === undefined ? realHostTscKhz() : opts.tscKhz;
    const append = [
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
      kernel,
      initrd,
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
      throw new BulkheadError('HOST_UNAVAILABLE', `emulated host did not boot: ${why}\n--- console (tail) ---\n${consoleLog.text.slice(-4000)}`, {
        cause,
      });
    };

    const deadline = started + (opts.bootTimeoutMs ?? 60_000);
    let socket: net.Socket | undefined;
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
    const host = new EmulatedHost(
      child,
      socket!,
      runDir,
      consoleLog,
      { bootMs: Date.now() - started, release: ready.release, diesWithParent },
      exited,
      removeExitHook,
    );
    host.listen(ready.rest);
    return host;
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

  /**
   * Runs `argv` inside and resolves when it ends, with its exit code and output. A nonzero exit is
   * not an error; an error means the emulated host itself went away.
   */
  run(argv: readonly string[], opts: RunOptions = {}): Promise<RunResult> {
    if (this.state !== 'running') return Promise.reject(new InvalidStateError('run a command', this.state, ['running']));
    if (argv.length === 0 || argv.some((a) => typeof a !== 'string')) {
      return Promise.reject(new InvalidConfigError('argv', argv, 'a non-empty array of strings'));
    }
    const id = this.nextId++;
    const env: Record<string, string> = {
      PATH: process.env.PATH ?? '/usr/local/bin:/usr/bin:/bin:/usr/local/sbin:/usr/sbin:/sbin',
      HOME: os.homedir(),
      LANG: 'C.UTF-8',
      TERM: 'dumb',
      ...opts.env,
    };
    const msg: HostToAgent = {
      t: 'run',
      id,
      argv: [...argv],
      cwd: opts.cwd ?? process.cwd(),
      env,
      ...(opts.stdin !== undefined ? { stdin: Buffer.from(opts.stdin).toString('base64') } : {}),
    };
    return new Promise<RunResult>((resolve, reject) => {
      const pending: PendingRun = { stdout: [], stderr: [], opts, started: Date.now(), timedOut: false, resolve, reject };
      if (opts.timeoutMs !== undefined) {
        pending.timer = setTimeout(() => {
          pending.timedOut = true;
          this.send({ t: 'signal', id, signal: 'SIGKILL' });
        }, opts.timeoutMs);
      }
      this.runs.set(id, pending);
      this.send(msg);
    });
  }

  /** Runs the real host's node (same binary, same path) with `args`. */
  runNode(args: readonly string[], opts: RunOptions = {}): Promise<RunResult> {
    return this.run([process.execPath, ...args], opts);
  }

  /**
   * Runs this package's `bulkhead` CLI inside, e.g. `host.bulkhead(['doctor', '--json'])`. Uses the
   * compiled dist/cjs/cli/main.js (run `npm run build:ts` first).
   */
  bulkhead(args: readonly string[], opts: RunOptions = {}): Promise<RunResult> {
    const main = path.join(packageRoot(), 'dist', 'cjs', 'cli', 'main.js');
    if (!existsSync(main)) {
      return Promise.reject(new BulkheadError('HOST_UNAVAILABLE', `${main} does not exist: run npm run build:ts first`));
    }
    return this.runNode([main, ...args], { cwd: packageRoot(), ...opts });
  }

  private send(msg: HostToAgent): void {
    this.socket.write(encodeMessage(msg));
  }

  /** Stops the emulated host: asks the agent to power off, and kills QEMU if that takes too long. */
  async stop(opts: { timeoutMs?: number } = {}): Promise<void> {
    if (this.state === 'stopped') return;
    if (this.state === 'running') {
      this.state = 'stopping';
      try {
        this.send({ t: 'shutdown' });
      } catch {
        // socket already gone: QEMU is exiting
      }
    }
    const timeoutMs = opts.timeoutMs ?? 5000;
    const timer = sleep(timeoutMs).then(() => 'timeout' as const);
    if ((await Promise.race([this.exitPromise.then(() => 'exited' as const), timer])) === 'timeout') {
      this.qemu.kill('SIGKILL');
      await this.exitPromise;
    }
    this.finish(new InvalidStateError('finish the command', 'stopped', ['running']));
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.stop();
  }

  private listen(initial: Buffer): void {
    const decoder = new LineDecoder<AgentToHost>((msg) => this.onMessage(msg));
    this.socket.on('data', (d: Buffer) => decoder.push(d));
    if (initial.length > 0) decoder.push(initial);
    this.socket.on('error', () => undefined); // 'close' below handles it
    void this.exitPromise.then(() => {
      if (this.state === 'running') {
        this.finish(
          new BulkheadError('HOST_UNAVAILABLE', `the emulated host exited unexpectedly\n${this.consoleLog.text.slice(-2000)}`),
        );
      }
    });
  }

  private onMessage(msg: AgentToHost): void {
    if (msg.t === 'out') {
      const run = this.runs.get(msg.id);
      if (!run) return;
      const chunk = Buffer.from(msg.data, 'base64');
      if (msg.fd === 1) {
        run.stdout.push(chunk);
        run.opts.onStdout?.(chunk);
      } else {
        run.stderr.push(chunk);
        run.opts.onStderr?.(chunk);
      }
    } else if (msg.t === 'exit') {
      const run = this.runs.get(msg.id);
      if (!run) return;
      this.runs.delete(msg.id);
      if (run.timer) clearTimeout(run.timer);
      run.resolve({
        exitCode: msg.code,
        signal: msg.signal,
        stdout: Buffer.concat(run.stdout).toString(),
        stderr: Buffer.concat(run.stderr).toString(),
        timedOut: run.timedOut,
        durationMs: Date.now() - run.started,
      });
    } else if (msg.t === 'log') {
      this.consoleLog.text = (this.consoleLog.text + `[agent] ${msg.message}\n`).slice(-CONSOLE_KEEP);
    }
  }

  private finish(err: Error): void {
    this.state = 'stopped';
    for (const run of this.runs.values()) {
      if (run.timer) clearTimeout(run.timer);
      run.reject(err);
    }
    this.runs.clear();
    this.socket.destroy();
    this.removeExitHook();
    rmSync(this.runDir, { recursive: true, force: true });
  }
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

function packageRoot(): string {
  let dir = __dirname;
  while (!existsSync(path.join(dir, 'package.json')) && path.dirname(dir) !== dir) dir = path.dirname(dir);
  return dir;
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
      if (pid > 0 && existsSync(`/proc/${pid}`)) continue;
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
