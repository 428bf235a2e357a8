/*
 * console.h — virtio-console's input ring and its two queue handlers, apart from the transport,
 * so the fuzzer can drive them over a fake guest memory (fuzz/fuzz_console.c).
 */
#ifndef BH_DEVICES_VIRTIO_CONSOLE_H
#define BH_DEVICES_VIRTIO_CONSOLE_H

#include <pthread.h>

#include "virtio.h"

typedef struct bh_console_core {
    bh_console_output_fn output;
    void *opaque;
    pthread_mutex_t in_lock; /* the input ring: embedder threads add, the I/O thread takes */
    bool lock_ready;
    uint8_t *in;
    size_t in_cap, in_head, in_len;
    uint64_t bytes_in, bytes_out; /* atomic: host -> guest, guest -> host */
} bh_console_core;

int bh_console_core_init(bh_console_core *k, const bh_virtio_console_config *config, bh_error *err);
void bh_console_core_free(bh_console_core *k);
size_t bh_console_queue_input(bh_console_core *k, const uint8_t *data, size_t len);
/* The receive queue: moves queued input into the guest's buffers. False (with `why`) if the
 * queue is broken. */
bool bh_console_fill_rx(bh_console_core *k, bh_virtq *q, bh_vq_chain *c, char *why, size_t why_len);
/* The transmit queue's chain handler (for bh_virtio_serve; dev is a bh_console_core). */
int64_t bh_console_tx_chain(void *dev, bh_vq_chain *c, char *why, size_t why_len);

#endif
