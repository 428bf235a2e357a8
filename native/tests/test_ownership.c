/*
 * test_ownership.c — the device model the VM owns, the I/O thread, and the review fixes that came
 * with them: accesses that leave a range, callback order on resume, CPUID built once through the
 * caller's handle, and the i8042 that leaked when its first port was taken.
 */
#include <string.h>
#include <sys/eventfd.h>
#include <sys/epoll.h>
#include <unistd.h>

#include "helpers.h"
#include "tests.h"

#define MIB (1024ULL * 1024ULL)

extern const uint8_t cg_straddle[], cg_straddle_end[];

/* The MMIO bus routes an access only when all of its bytes lie in the range. */
void test_bus_refuses_access_leaving_range(void)
{
    test_vm t;
    bh_error e = {0};
    io_log log;
    iolog_init(&log, 0x12345678);
    if (!tvm_create(&t, 2 * MIB, 1, false))
        return;
    REQUIRE_OK(register_done_port(&t, &e));
    REQUIRE_OK(bh_vm_register_mmio(t.vm, 0xd0000000, 0x800, iolog_handler, &log, &e));
    REQUIRE_OK(gb_long_mode_tables(t.vm, &e));
    REQUIRE_OK(gb_load(t.vm, GB_CODE, cg_straddle, (size_t)(cg_straddle_end - cg_straddle), &e));
    REQUIRE_OK(gb_long_mode(t.vm, 0, GB_CODE, GB_STACK, 0, &e));
    REQUIRE_OK(bh_vm_start(t.vm, &e));
    REQUIRE(tvm_wait_exits(&t, 1, 20));
    const bh_vcpu_exit *x = tvm_exit_of(&t, 0);
    REQUIRE(x);
    CHECK(x->reason == BH_EXIT_GUEST_REQUEST);
    uint64_t got[2];
    REQUIRE_OK(bh_mem_read(t.vm, GB_DATA, got, sizeof got, &e));
    CHECK_EQ_U64(got[0], 0x12345678); /* [0x7fc, 0x800): inside, answered by the handler */
    CHECK_EQ_U64(got[1], 0xffffffff); /* [0x7fe, 0x802): leaves the range, floats high */
    /* The handler saw the fitting read and the 1-byte write at 0x7ff; never the two that leave. */
    REQUIRE(log.count == 2);
    CHECK(!log.entries[0].is_write && log.entries[0].offset == 0x7fc && log.entries[0].size == 4);
    CHECK(log.entries[1].is_write && log.entries[1].offset == 0x7ff && log.entries[1].size == 1);
    for (int i = 0; i < log.count; i++)
        CHECK(log.entries[i].offset + log.entries[i].size <= 0x800);
    bh_vm_stats st;
    bh_vm_get_stats(t.vm, &st);
    CHECK_EQ_U64(st.unhandled_mmio, 2);
    tvm_destroy(&t);
}

/* --------------------------------------------------------------------------------------------- */

static bh_io_result pending_port(void *opaque, bh_io_access *access)
{
    uint64_t *token = opaque;
    __atomic_store_n(token, access->token, __ATOMIC_SEQ_CST);
    return BH_IO_PENDING;
}

/* Resume reports RUNNING before any vCPU runs: a guest that halts at once after resume is reported
 * STOPPED after that RUNNING, even when the embedder's callback takes its time. */
void test_resume_reports_running_before_vcpus_run(void)
{
    test_vm t;
    bh_error e = {0};
    uint64_t token = 0;
    if (!tvm_create(&t, 2 * MIB, 1, false))
        return;
    /* g_pending: `in ax, 0x10` (pending until completed), `out 0x12, ax`, HLT. */
    extern const uint8_t g_pending[];
    extern const size_t g_pending_len;
    io_log log;
    iolog_init(&log, 0);
    REQUIRE_OK(bh_vm_register_pio(t.vm, 0x10, 2, pending_port, &token, &e));
    REQUIRE_OK(bh_vm_register_pio(t.vm, 0x12, 2, iolog_handler, &log, &e));
    REQUIRE_OK(gb_load(t.vm, 0x1000, g_pending, g_pending_len, &e));
    REQUIRE_OK(gb_real_mode(t.vm, 0, 0x1000, &e));
    REQUIRE_OK(bh_vm_start(t.vm, &e));
    for (int i = 0; i < 5000 && !__atomic_load_n(&token, __ATOMIC_SEQ_CST); i++)
        tap_sleep_ms(1);
    REQUIRE(token != 0);
    REQUIRE_OK(bh_vm_pause(t.vm, &e));
    const uint8_t v[2] = {1, 2};
    REQUIRE_OK(bh_vcpu_complete_io(t.vm, 0, token, v, 2, true, &e));
    pthread_mutex_lock(&t.lock);
    t.running_report_delay_ms = 100;
    pthread_mutex_unlock(&t.lock);
    REQUIRE_OK(bh_vm_resume(t.vm, &e));
    REQUIRE(tvm_wait_exits(&t, 1, 10));
    tap_sleep_ms(20);
    pthread_mutex_lock(&t.lock);
    int n = t.state_count;
    bh_vm_state states[TVM_MAX_STATES];
    memcpy(states, t.states, sizeof states);
    pthread_mutex_unlock(&t.lock);
    REQUIRE(n == 4);
    CHECK(states[0] == BH_VM_RUNNING);
    CHECK(states[1] == BH_VM_PAUSED);
    CHECK(states[2] == BH_VM_RUNNING);
    CHECK(states[3] == BH_VM_STOPPED);
    CHECK(log.count == 1);
    tvm_destroy(&t);
}

