/*
 * memory.c — guest RAM, and the only place where guest-physical addresses become host pointers.
 *
 * The guest is untrusted: every address and length it (or a device model parsing its structures)
 * hands us is checked against the RAM slots with overflow-safe arithmetic before use.
 */
#include "internal.h"

#include <errno.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

static int map_slot(bh_vm *vm, uint32_t slot_id, const bh_mem_slot *slot, bh_error *err)
{
    struct kvm_userspace_memory_region region = {
        .slot = slot_id,
        .flags = 0,
        .guest_phys_addr = slot->gpa,
        .memory_size = slot->size,
        .userspace_addr = (uint64_t)(uintptr_t)slot->host,
    };
    if (ioctl(vm->fd, KVM_SET_USER_MEMORY_REGION, &region) < 0)
        return bh_fail_errno(err, "KVM_SET_USER_MEMORY_REGION");
    return BH_OK;
}

static void add_slot(bh_vm *vm, uint64_t gpa, uint64_t size, uint64_t fd_offset)
{
    bh_mem_slot *slot = &vm->slots[vm->slot_count++];
    slot->gpa = gpa;
    slot->size = size;
    slot->host = vm->mem_base + fd_offset;
    slot->fd_offset = fd_offset;
}

int bh_memory_create(bh_vm *vm, uint64_t bytes, bh_error *err)
{
    /* One memfd so the whole of RAM can be shared or snapshotted through a single fd. */
    vm->memfd = memfd_create("bulkhead-guest-ram", MFD_CLOEXEC);
    if (vm->memfd < 0)
        return bh_fail_errno(err, "memfd_create for guest RAM");
    if (ftruncate(vm->memfd, (off_t)bytes) < 0)
        return bh_fail_errno(err, "ftruncate of the guest RAM memfd");
    /* NORESERVE: a guest that never touches most of its RAM should not cost host commit charge. */
    void *base = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_NORESERVE, vm->memfd, 0);
    if (base == MAP_FAILED)
        return bh_fail_errno(err, "mmap of guest RAM");
    vm->mem_base = base;
    vm->mem_size = bytes;

    uint64_t low = bytes < BH_MMIO_HOLE_START ? bytes : BH_MMIO_HOLE_START;
    add_slot(vm, 0, low, 0);
    if (bytes > low)
        add_slot(vm, BH_MMIO_HOLE_END, bytes - low, low);
    for (size_t i = 0; i < vm->slot_count; i++) {
        int rc = map_slot(vm, (uint32_t)i, &vm->slots[i], err);
        if (rc)
            return rc;
    }
    return BH_OK;
}

void bh_memory_destroy(bh_vm *vm)
{
    if (vm->mem_base)
        munmap(vm->mem_base, vm->mem_size);
    vm->mem_base = NULL;
    if (vm->memfd >= 0)
        close(vm->memfd);
    vm->memfd = -1;
    vm->slot_count = 0;
}

/* The slot holding all of [gpa, gpa+len), or NULL. Written so that no sum can overflow. */
static const bh_mem_slot *slot_for(const bh_vm *vm, uint64_t gpa, uint64_t len)
{
    for (size_t i = 0; i < vm->slot_count; i++) {
        const bh_mem_slot *s = &vm->slots[i];
        if (gpa < s->gpa)
            continue;
        uint64_t offset = gpa - s->gpa;
        if (offset > s->size || len > s->size - offset)
            continue;
        if (len == 0 && offset == s->size)
            continue; /* an empty range must still start inside RAM */
        return s;
    }
    return NULL;
}

bool bh_mem_overlaps_ram(const bh_vm *vm, uint64_t gpa, uint64_t len)
{
    if (len == 0)
        return false;
    uint64_t last = gpa + (len - 1);
    if (last < gpa)
        last = UINT64_MAX;
    for (size_t i = 0; i < vm->slot_count; i++) {
        const bh_mem_slot *s = &vm->slots[i];
        uint64_t s_last = s->gpa + (s->size - 1);
        if (gpa <= s_last && s->gpa <= last)
            return true;
    }
    return false;
}

uint64_t bh_mem_size(const bh_vm *vm)
{
    return vm ? vm->mem_size : 0;
}

bool bh_mem_is_ram(const bh_vm *vm, uint64_t gpa, size_t len)
{
    return vm && slot_for(vm, gpa, len) != NULL;
}

void *bh_mem_ptr(bh_vm *vm, uint64_t gpa, size_t len)
{
    const bh_mem_slot *s = vm ? slot_for(vm, gpa, len) : NULL;
    return s ? s->host + (gpa - s->gpa) : NULL;
}

static int out_of_range(bh_error *err, const char *op, uint64_t gpa, size_t len)
{
    return bh_fail(err, BH_E_OUT_OF_RANGE, 0,
                   "%s of %zu bytes at guest-physical 0x%llx is not entirely guest RAM", op, len,
                   (unsigned long long)gpa);
}

int bh_mem_read(const bh_vm *vm, uint64_t gpa, void *dst, size_t len, bh_error *err)
{
    if (!vm || (!dst && len))
        return bh_fail(err, BH_E_INVALID_ARG, 0, "bh_mem_read: vm or dst is NULL");
    const bh_mem_slot *s = slot_for(vm, gpa, len);
    if (!s)
        return out_of_range(err, "read", gpa, len);
    if (len)
        memcpy(dst, s->host + (gpa - s->gpa), len);
    return BH_OK;
}

int bh_mem_write(bh_vm *vm, uint64_t gpa, const void *src, size_t len, bh_error *err)
{
    if (!vm || (!src && len))
        return bh_fail(err, BH_E_INVALID_ARG, 0, "bh_mem_write: vm or src is NULL");
    const bh_mem_slot *s = slot_for(vm, gpa, len);
    if (!s)
        return out_of_range(err, "write", gpa, len);
    if (len)
        memcpy(s->host + (gpa - s->gpa), src, len);
    return BH_OK;
}

size_t bh_mem_regions(const bh_vm *vm, bh_mem_region *out, size_t max)
{
    if (!vm)
        return 0;
    for (size_t i = 0; i < vm->slot_count && i < max && out; i++) {
        out[i].gpa = vm->slots[i].gpa;
        out[i].size = vm->slots[i].size;
        out[i].memfd = vm->memfd;
        out[i].fd_offset = vm->slots[i].fd_offset;
    }
    return vm->slot_count;
}
