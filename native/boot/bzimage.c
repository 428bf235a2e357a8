/*
 * bzimage.c — a bzImage: real-mode setup sectors, then the protected-mode kernel (decompressor).
 *
 * We enter at the 64-bit entry (load address + 0x200), so only the setup header matters; the
 * real-mode setup code never runs. Supported boot protocol versions: 2.12 and later (2.12 added
 * xloadflags, the only way a kernel says it has the 64-bit entry, XLF_KERNEL_64). Versions from
 * 2.06 to 2.11 have a setup header we could read but cannot declare that entry; they and anything
 * older are refused with a message saying so. Field offsets are from Documentation/arch/x86/boot.rst.
 */
#include <string.h>

#include "boot_internal.h"
#include "layout.h"

#define HDR_SETUP_SECTS 0x1f1
#define HDR_BOOT_FLAG 0x1fe
#define HDR_JUMP 0x200
#define HDR_MAGIC 0x202
#define HDR_VERSION 0x206
#define HDR_LOADFLAGS 0x211
#define HDR_INITRD_ADDR_MAX 0x22c
#define HDR_KERNEL_ALIGNMENT 0x230
#define HDR_RELOCATABLE 0x234
#define HDR_XLOADFLAGS 0x236
#define HDR_CMDLINE_SIZE 0x238
#define HDR_PREF_ADDRESS 0x258
#define HDR_INIT_SIZE 0x260
#define HDR_FIELDS_END 0x264 /* past init_size: the last field this loader reads */
#define HDR_MAX_END 0x290    /* boot_params.hdr ends here */

#define LOADED_HIGH 0x01
#define XLF_KERNEL_64 0x0001
#define MIN_VERSION_READABLE 0x0206
#define MIN_VERSION_64BIT 0x020c
#define MAX_ALIGNMENT (1ULL << 30)
#define ENTRY64_OFFSET 0x200

bool bh_is_bzimage(const uint8_t *data, size_t len)
{
    return len >= HDR_MAGIC + 4 && memcmp(data + HDR_MAGIC, "HdrS", 4) == 0;
}

static int bz_check_identity(const uint8_t *data, size_t len, bh_setup_header_info *h,
                             bh_error *err)
{
    if (len < HDR_FIELDS_END)
        return bh_boot_invalid(err, "bzImage: truncated setup header (%zu bytes)", len);
    if (bh_le16(data + HDR_BOOT_FLAG) != 0xAA55)
        return bh_boot_invalid(err, "bzImage: boot_flag is 0x%04x, not 0xAA55",
                               bh_le16(data + HDR_BOOT_FLAG));
    if (memcmp(data + HDR_MAGIC, "HdrS", 4) != 0)
        return bh_boot_invalid(err, "bzImage: no \"HdrS\" magic in the setup header");
    h->version = bh_le16(data + HDR_VERSION);
    if (h->version < MIN_VERSION_READABLE)
        return bh_boot_invalid(err, "bzImage: boot protocol %u.%02u is unsupported (need 2.12+)",
                               h->version >> 8, h->version & 0xff);
    if (h->version < MIN_VERSION_64BIT)
        return bh_boot_invalid(err, "bzImage: boot protocol %u.%02u predates xloadflags (2.12): "
                                    "cannot tell whether it has a 64-bit entry; unsupported",
                               h->version >> 8, h->version & 0xff);
    if (data[HDR_JUMP] != 0xEB)
        return bh_boot_invalid(err, "bzImage: setup header does not start with a short jump");
    h->header_end = HDR_JUMP + 2 + data[HDR_JUMP + 1];
    if (h->header_end < HDR_FIELDS_END)
        return bh_boot_invalid(err, "bzImage: setup header ends at 0x%zx, before init_size",
                               h->header_end);
    if (h->header_end > HDR_MAX_END)
        h->header_end = HDR_MAX_END; /* newer fields we do not know stay in the image */
    return 0;
}

