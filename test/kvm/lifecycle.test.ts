// VM lifecycle on the real /dev/kvm: HLT, triple fault, stop() of a spinning guest (bounded), pause and
// resume, two vCPUs at once, destroy while running, and JavaScript handlers that never answer or throw.
import { spawnSync } from 'node:child_process';
import * as path from 'node:path';
import t from 'tap';
import { openHypervisor, type VmExit } from '../../src/kvm';
import {
  CODE,
  HALT_AFTER_DONE,
  HANDSHAKE_A,
  HANDSHAKE_B,
  kvmSkipReason,
  onDone,
  READ_PORT_30,
  setupLongMode,
  SPIN_AFTER_DONE,
  TRIPLE_FAULT,
  within,
} from './fixtures/guests';

const skip = kvmSkipReason();
const kvm = skip ? undefined : openHypervisor();

t.test('HLT without irqchip ends the vCPU with an "hlt" exit and stops the VM', { skip }, async (t) => {
  await using vm = kvm!.createVm({ memoryMiB: 4, vcpus: 1, irqchip: false });
  setupLongMode(vm, HALT_AFTER_DONE, { cpl: 0 });
  onDone(vm);
  const states: string[] = [];
  vm.on('stateChange', (s) => states.push(s));
  vm.start();
  t.equal(await vm.waitForStop(5000), true);
  t.same(vm.exits.map((e) => e.reason), ['hlt']);
  t.equal(vm.exits[0]?.rip, BigInt(CODE + HALT_AFTER_DONE.length), 'rip is after the HLT');
  t.same(states, ['running', 'stopped']);
  t.equal(vm.state, 'stopped');
  t.throws(() => vm.start(), { code: 'INVALID_STATE' }, 'a stopped VM cannot start again');
});

t.test('a triple fault is reported as "shutdown" and stops the VM', { skip }, async (t) => {
  await using vm = kvm!.createVm({ memoryMiB: 4, vcpus: 1 });
  setupLongMode(vm, TRIPLE_FAULT, { cpl: 0 });
  onDone(vm);
  const exit = new Promise<VmExit>((resolve) => vm.once('exit', resolve));
  vm.start();
  t.equal(await vm.waitForStop(5000), true);
  const e = await exit;
  t.equal(e.reason, 'shutdown', e.message);
  t.match(e.message, /triple fault/);
  t.equal(vm.state, 'stopped');
});

for (const cpl of [0, 3] as const) {
  t.test(`a guest spinning forever at CPL${cpl} is stopped by stop() within 1 s`, { skip }, async (t) => {
    await using vm = kvm!.createVm({ memoryMiB: 4, vcpus: 1 });
    setupLongMode(vm, SPIN_AFTER_DONE, { cpl });
    const done = onDone(vm);
    vm.start();
    await within(done, 5000, 'guest started');
    await new Promise((r) => setTimeout(r, 50)); // let it spin
    t.equal(vm.state, 'running');
    const t0 = performance.now();
    await vm.stop();
    const ms = performance.now() - t0;
    t.comment(`stop() took ${ms.toFixed(1)} ms`);
    t.ok(ms < 1000, `stop() took ${ms.toFixed(1)} ms`);
    t.equal(vm.state, 'stopped');
    t.same(vm.exits.map((e) => e.reason), ['stopped']);
    await vm.stop(); // stopping a stopped VM is a no-op
  });
}

t.test('stop() and destroy() of a VM that never started', { skip }, async (t) => {
  const vm = kvm!.createVm({ memoryMiB: 2, vcpus: 2 });
  const stopped = new Promise<VmExit[]>((resolve) => vm.once('stopped', resolve));
  await vm.stop();
  t.equal(vm.state, 'stopped');
  t.same(await stopped, [], "'stopped' with no vCPU exits");
  t.throws(() => vm.start(), { code: 'INVALID_STATE' });
  await vm.destroy();
  t.equal(vm.state, 'destroyed');
});

