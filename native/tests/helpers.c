/* helpers.c — see helpers.h. */
#include "helpers.h"

#include <string.h>
#include <time.h>

static void record_exit(void *opaque, const bh_vcpu_exit *exit)
{
    test_vm *t = opaque;
    pthread_mutex_lock(&t->lock);
    if (t->exit_count < TVM_MAX_EXITS)
        t->exits[t->exit_count++] = *exit;
    pthread_cond_broadcast(&t->cond);
    pthread_mutex_unlock(&t->lock);
}

static void record_state(void *opaque, bh_vm_state state)
{
    test_vm *t = opaque;
    pthread_mutex_lock(&t->lock);
    if (t->state_count < TVM_MAX_STATES)
        t->states[t->state_count++] = state;
    int delay = state == BH_VM_RUNNING ? t->running_report_delay_ms : 0;
    pthread_mutex_unlock(&t->lock);
    if (delay)
        tap_sleep_ms(delay); /* widens the window in which a vCPU could run before RUNNING is out */
}

bool tvm_create(test_vm *t, uint64_t memory, uint32_t vcpus, bool irqchip)
{
    memset(t, 0, sizeof *t);
    pthread_mutex_init(&t->lock, NULL);
    pthread_cond_init(&t->cond, NULL);
    t->kvm = tap_open_kvm();
    if (!t->kvm)
        return false;
    bh_vm_config c = {.memory_bytes = memory, .vcpus = vcpus, .irqchip = irqchip,
                      .on_exit = record_exit, .on_state = record_state, .opaque = t};
    bh_error e = {0};
    if (bh_vm_create(t->kvm, &c, &t->vm, &e) != 0) {
        tap_diag("bh_vm_create failed: %s", e.message);
        tap_failures++;
        return false;
    }
    return true;
}

void tvm_destroy(test_vm *t)
{
    bh_vm_destroy(t->vm);
    t->vm = NULL;
    bh_kvm_close(t->kvm);
    t->kvm = NULL;
    pthread_cond_destroy(&t->cond);
    pthread_mutex_destroy(&t->lock);
}

bool tvm_wait_exits(test_vm *t, int n, double timeout_s)
{
    struct timespec deadline;
    clock_gettime(CLOCK_REALTIME, &deadline);
    long long ns = deadline.tv_nsec + (long long)(timeout_s * 1e9);
    deadline.tv_sec += ns / 1000000000LL;
    deadline.tv_nsec = ns % 1000000000LL;
    pthread_mutex_lock(&t->lock);
    while (t->exit_count < n) {
        if (pthread_cond_timedwait(&t->cond, &t->lock, &deadline) != 0)
            break;
    }
    bool ok = t->exit_count >= n;
    pthread_mutex_unlock(&t->lock);
    if (!ok)
        tap_diag("timed out after %.1f s waiting for %d vCPU exit(s)", timeout_s, n);
    return ok;
}

const bh_vcpu_exit *tvm_exit_of(test_vm *t, uint32_t vcpu)
{
    const bh_vcpu_exit *found = NULL;
    pthread_mutex_lock(&t->lock);
    for (int i = 0; i < t->exit_count; i++)
        if (t->exits[i].vcpu == vcpu)
            found = &t->exits[i];
    pthread_mutex_unlock(&t->lock);
    if (found)
        tap_diag("vCPU %u exit: reason %d, kvm exit %u: %s", vcpu, found->reason, found->kvm_exit_reason,
                 found->message);
    return found;
}

void iolog_init(io_log *log, uint64_t read_value)
{
    memset(log, 0, sizeof *log);
    pthread_mutex_init(&log->lock, NULL);
    log->read_value = read_value;
}

uint64_t access_value(const bh_io_access *a)
{
    uint64_t v = 0;
    memcpy(&v, a->data, a->size <= 8 ? a->size : 8);
    return v;
}

bh_io_result iolog_handler(void *opaque, bh_io_access *access)
{
    io_log *log = opaque;
    pthread_mutex_lock(&log->lock);
    if (!access->is_write)
        memcpy(access->data, &log->read_value, access->size);
    if (log->count < IOLOG_MAX)
        log->entries[log->count++] = *access;
    pthread_mutex_unlock(&log->lock);
    return BH_IO_DONE;
}

static bh_io_result done_handler(void *opaque, bh_io_access *access)
{
    test_vm *t = opaque;
    if (access->is_write)
        bh_vm_request_stop(t->vm, BH_EXIT_GUEST_REQUEST, 0, "guest done");
    return BH_IO_DONE;
}

int register_done_port(test_vm *t, bh_error *err)
{
    return bh_vm_register_pio(t->vm, GB_DONE_PORT, 1, done_handler, t, err);
}
