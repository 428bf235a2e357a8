/*
 * console.c — virtio-console (virtio 1.2 §5.3) with one port and no multiport: Linux makes it
 * hvc0. Queue 0 (receiveq) carries host input to the guest, queue 1 (transmitq) the guest's
 * output. Input from the host is kept in a bounded ring until the guest posts buffers for it;
 * output goes to the embedder's callback straight from guest memory, on the I/O thread.
 */
#include <stdlib.h>
#include <string.h>

#include "console.h"

#define RX_QUEUE 0
#define TX_QUEUE 1
#define DEFAULT_INPUT_BYTES (64 * 1024)

/* Output: every readable byte of the chain, in order. Writable buffers are not used. */
int64_t bh_console_tx_chain(void *dev, bh_vq_chain *c, char *why, size_t why_len)
{
    bh_console_core *k = dev;
    (void)why, (void)why_len;
    for (uint16_t i = 0; i < c->nread; i++) {
        if (c->read[i].len && k->output)
            k->output(k->opaque, c->read[i].base, c->read[i].len);
    }
    __atomic_fetch_add(&k->bytes_out, c->read_len, __ATOMIC_RELAXED);
    return 0;
}

/* Input: fills receive buffers while host bytes wait. A chain is only taken when there is something
 * to put in it, since a taken chain must be returned. */
bool bh_console_fill_rx(bh_console_core *k, bh_virtq *q, bh_vq_chain *c, char *why, size_t why_len)
{
    pthread_mutex_lock(&k->in_lock);
    bool ok = true;
    while (k->in_len > 0) {
        bh_vq_result r = bh_vq_pop(q, c, why, why_len);
        if (r == BH_VQ_BROKEN) {
            ok = false;
            break;
        }
        if (r == BH_VQ_EMPTY)
            break;
        uint64_t room = c->write_len, put = 0;
        while (put < room && k->in_len > 0) {
            size_t run = k->in_cap - k->in_head; /* contiguous bytes from head */
            if (run > k->in_len)
                run = k->in_len;
            if (run > room - put)
                run = (size_t)(room - put);
            bh_iov_copy_to(c->write, c->nwrite, put, k->in + k->in_head, run);
            k->in_head = (k->in_head + run) % k->in_cap;
            k->in_len -= run;
            put += run;
        }
        bh_vq_push(q, c->head, (uint32_t)put);
        __atomic_fetch_add(&k->bytes_in, put, __ATOMIC_RELAXED);
    }
    pthread_mutex_unlock(&k->in_lock);
    return ok;
}

size_t bh_console_queue_input(bh_console_core *k, const uint8_t *data, size_t len)
{
    pthread_mutex_lock(&k->in_lock);
    size_t n = 0;
    while (n < len && k->in_len < k->in_cap) {
        k->in[(k->in_head + k->in_len) % k->in_cap] = data[n++];
        k->in_len++;
    }
    pthread_mutex_unlock(&k->in_lock);
    return n;
}

int bh_console_core_init(bh_console_core *k, const bh_virtio_console_config *config, bh_error *err)
{
    k->in_cap = config && config->input_bytes ? config->input_bytes : DEFAULT_INPUT_BYTES;
    k->in = malloc(k->in_cap);
    if (!k->in) {
        *err = (bh_error){.code = BH_E_NOMEM, .message = "out of memory for the console's input ring"};
        return BH_E_NOMEM;
    }
    pthread_mutex_init(&k->in_lock, NULL);
    k->lock_ready = true;
    if (config) {
        k->output = config->output;
        k->opaque = config->opaque;
    }
    return BH_OK;
}

void bh_console_core_free(bh_console_core *k)
{
    if (k->lock_ready)
        pthread_mutex_destroy(&k->in_lock);
    free(k->in);
    k->in = NULL;
}

/* --------------------------------------------------------------------------------------------- */

struct bh_virtio_console {
    bh_virtio v;
    bh_console_core core;
    bh_vq_chain chain;
};

static void console_notify(void *dev, uint16_t q)
{
    bh_virtio_console *k = dev;
    if (q == TX_QUEUE) {
        bh_virtio_serve(&k->v, q, &k->chain, bh_console_tx_chain, &k->core);
        return;
    }
    char why[160] = "";
    bh_virtq *vq = &k->v.queues[RX_QUEUE].vq;
    bool ok = bh_console_fill_rx(&k->core, vq, &k->chain, why, sizeof why);
    bh_virtio_notify_used(&k->v, vq);
    if (!ok)
        bh_virtio_fail(&k->v, "receive queue: %s", why);
}

static const bh_virtio_ops console_virtio_ops = {
    .kind = "virtio-console",
    .device_id = BH_VIRTIO_ID_CONSOLE,
    .num_queues = 2,
    .config_size = 0,
    .queue_notify = console_notify,
};

static void console_destroy(void *dev)
{
    bh_virtio_console *k = dev;
    bh_console_core_free(&k->core);
    bh_virtio_teardown(&k->v);
    free(k);
}

static const bh_device_ops console_device_ops = {.name = "virtio-console", .destroy = console_destroy};

int bh_virtio_console_create(bh_vm *vm, const bh_virtio_config *common, const bh_virtio_console_config *config,
                             bh_virtio_console **out, bh_error *err)
{
    bh_error local;
    if (!err)
        err = &local;
    bh_virtio_console *k = calloc(1, sizeof *k);
    if (!k) {
        *err = (bh_error){.code = BH_E_NOMEM, .message = "out of memory for virtio-console"};
        return BH_E_NOMEM;
    }
    int rc = bh_console_core_init(&k->core, config, err);
    if (!rc && (rc = bh_vm_attach_device(vm, &console_device_ops, k, err)) != 0)
        bh_console_core_free(&k->core);
    if (rc) {
        free(k);
        return rc;
    }
    if ((rc = bh_virtio_init(&k->v, vm, NULL, common, &console_virtio_ops, k, 0, err)))
        return rc;
    *out = k;
    return BH_OK;
}

size_t bh_virtio_console_input(bh_virtio_console *k, const uint8_t *data, size_t len)
{
    size_t n = bh_console_queue_input(&k->core, data, len);
    if (n)
        bh_virtio_kick(&k->v, RX_QUEUE); /* the I/O thread moves it into the guest's buffers */
    return n;
}

void bh_virtio_console_stats(const bh_virtio_console *k, bh_virtio_stats *out)
{
    bh_virtio_stats_read(&k->v, out);
    out->bytes_in = __atomic_load_n(&k->core.bytes_out, __ATOMIC_RELAXED);
    out->bytes_out = __atomic_load_n(&k->core.bytes_in, __ATOMIC_RELAXED);
}
