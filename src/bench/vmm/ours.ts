/**
 * Our side of the exit benchmark, in process through the library: load the multiboot image the way
 * QEMU does (file at load_addr, 32-bit flat protected mode at entry_addr, EAX = the bootloader magic,
 * EBX = a multiboot info block), start, and time until the guest writes the done port.
 *
 * The N measured writes go to a port with no handler: the core counts them as unhandled and resumes the
 * guest on the vCPU thread without calling into JavaScript (the native path). Only the done port has a
 * JS handler, once per run, so its cost cancels out of the two-N difference. The `jsHandler` option
 * puts a JS handler on the measured port instead, for the JS round trip reported separately.
 */
import { openHypervisor, type Kvm, type Vm } from '../../kvm';
import { BulkheadError } from '../../errors';
import { DONE_PORT, DONE_VALUE, MULTIBOOT_BOOTLOADER_MAGIC, parseMultiboot, readParams } from './guest';

/** Same as QEMU's `-m 16` on the other side. */
export const GUEST_MEMORY_MIB = 16;
const MBI_ADDR = 0x9000; // an empty multiboot info block (flags 0): the guest never reads it
const RUN_TIMEOUT_MS = 120_000;

/** Writes the image and sets the multiboot entry state on vCPU 0. */
export function loadMultiboot(vm: Vm, image: Buffer): void {
  const h = parseMultiboot(image);
  const end = h.loadEndAddr === 0 ? image.length : h.loadEndAddr - h.loadAddr;
  vm.memory.write(h.loadAddr, image.subarray(0, end));
  vm.memory.write(MBI_ADDR, Buffer.alloc(16));
  const flat = { base: 0, limit: 0xffffffff, present: 1, dpl: 0, db: 1, s: 1, l: 0, g: 1, avl: 0 };
  const data = { ...flat, selector: 0x10, type: 3 };
  vm.vcpu(0).setRegisters({
    general: { rip: h.entryAddr, rax: MULTIBOOT_BOOTLOADER_MAGIC, rbx: MBI_ADDR, rsp: 0, rflags: 0x2 },
    segments: {
      cs: { ...flat, selector: 0x08, type: 11 },
      ds: data,
      es: data,
      fs: data,
      gs: data,
      ss: data,
      idt: { base: 0, limit: 0x3ff },
    },
    control: { cr0: 0x11, cr3: 0, cr4: 0, efer: 0 }, // PE | ET, paging off: what QEMU leaves too
  });
}

export interface OursRun {
  /** start() to the done port's handler, ns. */
  runNs: number;
  /** Exits counted by the core as unhandled (the N writes on the native path). */
  unhandledPio: number;
  pioExits: number;
}

/**
 * One run of the image: create, load, start, wait for the done port, destroy. Returns the time from
 * start() to the done handler (for the exit rate) and the counters; VM setup and destroy are excluded.
 */
export async function oursExitRun(kvm: Kvm, image: Buffer, opts: { jsHandler?: boolean } = {}): Promise<OursRun> {
  const { count, port } = readParams(image);
  const vm = kvm.createVm({ memoryMiB: GUEST_MEMORY_MIB, vcpus: 1 });
  try {
    loadMultiboot(vm, image);
    let handled = 0;
    if (opts.jsHandler) vm.onPort(port, 1, () => void handled++);
    const done = doneSignal(vm);
    const t0 = process.hrtime.bigint();
    vm.start();
    const t1 = await done;
    const stats = vm.stats();
    if (opts.jsHandler && handled !== count) throw new BulkheadError('BENCH_FAILED', `JS handler saw ${handled} of ${count} exits`);
    return { runNs: Number(t1 - t0), unhandledPio: Number(stats.unhandledPio), pioExits: Number(stats.pioExits) };
  } finally {
    await vm.destroy();
  }
}

/**
 * VM create + first instruction + destroy, wall time in ns: open /dev/kvm, create the VM, load the
 * image (use one with N = 0: its first port write is the done port), start, wait for that exit,
 * destroy, close. The QEMU counterpart is process start to process exit.
 */
export async function oursLifecycle(image: Buffer): Promise<number> {
  const t0 = process.hrtime.bigint();
  const kvm = openHypervisor();
  try {
    const vm = kvm.createVm({ memoryMiB: GUEST_MEMORY_MIB, vcpus: 1 });
    try {
      loadMultiboot(vm, image);
      const done = doneSignal(vm);
      vm.start();
      await done;
    } finally {
      await vm.destroy();
    }
  } finally {
    kvm.close();
  }
  return Number(process.hrtime.bigint() - t0);
}

/** Resolves with the hrtime at the guest's done write; rejects if the VM stops first or hangs. */
function doneSignal(vm: Vm): Promise<bigint> {
  return new Promise<bigint>((resolve, reject) => {
    const timer = setTimeout(() => reject(new BulkheadError('BENCH_FAILED', `guest did not finish within ${RUN_TIMEOUT_MS} ms`)), RUN_TIMEOUT_MS);
    vm.onPort(DONE_PORT, 4, (a) => {
      const t = process.hrtime.bigint();
      clearTimeout(timer);
      if (a.isWrite && Number(a.data) === DONE_VALUE) resolve(t);
      else reject(new BulkheadError('BENCH_FAILED', `unexpected access to the done port: ${JSON.stringify(a, (_k, v) => (typeof v === 'bigint' ? v.toString() : v))}`));
    });
    vm.once('stopped', (exits) => {
      clearTimeout(timer);
      reject(new BulkheadError('BENCH_FAILED', `the VM stopped before the guest was done: ${exits.map((e) => e.message).join('; ')}`));
    });
  });
}
