/*
 * boot_machine_guests.S — synthetic kernels for the machine builder and device tests: 64-bit
 * entry from bh_boot_linux (identity map of the low 4 GiB, interrupts off), CPL0. CPL0 code is
 * emulated one instruction at a time on PVM, so each stays short and then sleeps in HLT.
 * The power device's command register is at 0xd0000008 (BH_POWER_MMIO_BASE + 8).
 */
    .section .rodata
    .globl mg_poweroff, mg_poweroff_end, mg_reboot, mg_reboot_end, mg_panic_reset, mg_panic_reset_end
    .globl mg_reset, mg_reset_end, mg_virtio_driver, mg_virtio_driver_end, mg_ticker, mg_ticker_end
    .globl mg_ticks_then_poweroff, mg_ticks_then_poweroff_end

    .code64
/* Boot markers 1 and 2, then POWER_OFF. */
mg_poweroff:
    mov $0xd0000008, %ebx
    movl $0x103, (%rbx)
    movl $0x203, (%rbx)
    movl $0x01, (%rbx)
1:  hlt
    jmp 1b
mg_poweroff_end:

/* REBOOT through the power device. */
mg_reboot:
    mov $0xd0000008, %ebx
    movl $0x02, (%rbx)
2:  hlt
    jmp 2b
mg_reboot_end:

/* What Linux does on a panic with reboot=k,panic_warm: the BIOS warm-reset flag, then the
 * i8042 reset line. */
mg_panic_reset:
    movw $0x1234, 0x472
    mov $0xfe, %al
    out %al, $0x64
3:  hlt
    jmp 3b
mg_panic_reset_end:

/* A plain kernel reboot: cold (0) at 0x472, then the i8042 reset line. */
mg_reset:
    movw $0, 0x472
    mov $0xfe, %al
    out %al, $0x64
4:  hlt
    jmp 4b
mg_reset_end:

/* A virtio driver that sets up queue 0 of the device at 0xd0001000 with the rings the test laid
 * out (descriptors 0x40000, driver area 0x41000, device area 0x42000; 16 entries; VERSION_1 and
 * INDIRECT_DESC), notifies once, writes boot marker 1, then sleeps. */
mg_virtio_driver:
    mov $0xd0001000, %ebx
    movl $0, 0x70(%rbx)
    movl $1, 0x70(%rbx)
    movl $3, 0x70(%rbx)
    movl $1, 0x24(%rbx)
    movl $1, 0x20(%rbx)
    movl $0, 0x24(%rbx)
    movl $0x10000000, 0x20(%rbx)
    movl $11, 0x70(%rbx)
    movl $0, 0x30(%rbx)
    movl $16, 0x38(%rbx)
    movl $0x40000, 0x80(%rbx)
    movl $0, 0x84(%rbx)
    movl $0x41000, 0x90(%rbx)
    movl $0, 0x94(%rbx)
    movl $0x42000, 0xa0(%rbx)
    movl $0, 0xa4(%rbx)
    movl $1, 0x44(%rbx)
    movl $15, 0x70(%rbx)
    movl $0, 0x50(%rbx)
    mov $0xd0000008, %ecx           /* (an absolute 0xd0000008 would sign-extend in long mode) */
    movl $0x103, (%rcx)
5:  hlt
    jmp 5b
mg_virtio_driver_end:

/* A guest that keeps working: boot marker n+1 every ~20000 loop turns, forever. */
mg_ticker:
    mov $0xd0000008, %ebx
    mov $0x103, %ecx
6:  mov $20000, %eax
7:  dec %eax
    jnz 7b
    mov %ecx, (%rbx)
    add $0x100, %ecx
    jmp 6b
mg_ticker_end:

/* Ten boot markers ~20000 loop turns apart, then POWER_OFF. */
mg_ticks_then_poweroff:
    mov $0xd0000008, %ebx
    mov $0x103, %ecx
8:  mov $20000, %eax
9:  dec %eax
    jnz 9b
    mov %ecx, (%rbx)
    add $0x100, %ecx
    cmp $0xb03, %ecx
    jne 8b
    movl $0x01, (%rbx)
10: hlt
    jmp 10b
mg_ticks_then_poweroff_end:

    .section .note.GNU-stack,"",@progbits
