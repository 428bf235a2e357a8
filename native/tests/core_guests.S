/*
 * core_guests.S — hand-made guests for the core tests added with the device model (the older
 * ones are bytes in guests.c). Long mode, loaded at GB_CODE; results at GB_DATA (0x30000);
 * port 0x13 is the done port.
 */
    .section .rodata
    .globl cg_straddle, cg_straddle_end

/* MMIO accesses at the end of a 2 KiB range at 0xd0000000: a 4-byte read that fits, one that
 * leaves the range (offset 0x7fe + 4 > 0x800), an 8-byte write that leaves it, and a 1-byte write
 * that fits. The ones that leave must not reach the handler: reads float high (all ones), writes
 * are dropped. (The range ends mid-page: KVM splits an access that crosses a page boundary.) */
    .code64
cg_straddle:
    mov $0xd0000000, %ebx
    mov 0x7fc(%rbx), %eax
    mov %rax, 0x30000
    mov 0x7fe(%rbx), %eax
    mov %rax, 0x30008
    movabs $0x1122334455667788, %rax
    mov %rax, 0x7fc(%rbx)
    movb $1, 0x7ff(%rbx)
    out %al, $0x13
1:  jmp 1b
cg_straddle_end:
