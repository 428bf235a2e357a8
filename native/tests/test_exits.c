/* test_exits.c — terminal exits are reported with details, and a dead vCPU takes its VM down. */
#include <linux/kvm.h>
#include <string.h>

#include "guests.h"
#include "helpers.h"
#include "tests.h"

#define MIB (1024ULL * 1024ULL)

/* Without an in-kernel irqchip, HLT comes back to us; it ends that vCPU only. */
void test_hlt_exit(void)
{
    test_vm t;
    bh_error e = {0};
    if (!tvm_create(&t, 2 * MIB, 1, false))
        return;
    CHECK(!bh_vm_has_irqchip(t.vm));
    REQUIRE_OK(gb_load(t.vm, 0x1000, g_hlt, g_hlt_len, &e));
    REQUIRE_OK(gb_real_mode(t.vm, 0, 0x1000, &e));
    REQUIRE_OK(bh_vm_start(t.vm, &e));
    REQUIRE(tvm_wait_exits(&t, 1, 10));
    const bh_vcpu_exit *x = tvm_exit_of(&t, 0);
    REQUIRE(x);
    CHECK(x->vcpu == 0);
    CHECK(x->reason == BH_EXIT_HLT);
    CHECK(x->kvm_exit_reason == KVM_EXIT_HLT);
    CHECK_EQ_U64(x->rip, 0x1002);
    CHECK(strstr(x->message, "HLT") && strstr(x->message, "0x1002"));
    REQUIRE_OK(bh_vm_stop(t.vm, &e));
    bh_regs r;
    REQUIRE_OK(bh_vcpu_get_regs(t.vm, 0, &r, &e)); /* readable once stopped */
    CHECK_EQ_U64(r.rip, 0x1002);
    tvm_destroy(&t);
}

/* vCPU 1 counts at CPL3; once it is running, vCPU 0 executes ud2 with no IDT: #UD -> #DF -> triple
 * fault -> KVM_EXIT_SHUTDOWN. The dead vCPU 0 must stop the running vCPU 1 too, saying why. */
void test_triple_fault_shutdown(void)
{
    test_vm t;
    bh_error e = {0};
    if (!tvm_create(&t, 2 * MIB, 2, false))
        return;
    REQUIRE_OK(gb_long_mode_tables(t.vm, &e));
    REQUIRE_OK(gb_load(t.vm, GB_CODE, g_ud2_64, g_ud2_64_len, &e));
    REQUIRE_OK(gb_load(t.vm, GB_CODE + 0x1000, g_count64, g_count64_len, &e));
    REQUIRE_OK(gb_long_mode(t.vm, 0, GB_CODE, GB_STACK, 0, &e));
    REQUIRE_OK(gb_long_mode(t.vm, 1, GB_CODE + 0x1000, GB_STACK - 0x1000, 3, &e));
    REQUIRE_OK(bh_vm_start(t.vm, &e));
    REQUIRE(tvm_wait_exits(&t, 2, 10));
    const bh_vcpu_exit *x0 = tvm_exit_of(&t, 0);
    const bh_vcpu_exit *x1 = tvm_exit_of(&t, 1);
    REQUIRE(x0 && x1);
    CHECK(x0->reason == BH_EXIT_SHUTDOWN);
    CHECK(x0->kvm_exit_reason == KVM_EXIT_SHUTDOWN);
    CHECK(strstr(x0->message, "triple fault") != NULL);
    CHECK_EQ_U64(x0->rip, GB_CODE + 11); /* the ud2 */
    CHECK(x1->reason == BH_EXIT_STOPPED);
    CHECK(strstr(x1->message, "vCPU 0") && strstr(x1->message, "triple fault"));
    REQUIRE_OK(bh_vm_stop(t.vm, &e));
    CHECK(bh_vm_get_state(t.vm) == BH_VM_STOPPED);
    uint64_t counter = 0;
    REQUIRE_OK(bh_mem_read(t.vm, GB_DATA, &counter, 8, &e));
    tap_diag("vCPU 1 counted to %llu before the VM went down", (unsigned long long)counter);
    CHECK(counter > 0);
    tvm_destroy(&t);
}

static bh_io_result failing_handler(void *opaque, bh_io_access *access)
{
    (void)opaque;
    (void)access;
    return BH_IO_ERROR;
}

