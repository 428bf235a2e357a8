/**
 * A private Docker daemon for the benchmark, when no daemon is reachable. It is started so that it
 * changes nothing on the host that outlives it: its own data-root, exec-root, pidfile and socket under
 * the runner's work dir; no bridge, no iptables rules, no IP forwarding sysctl (the workload needs no
 * network); the vfs storage driver (the image is one static binary, and vfs needs no overlay mounts).
 * stop() ends it by PID, then removes anything it still left: mounts under its dirs, cgroup dirs it made.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { BulkheadError } from '../../errors';
import { unmountUnder } from '../mounts';
import { killProcessesMentioning, runCommand, sleep } from '../../util/process';

const START_TIMEOUT_MS = 90_000;
const STOP_TIMEOUT_MS = 30_000;
/** Parent directories where Docker creates a `docker` cgroup on cgroup v1 / hybrid hosts. */
const CGROUP_ROOT = '/sys/fs/cgroup';
/** In the daemon's dir: the `docker` cgroups that existed before it started (a JSON array of paths). */
const CGROUPS_BEFORE_FILE = 'cgroups-before.json';

export class PrivateDockerd {
  readonly socket: string;
  private readonly dir: string;
  private child: ChildProcess | undefined;
  private cgroupsBefore = new Set<string>();

  constructor(dir: string) {
    this.dir = dir;
    // Unix socket paths are limited to 108 bytes; the work dir is short (under the temp dir).
    this.socket = path.join(dir, 'docker.sock');
  }

  get env(): NodeJS.ProcessEnv {
    return { ...process.env, DOCKER_HOST: `unix://${this.socket}`, DOCKER_CONFIG: path.join(this.dir, 'client') };
  }

  get pid(): number | undefined {
    return this.child?.pid;
  }

  async start(dockerd: string, signal?: AbortSignal): Promise<void> {
    fs.mkdirSync(path.join(this.dir, 'client'), { recursive: true });
    const config = path.join(this.dir, 'daemon.json');
    fs.writeFileSync(config, '{}\n'); // so /etc/docker/daemon.json, if any, does not apply
    this.cgroupsBefore = new Set(dockerCgroups());
    // Recorded for a later run's sweep, should this process be killed before stop(): it removes only
    // the cgroups this daemon added, not ones that were on the host before.
    fs.writeFileSync(path.join(this.dir, CGROUPS_BEFORE_FILE), JSON.stringify([...this.cgroupsBefore]) + '\n');
    const log = fs.openSync(path.join(this.dir, 'dockerd.log'), 'a');
    this.child = spawn(
      dockerd,
      [
        `--config-file=${config}`,
        `--data-root=${path.join(this.dir, 'data')}`,
        `--exec-root=${path.join(this.dir, 'exec')}`,
        `--pidfile=${path.join(this.dir, 'dockerd.pid')}`,
        `--host=unix://${this.socket}`,
        '--bridge=none',
        '--iptables=false',
        '--ip-masq=false',
        '--ip-forward=false',
        '--userland-proxy=false',
        '--storage-driver=vfs',
        '--log-level=warn',
      ],
      // Own process group: a terminal's Ctrl-C must not kill it before we can stop it in order.
      { stdio: ['ignore', log, log], detached: true },
    );
    fs.closeSync(log);
    let exited: string | undefined;
    this.child.on('exit', (code, sig) => (exited = `dockerd exited with ${code ?? sig}`));
    this.child.on('error', (err) => (exited = `dockerd could not start: ${err.message}`));
    const deadline = Date.now() + START_TIMEOUT_MS;
    while (Date.now() < deadline) {
      if (exited) throw new BulkheadError('BENCH_FAILED', `${exited}; log: ${this.logTail()}`);
      if (signal?.aborted) return; // the caller's cleanup() stops it
      const r = await runCommand('docker', ['version', '--format', '{{.Server.Version}}'], { env: this.env, timeoutMs: 10_000 }).catch(() => undefined);
      if (r?.code === 0) return;
      await sleep(250);
    }
    throw new BulkheadError('BENCH_FAILED', `dockerd did not answer within ${START_TIMEOUT_MS} ms; log: ${this.logTail()}`);
  }

