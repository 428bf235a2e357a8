// bootLinux() on this host's /dev/kvm. On PVM a stock kernel cannot reach userspace (see host-facts), but it
// does start and print its early console through the 16550: enough to check the serial path with a real
// Linux, the timeout, an abort, and that nothing is left behind. On hardware virtualization the same boot
// panics (no root filesystem). The same check runs inside the emulated host: test/e2e/linux-boot-inside.test.ts;
// full boots (power-off, reset, panic) there: test/e2e/ts-boot.test.ts.
import * as v8 from 'node:v8';
import * as vmModule from 'node:vm';
import t from 'tap';
import { probeHost } from '../../src/host';
import { bootLinux, openHypervisor } from '../../src/kvm';
import { testKernel } from '../support/emulated-host';
import { kvmSkipReason } from './fixtures/guests';
import { expectZoneKernelBoot, type ZoneKernelBootReport } from './fixtures/zone-kernel-boot-expect';

const skip = kvmSkipReason();

// The VM-related fds of this process (kvm-vm, kvm-vcpu, memfd), as the fixture counts them.
const { bootZoneKernel, vmFds } = require('./fixtures/zone-kernel-boot.js') as {
  bootZoneKernel(a: { kernel: string; timeoutMs: number }): Promise<ZoneKernelBootReport>;
  vmFds(): number;
};

function gc(): void {
  const g = (globalThis as { gc?: () => void }).gc;
  if (g) return g();
  v8.setFlagsFromString('--expose-gc');
  (vmModule.runInNewContext('gc') as () => void)();
}

t.test('bootLinux: the zone kernel without an initrd ends as this host\'s /dev/kvm mode implies; an abort destroys the VM', { skip }, async (t) => {
  const zone = await testKernel('zone');
  // PVM never finishes (8 s shows the banner and the timeout); elsewhere the panic comes in a few seconds.
  const mode = probeHost().kvm.mode;
  expectZoneKernelBoot(t, await bootZoneKernel({ kernel: zone.vmlinux, timeoutMs: mode === 'pvm' ? 8000 : 60_000 }));
});

t.test('a VM with a serial console, i8042 and debug-exit is still collected when dropped (not running)', { skip }, async (t) => {
  const kvm = openHypervisor();
  gc();
  const before = vmFds();
  (() => {
    for (let i = 0; i < 10; i++) {
      const vm = kvm.createVm({ memoryMiB: 2, vcpus: 1 });
      const con = vm.addSerialConsole({ onOutput: () => void con.recentOutput() });
      con.on('data', () => undefined);
      vm.addI8042();
      vm.addDebugExit(0x501);
    }
  })();
  t.equal(vmFds(), before + 10 * 3, 'the VMs exist');
  for (let i = 0; i < 10 && vmFds() > before; i++) {
    gc();
    await new Promise((r) => setTimeout(r, 20));
  }
  t.equal(vmFds(), before, 'all collected: the devices do not keep their VM alive');
});
