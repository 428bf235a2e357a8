/* boot_tests.h — every boot test, in the order boot_main.c runs them. */
#ifndef BH_BOOT_TESTS_H
#define BH_BOOT_TESTS_H

#define BOOT_TEST_LIST(X)                  \
    X(parse_vmlinux)                       \
    X(parse_vmlinux_pvh_note)              \
    X(parse_bzimage)                       \
    X(reject_random_bytes_and_mutations)   \
    X(reject_truncated_elf)                \
    X(reject_32bit_elf)                    \
    X(reject_bad_bzimages)                 \
    X(reject_segment_outside_ram)          \
    X(reject_cmdline_over_limit)           \
    X(reject_initrd_that_does_not_fit)     \
    X(initrd_placement)                    \
    X(e820_layout)                         \
    X(vm_vmlinux_entry_state_and_memory)   \
    X(vm_bzimage_entry)                    \
    X(vm_pvh_entry)                        \
    X(vm_smp_mptable_cpuid_lapic_msrs)     \
    X(vm_bad_kernels_typed_errors)         \
    X(vm_serial_16550)                     \
    X(vm_i8042_reset)                      \
    X(vm_halt_detection)                   \
    X(machine_power_device_ends_and_marks) \
    X(machine_reboot_and_panic_told_apart) \
    X(machine_cmdline_layout_and_bad_input) \
    X(malicious_drivers_break_only_their_device) \
    X(machine_50_cycles_no_leaks)          \
    X(bh_boot_console_input_during_teardown)

#define BOOT_DECLARE_TEST(name) void test_##name(void);
BOOT_TEST_LIST(BOOT_DECLARE_TEST)

#endif
