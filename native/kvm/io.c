/*
 * io.c — registering port-I/O and MMIO handlers, and routing one guest access to its handler.
 *
 * A handler either answers at once (BH_IO_DONE), or defers (BH_IO_PENDING): then the vCPU thread
 * waits, outside KVM_RUN, until bh_vcpu_complete_io() or a stop. That is how an embedder with its
 * own event loop (Node) answers accesses without ever making a stop wait for it.
 */
#include "internal.h"

#include <string.h>

int bh_vm_register_pio(bh_vm *vm, uint16_t base, uint32_t len, bh_io_handler handler, void *opaque,
                       bh_error *err)
{
    if (!vm)
        return bh_fail(err, BH_E_INVALID_ARG, 0, "bh_vm_register_pio: vm is NULL");
    if (len == 0 || (uint32_t)base + len > 0x10000)
        return bh_fail(err, BH_E_INVALID_ARG, 0,
                       "pio range base 0x%x length %u is invalid: length must be 1 .. 0x%x (ports end at 0xffff)",
                       base, len, 0x10000 - base);
    return bh_bus_register(&vm->pio_bus, base, len, handler, opaque, err);
}

int bh_vm_register_mmio(bh_vm *vm, uint64_t base, uint64_t len, bh_io_handler handler, void *opaque,
                        bh_error *err)
{
    if (!vm)
        return bh_fail(err, BH_E_INVALID_ARG, 0, "bh_vm_register_mmio: vm is NULL");
    if (len == 0 || base + len < base)
        return bh_fail(err, BH_E_INVALID_ARG, 0, "mmio range base 0x%llx length 0x%llx is empty or wraps",
                       (unsigned long long)base, (unsigned long long)len);
    /* Guest accesses to RAM never exit to userspace, so such a handler would silently never run. */
    if (bh_mem_overlaps_ram(vm, base, len))
        return bh_fail(err, BH_E_INVALID_ARG, 0,
                       "mmio range [0x%llx, 0x%llx) overlaps guest RAM; MMIO belongs in the hole "
                       "[0x%llx, 0x%llx) or above the end of RAM",
                       (unsigned long long)base, (unsigned long long)(base + len),
                       (unsigned long long)BH_MMIO_HOLE_START, (unsigned long long)BH_MMIO_HOLE_END);
    return bh_bus_register(&vm->mmio_bus, base, len, handler, opaque, err);
}

void bh_vm_get_stats(const bh_vm *vm, bh_vm_stats *out)
{
    if (!vm || !out)
        return;
    out->exits = __atomic_load_n(&vm->stats.exits, __ATOMIC_RELAXED);
    out->pio_exits = __atomic_load_n(&vm->stats.pio_exits, __ATOMIC_RELAXED);
    out->mmio_exits = __atomic_load_n(&vm->stats.mmio_exits, __ATOMIC_RELAXED);
    out->unhandled_pio = __atomic_load_n(&vm->stats.unhandled_pio, __ATOMIC_RELAXED);
    out->unhandled_mmio = __atomic_load_n(&vm->stats.unhandled_mmio, __ATOMIC_RELAXED);
    out->pauses = __atomic_load_n(&vm->stats.pauses, __ATOMIC_RELAXED);
}

/* Nobody decodes this address: like an empty bus on real hardware, reads float high. */
static bh_io_outcome unhandled(bh_vm *vm, bh_io_access *access)
{
    bh_stat_add(access->is_mmio ? &vm->stats.unhandled_mmio : &vm->stats.unhandled_pio);
    if (!access->is_write)
        memset(access->data, 0xff, sizeof access->data);
    return BH_IO_OUTCOME_DONE;
}

/* Armed before the handler runs, so a completion from another thread cannot arrive "too early".
 * Each access gets a fresh token: a completion must name it, so one meant for an earlier access
 * (late, repeated, or made after a stop abandoned it) can never complete this one. */
static void arm_pending(bh_vcpu *vcpu, bh_io_access *access)
{
    pthread_mutex_lock(&vcpu->vm->lock);
    vcpu->io_waiting = true;
    vcpu->io_completed = false;
    vcpu->io_is_write = access->is_write;
    vcpu->io_size = access->size;
    vcpu->io_token = ++vcpu->io_tokens_issued;
    access->token = vcpu->io_token;
    pthread_mutex_unlock(&vcpu->vm->lock);
}

