/*
 * run_loop.c — the life of one vCPU thread: KVM_RUN, handle the exit, repeat, until a terminal exit
 * or a stop. Guest-controlled values in kvm_run (string-I/O offsets and counts, MMIO lengths) are
 * checked before use: a broken guest ends its VM, never the host.
 */
#include "internal.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <time.h>

typedef enum loop_step {
    STEP_CONTINUE,
    STEP_LEAVE,   /* terminal exit; `exit` is filled */
    STEP_STOPPED, /* the VM is stopping */
} loop_step;

/*
 * Signals on a vCPU thread. Everything is blocked here except synchronous fault signals (so a host
 * crash handler still sees a bug in this thread). The kick signal is unblocked only *inside* KVM_RUN
 * through KVM_SET_SIGNAL_MASK, so a kick never interrupts a device handler's own system calls with
 * EINTR: a kick that arrives outside KVM_RUN stays pending, and immediate_exit (or the pending signal)
 * makes the next KVM_RUN return at once. The pending signal is then consumed by drain_kicks().
 * If KVM_SET_SIGNAL_MASK is refused, the kick signal is simply left unblocked.
 */
static void set_thread_signal_mask(bh_vcpu *vcpu)
{
    sigset_t set;
    sigfillset(&set);
    sigdelset(&set, SIGSEGV);
    sigdelset(&set, SIGBUS);
    sigdelset(&set, SIGFPE);
    sigdelset(&set, SIGILL);
    pthread_sigmask(SIG_SETMASK, &set, NULL);

    sigset_t in_run = set;
    sigdelset(&in_run, bh_vcpu_kick_signal());
    /* The kernel's sigset is 8 bytes on x86-64: the first 8 bytes of glibc's sigset_t. */
    union {
        struct kvm_signal_mask head;
        uint8_t bytes[sizeof(struct kvm_signal_mask) + 8];
    } mask;
    memset(&mask, 0, sizeof mask);
    mask.head.len = 8;
    memcpy(mask.head.sigset, &in_run, 8);
    if (ioctl(vcpu->fd, KVM_SET_SIGNAL_MASK, &mask) < 0) {
        sigset_t kick;
        sigemptyset(&kick);
        sigaddset(&kick, bh_vcpu_kick_signal());
        pthread_sigmask(SIG_UNBLOCK, &kick, NULL);
    }
}

/* Consumes kicks left pending (blocked) outside KVM_RUN, so they do not end every later KVM_RUN. */
static void drain_kicks(void)
{
    sigset_t kick;
    sigemptyset(&kick);
    sigaddset(&kick, bh_vcpu_kick_signal());
    struct timespec zero = {0, 0};
    while (sigtimedwait(&kick, NULL, &zero) > 0) {
    }
}

/* Parks while paused. Returns false when the VM is stopping. Clearing immediate_exit under the lock
 * pairs with the kicker setting it under the lock: a kick either is seen here or makes the next
 * KVM_RUN return at once. */
static bool wait_until_runnable(bh_vcpu *vcpu)
{
    bh_vm *vm = vcpu->vm;
    bool run;
    pthread_mutex_lock(&vm->lock);
    /* Until bh_vm_start has reported RUNNING, stay "running" (not parked) so that a concurrent
     * pause cannot complete, and report PAUSED, before RUNNING was reported. */
    while (!vm->released && !vm->stop_requested)
        pthread_cond_wait(&vcpu->wake, &vm->lock);
    /* `released` is cleared by bh_vm_resume until it has reported RUNNING (see control.c), so a
     * parked vCPU, even one woken spuriously, stays parked until then. */
    while ((vm->pause_requested || !vm->released) && !vm->stop_requested) {
        vcpu->phase = BH_PHASE_PARKED;
        pthread_cond_broadcast(&vm->control);
        pthread_cond_wait(&vcpu->wake, &vm->lock);
    }
    vcpu->phase = BH_PHASE_RUNNING;
    run = !vm->stop_requested;
    if (run)
        __atomic_store_n(&vcpu->run->immediate_exit, 0, __ATOMIC_RELAXED);
    pthread_mutex_unlock(&vm->lock);
    return run;
}

static loop_step leave(bh_vcpu_exit *exit, bh_exit_reason reason, const char *what)
{
    exit->reason = reason;
    bh_copy_text(exit->message, sizeof exit->message, what);
    return STEP_LEAVE;
}

static loop_step io_failed(bh_vcpu_exit *exit, uint64_t addr, const char *what)
{
    exit->reason = BH_EXIT_IO_ERROR;
    exit->detail[0] = addr;
    snprintf(exit->message, sizeof exit->message, "%s 0x%llx", what, (unsigned long long)addr);
    return STEP_LEAVE;
}

