/*
 * cpuid.c — what each vCPU sees in CPUID: KVM_GET_SUPPORTED_CPUID, then per vCPU its APIC ID and
 * the topology (one package, one thread per core, a core per vCPU: leaves 1, 4, 0xB/0x1F and
 * AMD's 0x80000008/0x8000001E), the hypervisor bit, and the KVM leaves 0x40000000/0x40000001 with
 * the kvm-clock features (the guest then drives MSR_KVM_SYSTEM_TIME_NEW itself, in-kernel).
 * KVM leaves the TSC-deadline timer out of the supported list and reports it as a capability of
 * the in-kernel LAPIC instead (KVM_CAP_TSC_DEADLINE_TIMER); without it Linux calibrates the LAPIC
 * timer against the PIT, which fails under nested emulation ("APIC timer disabled").
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/kvm.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "boot_internal.h"

#define CPUID_MAX_ENTRIES 512
#define CPUID_SPARE 8
#define LEAF1_ECX_TSC_DEADLINE (1u << 24)
#define LEAF1_ECX_HYPERVISOR (1u << 31)
#define LEAF1_EDX_HTT (1u << 28)
#define KVM_SIGNATURE_EBX 0x4b4d564bu /* "KVMK" */
#define KVM_SIGNATURE_ECX 0x564b4d56u /* "VMKV" */
#define KVM_SIGNATURE_EDX 0x0000004du /* "M\0\0\0" */
#define KVM_FEATURE_CLOCKSOURCE (1u << 0)
#define KVM_FEATURE_CLOCKSOURCE2 (1u << 3)
#define AMD_VENDOR_EBX 0x68747541u /* "Auth" */

/* KVM_GET_SUPPORTED_CPUID, growing the table while KVM says E2BIG. Room for CPUID_SPARE more
 * entries is left at the end for leaves we add. */
static struct kvm_cpuid2 *cpuid_supported(bh_error *err)
{
    int fd = open("/dev/kvm", O_RDWR | O_CLOEXEC);
    if (fd < 0)
        return bh_boot_status(err, BH_E_UNAVAILABLE, "open /dev/kvm for KVM_GET_SUPPORTED_CPUID: %s",
                              strerror(errno)), NULL;
    for (uint32_t nent = CPUID_MAX_ENTRIES; nent <= 8 * CPUID_MAX_ENTRIES; nent *= 2) {
        struct kvm_cpuid2 *c =
            calloc(1, sizeof *c + (nent + CPUID_SPARE) * sizeof(struct kvm_cpuid_entry2));
        if (!c)
            break;
        c->nent = nent;
        if (ioctl(fd, KVM_GET_SUPPORTED_CPUID, c) == 0) {
            close(fd);
            return c;
        }
        int e = errno;
        free(c);
        if (e != E2BIG) {
            close(fd);
            return bh_boot_status(err, BH_E_SYSTEM, "KVM_GET_SUPPORTED_CPUID: %s", strerror(e)),
                   NULL;
        }
    }
    close(fd);
    return bh_boot_status(err, BH_E_NOMEM, "KVM_GET_SUPPORTED_CPUID: no table large enough"), NULL;
}

static struct kvm_cpuid_entry2 *cpuid_find(struct kvm_cpuid2 *c, uint32_t fn, uint32_t index)
{
    for (uint32_t i = 0; i < c->nent; i++)
        if (c->entries[i].function == fn && c->entries[i].index == index)
            return &c->entries[i];
    return NULL;
}

static uint32_t bits_for(uint32_t count)
{
    uint32_t b = 0;
    while ((1u << b) < count)
        b++;
    return b;
}

static void cpuid_topology_entry(struct kvm_cpuid_entry2 *e, uint32_t apic_id, uint32_t vcpus,
                                 bool amd)
{
    uint32_t core_bits = bits_for(vcpus);
    switch (e->function) {
    case 1:
        e->ebx = (e->ebx & 0x0000ffffu) | apic_id << 24 | (1u << core_bits) << 16;
        e->ecx |= LEAF1_ECX_HYPERVISOR;
        e->edx = vcpus > 1 ? e->edx | LEAF1_EDX_HTT : e->edx & ~LEAF1_EDX_HTT;
        break;
    case 4: {
        uint32_t level = (e->eax >> 5) & 7, sharing = level >= 3 ? (1u << core_bits) - 1 : 0;
        if ((e->eax & 0x1f) == 0)
            break; /* no more caches */
        e->eax = (e->eax & 0x3fffu) | sharing << 14 | ((1u << core_bits) - 1) << 26;
        break;
    }
    case 0xb:
    case 0x1f:
        e->edx = apic_id;
        if (e->index == 0) {
            e->eax = 0, e->ebx = 1, e->ecx = 1u << 8; /* SMT level: one thread per core */
        } else if (e->index == 1) {
            e->eax = core_bits, e->ebx = vcpus, e->ecx = 2u << 8 | 1; /* core level */
        } else {
            e->eax = 0, e->ebx = 0, e->ecx = e->index;
        }
        break;
    case 0x80000008:
        if (amd)
            e->ecx = (e->ecx & ~0xf0ffu) | core_bits << 12 | (vcpus - 1);
        break;
    case 0x8000001e:
        if (amd)
            e->eax = apic_id, e->ebx = (e->ebx & ~0xffffu) | (apic_id & 0xff), e->ecx &= ~0x7ffu;
        break;
    }
}

