/* virtqueue.c — split virtqueues, the device side (see virtqueue.h). */
#include "virtqueue.h"

#include <stdarg.h>
#include <stdio.h>

#define DESC_SIZE 16
#define AVAIL_RING 4 /* offset of avail->ring[] */
#define USED_RING 4  /* offset of used->ring[] */
#define USED_ELEM 8

typedef struct vring_desc {
    uint64_t addr;
    uint32_t len;
    uint16_t flags;
    uint16_t next;
} vring_desc;

static bh_vq_result broken(char *why, size_t why_len, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static bh_vq_result broken(char *why, size_t why_len, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    if (why && why_len)
        vsnprintf(why, why_len, fmt, ap);
    va_end(ap);
    return BH_VQ_BROKEN;
}

bool bh_vq_enable(bh_virtq *q, const bh_gmem *mem, uint16_t num, uint64_t desc_gpa, uint64_t avail_gpa,
                  uint64_t used_gpa, bool event_idx, bool indirect, char *why, size_t why_len)
{
    bh_vq_disable(q);
    if (num == 0 || num > BH_VQ_MAX_SIZE || (num & (num - 1)))
        return broken(why, why_len, "queue size %u is not a power of two in 1..%u", num, BH_VQ_MAX_SIZE), false;
    if (desc_gpa % 16 || avail_gpa % 2 || used_gpa % 4)
        return broken(why, why_len,
                      "misaligned rings: descriptors at 0x%llx (need 16), driver area at 0x%llx (need 2), "
                      "device area at 0x%llx (need 4)",
                      (unsigned long long)desc_gpa, (unsigned long long)avail_gpa, (unsigned long long)used_gpa),
               false;
    uint8_t *desc = bh_gmem_ptr(mem, desc_gpa, (uint64_t)DESC_SIZE * num);
    uint8_t *avail = bh_gmem_ptr(mem, avail_gpa, AVAIL_RING + 2ULL * num + 2);
    uint8_t *used = bh_gmem_ptr(mem, used_gpa, USED_RING + (uint64_t)USED_ELEM * num + 2);
    if (!desc || !avail || !used)
        return broken(why, why_len, "a ring of queue size %u is not in guest RAM (descriptors 0x%llx, driver 0x%llx, device 0x%llx)",
                      num, (unsigned long long)desc_gpa, (unsigned long long)avail_gpa,
                      (unsigned long long)used_gpa),
               false;
    q->mem = mem;
    q->desc = desc;
    q->avail = avail;
    q->used = used;
    q->event_idx = event_idx;
    q->indirect = indirect;
    q->last_avail = 0; /* a queue starts at index 0 on both rings (virtio 1.2 §2.7.13) */
    q->used_idx = 0;
    q->signalled_valid = false;
    q->num = num;
    return true;
}

void bh_vq_disable(bh_virtq *q)
{
    q->num = 0;
    q->desc = q->avail = q->used = NULL;
    q->last_avail = q->used_idx = q->signalled_used = 0;
    q->signalled_valid = false;
}

/* How many chains the driver has made available that we have not taken, or -1 if that is more
 * than the queue holds (the driver's index jumped). */
static int avail_pending(const bh_virtq *q)
{
    uint16_t idx = bh_gmem_load16_acquire(q->avail + 2);
    uint16_t pending = (uint16_t)(idx - q->last_avail);
    return pending > q->num ? -1 : pending;
}

static void read_desc(const uint8_t *table, uint32_t i, vring_desc *d)
{
    uint8_t raw[DESC_SIZE];
    bh_gmem_read_once(raw, table + (size_t)i * DESC_SIZE, DESC_SIZE);
    memcpy(&d->addr, raw, 8);
    memcpy(&d->len, raw + 8, 4);
    memcpy(&d->flags, raw + 12, 2);
    memcpy(&d->next, raw + 14, 2);
}

static bh_vq_result add_buffer(bh_virtq *q, bh_vq_chain *c, const vring_desc *d, char *why, size_t why_len)
{
    uint8_t *p = bh_gmem_ptr(q->mem, d->addr, d->len);
    if (!p)
        return broken(why, why_len, "descriptor buffer [0x%llx, +0x%x) is not in guest RAM",
                      (unsigned long long)d->addr, d->len);
    if ((uint32_t)c->nread + c->nwrite >= BH_VQ_MAX_SEGMENTS)
        return broken(why, why_len, "descriptor chain longer than %u buffers", BH_VQ_MAX_SEGMENTS);
    if (d->flags & BH_VRING_DESC_F_WRITE) {
        c->write[c->nwrite++] = (bh_iov){p, d->len};
        c->write_len += d->len;
    } else {
        if (c->nwrite)
            return broken(why, why_len, "a device-readable buffer follows a device-writable one");
        c->read[c->nread++] = (bh_iov){p, d->len};
        c->read_len += d->len;
    }
    return BH_VQ_CHAIN;
}

/* Walks an indirect table (whose descriptor has been validated by the caller). */
static bh_vq_result walk_indirect(bh_virtq *q, bh_vq_chain *c, const vring_desc *ind, char *why, size_t why_len)
{
    if (!q->indirect)
        return broken(why, why_len, "an indirect descriptor, but VIRTIO_F_RING_INDIRECT_DESC was not negotiated");
    if (ind->flags & BH_VRING_DESC_F_NEXT)
        return broken(why, why_len, "an indirect descriptor also has VIRTQ_DESC_F_NEXT");
    if (ind->len == 0 || ind->len % DESC_SIZE || ind->len / DESC_SIZE > BH_VQ_MAX_INDIRECT)
        return broken(why, why_len, "indirect table of %u bytes: need a non-zero multiple of 16, at most %u entries",
                      ind->len, BH_VQ_MAX_INDIRECT);
    const uint8_t *table = bh_gmem_ptr(q->mem, ind->addr, ind->len);
    if (!table)
        return broken(why, why_len, "indirect table [0x%llx, +0x%x) is not in guest RAM",
                      (unsigned long long)ind->addr, ind->len);
    uint32_t entries = ind->len / DESC_SIZE, i = 0;
    for (uint32_t visited = 0;; visited++) {
        if (visited >= entries)
            return broken(why, why_len, "indirect chain loops (more than its %u entries)", entries);
        vring_desc d;
        read_desc(table, i, &d);
        if (d.flags & BH_VRING_DESC_F_INDIRECT)
            return broken(why, why_len, "an indirect table contains an indirect descriptor");
        if (add_buffer(q, c, &d, why, why_len) != BH_VQ_CHAIN)
            return BH_VQ_BROKEN;
        if (!(d.flags & BH_VRING_DESC_F_NEXT))
            return BH_VQ_CHAIN;
        if (d.next >= entries)
            return broken(why, why_len, "indirect descriptor %u names next %u beyond its table of %u", i, d.next, entries);
        i = d.next;
    }
}

bh_vq_result bh_vq_pop(bh_virtq *q, bh_vq_chain *c, char *why, size_t why_len)
{
    if (!bh_vq_enabled(q))
        return BH_VQ_EMPTY;
    int pending = avail_pending(q);
    if (pending < 0)
        return broken(why, why_len, "the avail index ran %u ahead of the device, more than the queue size %u",
                      (uint16_t)(bh_gmem_load16(q->avail + 2) - q->last_avail), q->num);
    if (pending == 0)
        return BH_VQ_EMPTY;
    uint16_t head = bh_gmem_load16(q->avail + AVAIL_RING + 2u * (q->last_avail & (q->num - 1)));
    if (head >= q->num)
        return broken(why, why_len, "avail ring names descriptor %u, beyond the queue size %u", head, q->num);
    q->last_avail++;
    c->head = head;
    c->nread = c->nwrite = 0;
    c->read_len = c->write_len = 0;
    uint16_t i = head;
    for (uint32_t visited = 0;; visited++) {
        if (visited >= q->num)
            return broken(why, why_len, "descriptor chain from %u loops (more than the queue size %u)", head, q->num);
        vring_desc d;
        read_desc(q->desc, i, &d);
        if (d.flags & BH_VRING_DESC_F_INDIRECT)
            return walk_indirect(q, c, &d, why, why_len);
        if (add_buffer(q, c, &d, why, why_len) != BH_VQ_CHAIN)
            return BH_VQ_BROKEN;
        if (!(d.flags & BH_VRING_DESC_F_NEXT))
            return BH_VQ_CHAIN;
        if (d.next >= q->num)
            return broken(why, why_len, "descriptor %u names next %u beyond the queue size %u", i, d.next, q->num);
        i = d.next;
    }
}

void bh_vq_push(bh_virtq *q, uint16_t head, uint32_t written)
{
    if (!bh_vq_enabled(q))
        return;
    uint8_t *elem = q->used + USED_RING + (size_t)USED_ELEM * (q->used_idx & (q->num - 1));
    bh_gmem_store32(elem, head);
    bh_gmem_store32(elem + 4, written);
    q->used_idx++;
    /* The element is visible before the index that covers it. */
    bh_gmem_store16_release(q->used + 2, q->used_idx);
}

bool bh_vq_need_interrupt(bh_virtq *q)
{
    if (!bh_vq_enabled(q))
        return false;
    /* Order the used->idx store before reading the driver's suppression state (spec 2.7.7.2). */
    bh_gmem_full_fence();
    uint16_t old = q->signalled_used, now = q->used_idx;
    bool valid = q->signalled_valid;
    q->signalled_used = now;
    q->signalled_valid = true;
    if (!q->event_idx)
        return !(bh_gmem_load16(q->avail) & BH_VRING_AVAIL_F_NO_INTERRUPT);
    if (!valid)
        return true;
    uint16_t used_event = bh_gmem_load16(q->avail + AVAIL_RING + 2u * q->num);
    /* vring_need_event: did used_idx pass used_event between old and now? */
    return (uint16_t)(now - used_event - 1) < (uint16_t)(now - old);
}

void bh_vq_notifications_off(bh_virtq *q)
{
    if (bh_vq_enabled(q) && !q->event_idx)
        bh_gmem_store16(q->used, BH_VRING_USED_F_NO_NOTIFY);
}

bool bh_vq_notifications_on(bh_virtq *q, bool *is_broken, char *why, size_t why_len)
{
    *is_broken = false;
    if (!bh_vq_enabled(q))
        return false;
    if (q->event_idx)
        bh_gmem_store16(q->used + USED_RING + (size_t)USED_ELEM * q->num, q->last_avail); /* avail_event */
    else
        bh_gmem_store16(q->used, 0);
    /* The request for a notification is visible before we look at the avail index again. */
    bh_gmem_full_fence();
    int pending = avail_pending(q);
    if (pending < 0) {
        *is_broken = true;
        broken(why, why_len, "the avail index ran more than the queue size %u ahead of the device", q->num);
        return false;
    }
    return pending > 0;
}

size_t bh_iov_copy_from(const bh_iov *iov, size_t n, uint64_t offset, void *dst, size_t len)
{
    size_t done = 0;
    for (size_t i = 0; i < n && done < len; i++) {
        if (offset >= iov[i].len) {
            offset -= iov[i].len;
            continue;
        }
        size_t take = iov[i].len - (size_t)offset;
        if (take > len - done)
            take = len - done;
        memcpy((uint8_t *)dst + done, iov[i].base + offset, take);
        done += take;
        offset = 0;
    }
    return done;
}

size_t bh_iov_copy_to(const bh_iov *iov, size_t n, uint64_t offset, const void *src, size_t len)
{
    size_t done = 0;
    for (size_t i = 0; i < n && done < len; i++) {
        if (offset >= iov[i].len) {
            offset -= iov[i].len;
            continue;
        }
        size_t take = iov[i].len - (size_t)offset;
        if (take > len - done)
            take = len - done;
        memcpy(iov[i].base + offset, (const uint8_t *)src + done, take);
        done += take;
        offset = 0;
    }
    return done;
}