t.test('pause parks the vCPUs (registers readable), resume continues, stop ends', { skip }, async (t) => {
  await using vm = kvm!.createVm({ memoryMiB: 4, vcpus: 1 });
  setupLongMode(vm, SPIN_AFTER_DONE, { cpl: 3 });
  const done = onDone(vm);
  vm.start();
  await within(done, 5000, 'guest started');
  t.throws(() => vm.vcpu(0).getRegisters(), { code: 'INVALID_STATE' }, 'no registers while running');
  await vm.pause();
  t.equal(vm.state, 'paused');
  const regs = vm.vcpu(0).getRegisters();
  t.equal(regs.general.rip, BigInt(CODE + 5), 'parked on the jmp $');
  t.equal(regs.segments.cs.dpl, 3);
  t.equal(regs.control.efer & 0x400n, 0x400n, 'long mode active');
  await t.rejects(vm.pause(), { code: 'INVALID_STATE' }, 'pause of a paused VM');
  await vm.resume();
  t.equal(vm.state, 'running');
  await t.rejects(vm.resume(), { code: 'INVALID_STATE' }, 'resume of a running VM');
  await vm.stop();
  t.equal(vm.state, 'stopped');
});

t.test('two vCPUs run at the same time, each with its own registers', { skip }, async (t) => {
  await using vm = kvm!.createVm({ memoryMiB: 4, vcpus: 2 });
  setupLongMode(vm, HANDSHAKE_A, { cpl: 3, vcpu: 0, at: 0x1000, rsp: 0x80000 });
  setupLongMode(vm, HANDSHAKE_B, { cpl: 3, vcpu: 1, at: 0x1800, rsp: 0x70000 });
  vm.vcpu(0).setRegisters({ general: { rbx: 0xaaaa0000 } });
  vm.vcpu(1).setRegisters({ general: { rbx: 0xbbbb0001 } });
  const reports = new Map<number, bigint>();
  vm.onPort(0x20, 4, (a) => void reports.set(a.vcpu, a.data));
  const done = onDone(vm, 2); // each vCPU can only get there while the other one runs
  vm.start();
  await within(done, 5000, 'both vCPUs done');
  t.same([...reports.entries()].sort(), [[0, 0xaaaa0000n], [1, 0xbbbb0001n]]);
  await vm.pause();
  const rip0 = vm.vcpu(0).getRegisters().general.rip;
  const rip1 = vm.vcpu(1).getRegisters().general.rip;
  t.equal(rip0, BigInt(0x1000 + HANDSHAKE_A.length - 2), 'vCPU 0 spins at the end of its code');
  t.equal(rip1, BigInt(0x1800 + HANDSHAKE_B.length - 2), 'vCPU 1 spins at the end of its code');
  await vm.stop();
  t.same(vm.exits.map((e) => [e.vcpu, e.reason]).sort(), [[0, 'stopped'], [1, 'stopped']]);
});

t.test('destroy while running stops the guest and releases the VM', { skip }, async (t) => {
  const vm = kvm!.createVm({ memoryMiB: 4, vcpus: 2 });
  setupLongMode(vm, SPIN_AFTER_DONE, { cpl: 3, vcpu: 0 });
  setupLongMode(vm, SPIN_AFTER_DONE, { cpl: 0, vcpu: 1 });
  const done = onDone(vm, 2);
  const stopped = new Promise<VmExit[]>((resolve) => vm.once('stopped', resolve));
  vm.start();
  await within(done, 5000, 'guest started');
  const t0 = performance.now();
  await vm.destroy();
  const ms = performance.now() - t0;
  t.ok(ms < 1000, `destroy() took ${ms.toFixed(1)} ms`);
  t.equal(vm.state, 'destroyed');
  const exits = await within(stopped, 2000, "'stopped' event after destroy");
  t.same(exits.map((e) => e.reason), ['stopped', 'stopped']);
  t.throws(() => vm.memory.read(0, 1), { code: 'VM_DESTROYED' });
});

t.test('a handler that never answers does not prevent stop; its late answer is harmless', { skip }, async (t) => {
  await using vm = kvm!.createVm({ memoryMiB: 4, vcpus: 1 });
  setupLongMode(vm, READ_PORT_30, { cpl: 3 });
  let answer: ((v: number) => void) | undefined;
  const asked = new Promise<void>((resolve) => {
    vm.onPort(0x30, 1, (a) => {
      if (a.isWrite) return;
      resolve();
      return new Promise<number>((r) => (answer = r)); // answered only after the stop
    });
  });
  onDone(vm);
  vm.start();
  await within(asked, 5000, 'handler called');
  const t0 = performance.now();
  await vm.stop();
  const ms = performance.now() - t0;
  t.ok(ms < 1000, `stop() with a pending handler took ${ms.toFixed(1)} ms`);
  t.same(vm.exits.map((e) => e.reason), ['stopped']);
  answer!(0x55); // a late completion after stop: dropped, no throw, no crash
  await new Promise((r) => setImmediate(r));
  t.equal(vm.state, 'stopped');
});

