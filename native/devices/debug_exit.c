/*
 * debug_exit.c — a one-port "debug exit" for hand-made test guests (like QEMU's isa-debug-exit):
 * a guest that writes a byte to the port ends its VM, and the test reads the value.
 */
#include <stdio.h>
#include <stdlib.h>

#include <errno.h>
#include <string.h>

#include "bulkhead.h"

struct bh_debug_exit {
    bh_vm *vm;
    volatile int value;
};

static bh_io_result debug_exit_io(void *opaque, bh_io_access *a)
{
    bh_debug_exit *dev = opaque;
    if (!a->is_write) {
        a->data[0] = 0;
        return BH_IO_DONE;
    }
    char why[32];
    __atomic_store_n(&dev->value, a->data[0], __ATOMIC_SEQ_CST);
    snprintf(why, sizeof why, "debug-exit %u", a->data[0]);
    bh_vm_request_stop(dev->vm, BH_EXIT_GUEST_REQUEST, BH_GUEST_REQUEST_DEBUG_EXIT, why);
    return BH_IO_DONE;
}

static void debug_exit_destroy(void *dev)
{
    free(dev);
}

static const bh_device_ops debug_exit_ops = {.name = "debug-exit", .destroy = debug_exit_destroy};

int bh_debug_exit_create(bh_vm *vm, uint16_t port, bh_debug_exit **out, bh_error *err)
{
    bh_debug_exit *dev = calloc(1, sizeof *dev);
    if (!dev) {
        if (err) {
            err->code = BH_E_NOMEM, err->sys_errno = ENOMEM;
            strcpy(err->message, "out of memory for the debug-exit port");
        }
        return BH_E_NOMEM;
    }
    dev->vm = vm;
    dev->value = -1;
    int rc = bh_vm_attach_device(vm, &debug_exit_ops, dev, err);
    if (rc) {
        free(dev);
        return rc;
    }
    rc = bh_vm_register_pio(vm, port, 1, debug_exit_io, dev, err);
    if (rc)
        return rc;
    *out = dev;
    return 0;
}

int bh_debug_exit_value(const bh_debug_exit *dev)
{
    return __atomic_load_n(&dev->value, __ATOMIC_SEQ_CST);
}
