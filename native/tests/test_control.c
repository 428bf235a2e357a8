/* test_control.c — start/pause/resume/stop of running guests, and pending I/O. */
#include <errno.h>
#include <string.h>
#include <time.h>

#include "guests.h"
#include "helpers.h"
#include "tests.h"

#define MIB (1024ULL * 1024ULL)

static double timed_stop(test_vm *t)
{
    bh_error e = {0};
    double start = tap_now();
    int rc = bh_vm_stop(t->vm, &e);
    double took = tap_now() - start;
    if (rc != 0) {
        tap_diag("bh_vm_stop: %s", e.message);
        tap_failures++;
    }
    return took;
}

static void stop_spinning(bool long_mode)
{
    test_vm t;
    bh_error e = {0};
    if (!tvm_create(&t, 2 * MIB, 1, false))
        return;
    if (long_mode) {
        /* CPL3 (native speed on PVM), RFLAGS.IF clear from the start. */
        REQUIRE_OK(gb_long_mode_tables(t.vm, &e));
        REQUIRE_OK(gb_load(t.vm, GB_CODE, g_spin64, g_spin64_len, &e));
        REQUIRE_OK(gb_long_mode(t.vm, 0, GB_CODE, GB_STACK, 3, &e));
    } else {
        /* Real mode is CPL0: on PVM every instruction is emulated. */
        REQUIRE_OK(gb_load(t.vm, 0x1000, g_spin16, g_spin16_len, &e));
        REQUIRE_OK(gb_real_mode(t.vm, 0, 0x1000, &e));
    }
    REQUIRE_OK(bh_vm_start(t.vm, &e));
    tap_sleep_ms(200);
    CHECK(bh_vm_get_state(t.vm) == BH_VM_RUNNING);
    CHECK(t.exit_count == 0);
    double took = timed_stop(&t);
    tap_diag("bh_vm_stop of a guest spinning with interrupts off took %.2f ms", took * 1000);
    CHECK(took < 1.0);
    const bh_vcpu_exit *x = tvm_exit_of(&t, 0);
    REQUIRE(x);
    CHECK(x->reason == BH_EXIT_STOPPED);
    CHECK(bh_vm_get_state(t.vm) == BH_VM_STOPPED);
    bh_regs r;
    REQUIRE_OK(bh_vcpu_get_regs(t.vm, 0, &r, &e));
    CHECK((r.rflags & 0x200) == 0); /* interrupts were off */
    CHECK(long_mode ? r.rip == GB_CODE : r.rip == 0x1001);
    REQUIRE_OK(bh_vm_stop(t.vm, &e)); /* idempotent */
    tvm_destroy(&t);
}

void test_stop_spinning_cpl0_interrupts_off(void)
{
    stop_spinning(false);
}

void test_stop_spinning_cpl3_interrupts_off(void)
{
    stop_spinning(true);
}

static uint64_t read_counter(test_vm *t, uint64_t gpa)
{
    uint64_t v = 0;
    bh_error e = {0};
    if (bh_mem_read(t->vm, gpa, &v, 8, &e) != 0)
        tap_diag("bh_mem_read: %s", e.message);
    return v;
}

