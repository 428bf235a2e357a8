// TEST DOUBLE OF A ZONE (not of a hypervisor): a Zone whose processes are local child processes,
// chrooted into a private directory holding a static busybox, so the HTTP layer (src/server), the
// client (src/zone/remote.ts) and the CLI can be tested before the real backend (src/zone/local.ts)
// exists. It implements the Zone contract — states, events, spawn with streams, tty (through
// pty-helper.py), signals, timeouts, AbortSignal, files, logs, metrics — with real processes, so
// the code above it is exercised for real; what it cannot show is anything about VMs.
//
//   const zone = await ChildProcessZone.start({ image: 'busybox' });
//   (with a state directory, as by default, it is published on its api.sock as real zones are)
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { PassThrough, Readable, type Writable } from 'node:stream';
import { AbortedError, InvalidConfigError, InvalidStateError } from '../../src/errors';
import { ZoneClosedError, ZoneStartError } from '../../src/zone/errors';
import { ZoneLog } from '../../src/zone/log';
import { validateZoneSpec, type ValidatedZoneSpec, type ZoneSpec } from '../../src/zone/spec';
import { createStateDir, LOG_FILE, removeStateDir, stateDirOf } from '../../src/zone/state-dir';
import type {
  DirEntry,
  FileStat,
  LogEntry,
  LogOptions,
  ProcessEnd,
  SpawnOptions,
  ZoneExit,
  ZoneFiles,
  ZoneMetrics,
  ZoneProcess,
} from '../../src/zone/types';
import { Zone } from '../../src/zone/zone';
import { publishZone } from '../../src/server/zone-socket';

const HELPER = path.join(__dirname, 'pty-helper.py');
/** The real interpreter (not a version manager's shim, which needs our environment to run). */
const PYTHON = execFileSync('python3', ['-c', 'import sys; print(sys.executable)'], { encoding: 'utf8' }).trim();
const MiB = 1024 * 1024;

/** Images this double knows: busybox, and one with a config (Env, WorkingDir, User) for the suite. */
export const DOUBLE_IMAGES: Record<string, { env: Record<string, string>; cwd?: string; user?: string; cmd?: string[] }> = {
  busybox: { env: { PATH: '/usr/sbin:/usr/bin:/sbin:/bin' }, cmd: ['sh'] },
  'busybox-configured': { env: { PATH: '/usr/sbin:/usr/bin:/sbin:/bin', FROM_IMAGE: 'yes' }, cwd: '/srv', user: 'nobody', cmd: ['sh'] },
};

export class ChildProcessZone extends Zone {
  readonly id = randomBytes(6).toString('hex');
  readonly name: string;
  readonly backend = 'kvm' as const;
  readonly image: string;
  readonly labels: Readonly<Record<string, string>>;
  readonly createdAt = new Date().toISOString();
  readonly memoryMiB: number;
  readonly vcpus: number;
  readonly files: ZoneFiles;
  /** The directory standing in for the zone's root filesystem. */
  readonly root: string;

  private readonly spec: ValidatedZoneSpec;
  private readonly log: ZoneLog;
  private readonly procs = new Set<DoubleProcess>();
  private main: DoubleProcess | undefined;
  private timer: NodeJS.Timeout | undefined;
  private readonly stateDir: boolean;

  private constructor(spec: ValidatedZoneSpec, opts: { stateDir: boolean }) {
    super();
    this.spec = spec;
    this.name = spec.name ?? `zone-${this.id}`;
    this.image = spec.image;
    this.labels = spec.labels;
    this.memoryMiB = spec.memoryMiB;
    this.vcpus = spec.vcpus;
    this.stateDir = opts.stateDir;
    if (opts.stateDir) createStateDir(this.id, this.name);
    this.log = new ZoneLog(opts.stateDir ? path.join(stateDirOf(this.id), LOG_FILE) : undefined);
    // In the state directory when there is one, so a killed owner's root goes with its directory.
    this.root = opts.stateDir ? path.join(stateDirOf(this.id), 'rootfs') : fs.mkdtempSync(path.join(os.tmpdir(), 'bulkhead-double-'));
    fs.mkdirSync(this.root, { recursive: true });
    this.files = new DoubleFiles(this);
  }

