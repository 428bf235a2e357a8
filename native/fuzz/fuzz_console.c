/*
 * fuzz_console.c — virtio-console's two queues (devices/virtio/console.c) over a fake guest memory:
 * the transmit queue (queue B: the guest's output) and the receive queue (queue A: host input into
 * the guest's buffers), with host input of the input's choosing.
 *
 * Header: [0] queue size code; [1] flags (bit 0 EVENT_IDX, bit 1 INDIRECT_DESC); [2..3] how many
 * bytes of host input to queue (taken from the end of the input, cycled).
 */
#include <stdint.h>
#include <string.h>

#include "devices/virtio/console.h"
#include "fuzz_support.h"

static bh_vq_chain chain;
static uint64_t output_bytes;

static void output(void *opaque, const uint8_t *data, size_t len)
{
    (void)opaque;
    volatile uint8_t sink = 0;
    for (size_t i = 0; i < len; i++)
        sink ^= data[i]; /* every byte handed out must be readable */
    (void)sink;
    output_bytes += len;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 4)
        return 0;
    fuzz_mem m;
    fuzz_mem_init(&m, data + 4, size - 4);
    bh_console_core k = {0};
    bh_error err;
    bh_virtio_console_config cfg = {.output = output, .input_bytes = 4096};
    if (bh_console_core_init(&k, &cfg, &err))
        __builtin_trap();
    uint16_t num = fuzz_queue_size(data[0]);
    bool event_idx = data[1] & 1, indirect = data[1] & 2;
    char why[160];
    bh_virtq rx = {0}, tx = {0};
    bool rx_ok = bh_vq_enable(&rx, &m.gmem, num, FUZZ_QA_DESC, FUZZ_QA_AVAIL, FUZZ_QA_USED, event_idx, indirect, why, sizeof why);
    bool tx_ok = bh_vq_enable(&tx, &m.gmem, num, FUZZ_QB_DESC, FUZZ_QB_AVAIL, FUZZ_QB_USED, event_idx, indirect, why, sizeof why);
    size_t want = (size_t)(data[2] | data[3] << 8);
    for (size_t i = 0; i < want; i++) {
        uint8_t b = data[size - 1 - i % size];
        bh_console_queue_input(&k, &b, 1);
    }
    if (k.in_len > k.in_cap)
        __builtin_trap();
    for (unsigned turn = 0; tx_ok && turn < num + 2u; turn++) {
        if (bh_vq_pop(&tx, &chain, why, sizeof why) != BH_VQ_CHAIN)
            break;
        fuzz_check_chain(&m, &chain);
        bh_vq_push(&tx, chain.head, (uint32_t)bh_console_tx_chain(&k, &chain, why, sizeof why));
    }
    if (rx_ok)
        bh_console_fill_rx(&k, &rx, &chain, why, sizeof why);
    if (k.in_len > k.in_cap)
        __builtin_trap();
    bh_console_core_free(&k);
    fuzz_mem_free(&m);
    return 0;
}