/* A CPL3 loop counts in guest memory: the count freezes while paused and moves again on resume. */
void test_pause_resume_spinning_guest(void)
{
    test_vm t;
    bh_error e = {0};
    if (!tvm_create(&t, 2 * MIB, 1, false))
        return;
    REQUIRE_OK(gb_long_mode_tables(t.vm, &e));
    REQUIRE_OK(gb_load(t.vm, GB_CODE, g_count64, g_count64_len, &e));
    REQUIRE_OK(gb_long_mode(t.vm, 0, GB_CODE, GB_STACK, 3, &e));
    CHECK(bh_vm_pause(t.vm, &e) == BH_E_STATE); /* not running yet */
    REQUIRE_OK(bh_vm_start(t.vm, &e));
    double worst = 0, slowest_resume = 0;
    for (int round = 0; round < 20; round++) {
        tap_sleep_ms(10);
        double start = tap_now();
        REQUIRE_OK(bh_vm_pause(t.vm, &e));
        double took = tap_now() - start;
        worst = took > worst ? took : worst;
        CHECK(bh_vm_get_state(t.vm) == BH_VM_PAUSED);
        uint64_t c1 = read_counter(&t, GB_DATA);
        tap_sleep_ms(10);
        uint64_t c2 = read_counter(&t, GB_DATA);
        CHECK_EQ_U64(c2, c1);
        bh_regs r;
        REQUIRE_OK(bh_vcpu_get_regs(t.vm, 0, &r, &e)); /* allowed while paused */
        CHECK(r.rip >= GB_CODE && r.rip < GB_CODE + g_count64_len);
        CHECK(bh_vm_pause(t.vm, &e) == BH_E_STATE);
        REQUIRE_OK(bh_vm_resume(t.vm, &e));
        CHECK(bh_vm_resume(t.vm, &e) == BH_E_STATE);
        /* Progress, not speed: on a loaded 2-core host the vCPU thread may wait for a CPU. */
        double resumed = tap_now();
        while (read_counter(&t, GB_DATA) == c2 && tap_now() - resumed < 2.0)
            tap_sleep_ms(1);
        double moved_after = tap_now() - resumed;
        slowest_resume = moved_after > slowest_resume ? moved_after : slowest_resume;
        if (read_counter(&t, GB_DATA) == c2) {
            tap_diag("round %d: counter did not move within 2 s of resume", round);
            tap_failures++;
        }
    }
    tap_diag("slowest bh_vm_pause: %.2f ms; slowest first progress after resume: %.2f ms; counter reached %llu",
             worst * 1000, slowest_resume * 1000, (unsigned long long)read_counter(&t, GB_DATA));
    REQUIRE_OK(bh_vm_pause(t.vm, &e));
    CHECK(timed_stop(&t) < 1.0); /* stop from PAUSED */
    CHECK(t.exit_count == 1 && t.exits[0].reason == BH_EXIT_STOPPED);
    /* RUNNING/PAUSED alternate, then STOPPED. */
    CHECK(t.state_count == 2 + 2 * 20 + 1);
    CHECK(t.states[0] == BH_VM_RUNNING && t.states[1] == BH_VM_PAUSED && t.states[t.state_count - 1] == BH_VM_STOPPED);
    tvm_destroy(&t);
}

/* Two vCPUs at CPL3, same code, different registers: each reports its own RAX and counts to 10^6 in
 * its own memory word. */
void test_two_vcpus_separate_state(void)
{
    test_vm t;
    bh_error e = {0};
    io_log log;
    iolog_init(&log, 0);
    if (!tvm_create(&t, 2 * MIB, 2, false))
        return;
    REQUIRE_OK(bh_vm_register_pio(t.vm, 0x10, 5, iolog_handler, &log, &e)); /* out 0x10/0x11, eax */
    REQUIRE_OK(gb_long_mode_tables(t.vm, &e));
    REQUIRE_OK(gb_load(t.vm, GB_CODE, g_twovcpu, g_twovcpu_len, &e));
    for (uint32_t v = 0; v < 2; v++) {
        REQUIRE_OK(gb_long_mode(t.vm, v, GB_CODE, GB_STACK - v * 0x1000, 3, &e));
        bh_regs r;
        REQUIRE_OK(bh_vcpu_get_regs(t.vm, v, &r, &e));
        r.rax = 0xa0 + v;
        r.rbx = GB_DATA + 8 * v;
        REQUIRE_OK(bh_vcpu_set_regs(t.vm, v, &r, &e));
    }
    REQUIRE_OK(bh_vm_start(t.vm, &e));
    double deadline = tap_now() + 10;
    while (tap_now() < deadline) {
        pthread_mutex_lock(&log.lock);
        int n = log.count;
        pthread_mutex_unlock(&log.lock);
        if (n >= 4)
            break;
        tap_sleep_ms(5);
    }
    REQUIRE_OK(bh_vm_stop(t.vm, &e));
    REQUIRE(log.count == 4);
    int seen[2][2] = {{0}};
    for (int i = 0; i < 4; i++) {
        const bh_io_access *a = &log.entries[i];
        REQUIRE(a->vcpu < 2);
        CHECK_EQ_U64(access_value(a), 0xa0 + a->vcpu);
        seen[a->vcpu][a->addr - 0x10]++;
    }
    CHECK(seen[0][0] == 1 && seen[0][1] == 1 && seen[1][0] == 1 && seen[1][1] == 1);
    CHECK_EQ_U64(read_counter(&t, GB_DATA), 1000000);
    CHECK_EQ_U64(read_counter(&t, GB_DATA + 8), 1000000);
    for (uint32_t v = 0; v < 2; v++) {
        bh_regs r;
        REQUIRE_OK(bh_vcpu_get_regs(t.vm, v, &r, &e));
        CHECK_EQ_U64(r.rax, 0xa0 + v);
        CHECK_EQ_U64(r.rsp, GB_STACK - v * 0x1000);
    }
    tvm_destroy(&t);
}

