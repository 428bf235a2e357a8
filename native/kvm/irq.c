/* irq.c — interrupt lines, irqfds and ioeventfds. The VM owns (and closes) every eventfd it makes. */
#include "internal.h"

#include <errno.h>
#include <stdlib.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <unistd.h>

int bh_vm_set_irq_line(bh_vm *vm, uint32_t gsi, bool level, bh_error *err)
{
    if (!vm)
        return bh_fail(err, BH_E_INVALID_ARG, 0, "bh_vm_set_irq_line: vm is NULL");
    if (!vm->has_irqchip)
        return bh_fail(err, BH_E_STATE, 0, "the VM has no in-kernel irqchip (create it with irqchip = true)");
    struct kvm_irq_level irq = {.irq = gsi, .level = level ? 1 : 0};
    if (ioctl(vm->fd, KVM_IRQ_LINE, &irq) < 0)
        return bh_fail_errno(err, "KVM_IRQ_LINE");
    return BH_OK;
}

/* Remembers fd so bh_vm_destroy closes it. */
static int adopt_eventfd(bh_vm *vm, int fd, bh_error *err)
{
    pthread_mutex_lock(&vm->lock);
    if (vm->eventfd_count == vm->eventfd_cap) {
        size_t cap = vm->eventfd_cap ? vm->eventfd_cap * 2 : 8;
        int *grown = realloc(vm->eventfds, cap * sizeof *grown);
        if (!grown) {
            pthread_mutex_unlock(&vm->lock);
            return bh_fail(err, BH_E_NOMEM, ENOMEM, "out of memory recording an eventfd");
        }
        vm->eventfds = grown;
        vm->eventfd_cap = cap;
    }
    vm->eventfds[vm->eventfd_count++] = fd;
    pthread_mutex_unlock(&vm->lock);
    return BH_OK;
}

void bh_irq_close_eventfds(bh_vm *vm)
{
    for (size_t i = 0; i < vm->eventfd_count; i++)
        close(vm->eventfds[i]);
    free(vm->eventfds);
    vm->eventfds = NULL;
    vm->eventfd_count = vm->eventfd_cap = 0;
}

static int new_eventfd(bh_error *err)
{
    /* Non-blocking: the embedder polls it from an event loop. */
    int fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (fd < 0)
        bh_fail_errno(err, "eventfd");
    return fd;
}

int bh_vm_add_irqfd(bh_vm *vm, uint32_t gsi, int *out_fd, bh_error *err)
{
    if (!vm || !out_fd)
        return bh_fail(err, BH_E_INVALID_ARG, 0, "bh_vm_add_irqfd: vm and out_fd must not be NULL");
    if (!vm->has_irqchip)
        return bh_fail(err, BH_E_STATE, 0, "irqfd needs the in-kernel irqchip (create the VM with irqchip = true)");
    int fd = new_eventfd(err);
    if (fd < 0)
        return err ? err->code : BH_E_SYSTEM;
    struct kvm_irqfd irqfd = {.fd = (uint32_t)fd, .gsi = gsi};
    if (ioctl(vm->fd, KVM_IRQFD, &irqfd) < 0) {
        int rc = bh_fail_errno(err, "KVM_IRQFD");
        close(fd);
        return rc;
    }
    int rc = adopt_eventfd(vm, fd, err);
    if (rc) {
        irqfd.flags = KVM_IRQFD_FLAG_DEASSIGN;
        ioctl(vm->fd, KVM_IRQFD, &irqfd);
        close(fd);
        return rc;
    }
    *out_fd = fd;
    return BH_OK;
}

int bh_vm_add_ioeventfd(bh_vm *vm, uint64_t addr, uint32_t len, bool is_mmio, bool use_datamatch,
                        uint64_t datamatch, int *out_fd, bh_error *err)
{
    if (!vm || !out_fd)
        return bh_fail(err, BH_E_INVALID_ARG, 0, "bh_vm_add_ioeventfd: vm and out_fd must not be NULL");
    if (len != 0 && len != 1 && len != 2 && len != 4 && len != 8)
        return bh_fail(err, BH_E_INVALID_ARG, 0, "len %u is invalid: allowed 0 (any width), 1, 2, 4, 8", len);
    if (!is_mmio && (addr > 0xffff || len == 8))
        return bh_fail(err, BH_E_INVALID_ARG, 0, "port ioeventfd addr 0x%llx len %u is invalid: port 0..0xffff, len 0..4",
                       (unsigned long long)addr, len);
    if (use_datamatch && len == 0)
        return bh_fail(err, BH_E_INVALID_ARG, 0, "len 0 is invalid with datamatch: give the access width 1, 2, 4 or 8");
    int fd = new_eventfd(err);
    if (fd < 0)
        return err ? err->code : BH_E_SYSTEM;
    struct kvm_ioeventfd ioev = {
        .datamatch = use_datamatch ? datamatch : 0,
        .addr = addr,
        .len = len,
        .fd = fd,
        .flags = (is_mmio ? 0 : KVM_IOEVENTFD_FLAG_PIO) | (use_datamatch ? KVM_IOEVENTFD_FLAG_DATAMATCH : 0),
    };
    if (ioctl(vm->fd, KVM_IOEVENTFD, &ioev) < 0) {
        int rc = bh_fail_errno(err, "KVM_IOEVENTFD");
        close(fd);
        return rc;
    }
    int rc = adopt_eventfd(vm, fd, err);
    if (rc) {
        ioev.flags |= KVM_IOEVENTFD_FLAG_DEASSIGN;
        ioctl(vm->fd, KVM_IOEVENTFD, &ioev);
        close(fd);
        return rc;
    }
    *out_fd = fd;
    return BH_OK;
}
