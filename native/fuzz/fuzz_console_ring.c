/* libFuzzer target for the PV console ring reader/writer (native/xen/console_ring.c): the page is
 * the guest's to scribble on, so any 4096 bytes (indices included) must give either a bounded copy
 * or -EPROTO, never an access outside the page or the caller's buffer (ASan checks both). */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "xen/console_ring.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1) return 0;
    size_t page_len = 4096;
    uint8_t *page = calloc(1, page_len);
    if (!page) return 0;
    memcpy(page, data + 1, size - 1 < page_len ? size - 1 : page_len);
    size_t cap = data[0] * 16u; /* 0..4080: smaller and larger than the ring */
    uint8_t *dst = malloc(cap ? cap : 1);
    int n = bh_cons_read_out(page, page_len, dst, cap);
    if (n > (int)cap || n > (int)BH_CONS_OUT_SIZE) abort();
    uint8_t in[2048];
    memset(in, 'x', sizeof in);
    int w = bh_cons_write_in(page, page_len, in, cap < sizeof in ? cap : sizeof in);
    if (w > (int)BH_CONS_IN_SIZE) abort();
    /* A short page is refused whole. */
    if (bh_cons_read_out(page, BH_CONS_PAGE_MIN - 1, dst, cap) != -22) abort();
    free(dst);
    free(page);
    return 0;
}
