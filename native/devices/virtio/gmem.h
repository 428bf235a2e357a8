/*
 * gmem.h — the device models' view of guest memory: a list of RAM regions and their host
 * mappings, and the only way a device turns a guest-physical address into a pointer.
 *
 * The guest is hostile and runs concurrently with the device: every address and length comes
 * from it, and it may rewrite a structure while the device reads it. So:
 *  - bh_gmem_ptr checks the whole range lies inside one region, with overflow-safe arithmetic;
 *  - structures are read once into local copies (bh_gmem_read_once) and never re-read, so a
 *    value cannot change between its check and its use;
 *  - ring indices are loaded with acquire and published with release ordering (the guest reads
 *    the used ring's entries only after it sees the index), with a full fence where the virtio
 *    spec asks for one (between publishing used->idx and reading used_event).
 * A bh_gmem needs no VM: the fuzzers build one over a plain buffer.
 */
#ifndef BH_DEVICES_VIRTIO_GMEM_H
#define BH_DEVICES_VIRTIO_GMEM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "bulkhead.h"

#define BH_GMEM_MAX_REGIONS 4

typedef struct bh_gmem_region {
    uint64_t gpa;
    uint64_t size;
    uint8_t *host;
} bh_gmem_region;

typedef struct bh_gmem {
    bh_gmem_region regions[BH_GMEM_MAX_REGIONS];
    size_t count;
} bh_gmem;

/* Fills `m` with the RAM regions of `vm` (call after bh_vm_create; valid until bh_vm_destroy). */
int bh_gmem_from_vm(bh_gmem *m, bh_vm *vm, bh_error *err);

/* A host pointer to [gpa, gpa + len) if all of it lies in one region (len 0: gpa inside a region,
 * or at its end), else NULL. */
static inline uint8_t *bh_gmem_ptr(const bh_gmem *m, uint64_t gpa, uint64_t len)
{
    for (size_t i = 0; i < m->count; i++) {
        const bh_gmem_region *r = &m->regions[i];
        if (gpa < r->gpa)
            continue;
        uint64_t off = gpa - r->gpa;
        if (off > r->size || len > r->size - off)
            continue;
        return r->host + off;
    }
    return NULL;
}

/* One snapshot of guest bytes: the compiler may not read `src` again after this. */
static inline void bh_gmem_read_once(void *dst, const void *src, size_t len)
{
    memcpy(dst, src, len);
    __atomic_signal_fence(__ATOMIC_SEQ_CST);
}

/* Naturally aligned 16-bit ring fields (alignment is checked when a queue is enabled). */
static inline uint16_t bh_gmem_load16_acquire(const uint8_t *p)
{
    return __atomic_load_n((const uint16_t *)(const void *)p, __ATOMIC_ACQUIRE);
}
static inline uint16_t bh_gmem_load16(const uint8_t *p)
{
    return __atomic_load_n((const uint16_t *)(const void *)p, __ATOMIC_RELAXED);
}
static inline void bh_gmem_store16_release(uint8_t *p, uint16_t v)
{
    __atomic_store_n((uint16_t *)(void *)p, v, __ATOMIC_RELEASE);
}
static inline void bh_gmem_store16(uint8_t *p, uint16_t v)
{
    __atomic_store_n((uint16_t *)(void *)p, v, __ATOMIC_RELAXED);
}
static inline void bh_gmem_store32(uint8_t *p, uint32_t v)
{
    __atomic_store_n((uint32_t *)(void *)p, v, __ATOMIC_RELAXED);
}
static inline void bh_gmem_full_fence(void)
{
    __atomic_thread_fence(__ATOMIC_SEQ_CST);
}

#endif
