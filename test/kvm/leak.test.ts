// 200 create/run/destroy cycles leak no file descriptor, thread or memory mapping.
import t from 'tap';
import { countResources as counts, gc } from './fixtures/resources';
import { openHypervisor, type Kvm } from '../../src/kvm';
import { HALT_AFTER_DONE, kvmSkipReason, onDone, setupLongMode, within } from './fixtures/guests';

const skip = kvmSkipReason();
const CYCLES = 200;

async function cycle(kvm: Kvm, i: number): Promise<void> {
  const vm = kvm.createVm({ memoryMiB: 2 + (i % 3), vcpus: 1 + (i % 2) });
  try {
    setupLongMode(vm, HALT_AFTER_DONE, { cpl: 0, vcpu: 0 });
    if (vm.vcpuCount > 1) setupLongMode(vm, HALT_AFTER_DONE, { cpl: 0, vcpu: 1, at: 0x1800, rsp: 0x70000 });
    const done = onDone(vm, vm.vcpuCount);
    vm.ioeventfd({ addr: 0x60, length: 1, space: 'pio' });
    vm.start();
    await within(done, 5000, `cycle ${i}: guest done`);
    if (!(await vm.waitForStop(5000))) throw new Error(`cycle ${i}: the guest did not halt`);
    if (vm.exits.some((e) => e.reason !== 'hlt')) throw new Error(`cycle ${i}: ${vm.exits.map((e) => e.message)}`);
  } finally {
    await vm.destroy();
  }
}

t.test(`${CYCLES} create/run/destroy cycles leak no fd, thread or mapping`, { skip }, async (t) => {
  const kvm = openHypervisor();
  // The counters do see a live VM (so the zeros below mean something).
  const live = kvm.createVm({ memoryMiB: 2, vcpus: 2 });
  const during = counts();
  t.ok(during.vmFds >= 4, `a live 2-vCPU VM shows its fds (vm, 2 vcpus, memfd): ${during.vmFds}`);
  t.ok(during.guestMaps >= 3, `and its mappings (guest RAM, 2 kvm_run): ${during.guestMaps}`);
  await live.destroy();
  // Warm up: the thread pool, the addon and V8's own mappings settle in the first cycles.
  for (let i = 0; i < 10; i++) await cycle(kvm, i);
  await new Promise((r) => setTimeout(r, 50));
  gc();
  const before = counts();
  const t0 = performance.now();
  for (let i = 0; i < CYCLES; i++) await cycle(kvm, i);
  const ms = performance.now() - t0;
  await new Promise((r) => setTimeout(r, 50));
  gc();
  await new Promise((r) => setImmediate(r));
  const after = counts();
  t.comment(`${CYCLES} cycles in ${ms.toFixed(0)} ms (${(ms / CYCLES).toFixed(2)} ms each); before ${JSON.stringify(before)} after ${JSON.stringify(after)}`);
  t.equal(after.fds, before.fds, 'open fds');
  t.equal(after.vmFds, 0, 'no VM, vCPU or guest-memory fd left open');
  t.equal(after.eventfds, before.eventfds, 'no irqfd/ioeventfd left open');
  t.equal(after.threads, before.threads, 'threads');
  t.equal(after.guestMaps, 0, 'no guest memory (memfd) or kvm_run mapping left');
  // V8 maps and unmaps heap pages of its own (the count may well drop after a GC); a leak of one
  // mapping per VM would grow it by >= CYCLES, so only growth beyond V8's noise counts.
  t.ok(after.maps - before.maps < 20, `mappings did not grow: ${before.maps} -> ${after.maps}`);
});

t.test('VMs dropped without destroy() are released once garbage-collected; running ones are not collected', { skip }, async (t) => {
  const kvm = openHypervisor();
  gc();
  const before = counts();
  // One started VM is held only by the library while it runs: it must keep running and stay reachable.
  let runningStopped = false;
  (() => {
    const vm = kvm.createVm({ memoryMiB: 2, vcpus: 1 });
    vm.memory.write(0x1000, Buffer.from([0xeb, 0xfe])); // jmp $ (real mode)
    vm.vcpu(0).setRegisters({ general: { rip: 0x1000 }, segments: { cs: { base: 0, selector: 0 } } });
    vm.on('stopped', () => (runningStopped = true));
    vm.start();
    (globalThis as { __bulkheadRunningVm?: WeakRef<object> }).__bulkheadRunningVm = new WeakRef(vm);
  })();
  (() => {
    for (let i = 0; i < 20; i++) {
      const vm = kvm.createVm({ memoryMiB: 2, vcpus: 1 });
      vm.memory.write(0, Buffer.from([1]));
    }
  })();
  t.ok(counts().vmFds >= 21 * 3, 'the VMs exist');
  for (let i = 0; i < 5 && counts().vmFds > 3; i++) {
    gc();
    await new Promise((r) => setTimeout(r, 20)); // finalizers run after the collection
  }
  const after = counts();
  t.equal(after.vmFds, 3, 'only the running VM still has its fds (vm, vcpu, memfd)');
  const running = (globalThis as { __bulkheadRunningVm?: WeakRef<{ state: string; destroy(): Promise<void> }> }).__bulkheadRunningVm?.deref();
  t.ok(running, 'the running VM was not collected');
  t.equal(running?.state, 'running');
  t.equal(runningStopped, false);
  await running?.destroy();
  t.equal(counts().vmFds, before.vmFds, 'and destroy() releases it');
});
