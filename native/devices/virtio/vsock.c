/*
 * vsock.c — the virtio-vsock device (virtio 1.2 §5.10): receive (0), transmit (1) and event (2)
 * queues, the guest CID in the config space, and the host listener at <uds>. The connection logic
 * is in vsock_conn.c and vsock_rx.c (see vsock.h).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/timerfd.h>
#include <sys/un.h>
#include <unistd.h>

#include "vsock.h"

#define RX_QUEUE 0
#define TX_QUEUE 1
#define MAX_UDS_PATH 96 /* room for "_<port>" in sun_path (108) */

struct bh_virtio_vsock {
    bh_virtio v;
    bh_vsock_core core;
    int listen_fd;
    bool listen_watched, timer_watched;
    char listen_path[108];
    bh_vq_chain tx_chain, rx_chain;
};

static void vsock_config_read(void *dev, uint32_t offset, uint8_t *buf, uint32_t len)
{
    bh_virtio_vsock *d = dev;
    uint8_t cfg[8];
    memcpy(cfg, &d->core.guest_cid, 8);
    memcpy(buf, cfg + offset, len);
}

/* The guest's packets, at most a budget per turn, and not while resets for unknown connections
 * have no room (they wait for receive buffers). */
static void serve_tx(bh_virtio_vsock *d)
{
    bh_virtq *q = &d->v.queues[TX_QUEUE].vq;
    char why[160] = "";
    unsigned served = 0;
    bool more = true;
    while (more) {
        bh_vq_notifications_off(q);
        while (served < BH_VIRTIO_BUDGET) {
            if (!bh_vsock_tx_allowed(&d->core)) {
                d->core.tx_blocked = true;
                bh_virtio_notify_used(&d->v, q);
                return;
            }
            bh_vq_result r = bh_vq_pop(q, &d->tx_chain, why, sizeof why);
            if (r == BH_VQ_EMPTY)
                break;
            bh_vsock_hdr h;
            if (r == BH_VQ_BROKEN || !bh_vsock_parse_tx(&d->tx_chain, &h, why, sizeof why)) {
                bh_virtio_notify_used(&d->v, q);
                bh_virtio_fail(&d->v, "transmit queue: %s", why);
                return;
            }
            bh_vsock_guest_packet(&d->core, &h, &d->tx_chain);
            bh_vq_push(q, d->tx_chain.head, 0);
            bh_virtio_count(&d->v.stats.requests, 1);
            served++;
        }
        if (served >= BH_VIRTIO_BUDGET) {
            bh_virtio_notify_used(&d->v, q);
            bh_virtio_kick(&d->v, TX_QUEUE);
            return;
        }
        bool broke = false;
        more = bh_vq_notifications_on(q, &broke, why, sizeof why);
        if (broke) {
            bh_virtio_fail(&d->v, "transmit queue: %s", why);
            return;
        }
    }
    bh_virtio_notify_used(&d->v, q);
}

static void vsock_notify(void *dev, uint16_t q)
{
    bh_virtio_vsock *d = dev;
    bh_vsock_apply_reset(&d->core);
    if (q == TX_QUEUE)
        serve_tx(d);
    if (q == TX_QUEUE || q == RX_QUEUE)
        bh_vsock_pump(&d->core); /* replies to what was sent, and anything waiting for buffers */
    /* The event queue (2) is only used for transport resets, which this device never sends. */
}

/* A driver reset (vCPU thread, work_lock held): the connections are closed on the I/O thread, which
 * may be holding pointers to them between events (bh_vsock_apply_reset). */
static void vsock_reset(void *dev)
{
    bh_virtio_vsock *d = dev;
    d->core.reset_pending = true;
    if (d->core.timer_fd >= 0) { /* the queues are off now: the timer wakes the I/O thread for it */
        struct itimerspec soon = {.it_interval = {0, 500 * 1000 * 1000}, .it_value = {0, 1000 * 1000}};
        if (timerfd_settime(d->core.timer_fd, 0, &soon, NULL) == 0)
            d->core.timer_armed = true;
    }
}