  /** Stops dockerd (and the containerd it started) and removes what they left. */
  async stop(): Promise<void> {
    const child = this.child;
    if (child?.pid !== undefined && child.exitCode === null && child.signalCode === null) {
      const gone = new Promise<void>((resolve) => child.once('exit', () => resolve()));
      child.kill('SIGTERM');
      let timer: NodeJS.Timeout | undefined;
      const stopped = await Promise.race([gone.then(() => true), new Promise<boolean>((resolve) => (timer = setTimeout(() => resolve(false), STOP_TIMEOUT_MS)))]);
      clearTimeout(timer);
      if (!stopped) {
        // dockerd did not stop cleanly: kill its whole group (containerd, shims) and go on cleaning.
        try {
          process.kill(-child.pid, 'SIGKILL');
        } catch {
          // gone meanwhile
        }
        await gone;
      }
    }
    this.child = undefined;
    // containerd and shims started by our dockerd carry our dirs in their command lines.
    await killProcessesMentioning(this.dir);
    unmountUnder(this.dir);
    await removeDockerCgroups(this.cgroupsBefore);
  }

  private logTail(): string {
    try {
      return fs.readFileSync(path.join(this.dir, 'dockerd.log'), 'utf8').trim().split('\n').slice(-5).join(' | ');
    } catch {
      return '(no log)';
    }
  }
}

/**
 * Removes the `docker` cgroups that are not in `keep`. A container's cgroup can stay busy for a moment
 * after its last task exits, so this retries for up to 5 s; rmdir never removes a cgroup in use.
 */
export async function removeDockerCgroups(keep: ReadonlySet<string> = new Set()): Promise<void> {
  for (let attempt = 0; attempt < 50; attempt++) {
    const left = dockerCgroups().filter((cg) => !keep.has(cg));
    if (left.length === 0) return;
    for (const cg of left) removeCgroupTree(cg);
    await sleep(100);
  }
}

export function dockerCgroups(): string[] {
  const found: string[] = [];
  let controllers: string[];
  try {
    controllers = fs.readdirSync(CGROUP_ROOT);
  } catch {
    return found;
  }
  for (const c of controllers) {
    const p = path.join(CGROUP_ROOT, c, 'docker');
    if (fs.existsSync(p)) found.push(p);
  }
  return found;
}

/** rmdir a cgroup and its (empty) children, leaves first; cgroup dirs cannot be removed recursively. */
export function removeCgroupTree(dir: string): void {
  let entries: fs.Dirent[] = [];
  try {
    entries = fs.readdirSync(dir, { withFileTypes: true });
  } catch {
    return;
  }
  for (const e of entries) if (e.isDirectory()) removeCgroupTree(path.join(dir, e.name));
  try {
    fs.rmdirSync(dir);
  } catch {
    // still in use or already gone: leave it rather than fail the cleanup
  }
}

/**
 * The `docker` cgroups that private daemons under `root` found on the host when they started (what a
 * sweep of `root` must leave in place), or undefined when no daemon there recorded it.
 */
export function dockerCgroupsBeforeUnder(root: string): Set<string> | undefined {
  let found: Set<string> | undefined;
  const visit = (dir: string, depth: number): void => {
    let entries: fs.Dirent[];
    try {
      entries = fs.readdirSync(dir, { withFileTypes: true });
    } catch {
      return;
    }
    for (const e of entries) {
      const p = path.join(dir, e.name);
      if (e.isFile() && e.name === CGROUPS_BEFORE_FILE) {
        found ??= new Set();
        try {
          const list: unknown = JSON.parse(fs.readFileSync(p, 'utf8'));
          if (Array.isArray(list)) for (const cg of list) if (typeof cg === 'string') found.add(cg);
        } catch {
          // a half-written record: keep what the others say
        }
      } else if (e.isDirectory() && depth < 3 && e.name !== 'data' && e.name !== 'exec') {
        visit(p, depth + 1);
      }
    }
  };
  visit(root, 0);
  return found;
}