/* The KVM leaves: a missing one is added (every KVM implements the kvm-clock MSRs). */
static void cpuid_kvm_leaves(struct kvm_cpuid2 *c)
{
    struct kvm_cpuid_entry2 *sig = cpuid_find(c, 0x40000000, 0);
    struct kvm_cpuid_entry2 *feat = cpuid_find(c, 0x40000001, 0);
    /* cpuid_supported left CPUID_SPARE free entries after nent for these. */
    if (!sig)
        sig = &c->entries[c->nent++], memset(sig, 0, sizeof *sig), sig->function = 0x40000000;
    if (!feat)
        feat = &c->entries[c->nent++], memset(feat, 0, sizeof *feat), feat->function = 0x40000001;
    if (sig) {
        if (sig->eax < 0x40000001)
            sig->eax = 0x40000001;
        sig->ebx = KVM_SIGNATURE_EBX, sig->ecx = KVM_SIGNATURE_ECX, sig->edx = KVM_SIGNATURE_EDX;
    }
    if (feat)
        feat->eax |= KVM_FEATURE_CLOCKSOURCE | KVM_FEATURE_CLOCKSOURCE2;
}

static bool cpuid_tsc_deadline(bh_vm *vm)
{
    return bh_vm_has_irqchip(vm) &&
           ioctl(bh_vm_fd(vm), KVM_CHECK_EXTENSION, KVM_CAP_TSC_DEADLINE_TIMER) > 0;
}

static int cpuid_set_vcpu(bh_vm *vm, uint32_t vcpu, const struct kvm_cpuid2 *base, bool amd,
                          bh_error *err)
{
    size_t size = sizeof *base + base->nent * sizeof base->entries[0];
    struct kvm_cpuid2 *c = malloc(size);
    if (!c)
        return bh_boot_status(err, BH_E_NOMEM, "out of memory for CPUID entries");
    memcpy(c, base, size);
    bool deadline = cpuid_tsc_deadline(vm);
    for (uint32_t i = 0; i < c->nent; i++) {
        cpuid_topology_entry(&c->entries[i], vcpu, bh_vm_vcpu_count(vm), amd);
        if (c->entries[i].function == 1 && deadline)
            c->entries[i].ecx |= LEAF1_ECX_TSC_DEADLINE;
    }
    int rc = ioctl(bh_vcpu_fd(vm, vcpu), KVM_SET_CPUID2, c);
    int e = errno;
    free(c);
    if (rc < 0)
        return bh_boot_status(err, BH_E_SYSTEM, "KVM_SET_CPUID2 on vCPU %u: %s", vcpu, strerror(e));
    return 0;
}

int bh_boot_setup_cpuid(bh_vm *vm, bh_cpu_facts *facts, bh_error *err)
{
    struct kvm_cpuid2 *c = cpuid_supported(err);
    if (!c)
        return err ? err->code : BH_E_SYSTEM;
    cpuid_kvm_leaves(c);
    struct kvm_cpuid_entry2 *leaf0 = cpuid_find(c, 0, 0), *leaf1 = cpuid_find(c, 1, 0);
    bool amd = leaf0 && leaf0->ebx == AMD_VENDOR_EBX;
    struct kvm_cpuid_entry2 *xsave = cpuid_find(c, 0xd, 0);
    facts->signature = leaf1 ? leaf1->eax & 0xfff : 0;
    facts->features = leaf1 ? leaf1->edx : 0;
    facts->xcr0_supported = xsave ? (uint64_t)xsave->edx << 32 | xsave->eax : 0;
    int rc = 0;
    for (uint32_t v = 0; v < bh_vm_vcpu_count(vm) && !rc; v++)
        rc = cpuid_set_vcpu(vm, v, c, amd, err);
    free(c);
    return rc;
}
