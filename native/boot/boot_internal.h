/*
 * boot_internal.h — the Linux loader's private types, shared by the files of native/boot.
 *
 * The loader works in two steps. Parsing (kernel_image.c, elf.c, bzimage.c, placement.c) turns
 * untrusted image bytes into a validated plan without touching a VM, so it can be fuzzed alone.
 * Building (boot_params.c, page_tables.c, gdt.c, mptable.c, cpuid.c, vcpu_setup.c, linux.c) writes
 * that plan into a VM through the bounds-checked bh_mem_* accessors.
 */
#ifndef BH_BOOT_INTERNAL_H
#define BH_BOOT_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "bulkhead.h"

#define BH_KERNEL_MAX_SEGMENTS 16

/* A range of image bytes copied to guest-physical memory, zero-filled up to mem_size. */
typedef struct bh_kernel_segment {
    uint64_t file_offset;
    uint64_t file_size;
    uint64_t gpa;
    uint64_t mem_size;
} bh_kernel_segment;

/* The fields of a bzImage setup header the loader uses (all validated). */
typedef struct bh_setup_header_info {
    uint16_t version;
    uint8_t setup_sects;
    uint8_t loadflags;
    uint16_t xloadflags;
    uint32_t initrd_addr_max;
    uint32_t kernel_alignment;
    uint8_t relocatable;
    uint32_t cmdline_size;
    uint64_t pref_address;
    uint32_t init_size;
    size_t header_end;      /* offset just past the setup header in the image (0x202 + jump) */
} bh_setup_header_info;

typedef struct bh_kernel_image {
    bh_kernel_format format;
    const uint8_t *data;
    size_t len;
    bh_kernel_segment segments[BH_KERNEL_MAX_SEGMENTS];
    size_t segment_count;
    uint64_t entry64;       /* guest-physical 64-bit entry */
    bool has_pvh;
    uint32_t pvh_entry;     /* XEN_ELFNOTE_PHYS32_ENTRY */
    uint64_t footprint_start; /* what the kernel occupies, including room to decompress/bss */
    uint64_t footprint_end;
    uint32_t cmdline_max;   /* bytes, excluding the NUL */
    uint32_t initrd_addr_max; /* highest byte address an initrd may occupy */
    bh_setup_header_info hdr; /* bzImage only */
} bh_kernel_image;

/* Where the loader puts the pieces (placement.c). */
typedef struct bh_boot_plan {
    bh_kernel_image image;
    bh_linux_entry entry;
    uint64_t low_ram_end;   /* end of RAM below the MMIO hole */
    uint64_t high_ram_size; /* RAM at 4 GiB and above */
    uint64_t initrd_addr;
    uint64_t initrd_size;
    size_t cmdline_len;
} bh_boot_plan;

/* boot_error.c: a BH_E_INVALID_ARG naming what is wrong with the kernel, initrd or cmdline. */
int bh_boot_invalid(bh_error *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
int bh_boot_status(bh_error *err, bh_status code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Overflow-safe range helpers. */
static inline bool bh_range_in(uint64_t off, uint64_t len, uint64_t limit)
{
    return off <= limit && len <= limit - off;
}
static inline bool bh_add_overflows(uint64_t a, uint64_t b, uint64_t *sum)
{
    return __builtin_add_overflow(a, b, sum);
}
static inline uint64_t bh_align_down(uint64_t v, uint64_t a) { return v & ~(a - 1); }
static inline bool bh_is_pow2(uint64_t v) { return v && !(v & (v - 1)); }

/* Little-endian loads from a byte buffer the caller has bounds-checked. */
static inline uint16_t bh_le16(const uint8_t *p) { return (uint16_t)(p[0] | p[1] << 8); }
static inline uint32_t bh_le32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}
static inline uint64_t bh_le64(const uint8_t *p) { return bh_le32(p) | (uint64_t)bh_le32(p + 4) << 32; }
static inline void bh_put16(uint8_t *p, uint16_t v) { p[0] = (uint8_t)v; p[1] = (uint8_t)(v >> 8); }
static inline void bh_put32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++) p[i] = (uint8_t)(v >> (8 * i));
}
static inline void bh_put64(uint8_t *p, uint64_t v)
{
    for (int i = 0; i < 8; i++) p[i] = (uint8_t)(v >> (8 * i));
}

