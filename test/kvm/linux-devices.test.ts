// The legacy devices from TypeScript, with hand-made real-mode guests on this host's /dev/kvm: the 16550
// (output to JS in order and complete before 'stopped', input from JS, the recent-output ring), the debug-exit
// port, the i8042 reset line, power-off detection (every vCPU halted with interrupts off) and how
// classifyEnd() names each ending.
import { readdirSync, readlinkSync } from 'node:fs';
import t from 'tap';
import { bootLinux, classifyEnd, openHypervisor } from '../../src/kvm';
import { kvmSkipReason, setupLongMode, setupRealMode, TRIPLE_FAULT, within } from './fixtures/guests';

const skip = kvmSkipReason();
const MSG_AT = 0x1100;
const DEBUG_EXIT = 0x501;

/** Writes `len` bytes from MSG_AT to COM1, waits for a received byte, writes it to DEBUG_EXIT. */
function echoGuest(len: number): number[] {
  return [
    0xba, 0xf8, 0x03, //       mov dx,0x3f8
    0xbe, 0x00, 0x11, //       mov si,0x1100
    0xb9, len & 0xff, len >> 8, // mov cx,len
    0xac, //                   1: lodsb
    0xee, //                   out dx,al
    0xe2, 0xfc, //             loop 1b
    0xba, 0xfd, 0x03, //       mov dx,0x3fd   ; LSR
    0xec, //                   2: in al,dx
    0xa8, 0x01, //             test al,1      ; data ready?
    0x74, 0xfb, //             jz 2b
    0xba, 0xf8, 0x03, //       mov dx,0x3f8
    0xec, //                   in al,dx       ; the byte from the host
    0xba, 0x01, 0x05, //       mov dx,0x501
    0xee, //                   out dx,al      ; debug exit with it
    0xf4, //                   hlt
  ];
}

/** 10000 bytes (cx & 0xff for cx = 10000 .. 1) to COM1, then the debug-exit port at once. */
const FLOOD = [
  0xba, 0xf8, 0x03, // mov dx,0x3f8
  0xb9, 0x10, 0x27, // mov cx,10000
  0x88, 0xc8, //       1: mov al,cl
  0xee, //             out dx,al
  0xe2, 0xfb, //       loop 1b
  0xba, 0x01, 0x05, // mov dx,0x501
  0xee, //             out dx,al
  0xf4, //             hlt
];

t.test('serial: guest output reaches onOutput, data events, the iterator and recentOutput; input reaches the guest', { skip }, async (t) => {
  const kvm = openHypervisor();
  const vm = kvm.createVm({ memoryMiB: 2, vcpus: 1 });
  const msg = 'hello from the guest\n';
  setupRealMode(vm, echoGuest(msg.length));
  vm.memory.write(MSG_AT, Buffer.from(msg));
  const seen: Buffer[] = [];
  let gotLine!: () => void;
  const lineArrived = new Promise<void>((r) => (gotLine = r));
  const con = vm.addSerialConsole({
    onOutput: (b) => {
      seen.push(b);
      if (Buffer.concat(seen).includes('\n')) gotLine();
    },
  });
  const events: Buffer[] = [];
  con.on('data', (b) => events.push(b));
  const iterated = (async () => {
    const chunks: Buffer[] = [];
    for await (const c of con) chunks.push(c);
    return Buffer.concat(chunks).toString();
  })();
  const dbg = vm.addDebugExit(DEBUG_EXIT);
  t.equal(dbg.value, undefined, 'no debug-exit value yet');
  vm.start();
  await within(lineArrived, 10_000, 'the guest line');
  t.equal(Buffer.concat(seen).toString(), msg, 'onOutput got exactly the bytes the guest wrote');
  t.equal(con.recentText(), msg, 'recentOutput() holds them');
  t.equal(con.recentOutput(5).toString(), 'uest\n', 'recentOutput(n) is the last n bytes');
  t.equal(con.write('Z'), 1, 'one byte queued for the guest');
  t.equal(await vm.waitForStop(10_000), true, 'the guest read it and hit the debug-exit port');
  t.equal(dbg.value, 0x5a, "debug-exit got the byte the host sent ('Z')");
  t.same(classifyEnd(vm.exits), { reason: 'debug-exit', detail: vm.exits[0]?.message }, `ended: ${vm.exits[0]?.message}`);
  t.equal(Buffer.concat(events).toString(), msg, "'data' events carry the same bytes");
  t.equal(await within(iterated, 5000, 'iterator end'), msg, 'the async iterator yields them and ends with the VM');
  t.equal(con.ended, true);
  await vm.destroy();
  t.equal(con.recentText(), msg, 'recentOutput() still works after destroy');
  t.throws(() => con.write('x'), { code: 'VM_DESTROYED' }, 'write after destroy is a typed error');
});

