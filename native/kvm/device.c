/*
 * device.c — the devices a VM owns. A device model attaches itself to its VM when it is created;
 * from then on the VM decides when it goes away:
 *   - bh_vm_stop (and so bh_vm_destroy) joins the vCPU threads and the I/O thread, then calls each
 *     device's `stop` once, in attach order: no guest access and no I/O-thread event can reach a
 *     device after that;
 *   - bh_vm_destroy then calls each device's `destroy`, newest first, before it closes the VM's
 *     eventfds and unmaps guest memory.
 * A device handle is therefore valid exactly until bh_vm_destroy of its VM returns, and a device
 * whose creation failed half-way (a range registered, the next one refused) is still freed.
 */
#include "internal.h"

#include <errno.h>
#include <stdlib.h>

int bh_vm_attach_device(bh_vm *vm, const bh_device_ops *ops, void *device, bh_error *err)
{
    if (!vm || !ops || !ops->destroy)
        return bh_fail(err, BH_E_INVALID_ARG, 0, "bh_vm_attach_device: vm, ops and ops->destroy are required");
    pthread_mutex_lock(&vm->lock);
    if (vm->device_count == vm->device_cap) {
        size_t cap = vm->device_cap ? vm->device_cap * 2 : 8;
        bh_device_entry *grown = realloc(vm->devices, cap * sizeof *grown);
        if (!grown) {
            pthread_mutex_unlock(&vm->lock);
            return bh_fail(err, BH_E_NOMEM, ENOMEM, "out of memory attaching a device");
        }
        vm->devices = grown;
        vm->device_cap = cap;
    }
    vm->devices[vm->device_count++] = (bh_device_entry){.ops = ops, .device = device};
    pthread_mutex_unlock(&vm->lock);
    return BH_OK;
}

/* After every thread was joined. Runs each `stop` hook once, however often the VM is stopped. */
void bh_devices_stop(bh_vm *vm)
{
    pthread_mutex_lock(&vm->lock);
    bool first = !vm->devices_stopped;
    vm->devices_stopped = true;
    size_t n = vm->device_count;
    pthread_mutex_unlock(&vm->lock);
    if (!first)
        return;
    for (size_t i = 0; i < n; i++)
        if (vm->devices[i].ops->stop)
            vm->devices[i].ops->stop(vm->devices[i].device);
}

void bh_devices_destroy(bh_vm *vm)
{
    for (size_t i = vm->device_count; i-- > 0;)
        vm->devices[i].ops->destroy(vm->devices[i].device);
    free(vm->devices);
    vm->devices = NULL;
    vm->device_count = vm->device_cap = 0;
}