/* ---- pending I/O ------------------------------------------------------------------------------ */

/* Port 0x10 answers BH_IO_PENDING and records that it did; port 0x12 logs. */
typedef struct pending_dev {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    int pending_calls;
    test_vm *t;
    int completer_rc_wrong_size;
    int completer_rc;
    int completer_rc_stale;
    int delay_ms;
    uint64_t token; /* of the last pending access */
} pending_dev;

static bh_io_result pending_handler(void *opaque, bh_io_access *access)
{
    pending_dev *d = opaque;
    pthread_mutex_lock(&d->lock);
    d->token = access->token;
    d->pending_calls++;
    pthread_cond_broadcast(&d->cond);
    pthread_mutex_unlock(&d->lock);
    return BH_IO_PENDING;
}

static bool wait_pending_call(pending_dev *d)
{
    double deadline = tap_now() + 10;
    pthread_mutex_lock(&d->lock);
    while (d->pending_calls == 0 && tap_now() < deadline) {
        pthread_mutex_unlock(&d->lock);
        tap_sleep_ms(1);
        pthread_mutex_lock(&d->lock);
    }
    bool ok = d->pending_calls > 0;
    pthread_mutex_unlock(&d->lock);
    return ok;
}

static void *completer(void *arg)
{
    pending_dev *d = arg;
    bh_error e = {0};
    wait_pending_call(d);
    tap_sleep_ms(d->delay_ms);
    const uint8_t value[2] = {0x34, 0x12};
    pthread_mutex_lock(&d->lock);
    uint64_t token = d->token;
    pthread_mutex_unlock(&d->lock);
    d->completer_rc_wrong_size = bh_vcpu_complete_io(d->t->vm, 0, token, value, 4, true, &e);
    d->completer_rc_stale = bh_vcpu_complete_io(d->t->vm, 0, token + 1, value, 2, true, &e);
    d->completer_rc = bh_vcpu_complete_io(d->t->vm, 0, token, value, 2, true, &e);
    return NULL;
}

static bool setup_pending_vm(test_vm *t, pending_dev *d, io_log *log)
{
    bh_error e = {0};
    memset(d, 0, sizeof *d);
    pthread_mutex_init(&d->lock, NULL);
    pthread_cond_init(&d->cond, NULL);
    d->t = t;
    iolog_init(log, 0);
    if (!tvm_create(t, 2 * MIB, 1, false))
        return false;
    if (bh_vm_register_pio(t->vm, 0x10, 2, pending_handler, d, &e) ||
        bh_vm_register_pio(t->vm, 0x12, 2, iolog_handler, log, &e) ||
        gb_load(t->vm, 0x1000, g_pending, g_pending_len, &e) || gb_real_mode(t->vm, 0, 0x1000, &e)) {
        tap_diag("setup: %s", e.message);
        tap_failures++;
        return false;
    }
    return true;
}