static int bz_read_fields(const uint8_t *data, bh_setup_header_info *h, bh_error *err)
{
    h->setup_sects = data[HDR_SETUP_SECTS] ? data[HDR_SETUP_SECTS] : 4;
    h->loadflags = data[HDR_LOADFLAGS];
    h->xloadflags = bh_le16(data + HDR_XLOADFLAGS);
    h->initrd_addr_max = bh_le32(data + HDR_INITRD_ADDR_MAX);
    h->kernel_alignment = bh_le32(data + HDR_KERNEL_ALIGNMENT);
    h->relocatable = data[HDR_RELOCATABLE];
    h->cmdline_size = bh_le32(data + HDR_CMDLINE_SIZE);
    h->pref_address = bh_le64(data + HDR_PREF_ADDRESS);
    h->init_size = bh_le32(data + HDR_INIT_SIZE);
    if (!(h->loadflags & LOADED_HIGH))
        return bh_boot_invalid(err, "bzImage: loadflags 0x%02x lack LOADED_HIGH (a zImage?)",
                               h->loadflags);
    if (!(h->xloadflags & XLF_KERNEL_64))
        return bh_boot_invalid(err, "bzImage: xloadflags 0x%04x lack XLF_KERNEL_64 "
                                    "(no 64-bit entry)", h->xloadflags);
    if (!bh_is_pow2(h->kernel_alignment) || h->kernel_alignment < 4096 ||
        h->kernel_alignment > MAX_ALIGNMENT)
        return bh_boot_invalid(err, "bzImage: kernel_alignment 0x%x is not a power of two "
                                    "between 4 KiB and 1 GiB", h->kernel_alignment);
    if (h->init_size == 0)
        return bh_boot_invalid(err, "bzImage: init_size is 0");
    if (h->pref_address < BH_BOOT_HIGH_MEM || h->pref_address > UINT32_MAX)
        return bh_boot_invalid(err, "bzImage: pref_address 0x%llx is outside [1 MiB, 4 GiB)",
                               (unsigned long long)h->pref_address);
    if (h->cmdline_size == 0)
        return bh_boot_invalid(err, "bzImage: cmdline_size is 0");
    if (h->initrd_addr_max < BH_BOOT_HIGH_MEM)
        return bh_boot_invalid(err, "bzImage: initrd_addr_max 0x%x is below 1 MiB",
                               h->initrd_addr_max);
    return 0;
}

/* Where the decompressor will run: it moves itself to an aligned address at or above
 * pref_address (LOAD_PHYSICAL_ADDR) and needs init_size bytes there (boot.rst, head_64.S). */
static uint64_t bz_decompress_base(const bh_setup_header_info *h)
{
    uint64_t base = h->pref_address;
    if (h->relocatable) {
        uint64_t a = h->kernel_alignment;
        uint64_t aligned = (BH_BOOT_BZIMAGE_LOAD + a - 1) & ~(a - 1);
        if (aligned > base)
            base = aligned;
    }
    return base;
}

int bh_bzimage_parse(const uint8_t *data, size_t len, uint64_t low_ram_end, bh_kernel_image *img,
                     bh_error *err)
{
    bh_setup_header_info *h = &img->hdr;
    int rc;
    if ((rc = bz_check_identity(data, len, h, err)) || (rc = bz_read_fields(data, h, err)))
        return rc;
    uint64_t setup_bytes = ((uint64_t)h->setup_sects + 1) * 512;
    if (setup_bytes >= len)
        return bh_boot_invalid(err, "bzImage: %llu setup bytes but the file has only %zu "
                                    "(truncated image?)", (unsigned long long)setup_bytes, len);
    uint64_t payload = len - setup_bytes;
    if (payload <= ENTRY64_OFFSET)
        return bh_boot_invalid(err, "bzImage: the protected-mode kernel is %llu bytes, too short to "
                                    "hold the 64-bit entry at +0x200 (truncated image?)",
                               (unsigned long long)payload);
    uint64_t payload_end = BH_BOOT_BZIMAGE_LOAD + payload;
    uint64_t run_end = bz_decompress_base(h) + h->init_size;
    uint64_t end = payload_end > run_end ? payload_end : run_end;
    if (end > low_ram_end)
        return bh_boot_invalid(err, "bzImage: the kernel needs RAM up to 0x%llx (init_size 0x%x) "
                                    "but low RAM ends at 0x%llx",
                               (unsigned long long)end, h->init_size,
                               (unsigned long long)low_ram_end);
    img->format = BH_KERNEL_BZIMAGE;
    img->segments[0] = (bh_kernel_segment){
        .file_offset = setup_bytes, .file_size = payload, .gpa = BH_BOOT_BZIMAGE_LOAD,
        .mem_size = payload};
    img->segment_count = 1;
    img->entry64 = BH_BOOT_BZIMAGE_LOAD + ENTRY64_OFFSET;
    img->footprint_start = BH_BOOT_BZIMAGE_LOAD;
    img->footprint_end = end;
    img->cmdline_max = h->cmdline_size < BH_BOOT_CMDLINE_MAX - 1 ? h->cmdline_size
                                                                 : (uint32_t)BH_BOOT_CMDLINE_MAX - 1;
    img->initrd_addr_max = h->initrd_addr_max;
    return 0;
}
