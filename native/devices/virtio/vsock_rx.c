/*
 * vsock_rx.c — packets for the guest. Every one needs a receive buffer the guest posted, so the
 * pump takes a buffer only once it knows what goes in it: resets for unknown connections first,
 * then the connections that owe a control packet or have host data and credit, round robin.
 * Host data is read straight into the guest's buffer, never more than the guest's credit allows.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>

#include "vsock.h"

static uint32_t peer_credit(const bh_vsock_conn *c)
{
    uint32_t in_flight = c->tx_cnt - c->peer_fwd_cnt;
    return in_flight >= c->peer_buf_alloc ? 0 : c->peer_buf_alloc - in_flight;
}

static bool may_send_data(const bh_vsock_conn *c)
{
    return c->state == BH_VSOCK_ESTABLISHED && !c->guest_no_recv && !c->host_eof && c->fd >= 0 &&
           (c->early_len || c->host_readable) && peer_credit(c) > 0;
}

static bool has_work(const bh_vsock_conn *c)
{
    return c->owe || may_send_data(c);
}

bool bh_vsock_tx_allowed(const bh_vsock_core *k)
{
    return k->rst_len < BH_VSOCK_MAX_ORPHAN_RSTS;
}

bool bh_vsock_orphan_rst(bh_vsock_core *k, uint32_t local_port, uint32_t peer_port)
{
    if (k->rst_len >= BH_VSOCK_MAX_ORPHAN_RSTS)
        return false;
    k->rsts[(k->rst_head + k->rst_len) % BH_VSOCK_MAX_ORPHAN_RSTS] = (bh_vsock_pending_rst){local_port, peer_port};
    k->rst_len++;
    return true;
}

static void header_for(const bh_vsock_core *k, uint32_t local, uint32_t peer, uint16_t op, bh_vsock_hdr *h)
{
    memset(h, 0, sizeof *h);
    h->src_cid = BH_VSOCK_HOST_CID;
    h->dst_cid = k->guest_cid;
    h->src_port = local;
    h->dst_port = peer;
    h->type = BH_VSOCK_TYPE_STREAM;
    h->op = op;
    h->buf_alloc = BH_VSOCK_BUF_ALLOC;
}

static void put_header(const bh_vq_chain *chain, const bh_vsock_hdr *h)
{
    uint8_t raw[BH_VSOCK_HDR_SIZE];
    bh_vsock_hdr_encode(h, raw);
    bh_iov_copy_to(chain->write, chain->nwrite, 0, raw, sizeof raw);
}

/* A control packet; returns its length (a header). */
static uint32_t fill_control(bh_vsock_conn *c, const bh_vq_chain *chain, bool *free_after)
{
    bh_vsock_hdr h;
    uint16_t op;
    uint32_t bit;
    if (c->owe & BH_VSOCK_SEND_RST)
        op = BH_VSOCK_OP_RST, bit = BH_VSOCK_SEND_RST;
    else if (c->owe & BH_VSOCK_SEND_RESPONSE)
        op = BH_VSOCK_OP_RESPONSE, bit = BH_VSOCK_SEND_RESPONSE;
    else if (c->owe & BH_VSOCK_SEND_REQUEST)
        op = BH_VSOCK_OP_REQUEST, bit = BH_VSOCK_SEND_REQUEST;
    else if (c->owe & BH_VSOCK_SEND_SHUTDOWN)
        op = BH_VSOCK_OP_SHUTDOWN, bit = BH_VSOCK_SEND_SHUTDOWN;
    else
        op = BH_VSOCK_OP_CREDIT_UPDATE, bit = BH_VSOCK_SEND_CREDIT;
    c->owe &= ~bit;
    header_for(c->core, c->local_port, c->peer_port, op, &h);
    h.fwd_cnt = c->fwd_cnt;
    c->fwd_cnt_told = c->fwd_cnt;
    if (op == BH_VSOCK_OP_SHUTDOWN) {
        h.flags = BH_VSOCK_SHUTDOWN_SEND | (c->host_hup ? BH_VSOCK_SHUTDOWN_RCV : 0);
        if (c->host_hup)
            bh_vsock_enter_closing(c);
    }
    if (op == BH_VSOCK_OP_RST)
        *free_after = c->free_after_send;
    put_header(chain, &h);
    return BH_VSOCK_HDR_SIZE;
}

