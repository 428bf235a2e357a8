// When a zone dies from inside — its kernel panics, or its agent (PID 1) is killed or hung by a
// hostile workload — it is 'failed' with the reason, and every call pending on it ends at once with a
// typed error. Through Zone.create as a user would (the emulated host on this machine).
import t, { type Test } from 'tap';
import { Zone, ZoneClosedError } from '../../src';
import { DEFAULT_LIVENESS } from '../../src/zone/agent';
import { emulatedHost, testKernel } from '../support/emulated-host';

t.setTimeout(30 * 60_000);

t.test('zones that die from inside', async (t) => {
  const host = await emulatedHost(t); // the run's shared host: zones use the same one
  if (!host) return;
  await testKernel('zone');

  const dieAndCheck = async (t: Test, how: string, kill: string[], reason: RegExp, tail?: RegExp, withinMs = 60_000) => {
    const zone = await Zone.create({ image: 'busybox', memoryMiB: 96 });
    t.teardown(() => zone.destroy());
    await zone.files.write('/tmp/big', Buffer.alloc(4 * 1024 * 1024, 7));
    const longExec = zone.exec(['sleep', '600']);
    const stream = zone.spawn(['sh', '-c', 'while true; do echo tick; sleep 1; done']);
    stream.stdout.resume();
    const pending = Promise.allSettled([longExec, stream.wait()]); // observed from the start
    const failed = new Promise<void>((resolve) => zone.on('state', (s: string) => s === 'failed' && resolve()));
    await new Promise((r) => setTimeout(r, 1000));
    const started = Date.now();
    void zone.exec(kill).catch(() => undefined); // its own end takes it down
    await failed;
    t.equal(zone.state, 'failed', `${how}: the zone is failed`);
    t.match(zone.exit?.failure, reason, `${how}: with the reason (${zone.exit?.failure})`);
    if (tail) t.match(zone.exit?.consoleTail, tail, `${how}: the console tail says what happened`);
    const settled = [...(await pending), ...(await Promise.allSettled([zone.files.read('/tmp/big'), zone.exec(['true'])]))];
    t.ok(Date.now() - started < withinMs, `${how}: everything settled within ${Date.now() - started} ms of the kill`);
    for (const [i, s] of settled.entries()) {
      t.equal(s.status, 'rejected', `${how}: call ${i} rejected`);
      if (s.status === 'rejected') t.ok(s.reason instanceof ZoneClosedError || typeof (s.reason as { code?: string }).code === 'string', `${how}: call ${i} with a typed error (${(s.reason as Error).message})`);
    }
  };

  t.test('a guest kernel panic', async (t) => {
    await dieAndCheck(t, 'panic', ['sh', '-c', 'echo c > /proc/sysrq-trigger'], /panic/i, /sysrq triggered crash|Kernel panic/);
  });

  t.test('a triple fault ends that zone only', async (t) => {
    // A zone beside it must keep running: one zone's crash never takes its neighbours (or the
    // server that runs them) down with it.
    const neighbour = await Zone.create({ image: 'busybox', memoryMiB: 64 });
    t.teardown(() => neighbour.destroy());
    // reboot=k is on the command line; the guest's root switches its reboot method to a triple
    // fault (an empty IDT, then int3) and asks for an emergency restart.
    await dieAndCheck(t, 'triple fault', ['sh', '-c', 'echo triple > /sys/kernel/reboot/type && echo b > /proc/sysrq-trigger'], /crash/i);
    t.equal(neighbour.state, 'running', 'the neighbour zone is still running');
    const r = await neighbour.exec(['echo', 'still here']);
    t.equal(r.stdout, 'still here\n', 'and still answers');
  });

  t.test('a killed agent (PID 1 overwritten by a root workload)', async (t) => {
    // The workload scribbles over the agent's code through /proc/1/mem; PID 1 dies, and with it the kernel.
    const script =
      "addr=$(grep -m1 ' r-xp ' /proc/1/maps | cut -d- -f1); " +
      'dd if=/dev/urandom of=/proc/1/mem bs=4096 count=4 seek=$((0x$addr / 4096)) conv=notrunc 2>/dev/null; sleep 5';
    await dieAndCheck(t, 'killed agent', ['sh', '-c', script], /panic|agent/i, /Attempted to kill init/);
  });

  t.test('a hung agent (PID 1 spinning in a loop a root workload wrote over its code)', async (t) => {
    // The agent's code becomes a NOP slide into `jmp .`: PID 1 runs on and the kernel stays up, but
    // nothing answers on the session. The zone's liveness watch fails it after its silence limit.
    const script =
      "range=$(grep -m1 ' r-xp ' /proc/1/maps | cut -d' ' -f1); start=${range%-*}; end=${range#*-}; " +
      "{ head -c $((0x$end - 0x$start - 2)) /dev/zero | tr '\\000' '\\220'; printf '\\353\\376'; } > /tmp/spin; " +
      'dd if=/tmp/spin of=/proc/1/mem bs=4096 seek=$((0x$start / 4096)) conv=notrunc 2>/dev/null; sleep 5';
    await dieAndCheck(t, 'hung agent', ['sh', '-c', script], /the agent stopped answering/, undefined, DEFAULT_LIVENESS.failAfterMs + 30_000);
  });
});