t.test('serial: 10000 bytes arrive complete and in order before the VM reports stopped', { skip }, async (t) => {
  const kvm = openHypervisor();
  await using vm = kvm.createVm({ memoryMiB: 2, vcpus: 1 });
  setupRealMode(vm, FLOOD);
  const chunks: Buffer[] = [];
  let atStopped = -1;
  const con = vm.addSerialConsole({ onOutput: (b) => chunks.push(b), ringBytes: 4096 });
  vm.addDebugExit(DEBUG_EXIT);
  vm.on('stopped', () => (atStopped = Buffer.concat(chunks).length));
  vm.start();
  t.equal(await vm.waitForStop(30_000), true, 'the guest ends');
  const all = Buffer.concat(chunks);
  const expected = Buffer.alloc(10_000);
  for (let i = 0; i < 10_000; i++) expected[i] = (10_000 - i) & 0xff;
  t.equal(atStopped, 10_000, "every byte was delivered before 'stopped'");
  t.ok(all.equals(expected), 'in order, none lost or repeated');
  t.comment(`${chunks.length} batches for 10000 bytes`);
  t.ok(con.recentOutput().equals(expected.subarray(-4096)), 'the ring keeps the last ringBytes');
  t.equal(con.droppedBytes, 0);
});

t.test('i8042: the reset command stops the VM, classified as reset', { skip }, async (t) => {
  const kvm = openHypervisor();
  await using vm = kvm.createVm({ memoryMiB: 2, vcpus: 1 });
  setupRealMode(vm, [0xb0, 0xfe, 0xe6, 0x64, 0xf4]); // mov al,0xfe; out 0x64,al; hlt
  const kbc = vm.addI8042();
  vm.start();
  t.equal(await vm.waitForStop(10_000), true);
  t.equal(kbc.resets, 1, 'one reset requested');
  t.equal(classifyEnd(vm.exits).reason, 'reset', vm.exits[0]?.message ?? '');
});

t.test('power-off: every vCPU halted with interrupts off is detected and stops the VM; IF=1 halts are not', { skip }, async (t) => {
  const kvm = openHypervisor();
  {
    await using vm = kvm.createVm({ memoryMiB: 2, vcpus: 2, irqchip: true });
    setupRealMode(vm, [0xfa, 0xf4, 0xeb, 0xfc]); // cli; hlt; jmp back (AP 1 is never started: counts as halted)
    const states: string[] = [];
    vm.on('stateChange', (s) => states.push(s));
    vm.start();
    const watch = vm.watchPowerOff({ intervalMs: 50 });
    t.equal(await within(watch.done, 20_000, 'power-off detection'), true, 'detected');
    t.equal(vm.state, 'stopped', 'and the VM was stopped');
    const end = classifyEnd(vm.exits);
    t.equal(end.reason, 'power-off', end.detail);
    t.match(vm.exits[0]?.message, /power-off/, 'the exits say power-off');
  }
  {
    await using vm = kvm.createVm({ memoryMiB: 2, vcpus: 1, irqchip: true });
    setupRealMode(vm, [0xfb, 0xf4, 0xeb, 0xfc]); // sti; hlt; jmp back: waits for an interrupt, not powered off
    vm.start();
    const watch = vm.watchPowerOff({ intervalMs: 50 });
    await new Promise((r) => setTimeout(r, 600));
    t.equal(vm.state === 'running' || vm.state === 'paused', true, `still running after several checks (${vm.state})`);
    await vm.stop();
    t.equal(await watch.done, false, 'the watch ends without a detection when the VM is stopped');
    t.equal(classifyEnd(vm.exits).reason, 'stopped');
  }
});

t.test('a triple fault is classified as shutdown', { skip }, async (t) => {
  const kvm = openHypervisor();
  await using vm = kvm.createVm({ memoryMiB: 4, vcpus: 1 });
  setupLongMode(vm, TRIPLE_FAULT);
  vm.start();
  t.equal(await vm.waitForStop(10_000), true);
  t.equal(classifyEnd(vm.exits).reason, 'shutdown', vm.exits[0]?.message ?? '');
});

t.test('bootLinux refuses a malformed kernel with KERNEL_INVALID and leaves no VM behind', { skip }, async (t) => {
  const kvm = openHypervisor();
  const vmFds = () =>
    readdirSync('/proc/self/fd').filter((fd) => {
      try {
        return /kvm-vm|kvm-vcpu|memfd:/.test(readlinkSync(`/proc/self/fd/${fd}`));
      } catch {
        return false;
      }
    }).length;
  const before = vmFds();
  await t.rejects(bootLinux({ kernel: Buffer.from('not a kernel at all'), kvm, memoryMiB: 16 }), { code: 'KERNEL_INVALID' });
  await t.rejects(bootLinux({ kernel: Buffer.alloc(1), bogus: true } as never), { code: 'INVALID_CONFIG' });
  await t.rejects(bootLinux({ kernel: Buffer.alloc(1), kvm, memoryMiB: 16, timeoutMs: -1 }), { code: 'INVALID_CONFIG' });
  t.equal(vmFds(), before, 'no VM, vCPU or guest-memory fd left open');
});