static void disarm_pending(bh_vcpu *vcpu)
{
    pthread_mutex_lock(&vcpu->vm->lock);
    vcpu->io_waiting = false;
    vcpu->io_completed = false;
    pthread_mutex_unlock(&vcpu->vm->lock);
}

static bh_io_outcome wait_for_completion(bh_vcpu *vcpu, bh_io_access *access)
{
    bh_vm *vm = vcpu->vm;
    bh_io_outcome outcome;
    pthread_mutex_lock(&vm->lock);
    vcpu->phase = BH_PHASE_IO_WAIT;
    pthread_cond_broadcast(&vm->control); /* a pause in progress counts this vCPU as parked */
    /* A completion that arrives while the VM is paused is kept until resume: the rest of a string
     * I/O must not reach device handlers while the VM is paused. */
    while ((!vcpu->io_completed || vm->pause_requested || !vm->released) && !vm->stop_requested)
        pthread_cond_wait(&vcpu->wake, &vm->lock);
    vcpu->phase = BH_PHASE_RUNNING;
    if (!vcpu->io_completed) {
        outcome = BH_IO_OUTCOME_STOPPED;
    } else if (!vcpu->io_ok) {
        outcome = BH_IO_OUTCOME_ERROR;
    } else {
        if (!access->is_write)
            memcpy(access->data, vcpu->io_data, access->size);
        outcome = BH_IO_OUTCOME_DONE;
    }
    vcpu->io_waiting = false;
    vcpu->io_completed = false;
    pthread_mutex_unlock(&vm->lock);
    return outcome;
}

bh_io_outcome bh_io_dispatch(bh_vcpu *vcpu, bh_io_access *access)
{
    bh_vm *vm = vcpu->vm;
    bh_bus_range range;
    if (!bh_bus_lookup(access->is_mmio ? &vm->mmio_bus : &vm->pio_bus, access->addr, access->size, &range))
        return unhandled(vm, access);
    access->offset = access->addr - range.base;

    arm_pending(vcpu, access);
    bh_io_result result = range.handler(range.opaque, access);
    if (result == BH_IO_PENDING)
        return wait_for_completion(vcpu, access);
    disarm_pending(vcpu);
    return result == BH_IO_DONE ? BH_IO_OUTCOME_DONE : BH_IO_OUTCOME_ERROR;
}

int bh_vcpu_complete_io(bh_vm *vm, uint32_t vcpu, uint64_t token, const uint8_t *data, uint8_t size,
                        bool ok, bh_error *err)
{
    if (!vm || vcpu >= vm->vcpu_count)
        return bh_fail(err, BH_E_INVALID_ARG, 0, "bh_vcpu_complete_io: vcpu %u out of range 0..%u", vcpu,
                       vm ? vm->vcpu_count - 1 : 0);
    bh_vcpu *v = &vm->vcpus[vcpu];
    pthread_mutex_lock(&vm->lock);
    if (!v->io_waiting || v->io_completed || v->io_token != token) {
        uint64_t current = v->io_waiting && !v->io_completed ? v->io_token : 0;
        pthread_mutex_unlock(&vm->lock);
        if (current)
            return bh_fail(err, BH_E_STATE, 0,
                           "token %llu is stale: vCPU %u now waits for the access with token %llu",
                           (unsigned long long)token, vcpu, (unsigned long long)current);
        return bh_fail(err, BH_E_STATE, 0, "vCPU %u has no pending I/O access to complete (token %llu)", vcpu,
                       (unsigned long long)token);
    }
    if (ok && !v->io_is_write && (!data || size != v->io_size)) {
        uint8_t want = v->io_size;
        pthread_mutex_unlock(&vm->lock);
        return bh_fail(err, BH_E_INVALID_ARG, 0,
                       "size %u is invalid: the pending read on vCPU %u needs exactly %u bytes of data", size,
                       vcpu, want);
    }
    if (ok && !v->io_is_write)
        memcpy(v->io_data, data, size);
    v->io_ok = ok;
    v->io_completed = true;
    pthread_cond_broadcast(&v->wake);
    pthread_mutex_unlock(&vm->lock);
    return BH_OK;
}
