/*
 * blk.c — virtio-blk (virtio 1.2 §5.2) backed by a file or block device: one request queue;
 * reads, writes, flush (fdatasync) and the serial id; read-only disks advertise VIRTIO_BLK_F_RO
 * and refuse writes.
 *
 * A request is a chain: a 16-byte header (type, reserved, sector) in device-readable buffers,
 * then the data (readable for writes, writable for reads), then one writable status byte at the
 * very end. Requests are served on the I/O thread with preadv/pwritev straight into and out of
 * guest memory. A chain without a header or a status byte cannot be answered: the device is
 * failed. A request for sectors beyond the disk, or not in whole sectors, is answered IOERR.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>
#include <unistd.h>

#include "blk.h"

#define SECTOR 512ULL
#define BLK_F_RO (1ULL << 5)
#define BLK_F_SEG_MAX (1ULL << 2)
#define BLK_F_FLUSH (1ULL << 9)
#define BLK_SEG_MAX 254 /* with indirect descriptors: fewer, larger requests (1 MiB of 4 KiB pages) */
#define BLK_CONFIG_SIZE 24 /* capacity, size_max, seg_max, geometry, blk_size */

#define BLK_T_IN 0
#define BLK_T_OUT 1
#define BLK_T_FLUSH 4
#define BLK_T_GET_ID 8
#define BLK_S_OK 0
#define BLK_S_IOERR 1
#define BLK_S_UNSUPP 2
#define BLK_ID_BYTES 20

static void blk_config_read(void *dev, uint32_t offset, uint8_t *buf, uint32_t len)
{
    bh_blk_core *b = dev;
    uint8_t cfg[BLK_CONFIG_SIZE] = {0};
    memcpy(cfg, &b->capacity_sectors, 8);
    uint32_t seg_max = BLK_SEG_MAX, blk_size = SECTOR;
    memcpy(cfg + 12, &seg_max, 4);
    memcpy(cfg + 20, &blk_size, 4);
    memcpy(buf, cfg + offset, len);
}

/* The iovecs for `len` bytes of `segs` starting `skip` bytes in. Returns how many. */
static int build_iov(struct iovec *iov, const bh_iov *segs, size_t nsegs, uint64_t skip, uint64_t len)
{
    int n = 0;
    for (size_t i = 0; i < nsegs && len; i++) {
        if (skip >= segs[i].len) {
            skip -= segs[i].len;
            continue;
        }
        uint64_t take = segs[i].len - skip;
        if (take > len)
            take = len;
        iov[n++] = (struct iovec){segs[i].base + skip, (size_t)take};
        len -= take;
        skip = 0;
    }
    return n;
}

/* preadv/pwritev until all is done; false on an error or end of file. */
static bool transfer_all(int fd, struct iovec *iov, int n, uint64_t offset, bool write, uint64_t *done)
{
    *done = 0;
    while (n > 0) {
        ssize_t r = write ? pwritev(fd, iov, n, (off_t)offset) : preadv(fd, iov, n, (off_t)offset);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            return false;
        *done += (uint64_t)r;
        offset += (uint64_t)r;
        size_t left = (size_t)r;
        while (n > 0 && left >= iov->iov_len) {
            left -= iov->iov_len;
            iov++, n--;
        }
        if (n > 0) {
            iov->iov_base = (uint8_t *)iov->iov_base + left;
            iov->iov_len -= left;
        }
    }
    return true;
}

/* Whether sectors [sector, sector + bytes/512) are on the disk (overflow-free). */
static bool in_disk(const bh_blk_core *b, uint64_t sector, uint64_t bytes)
{
    uint64_t sectors = bytes / SECTOR;
    return sector <= b->capacity_sectors && sectors <= b->capacity_sectors - sector;
}

