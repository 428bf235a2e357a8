// An interrupted `bench:vmm` (SIGINT or SIGTERM mid-run) leaves no QEMU process and no temp dir.
// Runs the built entry (npm run build:ts first) as a child with its own TMPDIR.
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import t from 'tap';
import { findQemu } from '../../src/host/emulated/qemu';

const RUN = path.resolve(__dirname, '..', '..', 'dist', 'cjs', 'bench', 'vmm', 'run.js');
const skip = !fs.existsSync('/dev/kvm')
  ? '/dev/kvm does not exist on this host'
  : !findQemu()
    ? 'qemu-system-x86_64 not installed'
    : !fs.existsSync(RUN)
      ? `${RUN} missing: run npm run build:ts first`
      : false;

function qemuChildrenOf(pid: number): number[] {
  const found: number[] = [];
  for (const p of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(p)) continue;
    try {
      const stat = fs.readFileSync(`/proc/${p}/stat`, 'utf8');
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      if (ppid === pid && fs.readFileSync(`/proc/${p}/cmdline`, 'utf8').includes('qemu-system')) found.push(Number(p));
    } catch {
      // gone
    }
  }
  return found;
}

for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  t.test(`${signal} during the exit benchmark leaves nothing behind`, { skip }, async (t) => {
    const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'vmm-abort-test-'));
    t.teardown(() => fs.rmSync(tmp, { recursive: true, force: true }));
    const child = spawn(process.execPath, [RUN, '--only', 'exits', '--no-emulated', '--runs', '50', '--warmups', '0', '--out', path.join(tmp, 'out')], {
      env: { ...process.env, TMPDIR: tmp },
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    let stderr = '';
    child.stderr!.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
    // Wait until a QEMU of the benchmark is running, then interrupt.
    const deadline = Date.now() + 120_000;
    let qemus: number[] = [];
    while (Date.now() < deadline && (qemus = qemuChildrenOf(child.pid!)).length === 0) await new Promise((r) => setTimeout(r, 20));
    t.ok(qemus.length > 0, 'a QEMU was running when interrupted');
    child.kill(signal);
    const code = await exited;
    t.equal(code, 130, `exits 130 after ${signal}`, { stderr: stderr.slice(-2000) });
    t.match(stderr, /cleaning up/);
    for (const pid of qemus) t.notOk(fs.existsSync(`/proc/${pid}`) && !/\) Z /.test(fs.readFileSync(`/proc/${pid}/stat`, 'utf8')), `QEMU ${pid} is gone`);
    t.same(fs.readdirSync(tmp), [], 'no temp dir left');
  });
}
