/* test_guest_io.c — guests reach device handlers through port I/O and MMIO, in every CPU mode. */
#include <stdlib.h>
#include <string.h>

#include "guests.h"
#include "helpers.h"
#include "tests.h"

#define MIB (1024ULL * 1024ULL)

/* Real mode: `out 0x10` delivers 0x42, `in 0x11` returns the handler's value, and the guest echoes
 * it to port 0x12 before HLT. */
void test_real_mode_port_io(void)
{
    test_vm t;
    bh_error e = {0};
    io_log log;
    iolog_init(&log, 0x99);
    if (!tvm_create(&t, 2 * MIB, 1, false))
        return;
    REQUIRE_OK(bh_vm_register_pio(t.vm, 0x10, 3, iolog_handler, &log, &e));
    REQUIRE_OK(gb_load(t.vm, 0x1000, g_real_io, g_real_io_len, &e));
    REQUIRE_OK(gb_real_mode(t.vm, 0, 0x1000, &e));
    REQUIRE_OK(bh_vm_start(t.vm, &e));
    REQUIRE(tvm_wait_exits(&t, 1, 10));
    const bh_vcpu_exit *x = tvm_exit_of(&t, 0);
    REQUIRE(x);
    CHECK(x->reason == BH_EXIT_HLT);
    CHECK_EQ_U64(x->rip, 0x1000 + g_real_io_len);
    REQUIRE(log.count == 3);
    CHECK(log.entries[0].is_write && log.entries[0].addr == 0x10 && log.entries[0].size == 1);
    CHECK_EQ_U64(log.entries[0].offset, 0);
    CHECK_EQ_U64(access_value(&log.entries[0]), 0x42);
    CHECK(!log.entries[1].is_write && log.entries[1].addr == 0x11 && log.entries[1].offset == 1);
    CHECK(log.entries[2].is_write && log.entries[2].addr == 0x12 && log.entries[2].offset == 2);
    CHECK_EQ_U64(access_value(&log.entries[2]), 0x99);
    bh_vm_stats st;
    bh_vm_get_stats(t.vm, &st);
    CHECK_EQ_U64(st.pio_exits, 3);
    CHECK_EQ_U64(st.unhandled_pio, 0);
    REQUIRE_OK(bh_vm_stop(t.vm, &e)); /* joins the thread */
    CHECK(bh_vm_get_state(t.vm) == BH_VM_STOPPED);
    CHECK(t.state_count == 2 && t.states[0] == BH_VM_RUNNING && t.states[1] == BH_VM_STOPPED);
    tvm_destroy(&t);
}

/* `rep outsb` (4 bytes from 0x500) and `rep insw` (3 words to 0x600): each element is one call, in
 * order, whether KVM batches them (count > 1 at data_offset) or not. */
void test_real_mode_string_io(void)
{
    test_vm t;
    bh_error e = {0};
    io_log log;
    iolog_init(&log, 0xbeef);
    if (!tvm_create(&t, 2 * MIB, 1, false))
        return;
    const uint8_t src[4] = {0xa1, 0xb2, 0xc3, 0xd4};
    REQUIRE_OK(bh_mem_write(t.vm, 0x500, src, sizeof src, &e));
    REQUIRE_OK(bh_vm_register_pio(t.vm, 0x20, 2, iolog_handler, &log, &e)); /* `ins` of words */
    REQUIRE_OK(gb_load(t.vm, 0x1000, g_real_string, g_real_string_len, &e));
    REQUIRE_OK(gb_real_mode(t.vm, 0, 0x1000, &e));
    REQUIRE_OK(bh_vm_start(t.vm, &e));
    REQUIRE(tvm_wait_exits(&t, 1, 10));
    const bh_vcpu_exit *x = tvm_exit_of(&t, 0);
    REQUIRE(x);
    CHECK(x->reason == BH_EXIT_HLT);
    REQUIRE(log.count == 7);
    for (int i = 0; i < 4; i++) {
        CHECK(log.entries[i].is_write && log.entries[i].size == 1);
        CHECK_EQ_U64(access_value(&log.entries[i]), src[i]);
    }
    for (int i = 4; i < 7; i++)
        CHECK(!log.entries[i].is_write && log.entries[i].size == 2);
    uint16_t got[3];
    REQUIRE_OK(bh_mem_read(t.vm, 0x600, got, sizeof got, &e));
    for (int i = 0; i < 3; i++)
        CHECK_EQ_U64(got[i], 0xbeef);
    bh_vm_stats st;
    bh_vm_get_stats(t.vm, &st);
    tap_diag("string I/O: 7 elements arrived in %llu port I/O exits", (unsigned long long)st.pio_exits);
    tvm_destroy(&t);
}

