// The point of the emulated host: its /dev/kvm behaves like hardware virtualization. QEMU with
// -accel kvm inside it boots our zone kernel (the nested guest sees KVM, not TCG).
import t from 'tap';
import { writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { writeCpio } from '../../src/util/cpio';
import { staticBusybox } from '../../src/util/busybox';
import { emulatedHost, testKernel } from '../support/emulated-host';
import { retryEarlyBootDeath } from './fixtures/early-boot-death';

t.setTimeout(60 * 60_000);

t.test('a zone kernel boots under KVM inside the emulated host', async (t) => {
  const host = await emulatedHost(t);
  if (!host) return;
  const zoneKernel = { value: await testKernel('zone') };
  const initrd = path.join(host.workdir(t), 'init.cpio');
  const init = '#!/bin/busybox sh\n/bin/busybox mkdir -p /proc\n/bin/busybox mount -t proc proc /proc\n' +
    'echo "NESTED_UP hypervisor=$(/bin/busybox grep -c hypervisor /proc/cpuinfo) uptime=$(/bin/busybox cut -d" " -f1 /proc/uptime)"\n' +
    '/bin/busybox reboot -f\n';
  writeFileSync(initrd, writeCpio([
    { name: 'bin', type: 'dir', mode: 0o755 },
    { name: 'bin/busybox', type: 'file', mode: 0o755, data: staticBusybox() },
    { name: 'dev', type: 'dir', mode: 0o755 },
    { name: 'dev/console', type: 'chardev', mode: 0o600, rdev: [5, 1] },
    { name: 'init', type: 'file', mode: 0o755, data: init },
  ]));

  for (let i = 1; i <= 2; i++) {
    const r = await retryEarlyBootDeath(
      t,
      `nested boot ${i}`,
      () =>
        host.run([
          'qemu-system-x86_64', '-accel', 'kvm', '-cpu', 'host', '-M', 'microvm,acpi=off', '-m', '256', '-smp', '1',
          '-nodefaults', '-no-user-config', '-display', 'none', '-no-reboot', '-serial', 'stdio',
          '-kernel', zoneKernel.value.vmlinux, '-initrd', initrd, '-append', 'console=ttyS0 reboot=t panic=-1 quiet',
        ], { timeoutMs: 90_000 }),
      // With -no-reboot a triple fault ends QEMU quietly with status 0: no marker, no panic.
      (r) => r.exitCode === 0 && !/NESTED_UP/.test(r.stdout) && !/Kernel panic/.test(r.stdout),
    );
    t.equal(r.exitCode, 0, `boot ${i}: QEMU exited cleanly`, { stderr: r.stderr, stdout: r.stdout.slice(-1500) });
    t.match(r.stdout, /NESTED_UP hypervisor=[1-9]/, `boot ${i}: the zone's init ran under KVM`);
    t.comment(`nested boot ${i}: ${r.durationMs} ms (${/uptime=(\S+)/.exec(r.stdout)?.[1] ?? '?'} s guest uptime at init)`);
  }
  const dmesg = await host.run(['dmesg']);
  t.notMatch(dmesg.stdout, /kvm.*(BUG|Oops|general protection)/i, 'no KVM errors in the emulated host');
  t.notMatch(dmesg.stdout, /user requested TSC rate/, 'KVM and the nested QEMU agree on the TSC rate');
});
