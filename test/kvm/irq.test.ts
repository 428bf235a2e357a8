// Interrupts and eventfds on the real /dev/kvm: an IRQ raised with irqLine() or an irqfd reaches a real-mode
// guest through the in-kernel PIC; ioeventfds count guest writes without an exit to user space.
import t from 'tap';
import { openHypervisor } from '../../src/kvm';
import { EVENTFD_WRITES, kvmSkipReason, onDone, setupLongMode, setupRealMode, within } from './fixtures/guests';

const skip = kvmSkipReason();

/**
 * Real mode with the in-kernel irqchip: programs the master PIC (vectors 8..15, only IRQ4 unmasked), points
 * IVT entry 0x0c (IRQ4) at a handler that writes port 0x31 and sends EOI, then waits in `sti; hlt`.
 */
const PIC_IRQ4_GUEST = [
  0xfa, //                               cli
  0xb0, 0x11, 0xe6, 0x20, //             mov al,0x11; out 0x20,al   ; ICW1: edge, cascade, ICW4 follows
  0xb0, 0x08, 0xe6, 0x21, //             mov al,0x08; out 0x21,al   ; ICW2: vectors 8..15
  0xb0, 0x04, 0xe6, 0x21, //             mov al,0x04; out 0x21,al   ; ICW3: slave on IRQ2
  0xb0, 0x01, 0xe6, 0x21, //             mov al,0x01; out 0x21,al   ; ICW4: 8086 mode
  0xb0, 0xef, 0xe6, 0x21, //             mov al,0xef; out 0x21,al   ; OCW1: unmask IRQ4 only
  0xc7, 0x06, 0x30, 0x00, 0x29, 0x10, // mov WORD PTR [0x30],0x1029  ; IVT[0x0c].offset = handler
  0xc7, 0x06, 0x32, 0x00, 0x00, 0x00, // mov WORD PTR [0x32],0       ; IVT[0x0c].segment = 0
  0xba, 0xf0, 0x00, //                   mov dx,0xf0
  0xee, //                               out dx,al                   ; ready
  0xfb, //                               sti
  0xf4, //                               1: hlt                      ; 0x1026
  0xeb, 0xfd, //                         jmp 1b
  // handler (0x1029):
  0xba, 0x31, 0x00, //                   mov dx,0x31
  0xee, //                               out dx,al                   ; report the interrupt
  0xb0, 0x20, 0xe6, 0x20, //             mov al,0x20; out 0x20,al    ; EOI
  0xcf, //                               iret
];

t.test('an IRQ raised by irqLine() and by an irqfd reaches the guest through the in-kernel PIC', { skip }, async (t) => {
  const kvm = openHypervisor();
  await using vm = kvm.createVm({ memoryMiB: 2, vcpus: 1, irqchip: true });
  t.equal(vm.hasIrqchip, true);
  setupRealMode(vm, PIC_IRQ4_GUEST);
  let interrupts = 0;
  let notify: (() => void) | undefined;
  vm.onPort(0x31, 1, () => {
    interrupts++;
    notify?.();
  });
  const next = () => new Promise<void>((resolve) => (notify = resolve));
  const ready = onDone(vm);
  vm.start();
  await within(ready, 10000, 'PIC programmed');
  await new Promise((r) => setTimeout(r, 20));
  t.equal(interrupts, 0, 'no interrupt before one is raised');

  let got = next();
  vm.irqLine(4, true);
  vm.irqLine(4, false);
  await within(got, 5000, 'interrupt from irqLine');
  t.equal(interrupts, 1, 'irqLine(4) delivered one interrupt');

  const irqfd = vm.irqfd(4);
  t.equal(irqfd.gsi, 4);
  got = next();
  irqfd.trigger();
  await within(got, 5000, 'interrupt from irqfd');
  t.equal(interrupts, 2, 'the irqfd delivered one interrupt');
  t.equal(vm.state, 'running', 'HLT with an irqchip waits in the kernel instead of exiting');
  await vm.stop();
});

t.test('irqLine and irqfd without an irqchip are INVALID_STATE errors that say what to do', { skip }, async (t) => {
  const kvm = openHypervisor();
  await using vm = kvm.createVm({ memoryMiB: 2, vcpus: 1 });
  t.throws(() => vm.irqLine(4, true), { code: 'INVALID_STATE', message: /irqchip/ });
  t.throws(() => vm.irqfd(4), { code: 'INVALID_STATE', message: /irqchip/ });
});

for (const cpl of [0, 3] as const) {
  t.test(`ioeventfds count matching guest writes without an exit to JavaScript (CPL${cpl})`, { skip }, async (t) => {
    const kvm = openHypervisor();
    await using vm = kvm.createVm({ memoryMiB: 4, vcpus: 1 });
    setupLongMode(vm, EVENTFD_WRITES, { cpl });
    const pio = vm.ioeventfd({ addr: 0x50, length: 1, space: 'pio', datamatch: 0x5a });
    const mmio = vm.ioeventfd({ addr: 0xd0001000, length: 4, space: 'mmio' });
    const reachedJs: bigint[] = [];
    vm.onPort(0x50, 1, (a) => void reachedJs.push(a.data));
    t.equal(pio.take(), 0n, 'nothing yet');
    const done = onDone(vm);
    vm.start();
    await within(done, 5000, 'guest done');
    t.equal(pio.take(), 2n, 'the two writes of 0x5a signalled the PIO ioeventfd');
    t.equal(pio.take(), 0n, 'take() resets the count');
    t.equal(mmio.take(), 1n, 'the MMIO write signalled the MMIO ioeventfd');
    t.same(reachedJs, [0x11n], 'only the non-matching write reached the JavaScript handler');
    t.equal(vm.stats().unhandledMmio, 0, 'the MMIO write never exited');
    await vm.stop();
  });
}
