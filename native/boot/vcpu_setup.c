/*
 * vcpu_setup.c — the machine state a firmware would leave before jumping to Linux: boot MSRs,
 * FPU control words, XCR0, the LAPIC's LINT0 (ExtINT, so the PIC reaches the BSP) and LINT1
 * (NMI), and the boot vCPU's registers for the chosen entry. APs are left alone: the in-kernel
 * LAPIC holds them until the guest's INIT/SIPI.
 */
#include <errno.h>
#include <linux/kvm.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>

#include "boot_internal.h"
#include "layout.h"

#define MSR_IA32_TSC 0x10
#define MSR_IA32_SYSENTER_CS 0x174
#define MSR_IA32_SYSENTER_ESP 0x175
#define MSR_IA32_SYSENTER_EIP 0x176
#define MSR_IA32_MISC_ENABLE 0x1a0
#define MSR_MTRR_DEF_TYPE 0x2ff
#define MSR_STAR 0xc0000081
#define MSR_LSTAR 0xc0000082
#define MSR_CSTAR 0xc0000083
#define MSR_SYSCALL_MASK 0xc0000084
#define MSR_KERNEL_GS_BASE 0xc0000102
#define MSR_KVM_WALL_CLOCK_NEW 0x4b564d00
#define MSR_KVM_SYSTEM_TIME_NEW 0x4b564d01
#define MISC_ENABLE_FAST_STRING 0x1ULL
#define MTRR_ENABLE_WRITEBACK ((1ULL << 11) | 6)

#define APIC_LVT_LINT0 0x350
#define APIC_LVT_LINT1 0x360
#define APIC_MODE_NMI 0x4
#define APIC_MODE_EXTINT 0x7

#define X86_CR0_PE 0x1ULL
#define X86_CR0_ET 0x10ULL
#define X86_CR0_NE 0x20ULL
#define X86_CR0_PG 0x80000000ULL
#define X86_CR4_PAE 0x20ULL
#define EFER_LME 0x100ULL
#define EFER_LMA 0x400ULL
#define XCR0_X87_SSE_AVX 0x7ULL

void bh_boot_note(bh_boot_info *info, const char *fmt, ...)
{
    size_t used = strlen(info->notes);
    if (used + 2 >= sizeof info->notes)
        return;
    if (used)
        info->notes[used++] = ';', info->notes[used++] = ' ', info->notes[used] = 0;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(info->notes + used, sizeof info->notes - used, fmt, ap);
    va_end(ap);
}

static const struct {
    uint32_t index;
    uint64_t value;
} boot_msrs[] = {
    {MSR_IA32_SYSENTER_CS, 0},   {MSR_IA32_SYSENTER_ESP, 0}, {MSR_IA32_SYSENTER_EIP, 0},
    {MSR_STAR, 0},               {MSR_LSTAR, 0},             {MSR_CSTAR, 0},
    {MSR_SYSCALL_MASK, 0},       {MSR_KERNEL_GS_BASE, 0},    {MSR_IA32_TSC, 0},
    {MSR_IA32_MISC_ENABLE, MISC_ENABLE_FAST_STRING},         {MSR_MTRR_DEF_TYPE, MTRR_ENABLE_WRITEBACK},
    {MSR_KVM_WALL_CLOCK_NEW, 0}, {MSR_KVM_SYSTEM_TIME_NEW, 0},
};

/* One MSR per KVM_SET_MSRS, so a refusal names the MSR; a refused MSR is noted, not fatal. */
static void setup_msrs(int fd, uint32_t vcpu, bh_boot_info *info)
{
    for (size_t i = 0; i < sizeof boot_msrs / sizeof boot_msrs[0]; i++) {
        /* struct kvm_msrs ends in a flexible array: lay one entry out after its header. */
        uint64_t buf[(sizeof(struct kvm_msrs) + sizeof(struct kvm_msr_entry)) / 8 + 1];
        struct kvm_msrs *m = (struct kvm_msrs *)buf;
        memset(buf, 0, sizeof buf);
        m->nmsrs = 1;
        m->entries[0].index = boot_msrs[i].index;
        m->entries[0].data = boot_msrs[i].value;
        if (ioctl(fd, KVM_SET_MSRS, m) != 1) {
            info->msrs_refused++;
            bh_boot_note(info, "vCPU %u: MSR 0x%x refused", vcpu, boot_msrs[i].index);
        }
    }
}

static int setup_fpu(int fd, uint32_t vcpu, bh_error *err)
{
    struct kvm_fpu fpu;
    memset(&fpu, 0, sizeof fpu);
    fpu.fcw = 0x37f;    /* FNINIT's control word */
    fpu.mxcsr = 0x1f80; /* all SSE exceptions masked */
    if (ioctl(fd, KVM_SET_FPU, &fpu) < 0)
        return bh_boot_status(err, BH_E_SYSTEM, "KVM_SET_FPU on vCPU %u: %s", vcpu, strerror(errno));
    return 0;
}