static loop_step step_for(bh_io_outcome outcome, bh_vcpu_exit *exit, uint64_t addr, bool mmio)
{
    switch (outcome) {
    case BH_IO_OUTCOME_DONE:
        return STEP_CONTINUE;
    case BH_IO_OUTCOME_STOPPED:
        return STEP_STOPPED;
    case BH_IO_OUTCOME_ERROR:
    default:
        return io_failed(exit, addr, mmio ? "I/O handler failed the MMIO access at" : "I/O handler failed port");
    }
}

/* Port I/O; a `rep ins/outs` arrives as `count` elements packed at data_offset inside kvm_run. */
static loop_step handle_pio(bh_vcpu *vcpu, bh_vcpu_exit *exit)
{
    struct kvm_run *run = vcpu->run;
    uint8_t size = run->io.size;
    uint32_t count = run->io.count;
    uint64_t offset = run->io.data_offset;
    bh_stat_add(&vcpu->vm->stats.pio_exits);
    /* size*count cannot overflow 64 bits (8-bit times 32-bit); the sum is checked against the map. */
    if ((size != 1 && size != 2 && size != 4) || offset > vcpu->run_size ||
        (uint64_t)size * count > vcpu->run_size - offset)
        return io_failed(exit, run->io.port, "malformed port I/O exit (size/count/data_offset) at port");

    uint8_t *data = (uint8_t *)run + offset;
    for (uint32_t i = 0; i < count; i++, data += size) {
        bh_io_access access = {
            .vcpu = vcpu->index,
            .is_mmio = false,
            .is_write = run->io.direction == KVM_EXIT_IO_OUT,
            .size = size,
            .addr = run->io.port,
        };
        if (access.is_write)
            memcpy(access.data, data, size);
        loop_step step = step_for(bh_io_dispatch(vcpu, &access), exit, access.addr, false);
        if (step != STEP_CONTINUE)
            return step;
        if (!access.is_write)
            memcpy(data, access.data, size);
    }
    return STEP_CONTINUE;
}

static loop_step handle_mmio(bh_vcpu *vcpu, bh_vcpu_exit *exit)
{
    struct kvm_run *run = vcpu->run;
    bh_stat_add(&vcpu->vm->stats.mmio_exits);
    if (run->mmio.len == 0 || run->mmio.len > sizeof run->mmio.data)
        return io_failed(exit, run->mmio.phys_addr, "malformed MMIO exit (length) at");
    bh_io_access access = {
        .vcpu = vcpu->index,
        .is_mmio = true,
        .is_write = run->mmio.is_write != 0,
        .size = (uint8_t)run->mmio.len,
        .addr = run->mmio.phys_addr,
    };
    if (access.is_write)
        memcpy(access.data, run->mmio.data, access.size);
    loop_step step = step_for(bh_io_dispatch(vcpu, &access), exit, access.addr, true);
    if (step == STEP_CONTINUE && !access.is_write)
        memcpy(run->mmio.data, access.data, access.size);
    return step;
}

static loop_step handle_system_event(struct kvm_run *run, bh_vcpu_exit *exit)
{
    exit->detail[0] = run->system_event.type;
    exit->detail[1] = run->system_event.ndata > 0 ? run->system_event.data[0] : 0;
    const char *what = "system event";
    switch (run->system_event.type) {
    case KVM_SYSTEM_EVENT_SHUTDOWN: what = "guest requested power-off (KVM_SYSTEM_EVENT_SHUTDOWN)"; break;
    case KVM_SYSTEM_EVENT_RESET: what = "guest requested reset (KVM_SYSTEM_EVENT_RESET)"; break;
    case KVM_SYSTEM_EVENT_CRASH: what = "guest crashed (KVM_SYSTEM_EVENT_CRASH)"; break;
    default: break;
    }
    return leave(exit, BH_EXIT_SYSTEM_EVENT, what);
}

static loop_step handle_internal_error(struct kvm_run *run, bh_vcpu_exit *exit)
{
    uint32_t n = run->internal.ndata;
    exit->detail[0] = run->internal.suberror;
    for (uint32_t i = 0; i < 3 && i < n && i < 16; i++)
        exit->detail[1 + i] = run->internal.data[i];
    const char *what = "KVM internal error";
    switch (run->internal.suberror) {
    case KVM_INTERNAL_ERROR_EMULATION: what = "KVM could not emulate an instruction (KVM_INTERNAL_ERROR_EMULATION)"; break;
    case KVM_INTERNAL_ERROR_SIMUL_EX: what = "exception while delivering an exception (KVM_INTERNAL_ERROR_SIMUL_EX)"; break;
    case KVM_INTERNAL_ERROR_DELIVERY_EV: what = "event delivery failed (KVM_INTERNAL_ERROR_DELIVERY_EV)"; break;
    default: break;
    }
    return leave(exit, BH_EXIT_INTERNAL_ERROR, what);
}