/* `in ax, 0x10` is answered 30 ms later by another thread; the guest echoes it to port 0x12. */
void test_io_pending_completed_from_other_thread(void)
{
    test_vm t;
    pending_dev d;
    io_log log;
    bh_error e = {0};
    if (!setup_pending_vm(&t, &d, &log))
        return;
    uint8_t junk[2] = {0};
    CHECK(bh_vcpu_complete_io(t.vm, 0, 1, junk, 2, true, &e) == BH_E_STATE); /* nothing pending */
    CHECK(bh_vcpu_complete_io(t.vm, 7, 1, junk, 2, true, &e) == BH_E_INVALID_ARG);
    d.delay_ms = 30;
    pthread_t th;
    REQUIRE(pthread_create(&th, NULL, completer, &d) == 0);
    REQUIRE_OK(bh_vm_start(t.vm, &e));
    pthread_join(th, NULL);
    CHECK(d.completer_rc_wrong_size == BH_E_INVALID_ARG);
    CHECK(d.completer_rc_stale == BH_E_STATE); /* a token that is not the pending access's */
    CHECK(d.completer_rc == BH_OK);
    REQUIRE(tvm_wait_exits(&t, 1, 10));
    const bh_vcpu_exit *x = tvm_exit_of(&t, 0);
    REQUIRE(x);
    CHECK(x->reason == BH_EXIT_HLT);
    REQUIRE(log.count == 1);
    CHECK_EQ_U64(access_value(&log.entries[0]), 0x1234);
    CHECK(bh_vcpu_complete_io(t.vm, 0, d.token, junk, 2, true, &e) == BH_E_STATE); /* late: done already */
    tvm_destroy(&t);
}

/* Nobody ever completes the access: bh_vm_stop must still return promptly. */
void test_io_pending_stop_while_waiting(void)
{
    test_vm t;
    pending_dev d;
    io_log log;
    bh_error e = {0};
    if (!setup_pending_vm(&t, &d, &log))
        return;
    REQUIRE_OK(bh_vm_start(t.vm, &e));
    REQUIRE(wait_pending_call(&d));
    tap_sleep_ms(20);
    CHECK(bh_vm_get_state(t.vm) == BH_VM_RUNNING);
    double took = timed_stop(&t);
    tap_diag("stop while a vCPU waits on a pending I/O took %.2f ms", took * 1000);
    CHECK(took < 1.0);
    const bh_vcpu_exit *x = tvm_exit_of(&t, 0);
    REQUIRE(x);
    CHECK(x->reason == BH_EXIT_STOPPED);
    CHECK(log.count == 0);
    uint8_t v[2] = {0};
    CHECK(bh_vcpu_complete_io(t.vm, 0, d.token, v, 2, true, &e) == BH_E_STATE); /* abandoned by the stop */
    tvm_destroy(&t);
}

/* A vCPU waiting on a pending access counts as parked; the completion made while paused is applied,
 * and the guest continues only after resume. */
void test_io_pending_pause_while_waiting(void)
{
    test_vm t;
    pending_dev d;
    io_log log;
    bh_error e = {0};
    if (!setup_pending_vm(&t, &d, &log))
        return;
    REQUIRE_OK(bh_vm_start(t.vm, &e));
    REQUIRE(wait_pending_call(&d));
    double start = tap_now();
    REQUIRE_OK(bh_vm_pause(t.vm, &e));
    CHECK(tap_now() - start < 1.0);
    CHECK(bh_vm_get_state(t.vm) == BH_VM_PAUSED);
    const uint8_t value[2] = {0x78, 0x56};
    REQUIRE_OK(bh_vcpu_complete_io(t.vm, 0, d.token, value, 2, true, &e));
    tap_sleep_ms(30);
    CHECK(log.count == 0); /* parked: the echo has not run */
    CHECK(t.exit_count == 0);
    REQUIRE_OK(bh_vm_resume(t.vm, &e));
    REQUIRE(tvm_wait_exits(&t, 1, 10));
    REQUIRE(log.count == 1);
    CHECK_EQ_U64(access_value(&log.entries[0]), 0x5678);
    CHECK(t.exits[0].reason == BH_EXIT_HLT);
    tvm_destroy(&t);
}

/* ---- misuse ----------------------------------------------------------------------------------- */

typedef struct misuse_dev {
    test_vm *t;
    int pause_rc, stop_rc, regs_rc, other_regs_rc;
    uint64_t rip;
} misuse_dev;

