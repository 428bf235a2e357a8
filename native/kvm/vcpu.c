/* vcpu.c — creating vCPUs (CPUID comes from cpuid.c), and converting their registers to and from bh_ structs. */
#include "internal.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

/* On failure the vCPU is left half-built; bh_vcpu_destroy frees whatever was made. */
int bh_vcpu_create(bh_vm *vm, uint32_t index, bh_error *err)
{
    bh_vcpu *vcpu = &vm->vcpus[index];
    vcpu->vm = vm;
    vcpu->index = index;
    vcpu->fd = -1;
    vcpu->phase = BH_PHASE_NOT_STARTED;
    int rc = pthread_cond_init(&vcpu->wake, NULL);
    if (rc != 0)
        return bh_fail(err, BH_E_SYSTEM, rc, "pthread_cond_init for vCPU %u failed", index);
    vm->vcpu_count = index + 1; /* from here on destroy must clean this vCPU up */

    vcpu->fd = ioctl(vm->fd, KVM_CREATE_VCPU, (unsigned long)index);
    if (vcpu->fd < 0) {
        int e = errno;
        return bh_fail(err, e == ENOMEM ? BH_E_NOMEM : BH_E_SYSTEM, e, "KVM_CREATE_VCPU for vCPU %u failed: %s",
                       index, strerror(e));
    }
    vcpu->run_size = (size_t)vm->kvm->vcpu_mmap_size;
    void *run = mmap(NULL, vcpu->run_size, PROT_READ | PROT_WRITE, MAP_SHARED, vcpu->fd, 0);
    if (run == MAP_FAILED)
        return bh_fail_errno(err, "mmap of the vCPU's kvm_run area");
    vcpu->run = run;
    return bh_cpuid_set_vcpu(vm, index, err);
}

void bh_vcpu_destroy(bh_vcpu *vcpu)
{
    if (vcpu->run)
        munmap(vcpu->run, vcpu->run_size);
    vcpu->run = NULL;
    if (vcpu->fd >= 0)
        close(vcpu->fd);
    vcpu->fd = -1;
    pthread_cond_destroy(&vcpu->wake);
}

int bh_vcpu_fd(const bh_vm *vm, uint32_t vcpu)
{
    if (!vm || vcpu >= vm->vcpu_count)
        return -1;
    return vm->vcpus[vcpu].fd;
}

/* Register access is allowed while no KVM_RUN can be in progress (CREATED, PAUSED, STOPPED), or from
 * the vCPU's own thread (an exit callback or I/O handler). */
static int check_access(bh_vm *vm, uint32_t vcpu, const char *what, bh_error *err)
{
    if (!vm)
        return bh_fail(err, BH_E_INVALID_ARG, 0, "%s: vm is NULL", what);
    if (vcpu >= vm->vcpu_count)
        return bh_fail(err, BH_E_INVALID_ARG, 0, "%s: vcpu %u out of range 0..%u", what, vcpu,
                       vm->vcpu_count - 1);
    uint32_t self;
    if (bh_control_on_vcpu_thread(vm, &self) && self == vcpu)
        return BH_OK;
    pthread_mutex_lock(&vm->lock);
    bh_vm_state state = vm->state;
    pthread_mutex_unlock(&vm->lock);
    if (state == BH_VM_RUNNING)
        return bh_fail(err, BH_E_STATE, 0, "%s: vCPU %u is running; pause the VM first", what, vcpu);
    return BH_OK;
}

int bh_vcpu_get_regs(bh_vm *vm, uint32_t vcpu, bh_regs *out, bh_error *err)
{
    int rc = check_access(vm, vcpu, "bh_vcpu_get_regs", err);
    if (rc)
        return rc;
    struct kvm_regs r;
    if (bh_kvm_ioctl_retry(vm->vcpus[vcpu].fd, KVM_GET_REGS, &r) < 0)
        return bh_fail_errno(err, "KVM_GET_REGS");
    *out = (bh_regs){
        .rax = r.rax, .rbx = r.rbx, .rcx = r.rcx, .rdx = r.rdx,
        .rsi = r.rsi, .rdi = r.rdi, .rsp = r.rsp, .rbp = r.rbp,
        .r8 = r.r8, .r9 = r.r9, .r10 = r.r10, .r11 = r.r11,
        .r12 = r.r12, .r13 = r.r13, .r14 = r.r14, .r15 = r.r15,
        .rip = r.rip, .rflags = r.rflags,
    };
    return BH_OK;
}

