/* tests.h — every native test, in the order the runner runs them. */
#ifndef BH_TESTS_TESTS_H
#define BH_TESTS_TESTS_H

#define BH_TEST_LIST(X)                            \
    X(bus_ranges)                                  \
    X(kvm_system_and_caps)                         \
    X(config_validation)                           \
    X(mem_bounds)                                  \
    X(mmio_registration_rules)                     \
    X(real_mode_port_io)                           \
    X(real_mode_string_io)                         \
    X(long_mode_cpl0_port_io)                      \
    X(long_mode_cpl3_port_io)                      \
    X(mmio_widths)                                 \
    X(unhandled_access_outside_ram)                \
    X(guest_host_shared_memory)                    \
    X(register_after_start)                        \
    X(exit_round_trip_cost)                        \
    X(hlt_exit)                                    \
    X(triple_fault_shutdown)                       \
    X(io_handler_error_stops_vm)                   \
    X(io_completed_not_ok_stops_vm)                \
    X(unemulated_instruction_reported)             \
    X(stop_spinning_cpl0_interrupts_off)           \
    X(stop_spinning_cpl3_interrupts_off)           \
    X(pause_resume_spinning_guest)                 \
    X(two_vcpus_separate_state)                    \
    X(io_pending_completed_from_other_thread)      \
    X(io_pending_stop_while_waiting)               \
    X(io_pending_pause_while_waiting)              \
    X(io_pending_string_io_held_during_pause)      \
    X(control_from_vcpu_thread_and_misuse)         \
    X(kick_does_not_interrupt_handler)             \
    X(destroy_while_running)                       \
    X(irqfd_and_ioeventfd)                         \
    X(bus_refuses_access_leaving_range)            \
    X(resume_reports_running_before_vcpus_run)     \
    X(devices_owned_by_the_vm)                     \
    X(i8042_failed_create_frees_everything)        \
    X(cpuid_built_once_per_vm)                     \
    X(partial_create_frees_everything)             \
    X(create_run_destroy_200_cycles_no_leaks)      \
    X(cycles_no_leaks_unsanitized_exact_maps)

#define BH_DECLARE_TEST(name) void test_##name(void);
BH_TEST_LIST(BH_DECLARE_TEST)

#endif