static bh_io_result misuse_handler(void *opaque, bh_io_access *access)
{
    misuse_dev *m = opaque;
    bh_error e = {0};
    bh_regs r;
    (void)access;
    m->pause_rc = bh_vm_pause(m->t->vm, &e);
    m->stop_rc = bh_vm_stop(m->t->vm, &e);
    m->regs_rc = bh_vcpu_get_regs(m->t->vm, 0, &r, &e); /* its own vCPU: allowed */
    m->rip = r.rip;
    m->other_regs_rc = bh_vcpu_get_regs(m->t->vm, 1, &r, &e); /* another, running: refused */
    bh_vm_request_stop(m->t->vm, BH_EXIT_GUEST_REQUEST, 0, "handler asked to stop");
    return BH_IO_DONE;
}

void test_control_from_vcpu_thread_and_misuse(void)
{
    test_vm t;
    bh_error e = {0};
    misuse_dev m = {.t = &t};
    if (!tvm_create(&t, 2 * MIB, 2, false))
        return;
    REQUIRE_OK(bh_vm_register_pio(t.vm, 0x10, 1, misuse_handler, &m, &e));
    REQUIRE_OK(gb_load(t.vm, 0x1000, g_real_io, g_real_io_len, &e));
    REQUIRE_OK(gb_load(t.vm, 0x2000, g_spin16, g_spin16_len, &e));
    REQUIRE_OK(gb_real_mode(t.vm, 0, 0x1000, &e));
    REQUIRE_OK(gb_real_mode(t.vm, 1, 0x2000, &e));
    CHECK(bh_vm_resume(t.vm, &e) == BH_E_STATE);
    REQUIRE_OK(bh_vm_start(t.vm, &e));
    CHECK(bh_vm_start(t.vm, &e) == BH_E_STATE);
    REQUIRE(tvm_wait_exits(&t, 2, 10));
    CHECK(m.pause_rc == BH_E_STATE);
    CHECK(m.stop_rc == BH_E_STATE);
    CHECK(m.regs_rc == BH_OK);
    CHECK_EQ_U64(m.rip, 0x1004); /* after the 2-byte `out 0x10, al` at 0x1002 */
    CHECK(m.other_regs_rc == BH_E_STATE);
    const bh_vcpu_exit *x0 = tvm_exit_of(&t, 0), *x1 = tvm_exit_of(&t, 1);
    REQUIRE(x0 && x1);
    CHECK(x0->reason == BH_EXIT_GUEST_REQUEST && x1->reason == BH_EXIT_GUEST_REQUEST);
    CHECK(strstr(x1->message, "handler asked to stop") != NULL);
    REQUIRE_OK(bh_vm_stop(t.vm, &e));
    CHECK(bh_vm_start(t.vm, &e) == BH_E_STATE); /* a stopped VM cannot be restarted */
    CHECK(bh_vm_pause(t.vm, &e) == BH_E_STATE);
    CHECK(bh_vm_resume(t.vm, &e) == BH_E_STATE);
    REQUIRE_OK(bh_vm_stop(t.vm, &e));
    tvm_destroy(&t);

    /* Stop before start: straight to STOPPED, no thread ever made. */
    if (!tvm_create(&t, 2 * MIB, 1, false))
        return;
    REQUIRE_OK(bh_vm_stop(t.vm, &e));
    CHECK(bh_vm_get_state(t.vm) == BH_VM_STOPPED);
    CHECK(bh_vm_start(t.vm, &e) == BH_E_STATE);
    CHECK(t.exit_count == 0);
    tvm_destroy(&t);
}