/* How many host bytes wait in the socket; at end of file (nothing, and the peer shut its side) the
 * connection owes the guest a SHUTDOWN instead. */
static size_t host_bytes_waiting(bh_vsock_conn *c)
{
    int n = 0;
    if (ioctl(c->fd, FIONREAD, &n) == 0 && n > 0)
        return (size_t)n;
    char b;
    ssize_t r = recv(c->fd, &b, 1, MSG_PEEK | MSG_DONTWAIT);
    if (r > 0)
        return 1; /* FIONREAD refused: read what comes */
    if (r == 0 || (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)) {
        c->host_eof = true;
        bh_vsock_owe(c, BH_VSOCK_SEND_SHUTDOWN);
    }
    c->host_readable = false;
    return 0;
}

/* Host data into the guest's buffer, after the header: returns the packet length, or 0 if nothing
 * was there after all (the chain is then returned empty: Linux drops such a buffer and reposts). */
static uint32_t fill_data(bh_vsock_conn *c, const bh_vq_chain *chain, size_t waiting)
{
    bh_vsock_core *k = c->core;
    uint64_t room = chain->write_len - BH_VSOCK_HDR_SIZE;
    uint64_t want = peer_credit(c);
    if (want > room)
        want = room;
    if (want > BH_VSOCK_MAX_PAYLOAD)
        want = BH_VSOCK_MAX_PAYLOAD;
    size_t got = 0;
    if (c->early_len) {
        got = c->early_len < want ? c->early_len : (size_t)want;
        bh_iov_copy_to(chain->write, chain->nwrite, BH_VSOCK_HDR_SIZE, c->early, got);
        memmove(c->early, c->early + got, c->early_len - got);
        c->early_len -= got;
    } else {
        if (want > waiting)
            want = waiting;
        int n = 0;
        uint64_t skip = BH_VSOCK_HDR_SIZE, left = want;
        for (uint16_t i = 0; i < chain->nwrite && left; i++) {
            if (skip >= chain->write[i].len) {
                skip -= chain->write[i].len;
                continue;
            }
            uint64_t take = chain->write[i].len - skip;
            if (take > left)
                take = left;
            k->iov[n++] = (struct iovec){chain->write[i].base + skip, (size_t)take};
            left -= take;
            skip = 0;
        }
        struct msghdr m = {.msg_iov = k->iov, .msg_iovlen = (size_t)n};
        ssize_t r;
        do
            r = recvmsg(c->fd, &m, MSG_DONTWAIT);
        while (r < 0 && errno == EINTR);
        if (r <= 0) {
            if (r == 0 || (errno != EAGAIN && errno != EWOULDBLOCK)) {
                c->host_eof = true;
                bh_vsock_owe(c, BH_VSOCK_SEND_SHUTDOWN);
            }
            c->host_readable = false;
            return 0;
        }
        got = (size_t)r;
    }
    bh_vsock_hdr h;
    header_for(k, c->local_port, c->peer_port, BH_VSOCK_OP_RW, &h);
    h.len = (uint32_t)got;
    h.fwd_cnt = c->fwd_cnt;
    c->fwd_cnt_told = c->fwd_cnt;
    c->owe &= ~BH_VSOCK_SEND_CREDIT; /* this header carries the credit */
    c->tx_cnt += (uint32_t)got;
    put_header(chain, &h);
    __atomic_fetch_add(&k->bytes_to_guest, got, __ATOMIC_RELAXED);
    return BH_VSOCK_HDR_SIZE + (uint32_t)got;
}

static bool take_buffer(bh_virtq *q, bh_vq_chain *chain, bool *broken, char *why, size_t why_len);

/* A receive buffer taken for a batch: its head and (up to RX_SEGS) writable buffers. */
#define RX_BATCH 32
#define RX_SEGS 4
typedef struct rx_slot {
    uint16_t head;
    uint16_t nseg;
    bh_iov seg[RX_SEGS];
    uint64_t space; /* payload room after the header */
} rx_slot;

