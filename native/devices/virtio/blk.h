/*
 * blk.h — the virtio-blk request handler and its backing file, apart from the transport, so the
 * fuzzer can feed it chains over a fake guest memory (fuzz/fuzz_blk.c).
 */
#ifndef BH_DEVICES_VIRTIO_BLK_H
#define BH_DEVICES_VIRTIO_BLK_H

#include <sys/uio.h>

#include "virtio.h"

typedef struct bh_blk_core {
    int fd;
    bool read_only;
    uint64_t capacity_sectors;
    char serial[20];
    size_t serial_len;
    uint64_t bytes_read, bytes_written; /* atomic */
    struct iovec iov[BH_VQ_MAX_SEGMENTS];
} bh_blk_core;

int bh_blk_core_open(bh_blk_core *b, const bh_virtio_blk_config *config, bh_error *err);
void bh_blk_core_close(bh_blk_core *b);
/* Serves one request chain (dev is a bh_blk_core): the bytes written into the chain, or -1 with
 * `why` when the chain cannot be answered at all. */
int64_t bh_blk_handle_request(void *dev, bh_vq_chain *c, char *why, size_t why_len);
uint64_t bh_blk_features(const bh_blk_core *b);

#endif
