// vm.loadLinux() on this host's /dev/kvm (PVM: a stock kernel cannot *run* here, but loading it can be
// checked completely from the host side): what the loader wrote into guest RAM and the boot vCPU, and the
// typed errors for kernels, command lines and initrds it refuses. The real kernels are the cached zone
// vmlinux and bzImage (`bulkhead kernel build --config zone`); without them those cases skip, saying so.
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import t, { type Test } from 'tap';
import { BulkheadError } from '../../src/errors';
import { findKernel, type KernelArtifacts } from '../../src/kernel';
import { checkKernelImage, createVm, KernelInvalidError, openHypervisor, type Kvm, type Vm } from '../../src/kvm';
import { kvmSkipReason } from './fixtures/guests';

const skip = kvmSkipReason();

async function zoneKernel(): Promise<{ k?: KernelArtifacts; why: string }> {
  try {
    const k = await findKernel({ config: 'zone' });
    return k ? { k, why: '' } : { why: 'the zone kernel is not built (node dist/cjs/cli/main.js kernel build --config zone)' };
  } catch (err) {
    return { why: `the zone kernel cannot be looked up: ${(err as Error).message}` };
  }
}

/** An ELF header with the given class (1: 32-bit, 2: 64-bit) and machine, e_phoff/e_phnum as given. */
function elfHeader(cls: 1 | 2, machine: number, phoff = 64, phnum = 1): Buffer {
  const h = Buffer.alloc(64);
  h.write('\x7fELF', 0, 'latin1');
  h[4] = cls;
  h[5] = 1; // little-endian
  h[6] = 1; // version
  h.writeUInt16LE(2, 16); // ET_EXEC
  h.writeUInt16LE(machine, 18);
  h.writeUInt32LE(1, 20);
  if (cls === 2) {
    h.writeBigUInt64LE(0x1000000n, 24); // e_entry
    h.writeBigUInt64LE(BigInt(phoff), 32);
    h.writeUInt16LE(64, 52); // e_ehsize
    h.writeUInt16LE(56, 54); // e_phentsize
    h.writeUInt16LE(phnum, 56);
  } else {
    h.writeUInt32LE(0x1000000, 24);
    h.writeUInt32LE(phoff, 28);
    h.writeUInt16LE(52, 40);
    h.writeUInt16LE(32, 42);
    h.writeUInt16LE(phnum, 44);
  }
  return h;
}

/** Expects `fn` to throw a BulkheadError with `code` whose message matches `re`. */
function refuses(t: Test, fn: () => unknown, code: string, re: RegExp, what: string): void {
  try {
    fn();
    t.fail(`${what}: accepted`);
  } catch (err) {
    t.ok(err instanceof BulkheadError, `${what}: a BulkheadError (${(err as Error).constructor.name})`);
    t.equal((err as BulkheadError).code, code, `${what}: code ${code}`);
    t.match((err as Error).message, re, `${what}: "${(err as Error).message}"`);
  }
}

t.test('loadLinux writes kernel, command line, initrd, boot_params and the boot vCPU (zone vmlinux)', { skip }, async (t) => {
  const { k, why } = await zoneKernel();
  if (!k) return void t.skip(why, async () => undefined);
  const kvm = openHypervisor();
  await using vm = kvm.createVm({ memoryMiB: 256, vcpus: 2, irqchip: true });
  const initrd = randomBytes(3 * 1024 * 1024 + 123);
  const cmdline = 'console=ttyS0 reboot=k panic=-1 bhtag=loader-test';
  const info = vm.loadLinux({ kernel: k.vmlinux, initrd, cmdline });
  t.equal(info.format, 'vmlinux');
  t.equal(info.entry, '64bit', "'auto' is the 64-bit entry");
  t.equal(info.bootProtocol, null, 'no boot protocol version for an ELF');
  t.ok(info.kernelStart >= 0x100000n && info.kernelEnd > info.kernelStart, `footprint ${info.kernelStart.toString(16)}-${info.kernelEnd.toString(16)}`);
  t.ok(info.cmdlineMax >= 255, `cmdline limit ${info.cmdlineMax}`);
  t.comment(`notes: ${info.notes || '(none)'}; MSRs refused: ${info.msrsRefused}`);

  // The command line, NUL-terminated, where boot_params says.
  const zp = vm.memory.read(info.bootParamsAddr, 4096);
  t.equal(vm.memory.read(info.cmdlineAddr, cmdline.length + 1).toString('latin1'), `${cmdline}\0`, 'cmdline bytes at cmdlineAddr');
  t.equal(BigInt(zp.readUInt32LE(0x228)), info.cmdlineAddr, 'boot_params.hdr.cmd_line_ptr');
  // The initrd, byte for byte, page-aligned above the kernel, and announced in boot_params.
  t.equal(info.initrdSize, BigInt(initrd.length));
  t.equal(info.initrdAddr % 4096n, 0n, 'initrd page-aligned');
  t.ok(info.initrdAddr >= info.kernelEnd, 'initrd above the kernel');
  t.ok(info.initrdAddr + info.initrdSize <= 256n << 20n, 'initrd inside RAM');
  t.ok(vm.memory.read(info.initrdAddr, initrd.length).equals(initrd), 'initrd bytes at initrdAddr');
  t.equal(BigInt(zp.readUInt32LE(0x218)), info.initrdAddr, 'boot_params.hdr.ramdisk_image');
  t.equal(zp.readUInt32LE(0x21c), initrd.length, 'boot_params.hdr.ramdisk_size');
  // The memory map.
  t.equal(zp[0x1e8], info.e820Entries, `boot_params.e820_entries = ${info.e820Entries}`);
  t.ok(info.e820Entries >= 2, 'at least low memory and the rest');
  let ramBytes = 0n;
  for (let i = 0; i < info.e820Entries; i++) {
    const off = 0x2d0 + i * 20;
    if (zp.readUInt32LE(off + 16) === 1) ramBytes += zp.readBigUInt64LE(off + 8);
  }
  t.ok(ramBytes > 250n << 20n && ramBytes <= 256n << 20n, `e820 RAM adds up to the VM's memory (${ramBytes >> 20n} MiB)`);
  t.equal(zp.toString('latin1', 0x202, 0x206), 'HdrS', 'setup header magic');
  // vCPU 0 enters the kernel with rsi = boot_params in long mode.
  const regs = vm.vcpu(0).getRegisters();
  t.equal(regs.general.rip, info.entryPoint, 'rip = entry point');
  t.equal(regs.general.rsi, info.bootParamsAddr, 'rsi = boot_params');
  t.equal(regs.control.efer & 0x500n, 0x500n, 'EFER.LME|LMA');
  t.equal(regs.control.cr0 & 0x80000001n, 0x80000001n, 'CR0.PG|PE');
  t.equal(vm.state, 'created', 'still created: loading does not start it');
});

t.test('bzImage and PVH entries', { skip }, async (t) => {
  const { k, why } = await zoneKernel();
  if (!k) return void t.skip(why, async () => undefined);
  const kvm = openHypervisor();
  {
    await using vm = kvm.createVm({ memoryMiB: 128, vcpus: 1, irqchip: true });
    const info = vm.loadLinux({ kernel: readFileSync(k.bzImage), cmdline: 'console=ttyS0' });
    t.equal(info.format, 'bzImage');
    t.match(info.bootProtocol, /^2\.(1[2-9]|[2-9]\d)$/, `boot protocol ${info.bootProtocol} >= 2.12`);
    t.equal(vm.vcpu(0).getRegisters().general.rip, info.entryPoint);
  }
  {
    await using vm = kvm.createVm({ memoryMiB: 128, vcpus: 1, irqchip: true });
    const info = vm.loadLinux({ kernel: k.vmlinux, entry: 'pvh', cmdline: 'console=ttyS0 pvh', initrd: Buffer.from('not really a cpio') });
    t.equal(info.entry, 'pvh');
    const start = vm.memory.read(info.bootParamsAddr, 56);
    t.equal(start.readUInt32LE(0), 0x336ec578, 'hvm_start_info magic');
    t.equal(start.readBigUInt64LE(24), info.cmdlineAddr, 'hvm_start_info.cmdline_paddr');
    t.equal(start.readUInt32LE(48), info.e820Entries, 'hvm_start_info.memmap_entries');
    t.equal(start.readUInt32LE(12), 1, 'the initrd is module 0');
    t.equal(vm.vcpu(0).getRegisters().general.rbx, info.bootParamsAddr, 'ebx = hvm_start_info');
  }
  const image = checkKernelImage(k.bzImage, 128);
  t.equal(image.format, 'bzImage', 'checkKernelImage without a VM');
});

