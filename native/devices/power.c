/*
 * power.c — bulkhead's paravirtual power device: one MMIO page with a command register. The
 * guest (its kernel, or its init through /dev/mem) writes POWER_OFF, REBOOT, or MARKER (a boot-time
 * marker: Firecracker's boot-timer idea, with a number so several stages can be timed). It replaces
 * guessing a power-off from halted vCPUs: how the guest ended is a code in the VM's exit.
 *
 * The handler runs on the vCPU thread that wrote the register. Only aligned 32-bit accesses count;
 * everything else reads as zero and is ignored (see devices/README.md for the register map).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "power.h"

static uint64_t monotonic_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

void bh_power_core_init(bh_power_core *p, const bh_power_config *config)
{
    memset(p, 0, sizeof *p);
    if (config)
        p->config = *config;
    if (!p->config.start_ns)
        p->config.start_ns = monotonic_ns();
}

static void command(bh_power_core *p, uint32_t value)
{
    uint32_t op = value & 0xffu, arg = value >> 8;
    uint64_t now = monotonic_ns();
    uint64_t since = now > p->config.start_ns ? now - p->config.start_ns : 0;
    bh_power_request req;
    switch (op) {
    case BH_POWER_CMD_POWER_OFF: req = BH_POWER_REQUEST_POWER_OFF; break;
    case BH_POWER_CMD_REBOOT: req = BH_POWER_REQUEST_REBOOT; break;
    case BH_POWER_CMD_MARKER: req = BH_POWER_REQUEST_MARKER; break;
    default: return; /* unknown commands are ignored: a newer guest may know more */
    }
    if (req == BH_POWER_REQUEST_MARKER) {
        uint32_t n = __atomic_fetch_add(&p->markers, 1, __ATOMIC_SEQ_CST);
        if (n == 0)
            __atomic_store_n(&p->first_marker_ns, since, __ATOMIC_SEQ_CST);
    }
    if (p->config.on_request)
        p->config.on_request(p->config.opaque, req, arg, since);
    if (p->vm && req == BH_POWER_REQUEST_POWER_OFF)
        bh_vm_request_stop(p->vm, BH_EXIT_GUEST_REQUEST, BH_GUEST_REQUEST_POWER_OFF, "power-off (power device)");
    else if (p->vm && req == BH_POWER_REQUEST_REBOOT)
        bh_vm_request_stop(p->vm, BH_EXIT_GUEST_REQUEST, BH_GUEST_REQUEST_REBOOT, "reboot (power device)");
}

bh_io_result bh_power_access(void *opaque, bh_io_access *a)
{
    bh_power_core *p = opaque;
    bool word = a->size == 4 && a->offset % 4 == 0;
    if (a->is_write) {
        if (word && a->offset == BH_POWER_REG_COMMAND) {
            uint32_t v;
            memcpy(&v, a->data, 4);
            command(p, v);
        }
        return BH_IO_DONE;
    }
    memset(a->data, 0, sizeof a->data);
    uint32_t v = 0;
    if (word && a->offset == BH_POWER_REG_MAGIC)
        v = BH_POWER_MAGIC;
    else if (word && a->offset == BH_POWER_REG_VERSION)
        v = BH_POWER_VERSION;
    memcpy(a->data, &v, 4 < a->size ? 4 : a->size);
    return BH_IO_DONE;
}

/* --------------------------------------------------------------------------------------------- */

struct bh_power {
    bh_power_core core;
};

static void power_destroy(void *dev)
{
    free(dev);
}

static const bh_device_ops power_device_ops = {.name = "power", .destroy = power_destroy};

int bh_power_create(bh_vm *vm, const bh_power_config *config, bh_power **out, bh_error *err)
{
    bh_power *p = calloc(1, sizeof *p);
    if (!p) {
        if (err)
            *err = (bh_error){.code = BH_E_NOMEM, .message = "out of memory for the power device"};
        return BH_E_NOMEM;
    }
    bh_power_core_init(&p->core, config);
    p->core.vm = vm;
    uint64_t base = p->core.config.base ? p->core.config.base : BH_POWER_MMIO_BASE;
    int rc = bh_vm_attach_device(vm, &power_device_ops, p, err);
    if (rc) {
        free(p);
        return rc;
    }
    if ((rc = bh_vm_register_mmio(vm, base, BH_POWER_MMIO_SIZE, bh_power_access, &p->core, err)))
        return rc;
    *out = p;
    return BH_OK;
}

uint32_t bh_power_markers(const bh_power *p, uint64_t *first_ns)
{
    if (first_ns)
        *first_ns = __atomic_load_n(&p->core.first_marker_ns, __ATOMIC_SEQ_CST);
    return __atomic_load_n(&p->core.markers, __ATOMIC_SEQ_CST);
}
