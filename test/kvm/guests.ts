/**
 * Hand-made guests for the kvm tests: machine code (bytes with their assembly) and the tables a 64-bit
 * guest needs (GDT, TSS, identity-mapped page tables). Register state is set directly through
 * setRegisters(), so no guest code switches modes: the guest starts in real mode, or straight in
 * 64-bit long mode at CPL0 or CPL3.
 *
 * Guest-physical layout (4 MiB VMs are enough):
 *   0x1000  code            0x3000  data written by guests     0x5000 TSS   0x6000 GDT
 *   0x10000 PML4, 0x11000 PDPT, 0x12000..0x15fff four PDs: 2 MiB pages identity-mapping 0..4 GiB,
 *           user-accessible, so CPL3 code reaches RAM and the MMIO hole alike
 *   0x80000 top of the stack
 */
import * as fs from 'node:fs';
import type { Vm } from '../../src/kvm';

export const CODE = 0x1000;
export const DATA = 0x3000;
const TSS = 0x5000;
const GDT = 0x6000;
const PML4 = 0x10000;
const PDPT = 0x11000;
const PD = 0x12000;
const STACK_TOP = 0x80000;
/** The port every hand-made guest writes to when it is done (then it spins or halts). */
export const DONE_PORT = 0xf0;
/** An MMIO address in the hole below 4 GiB, never RAM. */
export const MMIO_BASE = 0xd0000000;

/** Why a kvm test cannot run here, or false. Only a missing /dev/kvm is a reason to skip. */
export function kvmSkipReason(): string | false {
  return fs.existsSync('/dev/kvm') ? false : '/dev/kvm does not exist on this host';
}

// ------------------------------------------------------------------------------------------------
// Programs. Each ends by writing DONE_PORT; 64-bit ones then spin (`jmp $`), which also works at CPL3.

/** 16-bit real mode: port I/O of 1 and 2 bytes, a memory store, HLT. */
export const REAL_MODE_PORTS = [
  0xba, 0x10, 0x00, //            mov dx,0x10
  0xb0, 0x42, //                  mov al,0x42
  0xee, //                        out dx,al        ; 0x42 -> port 0x10
  0xec, //                        in  al,dx        ; JS answers
  0x42, //                        inc dx
  0xee, //                        out dx,al        ; echo the answer -> port 0x11
  0xb8, 0x34, 0x12, //            mov ax,0x1234
  0x42, //                        inc dx
  0xef, //                        out dx,ax        ; 0x1234 -> port 0x12 (2 bytes)
  0xed, //                        in  ax,dx        ; JS answers 2 bytes
  0xa3, 0x00, 0x05, //            mov [0x500],ax   ; store the answer in RAM
  0xf4, //                        hlt
];

/** 64-bit: port I/O of 1 and 4 bytes, the 4-byte answer stored at DATA, then DONE_PORT and spin. */
export const LONG_MODE_PORTS = [
  0x66, 0xba, 0x10, 0x00, //                  mov dx,0x10
  0xb0, 0x42, //                              mov al,0x42
  0xee, //                                    out dx,al        ; 0x42 -> port 0x10
  0xec, //                                    in  al,dx        ; JS answers 1 byte
  0x66, 0xff, 0xc2, //                        inc dx
  0xee, //                                    out dx,al        ; echo -> port 0x11
  0xb8, 0xef, 0xcd, 0xab, 0x89, //            mov eax,0x89abcdef
  0x66, 0xba, 0x14, 0x00, //                  mov dx,0x14
  0xef, //                                    out dx,eax       ; 4 bytes -> port 0x14
  0xed, //                                    in  eax,dx       ; JS answers 4 bytes
  0x48, 0x89, 0x04, 0x25, 0x00, 0x30, 0x00, 0x00, // mov [0x3000],rax
  0x66, 0xba, 0xf0, 0x00, //                  mov dx,0xf0
  0xee, //                                    out dx,al        ; done
  0xeb, 0xfe, //                              jmp $
];

