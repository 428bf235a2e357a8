/*
 * window.c — the MMIO window where virtio devices live, below 4 GiB in the hole above guest RAM:
 * one 4 KiB page per device from BH_VIRTIO_MMIO_BASE, each with its own GSI of the in-kernel
 * IOAPIC (5, 6, 7, 9, 10, ...: the IRQs the ISA devices and the RTC do not use), and the kernel
 * command-line entries ("virtio_mmio.device=4K@0xd0001000:5") that tell Linux where they are.
 */
#include <stdio.h>
#include <string.h>

#include "bulkhead.h"

static const uint32_t gsis[BH_VIRTIO_MMIO_MAX_DEVICES] = {5, 6, 7, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21};

void bh_mmio_window_init(bh_mmio_window *w)
{
    memset(w, 0, sizeof *w);
}

int bh_mmio_window_alloc(bh_mmio_window *w, bh_virtio_slot *out, bh_error *err)
{
    if (w->used >= BH_VIRTIO_MMIO_MAX_DEVICES) {
        if (err) {
            err->code = BH_E_INVALID_ARG;
            err->sys_errno = 0;
            snprintf(err->message, sizeof err->message, "too many virtio devices: at most %u fit the MMIO window",
                     BH_VIRTIO_MMIO_MAX_DEVICES);
        }
        return BH_E_INVALID_ARG;
    }
    bh_virtio_slot s = {.base = BH_VIRTIO_MMIO_BASE + (uint64_t)w->used * BH_VIRTIO_MMIO_SLOT, .gsi = gsis[w->used]};
    w->slots[w->used++] = s;
    *out = s;
    return BH_OK;
}

int bh_mmio_window_cmdline(const bh_mmio_window *w, char *cmdline, size_t cap, bh_error *err)
{
    size_t len = strnlen(cmdline, cap);
    for (uint32_t i = 0; i < w->used; i++) {
        int n = snprintf(cmdline + len, cap - len, "%svirtio_mmio.device=4K@0x%llx:%u", len ? " " : "",
                         (unsigned long long)w->slots[i].base, w->slots[i].gsi);
        if (n < 0 || (size_t)n >= cap - len) {
            if (err) {
                err->code = BH_E_INVALID_ARG;
                err->sys_errno = 0;
                snprintf(err->message, sizeof err->message,
                         "the command line does not fit %zu bytes with the virtio_mmio.device= entries", cap);
            }
            return BH_E_INVALID_ARG;
        }
        len += (size_t)n;
    }
    return BH_OK;
}
