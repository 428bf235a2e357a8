/*
 * fuzz_kernel_image.c — libFuzzer target for the kernel image parser and the boot plan.
 *
 * The input is the kernel image. The first byte (if any) also picks the entry kind, the guest
 * memory size and the initrd size, so those paths are explored too. On success the plan must
 * hold the invariants the VM writers rely on: every segment inside the file and inside low RAM,
 * above 1 MiB; the entry inside a segment; the initrd page-aligned, above the kernel and below
 * the end of low RAM. A violation aborts (a finding); refusals must be BH_E_INVALID_ARG with a
 * message. Accepted plans are also turned into a zero page (the setup header is copied from the
 * image there).
 */
#include <stdlib.h>
#include <string.h>

#include "boot/boot_internal.h"
#include "boot/layout.h"

#include <stdio.h>

/* An invariant that must hold: report which one broke, then abort (libFuzzer saves the input). */
#define check(ok) check_at((ok), __LINE__, #ok)
static void check_at(bool ok, int line, const char *what)
{
    if (!ok) {
        fprintf(stderr, "fuzz_kernel_image.c:%d: invariant broken: %s\n", line, what);
        abort();
    }
}

static void check_plan(const bh_boot_plan *p, size_t len)
{
    const bh_kernel_image *img = &p->image;
    check(img->segment_count > 0 && img->segment_count <= BH_KERNEL_MAX_SEGMENTS);
    bool entry_inside = false;
    for (size_t i = 0; i < img->segment_count; i++) {
        const bh_kernel_segment *s = &img->segments[i];
        check(s->file_size <= s->mem_size);
        check(s->file_offset <= len && s->file_size <= len - s->file_offset);
        check(s->gpa >= BH_BOOT_HIGH_MEM && s->gpa <= p->low_ram_end &&
              s->mem_size <= p->low_ram_end - s->gpa);
        entry_inside |= img->entry64 >= s->gpa && img->entry64 - s->gpa < s->mem_size;
    }
    check(entry_inside);
    check(img->footprint_end <= p->low_ram_end);
    check(p->cmdline_len <= img->cmdline_max && img->cmdline_max < BH_BOOT_CMDLINE_MAX);
    if (img->format == BH_KERNEL_BZIMAGE)
        check(img->hdr.header_end <= 0x290 && img->hdr.header_end <= len);
    if (p->initrd_size) {
        check((p->initrd_addr & 0xfff) == 0);
        check(p->initrd_addr >= img->footprint_end);
        check(p->initrd_addr + p->initrd_size <= p->low_ram_end);
        check(p->initrd_addr + p->initrd_size - 1 <= img->initrd_addr_max);
    }
}

/* boot_params.c's VM writer is linked in but the fuzzer never has a VM. */
int bh_mem_write(bh_vm *vm, uint64_t gpa, const void *src, size_t len, bh_error *err)
{
    (void)vm, (void)gpa, (void)src, (void)len, (void)err;
    abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t len)
{
    static const uint64_t memories[4] = {32ULL << 20, 256ULL << 20, 3ULL << 30, 6ULL << 30};
    static const size_t initrds[4] = {0, 4096, 5ULL << 20, 300ULL << 20};
    static char cmdline[3000];
    uint8_t knob = len ? data[len - 1] : 0;
    uint64_t memory = memories[knob & 3];
    size_t initrd = initrds[(knob >> 2) & 3];
    bh_linux_entry entry = (bh_linux_entry)((knob >> 4) % 3);
    size_t cmdlen = (knob >> 6) == 3 ? 2500 : (size_t)(knob >> 6) * 100;
    memset(cmdline, 'c', cmdlen);
    cmdline[cmdlen] = 0;

    /* Copy so ASan catches any read past the image. */
    uint8_t *copy = malloc(len ? len : 1);
    memcpy(copy, data, len);
    bh_boot_plan plan;
    bh_error err = {0};
    int rc = bh_boot_plan_make(copy, len, memory, entry, initrd, cmdline, &plan, &err);
    if (rc == 0) {
        check_plan(&plan, len);
        uint8_t zp[BH_ZERO_PAGE_SIZE];
        uint32_t e820 = bh_zero_page_build(&plan, zp);
        check(e820 >= 4 && e820 == zp[0x1e8]);
        check(memcmp(zp + 0x202, "HdrS", 4) == 0 && zp[0x210] == 0xff);
    }
    else
        check(rc == BH_E_INVALID_ARG && err.code == BH_E_INVALID_ARG && err.message[0]);
    free(copy);
    return 0;
}