  /** Like Zone.create (named start, as Zone.create is the real one); `stateDir` (default true) gives it a state directory as real zones have. */
  static async start(spec: ZoneSpec, opts: { stateDir?: boolean } = {}): Promise<ChildProcessZone> {
    const valid = validateZoneSpec(spec, { hostMemoryMiB: Math.floor(os.totalmem() / MiB), hostCpus: os.cpus().length });
    const image = DOUBLE_IMAGES[valid.image];
    if (!image) throw new ZoneStartError('image', `no image ${JSON.stringify(valid.image)} (this test double knows ${Object.keys(DOUBLE_IMAGES).join(', ')})`);
    if (spec.signal?.aborted) throw new AbortedError('creating a zone');
    const zone = new ChildProcessZone(valid, { stateDir: opts.stateDir ?? true });
    zone.buildRoot();
    if (zone.stateDir) await publishZone(zone); // its record and api.sock, as every zone owner has
    zone.transition('booting');
    zone.log.add('zone', 'booting (test double: child processes)');
    zone.transition('running');
    if (valid.timeoutMs !== undefined) zone.timer = setTimeout(() => void zone.end('timeout'), valid.timeoutMs);
    spec.signal?.addEventListener('abort', () => void zone.end('aborted').then(() => zone.destroy()), { once: true });
    if (valid.cmd) {
      const argv = valid.cmd === 'image' ? [...(valid.entrypoint ?? []), ...(image.cmd ?? [])] : [...(valid.entrypoint ?? []), ...valid.cmd];
      const main = zone.spawn(argv, { env: valid.env, cwd: valid.cwd, user: valid.user }) as DoubleProcess;
      zone.main = main;
      main.stdin.end();
      main.stdout.on('data', (d: Buffer) => zone.log.console(d));
      main.stderr.on('data', (d: Buffer) => zone.log.console(d));
      void main.wait().then(
        (end) => {
          zone.record({ type: 'main-exit', time: Date.now(), exitCode: end.exitCode, signal: end.signal });
          if (!valid.keepAlive) void zone.end('main-exited', { exitCode: end.exitCode, signal: end.signal });
        },
        () => undefined,
      );
    }
    return zone;
  }

  spawn(argv: readonly string[], opts: SpawnOptions = {}): ZoneProcess {
    if (this.state !== 'running') throw this.closedError('start a process');
    if (argv.length === 0) throw new InvalidConfigError('argv', argv, 'a non-empty array of strings');
    const image = DOUBLE_IMAGES[this.spec.image]!;
    const env = { ...image.env, ...this.spec.env, ...opts.env };
    const cwd = opts.cwd ?? this.spec.cwd ?? image.cwd ?? '/';
    const ids = this.resolveUser(opts.user ?? this.spec.user ?? image.user ?? 'root');
    // setpriv --pdeathsig: the zone's processes die with its owner, as a VM's do.
    const inner = ['setpriv', '--pdeathsig', 'SIGKILL', '--', 'chroot', `--userspec=${ids.uid}:${ids.gid}`, '--groups=', this.root, '/bin/sh', '-c', 'cd "$0" && exec "$@"', cwd, ...argv];
    const proc = new DoubleProcess(this, inner, env, opts);
    this.procs.add(proc);
    void proc.wait().then(
      () => this.procs.delete(proc),
      () => this.procs.delete(proc),
    );
    return proc;
  }

  logs(opts?: LogOptions): AsyncIterable<LogEntry> {
    return this.log.read(opts);
  }