/** 64-bit: MMIO reads and writes of 1, 2, 4 and 8 bytes at MMIO_BASE; read results stored at DATA+0,8,16,24. */
export const LONG_MODE_MMIO = [
  0xbb, 0x00, 0x00, 0x00, 0xd0, //                                mov ebx,0xd0000000
  0xbf, 0x00, 0x30, 0x00, 0x00, //                                mov edi,0x3000
  0x0f, 0xb6, 0x03, //                                            movzx eax,BYTE PTR [rbx]
  0x48, 0x89, 0x07, //                                            mov [rdi],rax
  0x0f, 0xb7, 0x43, 0x02, //                                      movzx eax,WORD PTR [rbx+0x2]
  0x48, 0x89, 0x47, 0x08, //                                      mov [rdi+0x8],rax
  0x8b, 0x43, 0x04, //                                            mov eax,DWORD PTR [rbx+0x4]
  0x48, 0x89, 0x47, 0x10, //                                      mov [rdi+0x10],rax
  0x48, 0x8b, 0x43, 0x08, //                                      mov rax,QWORD PTR [rbx+0x8]
  0x48, 0x89, 0x47, 0x18, //                                      mov [rdi+0x18],rax
  0xc6, 0x43, 0x10, 0xab, //                                      mov BYTE PTR [rbx+0x10],0xab
  0x66, 0xc7, 0x43, 0x12, 0xcd, 0xab, //                          mov WORD PTR [rbx+0x12],0xabcd
  0xc7, 0x43, 0x14, 0xef, 0xcd, 0xab, 0x89, //                    mov DWORD PTR [rbx+0x14],0x89abcdef
  0x48, 0xb8, 0xef, 0xcd, 0xab, 0x89, 0x67, 0x45, 0x23, 0x01, //  movabs rax,0x0123456789abcdef
  0x48, 0x89, 0x43, 0x18, //                                      mov QWORD PTR [rbx+0x18],rax
  0x66, 0xba, 0xf0, 0x00, //                                      mov dx,0xf0
  0xee, //                                                        out dx,al   ; done
  0xeb, 0xfe, //                                                  jmp $
];

/** 64-bit: DONE_PORT, then spin forever. */
export const SPIN_AFTER_DONE = [
  0x66, 0xba, 0xf0, 0x00, // mov dx,0xf0
  0xee, //                   out dx,al
  0xeb, 0xfe, //             jmp $
];

/** 64-bit CPL0: DONE_PORT, then HLT (an 'hlt' exit without irqchip). */
export const HALT_AFTER_DONE = [
  0x66, 0xba, 0xf0, 0x00, // mov dx,0xf0
  0xee, //                   out dx,al
  0xf4, //                   hlt
];

/** 64-bit CPL0: a load from a non-canonical address (#GP) with an empty IDT: #GP -> #DF -> triple fault. */
export const TRIPLE_FAULT = [
  0x66, 0xba, 0xf0, 0x00, //                                      mov dx,0xf0
  0xee, //                                                        out dx,al
  0x48, 0xb8, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x80, //  movabs rax,0x8000000000000000
  0x48, 0x8b, 0x00, //                                            mov rax,[rax]   ; #GP
];

/** 64-bit: reads the u64 at 0x3100, stores it plus one at 0x3108, DONE_PORT, spin. */
export const INCREMENT_MEMORY = [
  0x48, 0x8b, 0x04, 0x25, 0x00, 0x31, 0x00, 0x00, // mov rax,[0x3100]
  0x48, 0xff, 0xc0, //                             inc rax
  0x48, 0x89, 0x04, 0x25, 0x08, 0x31, 0x00, 0x00, // mov [0x3108],rax
  0x66, 0xba, 0xf0, 0x00, //                       mov dx,0xf0
  0xee, //                                         out dx,al
  0xeb, 0xfe, //                                   jmp $
];

/** 64-bit: accesses above the end of RAM (256 MiB and 512 MiB): u64 read -> [0x3000], write, u32 read -> [0x3008]. */
export const OUTSIDE_RAM = [
  0xbb, 0x00, 0x00, 0x00, 0x10, //                 mov ebx,0x10000000
  0x48, 0x8b, 0x03, //                             mov rax,[rbx]
  0x48, 0x89, 0x04, 0x25, 0x00, 0x30, 0x00, 0x00, // mov [0x3000],rax
  0xc7, 0x03, 0x5a, 0x00, 0x00, 0x00, //           mov DWORD PTR [rbx],0x5a
  0xbb, 0x00, 0x00, 0x00, 0x20, //                 mov ebx,0x20000000
  0x8b, 0x43, 0x04, //                             mov eax,[rbx+0x4]
  0x48, 0x89, 0x04, 0x25, 0x08, 0x30, 0x00, 0x00, // mov [0x3008],rax
  0x66, 0xba, 0xf0, 0x00, //                       mov dx,0xf0
  0xee, //                                         out dx,al
  0xeb, 0xfe, //                                   jmp $
];

