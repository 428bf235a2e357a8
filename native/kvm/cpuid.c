/*
 * cpuid.c — what each vCPU sees in CPUID, built in one place, once per VM, from the /dev/kvm
 * handle the caller opened: KVM_GET_SUPPORTED_CPUID, then the hypervisor bit, the KVM leaves
 * 0x40000000/0x40000001 with the kvm-clock features (the guest then drives
 * MSR_KVM_SYSTEM_TIME_NEW itself, in-kernel), the TSC-deadline timer when the in-kernel LAPIC has
 * it, and per vCPU its APIC ID and the topology (one package, one thread per core, a core per
 * vCPU: leaves 1, 4, 0xB/0x1F and AMD's 0x80000008/0x8000001E).
 *
 * KVM leaves the TSC-deadline timer out of the supported list and reports it as a capability of
 * the in-kernel LAPIC instead (KVM_CAP_TSC_DEADLINE_TIMER); without it Linux calibrates the LAPIC
 * timer against the PIT, which fails under nested emulation ("APIC timer disabled").
 * PVM needs KVM_SET_CPUID2 before the first KVM_RUN even though its guest sees the host's CPUID
 * (without it EFER.SCE writes fault, see host-facts), so every vCPU gets it at creation.
 */
#include "internal.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>

#define CPUID_FIRST_ENTRIES 64
#define CPUID_MAX_ENTRIES 4096
#define CPUID_SPARE 8 /* room for the KVM leaves when KVM does not list them */
#define LEAF1_ECX_TSC_DEADLINE (1u << 24)
#define LEAF1_ECX_HYPERVISOR (1u << 31)
#define LEAF1_EDX_HTT (1u << 28)
#define KVM_SIGNATURE_EBX 0x4b4d564bu /* "KVMK" */
#define KVM_SIGNATURE_ECX 0x564b4d56u /* "VMKV" */
#define KVM_SIGNATURE_EDX 0x0000004du /* "M\0\0\0" */
#define KVM_FEATURE_CLOCKSOURCE (1u << 0)
#define KVM_FEATURE_CLOCKSOURCE2 (1u << 3)
#define AMD_VENDOR_EBX 0x68747541u /* "Auth" */