static void setup_xcr0(bh_vm *vm, int fd, uint32_t vcpu, const bh_cpu_facts *facts,
                       bh_boot_info *info)
{
    if (ioctl(bh_vm_fd(vm), KVM_CHECK_EXTENSION, KVM_CAP_XCRS) <= 0 || !facts->xcr0_supported)
        return;
    struct kvm_xcrs xcrs;
    memset(&xcrs, 0, sizeof xcrs);
    xcrs.nr_xcrs = 1;
    xcrs.xcrs[0].xcr = 0;
    xcrs.xcrs[0].value = (facts->xcr0_supported & XCR0_X87_SSE_AVX) | 1; /* x87 is mandatory */
    if (ioctl(fd, KVM_SET_XCRS, &xcrs) < 0)
        bh_boot_note(info, "vCPU %u: XCR0 0x%llx refused (%s)", vcpu,
                     (unsigned long long)xcrs.xcrs[0].value, strerror(errno));
}

static uint32_t lvt_mode(uint32_t lvt, uint32_t mode)
{
    return (lvt & ~0x700u) | mode << 8;
}

static int setup_lapic(bh_vm *vm, int fd, uint32_t vcpu, bh_error *err)
{
    if (!bh_vm_has_irqchip(vm))
        return 0;
    struct kvm_lapic_state lapic;
    uint32_t v;
    if (ioctl(fd, KVM_GET_LAPIC, &lapic) < 0)
        return bh_boot_status(err, BH_E_SYSTEM, "KVM_GET_LAPIC on vCPU %u: %s", vcpu,
                              strerror(errno));
    memcpy(&v, lapic.regs + APIC_LVT_LINT0, 4);
    v = lvt_mode(v, APIC_MODE_EXTINT);
    memcpy(lapic.regs + APIC_LVT_LINT0, &v, 4);
    memcpy(&v, lapic.regs + APIC_LVT_LINT1, 4);
    v = lvt_mode(v, APIC_MODE_NMI);
    memcpy(lapic.regs + APIC_LVT_LINT1, &v, 4);
    if (ioctl(fd, KVM_SET_LAPIC, &lapic) < 0)
        return bh_boot_status(err, BH_E_SYSTEM, "KVM_SET_LAPIC on vCPU %u: %s", vcpu,
                              strerror(errno));
    return 0;
}

int bh_boot_setup_vcpu_state(bh_vm *vm, uint32_t vcpu, const bh_cpu_facts *facts,
                             bh_boot_info *info, bh_error *err)
{
    int fd = bh_vcpu_fd(vm, vcpu);
    if (fd < 0)
        return bh_boot_status(err, BH_E_STATE, "vCPU %u has no fd", vcpu);
    setup_msrs(fd, vcpu, info);
    setup_xcr0(vm, fd, vcpu, facts, info);
    int rc = setup_fpu(fd, vcpu, err);
    return rc ? rc : setup_lapic(vm, fd, vcpu, err);
}

static void entry_segments(bh_sregs *s, bool long_mode)
{
    uint64_t gdt[BH_GDT_ENTRIES];
    bh_gdt_table(gdt, long_mode);
    bh_gdt_to_segment(gdt[BH_BOOT_CS >> 3], BH_BOOT_CS, &s->cs);
    bh_gdt_to_segment(gdt[BH_BOOT_DS >> 3], BH_BOOT_DS, &s->ds);
    s->es = s->fs = s->gs = s->ss = s->ds;
    bh_gdt_to_segment(gdt[BH_BOOT_TSS >> 3], BH_BOOT_TSS, &s->tr);
    s->gdt.base = BH_BOOT_GDT_ADDR;
    s->gdt.limit = sizeof gdt - 1;
    s->idt.base = 0;
    s->idt.limit = 0;
}

int bh_boot_setup_entry_regs(bh_vm *vm, const bh_boot_plan *plan, uint64_t *entry, bh_error *err)
{
    bool pvh = plan->entry == BH_LINUX_ENTRY_PVH;
    bh_sregs s;
    bh_regs r;
    int rc = bh_vcpu_get_sregs(vm, 0, &s, err);
    if (rc)
        return rc;
    entry_segments(&s, !pvh);
    memset(&r, 0, sizeof r);
    r.rflags = 0x2; /* interrupts off */
    if (pvh) {
        /* PVH: 32-bit protected mode, paging off, ebx = hvm_start_info. */
        s.cr0 = X86_CR0_PE | X86_CR0_ET;
        s.cr3 = 0, s.cr4 = 0, s.efer = 0;
        r.rip = plan->image.pvh_entry;
        r.rbx = BH_BOOT_PVH_INFO_ADDR;
    } else {
        /* 64-bit boot protocol: long mode, identity paging, rsi = boot_params. */
        s.cr0 = X86_CR0_PE | X86_CR0_ET | X86_CR0_NE | X86_CR0_PG;
        s.cr3 = BH_BOOT_PML4_ADDR;
        s.cr4 = X86_CR4_PAE;
        s.efer = EFER_LME | EFER_LMA;
        r.rip = plan->image.entry64;
        r.rsi = BH_BOOT_ZERO_PAGE_ADDR;
    }
    r.rsp = r.rbp = BH_BOOT_STACK_TOP;
    *entry = r.rip;
    if ((rc = bh_vcpu_set_sregs(vm, 0, &s, err)))
        return rc;
    return bh_vcpu_set_regs(vm, 0, &r, err);
}
