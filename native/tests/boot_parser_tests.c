/*
 * boot_parser_tests.c — the kernel image parser and the boot plan, without a VM: valid synthetic
 * images give the expected entry and footprint; malformed ones give BH_E_INVALID_ARG with a
 * message naming the problem, and never crash (ASan/UBSan watch).
 */
#include <stdlib.h>

#include "boot/boot_internal.h"
#include "boot/layout.h"
#include "boot_images.h"
#include "tap.h"
#include "boot_tests.h"

#define MIB (1ULL << 20)

static bi_image probe_vmlinux(bool virtual_entry)
{
    bi_elf_options o = {.code = bg_probe64, .code_len = BG_LEN(bg_probe64),
                        .virtual_entry = virtual_entry};
    return bi_make_vmlinux(&o);
}

void test_parse_vmlinux(void)
{
    bh_error e = {0};
    bh_boot_info info;
    for (int virt = 0; virt < 2; virt++) {
        bi_image k = probe_vmlinux(virt);
        REQUIRE_OK(bh_kernel_image_check(k.data, k.len, 64 * MIB, BH_LINUX_ENTRY_AUTO, &info, &e));
        CHECK_EQ_U64(info.format, BH_KERNEL_ELF);
        CHECK_EQ_U64(info.entry, BH_LINUX_ENTRY_64BIT);
        CHECK_EQ_U64(info.entry_point, BI_KERNEL_PADDR);
        CHECK_EQ_U64(info.kernel_start, BI_KERNEL_PADDR);
        CHECK_EQ_U64(info.kernel_end, BI_KERNEL_PADDR + 0x1000 + BI_BSS);
        CHECK_EQ_U64(info.cmdline_max, 2047);
        CHECK_FAILS_WITH(bh_kernel_image_check(k.data, k.len, 64 * MIB, BH_LINUX_ENTRY_PVH, &info, &e),
                      BH_E_INVALID_ARG, "PHYS32_ENTRY");
        bi_free(&k);
    }
}

void test_parse_vmlinux_pvh_note(void)
{
    bh_error e = {0};
    bh_boot_info info;
    bi_elf_options o = {.code = bg_probe64, .code_len = BG_LEN(bg_probe64), .pvh_code = bg_pvh32,
                        .pvh_code_len = BG_LEN(bg_pvh32)};
    bi_image k = bi_make_vmlinux(&o);
    REQUIRE_OK(bh_kernel_image_check(k.data, k.len, 64 * MIB, BH_LINUX_ENTRY_PVH, &info, &e));
    CHECK_EQ_U64(info.entry, BH_LINUX_ENTRY_PVH);
    CHECK_EQ_U64(info.entry_point, BI_KERNEL_PADDR + 0x800);
    CHECK_EQ_U64(info.boot_params_addr, BH_BOOT_PVH_INFO_ADDR);
    /* A note whose size runs past its segment. */
    k.data[0x200 + 4] = 0xff;
    CHECK_FAILS_WITH(bh_kernel_image_check(k.data, k.len, 64 * MIB, BH_LINUX_ENTRY_PVH, &info, &e),
                  BH_E_INVALID_ARG, "note");
    bi_free(&k);
}

void test_parse_bzimage(void)
{
    bh_error e = {0};
    bh_boot_info info;
    bi_bz_options o = {.code = bg_probe64, .code_len = BG_LEN(bg_probe64)};
    bi_image k = bi_make_bzimage(&o);
    REQUIRE_OK(bh_kernel_image_check(k.data, k.len, 64 * MIB, BH_LINUX_ENTRY_AUTO, &info, &e));
    CHECK_EQ_U64(info.format, BH_KERNEL_BZIMAGE);
    CHECK_EQ_U64(info.boot_protocol, 0x020f);
    CHECK_EQ_U64(info.entry_point, 0x100200);
    CHECK_EQ_U64(info.kernel_start, 0x100000);
    CHECK_EQ_U64(info.kernel_end, 0x1000000 + 0x400000); /* pref_address + init_size */
    CHECK_EQ_U64(info.cmdline_max, 2047);
    /* The decompressor's room must fit in RAM: 16 MiB is too small for 16 MiB + 4 MiB. */
    CHECK_FAILS_WITH(bh_kernel_image_check(k.data, k.len, 16 * MIB, BH_LINUX_ENTRY_AUTO, &info, &e),
                  BH_E_INVALID_ARG, "init_size");
    bi_free(&k);
}