  async metrics(): Promise<ZoneMetrics> {
    if (this.state !== 'running') throw this.closedError('read metrics');
    const pids = [...this.procs].map((p) => p.hostPid).filter((p): p is number => p !== undefined);
    return {
      time: Date.now(),
      host: { rssBytes: process.memoryUsage().rss, vcpuTimeMs: process.cpuUsage().user / 1000, exits: 0 },
      guest: {
        memory: { totalBytes: this.memoryMiB * MiB, availableBytes: this.memoryMiB * MiB * 0.9, usedBytes: this.memoryMiB * MiB * 0.1, pressure: { some10: 0, full10: 0 } },
        cpu: { count: this.vcpus, busyPercent: 1, loadAverage: os.loadavg() as [number, number, number] },
        uptimeMs: Date.now() - Date.parse(this.createdAt),
        processes: pids.map((pid) => ({ pid, command: 'sh', user: 'root', rssBytes: 0, cpuPercent: 0, state: 'S' })),
      },
    };
  }

  async stop(opts: { graceMs?: number } = {}): Promise<ZoneExit> {
    if (this.exit) return this.exit;
    return this.end('stopped', undefined, opts.graceMs ?? 5000);
  }

  async destroy(): Promise<void> {
    if (this.state === 'destroyed') return;
    await this.stop({ graceMs: 0 });
    await this.log.close();
    fs.rmSync(this.root, { recursive: true, force: true });
    if (this.stateDir) removeStateDir(this.id, this.name);
    this.transition('destroyed');
  }

  /** For tests: the zone dies as a zone whose agent was killed does (failed, every pending call rejected). */
  crash(reason = 'the agent died'): void {
    if (this.exit) return;
    clearTimeout(this.timer);
    for (const p of this.procs) p.zoneDied();
    this.log.add('zone', `failed: ${reason}`);
    this.unblockFifos();
    this.transition('failed', reason, { reason: 'failed', failure: reason });
  }

  closed(operation: string): ZoneClosedError {
    return this.closedError(operation);
  }

  /** A file call that fails with ZoneClosedError when the zone ends first, as a real zone's would. */
  async guard<T>(operation: string, call: Promise<T>): Promise<T> {
    const ended = this.wait().then(() => {
      throw this.closedError(operation);
    });
    ended.catch(() => undefined);
    return Promise.race([call, ended]);
  }

  /** Lets a file call blocked on a FIFO (the suite's pending call) return, so no thread stays stuck. */
  private unblockFifos(): void {
    for (const dir of ['tmp', 'srv']) {
      let names: string[] = [];
      try {
        names = fs.readdirSync(path.join(this.root, dir));
      } catch {
        continue; // removed already
      }
      for (const name of names) {
        const file = path.join(this.root, dir, name);
        try {
          if (fs.statSync(file).isFIFO()) fs.closeSync(fs.openSync(file, fs.constants.O_WRONLY | fs.constants.O_NONBLOCK));
        } catch {
          // no reader waiting
        }
      }
    }
  }

  private async end(reason: ZoneExit['reason'], main?: ZoneExit['main'], graceMs = 0): Promise<ZoneExit> {
    if (this.exit) return this.exit;
    clearTimeout(this.timer);
    if (this.state === 'running') this.transition('stopping', reason);
    const running = [...this.procs].filter((p) => p !== this.main || !main);
    for (const p of running) p.kill('SIGTERM');
    if (graceMs > 0) await Promise.race([Promise.allSettled(running.map((p) => p.wait())), new Promise((r) => setTimeout(r, graceMs))]);
    for (const p of this.procs) p.zoneDied();
    this.log.add('zone', `exited: ${reason}`);
    this.unblockFifos();
    if (!this.exit) this.transition('exited', reason, { reason, ...(main ? { main } : {}) });
    return this.exit!;
  }

