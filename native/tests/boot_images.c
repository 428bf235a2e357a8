/* boot_images.c — builds the synthetic kernels described in boot_images.h. */
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "boot_images.h"

static void put16(uint8_t *p, uint16_t v) { memcpy(p, &v, 2); }
static void put32(uint8_t *p, uint32_t v) { memcpy(p, &v, 4); }
static void put64(uint8_t *p, uint64_t v) { memcpy(p, &v, 8); }

#define EHDR 64
#define PHDR 56
#define SEG_OFFSET 0x1000
#define SEG_FILESZ 0x1000
#define PVH_CODE_OFFSET 0x800
#define NOTE_OFFSET 0x200

static void elf_phdr(uint8_t *p, uint32_t type, uint64_t off, uint64_t vaddr, uint64_t paddr,
                     uint64_t filesz, uint64_t memsz)
{
    put32(p, type);
    put32(p + 4, 5); /* R+X */
    put64(p + 8, off);
    put64(p + 16, vaddr);
    put64(p + 24, paddr);
    put64(p + 32, filesz);
    put64(p + 40, memsz);
    put64(p + 48, 0x1000);
}

bi_image bi_make_vmlinux(const bi_elf_options *o)
{
    bi_image img = {.len = SEG_OFFSET + SEG_FILESZ};
    img.data = calloc(1, img.len);
    uint8_t *d = img.data;
    bool pvh = o->pvh_code != NULL;
    memcpy(d, "\x7f" "ELF", 4);
    d[4] = 2, d[5] = 1, d[6] = 1;
    put16(d + 16, 2);  /* ET_EXEC */
    put16(d + 18, 62); /* x86-64 */
    put32(d + 20, 1);
    put64(d + 24, o->virtual_entry ? BI_KERNEL_VADDR : BI_KERNEL_PADDR);
    put64(d + 32, EHDR);
    put16(d + 52, EHDR);
    put16(d + 54, PHDR);
    put16(d + 56, pvh ? 2 : 1);
    elf_phdr(d + EHDR, 1, SEG_OFFSET, BI_KERNEL_VADDR, BI_KERNEL_PADDR, SEG_FILESZ,
             SEG_FILESZ + BI_BSS);
    memcpy(d + SEG_OFFSET, o->code, o->code_len);
    if (pvh) {
        uint8_t *n = d + NOTE_OFFSET;
        elf_phdr(d + EHDR + PHDR, 4, NOTE_OFFSET, 0, 0, 20, 20);
        put32(n, 4), put32(n + 4, 4), put32(n + 8, 18); /* namesz, descsz, PHYS32_ENTRY */
        memcpy(n + 12, "Xen", 4);
        put32(n + 16, (uint32_t)(BI_KERNEL_PADDR + PVH_CODE_OFFSET));
        memcpy(d + SEG_OFFSET + PVH_CODE_OFFSET, o->pvh_code, o->pvh_code_len);
    }
    return img;
}

#define BZ_SETUP_SECTS 4
#define BZ_PAYLOAD 0x1000

bi_image bi_make_bzimage(const bi_bz_options *o)
{
    size_t setup = (BZ_SETUP_SECTS + 1) * 512;
    bi_image img = {.len = setup + BZ_PAYLOAD};
    img.data = calloc(1, img.len);
    uint8_t *d = img.data;
    d[0x1f1] = BZ_SETUP_SECTS;
    put16(d + 0x1fe, 0xAA55);
    d[0x200] = 0xEB, d[0x201] = 0x6a; /* jmp past the header, to 0x26c */
    memcpy(d + 0x202, "HdrS", 4);
    put16(d + 0x206, o->version ? o->version : 0x020f);
    d[0x211] = 0x01;                 /* LOADED_HIGH */
    put32(d + 0x214, 0x100000);      /* code32_start */
    put32(d + 0x22c, 0x7fffffff);    /* initrd_addr_max */
    put32(d + 0x230, 0x200000);      /* kernel_alignment */
    d[0x234] = 1;                    /* relocatable */
    put16(d + 0x236, 0x0001 | 0x0002); /* XLF_KERNEL_64 | XLF_CAN_BE_LOADED_ABOVE_4G */
    put32(d + 0x238, o->cmdline_size ? o->cmdline_size : 2047);
    put64(d + 0x258, 0x1000000);     /* pref_address */
    put32(d + 0x260, o->init_size ? o->init_size : 0x400000);
    memcpy(d + setup + 0x200, o->code, o->code_len);
    return img;
}

void bi_free(bi_image *img)
{
    free(img->data);
    img->data = NULL;
}