/* 64-bit guest at `cpl`: 16-bit out (0x10), 32-bit in (0x14), 32-bit echo (0x18), then the done
 * port. */
static void long_mode_port_io(int cpl)
{
    test_vm t;
    bh_error e = {0};
    io_log log;
    iolog_init(&log, 0xcafef00d);
    if (!tvm_create(&t, 2 * MIB, 1, false))
        return;
    REQUIRE_OK(register_done_port(&t, &e));
    REQUIRE_OK(bh_vm_register_pio(t.vm, 0x10, 2, iolog_handler, &log, &e));
    REQUIRE_OK(bh_vm_register_pio(t.vm, 0x14, 8, iolog_handler, &log, &e));
    REQUIRE_OK(gb_long_mode_tables(t.vm, &e));
    REQUIRE_OK(gb_load(t.vm, GB_CODE, g_lm_io, g_lm_io_len, &e));
    REQUIRE_OK(gb_long_mode(t.vm, 0, GB_CODE, GB_STACK, cpl, &e));
    REQUIRE_OK(bh_vm_start(t.vm, &e));
    REQUIRE(tvm_wait_exits(&t, 1, 10));
    const bh_vcpu_exit *x = tvm_exit_of(&t, 0);
    REQUIRE(x);
    CHECK(x->reason == BH_EXIT_GUEST_REQUEST);
    REQUIRE(log.count == 3);
    CHECK(log.entries[0].size == 2 && log.entries[0].is_write);
    CHECK_EQ_U64(access_value(&log.entries[0]), 0x1234);
    CHECK(log.entries[1].size == 4 && !log.entries[1].is_write);
    CHECK(log.entries[2].size == 4 && log.entries[2].is_write);
    CHECK_EQ_U64(access_value(&log.entries[2]), 0xcafef00d);
    REQUIRE_OK(bh_vm_stop(t.vm, &e));
    bh_sregs s;
    REQUIRE_OK(bh_vcpu_get_sregs(t.vm, 0, &s, &e));
    CHECK(s.cs.dpl == cpl && s.cs.l == 1);
    CHECK((s.efer & 0x500) == 0x500);
    tvm_destroy(&t);
}

void test_long_mode_cpl0_port_io(void)
{
    long_mode_port_io(0);
}

void test_long_mode_cpl3_port_io(void)
{
    long_mode_port_io(3);
}

/* Writes of 1, 2, 4 and 8 bytes reach the handler with the right size and value; reads of each
 * width return what the handler put in data[]. */