const bh_virtio_ops bh_vsock_virtio_ops = {
    .kind = "virtio-vsock",
    .device_id = BH_VIRTIO_ID_VSOCK,
    .num_queues = 3,
    .config_size = 8,
    .config_read = vsock_config_read,
    .queue_notify = vsock_notify,
    .reset = vsock_reset,
};

/* --------------------------------------------------------------------------------------------- */
/* Host side: the listener and the close timer (I/O thread)                                        */

static void on_listen(void *opaque, uint32_t events)
{
    bh_virtio_vsock *d = opaque;
    (void)events;
    pthread_mutex_lock(&d->v.work_lock);
    bh_vsock_apply_reset(&d->core);
    for (;;) {
        int fd = accept4(d->listen_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0)
            break; /* EAGAIN: all taken; anything else: try again on the next event */
        bh_vsock_host_accepted(&d->core, fd);
    }
    pthread_mutex_unlock(&d->v.work_lock);
}

static void on_timer(void *opaque, uint32_t events)
{
    bh_virtio_vsock *d = opaque;
    uint64_t ticks;
    (void)events;
    if (read(d->core.timer_fd, &ticks, sizeof ticks) < 0) {
        /* nothing to read: a spurious wakeup */
    }
    pthread_mutex_lock(&d->v.work_lock);
    if (!bh_vsock_apply_reset(&d->core))
        bh_vsock_timer(&d->core, bh_vsock_now_ns());
    bh_vsock_pump(&d->core);
    pthread_mutex_unlock(&d->v.work_lock);
}

static int sys_fail(bh_error *err, const char *what, const char *path)
{
    int e = errno;
    if (err) {
        err->code = BH_E_SYSTEM;
        err->sys_errno = e;
        snprintf(err->message, sizeof err->message, "virtio-vsock: %s %s: %s", what, path, strerror(e));
    }
    return BH_E_SYSTEM;
}

/* A socket file left by a VMM that died is replaced; a live listener is not. */
static int clear_stale_socket(const char *path, bh_error *err)
{
    struct stat st;
    if (lstat(path, &st) != 0)
        return errno == ENOENT ? BH_OK : sys_fail(err, "lstat", path);
    if (!S_ISSOCK(st.st_mode)) {
        if (err) {
            err->code = BH_E_BUSY, err->sys_errno = EEXIST;
            snprintf(err->message, sizeof err->message, "virtio-vsock: %s exists and is not a socket", path);
        }
        return BH_E_BUSY;
    }
    int probe = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_un a = {.sun_family = AF_UNIX};
    snprintf(a.sun_path, sizeof a.sun_path, "%s", path);
    bool live = probe >= 0 && connect(probe, (struct sockaddr *)&a, sizeof a) == 0;
    if (probe >= 0)
        close(probe);
    if (live) {
        if (err) {
            err->code = BH_E_BUSY, err->sys_errno = EADDRINUSE;
            snprintf(err->message, sizeof err->message, "virtio-vsock: something already listens on %s", path);
        }
        return BH_E_BUSY;
    }
    return unlink(path) == 0 ? BH_OK : sys_fail(err, "unlink stale socket", path);
}

static int open_listener(bh_virtio_vsock *d, const char *path, bh_error *err)
{
    int rc = clear_stale_socket(path, err);
    if (rc)
        return rc;
    d->listen_fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (d->listen_fd < 0)
        return sys_fail(err, "socket for", path);
    struct sockaddr_un a = {.sun_family = AF_UNIX};
    snprintf(a.sun_path, sizeof a.sun_path, "%s", path);
    if (bind(d->listen_fd, (struct sockaddr *)&a, sizeof a) != 0)
        return sys_fail(err, "bind", path);
    snprintf(d->listen_path, sizeof d->listen_path, "%s", path);
    if (listen(d->listen_fd, 128) != 0)
        return sys_fail(err, "listen on", path);
    return BH_OK;
}

