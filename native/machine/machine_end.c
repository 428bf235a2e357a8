/*
 * machine_end.c — how a machine's guest ended, from what the VM reported (the first vCPU exit that
 * was not a plain stop), what the devices saw (a power-device command, a broken device), and two
 * marks of a kernel panic: the console's panic line, and the BIOS warm-reset flag the kernel
 * writes at 0x472 just before it resets after a panic (the machine's command line asks for
 * reboot=k,panic_warm: a panic resets "warm" (0x1234), any other kernel reboot "cold" (0)).
 */
#include <stdio.h>
#include <string.h>

#include "machine_internal.h"

#define BIOS_RESET_FLAG_GPA 0x472
#define BIOS_WARM_RESET 0x1234

const char *bh_machine_end_name(bh_machine_end end)
{
    switch (end) {
    case BH_MACHINE_RUNNING: return "running";
    case BH_MACHINE_POWER_OFF: return "power-off";
    case BH_MACHINE_REBOOT: return "reboot";
    case BH_MACHINE_PANIC: return "panic";
    case BH_MACHINE_TRIPLE_FAULT: return "triple-fault";
    case BH_MACHINE_CRASH: return "crash";
    case BH_MACHINE_DEVICE_FAILURE: return "device-failure";
    case BH_MACHINE_STOPPED: return "stopped";
    }
    return "unknown";
}

/* A reset the kernel made after a panic. */
static bool reset_after_panic(bh_machine *m)
{
    uint16_t flag = 0;
    bh_mem_read(m->vm, BIOS_RESET_FLAG_GPA, &flag, sizeof flag, NULL);
    return flag == BIOS_WARM_RESET || m->panic_seen;
}

static bh_machine_end end_of(bh_machine *m, const bh_vcpu_exit *c, const char **how)
{
    if (m->panic_stop) {
        *how = "kernel panic (the console's panic line; the guest did not reset)";
        return BH_MACHINE_PANIC;
    }
    if (!m->have_cause) {
        *how = "stopped by the host";
        return BH_MACHINE_STOPPED;
    }
    switch (c->reason) {
    case BH_EXIT_GUEST_REQUEST:
        switch (c->detail[0]) {
        case BH_GUEST_REQUEST_POWER_OFF: *how = "power-off through the power device"; return BH_MACHINE_POWER_OFF;
        case BH_GUEST_REQUEST_REBOOT: *how = "reboot through the power device"; return BH_MACHINE_REBOOT;
        case BH_GUEST_REQUEST_RESET_LINE:
            if (reset_after_panic(m)) {
                *how = "kernel panic (reset through the i8042 after the panic)";
                return BH_MACHINE_PANIC;
            }
            *how = "kernel reboot (i8042 reset line)";
            return BH_MACHINE_REBOOT;
        default: *how = c->message; return BH_MACHINE_STOPPED;
        }
    case BH_EXIT_SHUTDOWN:
        if (reset_after_panic(m)) {
            *how = "kernel panic (reset by triple fault after the panic)";
            return BH_MACHINE_PANIC;
        }
        *how = "triple fault";
        return BH_MACHINE_TRIPLE_FAULT;
    case BH_EXIT_DEVICE_FAILURE: *how = c->message; return BH_MACHINE_DEVICE_FAILURE;
    case BH_EXIT_SYSTEM_EVENT:
        if (c->detail[0] == 1) { *how = "KVM_SYSTEM_EVENT_SHUTDOWN"; return BH_MACHINE_POWER_OFF; }
        if (c->detail[0] == 2) { *how = "KVM_SYSTEM_EVENT_RESET"; return BH_MACHINE_REBOOT; }
        *how = c->message;
        return BH_MACHINE_PANIC;
    case BH_EXIT_STOPPED: *how = "stopped by the host"; return BH_MACHINE_STOPPED;
    default: *how = c->message; return BH_MACHINE_CRASH;
    }
}

void bh_machine_classify_locked(bh_machine *m)
{
    bh_machine_exit *x = &m->exit;
    memset(x, 0, sizeof *x);
    const char *how = "";
    x->end = end_of(m, &m->cause, &how);
    if (m->have_cause)
        x->cause = m->cause;
    uint64_t now = bh_machine_now_ns();
    x->ns_since_create = now > m->created_ns ? now - m->created_ns : 0;
    if (x->end == BH_MACHINE_DEVICE_FAILURE)
        snprintf(x->device, sizeof x->device, "%s", m->failed_device);
    snprintf(x->message, sizeof x->message, "%s: %s", bh_machine_end_name(x->end), how);
}