/* KVM_GET_SUPPORTED_CPUID on the caller's handle, growing the table while KVM says E2BIG. */
static struct kvm_cpuid2 *cpuid_supported(bh_kvm *kvm, bh_error *err)
{
    for (uint32_t nent = CPUID_FIRST_ENTRIES; nent <= CPUID_MAX_ENTRIES; nent *= 2) {
        struct kvm_cpuid2 *c = calloc(1, sizeof *c + (nent + CPUID_SPARE) * sizeof(struct kvm_cpuid_entry2));
        if (!c) {
            bh_fail(err, BH_E_NOMEM, ENOMEM, "out of memory for the CPUID table");
            return NULL;
        }
        c->nent = nent;
        if (ioctl(kvm->fd, KVM_GET_SUPPORTED_CPUID, c) == 0)
            return c;
        int e = errno;
        free(c);
        if (e != E2BIG) {
            errno = e;
            bh_fail_errno(err, "KVM_GET_SUPPORTED_CPUID");
            return NULL;
        }
    }
    bh_fail(err, BH_E_SYSTEM, E2BIG, "KVM_GET_SUPPORTED_CPUID: more than %d entries", CPUID_MAX_ENTRIES);
    return NULL;
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

/* The per-vCPU fields of one entry: APIC ID and topology. */
static void cpuid_vcpu_entry(struct kvm_cpuid_entry2 *e, uint32_t apic_id, uint32_t vcpus, bool amd)
{
    uint32_t core_bits = bits_for(vcpus);
    switch (e->function) {
    case 1:
        e->ebx = (e->ebx & 0x0000ffffu) | apic_id << 24 | (1u << core_bits) << 16;
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
    if (sig->eax < 0x40000001)
        sig->eax = 0x40000001;
    sig->ebx = KVM_SIGNATURE_EBX, sig->ecx = KVM_SIGNATURE_ECX, sig->edx = KVM_SIGNATURE_EDX;
    feat->eax |= KVM_FEATURE_CLOCKSOURCE | KVM_FEATURE_CLOCKSOURCE2;
}

static bool is_amd(struct kvm_cpuid2 *c)
{
    struct kvm_cpuid_entry2 *leaf0 = cpuid_find(c, 0, 0);
    return leaf0 && leaf0->ebx == AMD_VENDOR_EBX;
}

/* After the irqchip exists (the TSC-deadline bit depends on it) and before any vCPU. */
int bh_cpuid_build(bh_vm *vm, bh_error *err)
{
    struct kvm_cpuid2 *c = cpuid_supported(vm->kvm, err);
    if (!c)
        return err ? err->code : BH_E_SYSTEM;
    cpuid_kvm_leaves(c);
    bool deadline = vm->has_irqchip && bh_kvm_check_extension(vm->kvm, KVM_CAP_TSC_DEADLINE_TIMER) > 0;
    struct kvm_cpuid_entry2 *leaf1 = cpuid_find(c, 1, 0);
    if (leaf1) {
        leaf1->ecx |= LEAF1_ECX_HYPERVISOR;
        if (deadline)
            leaf1->ecx |= LEAF1_ECX_TSC_DEADLINE;
    }
    vm->cpuid = c;
    return BH_OK;
}

void bh_cpuid_free(bh_vm *vm)
{
    free(vm->cpuid);
    vm->cpuid = NULL;
}

int bh_cpuid_set_vcpu(bh_vm *vm, uint32_t vcpu, bh_error *err)
{
    const struct kvm_cpuid2 *base = vm->cpuid;
    size_t size = sizeof *base + base->nent * sizeof base->entries[0];
    struct kvm_cpuid2 *c = malloc(size);
    if (!c)
        return bh_fail(err, BH_E_NOMEM, ENOMEM, "out of memory for the CPUID table");
    memcpy(c, base, size);
    bool amd = is_amd(c);
    for (uint32_t i = 0; i < c->nent; i++)
        cpuid_vcpu_entry(&c->entries[i], vcpu, vm->config.vcpus, amd);
    int rc = ioctl(vm->vcpus[vcpu].fd, KVM_SET_CPUID2, c);
    int e = errno;
    free(c);
    if (rc < 0) {
        errno = e;
        return bh_fail_errno(err, "KVM_SET_CPUID2");
    }
    return BH_OK;
}

int bh_vcpu_get_cpuid(const bh_vm *vm, uint32_t vcpu, uint32_t function, uint32_t index, uint32_t regs[4],
                      bh_error *err)
{
    if (!vm || !regs || !vm->cpuid)
        return bh_fail(err, BH_E_INVALID_ARG, 0, "bh_vcpu_get_cpuid: vm and regs are required");
    if (vcpu >= vm->vcpu_count)
        return bh_fail(err, BH_E_INVALID_ARG, 0, "bh_vcpu_get_cpuid: vcpu %u out of range 0..%u", vcpu,
                       vm->vcpu_count ? vm->vcpu_count - 1 : 0);
    struct kvm_cpuid_entry2 *found = cpuid_find(vm->cpuid, function, index);
    if (!found)
        return bh_fail(err, BH_E_INVALID_ARG, 0, "CPUID leaf 0x%x index %u is not in this VM's table", function,
                       index);
    struct kvm_cpuid_entry2 e = *found;
    cpuid_vcpu_entry(&e, vcpu, vm->config.vcpus, is_amd(vm->cpuid));
    regs[0] = e.eax, regs[1] = e.ebx, regs[2] = e.ecx, regs[3] = e.edx;
    return BH_OK;
}