/* A handler that fails the access ends the VM with BH_EXIT_IO_ERROR naming the address. */
void test_io_handler_error_stops_vm(void)
{
    test_vm t;
    bh_error e = {0};
    if (!tvm_create(&t, 2 * MIB, 2, false))
        return;
    REQUIRE_OK(bh_vm_register_pio(t.vm, 0x10, 1, failing_handler, NULL, &e));
    REQUIRE_OK(gb_load(t.vm, 0x1000, g_real_io, g_real_io_len, &e));
    REQUIRE_OK(gb_load(t.vm, 0x2000, g_spin16, g_spin16_len, &e));
    REQUIRE_OK(gb_real_mode(t.vm, 0, 0x1000, &e));
    REQUIRE_OK(gb_real_mode(t.vm, 1, 0x2000, &e));
    REQUIRE_OK(bh_vm_start(t.vm, &e));
    REQUIRE(tvm_wait_exits(&t, 2, 10));
    const bh_vcpu_exit *x0 = tvm_exit_of(&t, 0), *x1 = tvm_exit_of(&t, 1);
    REQUIRE(x0 && x1);
    CHECK(x0->reason == BH_EXIT_IO_ERROR);
    CHECK_EQ_U64(x0->detail[0], 0x10);
    CHECK(strstr(x0->message, "0x10") != NULL);
    CHECK(x1->reason == BH_EXIT_STOPPED);
    REQUIRE_OK(bh_vm_stop(t.vm, &e));
    tvm_destroy(&t);
}

static bh_io_result pending_then_fail(void *opaque, bh_io_access *access)
{
    test_vm *t = opaque;
    bh_error e = {0};
    (void)access;
    /* Completing from the handler's own thread is allowed too: the access is armed before the call. */
    bh_vcpu_complete_io(t->vm, access->vcpu, access->token, NULL, 0, false, &e);
    return BH_IO_PENDING;
}

/* bh_vcpu_complete_io(ok = false) turns the access into BH_EXIT_IO_ERROR. */
void test_io_completed_not_ok_stops_vm(void)
{
    test_vm t;
    bh_error e = {0};
    if (!tvm_create(&t, 2 * MIB, 1, false))
        return;
    REQUIRE_OK(bh_vm_register_pio(t.vm, 0x10, 2, pending_then_fail, &t, &e)); /* in ax, 0x10 */
    REQUIRE_OK(gb_load(t.vm, 0x1000, g_pending, g_pending_len, &e));
    REQUIRE_OK(gb_real_mode(t.vm, 0, 0x1000, &e));
    REQUIRE_OK(bh_vm_start(t.vm, &e));
    REQUIRE(tvm_wait_exits(&t, 1, 10));
    const bh_vcpu_exit *x = tvm_exit_of(&t, 0);
    REQUIRE(x);
    CHECK(x->reason == BH_EXIT_IO_ERROR);
    CHECK_EQ_U64(x->detail[0], 0x10);
    tvm_destroy(&t);
}

/* `int3` at CPL0 with no IDT: hardware KVM delivers #BP -> triple fault (SHUTDOWN); PVM cannot
 * emulate INT3 at CPL0 and reports KVM_EXIT_INTERNAL_ERROR (host-facts). Either way the VM ends
 * with a report and the host is unharmed. */
void test_unemulated_instruction_reported(void)
{
    static const uint8_t int3_code[] = {0x90, 0xcc}; /* nop; int3 */
    test_vm t;
    bh_error e = {0};
    if (!tvm_create(&t, 2 * MIB, 1, false))
        return;
    REQUIRE_OK(gb_long_mode_tables(t.vm, &e));
    REQUIRE_OK(gb_load(t.vm, GB_CODE, int3_code, sizeof int3_code, &e));
    REQUIRE_OK(gb_long_mode(t.vm, 0, GB_CODE, GB_STACK, 0, &e));
    REQUIRE_OK(bh_vm_start(t.vm, &e));
    REQUIRE(tvm_wait_exits(&t, 1, 10));
    const bh_vcpu_exit *x = tvm_exit_of(&t, 0);
    REQUIRE(x);
    CHECK(x->reason == BH_EXIT_INTERNAL_ERROR || x->reason == BH_EXIT_SHUTDOWN);
    if (x->reason == BH_EXIT_INTERNAL_ERROR) {
        CHECK(x->kvm_exit_reason == KVM_EXIT_INTERNAL_ERROR);
        tap_diag("internal error: suberror %llu, data 0x%llx 0x%llx 0x%llx", (unsigned long long)x->detail[0],
                 (unsigned long long)x->detail[1], (unsigned long long)x->detail[2], (unsigned long long)x->detail[3]);
    }
    CHECK(x->message[0] != '\0');
    REQUIRE_OK(bh_vm_stop(t.vm, &e));
    CHECK(bh_vm_get_state(t.vm) == BH_VM_STOPPED);
    tvm_destroy(&t);
}
