/*
 * boot_images.h — synthetic kernel images for the loader tests: a tiny vmlinux (ELF64) or bzImage
 * whose entry point is a few instructions of test code, plus deliberately broken variants.
 */
#ifndef BH_BOOT_IMAGES_H
#define BH_BOOT_IMAGES_H

#include <stddef.h>
#include <stdint.h>

#define BI_KERNEL_PADDR 0x1000000ULL       /* 16 MiB, where Linux links itself */
#define BI_KERNEL_VADDR 0xffffffff81000000ULL
#define BI_BSS 0x3000ULL                   /* zero-filled tail of the segment */
#define BI_CAPTURE_PORT 0x500              /* test guests report 32-bit values here */
#define BI_DEBUG_EXIT_PORT 0x504 /* after the capture port's 4 bytes (an `out %eax` to 0x500 covers 0x500..0x503) */

typedef struct bi_image {
    uint8_t *data;
    size_t len;
} bi_image;

typedef struct bi_elf_options {
    const uint8_t *code;      /* placed at the start of the segment (the 64-bit entry) */
    size_t code_len;
    const uint8_t *pvh_code;  /* optional: placed at +0x800, announced by a Xen PHYS32_ENTRY note */
    size_t pvh_code_len;
    bool virtual_entry;       /* e_entry as a virtual address (the loader must translate it) */
} bi_elf_options;

bi_image bi_make_vmlinux(const bi_elf_options *o);

typedef struct bi_bz_options {
    const uint8_t *code; /* at payload + 0x200, the 64-bit entry */
    size_t code_len;
    uint16_t version;    /* 0: 2.15 */
    uint32_t cmdline_size; /* 0: 2047 */
    uint32_t init_size;  /* 0: 4 MiB */
} bi_bz_options;

bi_image bi_make_bzimage(const bi_bz_options *o);
void bi_free(bi_image *img);

/* Guest code from boot_guests.S. */
extern const uint8_t bg_probe64[], bg_probe64_end[];
extern const uint8_t bg_pvh32[], bg_pvh32_end[];
extern const uint8_t bg_serial64[], bg_serial64_end[];
extern const uint8_t bg_i8042_64[], bg_i8042_64_end[];
extern const uint8_t bg_halt64[], bg_halt64_end[];
extern const uint8_t bg_idle64[], bg_idle64_end[];
#define BG_LEN(sym) ((size_t)(sym##_end - sym))

#endif