/** 64-bit: 10^7 iterations of dec/jnz (2*10^7 instructions), DONE_PORT, spin. */
export const COUNT_DOWN_10M = [
  0xb9, 0x80, 0x96, 0x98, 0x00, // mov ecx,10000000
  0xff, 0xc9, //                   1: dec ecx
  0x75, 0xfc, //                   jnz 1b
  0x66, 0xba, 0xf0, 0x00, //       mov dx,0xf0
  0xee, //                         out dx,al
  0xeb, 0xfe, //                   jmp $
];

/**
 * Two vCPUs that can only finish together: each reports its own ebx on port 0x20, then A waits for B's
 * flag (0x3204) before raising its own (0x3200), and B raises its flag and waits for A's.
 */
export const HANDSHAKE_A = [
  0x89, 0xd8, //                                                    mov eax,ebx
  0x66, 0xba, 0x20, 0x00, //                                        mov dx,0x20
  0xef, //                                                          out dx,eax
  0x83, 0x3c, 0x25, 0x04, 0x32, 0x00, 0x00, 0x01, //                1: cmp DWORD PTR [0x3204],1
  0x75, 0xf6, //                                                    jne 1b
  0xc7, 0x04, 0x25, 0x00, 0x32, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, // mov DWORD PTR [0x3200],1
  0x66, 0xba, 0xf0, 0x00, //                                        mov dx,0xf0
  0xee, //                                                          out dx,al
  0xeb, 0xfe, //                                                    jmp $
];
export const HANDSHAKE_B = [
  0x89, 0xd8, //                                                    mov eax,ebx
  0x66, 0xba, 0x20, 0x00, //                                        mov dx,0x20
  0xef, //                                                          out dx,eax
  0xc7, 0x04, 0x25, 0x04, 0x32, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, // mov DWORD PTR [0x3204],1
  0x83, 0x3c, 0x25, 0x00, 0x32, 0x00, 0x00, 0x01, //                1: cmp DWORD PTR [0x3200],1
  0x75, 0xf6, //                                                    jne 1b
  0x66, 0xba, 0xf0, 0x00, //                                        mov dx,0xf0
  0xee, //                                                          out dx,al
  0xeb, 0xfe, //                                                    jmp $
];

/** 64-bit: DONE_PORT, then `in al,0x30` (for handlers that never answer or throw), echo it out, DONE_PORT, spin. */
export const READ_PORT_30 = [
  0x66, 0xba, 0xf0, 0x00, // mov dx,0xf0
  0xee, //                   out dx,al       ; started
  0x66, 0xba, 0x30, 0x00, // mov dx,0x30
  0xec, //                   in al,dx        ; the handler under test
  0xee, //                   out dx,al
  0x66, 0xba, 0xf0, 0x00, // mov dx,0xf0
  0xee, //                   out dx,al
  0xeb, 0xfe, //             jmp $
];

/** 64-bit: three byte writes to port 0x50 (0x5a, 0x5a, 0x11) and a u32 write of 7 to MMIO 0xd0001000. */
export const EVENTFD_WRITES = [
  0xb0, 0x5a, //                         mov al,0x5a
  0xe6, 0x50, //                         out 0x50,al
  0xe6, 0x50, //                         out 0x50,al
  0xb0, 0x11, //                         mov al,0x11
  0xe6, 0x50, //                         out 0x50,al
  0xbb, 0x00, 0x10, 0x00, 0xd0, //       mov ebx,0xd0001000
  0xc7, 0x03, 0x07, 0x00, 0x00, 0x00, // mov DWORD PTR [rbx],7
  0x66, 0xba, 0xf0, 0x00, //             mov dx,0xf0
  0xee, //                               out dx,al
  0xeb, 0xfe, //                         jmp $
];

// ------------------------------------------------------------------------------------------------

function u64le(values: bigint[]): Buffer {
  const buf = Buffer.alloc(values.length * 8);
  values.forEach((v, i) => buf.writeBigUInt64LE(v, i * 8));
  return buf;
}

