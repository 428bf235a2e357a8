/*
 * boot_params.c — the "zero page" for the 64-bit entry, and the command line it points at.
 *
 * For a bzImage the kernel's own setup header is copied in first (boot.rst: the loader must read
 * it from the image), then the loader-owned fields are filled. A vmlinux has no setup header, so
 * we write the few fields the kernel reads at the 64-bit entry.
 */
#include <string.h>

#include "boot_internal.h"
#include "layout.h"

/* Offsets in struct boot_params (arch/x86/include/uapi/asm/bootparam.h). */
#define BP_EXT_RAMDISK_IMAGE 0x0c0
#define BP_EXT_RAMDISK_SIZE 0x0c4
#define BP_EXT_CMD_LINE_PTR 0x0c8
#define BP_E820_ENTRIES 0x1e8
#define BP_SENTINEL 0x1ef
#define BP_HDR 0x1f1
#define BP_BOOT_FLAG 0x1fe
#define BP_HEADER_MAGIC 0x202
#define BP_VERSION 0x206
#define BP_TYPE_OF_LOADER 0x210
#define BP_LOADFLAGS 0x211
#define BP_CODE32_START 0x214
#define BP_RAMDISK_IMAGE 0x218
#define BP_RAMDISK_SIZE 0x21c
#define BP_CMD_LINE_PTR 0x228
#define BP_KERNEL_ALIGNMENT 0x230
#define BP_CMDLINE_SIZE 0x238
#define BP_HARDWARE_SUBARCH 0x23c
#define BP_SETUP_DATA 0x250
#define BP_E820_TABLE 0x2d0
#define BP_E820_MAX 128

#define LOADER_UNDEFINED 0xff
#define LOADED_HIGH 0x01
#define CAN_USE_HEAP 0x80
#define ELF_KERNEL_ALIGNMENT 0x1000000u
#define ELF_CLAIMED_VERSION 0x020f

static void zp_setup_header(uint8_t *zp, const bh_boot_plan *plan)
{
    const bh_kernel_image *img = &plan->image;
    if (img->format == BH_KERNEL_BZIMAGE) {
        memcpy(zp + BP_HDR, img->data + BP_HDR, img->hdr.header_end - BP_HDR);
        bh_put32(zp + BP_CODE32_START, (uint32_t)BH_BOOT_BZIMAGE_LOAD);
        zp[BP_LOADFLAGS] = (uint8_t)((zp[BP_LOADFLAGS] | LOADED_HIGH) & ~CAN_USE_HEAP);
    } else {
        bh_put16(zp + BP_BOOT_FLAG, 0xAA55);
        memcpy(zp + BP_HEADER_MAGIC, "HdrS", 4);
        bh_put16(zp + BP_VERSION, ELF_CLAIMED_VERSION);
        zp[BP_LOADFLAGS] = LOADED_HIGH;
        bh_put32(zp + BP_KERNEL_ALIGNMENT, ELF_KERNEL_ALIGNMENT);
        bh_put32(zp + BP_CMDLINE_SIZE, img->cmdline_max);
    }
    zp[BP_TYPE_OF_LOADER] = LOADER_UNDEFINED;
    bh_put32(zp + BP_HARDWARE_SUBARCH, 0); /* a PC */
    bh_put64(zp + BP_SETUP_DATA, 0);
}

static void zp_initrd_and_cmdline(uint8_t *zp, const bh_boot_plan *plan)
{
    bh_put32(zp + BP_RAMDISK_IMAGE, (uint32_t)plan->initrd_addr);
    bh_put32(zp + BP_EXT_RAMDISK_IMAGE, (uint32_t)(plan->initrd_addr >> 32));
    bh_put32(zp + BP_RAMDISK_SIZE, (uint32_t)plan->initrd_size);
    bh_put32(zp + BP_EXT_RAMDISK_SIZE, (uint32_t)((uint64_t)plan->initrd_size >> 32));
    bh_put32(zp + BP_CMD_LINE_PTR, (uint32_t)BH_BOOT_CMDLINE_ADDR);
    bh_put32(zp + BP_EXT_CMD_LINE_PTR, 0);
}

static uint32_t zp_e820(uint8_t *zp, const bh_boot_plan *plan)
{
    bh_e820_entry map[BP_E820_MAX];
    size_t n = bh_e820_build(plan, map, BP_E820_MAX);
    for (size_t i = 0; i < n; i++) {
        uint8_t *e = zp + BP_E820_TABLE + 20 * i;
        bh_put64(e, map[i].addr);
        bh_put64(e + 8, map[i].size);
        bh_put32(e + 16, map[i].type);
    }
    zp[BP_E820_ENTRIES] = (uint8_t)n;
    return (uint32_t)n;
}

uint32_t bh_zero_page_build(const bh_boot_plan *plan, uint8_t zp[BH_ZERO_PAGE_SIZE])
{
    memset(zp, 0, BH_ZERO_PAGE_SIZE);
    zp_setup_header(zp, plan);
    zp_initrd_and_cmdline(zp, plan);
    uint32_t entries = zp_e820(zp, plan);
    zp[BP_SENTINEL] = 0;
    return entries;
}

int bh_boot_write_zero_page(bh_vm *vm, const bh_boot_plan *plan, uint32_t *e820_count,
                            bh_error *err)
{
    uint8_t zp[BH_ZERO_PAGE_SIZE];
    *e820_count = bh_zero_page_build(plan, zp);
    return bh_mem_write(vm, BH_BOOT_ZERO_PAGE_ADDR, zp, sizeof zp, err);
}
