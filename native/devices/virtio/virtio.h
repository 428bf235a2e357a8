/*
 * virtio.h — what the virtio device files (blk.c, rng.c, console.c, vsock*.c) share: the
 * virtio-mmio transport (mmio.c) and the interface a device gives it.
 *
 * Threads and locks, per device:
 *  - vCPU threads call bh_virtio_mmio_access for the device's registers. `regs_lock` guards the
 *    register file (status, features, selectors, queue configuration) and is held only briefly.
 *  - The I/O thread serves the queues: a queue's ioeventfd fires, and bh_virtio_run_queue calls
 *    the device's queue_notify with `work_lock` held. A device serves at most a budget of chains
 *    per call and asks to be called again (bh_virtio_kick), so the lock is never held for long.
 *  - Enabling a queue, a driver reset and DRIVER_OK take `work_lock` (then `regs_lock`), so they
 *    never race with queue processing. Lock order: work_lock, then regs_lock, then a device's own.
 * Nothing here needs a VM: with vm == NULL (the fuzzers) the transport works on a given bh_gmem,
 * interrupts are only counted, and notifications are delivered by calling bh_virtio_run_queue.
 */
#ifndef BH_DEVICES_VIRTIO_VIRTIO_H
#define BH_DEVICES_VIRTIO_VIRTIO_H

#include <pthread.h>

#include "bulkhead.h"
#include "virtqueue.h"

#define BH_VIRTIO_MAX_QUEUES 3
#define BH_VIRTIO_QUEUE_MAX 256   /* QueueNumMax every device offers */
#define BH_VIRTIO_BUDGET 64       /* chains per queue_notify call before yielding the work lock */

/* Device IDs (virtio 1.2 §5). */
#define BH_VIRTIO_ID_BLOCK 2
#define BH_VIRTIO_ID_CONSOLE 3
#define BH_VIRTIO_ID_RNG 4
#define BH_VIRTIO_ID_VSOCK 19

/* Feature bits the transport offers for every device. */
#define BH_VIRTIO_F_RING_INDIRECT_DESC (1ULL << 28)
#define BH_VIRTIO_F_RING_EVENT_IDX (1ULL << 29)
#define BH_VIRTIO_F_VERSION_1 (1ULL << 32)

/* Device status bits (§2.1). */
#define BH_VIRTIO_STATUS_ACKNOWLEDGE 1u
#define BH_VIRTIO_STATUS_DRIVER 2u
#define BH_VIRTIO_STATUS_DRIVER_OK 4u
#define BH_VIRTIO_STATUS_FEATURES_OK 8u
#define BH_VIRTIO_STATUS_NEEDS_RESET 0x40u
#define BH_VIRTIO_STATUS_FAILED 0x80u

#define BH_VIRTIO_INT_USED 1u
#define BH_VIRTIO_INT_CONFIG 2u

typedef struct bh_virtio bh_virtio;

typedef struct bh_virtio_ops {
    const char *kind;          /* "virtio-blk", ... */
    uint32_t device_id;
    uint16_t num_queues;
    uint32_t config_size;
    /* Copies len bytes of the config space at offset (offset + len <= config_size). regs_lock held. */
    void (*config_read)(void *dev, uint32_t offset, uint8_t *buf, uint32_t len);
    /* Queue `q` has work (a kick, or bh_virtio_kick). I/O thread, work_lock held, the device is
     * running (DRIVER_OK, not broken) and the queue enabled. */
    void (*queue_notify)(void *dev, uint16_t q);
    /* Optional, work_lock held: the driver set DRIVER_OK / reset the device (queues already off). */
    void (*activate)(void *dev);
    void (*reset)(void *dev);
} bh_virtio_ops;

typedef struct bh_virtio_queue {
    bh_virtq vq;
    uint16_t num;
    uint64_t desc, avail, used;
    bool ready;
    int notify_fd;             /* the ioeventfd (or our own eventfd); -1 without a VM */
    bool own_notify_fd;        /* not the VM's: closed by bh_virtio_teardown */
    struct bh_virtio *v;       /* for the I/O-thread handler */
    uint16_t index;
} bh_virtio_queue;

struct bh_virtio {
    const bh_virtio_ops *ops;
    void *dev;
    bh_vm *vm;                 /* NULL in the fuzzers */
    bh_gmem mem;
    bh_virtio_config config;
    char name[32];
    uint64_t features;         /* offered: the device's | the transport's */

    pthread_mutex_t regs_lock;
    pthread_mutex_t work_lock;
    bool locks_ready;

    /* regs_lock */
    uint32_t status;
    uint32_t device_features_sel, driver_features_sel;
    uint64_t driver_features;
    uint32_t queue_sel;
    bool broken;

    uint32_t interrupt_status; /* atomic */
    int irq_fd;                /* irqfd, -1 without a VM */
    bh_virtio_queue queues[BH_VIRTIO_MAX_QUEUES];
    bh_virtio_stats stats;     /* atomic counters */
};

/* Sets up the transport. With a VM: registers the MMIO page, one ioeventfd per queue (watched by the
 * I/O thread) and an irqfd. Without (vm == NULL): works on *mem. */
int bh_virtio_init(bh_virtio *v, bh_vm *vm, const bh_gmem *mem, const bh_virtio_config *config,
                   const bh_virtio_ops *ops, void *dev, uint64_t device_features, bh_error *err);
void bh_virtio_teardown(bh_virtio *v);

/* The MMIO handler for the device's 4 KiB page (also driven directly by the fuzzers). */
bh_io_result bh_virtio_mmio_access(void *opaque, bh_io_access *a);
/* Serves a notification of queue q: what the I/O thread does when the queue's ioeventfd fires. */
void bh_virtio_run_queue(bh_virtio *v, uint16_t q);
/* From a device: have queue q served again soon (more work than the budget, or new host data). */
void bh_virtio_kick(bh_virtio *v, uint16_t q);

/* From queue_notify: after pushing chains, interrupt the driver if it asked for that. */
void bh_virtio_notify_used(bh_virtio *v, bh_virtq *q);
/* Marks the device DEVICE_NEEDS_RESET, tells the driver (config interrupt) and the embedder. */
void bh_virtio_fail(bh_virtio *v, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Whether the device is live (DRIVER_OK, not broken): takes regs_lock. */
bool bh_virtio_running(bh_virtio *v);
bool bh_virtio_feature(const bh_virtio *v, uint64_t bit);

/* The common loop over one queue: pops up to the budget, calls handle() for each chain (which
 * returns the bytes written, or -1 when the chain is malformed: the device is then failed with the
 * reason it put in `why`), pushes, interrupts. Returns false if the device broke. */
typedef int64_t (*bh_virtio_chain_fn)(void *dev, bh_vq_chain *chain, char *why, size_t why_len);
bool bh_virtio_serve(bh_virtio *v, uint16_t q, bh_vq_chain *chain, bh_virtio_chain_fn handle, void *dev);

static inline void bh_virtio_count(uint64_t *counter, uint64_t n)
{
    __atomic_fetch_add(counter, n, __ATOMIC_RELAXED);
}
void bh_virtio_stats_read(const bh_virtio *v, bh_virtio_stats *out);

#endif
