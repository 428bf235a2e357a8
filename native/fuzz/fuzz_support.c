/* fuzz_support.c — see fuzz_support.h. */
#include "fuzz_support.h"

#include <stdlib.h>
#include <string.h>

void fuzz_mem_init(fuzz_mem *m, const uint8_t *image, size_t len)
{
    m->ram = calloc(1, FUZZ_RAM);
    m->high = calloc(1, FUZZ_HIGH);
    if (!m->ram || !m->high)
        abort();
    memcpy(m->ram, image, len < FUZZ_RAM ? len : FUZZ_RAM);
    m->gmem.count = 2;
    m->gmem.regions[0] = (bh_gmem_region){0, FUZZ_RAM, m->ram};
    m->gmem.regions[1] = (bh_gmem_region){FUZZ_HIGH_GPA, FUZZ_HIGH, m->high};
}

void fuzz_mem_free(fuzz_mem *m)
{
    free(m->ram);
    free(m->high);
}

uint8_t fuzz_u8(fuzz_in *in)
{
    if (!in->n)
        return 0;
    in->n--;
    return *in->p++;
}

uint16_t fuzz_u16(fuzz_in *in)
{
    return (uint16_t)(fuzz_u8(in) | fuzz_u8(in) << 8);
}

uint32_t fuzz_u32(fuzz_in *in)
{
    return (uint32_t)fuzz_u16(in) | (uint32_t)fuzz_u16(in) << 16;
}

static int inside(const fuzz_mem *m, const uint8_t *p, uint32_t len)
{
    uintptr_t a = (uintptr_t)p;
    if (a >= (uintptr_t)m->ram && a + len <= (uintptr_t)m->ram + FUZZ_RAM)
        return 1;
    return a >= (uintptr_t)m->high && a + len <= (uintptr_t)m->high + FUZZ_HIGH;
}

void fuzz_check_chain(const fuzz_mem *m, const bh_vq_chain *c)
{
    uint64_t r = 0, w = 0;
    for (uint16_t i = 0; i < c->nread; i++) {
        if (!inside(m, c->read[i].base, c->read[i].len))
            __builtin_trap();
        r += c->read[i].len;
    }
    for (uint16_t i = 0; i < c->nwrite; i++) {
        if (!inside(m, c->write[i].base, c->write[i].len))
            __builtin_trap();
        w += c->write[i].len;
    }
    if (r != c->read_len || w != c->write_len || c->nread + c->nwrite > BH_VQ_MAX_SEGMENTS)
        __builtin_trap();
}
