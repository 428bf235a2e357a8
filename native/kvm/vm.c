/* vm.c — building a VM from a validated config, tearing it down, and its simple accessors. */
#include "internal.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <time.h>
#include <unistd.h>

#define MIB (1024ULL * 1024ULL)
#define PAGE_SIZE_4K 4096ULL

/* KVM on Intel needs three pages for a real-mode TSS and one for an identity-mapped page table
 * (unrestricted-guest emulation). They must be guest-physical addresses nobody else uses: we put
 * them in the MMIO hole just below the BIOS area, and reserve them on the MMIO bus so no device
 * can be registered over them. */
#define IDENTITY_MAP_GPA 0xfffbc000ULL
#define TSS_GPA 0xfffbd000ULL
#define KVM_PRIVATE_END 0xfffc0000ULL

/* Fixed addresses of the in-kernel irqchip: accesses there never reach userspace. */
#define IOAPIC_GPA 0xfec00000ULL
#define LAPIC_GPA 0xfee00000ULL

static uint64_t host_memory_limit(void)
{
    long pages = sysconf(_SC_PHYS_PAGES);
    long page = sysconf(_SC_PAGESIZE);
    if (pages <= 0 || page <= 0)
        return 1ULL << 40;
    return (uint64_t)pages * (uint64_t)page;
}

static int validate_config(bh_kvm *kvm, const bh_vm_config *c, bh_error *err)
{
    uint64_t max_mem = host_memory_limit() & ~(PAGE_SIZE_4K - 1);
    if (c->memory_bytes < MIB || c->memory_bytes > max_mem || c->memory_bytes % PAGE_SIZE_4K)
        return bh_fail(err, BH_E_INVALID_ARG, 0,
                       "memory_bytes %llu is invalid: allowed 1048576 (1 MiB) .. %llu (host RAM), "
                       "a multiple of 4096",
                       (unsigned long long)c->memory_bytes, (unsigned long long)max_mem);
    int max_vcpus = bh_kvm_max_vcpus(kvm);
    if (max_vcpus > BH_MAX_VCPUS_HARD_LIMIT)
        max_vcpus = BH_MAX_VCPUS_HARD_LIMIT;
    if (c->vcpus < 1 || c->vcpus > (uint32_t)max_vcpus)
        return bh_fail(err, BH_E_INVALID_ARG, 0, "vcpus %u is invalid: allowed 1 .. %d", c->vcpus,
                       max_vcpus);
    return BH_OK;
}

static int init_sync(bh_vm *vm, bh_error *err)
{
    int rc = pthread_mutex_init(&vm->lock, NULL);
    if (rc != 0)
        return bh_fail(err, BH_E_SYSTEM, rc, "pthread_mutex_init failed");
    rc = pthread_mutex_init(&vm->join_lock, NULL);
    if (rc != 0) {
        pthread_mutex_destroy(&vm->lock);
        return bh_fail(err, BH_E_SYSTEM, rc, "pthread_mutex_init failed");
    }
    /* Monotonic, so the bounded waits of bh_vm_stop do not stretch when the wall clock jumps. */
    pthread_condattr_t attr;
    pthread_condattr_init(&attr);
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    rc = pthread_cond_init(&vm->control, &attr);
    int rc2 = pthread_cond_init(&vm->io_wake, &attr);
    int rc3 = pthread_mutex_init(&vm->io_watch_lock, NULL);
    pthread_condattr_destroy(&attr);
    if (rc != 0 || rc2 != 0 || rc3 != 0) {
        if (rc == 0)
            pthread_cond_destroy(&vm->control);
        if (rc2 == 0)
            pthread_cond_destroy(&vm->io_wake);
        if (rc3 == 0)
            pthread_mutex_destroy(&vm->io_watch_lock);
        pthread_mutex_destroy(&vm->join_lock);
        pthread_mutex_destroy(&vm->lock);
        return bh_fail(err, BH_E_SYSTEM, rc ? rc : rc2 ? rc2 : rc3, "pthread_cond_init/mutex_init failed");
    }
    vm->sync_ready = true;
    return BH_OK;
}

