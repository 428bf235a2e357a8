// The leak pattern of leak.test.ts for the Linux pieces: 50 cycles of loadLinux (zone vmlinux, initrd,
// command line) with a serial console, i8042, debug-exit and a power-off watch on a VM that is started and
// stopped, plus a hand-made guest printing through the serial console to JavaScript, leak no fd, thread or
// mapping. (Devices are freed with their VM's native object: the GC at the end collects those.)
import * as fs from 'node:fs';
import t from 'tap';
import { countResources as counts, gc } from './fixtures/resources';
import { findKernel } from '../../src/kernel';
import { openHypervisor, type Kvm } from '../../src/kvm';
import { kvmSkipReason, setupRealMode, within } from './fixtures/guests';

const skip = kvmSkipReason();
const CYCLES = 50;

/** 'bulkhead\n' on COM1, then the debug-exit port. */
const PRINT = [
  0xba, 0xf8, 0x03, // mov dx,0x3f8
  0xbe, 0x00, 0x11, // mov si,0x1100
  0xb9, 0x09, 0x00, // mov cx,9
  0xac, //             1: lodsb
  0xee, //             out dx,al
  0xe2, 0xfc, //       loop 1b
  0xba, 0x01, 0x05, // mov dx,0x501
  0xee, //             out dx,al
  0xf4, //             hlt
];

async function cycle(kvm: Kvm, i: number, kernel: Buffer | undefined, initrd: Buffer): Promise<void> {
  if (kernel) {
    const vm = kvm.createVm({ memoryMiB: 64, vcpus: 1 + (i % 2), irqchip: true });
    try {
      const con = vm.addSerialConsole({ onOutput: () => undefined });
      vm.addI8042();
      vm.addDebugExit(0x501);
      vm.loadLinux({ kernel, initrd, cmdline: `console=ttyS0 cycle=${i}` });
      // This host's /dev/kvm cannot run the kernel far (see host-facts); start and stop it anyway, with a
      // power-off check in flight, so the running paths are part of the cycle.
      const watch = vm.watchPowerOff({ intervalMs: 10 });
      vm.start();
      await new Promise((r) => setTimeout(r, 15));
      await vm.stop();
      await watch.done;
      con.recentOutput();
    } finally {
      await vm.destroy();
    }
  }
  const vm = kvm.createVm({ memoryMiB: 2, vcpus: 1 });
  try {
    setupRealMode(vm, PRINT);
    vm.memory.write(0x1100, Buffer.from('bulkhead\n'));
    const chunks: Buffer[] = [];
    const con = vm.addSerialConsole({ onOutput: (b) => chunks.push(b), ringBytes: 1024 });
    vm.addDebugExit(0x501);
    vm.start();
    if (!(await within(vm.waitForStop(5000), 6000, `cycle ${i}`))) throw new Error(`cycle ${i}: the guest did not stop`);
    if (Buffer.concat(chunks).toString() !== 'bulkhead\n') throw new Error(`cycle ${i}: output ${JSON.stringify(Buffer.concat(chunks).toString())}`);
    if (con.recentText() !== 'bulkhead\n') throw new Error(`cycle ${i}: ring ${JSON.stringify(con.recentText())}`);
  } finally {
    await vm.destroy();
  }
}

t.test(`${CYCLES} loadLinux + serial cycles leak no fd, thread or mapping`, { skip }, async (t) => {
  const kvm = openHypervisor();
  const zone = await findKernel({ config: 'zone' }).catch(() => undefined);
  const kernel = zone ? fs.readFileSync(zone.vmlinux) : undefined;
  if (!kernel) t.comment('the zone kernel is not built: cycles run the serial guest only, without loadLinux');
  const initrd = Buffer.alloc(512 * 1024, 0x5a);
  for (let i = 0; i < 5; i++) await cycle(kvm, i, kernel, initrd); // warm up the thread pool, addon, V8
  await new Promise((r) => setTimeout(r, 50));
  gc();
  await new Promise((r) => setTimeout(r, 20));
  const before = counts();
  const t0 = performance.now();
  for (let i = 0; i < CYCLES; i++) await cycle(kvm, i, kernel, initrd);
  const ms = performance.now() - t0;
  await new Promise((r) => setTimeout(r, 50));
  gc();
  await new Promise((r) => setTimeout(r, 20));
  const after = counts();
  t.comment(`${CYCLES} cycles in ${ms.toFixed(0)} ms; before ${JSON.stringify(before)} after ${JSON.stringify(after)}`);
  t.equal(after.fds, before.fds, 'open fds');
  t.equal(after.vmFds, 0, 'no VM, vCPU or guest-memory fd left open');
  t.equal(after.threads, before.threads, 'threads');
  t.equal(after.guestMaps, 0, 'no guest memory (memfd) or kvm_run mapping left');
  t.ok(after.maps - before.maps < 20, `mappings did not grow: ${before.maps} -> ${after.maps}`);
  t.ok(process.memoryUsage().rss < 1024 * 1024 * 1024, `RSS stays bounded: ${(process.memoryUsage().rss / 2 ** 20).toFixed(0)} MiB`);
});