/* bh_vm_destroy on a running VM: one vCPU spinning at CPL0, one waiting on a pending access. */
void test_destroy_while_running(void)
{
    test_vm t;
    pending_dev d;
    io_log log;
    bh_error e = {0};
    if (!setup_pending_vm(&t, &d, &log))
        return;
    tvm_destroy(&t);
    if (!tvm_create(&t, 2 * MIB, 2, false))
        return;
    REQUIRE_OK(bh_vm_register_pio(t.vm, 0x10, 2, pending_handler, &d, &e));
    REQUIRE_OK(gb_load(t.vm, 0x1000, g_pending, g_pending_len, &e));
    REQUIRE_OK(gb_load(t.vm, 0x2000, g_spin16, g_spin16_len, &e));
    REQUIRE_OK(gb_real_mode(t.vm, 0, 0x1000, &e));
    REQUIRE_OK(gb_real_mode(t.vm, 1, 0x2000, &e));
    REQUIRE_OK(bh_vm_start(t.vm, &e));
    REQUIRE(wait_pending_call(&d));
    tap_sleep_ms(20);
    double start = tap_now();
    bh_vm_destroy(t.vm);
    double took = tap_now() - start;
    t.vm = NULL;
    tap_diag("bh_vm_destroy of a running 2-vCPU VM took %.2f ms", took * 1000);
    CHECK(took < 1.0);
    CHECK(t.exit_count == 2);
    for (int i = 0; i < t.exit_count; i++)
        CHECK(t.exits[i].reason == BH_EXIT_STOPPED);
    tvm_destroy(&t);
}

/* ---- kicks and handlers ----------------------------------------------------------------------- */

typedef struct sleepy_dev {
    pthread_mutex_t lock;
    int calls;
    int eintr; /* how many times the handler's nanosleep was interrupted */
} sleepy_dev;

static bh_io_result sleepy_handler(void *opaque, bh_io_access *access)
{
    sleepy_dev *d = opaque;
    pthread_mutex_lock(&d->lock);
    d->calls++;
    pthread_mutex_unlock(&d->lock);
    struct timespec ts = {0, 100 * 1000 * 1000};
    int interrupted = 0;
    while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
        interrupted++;
    pthread_mutex_lock(&d->lock);
    d->eintr += interrupted;
    pthread_mutex_unlock(&d->lock);
    memset(access->data, 0, sizeof access->data);
    return BH_IO_DONE;
}

/* A pause and a stop issued while a handler runs wait for it, and their kicks do not interrupt the
 * handler's own system calls (the kick signal is only unblocked inside KVM_RUN). */
void test_kick_does_not_interrupt_handler(void)
{
    test_vm t;
    bh_error e = {0};
    sleepy_dev d = {.calls = 0};
    pthread_mutex_init(&d.lock, NULL);
    if (!tvm_create(&t, 2 * MIB, 1, false))
        return;
    REQUIRE_OK(bh_vm_register_pio(t.vm, 0x10, 4, sleepy_handler, &d, &e));
    REQUIRE_OK(gb_load(t.vm, 0x1000, g_pending, g_pending_len, &e)); /* in ax,0x10; out 0x12,ax; hlt */
    REQUIRE_OK(gb_real_mode(t.vm, 0, 0x1000, &e));
    REQUIRE_OK(bh_vm_start(t.vm, &e));
    for (int i = 0; i < 1000; i++) {
        pthread_mutex_lock(&d.lock);
        int calls = d.calls;
        pthread_mutex_unlock(&d.lock);
        if (calls)
            break;
        tap_sleep_ms(1);
    }
    double start = tap_now();
    REQUIRE_OK(bh_vm_pause(t.vm, &e));
    double paused_after = tap_now() - start;
    tap_diag("pause during a 100 ms handler returned after %.1f ms", paused_after * 1000);
    CHECK(paused_after > 0.05); /* it waited for the handler */
    REQUIRE_OK(bh_vm_resume(t.vm, &e));
    tap_sleep_ms(20); /* the second handler call (out 0x12) is now sleeping */
    REQUIRE_OK(bh_vm_stop(t.vm, &e));
    CHECK(d.calls == 2);
    CHECK(d.eintr == 0);
    tvm_destroy(&t);
}

/* Every access to port 0x10 is answered later by a completer thread, unless `hold` is set. */
typedef struct auto_completer {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    test_vm *t;
    int calls, completed;
    uint8_t values[8];
    uint64_t token;
    bool hold, quit;
} auto_completer;

