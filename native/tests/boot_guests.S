/*
 * boot_guests.S — the few instructions each boot test runs in its guest. They are data in the
 * test binary, copied into a synthetic kernel image at its entry point. CPL0 code is emulated one
 * instruction at a time on PVM, so each stays short; results go out on port 0x500 (captured by the
 * test) and the guest ends by writing port 0x504 (debug exit).
 */
    .section .rodata
    .globl bg_probe64, bg_probe64_end, bg_pvh32, bg_pvh32_end, bg_serial64, bg_serial64_end
    .globl bg_i8042_64, bg_i8042_64_end, bg_halt64, bg_halt64_end, bg_idle64, bg_idle64_end

/* 64-bit entry: prove the GDT's __BOOT_DS/__BOOT_CS load, then read the initrd's first dword
 * through the identity map using boot_params.ramdisk_image from %rsi, and the command line's
 * first dword through boot_params.cmd_line_ptr. */
    .code64
bg_probe64:
    mov $0x18, %eax
    mov %eax, %ds
    mov %eax, %es
    mov %eax, %ss
    lea 1f(%rip), %rax
    push $0x10
    push %rax
    lretq
1:  mov $0x500, %dx
    mov 0x218(%rsi), %ebx           /* boot_params.hdr.ramdisk_image */
    mov (%rbx), %eax
    out %eax, (%dx)
    mov 0x228(%rsi), %ebx           /* boot_params.hdr.cmd_line_ptr */
    mov (%rbx), %eax
    out %eax, (%dx)
    mov $0x504, %dx
    mov $0x64, %al
    out %al, (%dx)
2:  hlt
    jmp 2b
bg_probe64_end:

/* PVH entry: 32-bit protected mode, paging off, %ebx = hvm_start_info. */
    .code32
bg_pvh32:
    mov $0x500, %dx
    mov (%ebx), %eax                /* magic */
    out %eax, (%dx)
    mov 24(%ebx), %ecx              /* cmdline_paddr (low half) */
    mov (%ecx), %eax
    out %eax, (%dx)
    mov $0x504, %dx
    mov $0x32, %al
    out %al, (%dx)
3:  hlt
    jmp 3b
bg_pvh32_end:

/* 16550: transmit "hi\n", the loopback test (MCR 0x1a -> MSR high nibble 0x90), THRE
 * interrupt identification, then wait for one received byte and report it. */
    .code64
bg_serial64:
    mov $0x3f8, %dx
    mov $'h', %al
    out %al, (%dx)
    mov $'i', %al
    out %al, (%dx)
    mov $'\n', %al
    out %al, (%dx)
    mov $0x3fc, %dx                 /* MCR: loopback, RTS, OUT2 */
    mov $0x1a, %al
    out %al, (%dx)
    mov $0x3fe, %dx                 /* MSR */
    in (%dx), %al
    movzbl %al, %eax
    mov $0x500, %dx
    out %eax, (%dx)
    mov $0x3fc, %dx
    mov $0x08, %al
    out %al, (%dx)
    mov $0x3f9, %dx                 /* IER = THRI */
    mov $0x02, %al
    out %al, (%dx)
    mov $0x3fa, %dx                 /* IIR: THRE pending, then acknowledged */
    in (%dx), %al
    movzbl %al, %eax
    mov $0x500, %dx
    out %eax, (%dx)
    mov $0x3fa, %dx
    in (%dx), %al
    movzbl %al, %eax
    mov $0x500, %dx
    out %eax, (%dx)
    mov $0x3fd, %dx                 /* LSR: wait for data ready */
4:  in (%dx), %al
    test $1, %al
    jz 4b
    mov $0x3f8, %dx
    in (%dx), %al
    movzbl %al, %eax
    mov $0x500, %dx
    out %eax, (%dx)
    mov $0x504, %dx
    out %al, (%dx)
5:  hlt
    jmp 5b
bg_serial64_end:

/* i8042: self-test (status then 0x55), read the command byte, then pulse reset (0xFE). */
bg_i8042_64:
    mov $0x500, %dx
    mov $0xaa, %al
    out %al, $0x64
    in $0x64, %al
    movzbl %al, %eax
    out %eax, (%dx)
    in $0x60, %al
    movzbl %al, %eax
    out %eax, (%dx)
    mov $0x20, %al
    out %al, $0x64
    in $0x60, %al
    movzbl %al, %eax
    out %eax, (%dx)
    mov $0xfe, %al
    out %al, $0x64
6:  hlt
    jmp 6b
bg_i8042_64_end:
/* How Linux ends `poweroff` without ACPI: interrupts off, HLT forever. */
bg_halt64:
    cli
8:  hlt
    jmp 8b
bg_halt64_end:

/* An idle guest: HLT with interrupts enabled (not powered off). */
bg_idle64:
    sti
9:  hlt
    jmp 9b
bg_idle64_end:

    .section .note.GNU-stack,"",@progbits