t.test('refused kernels are typed errors (KERNEL_INVALID) and leave the VM usable', { skip }, async (t) => {
  const kvm: Kvm = openHypervisor();
  const vm: Vm = kvm.createVm({ memoryMiB: 64, vcpus: 1, irqchip: true });
  t.teardown(() => vm.destroy());
  const bad = (kernel: Uint8Array, re: RegExp, what: string) => {
    refuses(t, () => vm.loadLinux({ kernel }), 'KERNEL_INVALID', re, what);
    refuses(t, () => checkKernelImage(kernel, 64), 'KERNEL_INVALID', re, `${what} (checkKernelImage)`);
  };
  bad(randomBytes(64 * 1024), /neither an ELF vmlinux nor a bzImage/, 'random bytes');
  bad(Buffer.alloc(0), /empty/, 'empty');
  bad(elfHeader(1, 3), /32-bit/, '32-bit ELF');
  bad(elfHeader(2, 183 /* aarch64 */), /not x86-64/, 'ELF for another machine');
  bad(elfHeader(2, 62, 64, 4), /outside the file/, 'ELF whose program headers run past the end');
  bad(elfHeader(2, 62, 1 << 30), /outside the file/, 'ELF with program headers far outside the file');

  const { k, why } = await zoneKernel();
  if (k) {
    const vmlinux = readFileSync(k.vmlinux);
    bad(vmlinux.subarray(0, 4096), /outside the file|truncated/, 'truncated vmlinux (first 4 KiB)');
    const bz = readFileSync(k.bzImage);
    const wrongMagic = Buffer.from(bz);
    wrongMagic.write('XXXX', 0x202, 'latin1');
    bad(wrongMagic, /HdrS/, 'bzImage with a wrong header magic');
    const oldProtocol = Buffer.from(bz);
    oldProtocol.writeUInt16LE(0x0206, 0x206);
    bad(oldProtocol, /protocol|2\.0?6|version/i, 'bzImage with boot protocol 2.06');
    bad(bz.subarray(0, 16 * 1024), /truncated/, 'truncated bzImage');
    refuses(t, () => vm.loadLinux({ kernel: bz, entry: 'pvh' }), 'KERNEL_INVALID', /PVH/, 'PVH entry of a bzImage');

    // Configuration the kernel cannot take: INVALID_CONFIG with what is allowed.
    const max = checkKernelImage(vmlinux, 64).cmdlineMax;
    refuses(t, () => vm.loadLinux({ kernel: vmlinux, cmdline: 'x'.repeat(max + 1) }), 'INVALID_CONFIG', new RegExp(`at most ${max} bytes`), 'command line over the limit');
    refuses(t, () => vm.loadLinux({ kernel: vmlinux, initrd: Buffer.alloc(60 << 20) }), 'INVALID_CONFIG', /initrd.*does not fit/, 'initrd larger than the room above the kernel');
    refuses(t, () => vm.loadLinux({ kernel: vmlinux, cmdline: 'a\0b' }), 'INVALID_CONFIG', /NUL/, 'NUL in the command line');
    // Exactly at the limit is fine, and after all those refusals the VM still loads a good kernel.
    const info = vm.loadLinux({ kernel: vmlinux, cmdline: 'y'.repeat(max), initrd: Buffer.alloc(1 << 20, 1) });
    t.equal(vm.memory.read(info.cmdlineAddr + BigInt(max), 1)[0], 0, 'a command line of exactly cmdline_max bytes is accepted');
  } else {
    t.comment(`skipped the cases that need a real kernel: ${why}`);
  }
  refuses(t, () => vm.loadLinux({ kernel: '/nonexistent/vmlinux' }), 'INVALID_CONFIG', /readable file/, 'a path that does not exist');
  refuses(t, () => vm.loadLinux({ kernel: Buffer.alloc(10), entry: 'real' as never }), 'INVALID_CONFIG', /'pvh'/, 'unknown entry');
  refuses(t, () => vm.loadLinux({ kernel: Buffer.alloc(10), bogus: 1 } as never), 'INVALID_CONFIG', /known fields/, 'unknown option');
  refuses(t, () => checkKernelImage(Buffer.alloc(10), 1), 'INVALID_CONFIG', /2 MiB/, 'a guest too small for Linux');
  t.equal(vm.state, 'created', 'the VM is still usable');
  t.ok(new KernelInvalidError('x') instanceof BulkheadError);
});

t.test('loadLinux only on a created VM; not after destroy', { skip }, async (t) => {
  const vm = createVm({ memoryMiB: 16, vcpus: 1 });
  vm.memory.write(0x1000, Buffer.from([0xeb, 0xfe])); // jmp $
  vm.vcpu(0).setRegisters({ general: { rip: 0x1000 }, segments: { cs: { base: 0, selector: 0 } } });
  vm.start();
  refuses(t, () => vm.loadLinux({ kernel: Buffer.alloc(10) }), 'INVALID_STATE', /created/, 'a running VM');
  await vm.destroy();
  refuses(t, () => vm.loadLinux({ kernel: Buffer.alloc(10) }), 'VM_DESTROYED', /destroyed/, 'a destroyed VM');
});