int bh_vcpu_set_regs(bh_vm *vm, uint32_t vcpu, const bh_regs *in, bh_error *err)
{
    int rc = check_access(vm, vcpu, "bh_vcpu_set_regs", err);
    if (rc)
        return rc;
    struct kvm_regs r = {
        .rax = in->rax, .rbx = in->rbx, .rcx = in->rcx, .rdx = in->rdx,
        .rsi = in->rsi, .rdi = in->rdi, .rsp = in->rsp, .rbp = in->rbp,
        .r8 = in->r8, .r9 = in->r9, .r10 = in->r10, .r11 = in->r11,
        .r12 = in->r12, .r13 = in->r13, .r14 = in->r14, .r15 = in->r15,
        .rip = in->rip, .rflags = in->rflags,
    };
    if (bh_kvm_ioctl_retry(vm->vcpus[vcpu].fd, KVM_SET_REGS, &r) < 0)
        return bh_fail_errno(err, "KVM_SET_REGS");
    return BH_OK;
}

static bh_segment segment_from_kvm(const struct kvm_segment *s)
{
    return (bh_segment){
        .base = s->base, .limit = s->limit, .selector = s->selector, .type = s->type,
        .present = s->present, .dpl = s->dpl, .db = s->db, .s = s->s, .l = s->l, .g = s->g, .avl = s->avl,
    };
}

/* `unusable` is what VMX calls a null/absent segment; derive it from `present`. */
static struct kvm_segment segment_to_kvm(const bh_segment *s)
{
    return (struct kvm_segment){
        .base = s->base, .limit = s->limit, .selector = s->selector, .type = s->type,
        .present = s->present, .dpl = s->dpl, .db = s->db, .s = s->s, .l = s->l, .g = s->g, .avl = s->avl,
        .unusable = s->present ? 0 : 1,
    };
}

int bh_vcpu_get_sregs(bh_vm *vm, uint32_t vcpu, bh_sregs *out, bh_error *err)
{
    int rc = check_access(vm, vcpu, "bh_vcpu_get_sregs", err);
    if (rc)
        return rc;
    struct kvm_sregs s;
    if (bh_kvm_ioctl_retry(vm->vcpus[vcpu].fd, KVM_GET_SREGS, &s) < 0)
        return bh_fail_errno(err, "KVM_GET_SREGS");
    out->cs = segment_from_kvm(&s.cs);
    out->ds = segment_from_kvm(&s.ds);
    out->es = segment_from_kvm(&s.es);
    out->fs = segment_from_kvm(&s.fs);
    out->gs = segment_from_kvm(&s.gs);
    out->ss = segment_from_kvm(&s.ss);
    out->tr = segment_from_kvm(&s.tr);
    out->ldt = segment_from_kvm(&s.ldt);
    out->gdt = (bh_dtable){.base = s.gdt.base, .limit = s.gdt.limit};
    out->idt = (bh_dtable){.base = s.idt.base, .limit = s.idt.limit};
    out->cr0 = s.cr0;
    out->cr2 = s.cr2;
    out->cr3 = s.cr3;
    out->cr4 = s.cr4;
    out->cr8 = s.cr8;
    out->efer = s.efer;
    out->apic_base = s.apic_base;
    return BH_OK;
}

int bh_vcpu_set_sregs(bh_vm *vm, uint32_t vcpu, const bh_sregs *in, bh_error *err)
{
    int rc = check_access(vm, vcpu, "bh_vcpu_set_sregs", err);
    if (rc)
        return rc;
    /* Start from the current values so fields bh_sregs does not carry (the pending-interrupt bitmap)
     * are preserved. */
    struct kvm_sregs s;
    int fd = vm->vcpus[vcpu].fd;
    if (bh_kvm_ioctl_retry(fd, KVM_GET_SREGS, &s) < 0)
        return bh_fail_errno(err, "KVM_GET_SREGS");
    s.cs = segment_to_kvm(&in->cs);
    s.ds = segment_to_kvm(&in->ds);
    s.es = segment_to_kvm(&in->es);
    s.fs = segment_to_kvm(&in->fs);
    s.gs = segment_to_kvm(&in->gs);
    s.ss = segment_to_kvm(&in->ss);
    s.tr = segment_to_kvm(&in->tr);
    s.ldt = segment_to_kvm(&in->ldt);
    s.gdt.base = in->gdt.base;
    s.gdt.limit = in->gdt.limit;
    s.idt.base = in->idt.base;
    s.idt.limit = in->idt.limit;
    s.cr0 = in->cr0;
    s.cr2 = in->cr2;
    s.cr3 = in->cr3;
    s.cr4 = in->cr4;
    s.cr8 = in->cr8;
    s.efer = in->efer;
    s.apic_base = in->apic_base;
    if (bh_kvm_ioctl_retry(fd, KVM_SET_SREGS, &s) < 0)
        return bh_fail_errno(err, "KVM_SET_SREGS");
    return BH_OK;
}
