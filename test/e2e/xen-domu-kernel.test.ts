// The xen flavour of the zone kernel (kernel-configs/x86_64/xen.config) boots as a PV domU in the
// Xen test host: `xl create` of its vmlinux and a busybox initramfs; the init's line reaches the
// PV console (xenconsoled's log), and the domain ends with the reason (poweroff) that our
// domainDeath() reports. (xl builds the domain: our own builder is not written yet.)
import t from 'tap';
import { writeBusyboxInitramfs } from '../support/busybox-initramfs';
import { writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { testKernel } from '../support/emulated-host';
import { inDom0, xenHost } from '../support/xen-host';

t.setTimeout(30 * 60_000);

t.test('the xen zone kernel boots as a PV domU, prints on hvc0 and powers off', async (t) => {
  const kernel = await testKernel('xen');
  const host = await xenHost(t);
  if (!host) return;
  const dir = host.workdir(t);
  const initrd = writeBusyboxInitramfs(path.join(dir, 'initramfs.cpio'), 'echo "bulkhead-xen-domu-up $(/bin/busybox uname -r)"\n/bin/busybox poweroff -f\n');
  const name = `bulkhead-xenk-${process.pid}`;
  const cfg = path.join(dir, 'domu.cfg');
  writeFileSync(
    cfg,
    [`name = "${name}"`, 'type = "pv"', `kernel = "${kernel.vmlinux}"`, `ramdisk = "${initrd}"`, 'memory = 128', 'vcpus = 1',
      'on_poweroff = "preserve"', 'extra = "console=hvc0 rdinit=/init"', ''].join('\n'),
  );
  const created = await host.session.run(['xl', 'create', '-p', cfg]);
  t.equal(created.exitCode, 0, `xl create (${created.stderr.trim()})`);
  const domid = Number((await host.session.run(['xl', 'domid', name])).stdout.trim());
  t.teardown(() => host.session.run(['xl', 'destroy', String(domid)]));
  const started = Date.now();
  const end = await inDom0<{ reason: string }>(host, `const p = xen.domainDeath(${domid}); xen.unpauseDomain(${domid}); return await p;`);
  t.equal(end.reason, 'poweroff', `ended with poweroff after ${Date.now() - started} ms`);
  const log = await host.session.run(['cat', `/var/log/xen/guest-${name}.log`]);
  t.match(log.stdout, /bulkhead-xen-domu-up 6\.12\./, 'its init printed on the PV console');
});
