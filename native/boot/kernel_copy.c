/* kernel_copy.c — the validated kernel segments, the initrd and the command line into guest RAM. */
#include <string.h>

#include "boot_internal.h"
#include "layout.h"

static int copy_zero_fill(bh_vm *vm, uint64_t gpa, uint64_t len, bh_error *err)
{
    static const uint8_t zeros[65536];
    while (len) {
        size_t chunk = len < sizeof zeros ? (size_t)len : sizeof zeros;
        int rc = bh_mem_write(vm, gpa, zeros, chunk, err);
        if (rc)
            return rc;
        gpa += chunk;
        len -= chunk;
    }
    return 0;
}

int bh_boot_write_kernel(bh_vm *vm, const bh_boot_plan *plan, bh_error *err)
{
    const bh_kernel_image *img = &plan->image;
    for (size_t i = 0; i < img->segment_count; i++) {
        const bh_kernel_segment *s = &img->segments[i];
        int rc = bh_mem_write(vm, s->gpa, img->data + s->file_offset, s->file_size, err);
        if (!rc && s->mem_size > s->file_size)
            rc = copy_zero_fill(vm, s->gpa + s->file_size, s->mem_size - s->file_size, err);
        if (rc)
            return rc;
    }
    return 0;
}

int bh_boot_write_cmdline_initrd(bh_vm *vm, const bh_boot_plan *plan, const char *cmdline,
                                 const uint8_t *initrd, bh_error *err)
{
    char nul = 0;
    int rc = plan->cmdline_len
                 ? bh_mem_write(vm, BH_BOOT_CMDLINE_ADDR, cmdline, plan->cmdline_len, err)
                 : 0;
    if (!rc)
        rc = bh_mem_write(vm, BH_BOOT_CMDLINE_ADDR + plan->cmdline_len, &nul, 1, err);
    if (!rc && plan->initrd_size)
        rc = bh_mem_write(vm, plan->initrd_addr, initrd, plan->initrd_size, err);
    return rc;
}
