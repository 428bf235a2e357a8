/*
 * fuzz_support.h — what the device fuzzers share: a fake guest memory that needs no VM, laid out from
 * the fuzzer's input, and a little reader over the input bytes.
 *
 * Guest RAM is FUZZ_RAM bytes at guest-physical 0 (a heap buffer of exactly that size, so ASan sees
 * any access past it), plus a small second region at FUZZ_HIGH_GPA so buffers that straddle regions
 * are exercised. The input's bytes after a target's header are copied to RAM from address 0, so the
 * fuzzer writes the descriptor tables, rings and buffers itself:
 *   queue A: descriptors 0x0000, driver area 0x0800, device area 0x0c00
 *   queue B: descriptors 0x1000, driver area 0x1800, device area 0x1c00
 *   buffers anywhere else (RAM is 64 KiB; addresses beyond it are outside RAM).
 * Rings may overlap (queue sizes up to 256 make them): a hostile driver may do that too.
 */
#ifndef BH_FUZZ_SUPPORT_H
#define BH_FUZZ_SUPPORT_H

#include <stddef.h>
#include <stdint.h>

#include "devices/virtio/gmem.h"
#include "devices/virtio/virtqueue.h"

#define FUZZ_RAM 0x10000u
#define FUZZ_HIGH_GPA 0x100000u
#define FUZZ_HIGH 0x1000u
#define FUZZ_QA_DESC 0x0000u
#define FUZZ_QA_AVAIL 0x0800u
#define FUZZ_QA_USED 0x0c00u
#define FUZZ_QB_DESC 0x1000u
#define FUZZ_QB_AVAIL 0x1800u
#define FUZZ_QB_USED 0x1c00u

typedef struct fuzz_mem {
    uint8_t *ram, *high;
    bh_gmem gmem;
} fuzz_mem;

typedef struct fuzz_in {
    const uint8_t *p;
    size_t n;
} fuzz_in;

/* RAM filled from `image` (the rest zero). */
void fuzz_mem_init(fuzz_mem *m, const uint8_t *image, size_t len);
void fuzz_mem_free(fuzz_mem *m);

uint8_t fuzz_u8(fuzz_in *in);
uint16_t fuzz_u16(fuzz_in *in);
uint32_t fuzz_u32(fuzz_in *in);

/* The queue size a header byte selects: 1 .. 256, powers of two. */
static inline uint16_t fuzz_queue_size(uint8_t b)
{
    return (uint16_t)(1u << (b % 9));
}

/* Every buffer of a chain lies inside the fake memory (the walker's promise; trap otherwise). */
void fuzz_check_chain(const fuzz_mem *m, const bh_vq_chain *c);

#endif