/* Exits the core never asks for (it enables no debug, hypercall, MSR or window exits). */
static loop_step unknown_exit(uint32_t reason, bh_vcpu_exit *exit)
{
    static const struct { uint32_t reason; const char *name; } names[] = {
        {KVM_EXIT_UNKNOWN, "KVM_EXIT_UNKNOWN"},         {KVM_EXIT_EXCEPTION, "KVM_EXIT_EXCEPTION"},
        {KVM_EXIT_HYPERCALL, "KVM_EXIT_HYPERCALL"},     {KVM_EXIT_DEBUG, "KVM_EXIT_DEBUG"},
        {KVM_EXIT_IRQ_WINDOW_OPEN, "KVM_EXIT_IRQ_WINDOW_OPEN"}, {KVM_EXIT_NMI, "KVM_EXIT_NMI"},
        {KVM_EXIT_TPR_ACCESS, "KVM_EXIT_TPR_ACCESS"},   {KVM_EXIT_WATCHDOG, "KVM_EXIT_WATCHDOG"},
        {KVM_EXIT_EPR, "KVM_EXIT_EPR"},                 {KVM_EXIT_IOAPIC_EOI, "KVM_EXIT_IOAPIC_EOI"},
        {KVM_EXIT_HYPERV, "KVM_EXIT_HYPERV"},           {KVM_EXIT_X86_RDMSR, "KVM_EXIT_X86_RDMSR"},
        {KVM_EXIT_X86_WRMSR, "KVM_EXIT_X86_WRMSR"},     {KVM_EXIT_DIRTY_RING_FULL, "KVM_EXIT_DIRTY_RING_FULL"},
        {KVM_EXIT_XEN, "KVM_EXIT_XEN"},                 {KVM_EXIT_NOTIFY, "KVM_EXIT_NOTIFY"},
    };
    const char *name = "an exit reason this core does not know";
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if (names[i].reason == reason)
            name = names[i].name;
    exit->reason = BH_EXIT_UNKNOWN;
    exit->detail[0] = reason;
    snprintf(exit->message, sizeof exit->message, "unhandled KVM exit %u (%s)", reason, name);
    return STEP_LEAVE;
}

static loop_step handle_exit(bh_vcpu *vcpu, bh_vcpu_exit *exit)
{
    struct kvm_run *run = vcpu->run;
    exit->kvm_exit_reason = run->exit_reason;
    switch (run->exit_reason) {
    case KVM_EXIT_IO:
        return handle_pio(vcpu, exit);
    case KVM_EXIT_MMIO:
        return handle_mmio(vcpu, exit);
    case KVM_EXIT_INTR:
        return STEP_CONTINUE; /* a signal; the loop top decides whether to pause or stop */
    case KVM_EXIT_HLT:
        return leave(exit, BH_EXIT_HLT, "HLT (KVM_EXIT_HLT)");
    case KVM_EXIT_SHUTDOWN:
        return leave(exit, BH_EXIT_SHUTDOWN, "triple fault (KVM_EXIT_SHUTDOWN)");
    case KVM_EXIT_SYSTEM_EVENT:
        return handle_system_event(run, exit);
    case KVM_EXIT_FAIL_ENTRY:
        exit->detail[0] = run->fail_entry.hardware_entry_failure_reason;
        exit->detail[1] = run->fail_entry.cpu;
        return leave(exit, BH_EXIT_FAIL_ENTRY, "VM entry failed (KVM_EXIT_FAIL_ENTRY)");
    case KVM_EXIT_INTERNAL_ERROR:
        return handle_internal_error(run, exit);
    default:
        return unknown_exit(run->exit_reason, exit);
    }
}

/* KVM_RUN returned an error: EINTR/EAGAIN are kicks; anything else is fatal for this vCPU. */
static loop_step handle_run_error(bh_vcpu_exit *exit, int e)
{
    if (e == EINTR || e == EAGAIN) {
        drain_kicks();
        return STEP_CONTINUE;
    }
    exit->reason = BH_EXIT_RUN_FAILED;
    exit->error_errno = e;
    snprintf(exit->message, sizeof exit->message, "KVM_RUN failed: %s", strerror(e));
    return STEP_LEAVE;
}

