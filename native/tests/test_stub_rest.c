#include "tests.h"
#include "tap.h"
#define STUB(n) void test_##n(void) { tap_skip("not written yet"); }
STUB(bus_ranges) STUB(kvm_system_and_caps) STUB(config_validation) STUB(mem_bounds) STUB(mmio_registration_rules)
STUB(hlt_exit) STUB(triple_fault_shutdown) STUB(stop_spinning_cpl0_interrupts_off) STUB(stop_spinning_cpl3_interrupts_off)
STUB(pause_resume_spinning_guest) STUB(two_vcpus_separate_state) STUB(io_pending_completed_from_other_thread)
STUB(io_pending_stop_while_waiting) STUB(io_pending_pause_while_waiting) STUB(control_from_vcpu_thread_and_misuse)
STUB(destroy_while_running) STUB(irqfd_and_ioeventfd) STUB(create_run_destroy_200_cycles_no_leaks)
