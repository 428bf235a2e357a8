/*
 * The exit benchmark's guest: one flat image that QEMU and bulkhead both load and enter the same way.
 *
 * A multiboot header with the a.out-kludge address fields (flag 16) makes it a flat binary QEMU's
 * `-kernel` accepts: QEMU (and our driver, reading the same header) loads the file at LOAD_ADDR and
 * enters ENTRY in 32-bit protected mode, flat segments, paging off, CPL0, interrupts off.
 *
 * The guest loads its own GDT, drops to CPL3 with IOPL=3 (SYSEXIT) (on PVM, CPL0 code is emulated one
 * instruction at a time while CPL3 runs natively: the measured loop must be at CPL3), writes `al` to
 * PARAM_PORT PARAM_COUNT times, then writes 0 to DONE_PORT (QEMU's isa-debug-exit ends the process;
 * our driver's handler stops the VM) and spins.
 *
 * PARAM_COUNT and PARAM_PORT live at fixed offsets (see the .long fields after the header) so the
 * driver patches N into a copy of the image instead of parsing a command line in guest CPL0 code.
 *
 * Build: as --32 exits.S -o exits.o && ld -m elf_i386 -T exits.ld exits.o -o exits.bin
 */
    .set LOAD_ADDR, 0x100000
    .set MB_MAGIC, 0x1BADB002
    .set MB_FLAGS, 0x00010000          /* bit 16: header carries load/entry addresses */
    .set DONE_PORT, 0xf4
    .set DONE_VALUE, 0x21              /* isa-debug-exit: exit status (0x21 << 1) | 1 = 67, unlike QEMU's own 1 */
    .set KCODE, 0x08
    .set KDATA, 0x10
    .set UCODE, 0x1b                   /* 0x18 | RPL 3 */
    .set UDATA, 0x23                   /* 0x20 | RPL 3 */

    .code32
    .section .text
    .globl _start
_start:
header:                                 /* offset 0x00: multiboot header */
    .long MB_MAGIC
    .long MB_FLAGS
    .long -(MB_MAGIC + MB_FLAGS)
    .long header                        /* header_addr */
    .long LOAD_ADDR                     /* load_addr */
    .long 0                             /* load_end_addr: 0 = the whole file */
    .long 0                             /* bss_end_addr: 0 = no bss */
    .long entry                         /* entry_addr */
params:                                 /* offset 0x20: patched by the driver */
    .ascii "BHEX"                       /* params magic */
param_count:
    .long 1000                          /* offset 0x24: N port writes */
param_port:
    .long 0xe0                          /* offset 0x28: the port (no device behind it in either VMM) */

entry:                                  /* CPL0, 32-bit, flat, paging off */
    cli
    lgdt gdt_desc
    ljmp $KCODE, $1f
1:  mov $KDATA, %ax
    mov %ax, %ds
    mov %ax, %es
    mov %ax, %ss
    mov %ax, %fs
    mov %ax, %gs
    mov $kstack_top, %esp
    /* To CPL3 with SYSEXIT, not IRET: PVM's CPL0 emulator refuses a protected-mode IRET (and an
     * outer-privilege RETF); it does emulate WRMSR, POPF and SYSEXIT. SYSEXIT takes CS/SS from
     * IA32_SYSENTER_CS + 16/24 (our GDT's user code/data) and keeps EFLAGS, so IOPL is set first. */
    mov $0x174, %ecx                    /* IA32_SYSENTER_CS */
    mov $KCODE, %eax
    xor %edx, %edx
    wrmsr
    pushl $0x3002                       /* IOPL=3 (IN/OUT allowed at CPL3), IF=0 */
    popfl
    mov $user, %edx                     /* EIP */
    mov $ustack_top, %ecx               /* ESP */
    sysexit

user:                                   /* CPL3 */
    mov $UDATA, %ax
    mov %ax, %ds
    mov %ax, %es
    mov param_count, %ecx
    mov param_port, %edx
    xor %eax, %eax
    test %ecx, %ecx
    jz 3f
2:  out %al, (%dx)                      /* the measured exit */
    dec %ecx
    jnz 2b
3:  mov $DONE_PORT, %dx
    mov $DONE_VALUE, %al
    out %al, (%dx)                      /* done: isa-debug-exit (QEMU) / the driver's handler (ours) */
4:  pause
    jmp 4b

    .p2align 3
gdt:
    .quad 0                             /* 0x00 null */
    .quad 0x00cf9a000000ffff            /* 0x08 code, 32-bit, DPL0 */
    .quad 0x00cf92000000ffff            /* 0x10 data, DPL0 */
    .quad 0x00cffa000000ffff            /* 0x18 code, 32-bit, DPL3 */
    .quad 0x00cff2000000ffff            /* 0x20 data, DPL3 */
gdt_end:
gdt_desc:
    .word gdt_end - gdt - 1
    .long gdt

    .p2align 4
    .fill 256, 1, 0
kstack_top:
    .fill 256, 1, 0
ustack_top:
