/*
 * control.c — the VM state machine: start, pause, resume, stop.
 *
 *   CREATED --start--> RUNNING --pause--> PAUSED --resume--> RUNNING
 *   any state --stop / request_stop / a fatal vCPU exit / every vCPU gone--> STOPPED (final)
 *
 * Kicking a vCPU out of KVM_RUN takes two steps, because either alone has a window:
 *  - kvm_run->immediate_exit = 1 makes a KVM_RUN that has not yet entered the guest return EINTR;
 *  - a signal (SIGRTMIN+4, handler that does nothing, no SA_RESTART) interrupts one already inside.
 *    vCPU threads unblock it only inside KVM_RUN (run_loop.c), so it never interrupts a handler.
 * Both are done with vm->lock held, and the vCPU clears immediate_exit with the lock held right
 * after checking the pause/stop flags, so no kick is ever lost.
 *
 * The I/O thread (io_thread.c) follows the same flags: released with the vCPUs, parked by pause,
 * gone after a stop.
 *
 * A vCPU waiting for bh_vcpu_complete_io counts as parked: pause does not wait for the embedder
 * to answer, and stop wakes it. A handler that is running is not parked: pause and stop wait for
 * it to return, so handlers should be short (or answer BH_IO_PENDING).
 */
#include "internal.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#define STOP_KICK_INTERVAL_NS (20 * 1000 * 1000L) /* pause/stop re-kick this often while waiting */
#define STOP_TIMEOUT_NS (10 * 1000 * 1000 * 1000LL)

static __thread const bh_vm *tls_vm;
static __thread uint32_t tls_vcpu;

int bh_vcpu_kick_signal(void)
{
    return SIGRTMIN + 4;
}

static void kick_handler(int sig)
{
    (void)sig; /* its only job is to make KVM_RUN return EINTR */
}

static void install_kick_signal_once(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = kick_handler;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = 0; /* no SA_RESTART: KVM_RUN must come back with EINTR */
    sigaction(bh_vcpu_kick_signal(), &sa, NULL);
}

void bh_control_install_kick_signal(void)
{
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    pthread_once(&once, install_kick_signal_once);
}

void bh_control_bind_thread(bh_vm *vm, uint32_t index)
{
    tls_vm = vm;
    tls_vcpu = index;
}

bool bh_control_on_vcpu_thread(const bh_vm *vm, uint32_t *vcpu_out)
{
    if (tls_vm != vm)
        return false;
    if (vcpu_out)
        *vcpu_out = tls_vcpu;
    return true;
}

void bh_control_kick_all_locked(bh_vm *vm)
{
    for (uint32_t i = 0; i < vm->vcpu_count; i++) {
        bh_vcpu *v = &vm->vcpus[i];
        if (!v->thread_created || v->phase == BH_PHASE_EXITED)
            continue;
        pthread_cond_broadcast(&v->wake); /* parked or waiting on a pending I/O */
        if (v->phase != BH_PHASE_RUNNING)
            continue;
        __atomic_store_n(&v->run->immediate_exit, 1, __ATOMIC_RELAXED);
        if (!pthread_equal(v->thread, pthread_self()))
            pthread_kill(v->thread, bh_vcpu_kick_signal());
    }
}

bool bh_control_set_state_locked(bh_vm *vm, bh_vm_state state)
{
    if (vm->state == state)
        return false;
    vm->state = state;
    return true;
}

void bh_control_notify_state(bh_vm *vm, bh_vm_state state)
{
    if (vm->config.on_state)
        vm->config.on_state(vm->config.opaque, state);
}

static int not_from_vcpu_thread(const bh_vm *vm, const char *what, bh_error *err)
{
    uint32_t self;
    if (bh_control_on_vcpu_thread(vm, &self))
        return bh_fail(err, BH_E_STATE, 0,
                       "%s called on vCPU %u's own thread; use bh_vm_request_stop from vCPU threads", what, self);
    return BH_OK;
}

static const char *state_name(bh_vm_state s)
{
    switch (s) {
    case BH_VM_CREATED: return "created";
    case BH_VM_RUNNING: return "running";
    case BH_VM_PAUSED: return "paused";
    case BH_VM_STOPPED: return "stopped";
    }
    return "unknown";
}

/* With vm->lock held: ask every vCPU to stop; the first reason given wins. */
static void request_stop_locked(bh_vm *vm, bh_exit_reason reason, uint64_t code, const char *why)
{
    if (!vm->stop_requested) {
        vm->stop_requested = true;
        vm->stop_reason = reason;
        vm->stop_code = code;
        bh_copy_text(vm->stop_why, sizeof vm->stop_why, why ? why : "stop requested");
    }
    bh_control_kick_all_locked(vm);
    bh_io_thread_request_stop_locked(vm);
    pthread_cond_broadcast(&vm->control); /* a pause in progress gives up */
}

/* ----------------------------------------------------------------------------------------------- */

/* Announces RUNNING before any vCPU can run, so callbacks arrive in order (RUNNING before a
 * STOPPED caused by a guest that halts at once), then lets the vCPU threads go. Called without
 * vm->lock held. */
static void announce_running_then_release(bh_vm *vm)
{
    bh_control_notify_state(vm, BH_VM_RUNNING);
    pthread_mutex_lock(&vm->lock);
    vm->released = true;
    for (uint32_t i = 0; i < vm->vcpu_count; i++)
        pthread_cond_broadcast(&vm->vcpus[i].wake);
    bh_io_thread_wake_locked(vm);
    pthread_cond_broadcast(&vm->control); /* a pause waiting for RUNNING to be reported */
    pthread_mutex_unlock(&vm->lock);
}

int bh_vm_start(bh_vm *vm, bh_error *err)
{
    if (!vm)
        return bh_fail(err, BH_E_INVALID_ARG, 0, "bh_vm_start: vm is NULL");
    pthread_mutex_lock(&vm->lock);
    if (vm->state != BH_VM_CREATED) {
        bh_vm_state s = vm->state;
        pthread_mutex_unlock(&vm->lock);
        return bh_fail(err, BH_E_STATE, 0, "cannot start a VM that is %s (only a created VM starts)", state_name(s));
    }
    vm->state = BH_VM_RUNNING;

    /* Threads inherit the creator's mask: start them with everything blocked so no process signal
     * lands on a vCPU thread before it sets its own mask. */
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    bh_error io_err = {0};
    int rc = 0;
    if (bh_io_thread_start_locked(vm, &io_err) != BH_OK)
        rc = io_err.sys_errno ? io_err.sys_errno : EAGAIN;
    for (uint32_t i = 0; i < vm->vcpu_count && rc == 0; i++) {
        bh_vcpu *v = &vm->vcpus[i];
        v->phase = BH_PHASE_RUNNING;
        rc = pthread_create(&v->thread, NULL, bh_vcpu_thread_main, v);
        if (rc == 0) {
            v->thread_created = true;
            vm->threads_running++;
        } else {
            v->phase = BH_PHASE_NOT_STARTED;
        }
    }
    pthread_sigmask(SIG_SETMASK, &old, NULL);

    if (rc != 0) {
        request_stop_locked(vm, BH_EXIT_STOPPED, 0, "bh_vm_start failed to create a thread");
        pthread_mutex_unlock(&vm->lock);
        bh_vm_stop(vm, NULL);
        return bh_fail(err, BH_E_SYSTEM, rc, "pthread_create for a vCPU or the I/O thread failed: %s", strerror(rc));
    }
    pthread_mutex_unlock(&vm->lock);
    announce_running_then_release(vm);
    return BH_OK;
}

static void deadline_after(struct timespec *ts, long long ns)
{
    clock_gettime(CLOCK_MONOTONIC, ts);
    ns += ts->tv_nsec;
    ts->tv_sec += ns / 1000000000LL;
    ts->tv_nsec = ns % 1000000000LL;
}

static bool all_quiescent_locked(const bh_vm *vm)
{
    for (uint32_t i = 0; i < vm->vcpu_count; i++) {
        bh_vcpu_phase p = vm->vcpus[i].phase;
        if (p == BH_PHASE_RUNNING)
            return false;
    }
    return true;
}

int bh_vm_pause(bh_vm *vm, bh_error *err)
{
    if (!vm)
        return bh_fail(err, BH_E_INVALID_ARG, 0, "bh_vm_pause: vm is NULL");
    int rc = not_from_vcpu_thread(vm, "bh_vm_pause", err);
    if (rc)
        return rc;
    pthread_mutex_lock(&vm->lock);
    if (vm->state != BH_VM_RUNNING || vm->stop_requested || vm->pause_requested) {
        bh_vm_state s = vm->state;
        const char *detail = vm->stop_requested ? " (stopping)" : vm->pause_requested ? " (already pausing)" : "";
        pthread_mutex_unlock(&vm->lock);
        return bh_fail(err, BH_E_STATE, 0, "cannot pause a VM that is %s%s", state_name(s),
                       s == BH_VM_RUNNING ? detail : "");
    }
    /* A start or resume still reporting RUNNING: wait, so PAUSED is never reported before it. */
    while (!vm->released && !vm->stop_requested)
        pthread_cond_wait(&vm->control, &vm->lock);
    vm->pause_requested = true;
    /* A vCPU waiting on a pending I/O counts as parked: it re-checks the pause flag before KVM_RUN.
     * The I/O thread parks too, so no device touches guest memory while the VM is paused.
     * No time limit (a running handler must finish), but re-kick now and then as stop does. */
    while ((!all_quiescent_locked(vm) || !bh_io_thread_parked_locked(vm)) && !vm->stop_requested) {
        bh_control_kick_all_locked(vm);
        bh_io_thread_wake_locked(vm);
        struct timespec slice;
        deadline_after(&slice, STOP_KICK_INTERVAL_NS);
        pthread_cond_timedwait(&vm->control, &vm->lock, &slice);
    }
    if (vm->stop_requested || vm->state != BH_VM_RUNNING) {
        vm->pause_requested = false;
        pthread_mutex_unlock(&vm->lock);
        return bh_fail(err, BH_E_STATE, 0, "the VM stopped while pausing");
    }
    vm->state = BH_VM_PAUSED;
    bh_stat_add(&vm->stats.pauses);
    pthread_mutex_unlock(&vm->lock);
    bh_control_notify_state(vm, BH_VM_PAUSED);
    return BH_OK;
}

int bh_vm_resume(bh_vm *vm, bh_error *err)
{
    if (!vm)
        return bh_fail(err, BH_E_INVALID_ARG, 0, "bh_vm_resume: vm is NULL");
    pthread_mutex_lock(&vm->lock);
    if (vm->state != BH_VM_PAUSED || vm->stop_requested) {
        bh_vm_state s = vm->state;
        pthread_mutex_unlock(&vm->lock);
        return bh_fail(err, BH_E_STATE, 0, "cannot resume a VM that is %s (only a paused VM resumes)",
                       s == BH_VM_PAUSED ? "stopping" : state_name(s));
    }
    /* The vCPUs stay parked (`released` false) until RUNNING has been reported: otherwise a guest
     * that stops at once could have its STOPPED reported before this RUNNING. */
    vm->released = false;
    vm->pause_requested = false;
    vm->state = BH_VM_RUNNING;
    pthread_mutex_unlock(&vm->lock);
    announce_running_then_release(vm);
    return BH_OK;
}

void bh_vm_request_stop(bh_vm *vm, bh_exit_reason reason, uint64_t code, const char *why)
{
    if (!vm)
        return;
    pthread_mutex_lock(&vm->lock);
    request_stop_locked(vm, reason, code, why);
    bool changed = false;
    if (vm->threads_running == 0)
        changed = bh_control_set_state_locked(vm, BH_VM_STOPPED); /* never started */
    pthread_mutex_unlock(&vm->lock);
    if (changed)
        bh_control_notify_state(vm, BH_VM_STOPPED);
}

static bool before(const struct timespec *a, const struct timespec *b)
{
    return a->tv_sec < b->tv_sec || (a->tv_sec == b->tv_sec && a->tv_nsec < b->tv_nsec);
}

/* With vm->lock held: wait (re-kicking, in case a thread was between checks) until every vCPU
 * thread has left its loop. vm->control waits on CLOCK_MONOTONIC (see vm.c). */
static bool wait_threads_exited_locked(bh_vm *vm)
{
    struct timespec deadline, now;
    deadline_after(&deadline, STOP_TIMEOUT_NS);
    while (vm->threads_running > 0) {
        clock_gettime(CLOCK_MONOTONIC, &now);
        if (!before(&now, &deadline))
            return false;
        bh_control_kick_all_locked(vm);
        struct timespec slice;
        deadline_after(&slice, STOP_KICK_INTERVAL_NS);
        pthread_cond_timedwait(&vm->control, &vm->lock, &slice);
    }
    return true;
}

void bh_control_join_all(bh_vm *vm)
{
    pthread_mutex_lock(&vm->join_lock);
    for (uint32_t i = 0; i < vm->vcpu_count; i++) {
        bh_vcpu *v = &vm->vcpus[i];
        if (v->thread_created && !v->thread_joined) {
            pthread_join(v->thread, NULL);
            v->thread_joined = true;
        }
    }
    /* The I/O thread leaves once the stop is requested (or every vCPU is gone); a handler that is
     * running finishes first. */
    bh_io_thread_join(vm);
    pthread_mutex_unlock(&vm->join_lock);
}

int bh_vm_stop(bh_vm *vm, bh_error *err)
{
    if (!vm)
        return bh_fail(err, BH_E_INVALID_ARG, 0, "bh_vm_stop: vm is NULL");
    int rc = not_from_vcpu_thread(vm, "bh_vm_stop", err);
    if (rc)
        return rc;
    pthread_mutex_lock(&vm->lock);
    request_stop_locked(vm, BH_EXIT_STOPPED, 0, "stopped by bh_vm_stop");
    bool changed = false;
    if (vm->threads_running == 0)
        changed = bh_control_set_state_locked(vm, BH_VM_STOPPED);
    bool exited = wait_threads_exited_locked(vm);
    pthread_mutex_unlock(&vm->lock);
    if (changed)
        bh_control_notify_state(vm, BH_VM_STOPPED);
    if (!exited)
        return bh_fail(err, BH_E_TIMEOUT, 0, "vCPU threads did not leave KVM_RUN within 10 s");
    bh_control_join_all(vm);
    bh_devices_stop(vm); /* every thread is gone: nothing can reach a device any more */
    return BH_OK;
}