/* --------------------------------------------------------------------------------------------- */

typedef struct probe_dev {
    test_vm *t;
    int order_slot;            /* where this device's destroy lands in the shared order */
    int *order;                /* shared: destroy order */
    int *order_count;
    int stops;
    bool threads_gone_at_stop; /* the VM reported STOPPED (every vCPU gone) before `stop` ran */
    bool memory_mapped_at_destroy;
    int efd;
    int events_seen;           /* I/O-thread handler calls */
    bool handler_on_io_thread;
    pthread_t main_thread;
} probe_dev;

static void probe_stop(void *opaque)
{
    probe_dev *d = opaque;
    d->stops++;
    d->threads_gone_at_stop = bh_vm_get_state(d->t->vm) == BH_VM_STOPPED;
}

static void probe_destroy(void *opaque)
{
    probe_dev *d = opaque;
    d->order[(*d->order_count)++] = d->order_slot;
    /* Guest memory is still mapped while devices are destroyed (they may flush into it). */
    d->memory_mapped_at_destroy = bh_mem_ptr(d->t->vm, 0, 4096) != NULL;
}

static const bh_device_ops probe_ops = {.name = "probe", .stop = probe_stop, .destroy = probe_destroy};

static void probe_event(void *opaque, uint32_t events)
{
    probe_dev *d = opaque;
    uint64_t v;
    (void)events;
    if (read(d->efd, &v, sizeof v) == sizeof v)
        __atomic_fetch_add(&d->events_seen, 1, __ATOMIC_SEQ_CST);
    d->handler_on_io_thread = !pthread_equal(pthread_self(), d->main_thread);
}

static int events_seen(probe_dev *d)
{
    return __atomic_load_n(&d->events_seen, __ATOMIC_SEQ_CST);
}

static void signal_efd(int fd)
{
    uint64_t one = 1;
    CHECK(write(fd, &one, sizeof one) == sizeof one);
}

/* Devices attached to a VM: its I/O thread serves their fds, parks while the VM is paused, and
 * is joined (with the vCPUs) before `stop` and then `destroy` run, newest device first. */