static uint64_t rng_state = 0x9e3779b97f4a7c15ULL;
static uint64_t rng(void)
{
    rng_state ^= rng_state << 13, rng_state ^= rng_state >> 7, rng_state ^= rng_state << 17;
    return rng_state;
}

static void expect_clean_result(const uint8_t *data, size_t len, int *accepted)
{
    bh_error e = {0};
    bh_boot_info info;
    int rc = bh_kernel_image_check(data, len, 64 * MIB, (bh_linux_entry)(rng() % 3), &info, &e);
    if (rc == 0) {
        (*accepted)++;
        CHECK(info.kernel_end <= 64 * MIB && info.kernel_start >= 0x100000);
    } else {
        CHECK(rc == BH_E_INVALID_ARG && e.code == BH_E_INVALID_ARG && e.message[0]);
    }
}

void test_reject_random_bytes_and_mutations(void)
{
    int accepted = 0;
    for (int i = 0; i < 3000; i++) {
        size_t len = (size_t)(rng() % 9000);
        uint8_t *buf = malloc(len ? len : 1);
        for (size_t j = 0; j < len; j++)
            buf[j] = (uint8_t)rng();
        if (len >= 4 && i % 3 == 0)
            memcpy(buf, "\x7f" "ELF", 4); /* get past the magic check */
        expect_clean_result(buf, len, &accepted);
        free(buf);
    }
    bi_bz_options bo = {.code = bg_probe64, .code_len = BG_LEN(bg_probe64)};
    bi_image seeds[2] = {probe_vmlinux(false), bi_make_bzimage(&bo)};
    for (int s = 0; s < 2; s++) {
        for (int i = 0; i < 3000; i++) {
            uint8_t *buf = malloc(seeds[s].len);
            memcpy(buf, seeds[s].data, seeds[s].len);
            for (int flips = 1 + (int)(rng() % 4); flips; flips--)
                buf[rng() % 0x300] = (uint8_t)rng(); /* headers live in the first 0x300 bytes */
            expect_clean_result(buf, seeds[s].len, &accepted);
            free(buf);
        }
        bi_free(&seeds[s]);
    }
    tap_diag("%d of 9000 random or mutated images were accepted (valid after mutation)", accepted);
}

void test_reject_truncated_elf(void)
{
    bh_error e = {0};
    bi_image k = probe_vmlinux(false);
    int refused = 0;
    for (size_t len = 0; len < k.len; len += (len < 200 ? 1 : 97)) {
        int rc = bh_kernel_image_check(k.data, len, 64 * MIB, BH_LINUX_ENTRY_AUTO, NULL, &e);
        CHECK(rc == BH_E_INVALID_ARG);
        refused += rc == BH_E_INVALID_ARG;
    }
    CHECK_FAILS_WITH(bh_kernel_image_check(k.data, 40, 64 * MIB, BH_LINUX_ENTRY_AUTO, NULL, &e),
                  BH_E_INVALID_ARG, "truncated");
    CHECK_FAILS_WITH(bh_kernel_image_check(k.data, k.len - 1, 64 * MIB, BH_LINUX_ENTRY_AUTO, NULL, &e),
                  BH_E_INVALID_ARG, "outside the file");
    tap_diag("%d truncated lengths refused", refused);
    bi_free(&k);
}

void test_reject_32bit_elf(void)
{
    bh_error e = {0};
    bi_image k = probe_vmlinux(false);
    k.data[4] = 1; /* ELFCLASS32 */
    CHECK_FAILS_WITH(bh_kernel_image_check(k.data, k.len, 64 * MIB, BH_LINUX_ENTRY_AUTO, NULL, &e),
                  BH_E_INVALID_ARG, "32-bit ELF");
    k.data[4] = 2;
    k.data[18] = 3; /* EM_386 */
    CHECK_FAILS_WITH(bh_kernel_image_check(k.data, k.len, 64 * MIB, BH_LINUX_ENTRY_AUTO, NULL, &e),
                  BH_E_INVALID_ARG, "not x86-64");
    bi_free(&k);
}