/* Every thread is gone: host clients see their connections close and the listener disappear. */
static void vsock_stop(void *dev)
{
    bh_virtio_vsock *d = dev;
    bh_vsock_close_all(&d->core);
    if (d->listen_fd >= 0) {
        if (d->listen_watched)
            bh_vm_io_unwatch(d->v.vm, d->listen_fd);
        d->listen_watched = false;
        close(d->listen_fd);
        d->listen_fd = -1;
    }
    if (d->listen_path[0]) {
        unlink(d->listen_path);
        d->listen_path[0] = 0;
    }
}

static void vsock_destroy(void *dev)
{
    bh_virtio_vsock *d = dev;
    vsock_stop(d);
    if (d->core.timer_fd >= 0)
        close(d->core.timer_fd);
    bh_virtio_teardown(&d->v);
    free(d);
}

static const bh_device_ops vsock_device_ops = {.name = "virtio-vsock", .stop = vsock_stop, .destroy = vsock_destroy};

int bh_virtio_vsock_create(bh_vm *vm, const bh_virtio_config *common, const bh_virtio_vsock_config *config,
                           bh_virtio_vsock **out, bh_error *err)
{
    bh_error local;
    if (!err)
        err = &local;
    if (!config || config->guest_cid < 3 || config->guest_cid > 0xffffffffULL) {
        *err = (bh_error){.code = BH_E_INVALID_ARG};
        snprintf(err->message, sizeof err->message, "virtio-vsock guest CID %llu is invalid: allowed 3 .. 2^32-1",
                 config ? (unsigned long long)config->guest_cid : 0ULL);
        return BH_E_INVALID_ARG;
    }
    size_t plen = config->uds_path ? strlen(config->uds_path) : 0;
    if (plen == 0 || plen > MAX_UDS_PATH) {
        *err = (bh_error){.code = BH_E_INVALID_ARG};
        snprintf(err->message, sizeof err->message,
                 "virtio-vsock uds_path of %zu bytes is invalid: allowed 1 .. %d (\"<uds_path>_<port>\" must fit a "
                 "socket address)",
                 plen, MAX_UDS_PATH);
        return BH_E_INVALID_ARG;
    }
    bh_virtio_vsock *d = calloc(1, sizeof *d);
    if (!d) {
        *err = (bh_error){.code = BH_E_NOMEM, .message = "out of memory for virtio-vsock"};
        return BH_E_NOMEM;
    }
    d->listen_fd = -1;
    bh_vsock_core_init(&d->core, vm, &d->v, config->guest_cid, config->uds_path, config->max_connections);
    d->core.chain = &d->rx_chain;
    int rc = bh_vm_attach_device(vm, &vsock_device_ops, d, err);
    if (rc) {
        free(d);
        return rc;
    }
    if ((rc = bh_virtio_init(&d->v, vm, NULL, common, &bh_vsock_virtio_ops, d, 0, err)))
        return rc;
    if ((rc = open_listener(d, config->uds_path, err)))
        return rc;
    if ((rc = bh_vm_io_watch(vm, d->listen_fd, EPOLLIN, on_listen, d, err)))
        return rc;
    d->listen_watched = true;
    d->core.timer_fd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
    if (d->core.timer_fd < 0)
        return sys_fail(err, "timerfd_create for", config->uds_path);
    if ((rc = bh_vm_io_watch(vm, d->core.timer_fd, EPOLLIN, on_timer, d, err)))
        return rc;
    *out = d;
    return BH_OK;
}

void bh_virtio_vsock_stats(const bh_virtio_vsock *d, bh_virtio_stats *out)
{
    bh_virtio_stats_read(&d->v, out);
    out->bytes_in = __atomic_load_n(&d->core.bytes_to_host, __ATOMIC_RELAXED);
    out->bytes_out = __atomic_load_n(&d->core.bytes_to_guest, __ATOMIC_RELAXED);
}

uint32_t bh_virtio_vsock_connections(const bh_virtio_vsock *d)
{
    return __atomic_load_n(&d->core.connections, __ATOMIC_RELAXED);
}
