/*
 * fuzz_blk.c — virtio-blk's request handler (devices/virtio/blk.c) on chains the virtqueue walker pops
 * from a fake guest memory, backed by a 64 KiB memfd: headers of any type, sector, length and
 * layout. It may answer IOERR or UNSUPP, or refuse a chain that cannot be answered; it may never write
 * outside the chain, report more bytes than the chain holds, or touch the file outside the disk.
 *
 * Header: [0] queue size code; [1] bit 0 EVENT_IDX, bit 1 INDIRECT_DESC, bit 2 read-only disk.
 */
#define _GNU_SOURCE
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "devices/virtio/blk.h"
#include "fuzz_support.h"

#define DISK_BYTES (64 * 1024)

static bh_vq_chain chain;
static bh_blk_core disk;
static int disk_fd = -1;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2)
        return 0;
    if (disk_fd < 0) {
        disk_fd = memfd_create("fuzz-blk", MFD_CLOEXEC);
        if (disk_fd < 0 || ftruncate(disk_fd, DISK_BYTES) != 0)
            __builtin_trap();
    }
    memset(&disk, 0, sizeof disk);
    disk.fd = disk_fd;
    disk.capacity_sectors = DISK_BYTES / 512;
    disk.read_only = data[1] & 4;
    memcpy(disk.serial, "fuzz-disk", 9);
    disk.serial_len = 9;

    fuzz_mem m;
    fuzz_mem_init(&m, data + 2, size - 2);
    uint16_t num = fuzz_queue_size(data[0]);
    char why[160];
    bh_virtq q = {0};
    if (bh_vq_enable(&q, &m.gmem, num, FUZZ_QA_DESC, FUZZ_QA_AVAIL, FUZZ_QA_USED, data[1] & 1, data[1] & 2, why,
                     sizeof why)) {
        for (unsigned turn = 0; turn < num + 2u; turn++) {
            if (bh_vq_pop(&q, &chain, why, sizeof why) != BH_VQ_CHAIN)
                break;
            fuzz_check_chain(&m, &chain);
            int64_t written = bh_blk_handle_request(&disk, &chain, why, sizeof why);
            if (written < 0)
                break; /* the device would be failed */
            if ((uint64_t)written > chain.write_len)
                __builtin_trap();
            bh_vq_push(&q, chain.head, (uint32_t)written);
        }
    }
    if (lseek(disk_fd, 0, SEEK_END) != DISK_BYTES)
        __builtin_trap(); /* a write past the disk would have grown the file */
    fuzz_mem_free(&m);
    return 0;
}
