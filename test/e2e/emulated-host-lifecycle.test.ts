// The emulated host's own lifecycle, on hosts of this file's own (the shared one must not be
// killed): a QEMU that dies under a pending command, an aborted start, and the keeper that shares
// one host between processes, whose loss ends every client's pending command at once.
import t from 'tap';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { EmulatedHost, ensureKeeper, KEEPER_CONSOLE_LOG, liveKeeper, SharedEmulatedHost, stopKeeper } from '../../src/host/emulated';
import { isAlive } from '../../src/util/process';
import { emulatedHostMissing, testKernel } from '../support/emulated-host';
import { waitUntil } from './fixtures/helpers';

t.setTimeout(30 * 60_000);

const missing = emulatedHostMissing();
if (missing) t.pass(`skipped: ${missing}`, { skip: missing });
else {
  t.test('QEMU killed under a pending command: the command rejects at once, typed', async (t) => {
    const kernel = await testKernel('host');
    const host = await EmulatedHost.start({ kernel: kernel.vmlinux });
    t.teardown(() => host.stop());
    t.ok(host.diesWithParent, 'QEMU runs under pdeathsig');
    const pending = host.run(['sleep', '300']);
    const streaming = host.spawn(['sleep', '300']);
    await new Promise((r) => setTimeout(r, 500));
    process.kill(host.pid!, 'SIGKILL');
    const started = Date.now();
    await t.rejects(pending, { code: 'HOST_UNAVAILABLE', reason: 'exited' }, 'run() rejects with reason "exited"');
    await t.rejects(streaming.wait(), { code: 'HOST_UNAVAILABLE', reason: 'exited' }, 'spawn().wait() too');
    t.ok(Date.now() - started < 5000, `within ${Date.now() - started} ms`);
    t.equal(host.running, false);
    await t.rejects(host.run(['true']), { code: 'INVALID_STATE' }, 'run() afterwards fails clearly');
    t.notOk(existsSync(host.runDir), 'the run directory is removed');
  });

  t.test('an aborted start kills QEMU and leaves no run directory', async (t) => {
    const kernel = await testKernel('host');
    const before = runDirs();
    const ac = new AbortController();
    setTimeout(() => ac.abort(), 1000);
    await t.rejects(EmulatedHost.start({ kernel: kernel.vmlinux, signal: ac.signal }), { code: 'ABORTED' });
    t.same(runDirs().filter((d) => !before.includes(d)), [], 'no new run directory is left');
  });

  t.test('a keeper shares one host between clients; losing it ends their commands', async (t) => {
    const kernel = await testKernel('host');
    const dir = mkdtempSync(path.join(os.tmpdir(), 'bulkhead-keeper-test-'));
    t.teardown(async () => {
      await stopKeeper(dir);
      rmSync(dir, { recursive: true, force: true });
    });
    const [a, b] = await Promise.all([
      ensureKeeper({ dir, ownerPid: process.pid, host: { kernel: kernel.vmlinux } }),
      ensureKeeper({ dir, ownerPid: process.pid, host: { kernel: kernel.vmlinux } }),
    ]);
    t.equal(a.pid, b.pid, 'two concurrent starts get the same keeper');
    const one = await SharedEmulatedHost.connect(dir);
    const two = await SharedEmulatedHost.connect(dir);
    const bootIds = await Promise.all([one, two].map((h) => h.run(['cat', '/proc/sys/kernel/random/boot_id'])));
    t.equal(bootIds[0]!.stdout, bootIds[1]!.stdout, 'both clients reach the same boot');
    t.equal((await one.run(['sh', '-c', 'echo $((6*7))'])).stdout, '42\n');
    // An error-level kernel message (what an OOM kill prints) lands in the keeper's console.log.
    await one.run(['sh', '-c', 'echo "<3>keeper-console-check $$" > /dev/kmsg']);
    const consoleLog = path.join(dir, KEEPER_CONSOLE_LOG);
    t.ok(await waitUntil(() => existsSync(consoleLog) && readFileSync(consoleLog, 'utf8').includes('keeper-console-check'), 5000), 'the host kernel\'s messages are kept in console.log');

    const pending = two.run(['sleep', '300']);
    await new Promise((r) => setTimeout(r, 300));
    process.kill(a.pid, 'SIGKILL');
    await t.rejects(pending, { code: 'HOST_UNAVAILABLE', reason: 'channel-lost' }, 'a pending command rejects when the keeper dies');
    t.ok(await waitUntil(() => liveKeeper(dir) === undefined, 5000), 'the keeper is gone');
    t.ok(await waitUntil(() => !isAlive(a.qemuPid), 5000), "the keeper's QEMU died with it (pdeathsig)");
    await one.stop();
    await two.stop();
  });
}

function runDirs(): string[] {
  return readdirSync(os.tmpdir()).filter((n) => n.startsWith('bulkhead-host-'));
}
