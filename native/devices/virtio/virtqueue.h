/*
 * virtqueue.h — split virtqueues (virtio 1.2 §2.7) as a device sees them: pop a descriptor chain
 * from the available ring, push it to the used ring, and decide whether the driver wants an
 * interrupt. EVENT_IDX and indirect descriptors are supported.
 *
 * Everything the guest controls is checked: ring addresses and alignment (at enable), the avail
 * index (it may not run more than a queue size ahead), descriptor indices, chain length and loops,
 * nested or misplaced indirect tables, every buffer's address + length, and readable descriptors
 * after writable ones. A violation is returned as BH_VQ_BROKEN with a reason; the device then
 * marks itself DEVICE_NEEDS_RESET and stops using the queue.
 */
#ifndef BH_DEVICES_VIRTIO_VIRTQUEUE_H
#define BH_DEVICES_VIRTIO_VIRTQUEUE_H

#include "gmem.h"

#define BH_VQ_MAX_SIZE 1024         /* the largest queue a driver may configure */
#define BH_VQ_MAX_INDIRECT 1024     /* entries in one indirect table */
#define BH_VQ_MAX_SEGMENTS 1024     /* buffers in one chain, direct and indirect together */

#define BH_VRING_DESC_F_NEXT 1
#define BH_VRING_DESC_F_WRITE 2
#define BH_VRING_DESC_F_INDIRECT 4
#define BH_VRING_USED_F_NO_NOTIFY 1
#define BH_VRING_AVAIL_F_NO_INTERRUPT 1

typedef struct bh_iov {
    uint8_t *base; /* inside guest RAM (checked) */
    uint32_t len;
} bh_iov;

/* One popped chain: device-readable buffers first, then device-writable ones. */
typedef struct bh_vq_chain {
    uint16_t head;
    uint16_t nread, nwrite;
    uint64_t read_len, write_len; /* totals */
    bh_iov read[BH_VQ_MAX_SEGMENTS];
    bh_iov write[BH_VQ_MAX_SEGMENTS];
} bh_vq_chain;

typedef struct bh_virtq {
    const bh_gmem *mem;
    uint16_t num;          /* queue size (a power of two), 0 when disabled */
    bool event_idx;        /* VIRTIO_F_RING_EVENT_IDX negotiated */
    bool indirect;         /* VIRTIO_F_RING_INDIRECT_DESC negotiated */
    uint8_t *desc;         /* 16 * num bytes */
    uint8_t *avail;        /* flags, idx, ring[num], used_event */
    uint8_t *used;         /* flags, idx, ring[num] of {id, len}, avail_event */
    uint16_t last_avail;   /* the next avail ring slot to take */
    uint16_t used_idx;     /* our used->idx */
    uint16_t signalled_used; /* used_idx when the driver was last interrupted */
    bool signalled_valid;
} bh_virtq;

typedef enum bh_vq_result {
    BH_VQ_BROKEN = -1,
    BH_VQ_EMPTY = 0,
    BH_VQ_CHAIN = 1,
} bh_vq_result;

/* Checks the rings and points `q` at them. On failure `why` says what is wrong and q stays off. */
bool bh_vq_enable(bh_virtq *q, const bh_gmem *mem, uint16_t num, uint64_t desc_gpa, uint64_t avail_gpa,
                  uint64_t used_gpa, bool event_idx, bool indirect, char *why, size_t why_len);
void bh_vq_disable(bh_virtq *q);
static inline bool bh_vq_enabled(const bh_virtq *q)
{
    return q->num != 0;
}

/* Takes the next available chain into `c`. */
bh_vq_result bh_vq_pop(bh_virtq *q, bh_vq_chain *c, char *why, size_t why_len);
/* Returns chain `head` to the driver with `written` bytes written into its writable buffers. */
void bh_vq_push(bh_virtq *q, uint16_t head, uint32_t written);
/* Whether the driver asked for an interrupt for what was pushed since the last one; if so it
 * counts as sent. */
bool bh_vq_need_interrupt(bh_virtq *q);
/* While processing: ask the driver not to notify (no EVENT_IDX) ... */
void bh_vq_notifications_off(bh_virtq *q);
/* ... and after: ask for a notification at the next new chain, then look again. True when more
 * chains arrived meanwhile (process them; no notification would come for them). Sets *broken
 * (with `why`) if the avail index jumped. */
bool bh_vq_notifications_on(bh_virtq *q, bool *broken, char *why, size_t why_len);

/* Copy helpers over a chain's buffers (bounded by what the chain holds). */
size_t bh_iov_copy_from(const bh_iov *iov, size_t n, uint64_t offset, void *dst, size_t len);
size_t bh_iov_copy_to(const bh_iov *iov, size_t n, uint64_t offset, const void *src, size_t len);

#endif
