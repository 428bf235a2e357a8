/*
 * debug_exit.c — a one-port "debug exit" for hand-made test guests (like QEMU's isa-debug-exit):
 * a guest that writes a byte to the port ends its VM, and the test reads the value.
 */
#include <stdio.h>
#include <stdlib.h>

#include "boot_internal.h"

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
    bh_vm_request_stop(dev->vm, BH_EXIT_GUEST_REQUEST, why);
    return BH_IO_DONE;
}

int bh_debug_exit_create(bh_vm *vm, uint16_t port, bh_debug_exit **out, bh_error *err)
{
    bh_debug_exit *dev = calloc(1, sizeof *dev);
    if (!dev)
        return bh_boot_status(err, BH_E_NOMEM, "out of memory for the debug-exit port");
    dev->vm = vm;
    dev->value = -1;
    int rc = bh_vm_register_pio(vm, port, 1, debug_exit_io, dev, err);
    if (rc) {
        free(dev);
        return rc;
    }
    *out = dev;
    return 0;
}

void bh_debug_exit_destroy(bh_debug_exit *dev)
{
    free(dev);
}

int bh_debug_exit_value(const bh_debug_exit *dev)
{
    return __atomic_load_n(&dev->value, __ATOMIC_SEQ_CST);
}
