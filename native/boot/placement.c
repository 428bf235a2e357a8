/*
 * placement.c — the boot plan: kernel validated against this guest's RAM, the command line
 * checked against the kernel's limit, and the initrd placed as high as it fits (boot.rst: "as high
 * as possible", below initrd_addr_max, page-aligned, above the kernel's footprint).
 */
#include <string.h>

#include "boot_internal.h"
#include "layout.h"

#define INITRD_ALIGN 4096ULL
/* The loader's own structures live below 1 MiB; a guest smaller than this cannot boot Linux. */
#define MIN_LOW_RAM (2ULL << 20)

/* The core's layout (bulkhead.h): RAM from 0 up to the MMIO hole, the rest from 4 GiB. */
void bh_ram_split(uint64_t memory_bytes, uint64_t *low_end, uint64_t *high_size)
{
    if (memory_bytes <= BH_MMIO_HOLE_START) {
        *low_end = memory_bytes;
        *high_size = 0;
    } else {
        *low_end = BH_MMIO_HOLE_START;
        *high_size = memory_bytes - BH_MMIO_HOLE_START;
    }
}

static int plan_choose_entry(bh_boot_plan *plan, bh_linux_entry requested, bh_error *err)
{
    switch (requested) {
    case BH_LINUX_ENTRY_AUTO:
    case BH_LINUX_ENTRY_64BIT:
        plan->entry = BH_LINUX_ENTRY_64BIT;
        return 0;
    case BH_LINUX_ENTRY_PVH:
        if (plan->image.format != BH_KERNEL_ELF || !plan->image.has_pvh)
            return bh_boot_invalid(err, "PVH entry requested but the kernel has no "
                                        "XEN_ELFNOTE_PHYS32_ENTRY note (needs a vmlinux with "
                                        "CONFIG_PVH)");
        plan->entry = BH_LINUX_ENTRY_PVH;
        return 0;
    }
    return bh_boot_invalid(err, "unknown entry kind %d", (int)requested);
}

static int plan_check_cmdline(bh_boot_plan *plan, const char *cmdline, bh_error *err)
{
    uint32_t max = plan->image.cmdline_max;
    plan->cmdline_len = cmdline ? strnlen(cmdline, (size_t)max + 1) : 0;
    if (plan->cmdline_len > max)
        return bh_boot_invalid(err, "command line is longer than this kernel's limit of %u bytes",
                               max);
    return 0;
}

static int plan_place_initrd(bh_boot_plan *plan, size_t initrd_len, bh_error *err)
{
    plan->initrd_size = initrd_len;
    plan->initrd_addr = 0;
    if (initrd_len == 0)
        return 0;
    uint64_t top = plan->low_ram_end;
    if ((uint64_t)plan->image.initrd_addr_max + 1 < top)
        top = (uint64_t)plan->image.initrd_addr_max + 1;
    uint64_t floor = plan->image.footprint_end;
    if (initrd_len > top || bh_align_down(top - initrd_len, INITRD_ALIGN) < floor)
        return bh_boot_invalid(err, "initrd (%zu bytes) does not fit in guest memory between the "
                                    "kernel's end 0x%llx and 0x%llx (more --memory needed)",
                               initrd_len, (unsigned long long)floor, (unsigned long long)top);
    plan->initrd_addr = bh_align_down(top - initrd_len, INITRD_ALIGN);
    return 0;
}

int bh_boot_plan_make(const uint8_t *kernel, size_t kernel_len, uint64_t memory_bytes,
                      bh_linux_entry entry, size_t initrd_len, const char *cmdline,
                      bh_boot_plan *plan, bh_error *err)
{
    memset(plan, 0, sizeof *plan);
    bh_ram_split(memory_bytes, &plan->low_ram_end, &plan->high_ram_size);
    if (plan->low_ram_end < MIN_LOW_RAM)
        return bh_boot_invalid(err, "guest memory of %llu bytes is too small to boot Linux "
                                    "(need at least 2 MiB)", (unsigned long long)memory_bytes);
    int rc;
    if ((rc = bh_kernel_parse(kernel, kernel_len, plan->low_ram_end, &plan->image, err)) ||
        (rc = plan_choose_entry(plan, entry, err)) || (rc = plan_check_cmdline(plan, cmdline, err)))
        return rc;
    return plan_place_initrd(plan, initrd_len, err);
}
