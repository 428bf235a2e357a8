/*
 * page_tables.c — identity paging for the 64-bit entry: the boot protocol needs the kernel, the
 * zero page and the command line identity-mapped; we map all of 0-4 GiB with 2 MiB pages (six
 * pages of tables), which covers them wherever they are and works on every x86-64 CPU (1 GiB
 * pages are optional). The kernel builds its own tables immediately.
 */
#include <string.h>

#include "boot_internal.h"
#include "layout.h"

#define PTE_PRESENT 0x1ULL
#define PTE_WRITE 0x2ULL
#define PTE_LARGE 0x80ULL
#define PAGE_2M (2ULL << 20)

int bh_boot_write_page_tables(bh_vm *vm, bh_error *err)
{
    uint8_t page[4096];
    int rc;
    memset(page, 0, sizeof page);
    bh_put64(page, BH_BOOT_PDPT_ADDR | PTE_PRESENT | PTE_WRITE);
    if ((rc = bh_mem_write(vm, BH_BOOT_PML4_ADDR, page, sizeof page, err)))
        return rc;
    memset(page, 0, sizeof page);
    for (int i = 0; i < BH_BOOT_PD_COUNT; i++)
        bh_put64(page + 8 * i, (BH_BOOT_PD_ADDR + 4096ULL * i) | PTE_PRESENT | PTE_WRITE);
    if ((rc = bh_mem_write(vm, BH_BOOT_PDPT_ADDR, page, sizeof page, err)))
        return rc;
    for (int d = 0; d < BH_BOOT_PD_COUNT; d++) {
        for (int i = 0; i < 512; i++) {
            uint64_t phys = ((uint64_t)d * 512 + (uint64_t)i) * PAGE_2M;
            bh_put64(page + 8 * i, phys | PTE_PRESENT | PTE_WRITE | PTE_LARGE);
        }
        if ((rc = bh_mem_write(vm, BH_BOOT_PD_ADDR + 4096ULL * d, page, sizeof page, err)))
            return rc;
    }
    return 0;
}
