// bootLinux() on this host's PVM /dev/kvm. A stock kernel cannot reach userspace here (see host-facts), but
// it does start and print its early console through the 16550, which is enough to check the serial path with
// a real Linux, the timeout ending, and that nothing is left behind. Full boots (power-off, reset, panic)
// run inside the emulated host: test/e2e/ts-boot.test.ts.
import * as fs from 'node:fs';
import * as v8 from 'node:v8';
import * as vmModule from 'node:vm';
import t from 'tap';
import { findKernel } from '../../src/kernel';
import { bootLinux, openHypervisor } from '../../src/kvm';
import { kvmSkipReason } from './fixtures/guests';

const skip = kvmSkipReason();

function vmFds(): number {
  return fs.readdirSync('/proc/self/fd').filter((fd) => {
    try {
      return /kvm-vm|kvm-vcpu|memfd:/.test(fs.readlinkSync(`/proc/self/fd/${fd}`));
    } catch {
      return false;
    }
  }).length;
}

function gc(): void {
  const g = (globalThis as { gc?: () => void }).gc;
  if (g) return g();
  v8.setFlagsFromString('--expose-gc');
  (vmModule.runInNewContext('gc') as () => void)();
}

t.test('bootLinux: the zone kernel starts and prints through the serial console; timeoutMs ends it', { skip }, async (t) => {
  const zone = await findKernel({ config: 'zone' }).catch(() => undefined);
  if (!zone) return void t.skip('the zone kernel is not built (bulkhead kernel build --config zone)', async () => undefined);
  const before = vmFds();
  let seen = '';
  const r = await bootLinux({
    kernel: zone.vmlinux,
    cmdline: 'console=ttyS0 earlyprintk=ttyS0 reboot=k panic=-1',
    memoryMiB: 128,
    timeoutMs: 8000,
    onConsole: (b) => (seen += b.toString('latin1')),
  });
  t.equal(r.reason, 'timeout', `reason 'timeout' (${r.detail})`);
  t.match(seen, /Linux version 6\./, 'the kernel banner arrived through onConsole');
  t.ok(r.consoleTail.length > 0 && seen.trimEnd().endsWith(r.consoleTail.trimEnd().slice(-200)), 'consoleTail is the end of what onConsole saw');
  t.ok(r.consoleTail.split('\n').length <= 20, 'at most 20 lines');
  t.equal(r.bootInfo.format, 'vmlinux');
  t.equal(r.panicked, false);
  t.ok(r.exits.length > 0 && r.exits.every((e) => e.reason === 'stopped'), 'stopped by the timeout, not by a false power-off');
  t.equal(vmFds(), before, 'the VM is destroyed when bootLinux settles');
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
