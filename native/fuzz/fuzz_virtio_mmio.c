/*
 * fuzz_virtio_mmio.c — the virtio-mmio transport (devices/virtio/mmio.c): any sequence of register
 * and config-space accesses, feature negotiation, queue setup on a fake guest memory, resets and
 * queue kicks, on a device with two queues whose handler writes into every writable buffer. Every
 * access stays inside the 4 KiB page (the bus guarantees that); anything else goes.
 *
 * Input: [0] how many 8-byte access records follow; then the records (op u8: 0 read, 1 write,
 * 2 kick queue value%2, 3 write FEATURES_OK-style status; size code u8; offset u16; value u32);
 * the rest is guest memory.
 */
#include <stdint.h>
#include <string.h>

#include "devices/virtio/virtio.h"
#include "fuzz_support.h"

static bh_vq_chain chain;
static bh_virtio v;

static void config_read(void *dev, uint32_t off, uint8_t *buf, uint32_t len)
{
    (void)dev;
    static const uint8_t config[12] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12};
    if (off + len > sizeof config)
        __builtin_trap(); /* the transport checked this */
    memcpy(buf, config + off, len);
}

static int64_t fill(void *dev, bh_vq_chain *c, char *why, size_t why_len)
{
    (void)dev, (void)why, (void)why_len;
    static const uint8_t bytes[64] = {0xaa};
    return (int64_t)bh_iov_copy_to(c->write, c->nwrite, 0, bytes, sizeof bytes);
}

static void notify(void *dev, uint16_t q)
{
    (void)dev;
    bh_virtio_serve(&v, q, &chain, fill, NULL);
}

static const bh_virtio_ops ops = {.kind = "fuzz", .device_id = 42, .num_queues = 2, .config_size = 12,
                                  .config_read = config_read, .queue_notify = notify};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    size_t records = data[0];
    size_t head = 1 + records * 8;
    if (head > size)
        head = size;
    fuzz_mem m;
    fuzz_mem_init(&m, data + head, size - head);
    bh_error err;
    bh_virtio_config cfg = {.name = "fuzz"};
    if (bh_virtio_init(&v, NULL, &m.gmem, &cfg, &ops, NULL, 1ULL << 5, &err))
        __builtin_trap();
    fuzz_in in = {data + 1, head - 1};
    static const uint8_t sizes[4] = {1, 2, 4, 8};
    while (in.n >= 8) {
        uint8_t op = fuzz_u8(&in) % 4, sz = sizes[fuzz_u8(&in) % 4];
        uint16_t off = fuzz_u16(&in) % 0x1000;
        uint32_t value = fuzz_u32(&in);
        if (off + sz > 0x1000)
            off = (uint16_t)(0x1000 - sz);
        if (op == 2) {
            bh_virtio_run_queue(&v, (uint16_t)(value % 2));
            continue;
        }
        if (op == 3) /* the status writes a driver makes, so negotiation gets far often */
            off = 0x70, sz = 4;
        bh_io_access a = {.is_mmio = true, .is_write = op != 0, .size = sz, .offset = off};
        memcpy(a.data, &value, 4);
        if (bh_virtio_mmio_access(&v, &a) != BH_IO_DONE)
            __builtin_trap();
    }
    bh_virtio_teardown(&v);
    fuzz_mem_free(&m);
    return 0;
}