static void bz_expect(void (*patch)(uint8_t *), const char *needle)
{
    bh_error e = {0};
    bi_bz_options o = {.code = bg_probe64, .code_len = BG_LEN(bg_probe64)};
    bi_image k = bi_make_bzimage(&o);
    patch(k.data);
    CHECK_FAILS_WITH(bh_kernel_image_check(k.data, k.len, 64 * MIB, BH_LINUX_ENTRY_AUTO, NULL, &e),
                  BH_E_INVALID_ARG, needle);
    bi_free(&k);
}
static void bz_bad_magic(uint8_t *d) { memcpy(d + 0x202, "HdrX", 4); }
static void bz_v205(uint8_t *d) { d[0x206] = 0x05; }
static void bz_v210(uint8_t *d) { d[0x206] = 0x0a; }
static void bz_no_kernel64(uint8_t *d) { d[0x236] = 0x02; }
static void bz_not_loaded_high(uint8_t *d) { d[0x211] = 0; }
static void bz_bad_alignment(uint8_t *d) { memcpy(d + 0x230, "\x03\x00\x10\x00", 4); }
static void bz_zero_init_size(uint8_t *d) { memset(d + 0x260, 0, 4); }
static void bz_huge_setup(uint8_t *d) { d[0x1f1] = 0xff; }
static void bz_bad_boot_flag(uint8_t *d) { d[0x1fe] = 0; }
static void bz_short_header(uint8_t *d) { d[0x201] = 0x10; }

void test_reject_bad_bzimages(void)
{
    bz_expect(bz_bad_magic, "not a bzImage");
    bz_expect(bz_v205, "boot protocol 2.05 is unsupported");
    bz_expect(bz_v210, "predates xloadflags");
    bz_expect(bz_no_kernel64, "XLF_KERNEL_64");
    bz_expect(bz_not_loaded_high, "LOADED_HIGH");
    bz_expect(bz_bad_alignment, "kernel_alignment");
    bz_expect(bz_zero_init_size, "init_size is 0");
    bz_expect(bz_huge_setup, "truncated");
    bz_expect(bz_bad_boot_flag, "boot_flag");
    bz_expect(bz_short_header, "before init_size");
}

void test_reject_segment_outside_ram(void)
{
    bh_error e = {0};
    bi_image k = probe_vmlinux(false);
    CHECK_FAILS_WITH(bh_kernel_image_check(k.data, k.len, 16 * MIB, BH_LINUX_ENTRY_AUTO, NULL, &e),
                  BH_E_INVALID_ARG, "does not fit in guest RAM");
    /* memsz so large that paddr + memsz wraps around. */
    memset(k.data + 64 + 40, 0xff, 8);
    CHECK_FAILS_WITH(bh_kernel_image_check(k.data, k.len, 64 * MIB, BH_LINUX_ENTRY_AUTO, NULL, &e),
                  BH_E_INVALID_ARG, "does not fit in guest RAM");
    /* A segment below 1 MiB would overwrite the loader's own structures. */
    bi_free(&k);
    k = probe_vmlinux(false);
    memset(k.data + 64 + 24, 0, 8);
    CHECK_FAILS_WITH(bh_kernel_image_check(k.data, k.len, 64 * MIB, BH_LINUX_ENTRY_AUTO, NULL, &e),
                  BH_E_INVALID_ARG, "below 1 MiB");
    bi_free(&k);
}

void test_reject_cmdline_over_limit(void)
{
    bh_error e = {0};
    bh_boot_plan plan;
    bi_bz_options o = {.code = bg_probe64, .code_len = BG_LEN(bg_probe64), .cmdline_size = 16};
    bi_image k = bi_make_bzimage(&o);
    REQUIRE_OK(bh_boot_plan_make(k.data, k.len, 64 * MIB, 0, 0, "0123456789abcdef", &plan, &e));
    CHECK_EQ_U64(plan.cmdline_len, 16);
    CHECK_FAILS_WITH(bh_boot_plan_make(k.data, k.len, 64 * MIB, 0, 0, "0123456789abcdefg", &plan, &e),
                  BH_E_INVALID_ARG, "limit of 16 bytes");
    bi_free(&k);
    k = probe_vmlinux(false);
    char *big = malloc(3000);
    memset(big, 'x', 2999);
    big[2999] = 0;
    CHECK_FAILS_WITH(bh_boot_plan_make(k.data, k.len, 64 * MIB, 0, 0, big, &plan, &e),
                  BH_E_INVALID_ARG, "limit of 2047 bytes");
    free(big);
    bi_free(&k);
}

