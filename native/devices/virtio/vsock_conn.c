/*
 * vsock_conn.c — vsock connections: the table, the host sockets behind them, and what each packet
 * from the guest does (see vsock.h for the threads and the bounds).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/timerfd.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "vsock.h"

#define HOST_EVENTS (EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET)

uint64_t bh_vsock_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

void bh_vsock_core_init(bh_vsock_core *k, bh_vm *vm, bh_virtio *transport, uint64_t guest_cid, const char *uds,
                        uint32_t max_connections)
{
    memset(k, 0, sizeof *k);
    k->vm = vm;
    k->transport = transport;
    k->guest_cid = guest_cid;
    if (uds)
        snprintf(k->uds, sizeof k->uds, "%s", uds);
    k->max_connections = max_connections ? max_connections : 1024;
    k->next_host_port = BH_VSOCK_FIRST_HOST_PORT;
    k->timer_fd = -1;
}

static unsigned bucket_of(uint32_t local, uint32_t peer)
{
    return (local * 2654435761u ^ peer * 40503u) % BH_VSOCK_BUCKETS;
}

bh_vsock_conn *bh_vsock_find(bh_vsock_core *k, uint32_t local_port, uint32_t peer_port)
{
    for (bh_vsock_conn *c = k->buckets[bucket_of(local_port, peer_port)]; c; c = c->hash_next)
        if (c->local_port == local_port && c->peer_port == peer_port)
            return c;
    return NULL;
}

static void table_insert(bh_vsock_conn *c)
{
    unsigned b = bucket_of(c->local_port, c->peer_port);
    c->hash_next = c->core->buckets[b];
    c->core->buckets[b] = c;
    c->in_table = true;
}

static void table_remove(bh_vsock_conn *c)
{
    if (!c->in_table)
        return;
    for (bh_vsock_conn **p = &c->core->buckets[bucket_of(c->local_port, c->peer_port)]; *p; p = &(*p)->hash_next) {
        if (*p == c) {
            *p = c->hash_next;
            break;
        }
    }
    c->in_table = false;
}

static void host_event(void *opaque, uint32_t events);

static bh_vsock_conn *conn_new(bh_vsock_core *k, int fd)
{
    bh_vsock_conn *c = calloc(1, sizeof *c);
    if (!c)
        return NULL;
    c->core = k;
    c->fd = fd;
    c->all_next = k->all;
    if (k->all)
        k->all->all_prev = c;
    k->all = c;
    __atomic_fetch_add(&k->connections, 1, __ATOMIC_RELAXED);
    if (fd >= 0) {
        /* A whole credit window of guest data fits in the host socket, so a reader that keeps up
         * never makes the guest's data wait in `pending`: the default send buffer (wmem_default,
         * ~208 KiB of skb memory) holds about three 64 KiB packets, less than the 256 KiB the guest
         * may have in flight. The kernel caps the request at net.core.wmem_max, then doubles it. */
        int size = 2 * BH_VSOCK_BUF_ALLOC;
        (void)setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &size, sizeof size);
    }
    if (fd >= 0 && k->vm && bh_vm_io_watch(k->vm, fd, HOST_EVENTS, host_event, c, NULL) == BH_OK)
        c->watched = true;
    return c;
}

static void close_host(bh_vsock_conn *c)
{
    if (c->fd < 0)
        return;
    if (c->watched)
        bh_vm_io_unwatch(c->core->vm, c->fd);
    c->watched = false;
    close(c->fd);
    c->fd = -1;
}

void bh_vsock_conn_free(bh_vsock_conn *c)
{
    bh_vsock_core *k = c->core;
    if (c->in_rx_queue) {
        bh_vsock_conn **p = &k->rx_head, *prev = NULL;
        for (; *p && *p != c; prev = *p, p = &(*p)->rx_next) {
        }
        if (*p) {
            *p = c->rx_next;
            if (k->rx_tail == c)
                k->rx_tail = prev;
        }
    }
    table_remove(c);
    if (c->all_prev)
        c->all_prev->all_next = c->all_next;
    else
        k->all = c->all_next;
    if (c->all_next)
        c->all_next->all_prev = c->all_prev;
    close_host(c);
    free(c->pending);
    free(c);
    __atomic_fetch_sub(&k->connections, 1, __ATOMIC_RELAXED);
}

