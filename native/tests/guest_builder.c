/* guest_builder.c — GDT, TSS, page tables and register state for the test guests. */
#include "guest_builder.h"

#include <string.h>

#define CR0_PE (1ULL << 0)
#define CR0_MP (1ULL << 1)
#define CR0_ET (1ULL << 4)
#define CR0_NE (1ULL << 5)
#define CR0_WP (1ULL << 16)
#define CR0_PG (1ULL << 31)
#define CR4_PAE (1ULL << 5)
#define EFER_LME (1ULL << 8)
#define EFER_LMA (1ULL << 10)

#define PTE_P (1ULL << 0)
#define PTE_RW (1ULL << 1)
#define PTE_US (1ULL << 2)
#define PTE_PS (1ULL << 7)

int gb_load(bh_vm *vm, uint64_t gpa, const void *code, size_t len, bh_error *err)
{
    return bh_mem_write(vm, gpa, code, len, err);
}

int gb_real_mode(bh_vm *vm, uint32_t vcpu, uint16_t entry, bh_error *err)
{
    bh_sregs s;
    int rc = bh_vcpu_get_sregs(vm, vcpu, &s, err);
    if (rc)
        return rc;
    s.cs.base = 0;
    s.cs.selector = 0;
    s.ds.base = s.es.base = s.ss.base = 0;
    s.ds.selector = s.es.selector = s.ss.selector = 0;
    rc = bh_vcpu_set_sregs(vm, vcpu, &s, err);
    if (rc)
        return rc;
    bh_regs r = {.rip = entry, .rsp = 0xfff0, .rflags = 0x2};
    return bh_vcpu_set_regs(vm, vcpu, &r, err);
}

int gb_long_mode_tables(bh_vm *vm, bh_error *err)
{
    const uint64_t gdt[7] = {
        0,
        0x00af9a000000ffffULL, /* 0x08 code64, DPL0 */
        0x00cf92000000ffffULL, /* 0x10 data, DPL0 */
        0x00affa000000ffffULL, /* 0x18 code64, DPL3 */
        0x00cff2000000ffffULL, /* 0x20 data, DPL3 */
        0x0000890000000000ULL | GB_TSS_LIMIT | ((GB_TSS & 0xffffff) << 16) | ((GB_TSS >> 24) << 56), /* 0x28 TSS */
        GB_TSS >> 32,
    };
    int rc = bh_mem_write(vm, GB_GDT, gdt, sizeof gdt, err);
    if (rc)
        return rc;

    uint8_t tss[104] = {0};
    uint64_t rsp0 = GB_STACK_CPL0;
    memcpy(&tss[4], &rsp0, 8);
    /* PVM ignores RFLAGS.IOPL for CPL3 in/out (#GP) but honours the TSS I/O permission bitmap:
     * an all-zero bitmap (every port allowed) plus the required 0xff terminator byte. */
    uint16_t iomap = sizeof tss;
    memcpy(&tss[102], &iomap, 2);
    if ((rc = bh_mem_write(vm, GB_TSS, tss, sizeof tss, err)))
        return rc;
    static const uint8_t io_bitmap[GB_IO_BITMAP_BYTES]; /* zero: allowed */
    if ((rc = bh_mem_write(vm, GB_TSS + sizeof tss, io_bitmap, sizeof io_bitmap, err)))
        return rc;
    uint8_t terminator = 0xff;
    if ((rc = bh_mem_write(vm, GB_TSS + sizeof tss + sizeof io_bitmap, &terminator, 1, err)))
        return rc;

    uint64_t pml4e = (GB_PML4 + 0x1000) | PTE_P | PTE_RW | PTE_US;
    if ((rc = bh_mem_write(vm, GB_PML4, &pml4e, 8, err)))
        return rc;
    for (uint64_t g = 0; g < 4; g++) {
        uint64_t pd = GB_PML4 + 0x2000 + g * 0x1000;
        uint64_t pdpte = pd | PTE_P | PTE_RW | PTE_US;
        if ((rc = bh_mem_write(vm, GB_PML4 + 0x1000 + g * 8, &pdpte, 8, err)))
            return rc;
        for (uint64_t i = 0; i < 512; i++) {
            uint64_t pde = ((g << 30) | (i << 21)) | PTE_P | PTE_RW | PTE_US | PTE_PS;
            if ((rc = bh_mem_write(vm, pd + i * 8, &pde, 8, err)))
                return rc;
        }
    }
    return BH_OK;
}

static bh_segment code64(int dpl)
{
    return (bh_segment){.base = 0, .limit = 0xffffffff, .selector = dpl ? GB_SEL_CODE3 : GB_SEL_CODE0,
                        .type = 0xb, .present = 1, .dpl = (uint8_t)dpl, .db = 0, .s = 1, .l = 1, .g = 1};
}

static bh_segment data64(int dpl)
{
    return (bh_segment){.base = 0, .limit = 0xffffffff, .selector = dpl ? GB_SEL_DATA3 : GB_SEL_DATA0,
                        .type = 0x3, .present = 1, .dpl = (uint8_t)dpl, .db = 1, .s = 1, .l = 0, .g = 1};
}

int gb_long_mode(bh_vm *vm, uint32_t vcpu, uint64_t entry, uint64_t stack, int cpl, bh_error *err)
{
    bh_sregs s;
    int rc = bh_vcpu_get_sregs(vm, vcpu, &s, err);
    if (rc)
        return rc;
    s.cs = code64(cpl);
    s.ds = s.es = s.fs = s.gs = s.ss = data64(cpl);
    s.tr = (bh_segment){.base = GB_TSS, .limit = GB_TSS_LIMIT, .selector = GB_SEL_TSS, .type = 0xb, .present = 1};
    s.ldt = (bh_segment){.type = 0x2, .present = 0};
    s.gdt = (bh_dtable){.base = GB_GDT, .limit = 7 * 8 - 1};
    s.idt = (bh_dtable){.base = 0, .limit = 0};
    s.cr0 = CR0_PE | CR0_MP | CR0_ET | CR0_NE | CR0_WP | CR0_PG;
    s.cr3 = GB_PML4;
    s.cr4 = CR4_PAE;
    s.efer = EFER_LME | EFER_LMA;
    if ((rc = bh_vcpu_set_sregs(vm, vcpu, &s, err)))
        return rc;
    bh_regs r = {.rip = entry, .rsp = stack, .rflags = cpl ? 0x3002 : 0x2};
    return bh_vcpu_set_regs(vm, vcpu, &r, err);
}
