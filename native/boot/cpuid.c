/*
 * cpuid.c — what the loader needs to know about the CPU the guest sees, read back from the CPUID
 * the core gave every vCPU at bh_vm_create (native/kvm/cpuid.c builds it, once, through the
 * caller's /dev/kvm handle): the signature and feature bits for the MP table, and the XSAVE
 * state components for XCR0.
 */
#include "boot_internal.h"

int bh_boot_cpu_facts(bh_vm *vm, bh_cpu_facts *facts, bh_error *err)
{
    uint32_t leaf1[4], xsave[4];
    int rc = bh_vcpu_get_cpuid(vm, 0, 1, 0, leaf1, err);
    if (rc)
        return rc;
    facts->signature = leaf1[0] & 0xfff;
    facts->features = leaf1[3];
    facts->xcr0_supported = bh_vcpu_get_cpuid(vm, 0, 0xd, 0, xsave, NULL) == 0
                                ? (uint64_t)xsave[3] << 32 | xsave[0]
                                : 0;
    return 0;
}