static int init_buses(bh_vm *vm, bh_error *err)
{
    int rc = bh_bus_init(&vm->pio_bus, "pio", err);
    if (rc)
        return rc;
    rc = bh_bus_init(&vm->mmio_bus, "mmio", err);
    if (rc) {
        bh_bus_destroy(&vm->pio_bus);
        return rc;
    }
    vm->buses_ready = true;
    return BH_OK;
}

static int set_kvm_private_pages(bh_vm *vm, bh_error *err)
{
    if (bh_kvm_check_extension(vm->kvm, KVM_CAP_SET_IDENTITY_MAP_ADDR)) {
        uint64_t addr = IDENTITY_MAP_GPA;
        if (ioctl(vm->fd, KVM_SET_IDENTITY_MAP_ADDR, &addr) < 0)
            return bh_fail_errno(err, "KVM_SET_IDENTITY_MAP_ADDR");
    }
    if (bh_kvm_check_extension(vm->kvm, KVM_CAP_SET_TSS_ADDR)) {
        if (ioctl(vm->fd, KVM_SET_TSS_ADDR, (unsigned long)TSS_GPA) < 0)
            return bh_fail_errno(err, "KVM_SET_TSS_ADDR");
    }
    return bh_bus_reserve(&vm->mmio_bus, IDENTITY_MAP_GPA, KVM_PRIVATE_END - IDENTITY_MAP_GPA,
                          "KVM's TSS and identity-map pages", err);
}

/* Port ranges the in-kernel PIC and PIT answer: reserve them so nobody registers dead handlers. */
static int reserve_irqchip_ranges(bh_vm *vm, bh_error *err)
{
    static const struct { uint64_t base, len; bool mmio; const char *why; } ranges[] = {
        {0x20, 2, false, "the in-kernel PIC (master)"},
        {0xa0, 2, false, "the in-kernel PIC (slave)"},
        {0x4d0, 2, false, "the in-kernel PIC (ELCR)"},
        {IOAPIC_GPA, 0x1000, true, "the in-kernel IOAPIC"},
        {LAPIC_GPA, 0x1000, true, "the in-kernel local APIC"},
    };
    for (size_t i = 0; i < sizeof ranges / sizeof ranges[0]; i++) {
        bh_bus *bus = ranges[i].mmio ? &vm->mmio_bus : &vm->pio_bus;
        int rc = bh_bus_reserve(bus, ranges[i].base, ranges[i].len, ranges[i].why, err);
        if (rc)
            return rc;
    }
    return BH_OK;
}

static int create_irqchip(bh_vm *vm, bh_error *err)
{
    if (!vm->config.irqchip || !bh_kvm_check_extension(vm->kvm, KVM_CAP_IRQCHIP))
        return BH_OK; /* documented: irqchip only "when the host supports it"; bh_vm_has_irqchip says */
    if (ioctl(vm->fd, KVM_CREATE_IRQCHIP, 0) < 0)
        return bh_fail_errno(err, "KVM_CREATE_IRQCHIP");
    vm->has_irqchip = true;
    if (bh_kvm_check_extension(vm->kvm, KVM_CAP_PIT2)) {
        struct kvm_pit_config pit = {.flags = 0};
        if (ioctl(vm->fd, KVM_CREATE_PIT2, &pit) < 0)
            return bh_fail_errno(err, "KVM_CREATE_PIT2");
        int rc = bh_bus_reserve(&vm->pio_bus, 0x40, 4, "the in-kernel PIT", err);
        if (rc)
            return rc;
    }
    return reserve_irqchip_ranges(vm, err);
}

static int create_vcpus(bh_vm *vm, bh_error *err)
{
    vm->vcpus = calloc(vm->config.vcpus, sizeof *vm->vcpus);
    if (!vm->vcpus)
        return bh_fail(err, BH_E_NOMEM, ENOMEM, "out of memory for %u vCPUs", vm->config.vcpus);
    int rc = bh_cpuid_build(vm, err);
    for (uint32_t i = 0; i < vm->config.vcpus && rc == BH_OK; i++)
        rc = bh_vcpu_create(vm, i, err);
    return rc;
}

