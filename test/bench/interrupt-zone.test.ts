// A benchmark with zones, interrupted once a zone is up, leaves no zone, container or emulated host
// behind: no QEMU or other process naming the run's TMPDIR, no temp dir, no zone record, the host's
// interfaces, mounts, cgroups and runtime processes as before. Both the workload suite (zone runner)
// and the lifecycle run. Runs the built CLI (npm run build:ts first) as a child with its own TMPDIR.
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import t, { type Test } from 'tap';
import { Zone } from '../../src';
import { detectVirtualization, readCpuInfo } from '../../src/bench/host-facts';
import { processesMentioning } from '../../src/util/process';
import { emulatedHostMissing, testKernel } from '../support/emulated-host';
import { hostState } from './fixtures/host-state';

t.setTimeout(30 * 60_000);

const CLI = path.resolve(__dirname, '..', '..', 'dist', 'cjs', 'cli', 'main.js');
const hardware = detectVirtualization(readCpuInfo().flags).mode === 'hardware';
// Zones run on this host's KVM with hardware virtualization, else in the emulated host (QEMU).
const missing = hardware ? undefined : emulatedHostMissing();

function qemuProcesses(): string[] {
  const found: string[] = [];
  for (const p of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(p)) continue;
    try {
      const cmd = fs.readFileSync(`/proc/${p}/cmdline`, 'utf8');
      if (cmd.startsWith('qemu-system') || cmd.includes('/qemu-system')) found.push(`${p}: ${cmd.replace(/\0/g, ' ').slice(0, 120)}`);
    } catch {
      // gone
    }
  }
  return found.sort();
}

async function interruptCase(t: Test, args: readonly string[], ready: RegExp, signal: NodeJS.Signals): Promise<void> {
  if (!fs.existsSync(CLI)) throw new Error(`${CLI} is missing: run npm run build:ts first`);
  if (!hardware) await testKernel('host');
  await testKernel('zone');
  const before = hostState();
  const qemusBefore = qemuProcesses();
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'bulkhead-bench-interrupt-'));
  let stderr = '';
  const child = spawn(process.execPath, [CLI, 'bench', ...args, '--out', path.join(tmp, 'out')], { env: { ...process.env, TMPDIR: tmp }, stdio: ['ignore', 'ignore', 'pipe'] });
  child.stderr!.setEncoding('utf8').on('data', (d: string) => (stderr += d));
  const exit = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  try {
    const deadline = Date.now() + 20 * 60_000;
    while (!ready.test(stderr) && child.exitCode === null && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
    t.ok(ready.test(stderr), `a zone was up when interrupted (${ready})`, { stderr: stderr.slice(-2000) });
    t.equal(child.exitCode, null, 'still running then');
    if (!hardware) t.ok(qemuProcesses().some((p) => !qemusBefore.includes(p)), 'the run had an emulated host (a QEMU of its own) when interrupted');
    child.kill(signal);
    let timer: NodeJS.Timeout | undefined;
    const code = await Promise.race([exit, new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(`no exit within 120 s of ${signal}`)), 120_000)))]);
    clearTimeout(timer);
    t.equal(code, signal === 'SIGINT' ? 130 : 143, `exits ${signal === 'SIGINT' ? 130 : 143} after ${signal}`, { stderr: stderr.slice(-2000) });
    t.match(stderr, new RegExp(`aborted by ${signal}`));
    t.same(processesMentioning(tmp), [], 'no process of the run is left (QEMU, dockerd, shims)');
    // Compared as a subset: a shared emulated host of other tests may stop meanwhile (idle timeout).
    t.same(qemuProcesses().filter((p) => !qemusBefore.includes(p)), [], 'no QEMU started by the run is left');
    t.same(fs.readdirSync(tmp), [], 'no temp dir or output left in TMPDIR');
    const zones = (await Zone.list()).filter((z) => z.labels['bulkhead.bench'] === String(child.pid));
    t.same(zones, [], 'no zone record of the run is left');
    t.same(hostState(), before, 'interfaces, iptables, mounts, cgroups and runtime processes as before');
  } finally {
    if (child.exitCode === null) child.kill('SIGKILL');
    fs.rmSync(tmp, { recursive: true, force: true });
  }
}

t.test('SIGINT while the zone runner holds a zone (workload suite)', async (t) => {
  if (missing) return t.pass('skipped', { skip: `no hardware virtualization, and ${missing}` });
  const where = hardware ? 'host' : 'emulated-host';
  // The zone runner logs this once its zone has booted and holds the workload.
  await interruptCase(t, ['--runners', 'docker,zone', '--where', where, '--only', 'cpu', '--runs', '3', '--warmups', '0', '--scale', '0.2'], /zone: zone \S+ is up/, 'SIGINT');
});

t.test('SIGTERM while the lifecycle run holds zones', async (t) => {
  if (missing) return t.pass('skipped', { skip: `no hardware virtualization, and ${missing}` });
  await interruptCase(t, ['--lifecycle', '--runs', '2', '--warmups', '0', '--stream-bytes', '1048576', '--densities', '1'], /zone: sandbox zone \S+ is up/, 'SIGTERM');
});