uint64_t bh_vcpu_cpu_ns(const bh_vm *vm, uint32_t index)
{
    if (!vm || index >= vm->vcpu_count)
        return 0;
    bh_vm *m = (bh_vm *)vm;
    bh_vcpu *v = &m->vcpus[index];
    pthread_mutex_lock(&m->lock);
    uint64_t ns = v->cpu_ns_final;
    clockid_t clock;
    struct timespec ts;
    if (v->thread_created && v->phase != BH_PHASE_EXITED && pthread_getcpuclockid(v->thread, &clock) == 0 &&
        clock_gettime(clock, &ts) == 0)
        ns = (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
    pthread_mutex_unlock(&m->lock);
    return ns;
}

static void describe_stop(bh_vcpu *vcpu, bh_vcpu_exit *exit)
{
    bh_vm *vm = vcpu->vm;
    pthread_mutex_lock(&vm->lock);
    exit->reason = vm->stop_reason;
    exit->detail[0] = vm->stop_code;
    bh_copy_text(exit->message, sizeof exit->message, vm->stop_why);
    pthread_mutex_unlock(&vm->lock);
}

static void add_rip(bh_vcpu *vcpu, bh_vcpu_exit *exit)
{
    struct kvm_regs regs;
    if (ioctl(vcpu->fd, KVM_GET_REGS, &regs) < 0)
        return;
    exit->rip = regs.rip;
    size_t used = strlen(exit->message);
    if (exit->reason == BH_EXIT_STOPPED || used >= sizeof exit->message)
        return;
    /* On AMD SVM, KVM resets the vCPU after a shutdown (the VMCB is undefined then), so the faulting
     * address is lost and RIP reads as the reset vector: say so rather than point at 0xfff0. */
    if (exit->reason == BH_EXIT_SHUTDOWN && regs.rip == 0xfff0)
        snprintf(exit->message + used, sizeof exit->message - used,
                 " (registers were reset by the hypervisor; the faulting rip is unknown)");
    else
        snprintf(exit->message + used, sizeof exit->message - used, " at rip 0x%llx", (unsigned long long)regs.rip);
}

/* The vCPU is gone for good: report, and take the VM down unless the exit was benign. */
static void finish(bh_vcpu *vcpu, bh_vcpu_exit *exit)
{
    bh_vm *vm = vcpu->vm;
    add_rip(vcpu, exit);
    if (exit->reason != BH_EXIT_HLT && exit->reason != BH_EXIT_STOPPED &&
        exit->reason != BH_EXIT_GUEST_REQUEST) {
        char why[128];
        int used = snprintf(why, sizeof why, "vCPU %u: ", vcpu->index);
        if (used > 0 && (size_t)used < sizeof why)
            bh_copy_text(why + used, sizeof why - (size_t)used, exit->message);
        bh_vm_request_stop(vm, BH_EXIT_STOPPED, 0, why);
    }
    if (vm->config.on_exit)
        vm->config.on_exit(vm->config.opaque, exit);

    uint64_t cpu = 0;
    struct timespec ts;
    if (clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts) == 0)
        cpu = (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
    pthread_mutex_lock(&vm->lock);
    vcpu->cpu_ns_final = cpu;
    vcpu->phase = BH_PHASE_EXITED;
    bool changed = false;
    if (--vm->threads_running == 0) {
        changed = bh_control_set_state_locked(vm, BH_VM_STOPPED);
        bh_io_thread_request_stop_locked(vm); /* no vCPU is left for the devices to serve */
    }
    pthread_cond_broadcast(&vm->control);
    pthread_mutex_unlock(&vm->lock);
    if (changed)
        bh_control_notify_state(vm, BH_VM_STOPPED);
}

void *bh_vcpu_thread_main(void *arg)
{
    bh_vcpu *vcpu = arg;
    bh_vcpu_exit exit = {.vcpu = vcpu->index};
    loop_step step = STEP_CONTINUE;

    char name[16];
    snprintf(name, sizeof name, "bh-vcpu-%u", vcpu->index);
    pthread_setname_np(pthread_self(), name); /* visible in top -H, gdb, /proc/<pid>/task/<tid>/comm */
    bh_control_bind_thread(vcpu->vm, vcpu->index);
    set_thread_signal_mask(vcpu);
    while (step == STEP_CONTINUE) {
        if (!wait_until_runnable(vcpu)) {
            step = STEP_STOPPED;
            break;
        }
        if (ioctl(vcpu->fd, KVM_RUN, 0) < 0) {
            step = handle_run_error(&exit, errno);
            continue;
        }
        bh_stat_add(&vcpu->vm->stats.exits);
        step = handle_exit(vcpu, &exit);
    }
    if (step == STEP_STOPPED)
        describe_stop(vcpu, &exit);
    finish(vcpu, &exit);
    return NULL;
}