void test_mmio_widths(void)
{
    test_vm t;
    bh_error e = {0};
    io_log log;
    iolog_init(&log, 0x8877665544332211ULL);
    if (!tvm_create(&t, 2 * MIB, 1, false))
        return;
    REQUIRE_OK(register_done_port(&t, &e));
    REQUIRE_OK(bh_vm_register_mmio(t.vm, 0xd0000000, 0x1000, iolog_handler, &log, &e));
    REQUIRE_OK(gb_long_mode_tables(t.vm, &e));
    REQUIRE_OK(gb_load(t.vm, GB_CODE, g_mmio, g_mmio_len, &e));
    REQUIRE_OK(gb_long_mode(t.vm, 0, GB_CODE, GB_STACK, 0, &e));
    REQUIRE_OK(bh_vm_start(t.vm, &e));
    REQUIRE(tvm_wait_exits(&t, 1, 10));
    const bh_vcpu_exit *x = tvm_exit_of(&t, 0);
    REQUIRE(x);
    CHECK(x->reason == BH_EXIT_GUEST_REQUEST);
    REQUIRE(log.count == 8);
    static const struct { uint64_t offset; uint8_t size; bool write; uint64_t value; } want[8] = {
        {0x00, 1, true, 0x11}, {0x10, 2, true, 0x2222}, {0x20, 4, true, 0x33333333},
        {0x30, 8, true, 0x4444444444444444ULL}, {0x40, 1, false, 0}, {0x50, 2, false, 0},
        {0x60, 4, false, 0}, {0x70, 8, false, 0},
    };
    for (int i = 0; i < 8; i++) {
        const bh_io_access *a = &log.entries[i];
        CHECK(a->is_mmio);
        CHECK_EQ_U64(a->offset, want[i].offset);
        CHECK_EQ_U64(a->addr, 0xd0000000 + want[i].offset);
        CHECK_EQ_U64(a->size, want[i].size);
        CHECK(a->is_write == want[i].write);
        if (want[i].write)
            CHECK_EQ_U64(access_value(a), want[i].value);
    }
    uint64_t got[4];
    REQUIRE_OK(bh_mem_read(t.vm, GB_DATA, got, sizeof got, &e));
    CHECK_EQ_U64(got[0], 0x11);
    CHECK_EQ_U64(got[1], 0x2211);
    CHECK_EQ_U64(got[2], 0x44332211);
    CHECK_EQ_U64(got[3], 0x8877665544332211ULL);
    bh_vm_stats st;
    bh_vm_get_stats(t.vm, &st);
    CHECK_EQ_U64(st.mmio_exits, 8);
    tvm_destroy(&t);
}

/* A load from 1 GiB in a 2 MiB guest is not RAM: an MMIO exit nobody handles, so it reads all ones
 * and the store is dropped; an unclaimed port likewise. Both are counted. */
void test_unhandled_access_outside_ram(void)
{
    test_vm t;
    bh_error e = {0};
    if (!tvm_create(&t, 2 * MIB, 1, false))
        return;
    REQUIRE_OK(register_done_port(&t, &e));
    REQUIRE_OK(gb_long_mode_tables(t.vm, &e));
    REQUIRE_OK(gb_load(t.vm, GB_CODE, g_outside, g_outside_len, &e));
    REQUIRE_OK(gb_long_mode(t.vm, 0, GB_CODE, GB_STACK, 0, &e));
    REQUIRE_OK(bh_vm_start(t.vm, &e));
    REQUIRE(tvm_wait_exits(&t, 1, 10));
    const bh_vcpu_exit *x = tvm_exit_of(&t, 0);
    REQUIRE(x);
    CHECK(x->reason == BH_EXIT_GUEST_REQUEST);
    uint64_t got[2];
    REQUIRE_OK(bh_mem_read(t.vm, GB_DATA, got, sizeof got, &e));
    CHECK_EQ_U64(got[0], 0xffffffff);
    CHECK_EQ_U64(got[1], 0xffffffff);
    bh_vm_stats st;
    bh_vm_get_stats(t.vm, &st);
    CHECK_EQ_U64(st.unhandled_mmio, 2);
    CHECK_EQ_U64(st.unhandled_pio, 2);
    tvm_destroy(&t);
}

/* The host writes, the guest reads and writes back (CPL3), the host sees it through bh_mem_read
 * and bh_mem_ptr alike. */
void test_guest_host_shared_memory(void)
{
    test_vm t;
    bh_error e = {0};
    if (!tvm_create(&t, 4 * MIB, 1, false))
        return;
    REQUIRE_OK(register_done_port(&t, &e));
    uint64_t seed = 0x0123456789abcdefULL;
    REQUIRE_OK(bh_mem_write(t.vm, GB_DATA, &seed, 8, &e));
    REQUIRE_OK(gb_long_mode_tables(t.vm, &e));
    REQUIRE_OK(gb_load(t.vm, GB_CODE, g_shared, g_shared_len, &e));
    REQUIRE_OK(gb_long_mode(t.vm, 0, GB_CODE, GB_STACK, 3, &e));
    REQUIRE_OK(bh_vm_start(t.vm, &e));
    REQUIRE(tvm_wait_exits(&t, 1, 10));
    const bh_vcpu_exit *x = tvm_exit_of(&t, 0);
    REQUIRE(x);
    CHECK(x->reason == BH_EXIT_GUEST_REQUEST);
    uint64_t got[2];
    REQUIRE_OK(bh_mem_read(t.vm, GB_DATA + 8, got, sizeof got, &e));
    CHECK_EQ_U64(got[0], seed + 1);
    CHECK_EQ_U64(got[1], 0x1122334455667788ULL);
    const uint64_t *p = bh_mem_ptr(t.vm, GB_DATA + 8, 16);
    REQUIRE(p);
    CHECK_EQ_U64(p[0], seed + 1);
    tvm_destroy(&t);
}

