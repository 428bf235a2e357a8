// The zone kernel boots under QEMU TCG (microvm, devices from the command line, PVH entry of the
// uncompressed vmlinux) to a busybox init. This checks the config, not our VMM: that is tested by
// its owners, and nested under KVM in test/e2e/nested-kvm.test.ts.
import t from 'tap';
import { spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { buildKernel } from '../../src/kernel';
import { staticBusybox } from '../../src/util/busybox';
import { writeCpio } from '../../src/util/cpio';
import { findQemu } from '../../src/host/emulated/qemu';

t.setTimeout(60 * 60_000);

/** A busybox initramfs whose init prints one marker line with the guest's uptime, then reboots. */
function markerInitramfs(): Buffer {
  const init = [
    '#!/bin/busybox sh',
    '/bin/busybox mkdir -p /proc /sys',
    '/bin/busybox mount -t proc proc /proc',
    '/bin/busybox mount -t sysfs sysfs /sys',
    'echo "ZONE_UP uptime=$(/bin/busybox cut -d" " -f1 /proc/uptime) cpus=$(/bin/busybox nproc) virtio=$(/bin/busybox ls /sys/bus/virtio/devices | /bin/busybox wc -l)"',
    '/bin/busybox reboot -f',
    '',
  ].join('\n');
  return writeCpio([
    { name: 'bin', type: 'dir', mode: 0o755 },
    { name: 'bin/busybox', type: 'file', mode: 0o755, data: staticBusybox() },
    { name: 'dev', type: 'dir', mode: 0o755 },
    { name: 'dev/console', type: 'chardev', mode: 0o600, rdev: [5, 1] },
    { name: 'init', type: 'file', mode: 0o755, data: init },
  ]);
}

t.test('zone kernel boots to userspace under QEMU TCG', async (t) => {
  const qemu = findQemu();
  if (!qemu) return void t.skip('qemu-system-x86_64 not installed', async () => undefined);
  // A kernel that does not build is a failure of ours: buildKernel throws and the test fails with the reason.
  const vmlinux = (await buildKernel({ config: 'zone' })).vmlinux;
  const initrd = path.join(t.testdir(), 'init.cpio');
  writeFileSync(initrd, markerInitramfs());
  const started = Date.now();
  const r = spawnSync(
    qemu,
    [
      '-accel', 'tcg', '-M', 'microvm,acpi=off', '-m', '256', '-smp', '2', '-nodefaults', '-no-user-config',
      '-display', 'none', '-no-reboot', '-serial', 'stdio', '-kernel', vmlinux, '-initrd', initrd,
      // microvm puts virtio_mmio.device= entries on the command line itself (acpi=off).
      '-device', 'virtio-rng-device', '-device', 'virtio-serial-device',
      '-append', 'console=ttyS0 reboot=t panic=-1 quiet',
    ],
    { encoding: 'utf8', timeout: 60_000 },
  );
  const ms = Date.now() - started;
  const m = /ZONE_UP uptime=(\S+) cpus=(\d+) virtio=(\d+)/.exec(r.stdout);
  t.ok(m, 'the init ran', { stdout: r.stdout.slice(-2000), stderr: r.stderr });
  if (!m) return;
  t.equal(m[2], '2', 'both vCPUs came up (SMP via MP table, no ACPI)');
  t.equal(m[3], '2', 'both virtio-mmio devices were found from the command line');
  t.comment(`zone kernel under TCG: userspace at guest uptime ${m[1]} s, QEMU start to exit ${ms} ms`);
  t.equal(r.status, 0, 'QEMU exited cleanly after reboot -f');
});
