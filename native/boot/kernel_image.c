/* kernel_image.c — which kind of kernel image this is, and the checks common to all kinds. */
#include <string.h>

#include "boot_internal.h"

int bh_kernel_parse(const uint8_t *data, size_t len, uint64_t low_ram_end, bh_kernel_image *out,
                    bh_error *err)
{
    memset(out, 0, sizeof *out);
    if (!data || len == 0)
        return bh_boot_invalid(err, "kernel image is empty");
    out->data = data;
    out->len = len;
    if (bh_is_elf(data, len))
        return bh_elf_parse(data, len, low_ram_end, out, err);
    if (bh_is_bzimage(data, len))
        return bh_bzimage_parse(data, len, low_ram_end, out, err);
    if (len >= 0x1fe + 2 && bh_le16(data + 0x1fe) == 0xAA55)
        return bh_boot_invalid(err, "kernel image: boot sector without the \"HdrS\" setup header "
                                    "magic (not a bzImage)");
    return bh_boot_invalid(err, "kernel image: neither an ELF vmlinux nor a bzImage (%zu bytes)",
                           len);
}