int64_t bh_blk_handle_request(void *dev, bh_vq_chain *c, char *why, size_t why_len)
{
    bh_blk_core *b = dev;
    uint8_t hdr[16];
    if (c->read_len < sizeof hdr) {
        snprintf(why, why_len, "virtio-blk request with %llu header bytes (need 16)", (unsigned long long)c->read_len);
        return -1;
    }
    /* The status byte: the last byte of the last non-empty writable buffer. */
    int last = (int)c->nwrite - 1;
    while (last >= 0 && c->write[last].len == 0)
        last--;
    if (last < 0) {
        snprintf(why, why_len, "virtio-blk request without a writable status byte");
        return -1;
    }
    uint8_t *status = c->write[last].base + c->write[last].len - 1;
    bh_iov_copy_from(c->read, c->nread, 0, hdr, sizeof hdr); /* one snapshot of the header */
    uint32_t type;
    uint64_t sector;
    memcpy(&type, hdr, 4);
    memcpy(&sector, hdr + 8, 8);

    uint8_t result = BLK_S_OK;
    uint64_t written = 0, done = 0;
    uint64_t data_in = c->write_len - 1;   /* what a read may fill, before the status byte */
    uint64_t data_out = c->read_len - 16;  /* what a write carries, after the header */
    switch (type) {
    case BLK_T_IN: {
        if (data_in % SECTOR || !in_disk(b, sector, data_in)) {
            result = BLK_S_IOERR;
            break;
        }
        int n = build_iov(b->iov, c->write, c->nwrite, 0, data_in);
        if (!transfer_all(b->fd, b->iov, n, sector * SECTOR, false, &done))
            result = BLK_S_IOERR;
        written = done;
        __atomic_fetch_add(&b->bytes_read, done, __ATOMIC_RELAXED);
        break;
    }
    case BLK_T_OUT: {
        if (b->read_only || data_out % SECTOR || !in_disk(b, sector, data_out)) {
            result = BLK_S_IOERR;
            break;
        }
        int n = build_iov(b->iov, c->read, c->nread, 16, data_out);
        if (!transfer_all(b->fd, b->iov, n, sector * SECTOR, true, &done))
            result = BLK_S_IOERR;
        __atomic_fetch_add(&b->bytes_written, done, __ATOMIC_RELAXED);
        break;
    }
    case BLK_T_FLUSH:
        if (!b->read_only && fdatasync(b->fd) != 0)
            result = BLK_S_IOERR;
        break;
    case BLK_T_GET_ID: {
        uint8_t id[BLK_ID_BYTES] = {0};
        memcpy(id, b->serial, b->serial_len);
        size_t n = data_in < BLK_ID_BYTES ? (size_t)data_in : BLK_ID_BYTES;
        written = bh_iov_copy_to(c->write, c->nwrite, 0, id, n);
        break;
    }
    default:
        result = BLK_S_UNSUPP;
        break;
    }
    *status = result;
    return (int64_t)(written + 1);
}

int bh_blk_core_open(bh_blk_core *b, const bh_virtio_blk_config *config, bh_error *err)
{
    b->fd = -1;
    if (!config->path || !config->path[0]) {
        *err = (bh_error){.code = BH_E_INVALID_ARG, .message = "virtio-blk: a backing file path is required"};
        return BH_E_INVALID_ARG;
    }
    size_t serial_len = config->serial ? strlen(config->serial) : 0;
    if (serial_len > BLK_ID_BYTES) {
        err->code = BH_E_INVALID_ARG, err->sys_errno = 0;
        snprintf(err->message, sizeof err->message, "virtio-blk serial \"%s\" is %zu bytes; at most %d", config->serial,
                 serial_len, BLK_ID_BYTES);
        return BH_E_INVALID_ARG;
    }
    b->fd = open(config->path, (config->read_only ? O_RDONLY : O_RDWR) | O_CLOEXEC);
    if (b->fd < 0) {
        err->code = BH_E_INVALID_ARG, err->sys_errno = errno;
        snprintf(err->message, sizeof err->message, "virtio-blk: cannot open %s %s: %s", config->path,
                 config->read_only ? "read-only" : "read-write", strerror(errno));
        return BH_E_INVALID_ARG;
    }
    off_t size = lseek(b->fd, 0, SEEK_END);
    if (size < 0) {
        err->code = BH_E_SYSTEM, err->sys_errno = errno;
        snprintf(err->message, sizeof err->message, "virtio-blk: size of %s: %s", config->path, strerror(errno));
        return BH_E_SYSTEM;
    }
    b->capacity_sectors = (uint64_t)size / SECTOR;
    b->read_only = config->read_only;
    memcpy(b->serial, config->serial ? config->serial : "", serial_len);
    b->serial_len = serial_len;
    return BH_OK;
}

