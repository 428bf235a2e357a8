// test/kvm/linux-boot.test.ts's boot, run inside the emulated host: there /dev/kvm has hardware
// semantics, so the zone kernel without an initrd must panic (on this PVM host it times out).
import t from 'tap';
import * as path from 'node:path';
import { emulatedHost, testKernel } from '../support/emulated-host';
import { expectZoneKernelBoot, type ZoneKernelBootReport } from '../kvm/fixtures/zone-kernel-boot-expect';
import { retryEarlyBootDeath } from './fixtures/early-boot-death';

t.setTimeout(20 * 60_000);

const fixture = path.join(__dirname, '..', 'kvm', 'fixtures', 'zone-kernel-boot.js');

t.test('bootLinux of the zone kernel inside the emulated host: a panic, as on hardware virtualization', async (t) => {
  const host = await emulatedHost(t);
  if (!host) return;
  const zone = await testKernel('zone');
  const r = await retryEarlyBootDeath(
    t,
    'zone kernel without an initrd (bootLinux)',
    async () => {
      const run = await host.run([process.execPath, fixture, JSON.stringify({ kernel: zone.vmlinux, timeoutMs: 120_000 })], { timeoutMs: 600_000 });
      const line = run.stdout.trim().split('\n').pop() ?? '';
      try {
        return JSON.parse(line) as ZoneKernelBootReport & { error?: { message: string } };
      } catch {
        throw new Error(`the fixture printed no report (exit ${run.exitCode}): ${run.stderr.slice(-1500)}`);
      }
    },
    // A triple fault ('shutdown') before the kernel got as far as the panic is the nested-SVM early death.
    (r) => r.boot?.reason === 'shutdown' && !r.boot.panicked,
  );
  if (r.error) return void t.fail(`the boot script failed: ${r.error.message}`);
  expectZoneKernelBoot(t, r, 'hardware');
});