void test_devices_owned_by_the_vm(void)
{
    test_vm t;
    bh_error e = {0};
    int order[2], order_count = 0;
    probe_dev a = {.t = &t, .order_slot = 1, .order = order, .order_count = &order_count};
    probe_dev b = {.t = &t, .order_slot = 2, .order = order, .order_count = &order_count};
    extern const uint8_t g_spin16[];
    extern const size_t g_spin16_len;
    if (!tvm_create(&t, 2 * MIB, 1, false))
        return;
    a.main_thread = b.main_thread = pthread_self();
    a.efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    REQUIRE(a.efd >= 0);
    REQUIRE_OK(bh_vm_attach_device(t.vm, &probe_ops, &a, &e));
    REQUIRE_OK(bh_vm_attach_device(t.vm, &probe_ops, &b, &e));
    REQUIRE_OK(bh_vm_io_watch(t.vm, a.efd, EPOLLIN, probe_event, &a, &e));
    CHECK(bh_vm_io_watch(t.vm, -1, EPOLLIN, probe_event, &a, &e) == BH_E_INVALID_ARG);
    CHECK(bh_vm_io_rewatch(t.vm, 12345, EPOLLIN, &e) == BH_E_INVALID_ARG);
    REQUIRE_OK(gb_load(t.vm, 0x1000, g_spin16, g_spin16_len, &e));
    REQUIRE_OK(gb_real_mode(t.vm, 0, 0x1000, &e));

    signal_efd(a.efd); /* before start: served once the I/O thread is released */
    REQUIRE_OK(bh_vm_start(t.vm, &e));
    for (int i = 0; i < 2000 && events_seen(&a) < 1; i++)
        tap_sleep_ms(1);
    CHECK(events_seen(&a) == 1);
    CHECK(a.handler_on_io_thread);

    REQUIRE_OK(bh_vm_pause(t.vm, &e));
    signal_efd(a.efd);
    tap_sleep_ms(50);
    CHECK(events_seen(&a) == 1); /* paused: the I/O thread is parked */
    REQUIRE_OK(bh_vm_resume(t.vm, &e));
    for (int i = 0; i < 2000 && events_seen(&a) < 2; i++)
        tap_sleep_ms(1);
    CHECK(events_seen(&a) == 2);
    CHECK(bh_vm_io_thread_cpu_ns(t.vm) > 0);
    CHECK(bh_vcpu_cpu_ns(t.vm, 0) > 0);

    REQUIRE_OK(bh_vm_stop(t.vm, &e));
    CHECK(a.stops == 1 && b.stops == 1);
    CHECK(a.threads_gone_at_stop && b.threads_gone_at_stop);
    signal_efd(a.efd);
    tap_sleep_ms(20);
    CHECK(events_seen(&a) == 2); /* stopped: nothing serves it any more */
    REQUIRE_OK(bh_vm_stop(t.vm, &e));
    CHECK(a.stops == 1); /* once, however often the VM is stopped */
    bh_vm_io_unwatch(t.vm, a.efd);
    close(a.efd);
    tvm_destroy(&t);
    REQUIRE(order_count == 2);
    CHECK(order[0] == 2 && order[1] == 1); /* newest first */
    CHECK(a.memory_mapped_at_destroy && b.memory_mapped_at_destroy);
}

/* --------------------------------------------------------------------------------------------- */

static bh_io_result nop_port(void *opaque, bh_io_access *access)
{
    (void)opaque;
    (void)access;
    return BH_IO_DONE;
}

/* The i8042 needs ports 0x60 and 0x64. When either is taken, create fails with BH_E_BUSY and the
 * half-made device is still freed with the VM (LeakSanitizer checks at exit). */
void test_i8042_failed_create_frees_everything(void)
{
    for (int taken = 0; taken < 2; taken++) {
        test_vm t;
        bh_error e = {0};
        if (!tvm_create(&t, 2 * MIB, 1, false))
            return;
        REQUIRE_OK(bh_vm_register_pio(t.vm, taken ? 0x64 : 0x60, 1, nop_port, NULL, &e));
        bh_i8042 *k = NULL;
        CHECK(bh_i8042_create(t.vm, &k, &e) == BH_E_BUSY);
        CHECK(k == NULL);
        bh_serial *s = NULL;
        bh_serial_config sc = {.port = 0x3f8, .irq = 4};
        REQUIRE_OK(bh_serial_create(t.vm, &sc, &s, &e));
        CHECK(bh_serial_create(t.vm, &sc, &s, &e) == BH_E_BUSY); /* the second UART is freed too */
        tvm_destroy(&t);
    }
}

/* --------------------------------------------------------------------------------------------- */

/* CPUID comes from the VM's own table (built once from the caller's handle): per-vCPU APIC IDs,
 * the hypervisor bit and the KVM signature leaf. */
void test_cpuid_built_once_per_vm(void)
{
    test_vm t;
    bh_error e = {0};
    if (!tvm_create(&t, 2 * MIB, 3, true))
        return;
    uint32_t r[4];
    for (uint32_t v = 0; v < 3; v++) {
        REQUIRE_OK(bh_vcpu_get_cpuid(t.vm, v, 1, 0, r, &e));
        CHECK_EQ_U64(r[1] >> 24, v);       /* initial APIC ID */
        CHECK(r[2] & (1u << 31));          /* hypervisor */
    }
    REQUIRE_OK(bh_vcpu_get_cpuid(t.vm, 0, 0x40000000, 0, r, &e));
    char sig[13];
    memcpy(sig, &r[1], 4), memcpy(sig + 4, &r[2], 4), memcpy(sig + 8, &r[3], 4), sig[12] = 0;
    CHECK(strcmp(sig, "KVMKVMKVM") == 0);
    CHECK(bh_vcpu_get_cpuid(t.vm, 3, 1, 0, r, &e) == BH_E_INVALID_ARG);
    CHECK(bh_vcpu_get_cpuid(t.vm, 0, 0x4fffffff, 0, r, &e) == BH_E_INVALID_ARG);
    tvm_destroy(&t);
}
