/*
 * fuzz_power.c — the power device's register (devices/power.c): any sequence of accesses at any
 * offset, width and value. Only an aligned 32-bit write of a known command at 0x8 may do anything;
 * reads never return more than the access's width.
 *
 * Input: records of 8 bytes: offset (u16, within the 4 KiB page), size (u8: 1, 2, 4 or 8), write
 * (u8 bit 0), value (u32).
 */
#include <stdint.h>
#include <string.h>

#include "devices/power.h"
#include "fuzz_support.h"

static unsigned requests;

static void on_request(void *opaque, bh_power_request r, uint32_t arg, uint64_t ns)
{
    (void)opaque, (void)arg, (void)ns;
    if (r != BH_POWER_REQUEST_POWER_OFF && r != BH_POWER_REQUEST_REBOOT && r != BH_POWER_REQUEST_MARKER)
        __builtin_trap();
    requests++;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    bh_power_config cfg = {.on_request = on_request};
    bh_power_core p;
    bh_power_core_init(&p, &cfg);
    fuzz_in in = {data, size};
    while (in.n >= 8) {
        static const uint8_t sizes[4] = {1, 2, 4, 8};
        uint16_t off = fuzz_u16(&in) % 0x1000;
        uint8_t sz = sizes[fuzz_u8(&in) % 4];
        bool write = fuzz_u8(&in) & 1;
        uint32_t value = fuzz_u32(&in);
        if (off + sz > 0x1000)
            off = (uint16_t)(0x1000 - sz); /* the bus never delivers an access that leaves the page */
        bh_io_access a = {.is_mmio = true, .is_write = write, .size = sz, .addr = BH_POWER_MMIO_BASE + off, .offset = off};
        memcpy(a.data, &value, 4);
        unsigned before = requests;
        if (bh_power_access(&p, &a) != BH_IO_DONE)
            __builtin_trap();
        bool command = write && sz == 4 && off == BH_POWER_REG_COMMAND && (value & 0xff) >= 1 && (value & 0xff) <= 3;
        if ((requests != before) != command)
            __builtin_trap();
        if (!write) {
            uint64_t got = 0;
            memcpy(&got, a.data, sz);
            if (sz < 8 && (got >> (8 * sz)) != 0)
                __builtin_trap();
        }
    }
    return 0;
}