bool bh_vsock_apply_reset(bh_vsock_core *k)
{
    if (!k->reset_pending)
        return false;
    k->reset_pending = false;
    bh_vsock_close_all(k);
    return true;
}

void bh_vsock_close_all(bh_vsock_core *k)
{
    while (k->all)
        bh_vsock_conn_free(k->all);
    k->rx_head = k->rx_tail = NULL;
    k->rst_head = k->rst_len = 0;
    k->tx_blocked = false;
}

void bh_vsock_want_rx(bh_vsock_conn *c)
{
    bh_vsock_core *k = c->core;
    if (c->in_rx_queue)
        return;
    c->in_rx_queue = true;
    c->rx_next = NULL;
    if (k->rx_tail)
        k->rx_tail->rx_next = c;
    else
        k->rx_head = c;
    k->rx_tail = c;
}

void bh_vsock_owe(bh_vsock_conn *c, uint32_t what)
{
    c->owe |= what;
    bh_vsock_want_rx(c);
}

/* The connection is beyond saving: reset it on the guest side and forget it once that is sent. */
static void reset_conn(bh_vsock_conn *c)
{
    close_host(c);
    c->free_after_send = true;
    bh_vsock_owe(c, BH_VSOCK_SEND_RST);
}

static void arm_close_timer(bh_vsock_core *k)
{
    if (k->timer_fd < 0 || k->timer_armed)
        return;
    struct itimerspec t = {.it_interval = {0, 500 * 1000 * 1000}, .it_value = {0, 500 * 1000 * 1000}};
    if (timerfd_settime(k->timer_fd, 0, &t, NULL) == 0)
        k->timer_armed = true;
}

void bh_vsock_timer(bh_vsock_core *k, uint64_t now_ns)
{
    bool closing = false;
    for (bh_vsock_conn *c = k->all, *next; c; c = next) {
        next = c->all_next;
        if (c->state != BH_VSOCK_CLOSING)
            continue;
        if (now_ns >= c->close_deadline_ns)
            bh_vsock_conn_free(c); /* the guest never answered our shutdown: give up on it */
        else
            closing = true;
    }
    if (!closing && k->timer_fd >= 0 && k->timer_armed) {
        struct itimerspec off = {{0, 0}, {0, 0}};
        timerfd_settime(k->timer_fd, 0, &off, NULL);
        k->timer_armed = false;
    }
}

/* Called by the receive pump once SHUTDOWN(RCV|SEND) went out. */
void bh_vsock_enter_closing(bh_vsock_conn *c)
{
    c->state = BH_VSOCK_CLOSING;
    c->close_deadline_ns = bh_vsock_now_ns() + BH_VSOCK_CLOSE_TIMEOUT_NS;
    arm_close_timer(c->core);
}

/* --------------------------------------------------------------------------------------------- */
/* Guest -> host data                                                                              */

static void maybe_credit_update(bh_vsock_conn *c)
{
    if (c->fwd_cnt - c->fwd_cnt_told >= BH_VSOCK_CREDIT_STEP)
        bh_vsock_owe(c, BH_VSOCK_SEND_CREDIT);
}

/* Once the guest's data is all on the host socket: carry out the guest's shutdown. */
static void after_drain(bh_vsock_conn *c)
{
    if (c->pending_len || c->fd < 0)
        return;
    if (c->guest_no_send && c->guest_no_recv) {
        reset_conn(c); /* both directions done: close the host side, and end it with the guest */
        return;
    }
    if (c->guest_no_send && !c->host_write_shut) {
        shutdown(c->fd, SHUT_WR);
        c->host_write_shut = true;
    }
}

