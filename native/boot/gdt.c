/*
 * gdt.c — the boot GDT. The Linux 64-bit boot protocol wants flat 4 GiB descriptors at __BOOT_CS
 * (0x10, execute/read) and __BOOT_DS (0x18, read/write); KVM wants a present busy TSS in TR. The
 * PVH entry uses the same table with a 32-bit code segment.
 */
#include "boot_internal.h"
#include "layout.h"

#define GDT_CODE64 0xa09b /* G, L, present, DPL 0, code execute/read accessed */
#define GDT_CODE32 0xc09b /* G, D/B, present, DPL 0, code execute/read accessed */
#define GDT_DATA 0xc093   /* G, D/B, present, DPL 0, data read/write accessed */
#define GDT_TSS 0x808b    /* G, present, 32/64-bit busy TSS */

uint64_t bh_gdt_entry(uint32_t base, uint32_t limit, uint16_t flags)
{
    return ((uint64_t)(base & 0xff000000u) << 32) | ((uint64_t)(flags & 0xf0ffu) << 40) |
           ((uint64_t)(limit & 0x000f0000u) << 32) | ((uint64_t)(base & 0x00ffffffu) << 16) |
           (uint64_t)(limit & 0x0000ffffu);
}

void bh_gdt_table(uint64_t table[BH_GDT_ENTRIES], bool long_mode)
{
    table[0] = 0;
    table[1] = 0;
    table[BH_BOOT_CS >> 3] = bh_gdt_entry(0, 0xfffff, long_mode ? GDT_CODE64 : GDT_CODE32);
    table[BH_BOOT_DS >> 3] = bh_gdt_entry(0, 0xfffff, GDT_DATA);
    table[BH_BOOT_TSS >> 3] = bh_gdt_entry(0, 0xfffff, GDT_TSS);
}

void bh_gdt_to_segment(uint64_t e, uint16_t selector, bh_segment *seg)
{
    uint32_t limit = (uint32_t)((e & 0xffff) | ((e >> 32) & 0xf0000));
    seg->base = ((e >> 16) & 0xffffff) | ((e >> 32) & 0xff000000);
    seg->g = (e >> 55) & 1;
    seg->limit = seg->g ? (limit << 12) | 0xfff : limit;
    seg->selector = selector;
    seg->type = (e >> 40) & 0xf;
    seg->s = (e >> 44) & 1;
    seg->dpl = (e >> 45) & 3;
    seg->present = (e >> 47) & 1;
    seg->avl = (e >> 52) & 1;
    seg->l = (e >> 53) & 1;
    seg->db = (e >> 54) & 1;
}

int bh_boot_write_gdt(bh_vm *vm, bool long_mode, bh_error *err)
{
    uint64_t table[BH_GDT_ENTRIES];
    uint8_t bytes[sizeof table];
    bh_gdt_table(table, long_mode);
    for (int i = 0; i < BH_GDT_ENTRIES; i++)
        bh_put64(bytes + 8 * i, table[i]);
    return bh_mem_write(vm, BH_BOOT_GDT_ADDR, bytes, sizeof bytes, err);
}
