/*
 * pvh.c — hvm_start_info for the PVH entry (xen/include/public/arch-x86/hvm/start_info.h,
 * version 1): the command line, the initrd as module 0, and the memory map.
 */
#include <string.h>

#include "boot_internal.h"
#include "layout.h"

#define HVM_START_MAGIC 0x336ec578u
#define START_INFO_SIZE 56
#define MODLIST_OFFSET 0x40 /* modlist entry right after start_info, inside the same page */
#define MODLIST_ENTRY_SIZE 32
#define MEMMAP_ENTRY_SIZE 24
#define MEMMAP_MAX 8

int bh_boot_write_pvh_start_info(bh_vm *vm, const bh_boot_plan *plan, uint32_t *e820_count,
                                 bh_error *err)
{
    uint8_t info[MODLIST_OFFSET + MODLIST_ENTRY_SIZE];
    uint8_t memmap[MEMMAP_MAX * MEMMAP_ENTRY_SIZE];
    bh_e820_entry map[MEMMAP_MAX];
    size_t n = bh_e820_build(plan, map, MEMMAP_MAX);
    memset(info, 0, sizeof info);
    memset(memmap, 0, sizeof memmap);
    for (size_t i = 0; i < n; i++) {
        bh_put64(memmap + MEMMAP_ENTRY_SIZE * i, map[i].addr);
        bh_put64(memmap + MEMMAP_ENTRY_SIZE * i + 8, map[i].size);
        bh_put32(memmap + MEMMAP_ENTRY_SIZE * i + 16, map[i].type);
    }
    bh_put32(info, HVM_START_MAGIC);
    bh_put32(info + 4, 1); /* version */
    if (plan->initrd_size) {
        bh_put32(info + 12, 1); /* nr_modules */
        bh_put64(info + 16, BH_BOOT_PVH_INFO_ADDR + MODLIST_OFFSET);
        bh_put64(info + MODLIST_OFFSET, plan->initrd_addr);
        bh_put64(info + MODLIST_OFFSET + 8, plan->initrd_size);
    }
    bh_put64(info + 24, BH_BOOT_CMDLINE_ADDR);
    bh_put64(info + 40, BH_BOOT_PVH_MEMMAP_ADDR);
    bh_put32(info + 48, (uint32_t)n);
    *e820_count = (uint32_t)n;
    int rc = bh_mem_write(vm, BH_BOOT_PVH_INFO_ADDR, info, sizeof info, err);
    return rc ? rc : bh_mem_write(vm, BH_BOOT_PVH_MEMMAP_ADDR, memmap, n * MEMMAP_ENTRY_SIZE, err);
}
