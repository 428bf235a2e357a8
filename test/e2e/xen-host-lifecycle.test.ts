// The Xen test host's own lifecycle, on a host of this file's own (the run's shared one must not be
// stopped): stop() powers it off, QEMU is gone and its run directory removed; QEMU is tied to its
// parent (pdeathsig); bad options are typed errors before anything boots.
import t from 'tap';
import { existsSync } from 'node:fs';
import { startXenHost } from '../../src/host/xen';
import { isAlive } from '../../src/util/process';
import { emulatedHostMissing } from '../support/emulated-host';

t.setTimeout(15 * 60_000);

t.test('bad options are rejected before booting', async (t) => {
  await t.rejects(startXenHost({ memoryMiB: 1024, dom0MemoryMiB: 1024 }), { code: 'INVALID_CONFIG', message: /dom0MemoryMiB/ });
  await t.rejects(startXenHost({ dom0Append: 'a=1,2' }), { code: 'INVALID_CONFIG', message: /without commas/ });
});

const missing = emulatedHostMissing();
if (missing) t.pass(`skipped: ${missing}`, { skip: missing });
else {
  t.test('started, stopped, cleaned up', async (t) => {
    const started = Date.now();
    const host = await startXenHost();
    t.teardown(() => host.stop());
    t.comment(`Xen test host: QEMU start to agent ${host.bootMs} ms (start() ${Date.now() - started} ms)`);
    t.ok(host.diesWithParent, 'QEMU runs under pdeathsig');
    t.ok(host.pid && isAlive(host.pid), 'QEMU runs');
    t.match((await host.run(['cat', '/sys/hypervisor/type'])).stdout, /^xen/, 'the agent runs in a Xen domain');
    const stopping = Date.now();
    await host.stop();
    t.comment(`stop() took ${Date.now() - stopping} ms`);
    t.equal(host.running, false);
    t.notOk(isAlive(host.pid!), 'QEMU is gone');
    t.notOk(existsSync(host.runDir), 'the run directory is removed');
    await t.rejects(host.run(['true']), { code: 'INVALID_STATE' }, 'run() afterwards fails clearly');
  });
}