/* kernel_image.c: detects the format and validates it against low RAM [0, low_ram_end). */
int bh_kernel_parse(const uint8_t *data, size_t len, uint64_t low_ram_end, bh_kernel_image *out,
                    bh_error *err);
/* elf.c / bzimage.c */
int bh_elf_parse(const uint8_t *data, size_t len, uint64_t low_ram_end, bh_kernel_image *out,
                 bh_error *err);
int bh_bzimage_parse(const uint8_t *data, size_t len, uint64_t low_ram_end, bh_kernel_image *out,
                     bh_error *err);
bool bh_is_elf(const uint8_t *data, size_t len);
bool bh_is_bzimage(const uint8_t *data, size_t len);

/* placement.c: splits guest memory as the core does, checks the cmdline, places the initrd. */
void bh_ram_split(uint64_t memory_bytes, uint64_t *low_end, uint64_t *high_size);
int bh_boot_plan_make(const uint8_t *kernel, size_t kernel_len, uint64_t memory_bytes,
                      bh_linux_entry entry, size_t initrd_len, const char *cmdline,
                      bh_boot_plan *plan, bh_error *err);

/* e820.c: the guest's memory map; returns the number of entries written (at most max). */
#define BH_E820_RAM 1
#define BH_E820_RESERVED 2
typedef struct bh_e820_entry {
    uint64_t addr, size;
    uint32_t type;
} bh_e820_entry;
size_t bh_e820_build(const bh_boot_plan *plan, bh_e820_entry *out, size_t max);

/* boot_params.c: the zero page for a plan, in a host buffer (no VM: fuzzable); returns the
 * number of e820 entries. */
#define BH_ZERO_PAGE_SIZE 4096
uint32_t bh_zero_page_build(const bh_boot_plan *plan, uint8_t zp[BH_ZERO_PAGE_SIZE]);

/* Writers into guest memory (each returns 0 or a negative bh_status). */
int bh_boot_write_kernel(bh_vm *vm, const bh_boot_plan *plan, bh_error *err);
int bh_boot_write_cmdline_initrd(bh_vm *vm, const bh_boot_plan *plan, const char *cmdline,
                                 const uint8_t *initrd, bh_error *err);
int bh_boot_write_zero_page(bh_vm *vm, const bh_boot_plan *plan, uint32_t *e820_count,
                            bh_error *err);
int bh_boot_write_pvh_start_info(bh_vm *vm, const bh_boot_plan *plan, uint32_t *e820_count,
                                 bh_error *err);
int bh_boot_write_gdt(bh_vm *vm, bool long_mode, bh_error *err);
int bh_boot_write_page_tables(bh_vm *vm, bh_error *err);
int bh_boot_write_mptable(bh_vm *vm, uint32_t vcpus, uint32_t cpu_signature, uint32_t cpu_features,
                          bh_error *err);

/* gdt.c: the descriptors, shared by the GDT writer and the segment registers. */
uint64_t bh_gdt_entry(uint32_t base, uint32_t limit, uint16_t flags);
void bh_gdt_to_segment(uint64_t entry, uint16_t selector, bh_segment *seg);
#define BH_GDT_ENTRIES 5
void bh_gdt_table(uint64_t table[BH_GDT_ENTRIES], bool long_mode);

/* cpuid.c: what the MP table and XCR0 need, from the CPUID the core gave the vCPUs. */
typedef struct bh_cpu_facts {
    uint32_t signature;     /* CPUID.1:EAX family/model/stepping */
    uint32_t features;      /* CPUID.1:EDX */
    uint64_t xcr0_supported; /* CPUID.0xD.0:EDX:EAX, 0 without XSAVE */
} bh_cpu_facts;
int bh_boot_cpu_facts(bh_vm *vm, bh_cpu_facts *facts, bh_error *err);

/* vcpu_setup.c: MSRs, FPU, XCR0, LAPIC LINT0/LINT1 of one vCPU (refusals noted in info), and
 * the boot vCPU's registers for the chosen entry. */
int bh_boot_setup_vcpu_state(bh_vm *vm, uint32_t vcpu, const bh_cpu_facts *facts,
                             bh_boot_info *info, bh_error *err);
int bh_boot_setup_entry_regs(bh_vm *vm, const bh_boot_plan *plan, uint64_t *entry,
                             bh_error *err);
void bh_boot_note(bh_boot_info *info, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#endif