t.test('a handler that never answers does not prevent destroy', { skip }, async (t) => {
  const vm = kvm!.createVm({ memoryMiB: 4, vcpus: 1 });
  setupLongMode(vm, READ_PORT_30, { cpl: 0 });
  const asked = new Promise<void>((resolve) => {
    vm.onPort(0x30, 1, () => {
      resolve();
      return new Promise<number>(() => {}); // never
    });
  });
  onDone(vm);
  vm.start();
  await within(asked, 5000, 'handler called');
  await within(vm.destroy(), 1000, 'destroy with a pending handler');
  t.equal(vm.state, 'destroyed');
});

t.test('a handler that throws fails the access: the VM stops with an io-error exit', { skip }, async (t) => {
  await using vm = kvm!.createVm({ memoryMiB: 4, vcpus: 1 });
  setupLongMode(vm, READ_PORT_30, { cpl: 3 });
  const boom = new Error('boom');
  vm.onPort(0x30, 1, () => {
    throw boom;
  });
  const reported = new Promise<unknown>((resolve) => vm.once('handlerError', (info) => resolve(info.error)));
  onDone(vm);
  vm.start();
  t.equal(await vm.waitForStop(2000), true, 'the VM stopped by itself');
  t.equal(await reported, boom, "'handlerError' carries what the handler threw");
  const e = vm.exits[0]!;
  t.equal(e.reason, 'io-error', e.message);
  t.equal(e.handlerError, boom);
  t.equal(e.details[0], 0x30n, 'detail[0] is the port');
  await vm.stop();
});

t.test('a handler whose promise rejects fails the access the same way', { skip }, async (t) => {
  await using vm = kvm!.createVm({ memoryMiB: 4, vcpus: 1 });
  setupLongMode(vm, READ_PORT_30, { cpl: 0 });
  vm.onPort(0x30, 1, async () => {
    throw new Error('async boom');
  });
  onDone(vm);
  vm.start();
  t.equal(await vm.waitForStop(2000), true);
  t.equal(vm.exits[0]?.reason, 'io-error');
});

t.test('waitForStop(timeout) resolves false while the guest keeps running', { skip }, async (t) => {
  await using vm = kvm!.createVm({ memoryMiB: 4, vcpus: 1 });
  setupLongMode(vm, SPIN_AFTER_DONE, { cpl: 3 });
  vm.start();
  t.equal(await vm.waitForStop(100), false);
  const waiting = vm.waitForStop();
  await vm.stop();
  t.equal(await waiting, true);
});

t.test('the event loop is kept alive only while a VM runs', { skip }, async (t) => {
  // A child that starts a spinning guest and stops it (without destroy) must exit by itself; one that only
  // creates a VM must exit at once.
  const kvmEntry = path.join(__dirname, '..', '..', 'dist', 'cjs', 'kvm', 'index.js');
  const script = (stopAfterMs: number | null) => `
    const { openHypervisor } = require(${JSON.stringify(kvmEntry)});
    const vm = openHypervisor().createVm({ memoryMiB: 2, vcpus: 1 });
    vm.memory.write(0x1000, Buffer.from([0xeb, 0xfe])); // jmp $ (real mode)
    const seg = { base: 0, selector: 0 };
    vm.vcpu(0).setRegisters({ general: { rip: 0x1000, rflags: 2 }, segments: { cs: seg } });
    ${stopAfterMs === null ? '' : `vm.start(); setTimeout(() => vm.stop().then(() => console.log('stopped')), ${stopAfterMs});`}
  `;
  for (const [what, stopAfter] of [['never started', null], ['started, then stopped', 200]] as const) {
    const t0 = performance.now();
    const r = spawnSync(process.execPath, ['-e', script(stopAfter)], { encoding: 'utf8', timeout: 10000 });
    const ms = performance.now() - t0;
    t.equal(r.status, 0, `${what}: exit status (stderr: ${r.stderr})`);
    t.ok(ms < 5000, `${what}: the process exited by itself after ${ms.toFixed(0)} ms`);
    if (stopAfter !== null) t.match(r.stdout, /stopped/);
  }
  // And one whose guest runs forever, with nothing else pending, must stay alive: the running VM holds the loop.
  const r = spawnSync(process.execPath, ['-e', script(null) + 'vm.start();'], { encoding: 'utf8', timeout: 1500 });
  t.equal(r.signal, 'SIGTERM', `a running VM kept the process alive until the 1.5 s timeout (status ${r.status}, stderr: ${r.stderr})`);
});