void bh_blk_core_close(bh_blk_core *b)
{
    if (b->fd >= 0)
        close(b->fd);
    b->fd = -1;
}

/* --------------------------------------------------------------------------------------------- */

struct bh_virtio_blk {
    bh_virtio v;
    bh_blk_core core;
    bh_vq_chain chain;
};

static void blk_notify(void *dev, uint16_t q)
{
    bh_virtio_blk *b = dev;
    bh_virtio_serve(&b->v, q, &b->chain, bh_blk_handle_request, &b->core);
}

static void blk_config_read_outer(void *dev, uint32_t offset, uint8_t *buf, uint32_t len)
{
    blk_config_read(&((bh_virtio_blk *)dev)->core, offset, buf, len);
}

const bh_virtio_ops bh_blk_virtio_ops = {
    .kind = "virtio-blk",
    .device_id = BH_VIRTIO_ID_BLOCK,
    .num_queues = 1,
    .config_size = BLK_CONFIG_SIZE,
    .config_read = blk_config_read_outer,
    .queue_notify = blk_notify,
};

uint64_t bh_blk_features(const bh_blk_core *b)
{
    return BLK_F_SEG_MAX | BLK_F_FLUSH | (b->read_only ? BLK_F_RO : 0);
}

static void blk_stop(void *dev)
{
    bh_virtio_blk *b = dev;
    if (b->core.fd >= 0 && !b->core.read_only)
        fdatasync(b->core.fd); /* what the guest wrote is on the file when the VM is gone */
}

static void blk_destroy(void *dev)
{
    bh_virtio_blk *b = dev;
    bh_blk_core_close(&b->core);
    bh_virtio_teardown(&b->v);
    free(b);
}

static const bh_device_ops blk_device_ops = {.name = "virtio-blk", .stop = blk_stop, .destroy = blk_destroy};

int bh_virtio_blk_create(bh_vm *vm, const bh_virtio_config *common, const bh_virtio_blk_config *config,
                         bh_virtio_blk **out, bh_error *err)
{
    bh_error local;
    if (!err)
        err = &local;
    bh_virtio_blk *b = calloc(1, sizeof *b);
    if (!b) {
        *err = (bh_error){.code = BH_E_NOMEM, .message = "out of memory for virtio-blk"};
        return BH_E_NOMEM;
    }
    b->core.fd = -1;
    int rc = bh_blk_core_open(&b->core, config, err);
    if (rc) {
        bh_blk_core_close(&b->core);
        free(b);
        return rc;
    }
    if ((rc = bh_vm_attach_device(vm, &blk_device_ops, b, err))) {
        bh_blk_core_close(&b->core);
        free(b);
        return rc;
    }
    if ((rc = bh_virtio_init(&b->v, vm, NULL, common, &bh_blk_virtio_ops, b, bh_blk_features(&b->core), err)))
        return rc;
    *out = b;
    return BH_OK;
}

void bh_virtio_blk_stats(const bh_virtio_blk *b, bh_virtio_stats *out)
{
    bh_virtio_stats_read(&b->v, out);
    out->bytes_in = __atomic_load_n(&b->core.bytes_written, __ATOMIC_RELAXED);
    out->bytes_out = __atomic_load_n(&b->core.bytes_read, __ATOMIC_RELAXED);
}
