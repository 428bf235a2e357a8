/*
 * linux.c — bh_boot_linux: plan first (nothing touches the VM until the image, command line and
 * initrd are known to fit), then write memory, then set up the vCPUs.
 */
#include <string.h>

#include "boot_internal.h"
#include "layout.h"

static void info_from_plan(const bh_boot_plan *plan, bh_boot_info *info)
{
    info->format = plan->image.format;
    info->entry = plan->entry;
    info->boot_protocol = plan->image.format == BH_KERNEL_BZIMAGE ? plan->image.hdr.version : 0;
    info->entry_point = plan->entry == BH_LINUX_ENTRY_PVH ? plan->image.pvh_entry
                                                          : plan->image.entry64;
    info->kernel_start = plan->image.footprint_start;
    info->kernel_end = plan->image.footprint_end;
    info->initrd_addr = plan->initrd_addr;
    info->initrd_size = plan->initrd_size;
    info->cmdline_addr = BH_BOOT_CMDLINE_ADDR;
    info->cmdline_max = plan->image.cmdline_max;
    info->boot_params_addr = plan->entry == BH_LINUX_ENTRY_PVH ? BH_BOOT_PVH_INFO_ADDR
                                                               : BH_BOOT_ZERO_PAGE_ADDR;
    info->mptable_addr = BH_BOOT_MPTABLE_ADDR;
}

int bh_kernel_image_check(const uint8_t *kernel, size_t kernel_len, uint64_t memory_bytes,
                          bh_linux_entry entry, bh_boot_info *out, bh_error *err)
{
    bh_boot_plan plan;
    int rc = bh_boot_plan_make(kernel, kernel_len, memory_bytes, entry, 0, NULL, &plan, err);
    if (!rc && out) {
        memset(out, 0, sizeof *out);
        info_from_plan(&plan, out);
    }
    return rc;
}

/* The plan assumes the core's documented RAM layout; make sure this VM really has it. */
static int check_ram_layout(const bh_vm *vm, const bh_boot_plan *plan, bh_error *err)
{
    if (!bh_mem_is_ram(vm, 0, plan->low_ram_end) ||
        (plan->high_ram_size && !bh_mem_is_ram(vm, BH_MMIO_HOLE_END, plan->high_ram_size)))
        return bh_boot_status(err, BH_E_STATE, "guest RAM is not laid out as bulkhead.h says "
                                               "(0..0x%llx, then 4 GiB)",
                              (unsigned long long)plan->low_ram_end);
    return 0;
}

static int write_memory(bh_vm *vm, const bh_boot_plan *plan, const bh_linux_boot_config *cfg,
                        bh_boot_info *info, bh_error *err)
{
    bool pvh = plan->entry == BH_LINUX_ENTRY_PVH;
    int rc;
    if ((rc = bh_boot_write_kernel(vm, plan, err)) ||
        (rc = bh_boot_write_cmdline_initrd(vm, plan, cfg->cmdline, cfg->initrd, err)) ||
        (rc = bh_boot_write_gdt(vm, !pvh, err)))
        return rc;
    if (pvh)
        return bh_boot_write_pvh_start_info(vm, plan, &info->e820_entries, err);
    if ((rc = bh_boot_write_zero_page(vm, plan, &info->e820_entries, err)))
        return rc;
    return bh_boot_write_page_tables(vm, err);
}

static int setup_vcpus(bh_vm *vm, const bh_boot_plan *plan, bh_boot_info *info, bh_error *err)
{
    bh_cpu_facts facts;
    int rc = bh_boot_cpu_facts(vm, &facts, err);
    if (!rc)
        rc = bh_boot_write_mptable(vm, bh_vm_vcpu_count(vm), facts.signature, facts.features, err);
    for (uint32_t v = 0; !rc && v < bh_vm_vcpu_count(vm); v++)
        rc = bh_boot_setup_vcpu_state(vm, v, &facts, info, err);
    return rc ? rc : bh_boot_setup_entry_regs(vm, plan, &info->entry_point, err);
}

int bh_boot_linux(bh_vm *vm, const bh_linux_boot_config *cfg, bh_boot_info *out, bh_error *err)
{
    bh_boot_info local;
    bh_boot_info *info = out ? out : &local;
    bh_boot_plan plan;
    memset(info, 0, sizeof *info);
    if (!vm || !cfg)
        return bh_boot_invalid(err, "bh_boot_linux: vm and config are required");
    if (bh_vm_get_state(vm) != BH_VM_CREATED)
        return bh_boot_status(err, BH_E_STATE, "bh_boot_linux: the VM has already started");
    if (cfg->initrd_len && !cfg->initrd)
        return bh_boot_invalid(err, "initrd_len is %zu but initrd is NULL", cfg->initrd_len);
    int rc = bh_boot_plan_make(cfg->kernel, cfg->kernel_len, bh_mem_size(vm), cfg->entry,
                               cfg->initrd_len, cfg->cmdline, &plan, err);
    if (rc || (rc = check_ram_layout(vm, &plan, err)))
        return rc;
    info_from_plan(&plan, info);
    if ((rc = write_memory(vm, &plan, cfg, info, err)))
        return rc;
    return setup_vcpus(vm, &plan, info, err);
}