bool bh_vsock_flush_to_host(bh_vsock_conn *c)
{
    size_t off = 0;
    while (off < c->pending_len) {
        ssize_t n = send(c->fd, c->pending + off, c->pending_len - off, MSG_DONTWAIT | MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            break;
        if (n <= 0)
            return false;
        off += (size_t)n;
        c->fwd_cnt += (uint32_t)n;
    }
    memmove(c->pending, c->pending + off, c->pending_len - off);
    c->pending_len -= off;
    __atomic_fetch_add(&c->core->bytes_to_host, off, __ATOMIC_RELAXED);
    if (!c->pending_len) {
        free(c->pending);
        c->pending = NULL;
    }
    maybe_credit_update(c);
    after_drain(c);
    return true;
}

static void guest_data(bh_vsock_conn *c, const bh_vsock_hdr *h, const bh_vq_chain *chain)
{
    bh_vsock_core *k = c->core;
    if (c->state != BH_VSOCK_ESTABLISHED || c->guest_no_send || c->fd < 0) {
        reset_conn(c);
        return;
    }
    /* The guest may not send more than the credit we gave it. */
    if ((uint64_t)(c->rx_cnt - c->fwd_cnt) + h->len > BH_VSOCK_BUF_ALLOC) {
        reset_conn(c);
        return;
    }
    c->rx_cnt += h->len;
    size_t sent = 0;
    if (!c->pending_len && h->len) {
        /* Straight from guest memory to the host socket. */
        int n = 0;
        uint64_t skip = BH_VSOCK_HDR_SIZE, left = h->len;
        for (uint16_t i = 0; i < chain->nread && left; i++) {
            if (skip >= chain->read[i].len) {
                skip -= chain->read[i].len;
                continue;
            }
            uint64_t take = chain->read[i].len - skip;
            if (take > left)
                take = left;
            k->iov[n++] = (struct iovec){chain->read[i].base + skip, (size_t)take};
            left -= take;
            skip = 0;
        }
        struct msghdr m = {.msg_iov = k->iov, .msg_iovlen = (size_t)n};
        ssize_t w;
        do
            w = sendmsg(c->fd, &m, MSG_DONTWAIT | MSG_NOSIGNAL);
        while (w < 0 && errno == EINTR);
        if (w < 0 && errno != EAGAIN && errno != EWOULDBLOCK) {
            reset_conn(c); /* the host side is gone */
            return;
        }
        if (w > 0) {
            sent = (size_t)w;
            c->fwd_cnt += (uint32_t)w;
            __atomic_fetch_add(&k->bytes_to_host, sent, __ATOMIC_RELAXED);
        }
    }
    if (sent < h->len) {
        /* The host socket is full: keep the rest (bounded by the credit) until it drains. */
        if (!c->pending) {
            c->pending = malloc(BH_VSOCK_BUF_ALLOC);
            if (!c->pending) {
                reset_conn(c);
                return;
            }
        }
        size_t rest = h->len - sent;
        if (c->pending_len + rest > BH_VSOCK_BUF_ALLOC) {
            reset_conn(c);
            return;
        }
        bh_iov_copy_from(chain->read, chain->nread, BH_VSOCK_HDR_SIZE + sent, c->pending + c->pending_len, rest);
        c->pending_len += rest;
    }
    maybe_credit_update(c);
}

/* --------------------------------------------------------------------------------------------- */
/* What the guest's packets do                                                                     */

static void guest_connect(bh_vsock_core *k, const bh_vsock_hdr *h)
{
    if (__atomic_load_n(&k->connections, __ATOMIC_RELAXED) >= k->max_connections || !k->vm || !k->uds[0]) {
        bh_vsock_orphan_rst(k, h->dst_port, h->src_port);
        return;
    }
    struct sockaddr_un addr = {.sun_family = AF_UNIX};
    int len = snprintf(addr.sun_path, sizeof addr.sun_path, "%s_%u", k->uds, h->dst_port);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    /* AF_UNIX connects at once or not at all: nothing listening (or a full backlog) is a reset. */
    if (fd < 0 || len <= 0 || (size_t)len >= sizeof addr.sun_path ||
        connect(fd, (struct sockaddr *)&addr, sizeof addr) != 0) {
        if (fd >= 0)
            close(fd);
        bh_vsock_orphan_rst(k, h->dst_port, h->src_port);
        return;
    }
    bh_vsock_conn *c = conn_new(k, fd);
    if (!c) {
        close(fd);
        bh_vsock_orphan_rst(k, h->dst_port, h->src_port);
        return;
    }
    c->state = BH_VSOCK_ESTABLISHED;
    c->local_port = h->dst_port;
    c->peer_port = h->src_port;
    c->peer_buf_alloc = h->buf_alloc;
    c->peer_fwd_cnt = h->fwd_cnt;
    table_insert(c);
    bh_vsock_owe(c, BH_VSOCK_SEND_RESPONSE);
}

static void guest_response(bh_vsock_conn *c)
{
    if (c->state != BH_VSOCK_CONNECTING || c->fd < 0) {
        reset_conn(c);
        return;
    }
    char ok[32];
    int n = snprintf(ok, sizeof ok, "OK %u\n", c->local_port);
    if (send(c->fd, ok, (size_t)n, MSG_DONTWAIT | MSG_NOSIGNAL) != n) {
        reset_conn(c); /* a fresh socket takes a few bytes; if not, the client is gone */
        return;
    }
    c->state = BH_VSOCK_ESTABLISHED;
    bh_vsock_want_rx(c); /* early data and anything the client sent since */
}

static void guest_shutdown(bh_vsock_conn *c, uint32_t flags)
{
    if (flags & BH_VSOCK_SHUTDOWN_RCV)
        c->guest_no_recv = true;
    if (flags & BH_VSOCK_SHUTDOWN_SEND)
        c->guest_no_send = true;
    after_drain(c);
}

void bh_vsock_guest_packet(bh_vsock_core *k, const bh_vsock_hdr *h, const bh_vq_chain *chain)
{
    if (h->src_cid != k->guest_cid)
        return; /* not from this guest's address: dropped */
    if (h->type != BH_VSOCK_TYPE_STREAM || h->dst_cid != BH_VSOCK_HOST_CID) {
        if (h->op != BH_VSOCK_OP_RST)
            bh_vsock_orphan_rst(k, h->dst_port, h->src_port);
        return;
    }
    bh_vsock_conn *c = bh_vsock_find(k, h->dst_port, h->src_port);
    if (!c) {
        if (h->op == BH_VSOCK_OP_REQUEST)
            guest_connect(k, h);
        else if (h->op != BH_VSOCK_OP_RST)
            bh_vsock_orphan_rst(k, h->dst_port, h->src_port);
        return;
    }
    /* Every header carries the guest's credit. */
    c->peer_buf_alloc = h->buf_alloc;
    c->peer_fwd_cnt = h->fwd_cnt;
    switch (h->op) {
    case BH_VSOCK_OP_RST:
        bh_vsock_conn_free(c);
        return;
    case BH_VSOCK_OP_RESPONSE:
        guest_response(c);
        break;
    case BH_VSOCK_OP_SHUTDOWN:
        guest_shutdown(c, h->flags);
        break;
    case BH_VSOCK_OP_RW:
        guest_data(c, h, chain);
        break;
    case BH_VSOCK_OP_CREDIT_REQUEST:
        bh_vsock_owe(c, BH_VSOCK_SEND_CREDIT);
        break;
    case BH_VSOCK_OP_CREDIT_UPDATE:
        bh_vsock_want_rx(c); /* more credit: host data may flow again */
        break;
    case BH_VSOCK_OP_REQUEST: /* a second REQUEST for a live connection */
    default:
        reset_conn(c);
        break;
    }
}

/* --------------------------------------------------------------------------------------------- */
/* Host clients                                                                                    */

bh_vsock_conn *bh_vsock_host_accepted(bh_vsock_core *k, int fd)
{
    if (__atomic_load_n(&k->connections, __ATOMIC_RELAXED) >= k->max_connections) {
        close(fd);
        return NULL;
    }
    bh_vsock_conn *c = conn_new(k, fd);
    if (!c) {
        close(fd);
        return NULL;
    }
    c->state = BH_VSOCK_HANDSHAKE;
    return c;
}

static uint32_t free_host_port(bh_vsock_core *k, uint32_t peer_port)
{
    for (;;) {
        uint32_t p = k->next_host_port++;
        if (k->next_host_port == 0)
            k->next_host_port = BH_VSOCK_FIRST_HOST_PORT;
        if (!bh_vsock_find(k, p, peer_port))
            return p;
    }
}

/* Reads the client's "CONNECT <port>\n"; anything wrong closes it. */
static void host_handshake(bh_vsock_conn *c)
{
    bh_vsock_core *k = c->core;
    for (;;) {
        ssize_t n = recv(c->fd, c->handshake + c->handshake_len, BH_VSOCK_HANDSHAKE_MAX - c->handshake_len, MSG_DONTWAIT);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return; /* the rest of the line later */
        if (n <= 0) {
            bh_vsock_conn_free(c);
            return;
        }
        c->handshake_len += (size_t)n;
        char *nl = memchr(c->handshake, '\n', c->handshake_len);
        if (!nl) {
            if (c->handshake_len == BH_VSOCK_HANDSHAKE_MAX) {
                bh_vsock_conn_free(c);
                return;
            }
            continue;
        }
        size_t line = (size_t)(nl - c->handshake);
        uint64_t port = 0;
        bool ok = line > 8 && line <= 8 + 10 && memcmp(c->handshake, "CONNECT ", 8) == 0;
        for (size_t i = 8; ok && i < line; i++) {
            char d = c->handshake[i];
            ok = d >= '0' && d <= '9';
            port = port * 10 + (uint64_t)(d - '0');
        }
        if (!ok || port > UINT32_MAX || !bh_virtio_running(k->transport)) {
            bh_vsock_conn_free(c); /* a bad line, or no guest driver to ask */
            return;
        }
        c->early_len = c->handshake_len - line - 1;
        memcpy(c->early, nl + 1, c->early_len);
        c->peer_port = (uint32_t)port;
        c->local_port = free_host_port(k, c->peer_port);
        c->state = BH_VSOCK_CONNECTING;
        c->peer_buf_alloc = 0; /* no credit until the guest's RESPONSE says how much */
        table_insert(c);
        bh_vsock_owe(c, BH_VSOCK_SEND_REQUEST);
        return;
    }
}

/* A host socket is readable, writable or closed (work_lock held; may free c). */
void bh_vsock_host_event(bh_vsock_conn *c, uint32_t events)
{
    bh_vsock_core *k = c->core;
    if (events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR))
        c->host_readable = true;
    if (events & (EPOLLHUP | EPOLLERR))
        c->host_hup = true;
    if (c->state == BH_VSOCK_HANDSHAKE) {
        host_handshake(c); /* may free c */
    } else {
        if ((events & EPOLLOUT) && c->pending_len && !bh_vsock_flush_to_host(c))
            reset_conn(c);
        if (c->host_hup && c->host_eof && c->state == BH_VSOCK_ESTABLISHED)
            bh_vsock_owe(c, BH_VSOCK_SEND_SHUTDOWN); /* half-closed before, gone now */
        bh_vsock_want_rx(c);
    }
    bh_vsock_pump(k);
}

/* The I/O thread's handler for a host socket. */
static void host_event(void *opaque, uint32_t events)
{
    bh_vsock_conn *c = opaque;
    bh_vsock_core *k = c->core;
    pthread_mutex_lock(&k->transport->work_lock);
    if (!bh_vsock_apply_reset(k)) /* after a reset, c is gone with the rest */
        bh_vsock_host_event(c, events);
    pthread_mutex_unlock(&k->transport->work_lock);
}