static void put_header_slot(const rx_slot *slot, const bh_vsock_hdr *h)
{
    uint8_t raw[BH_VSOCK_HDR_SIZE];
    bh_vsock_hdr_encode(h, raw);
    bh_iov_copy_to(slot->seg, slot->nseg, 0, raw, sizeof raw);
}

/*
 * Host data for one connection into as many receive buffers as it fills, with one recvmsg: the common
 * case of a stream, where the guest posts many small buffers (Linux: 4 KiB each) and the host socket
 * holds more than one. `first` is a buffer already taken. Returns false when the queue broke.
 */
static bool fill_data_batch(bh_vsock_conn *c, bh_virtq *q, bh_vq_chain *chain, size_t waiting, char *why,
                            size_t why_len)
{
    bh_vsock_core *k = c->core;
    uint64_t want = peer_credit(c);
    if (want > waiting)
        want = waiting;
    rx_slot slots[RX_BATCH];
    int nslots = 0, niov = 0;
    uint64_t room = 0;
    bool broken = false;
    /* The buffer the caller took, then more while the data and credit call for them. */
    for (bool first = true; nslots < RX_BATCH && room < want; first = false) {
        if (!first && !take_buffer(q, chain, &broken, why, why_len))
            break;
        if (chain->nwrite > RX_SEGS) { /* an unusual layout: this one alone, the simple way */
            if (nslots == 0) {
                bh_vq_push(q, chain->head, fill_data(c, chain, waiting));
                return true;
            }
            bh_vq_push(q, chain->head, 0); /* Linux drops an empty buffer and posts a new one */
            break;
        }
        rx_slot *s = &slots[nslots++];
        s->head = chain->head;
        s->nseg = chain->nwrite;
        memcpy(s->seg, chain->write, sizeof s->seg[0] * chain->nwrite);
        s->space = chain->write_len - BH_VSOCK_HDR_SIZE;
        if (s->space > BH_VSOCK_MAX_PAYLOAD)
            s->space = BH_VSOCK_MAX_PAYLOAD;
        uint64_t skip = BH_VSOCK_HDR_SIZE, left = s->space;
        for (uint16_t i = 0; i < s->nseg && left; i++) {
            if (skip >= s->seg[i].len) {
                skip -= s->seg[i].len;
                continue;
            }
            uint64_t take = s->seg[i].len - skip;
            if (take > left)
                take = left;
            k->iov[niov++] = (struct iovec){s->seg[i].base + skip, (size_t)take};
            left -= take;
            skip = 0;
        }
        room += s->space;
    }
    if (broken && !nslots)
        return false;
    uint64_t limit = room < want ? room : want;
    /* Trim the iovec to `limit` bytes, so no more than the credit is read. */
    uint64_t total = 0;
    int used = 0;
    for (; used < niov && total < limit; used++) {
        if (total + k->iov[used].iov_len > limit)
            k->iov[used].iov_len = (size_t)(limit - total);
        total += k->iov[used].iov_len;
    }
    struct msghdr m = {.msg_iov = k->iov, .msg_iovlen = (size_t)used};
    ssize_t r;
    do
        r = recvmsg(c->fd, &m, MSG_DONTWAIT);
    while (r < 0 && errno == EINTR);
    uint64_t got = r > 0 ? (uint64_t)r : 0;
    if (r <= 0) {
        if (r == 0 || (errno != EAGAIN && errno != EWOULDBLOCK)) {
            c->host_eof = true;
            bh_vsock_owe(c, BH_VSOCK_SEND_SHUTDOWN);
        }
        c->host_readable = false;
    }
    /* Each buffer gets the next part of what arrived, in order; one that got nothing goes back empty. */
    uint64_t at = 0;
    for (int i = 0; i < nslots; i++) {
        uint64_t len = got - at < slots[i].space ? got - at : slots[i].space;
        at += len;
        if (len == 0) {
            bh_vq_push(q, slots[i].head, 0);
            continue;
        }
        bh_vsock_hdr h;
        header_for(k, c->local_port, c->peer_port, BH_VSOCK_OP_RW, &h);
        h.len = (uint32_t)len;
        h.fwd_cnt = c->fwd_cnt;
        c->fwd_cnt_told = c->fwd_cnt;
        c->owe &= ~BH_VSOCK_SEND_CREDIT; /* this header carries the credit */
        c->tx_cnt += (uint32_t)len;
        put_header_slot(&slots[i], &h);
        bh_vq_push(q, slots[i].head, BH_VSOCK_HDR_SIZE + (uint32_t)len);
    }
    __atomic_fetch_add(&k->bytes_to_guest, got, __ATOMIC_RELAXED);
    return !broken;
}

