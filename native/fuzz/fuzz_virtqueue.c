/*
 * fuzz_virtqueue.c — the split-virtqueue walker (devices/virtio/virtqueue.c) over a fake guest memory
 * (fuzz_support.h): the input is a 2-byte header (queue size, feature flags) and then the memory the
 * driver controls, rings and buffers included. Every chain the walker hands out must lie inside
 * guest memory, and no input may make it loop, overrun, or crash.
 *
 * Header: [0] queue size code (1 << (b % 9)); [1] bit 0 EVENT_IDX, bit 1 INDIRECT_DESC,
 * bits 2..7 how many bytes each popped chain claims to have written (scaled).
 */
#include <stdint.h>
#include <string.h>

#include "fuzz_support.h"

static bh_vq_chain chain;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2)
        return 0;
    fuzz_mem m;
    fuzz_mem_init(&m, data + 2, size - 2);
    uint16_t num = fuzz_queue_size(data[0]);
    bool event_idx = data[1] & 1, indirect = data[1] & 2;
    char why[160];
    bh_virtq q = {0};
    if (bh_vq_enable(&q, &m.gmem, num, FUZZ_QA_DESC, FUZZ_QA_AVAIL, FUZZ_QA_USED, event_idx, indirect, why, sizeof why)) {
        uint8_t scratch[512];
        for (unsigned turn = 0; turn < 2u * num + 4; turn++) {
            bh_vq_notifications_off(&q);
            bh_vq_result r = bh_vq_pop(&q, &chain, why, sizeof why);
            if (r == BH_VQ_BROKEN)
                break;
            if (r == BH_VQ_EMPTY) {
                bool broken = false;
                if (!bh_vq_notifications_on(&q, &broken, why, sizeof why))
                    break;
                continue;
            }
            fuzz_check_chain(&m, &chain);
            if (chain.head >= num)
                __builtin_trap();
            /* What a device does with a chain: read some of it, write some of it. */
            bh_iov_copy_from(chain.read, chain.nread, data[1] >> 2, scratch, sizeof scratch);
            size_t put = bh_iov_copy_to(chain.write, chain.nwrite, 0, scratch, sizeof scratch);
            if (put > chain.write_len)
                __builtin_trap();
            bh_vq_push(&q, chain.head, (uint32_t)put);
            bh_vq_need_interrupt(&q);
        }
    }
    fuzz_mem_free(&m);
    return 0;
}