  private buildRoot(): void {
    fs.chmodSync(this.root, 0o755);
    for (const d of ['bin', 'etc', 'tmp', 'srv', 'root', 'home', 'dev']) fs.mkdirSync(path.join(this.root, d), { recursive: true });
    for (const [name, minor] of [['null', 3], ['zero', 5], ['urandom', 9]] as const) {
      execFileSync('mknod', ['-m', '666', path.join(this.root, 'dev', name), 'c', '1', String(minor)]);
    }
    fs.chmodSync(path.join(this.root, 'tmp'), 0o1777);
    fs.copyFileSync('/bin/busybox', path.join(this.root, 'bin', 'busybox'));
    fs.chmodSync(path.join(this.root, 'bin', 'busybox'), 0o755);
    for (const applet of ['sh', 'echo', 'cat', 'ls', 'sleep', 'id', 'pwd', 'env', 'stty', 'kill', 'sha256sum', 'head', 'dd', 'true', 'false', 'printf', 'wc', 'ps', 'tty', 'mkfifo', 'grep', 'touch', 'rm', 'mkdir']) {
      fs.symlinkSync('busybox', path.join(this.root, 'bin', applet));
    }
    fs.writeFileSync(path.join(this.root, 'etc', 'passwd'), 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/sh\n');
    fs.writeFileSync(path.join(this.root, 'etc', 'group'), 'root:x:0:\nnogroup:x:65534:\n');
  }

  private resolveUser(user: string): { uid: number; gid: number } {
    const [u, g] = user.split(':') as [string, string | undefined];
    const passwd = fs.readFileSync(path.join(this.root, 'etc', 'passwd'), 'utf8').split('\n').map((l) => l.split(':'));
    const entry = /^\d+$/.test(u) ? passwd.find((p) => p[2] === u) : passwd.find((p) => p[0] === u);
    if (!entry && !/^\d+$/.test(u)) throw new InvalidConfigError('user', user, 'a user of the image (/etc/passwd) or a numeric uid');
    const uid = entry ? Number(entry[2]) : Number(u);
    const gid = g !== undefined ? Number(g) : entry ? Number(entry[3]) : uid;
    return { uid, gid };
  }
}

class DoubleProcess implements ZoneProcess {
  readonly stdin: Writable;
  readonly stdout: Readable;
  readonly stderr: Readable;
  readonly pid: Promise<number>;
  private readonly child: ChildProcess;
  private readonly done: Promise<ProcessEnd>;
  private settle!: (end: ProcessEnd | Error) => void;
  private settled = false;
  private timedOut = false;
  private aborted = false;
  private readonly started = Date.now();

  constructor(
    private readonly zone: ChildProcessZone,
    inner: string[],
    env: Record<string, string>,
    private readonly opts: SpawnOptions,
  ) {
    const tty = opts.tty;
    const [cmd, ...args] = tty ? [PYTHON, HELPER, String(tty.cols), String(tty.rows), '--', ...inner] : inner;
    this.child = spawn(cmd!, args, { env: tty ? { TERM: 'xterm', ...env } : env, stdio: tty ? ['pipe', 'pipe', 'pipe', 'pipe'] : ['pipe', 'pipe', 'pipe'] });
    this.stdin = this.child.stdin!;
    this.stdout = this.child.stdout!;
    this.stderr = tty ? new PassThrough().end() : this.child.stderr!;
    if (tty) this.child.stderr!.resume();
    this.stdin.on('error', () => undefined);
    this.done = new Promise((resolve, reject) => {
      this.settle = (end) => {
        if (this.settled) return;
        this.settled = true;
        if (end instanceof Error) reject(end);
        else resolve(end);
      };
    });
    this.done.catch(() => undefined);
    this.pid = new Promise((resolve, reject) => {
      this.child.once('spawn', () => resolve(this.child.pid!));
      this.child.once('error', reject);
    });
    this.pid.catch(() => undefined);
    this.child.once('error', (err) => this.settle(err));
    this.child.once('exit', (code, signal) => {
      if (this.aborted) this.settle(new AbortedError(`running ${inner[inner.length - 1]} in zone ${zone.name}`));
      else this.settle({ exitCode: code, signal, timedOut: this.timedOut, durationMs: Date.now() - this.started });
    });
    let timer: NodeJS.Timeout | undefined;
    if (opts.timeoutMs !== undefined) {
      timer = setTimeout(() => {
        this.timedOut = true;
        this.child.kill('SIGKILL');
      }, opts.timeoutMs);
    }
    const onAbort = () => {
      this.aborted = true;
      this.child.kill('SIGKILL');
    };
    if (opts.signal?.aborted) onAbort();
    opts.signal?.addEventListener('abort', onAbort, { once: true });
    void this.done.finally(() => {
      clearTimeout(timer);
      opts.signal?.removeEventListener('abort', onAbort);
    }).catch(() => undefined);
  }