static bh_io_result deferred_handler(void *opaque, bh_io_access *access)
{
    auto_completer *c = opaque;
    pthread_mutex_lock(&c->lock);
    if (c->calls < 8)
        c->values[c->calls] = access->data[0];
    c->token = access->token;
    c->calls++;
    pthread_cond_broadcast(&c->cond);
    pthread_mutex_unlock(&c->lock);
    return BH_IO_PENDING;
}

static void *auto_complete(void *arg)
{
    auto_completer *c = arg;
    bh_error e = {0};
    pthread_mutex_lock(&c->lock);
    while (!c->quit) {
        if (c->hold || c->completed >= c->calls) {
            pthread_cond_wait(&c->cond, &c->lock);
            continue;
        }
        c->completed++;
        uint64_t token = c->token;
        pthread_mutex_unlock(&c->lock);
        if (bh_vcpu_complete_io(c->t->vm, 0, token, NULL, 0, true, &e) != 0)
            tap_diag("auto_complete: %s", e.message);
        pthread_mutex_lock(&c->lock);
    }
    pthread_mutex_unlock(&c->lock);
    return NULL;
}

static int completer_calls(auto_completer *c)
{
    pthread_mutex_lock(&c->lock);
    int n = c->calls;
    pthread_mutex_unlock(&c->lock);
    return n;
}

/* `rep outsb` of 4 bytes where every element is pending. The first is completed while the VM is
 * paused: no further element may reach the device until resume. */
void test_io_pending_string_io_held_during_pause(void)
{
    test_vm t;
    bh_error e = {0};
    auto_completer c = {.hold = true};
    pthread_mutex_init(&c.lock, NULL);
    pthread_cond_init(&c.cond, NULL);
    c.t = &t;
    if (!tvm_create(&t, 2 * MIB, 1, false))
        return;
    const uint8_t bytes[4] = {0x11, 0x22, 0x33, 0x44};
    REQUIRE_OK(bh_mem_write(t.vm, 0x500, bytes, 4, &e));
    REQUIRE_OK(bh_vm_register_pio(t.vm, 0x10, 1, deferred_handler, &c, &e));
    REQUIRE_OK(gb_load(t.vm, 0x1000, g_string_pending, g_string_pending_len, &e));
    REQUIRE_OK(gb_real_mode(t.vm, 0, 0x1000, &e));
    pthread_t th;
    REQUIRE(pthread_create(&th, NULL, auto_complete, &c) == 0);
    REQUIRE_OK(bh_vm_start(t.vm, &e));
    for (int i = 0; i < 5000 && completer_calls(&c) == 0; i++)
        tap_sleep_ms(1);
    CHECK(completer_calls(&c) == 1);
    REQUIRE_OK(bh_vm_pause(t.vm, &e));
    pthread_mutex_lock(&c.lock);
    uint64_t first_token = c.token;
    pthread_mutex_unlock(&c.lock);
    REQUIRE_OK(bh_vcpu_complete_io(t.vm, 0, first_token, NULL, 0, true, &e));
    pthread_mutex_lock(&c.lock);
    c.completed = 1;
    pthread_mutex_unlock(&c.lock);
    tap_sleep_ms(30);
    CHECK(completer_calls(&c) == 1); /* held while paused */
    pthread_mutex_lock(&c.lock);
    c.hold = false;
    pthread_cond_broadcast(&c.cond);
    pthread_mutex_unlock(&c.lock);
    REQUIRE_OK(bh_vm_resume(t.vm, &e));
    bool exited = tvm_wait_exits(&t, 1, 10);
    pthread_mutex_lock(&c.lock);
    c.quit = true;
    pthread_cond_broadcast(&c.cond);
    pthread_mutex_unlock(&c.lock);
    pthread_join(th, NULL);
    REQUIRE(exited);
    CHECK(t.exits[0].reason == BH_EXIT_HLT);
    CHECK(c.calls == 4);
    CHECK(memcmp(c.values, bytes, 4) == 0);
    bh_vm_stats st;
    bh_vm_get_stats(t.vm, &st);
    tap_diag("4 pending string elements arrived in %llu port I/O exit(s)", (unsigned long long)st.pio_exits);
    tvm_destroy(&t);
}
