// A benchmark stopped by SIGINT or SIGTERM leaves nothing behind: no dockerd or container, no runtime
// process, no bundle or temp dir, no network interface, iptables rule, sysctl change or mount.
// Runs the built CLI (npm run build:ts first) as a child with its own TMPDIR and kills it mid-run.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import t, { type Test } from 'tap';
import { createHostRunner } from '../../src/bench/runners';
import { processesMentioning } from '../../src/util/process';
import { emulatedHostUnavailableReason } from '../../src/bench/runners/emulated-host';
import { hostState } from './fixtures/host-state';

const CLI = path.resolve(__dirname, '..', '..', 'dist', 'cjs', 'cli', 'main.js');

interface Bench {
  child: ChildProcess;
  stderr: () => string;
  exit: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

function startBench(tmp: string, runners: string, where = 'host'): Bench {
  let stderr = '';
  const child = spawn(process.execPath, [CLI, 'bench', '--runners', runners, '--where', where, '--runs', '3', '--warmups', '0', '--scale', '0.5', '--out', path.join(tmp, 'out')], {
    env: { ...process.env, TMPDIR: tmp },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  child.stderr!.setEncoding('utf8').on('data', (d: string) => (stderr += d));
  const exit = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => child.on('exit', (code, signal) => resolve({ code, signal })));
  return { child, stderr: () => stderr, exit };
}

async function waitFor(what: string, condition: () => boolean, timeoutMs = 60_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** Runs the CLI, waits for `ready` (a moment when something is really set up), sends `signal`, then checks the host. */
async function abortCase(t: Test, runners: string, signal: NodeJS.Signals, ready: (tmp: string, stderr: string) => boolean, readyWhat: string, where = 'host'): Promise<void> {
  if (!fs.existsSync(CLI)) throw new Error(`${CLI} is missing: run npm run build:ts first`);
  const before = hostState();
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'bulkhead-bench-abort-'));
  const bench = startBench(tmp, runners, where);
  try {
    await waitFor(readyWhat, () => ready(tmp, bench.stderr()) || bench.child.exitCode !== null);
    t.equal(bench.child.exitCode, null, `still running when ${readyWhat}`);
    bench.child.kill(signal);
    let timer: NodeJS.Timeout | undefined;
    const { code } = await Promise.race([
      bench.exit,
      new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error('bench did not exit within 90 s of the signal')), 90_000))),
    ]);
    clearTimeout(timer);
    t.equal(code, signal === 'SIGINT' ? 130 : 143, `exits ${signal === 'SIGINT' ? 130 : 143} after ${signal}`);
    t.match(bench.stderr(), new RegExp(`aborted by ${signal}`));
    t.same(fs.readdirSync(tmp), [], 'no temp dirs, bundles, daemon dirs or output left in TMPDIR');
    t.same(processesMentioning(tmp), [], 'no process of the run is left');
    t.same(hostState(), before, 'interfaces, iptables, ip_forward, mounts, cgroups and runtime processes as before');
  } finally {
    if (bench.child.exitCode === null) bench.child.kill('SIGKILL');
    fs.rmSync(tmp, { recursive: true, force: true });
  }
}

function dockerSocket(tmp: string): string | undefined {
  for (const d of fs.readdirSync(tmp)) {
    const sock = path.join(tmp, d, 'docker', 'd', 'docker.sock');
    if (fs.existsSync(sock)) return sock;
  }
  return undefined;
}

t.test('SIGINT while a Docker container runs on our private dockerd', async (t) => {
  const docker = await createHostRunner('docker').probe();
  if (!docker.available) return t.pass('docker case', { skip: docker.reason });
  if (spawnSync('docker', ['version'], { stdio: 'ignore' }).status === 0) {
    return t.pass('docker case', { skip: 'a Docker daemon is already reachable: the private-dockerd cleanup is not exercised' });
  }
  await abortCase(
    t,
    'docker',
    'SIGINT',
    (tmp) => {
      const sock = dockerSocket(tmp);
      if (!sock) return false;
      const ps = spawnSync('docker', ['-H', `unix://${sock}`, 'ps', '-q'], { encoding: 'utf8' });
      return ps.status === 0 && ps.stdout.trim() !== '';
    },
    'a container is running',
  );
});