/** Writes the GDT, a TSS and page tables identity-mapping 0..4 GiB with user-accessible 2 MiB pages. */
export function writeLongModeTables(vm: Vm): void {
  const tssLow =
    0x67n | (BigInt(TSS & 0xffff) << 16n) | (BigInt((TSS >> 16) & 0xff) << 32n) | (0x8bn << 40n) | (BigInt((TSS >>> 24) & 0xff) << 56n);
  vm.memory.write(
    GDT,
    u64le([
      0n, //                     0x00 null
      0x00af9b000000ffffn, //    0x08 kernel code, 64-bit, DPL0
      0x00cf93000000ffffn, //    0x10 kernel data, DPL0
      0x00affb000000ffffn, //    0x18 user code, 64-bit, DPL3
      0x00cff3000000ffffn, //    0x20 user data, DPL3
      tssLow, //                 0x28 TSS (busy, 64-bit), low half
      0n, //                          high half: base[63:32] = 0
    ]),
  );
  vm.memory.write(TSS, Buffer.alloc(0x68));
  vm.memory.write(PML4, u64le([BigInt(PDPT) | 7n])); // present, writable, user
  vm.memory.write(PDPT, u64le([0, 1, 2, 3].map((i) => BigInt(PD + i * 0x1000) | 7n)));
  const pdEntries: bigint[] = [];
  for (let i = 0n; i < 2048n; i++) pdEntries.push((i << 21n) | 0x87n); // present, writable, user, 2 MiB
  vm.memory.write(PD, u64le(pdEntries));
}

/** Puts vCPU `vcpu` into 64-bit long mode at `cpl`, about to run `code` (written at `at`). */
export function setupLongMode(vm: Vm, code: number[], opts: { cpl?: 0 | 3; vcpu?: number; at?: number; rsp?: number } = {}): void {
  const cpl = opts.cpl ?? 0;
  const at = opts.at ?? CODE;
  writeLongModeTables(vm);
  vm.memory.write(at, Buffer.from(code));
  const data = { base: 0, limit: 0xffffffff, selector: cpl === 3 ? 0x23 : 0x10, type: 3, present: 1, dpl: cpl, db: 1, s: 1, l: 0, g: 1, avl: 0 };
  vm.vcpu(opts.vcpu ?? 0).setRegisters({
    general: {
      rip: at,
      rsp: opts.rsp ?? STACK_TOP,
      rflags: cpl === 3 ? 0x3002 : 0x2, // IOPL 3 at CPL3, so IN/OUT are allowed there
    },
    segments: {
      cs: { base: 0, limit: 0xffffffff, selector: cpl === 3 ? 0x1b : 0x08, type: 11, present: 1, dpl: cpl, db: 0, s: 1, l: 1, g: 1, avl: 0 },
      ds: data,
      es: data,
      fs: data,
      gs: data,
      ss: data,
      tr: { base: TSS, limit: 0x67, selector: 0x28, type: 11, present: 1, dpl: 0, db: 0, s: 0, l: 0, g: 0, avl: 0 },
      gdt: { base: GDT, limit: 7 * 8 - 1 },
      idt: { base: 0, limit: 0 }, // no IDT: any exception escalates to a triple fault
    },
    control: {
      cr0: 0x80050033, // PG | AM | WP | NE | ET | MP | PE
      cr3: PML4,
      cr4: 0x20, //       PAE
      efer: 0x500, //     LMA | LME
    },
  });
}

/** Puts vCPU `vcpu` into 16-bit real mode with all segment bases 0, about to run `code` at `at`. */
export function setupRealMode(vm: Vm, code: number[], opts: { vcpu?: number; at?: number } = {}): void {
  const at = opts.at ?? CODE;
  vm.memory.write(at, Buffer.from(code));
  const seg = { base: 0, selector: 0, limit: 0xffff };
  vm.vcpu(opts.vcpu ?? 0).setRegisters({
    general: { rip: at, rsp: 0x8000, rflags: 0x2 },
    segments: { cs: seg, ds: seg, es: seg, ss: seg, fs: seg, gs: seg },
  });
}

/** Resolves when vCPU `vcpu` writes DONE_PORT (registers the port handler; call before start()). */
export function onDone(vm: Vm, vcpus = 1): Promise<void> {
  let left = vcpus;
  return new Promise((resolve) => {
    vm.onPort(DONE_PORT, 1, () => {
      if (--left === 0) resolve();
    });
  });
}

/** Rejects after `ms` with `what`, for races against guests that might hang. */
export function within<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: not within ${ms} ms`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}