static int build_vm(bh_vm *vm, bh_error *err)
{
    int rc;
    if ((rc = init_sync(vm, err)) || (rc = init_buses(vm, err)))
        return rc;
    vm->fd = ioctl(vm->kvm->fd, KVM_CREATE_VM, 0UL);
    if (vm->fd < 0)
        return bh_fail_errno(err, "KVM_CREATE_VM");
    if ((rc = set_kvm_private_pages(vm, err)) || (rc = create_irqchip(vm, err)) ||
        (rc = bh_memory_create(vm, vm->config.memory_bytes, err)) || (rc = create_vcpus(vm, err)))
        return rc;
    return BH_OK;
}

int bh_vm_create(bh_kvm *kvm, const bh_vm_config *config, bh_vm **out, bh_error *err)
{
    bh_clear_error(err);
    if (!kvm || !config || !out)
        return bh_fail(err, BH_E_INVALID_ARG, 0, "bh_vm_create: kvm, config and out must not be NULL");
    *out = NULL;
    int rc = validate_config(kvm, config, err);
    if (rc)
        return rc;
    bh_control_install_kick_signal();

    bh_vm *vm = calloc(1, sizeof *vm);
    if (!vm)
        return bh_fail(err, BH_E_NOMEM, ENOMEM, "out of memory");
    vm->kvm = kvm;
    vm->config = *config;
    vm->fd = -1;
    vm->memfd = -1;
    vm->io_epoll_fd = -1;
    vm->io_control_fd = -1;
    vm->state = BH_VM_CREATED;
    rc = build_vm(vm, err);
    if (rc) {
        bh_vm_destroy(vm); /* frees whatever part was built */
        return rc;
    }
    *out = vm;
    return BH_OK;
}

/*
 * Teardown order: every thread is joined first (vCPUs and the I/O thread: bh_vm_stop), then the
 * devices are stopped and destroyed, newest first (device.c), and only then are the VM's eventfds
 * closed, the vCPU and VM fds closed and guest memory unmapped. So no thread can reach a device
 * that is gone, and no device can touch guest memory that is gone.
 */
void bh_vm_destroy(bh_vm *vm)
{
    if (!vm)
        return;
    if (vm->sync_ready) {
        /* From a vCPU thread the VM cannot be joined: leaking it beats freeing memory in use. */
        if (bh_control_on_vcpu_thread(vm, NULL)) {
            bh_vm_request_stop(vm, BH_EXIT_STOPPED, 0, "bh_vm_destroy called on a vCPU thread");
            return;
        }
        bh_error err;
        if (bh_vm_stop(vm, &err) == BH_E_TIMEOUT) {
            bh_control_join_all(vm); /* block rather than free what a vCPU thread still uses */
            bh_devices_stop(vm);
        }
    }
    bh_devices_destroy(vm);
    bh_io_thread_destroy(vm);
    for (uint32_t i = 0; i < vm->vcpu_count; i++)
        bh_vcpu_destroy(&vm->vcpus[i]);
    free(vm->vcpus);
    bh_cpuid_free(vm);
    bh_irq_close_eventfds(vm);
    if (vm->fd >= 0)
        close(vm->fd);
    bh_memory_destroy(vm);
    if (vm->buses_ready) {
        bh_bus_destroy(&vm->pio_bus);
        bh_bus_destroy(&vm->mmio_bus);
    }
    if (vm->sync_ready) {
        pthread_cond_destroy(&vm->control);
        pthread_cond_destroy(&vm->io_wake);
        pthread_mutex_destroy(&vm->io_watch_lock);
        pthread_mutex_destroy(&vm->join_lock);
        pthread_mutex_destroy(&vm->lock);
    }
    free(vm);
}

bh_vm_state bh_vm_get_state(const bh_vm *vm)
{
    if (!vm)
        return BH_VM_STOPPED;
    bh_vm *m = (bh_vm *)vm; /* locking mutates the mutex, not the VM */
    pthread_mutex_lock(&m->lock);
    bh_vm_state s = m->state;
    pthread_mutex_unlock(&m->lock);
    return s;
}

uint32_t bh_vm_vcpu_count(const bh_vm *vm)
{
    return vm ? vm->vcpu_count : 0;
}

bool bh_vm_has_irqchip(const bh_vm *vm)
{
    return vm && vm->has_irqchip;
}

int bh_vm_fd(const bh_vm *vm)
{
    return vm ? vm->fd : -1;
}
