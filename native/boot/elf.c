/*
 * elf.c — an uncompressed vmlinux: ELF64 for x86-64, PT_LOAD segments at their physical addresses.
 *
 * The 64-bit entry is the ELF entry (the kernel links it as a physical address; a virtual one is
 * translated through its segment). The optional PVH entry comes from the Xen ELF note
 * XEN_ELFNOTE_PHYS32_ENTRY. The image is untrusted: every offset and size is checked against the
 * file and against guest RAM, with overflow-safe arithmetic, before anything uses it.
 */
#include <string.h>

#include "boot_internal.h"
#include "layout.h"

#define ELF_HEADER_SIZE 64
#define ELF_PHDR_SIZE 56
#define ELF_MAX_PHDRS 64
#define ELFCLASS32 1
#define ELFCLASS64 2
#define ELFDATA2LSB 1
#define ET_EXEC 2
#define EM_X86_64 62
#define PT_LOAD 1
#define PT_NOTE 4
#define XEN_ELFNOTE_PHYS32_ENTRY 18
/* Linux has no header field for it in a vmlinux: x86's COMMAND_LINE_SIZE is 2048. */
#define ELF_CMDLINE_MAX 2047
#define ELF_INITRD_ADDR_MAX 0x7fffffffU

typedef struct elf_phdr {
    uint32_t type;
    uint64_t offset, vaddr, paddr, filesz, memsz;
} elf_phdr;

bool bh_is_elf(const uint8_t *data, size_t len)
{
    return len >= 4 && memcmp(data, "\x7f" "ELF", 4) == 0;
}

static void elf_read_phdr(const uint8_t *p, elf_phdr *ph)
{
    ph->type = bh_le32(p);
    ph->offset = bh_le64(p + 8);
    ph->vaddr = bh_le64(p + 16);
    ph->paddr = bh_le64(p + 24);
    ph->filesz = bh_le64(p + 32);
    ph->memsz = bh_le64(p + 40);
}

static int elf_check_header(const uint8_t *data, size_t len, bh_error *err)
{
    if (len < ELF_HEADER_SIZE)
        return bh_boot_invalid(err, "kernel ELF: truncated header (%zu bytes, need 64)", len);
    if (data[4] == ELFCLASS32)
        return bh_boot_invalid(err, "kernel ELF: 32-bit ELF (ELFCLASS32) is not supported; "
                                    "need a 64-bit x86-64 vmlinux");
    if (data[4] != ELFCLASS64)
        return bh_boot_invalid(err, "kernel ELF: unknown class %u", data[4]);
    if (data[5] != ELFDATA2LSB)
        return bh_boot_invalid(err, "kernel ELF: not little-endian");
    if (bh_le16(data + 16) != ET_EXEC)
        return bh_boot_invalid(err, "kernel ELF: type %u is not ET_EXEC", bh_le16(data + 16));
    if (bh_le16(data + 18) != EM_X86_64)
        return bh_boot_invalid(err, "kernel ELF: machine %u is not x86-64", bh_le16(data + 18));
    return 0;
}

static int elf_check_phdr_table(const uint8_t *data, size_t len, uint64_t *phoff, uint16_t *phnum,
                                bh_error *err)
{
    *phoff = bh_le64(data + 32);
    uint16_t phentsize = bh_le16(data + 54);
    *phnum = bh_le16(data + 56);
    if (*phnum == 0)
        return bh_boot_invalid(err, "kernel ELF: no program headers");
    if (*phnum > ELF_MAX_PHDRS)
        return bh_boot_invalid(err, "kernel ELF: %u program headers (limit %d)", *phnum,
                               ELF_MAX_PHDRS);
    if (phentsize != ELF_PHDR_SIZE)
        return bh_boot_invalid(err, "kernel ELF: program header size %u (expected 56)", phentsize);
    if (!bh_range_in(*phoff, (uint64_t)*phnum * ELF_PHDR_SIZE, len))
        return bh_boot_invalid(err, "kernel ELF: program headers at 0x%llx lie outside the file",
                               (unsigned long long)*phoff);
    return 0;
}

static int elf_add_load(const elf_phdr *ph, size_t len, uint64_t low_ram_end, bh_kernel_image *img,
                        bh_error *err)
{
    if (ph->memsz == 0)
        return 0;
    if (ph->filesz > ph->memsz)
        return bh_boot_invalid(err, "kernel ELF: segment at 0x%llx has filesz > memsz",
                               (unsigned long long)ph->paddr);
    if (!bh_range_in(ph->offset, ph->filesz, len))
        return bh_boot_invalid(err, "kernel ELF: segment data [0x%llx, +0x%llx) lies outside the "
                                    "file (%zu bytes; truncated image?)",
                               (unsigned long long)ph->offset, (unsigned long long)ph->filesz, len);
    if (ph->paddr < BH_BOOT_HIGH_MEM)
        return bh_boot_invalid(err, "kernel ELF: segment at physical 0x%llx is below 1 MiB",
                               (unsigned long long)ph->paddr);
    if (!bh_range_in(ph->paddr, ph->memsz, low_ram_end))
        return bh_boot_invalid(err, "kernel ELF: segment [0x%llx, +0x%llx) does not fit in guest "
                                    "RAM below 0x%llx",
                               (unsigned long long)ph->paddr, (unsigned long long)ph->memsz,
                               (unsigned long long)low_ram_end);
    if (img->segment_count == BH_KERNEL_MAX_SEGMENTS)
        return bh_boot_invalid(err, "kernel ELF: more than %d loadable segments",
                               BH_KERNEL_MAX_SEGMENTS);
    img->segments[img->segment_count++] = (bh_kernel_segment){
        .file_offset = ph->offset, .file_size = ph->filesz, .gpa = ph->paddr, .mem_size = ph->memsz};
    return 0;
}