void test_reject_initrd_that_does_not_fit(void)
{
    bh_error e = {0};
    bh_boot_plan plan;
    bi_image k = probe_vmlinux(false);
    /* 32 MiB of RAM, kernel up to ~16 MiB + 16 KiB: a 17 MiB initrd cannot fit above it. */
    CHECK_FAILS_WITH(bh_boot_plan_make(k.data, k.len, 32 * MIB, 0, 17 * MIB, NULL, &plan, &e),
                  BH_E_INVALID_ARG, "initrd");
    CHECK_FAILS_WITH(bh_boot_plan_make(k.data, k.len, 32 * MIB, 0, SIZE_MAX, NULL, &plan, &e),
                  BH_E_INVALID_ARG, "does not fit");
    REQUIRE_OK(bh_boot_plan_make(k.data, k.len, 32 * MIB, 0, 15 * MIB, NULL, &plan, &e));
    bi_free(&k);
}

void test_initrd_placement(void)
{
    bh_error e = {0};
    bh_boot_plan plan;
    bi_image k = probe_vmlinux(false);
    REQUIRE_OK(bh_boot_plan_make(k.data, k.len, 64 * MIB, 0, MIB + 5, NULL, &plan, &e));
    CHECK_EQ_U64(plan.initrd_addr, (64 * MIB - (MIB + 5)) & ~0xfffULL); /* highest page that fits */
    CHECK_EQ_U64(plan.initrd_size, MIB + 5);
    /* 6 GiB: low RAM ends at the MMIO hole, and ELF kernels cap initrds at 2 GiB - 1. */
    REQUIRE_OK(bh_boot_plan_make(k.data, k.len, 6ULL << 30, 0, MIB, NULL, &plan, &e));
    CHECK_EQ_U64(plan.low_ram_end, BH_MMIO_HOLE_START);
    CHECK_EQ_U64(plan.high_ram_size, (6ULL << 30) - BH_MMIO_HOLE_START);
    CHECK_EQ_U64(plan.initrd_addr, 0x80000000ULL - MIB);
    bi_free(&k);
}

void test_e820_layout(void)
{
    bh_boot_plan plan = {.low_ram_end = 64 * MIB};
    bh_e820_entry m[8];
    size_t n = bh_e820_build(&plan, m, 8);
    CHECK_EQ_U64(n, 4);
    CHECK_EQ_U64(m[0].addr, 0); CHECK_EQ_U64(m[0].size, 0x9fc00); CHECK_EQ_U64(m[0].type, BH_E820_RAM);
    CHECK_EQ_U64(m[1].addr, 0x9fc00); CHECK_EQ_U64(m[1].type, BH_E820_RESERVED);
    CHECK_EQ_U64(m[2].addr, 0xf0000); CHECK_EQ_U64(m[2].size, 0x10000); CHECK_EQ_U64(m[2].type, BH_E820_RESERVED);
    CHECK_EQ_U64(m[3].addr, MIB); CHECK_EQ_U64(m[3].size, 63 * MIB); CHECK_EQ_U64(m[3].type, BH_E820_RAM);
    plan.low_ram_end = BH_MMIO_HOLE_START;
    plan.high_ram_size = 1ULL << 30;
    n = bh_e820_build(&plan, m, 8);
    CHECK_EQ_U64(n, 5);
    CHECK_EQ_U64(m[3].addr + m[3].size, BH_MMIO_HOLE_START);
    CHECK_EQ_U64(m[4].addr, 1ULL << 32); CHECK_EQ_U64(m[4].size, 1ULL << 30); CHECK_EQ_U64(m[4].type, BH_E820_RAM);
}