static bh_vsock_conn *pop_rx(bh_vsock_core *k)
{
    bh_vsock_conn *c = k->rx_head;
    if (!c)
        return NULL;
    k->rx_head = c->rx_next;
    if (!k->rx_head)
        k->rx_tail = NULL;
    c->in_rx_queue = false;
    c->rx_next = NULL;
    return c;
}

/* Takes a receive buffer; false (and *broken) when there is none or the queue is broken. */
static bool take_buffer(bh_virtq *q, bh_vq_chain *chain, bool *broken, char *why, size_t why_len)
{
    bh_vq_result r = bh_vq_pop(q, chain, why, why_len);
    if (r == BH_VQ_BROKEN) {
        *broken = true;
        return false;
    }
    if (r == BH_VQ_EMPTY)
        return false;
    if (chain->write_len < BH_VSOCK_HDR_SIZE) {
        snprintf(why, why_len, "vsock receive buffer of %llu writable bytes, smaller than a header",
                 (unsigned long long)chain->write_len);
        *broken = true;
        return false;
    }
    return true;
}

bool bh_vsock_rx_pump(bh_vsock_core *k, bh_virtq *q, bh_vq_chain *chain, char *why, size_t why_len)
{
    bool broken = false;
    /* Resets for packets that named no connection. */
    while (k->rst_len && take_buffer(q, chain, &broken, why, why_len)) {
        bh_vsock_pending_rst r = k->rsts[k->rst_head];
        k->rst_head = (k->rst_head + 1) % BH_VSOCK_MAX_ORPHAN_RSTS;
        k->rst_len--;
        bh_vsock_hdr h;
        header_for(k, r.local_port, r.peer_port, BH_VSOCK_OP_RST, &h);
        put_header(chain, &h);
        bh_vq_push(q, chain->head, BH_VSOCK_HDR_SIZE);
    }
    if (broken)
        return false;
    if (k->rst_len)
        return true; /* no buffers left */
    /* Connections, one packet each per turn. */
    for (bh_vsock_conn *c; (c = pop_rx(k));) {
        if (!has_work(c))
            continue;
        size_t waiting = 0;
        if (!c->owe && !c->early_len) {
            waiting = host_bytes_waiting(c);
            if (!waiting) {
                if (has_work(c))
                    bh_vsock_want_rx(c); /* end of file: the SHUTDOWN it now owes */
                continue;
            }
        }
        if (!take_buffer(q, chain, &broken, why, why_len)) {
            bh_vsock_want_rx(c); /* back to the front would be fairer; the tail is simpler */
            if (broken)
                return false;
            break; /* no buffer: the guest's next receive kick resumes */
        }
        bool free_after = false;
        if (!c->owe && !c->early_len) {
            if (!fill_data_batch(c, q, chain, waiting, why, why_len))
                return false;
        } else {
            uint32_t len = c->owe ? fill_control(c, chain, &free_after) : fill_data(c, chain, waiting);
            bh_vq_push(q, chain->head, len);
        }
        if (free_after)
            bh_vsock_conn_free(c);
        else if (has_work(c))
            bh_vsock_want_rx(c);
    }
    return true;
}

void bh_vsock_pump(bh_vsock_core *k)
{
    bh_virtio *v = k->transport;
    bh_virtq *q = &v->queues[0].vq;
    if (!bh_virtio_running(v) || !bh_vq_enabled(q))
        return;
    char why[160] = "";
    bool ok = bh_vsock_rx_pump(k, q, k->chain, why, sizeof why);
    bh_virtio_notify_used(v, q);
    if (!ok) {
        bh_virtio_fail(v, "receive queue: %s", why);
        return;
    }
    if (k->tx_blocked && bh_vsock_tx_allowed(k)) {
        k->tx_blocked = false;
        bh_virtio_kick(v, 1); /* resets drained: read the transmit queue again */
    }
}