/* Notes: {namesz, descsz, type, name padded to 4, desc padded to 4}. */
static int elf_scan_notes(const uint8_t *data, const elf_phdr *ph, size_t len, bh_kernel_image *img,
                          bh_error *err)
{
    if (!bh_range_in(ph->offset, ph->filesz, len))
        return bh_boot_invalid(err, "kernel ELF: note segment lies outside the file");
    const uint8_t *p = data + ph->offset;
    uint64_t left = ph->filesz;
    while (left >= 12) {
        uint64_t namesz = bh_le32(p), descsz = bh_le32(p + 4);
        uint32_t type = bh_le32(p + 8);
        uint64_t name_padded = (namesz + 3) & ~3ULL, desc_padded = (descsz + 3) & ~3ULL;
        if (name_padded > left - 12 || desc_padded > left - 12 - name_padded)
            return bh_boot_invalid(err, "kernel ELF: a note overruns its segment");
        const uint8_t *name = p + 12, *desc = name + name_padded;
        if (namesz == 4 && memcmp(name, "Xen", 4) == 0 && type == XEN_ELFNOTE_PHYS32_ENTRY) {
            if (descsz != 4 && descsz != 8)
                return bh_boot_invalid(err, "kernel ELF: PHYS32_ENTRY note has %llu bytes",
                                       (unsigned long long)descsz);
            img->has_pvh = true;
            img->pvh_entry = bh_le32(desc);
        }
        p += 12 + name_padded + desc_padded;
        left -= 12 + name_padded + desc_padded;
    }
    return 0;
}

/* e_entry as a physical address: inside a segment's physical range, or translated from its
 * virtual range. */
static int elf_resolve_entry(uint64_t entry, const elf_phdr *loads, size_t n, uint64_t *phys,
                             bh_error *err)
{
    for (size_t i = 0; i < n; i++)
        if (entry >= loads[i].paddr && entry - loads[i].paddr < loads[i].filesz) {
            *phys = entry;
            return 0;
        }
    for (size_t i = 0; i < n; i++)
        if (entry >= loads[i].vaddr && entry - loads[i].vaddr < loads[i].filesz) {
            *phys = loads[i].paddr + (entry - loads[i].vaddr);
            return 0;
        }
    return bh_boot_invalid(err, "kernel ELF: entry point 0x%llx is outside every loadable segment",
                           (unsigned long long)entry);
}

static bool elf_phys_in_segments(const bh_kernel_image *img, uint64_t addr)
{
    for (size_t i = 0; i < img->segment_count; i++)
        if (addr >= img->segments[i].gpa && addr - img->segments[i].gpa < img->segments[i].file_size)
            return true;
    return false;
}

int bh_elf_parse(const uint8_t *data, size_t len, uint64_t low_ram_end, bh_kernel_image *img,
                 bh_error *err)
{
    uint64_t phoff;
    uint16_t phnum;
    int rc;
    if ((rc = elf_check_header(data, len, err)) || (rc = elf_check_phdr_table(data, len, &phoff,
                                                                               &phnum, err)))
        return rc;
    elf_phdr loads[ELF_MAX_PHDRS];
    size_t nloads = 0;
    for (uint16_t i = 0; i < phnum; i++) {
        elf_phdr ph;
        elf_read_phdr(data + phoff + (uint64_t)i * ELF_PHDR_SIZE, &ph);
        if (ph.type == PT_LOAD) {
            if ((rc = elf_add_load(&ph, len, low_ram_end, img, err)))
                return rc;
            if (ph.memsz)
                loads[nloads++] = ph;
        } else if (ph.type == PT_NOTE && (rc = elf_scan_notes(data, &ph, len, img, err))) {
            return rc;
        }
    }
    if (img->segment_count == 0)
        return bh_boot_invalid(err, "kernel ELF: no loadable segment");
    if ((rc = elf_resolve_entry(bh_le64(data + 24), loads, nloads, &img->entry64, err)))
        return rc;
    if (img->has_pvh && !elf_phys_in_segments(img, img->pvh_entry))
        return bh_boot_invalid(err, "kernel ELF: PVH entry 0x%x is outside every loadable segment",
                               img->pvh_entry);
    img->format = BH_KERNEL_ELF;
    img->footprint_start = UINT64_MAX;
    img->footprint_end = 0;
    for (size_t i = 0; i < img->segment_count; i++) {
        const bh_kernel_segment *s = &img->segments[i];
        if (s->gpa < img->footprint_start) img->footprint_start = s->gpa;
        if (s->gpa + s->mem_size > img->footprint_end) img->footprint_end = s->gpa + s->mem_size;
    }
    img->cmdline_max = ELF_CMDLINE_MAX;
    img->initrd_addr_max = ELF_INITRD_ADDR_MAX;
    return 0;
}
