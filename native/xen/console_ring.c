/* The PV console ring, backend side (see console_ring.h). Indices are free-running uint32 counters;
 * a position is the index masked by the ring size (a power of two). */
#include "console_ring.h"

#include <errno.h>
#include <string.h>

static uint32_t load_idx(uint8_t *page, size_t off) {
    uint32_t *p = (uint32_t *)(void *)(page + off);
    return __atomic_load_n(p, __ATOMIC_ACQUIRE);
}

static void store_idx(uint8_t *page, size_t off, uint32_t v) {
    uint32_t *p = (uint32_t *)(void *)(page + off);
    __atomic_store_n(p, v, __ATOMIC_RELEASE);
}

int bh_cons_read_out(uint8_t *page, size_t page_len, uint8_t *dst, size_t cap) {
    if (!page || page_len < BH_CONS_PAGE_MIN) return -EINVAL;
    uint32_t cons = load_idx(page, BH_CONS_OFF_OUT_CONS);
    uint32_t prod = load_idx(page, BH_CONS_OFF_OUT_PROD);
    uint32_t avail = prod - cons;
    if (avail > BH_CONS_OUT_SIZE) return -EPROTO;
    size_t n = avail < cap ? avail : cap;
    const uint8_t *ring = page + BH_CONS_OFF_OUT;
    for (size_t i = 0; i < n; i++) dst[i] = ring[(cons + (uint32_t)i) & (BH_CONS_OUT_SIZE - 1)];
    store_idx(page, BH_CONS_OFF_OUT_CONS, cons + (uint32_t)n);
    return (int)n;
}

int bh_cons_write_in(uint8_t *page, size_t page_len, const uint8_t *src, size_t len) {
    if (!page || page_len < BH_CONS_PAGE_MIN) return -EINVAL;
    uint32_t cons = load_idx(page, BH_CONS_OFF_IN_CONS);
    uint32_t prod = load_idx(page, BH_CONS_OFF_IN_PROD);
    uint32_t used = prod - cons;
    if (used > BH_CONS_IN_SIZE) return -EPROTO;
    size_t space = BH_CONS_IN_SIZE - used;
    size_t n = len < space ? len : space;
    uint8_t *ring = page + BH_CONS_OFF_IN;
    for (size_t i = 0; i < n; i++) ring[(prod + (uint32_t)i) & (BH_CONS_IN_SIZE - 1)] = src[i];
    store_idx(page, BH_CONS_OFF_IN_PROD, prod + (uint32_t)n);
    return (int)n;
}
