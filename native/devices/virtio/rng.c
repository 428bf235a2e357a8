/*
 * rng.c — virtio-rng (virtio 1.2 §5.4): one queue of device-writable buffers, filled from
 * getrandom(2). A buffer the guest also marked readable is only ever written where it is writable.
 */
#include <errno.h>
#include <stdlib.h>
#include <sys/random.h>

#include "virtio.h"

#define RNG_MAX_PER_REQUEST (64 * 1024) /* bounds one request's time on the I/O thread */

struct bh_virtio_rng {
    bh_virtio v;
    bh_vq_chain chain;
};

static int64_t rng_fill(void *opaque, bh_vq_chain *c, char *why, size_t why_len)
{
    bh_virtio_rng *r = opaque;
    (void)why, (void)why_len;
    uint64_t done = 0;
    for (uint16_t i = 0; i < c->nwrite && done < RNG_MAX_PER_REQUEST; i++) {
        uint32_t want = c->write[i].len;
        if (want > RNG_MAX_PER_REQUEST - done)
            want = (uint32_t)(RNG_MAX_PER_REQUEST - done);
        uint32_t got = 0;
        while (got < want) {
            ssize_t n = getrandom(c->write[i].base + got, want - got, 0);
            if (n < 0 && errno == EINTR)
                continue;
            if (n <= 0)
                break;
            got += (uint32_t)n;
        }
        done += got;
        if (got < want)
            break; /* getrandom failed: return what we have */
    }
    bh_virtio_count(&r->v.stats.bytes_out, done);
    return (int64_t)done;
}

static void rng_notify(void *dev, uint16_t q)
{
    bh_virtio_rng *r = dev;
    bh_virtio_serve(&r->v, q, &r->chain, rng_fill, r);
}

static const bh_virtio_ops rng_virtio_ops = {
    .kind = "virtio-rng",
    .device_id = BH_VIRTIO_ID_RNG,
    .num_queues = 1,
    .queue_notify = rng_notify,
};

static void rng_destroy(void *dev)
{
    bh_virtio_rng *r = dev;
    bh_virtio_teardown(&r->v);
    free(r);
}

static const bh_device_ops rng_device_ops = {.name = "virtio-rng", .destroy = rng_destroy};

int bh_virtio_rng_create(bh_vm *vm, const bh_virtio_config *common, bh_virtio_rng **out, bh_error *err)
{
    bh_virtio_rng *r = calloc(1, sizeof *r);
    if (!r) {
        if (err)
            *err = (bh_error){.code = BH_E_NOMEM, .message = "out of memory for virtio-rng"};
        return BH_E_NOMEM;
    }
    /* Owned by the VM before anything points at it: a half-made device is freed with the VM. */
    int rc = bh_vm_attach_device(vm, &rng_device_ops, r, err);
    if (rc) {
        free(r);
        return rc;
    }
    if ((rc = bh_virtio_init(&r->v, vm, NULL, common, &rng_virtio_ops, r, 0, err)))
        return rc;
    *out = r;
    return BH_OK;
}

void bh_virtio_rng_stats(const bh_virtio_rng *r, bh_virtio_stats *out)
{
    bh_virtio_stats_read(&r->v, out);
}
