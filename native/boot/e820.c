/*
 * e820.c — the guest's memory map, as a PC BIOS would report it: conventional memory below the
 * EBDA, the EBDA and BIOS area (holding our MP table) reserved, the VGA hole left out, RAM from
 * 1 MiB up to the MMIO hole, and RAM above 4 GiB.
 */
#include "boot_internal.h"
#include "layout.h"

static size_t e820_add(bh_e820_entry *out, size_t n, size_t max, uint64_t addr, uint64_t end,
                       uint32_t type)
{
    if (n < max && end > addr)
        out[n++] = (bh_e820_entry){.addr = addr, .size = end - addr, .type = type};
    return n;
}

size_t bh_e820_build(const bh_boot_plan *plan, bh_e820_entry *out, size_t max)
{
    size_t n = 0;
    n = e820_add(out, n, max, 0, BH_BOOT_EBDA_START, BH_E820_RAM);
    n = e820_add(out, n, max, BH_BOOT_EBDA_START, BH_BOOT_VGA_START, BH_E820_RESERVED);
    n = e820_add(out, n, max, BH_BOOT_BIOS_START, BH_BOOT_HIGH_MEM, BH_E820_RESERVED);
    n = e820_add(out, n, max, BH_BOOT_HIGH_MEM, plan->low_ram_end, BH_E820_RAM);
    if (plan->high_ram_size)
        n = e820_add(out, n, max, BH_MMIO_HOLE_END, BH_MMIO_HOLE_END + plan->high_ram_size,
                     BH_E820_RAM);
    return n;
}
