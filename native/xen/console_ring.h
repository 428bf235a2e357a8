/* The PV console ring (xen/io/console.h, struct xencons_interface) from the backend's side: the
 * guest writes out[] and advances out_prod, we read and advance out_cons; we write in[] and advance
 * in_prod. The page is shared with the guest, so its indices are read once each and checked: a
 * producer more than a ring ahead of its consumer is a protocol error, never an out-of-bounds copy. */
#ifndef BULKHEAD_XEN_CONSOLE_RING_H
#define BULKHEAD_XEN_CONSOLE_RING_H

#include <stddef.h>
#include <stdint.h>

#define BH_CONS_IN_SIZE 1024u
#define BH_CONS_OUT_SIZE 2048u
#define BH_CONS_OFF_IN 0u
#define BH_CONS_OFF_OUT 1024u
#define BH_CONS_OFF_IN_CONS 3072u
#define BH_CONS_OFF_IN_PROD 3076u
#define BH_CONS_OFF_OUT_CONS 3080u
#define BH_CONS_OFF_OUT_PROD 3084u
#define BH_CONS_PAGE_MIN 3088u

/* Copies up to cap bytes the guest wrote into dst and consumes them. Returns the count, or
 * -EINVAL (page shorter than the interface) / -EPROTO (indices that cannot be, left untouched). */
int bh_cons_read_out(uint8_t *page, size_t page_len, uint8_t *dst, size_t cap);
/* Queues up to len bytes for the guest; returns how many fit, or -EINVAL / -EPROTO as above. */
int bh_cons_write_in(uint8_t *page, size_t page_len, const uint8_t *src, size_t len);

#endif