/* Registration is allowed while the VM runs: the guest polls an unclaimed port (all ones) until a
 * device registered after start answers. */
void test_register_after_start(void)
{
    test_vm t;
    bh_error e = {0};
    io_log log;
    iolog_init(&log, 0x5a);
    if (!tvm_create(&t, 2 * MIB, 1, false))
        return;
    REQUIRE_OK(register_done_port(&t, &e));
    REQUIRE_OK(gb_long_mode_tables(t.vm, &e));
    REQUIRE_OK(gb_load(t.vm, GB_CODE, g_hotplug, g_hotplug_len, &e));
    REQUIRE_OK(gb_long_mode(t.vm, 0, GB_CODE, GB_STACK, 3, &e));
    REQUIRE_OK(bh_vm_start(t.vm, &e));
    tap_sleep_ms(20);
    bh_vm_stats st;
    bh_vm_get_stats(t.vm, &st);
    CHECK(st.unhandled_pio > 0);
    CHECK(t.exit_count == 0);
    REQUIRE_OK(bh_vm_register_pio(t.vm, 0x30, 1, iolog_handler, &log, &e));
    REQUIRE(tvm_wait_exits(&t, 1, 10));
    const bh_vcpu_exit *x = tvm_exit_of(&t, 0);
    REQUIRE(x);
    CHECK(x->reason == BH_EXIT_GUEST_REQUEST);
    CHECK(log.count == 1);
    tap_diag("%llu unanswered polls before the device appeared", (unsigned long long)st.unhandled_pio);
    tvm_destroy(&t);
}

typedef struct stopwatch_dev {
    uint64_t count;
    double first, last;
} stopwatch_dev;

static bh_io_result stopwatch_handler(void *opaque, bh_io_access *access)
{
    stopwatch_dev *d = opaque; /* only ever called from the one vCPU thread */
    (void)access;
    double now = tap_now();
    if (d->count++ == 0)
        d->first = now;
    d->last = now;
    return BH_IO_DONE;
}

/* Not a benchmark, a measurement for the record: the cost of one guest access that exits to a
 * handler, port I/O and MMIO, from CPL3. */
void test_exit_round_trip_cost(void)
{
    test_vm t;
    bh_error e = {0};
    stopwatch_dev pio = {0}, mmio = {0};
    if (!tvm_create(&t, 2 * MIB, 1, false))
        return;
    REQUIRE_OK(register_done_port(&t, &e));
    REQUIRE_OK(bh_vm_register_pio(t.vm, 0x30, 1, stopwatch_handler, &pio, &e));
    REQUIRE_OK(bh_vm_register_mmio(t.vm, 0xd0000000, 0x1000, stopwatch_handler, &mmio, &e));
    REQUIRE_OK(gb_long_mode_tables(t.vm, &e));
    REQUIRE_OK(gb_load(t.vm, GB_CODE, g_exitloop, g_exitloop_len, &e));
    REQUIRE_OK(gb_long_mode(t.vm, 0, GB_CODE, GB_STACK, 3, &e));
    REQUIRE_OK(bh_vm_start(t.vm, &e));
    REQUIRE(tvm_wait_exits(&t, 1, 60));
    CHECK(t.exits[0].reason == BH_EXIT_GUEST_REQUEST);
    CHECK_EQ_U64(pio.count, 10000);
    CHECK_EQ_U64(mmio.count, 10000);
    double pio_us = (pio.last - pio.first) / 9999 * 1e6, mmio_us = (mmio.last - mmio.first) / 9999 * 1e6;
    double load[1] = {0};
    getloadavg(load, 1);
    tap_diag("per exit, guest CPL3 -> handler -> guest: port I/O %.1f us, MMIO %.1f us (host load %.1f)",
             pio_us, mmio_us, load[0]);
    CHECK(pio_us < 1000 && mmio_us < 1000);
    tvm_destroy(&t);
}