t.test('SIGTERM while dockerd is still starting', async (t) => {
  const docker = await createHostRunner('docker').probe();
  if (!docker.available) return t.pass('dockerd start case', { skip: docker.reason });
  await abortCase(t, 'docker', 'SIGTERM', (_tmp, stderr) => /starting a private dockerd|using the reachable Docker daemon/.test(stderr), 'dockerd is starting');
});

t.test('SIGTERM while gVisor (runsc) runs the workload', async (t) => {
  const runsc = await createHostRunner('runsc').probe();
  if (!runsc.available) return t.pass('runsc case', { skip: runsc.reason });
  await abortCase(
    t,
    'runsc',
    'SIGTERM',
    (tmp, stderr) => /runsc: run 1\/3 \.\.\./.test(stderr) && processesMentioning(tmp).length >= 2,
    'runsc is running the workload',
  );
});

t.test('SIGINT while runc and crun run in turn', async (t) => {
  const runc = await createHostRunner('runc').probe();
  if (!runc.available) return t.pass('runc case', { skip: runc.reason });
  await abortCase(t, 'runc,crun', 'SIGINT', (_tmp, stderr) => /crun: run 1\/3 \.\.\./.test(stderr), 'crun is running');
});

t.test('after a SIGKILL (no chance to clean up), the next run sweeps what was left', async (t) => {
  const docker = await createHostRunner('docker').probe();
  if (!docker.available) return t.pass('SIGKILL case', { skip: docker.reason });
  if (spawnSync('docker', ['version'], { stdio: 'ignore' }).status === 0) {
    return t.pass('SIGKILL case', { skip: 'a Docker daemon is already reachable: no private dockerd to leave behind' });
  }
  const before = hostState();
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'bulkhead-bench-abort-'));
  t.teardown(() => fs.rmSync(tmp, { recursive: true, force: true }));
  const killed = startBench(tmp, 'docker');
  await waitFor('a container is running', () => {
    const sock = dockerSocket(tmp);
    if (!sock) return killed.child.exitCode !== null;
    const ps = spawnSync('docker', ['-H', `unix://${sock}`, 'ps', '-q'], { encoding: 'utf8' });
    return (ps.status === 0 && ps.stdout.trim() !== '') || killed.child.exitCode !== null;
  });
  killed.child.kill('SIGKILL');
  await killed.exit;
  t.ok(processesMentioning(tmp).length > 0, 'the killed run left its dockerd behind (the case to sweep)');

  const next = spawnSync(process.execPath, [CLI, 'bench', '--runners', 'bare', '--where', 'host', '--runs', '1', '--warmups', '0', '--scale', '0.001', '--out', path.join(tmp, 'out')], {
    env: { ...process.env, TMPDIR: tmp },
    encoding: 'utf8',
    timeout: 120_000,
  });
  t.equal(next.status, 0, `the next run succeeds: ${next.stderr.slice(-500)}`);
  t.match(next.stderr, /sweeping .*left by bench process \d+ which is gone/);
  t.same(fs.readdirSync(tmp), ['out'], 'only the new report is left in TMPDIR');
  t.same(processesMentioning(tmp), [], 'the old dockerd, containerd and container are gone');
  t.same(hostState(), before, 'host state as before');
});

t.test('SIGINT while the harness runs inside the emulated host', async (t) => {
  const reason = await emulatedHostUnavailableReason();
  if (reason) return t.pass('emulated-host case', { skip: reason });
  // QEMU, its run dir and everything inside go; the real host is as before.
  await abortCase(t, 'bare', 'SIGINT', (_tmp, stderr) => /\[emulated host\] \[1\/\d+\] bare: run/.test(stderr), 'the nested run has started', 'emulated-host');
});