  get hostPid(): number | undefined {
    return this.child.pid;
  }

  kill(signal: NodeJS.Signals | number = 'SIGTERM'): void {
    if (this.opts.tty) {
      const n = typeof signal === 'number' ? signal : os.constants.signals[signal];
      (this.child.stdio[3] as Writable).write(`kill ${n}\n`);
    } else this.child.kill(signal);
  }

  resize(cols: number, rows: number): void {
    if (!this.opts.tty) throw new InvalidStateError('resize', 'not a tty process', ['started with tty']);
    (this.child.stdio[3] as Writable).write(`resize ${cols} ${rows}\n`);
  }

  wait(): Promise<ProcessEnd> {
    return this.done;
  }

  /** The zone went away: the process is killed and wait() rejects with ZoneClosedError. */
  zoneDied(): void {
    this.settle(this.zone.closed('wait for a process'));
    this.child.kill('SIGKILL');
  }
}

class DoubleFiles implements ZoneFiles {
  constructor(private readonly zone: ChildProcessZone) {}

  private at(p: string): string {
    if (this.zone.state !== 'running' && this.zone.state !== 'stopping') throw this.zone.closed(`use the file ${p}`);
    const resolved = path.resolve('/', p);
    return path.join(this.zone.root, resolved);
  }

  async read(p: string): Promise<Buffer> {
    return this.zone.guard(`read ${p}`, fs.promises.readFile(this.at(p)));
  }

  readStream(p: string): Readable {
    try {
      return fs.createReadStream(this.at(p));
    } catch (err) {
      const r = new Readable({ read() {} });
      process.nextTick(() => r.destroy(err as Error));
      return r;
    }
  }

  async write(p: string, data: string | Buffer | Readable, opts: { mode?: number } = {}): Promise<void> {
    const file = this.at(p);
    if (typeof data === 'string' || Buffer.isBuffer(data)) await fs.promises.writeFile(file, data, { mode: opts.mode });
    else {
      const out = fs.createWriteStream(file, { mode: opts.mode });
      const copied = new Promise<void>((resolve, reject) => {
        data.once('error', reject);
        out.once('error', reject);
        out.once('finish', resolve);
        data.pipe(out);
      });
      // As a real zone's would: a stream write still running when the zone dies ends with ZoneClosedError.
      await this.zone.guard(`write ${p}`, copied).finally(() => {
        data.unpipe(out);
        out.destroy();
      });
    }
    if (opts.mode !== undefined) await fs.promises.chmod(file, opts.mode);
  }

  async stat(p: string): Promise<FileStat> {
    const s = await fs.promises.lstat(this.at(p));
    return { type: s.isFile() ? 'file' : s.isDirectory() ? 'directory' : s.isSymbolicLink() ? 'symlink' : 'other', size: s.size, mode: s.mode & 0o7777, uid: s.uid, gid: s.gid, mtimeMs: s.mtimeMs };
  }

  async exists(p: string): Promise<boolean> {
    return fs.existsSync(this.at(p));
  }

  async list(p: string): Promise<DirEntry[]> {
    const entries = await fs.promises.readdir(this.at(p), { withFileTypes: true });
    return entries.map((e) => ({ name: e.name, type: e.isFile() ? 'file' : e.isDirectory() ? 'directory' : e.isSymbolicLink() ? 'symlink' : 'other' }));
  }

  async mkdir(p: string, opts: { recursive?: boolean; mode?: number } = {}): Promise<void> {
    await fs.promises.mkdir(this.at(p), opts);
  }

  async remove(p: string, opts: { recursive?: boolean } = {}): Promise<void> {
    await fs.promises.rm(this.at(p), { recursive: opts.recursive ?? false });
  }

  async rename(from: string, to: string): Promise<void> {
    await fs.promises.rename(this.at(from), this.at(to));
  }
}
