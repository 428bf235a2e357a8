/*
 * halt.c — has a Linux guest powered itself off? Without ACPI it has no power-off device, so
 * `poweroff` ends in "reboot: System halted": every CPU in HLT with interrupts disabled, from
 * which only an NMI or INIT could wake it. An AP never started (still waiting for INIT/SIPI)
 * counts as halted too. The check needs the vCPUs out of KVM_RUN, so the VM is paused for it.
 */
#include <linux/kvm.h>
#include <sys/ioctl.h>

#include "boot_internal.h"

#define RFLAGS_IF 0x200

static bool vcpu_halted_for_good(bh_vm *vm, uint32_t vcpu)
{
    struct kvm_mp_state mp;
    bh_regs r;
    if (ioctl(bh_vcpu_fd(vm, vcpu), KVM_GET_MP_STATE, &mp) < 0)
        return false;
    if (mp.mp_state == KVM_MP_STATE_UNINITIALIZED || mp.mp_state == KVM_MP_STATE_INIT_RECEIVED)
        return true;
    return mp.mp_state == KVM_MP_STATE_HALTED && bh_vcpu_get_regs(vm, vcpu, &r, NULL) == 0 &&
           !(r.rflags & RFLAGS_IF);
}

int bh_linux_guest_halted(bh_vm *vm, bool *halted, bh_error *err)
{
    *halted = false;
    int rc = bh_vm_pause(vm, err);
    if (rc)
        return rc;
    bool all = bh_vm_vcpu_count(vm) > 0;
    for (uint32_t i = 0; all && i < bh_vm_vcpu_count(vm); i++)
        all = vcpu_halted_for_good(vm, i);
    *halted = all;
    return all ? 0 : bh_vm_resume(vm, err); /* a halted machine stays paused for the caller */
}
