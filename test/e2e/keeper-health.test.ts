// A keeper stops a host it can no longer trust (src/host/emulated/health.ts), on keepers of this
// file's own (the shared one must not be broken on purpose), so that its clients fail at once with
// the reason instead of hanging on it, and the next ensureKeeper boots a fresh host:
// - the host kernel reports a fault (here an oops line written to the kernel log: the path from the
//   console to the keeper's verdict is the real one; the fault itself is not);
// - the host stops answering (its agent is stopped with SIGSTOP, so a probe gets no answer);
// - a command told to SIGKILL is still running afterwards (the same stopped agent cannot carry the
//   kill out, which is what a task stuck in the kernel looks like from outside);
// and a host that ends by itself: a client retrying at once must reach a new keeper, not the one stopping.
import t, { type Test } from 'tap';
import { mkdtempSync, rmSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { ensureKeeper, liveKeeper, SharedEmulatedHost, stopKeeper, type KeeperOptions } from '../../src/host/emulated';
import { isAlive } from '../../src/util/process';
import { emulatedHostMissing, testKernel } from '../support/emulated-host';
import { waitUntil } from './fixtures/helpers';

t.setTimeout(10 * 60_000);

/** A keeper of its own in a temporary directory, and a client of it; both gone after `t`. */
async function keeper(t: Test, opts: Partial<KeeperOptions>) {
  const kernel = await testKernel('host');
  const dir = mkdtempSync(path.join(os.tmpdir(), 'bulkhead-keeper-health-'));
  t.teardown(async () => {
    await stopKeeper(dir);
    rmSync(dir, { recursive: true, force: true });
  });
  const info = await ensureKeeper({ dir, ownerPid: process.pid, host: { kernel: kernel.vmlinux }, ...opts });
  const client = await SharedEmulatedHost.connect(dir);
  t.teardown(() => client.stop());
  return { dir, info, client, kernel };
}

/** The agent is the parent of every command it runs: this stops it, and the command never ends. */
const STOP_THE_AGENT = ['sh', '-c', 'kill -STOP $PPID; sleep 600'];

const missing = emulatedHostMissing();
if (missing) t.pass(`skipped: ${missing}`, { skip: missing });
else {
  t.test('a fault reported by the host kernel stops the host; clients are told why; a new keeper boots a fresh one', async (t) => {
    const { dir, info, client, kernel } = await keeper(t, { livenessProbe: false });
    const bootId = (await client.run(['cat', '/proc/sys/kernel/random/boot_id'])).stdout;
    const pending = client.run(['sleep', '600']);
    const started = Date.now();
    await client.run(['sh', '-c', 'echo "<1>BUG: kernel NULL pointer dereference, address: 0000000000000018 (bulkhead keeper-health test)" > /dev/kmsg']);
    await t.rejects(
      pending,
      { code: 'HOST_UNAVAILABLE', reason: 'channel-lost', message: /its keeper stopped it \(its kernel reported a fault: .*BUG: kernel NULL pointer dereference/ },
      'the pending command rejects, quoting the fault',
    );
    t.ok(Date.now() - started < 30_000, `within ${Date.now() - started} ms of the report`);
    t.ok(await waitUntil(() => liveKeeper(dir) === undefined && !isAlive(info.pid), 10_000), 'the keeper exited');
    t.ok(await waitUntil(() => !isAlive(info.qemuPid), 10_000), 'its QEMU is gone');

    const next = await ensureKeeper({ dir, ownerPid: process.pid, host: { kernel: kernel.vmlinux }, livenessProbe: false });
    t.not(next.pid, info.pid, 'ensureKeeper starts a new keeper');
    const fresh = await SharedEmulatedHost.connect(dir);
    t.teardown(() => fresh.stop());
    t.not((await fresh.run(['cat', '/proc/sys/kernel/random/boot_id'])).stdout, bootId, 'on a fresh boot');
  });

  t.test('a host that ends under its keeper: clients hear why, and one that retries at once gets a fresh keeper', async (t) => {
    const { dir, info, client, kernel } = await keeper(t, { livenessProbe: false });
    const pending = client.run(['sleep', '600']);
    await new Promise((r) => setTimeout(r, 300));
    process.kill(info.qemuPid, 'SIGKILL'); // what an L1 kernel that resets itself looks like from here
    await t.rejects(pending, { code: 'HOST_UNAVAILABLE', message: /its keeper stopped it \(the emulated host ended\)/ }, 'the pending command rejects, with the reason');
    // At once, as test/support's retry does: the stopping keeper must not be found and reused.
    const next = await ensureKeeper({ dir, ownerPid: process.pid, host: { kernel: kernel.vmlinux }, livenessProbe: false });
    t.not(next.pid, info.pid, 'ensureKeeper right after the loss starts a new keeper');
    const fresh = await SharedEmulatedHost.connect(dir);
    t.teardown(() => fresh.stop());
    t.equal((await fresh.run(['true'])).exitCode, 0, 'which runs commands');
  });

  t.test('a host that stops answering is stopped after the probe misses', async (t) => {
    const { dir, info, client } = await keeper(t, { livenessProbe: { intervalMs: 1000, timeoutMs: 3000, misses: 2 } });
    t.equal((await client.run(['true'])).exitCode, 0, 'it answers at first');
    const started = Date.now();
    await t.rejects(
      client.run(STOP_THE_AGENT),
      { code: 'HOST_UNAVAILABLE', message: /its keeper stopped it \(the emulated host is unresponsive: it did not run `true` within 3 s, 2 probes running/ },
      'the stalled command rejects, with the verdict',
    );
    t.ok(Date.now() - started < 60_000, `within ${Date.now() - started} ms`);
    t.ok(await waitUntil(() => liveKeeper(dir) === undefined && !isAlive(info.qemuPid), 10_000), 'keeper and QEMU are gone');
  });

  t.test('a command still running after SIGKILL stops the host', async (t) => {
    const { dir, info, client } = await keeper(t, { livenessProbe: false, unkillableMs: 5000 });
    const victim = client.spawn(['sleep', '600']);
    const stalled = client.run(STOP_THE_AGENT);
    stalled.catch(() => undefined);
    await new Promise((r) => setTimeout(r, 1000)); // the agent has stopped by now
    victim.kill('SIGKILL');
    const started = Date.now();
    await t.rejects(
      victim.wait(),
      { code: 'HOST_UNAVAILABLE', message: /its keeper stopped it \(the emulated host is broken: `sleep 600` was still running 5 s after SIGKILL/ },
      'the command that would not die rejects, with the verdict',
    );
    t.ok(Date.now() - started < 30_000, `within ${Date.now() - started} ms of the kill`);
    await t.rejects(stalled, { code: 'HOST_UNAVAILABLE' }, 'so does every other pending command');
    t.ok(await waitUntil(() => liveKeeper(dir) === undefined && !isAlive(info.qemuPid), 10_000), 'keeper and QEMU are gone');
  });
}
