/*
 * bus.h — an I/O bus: a sorted table of non-overlapping address ranges, each owned by a handler.
 *
 * Part of the core (native/kvm): one bus for port I/O, one for MMIO, per VM. Devices register on a bus and never know who calls
 * them. Registration is allowed at any time, before or after the VM starts: the table is guarded by
 * a read-write lock, and entries are never removed, so a handler looked up on a vCPU thread stays
 * valid while it runs (lookup copies the entry out under the read lock).
 */
#ifndef BH_DEVICES_BUS_H
#define BH_DEVICES_BUS_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "bulkhead.h"

typedef struct bh_bus_range {
    uint64_t base;
    uint64_t len;           /* > 0; base + len does not overflow */
    bh_io_handler handler;  /* NULL for a reserved range: nobody may register there */
    void *opaque;
    const char *owner;      /* for error messages: "device", or why the range is reserved */
} bh_bus_range;

typedef struct bh_bus {
    const char *name;       /* "pio" or "mmio", for messages */
    pthread_rwlock_t lock;
    bh_bus_range *ranges;   /* sorted by base, non-overlapping */
    size_t count, cap;
} bh_bus;

int bh_bus_init(bh_bus *bus, const char *name, bh_error *err);
void bh_bus_destroy(bh_bus *bus);
/* Adds [base, base+len). BH_E_BUSY when it overlaps a registered or reserved range. */
int bh_bus_register(bh_bus *bus, uint64_t base, uint64_t len, bh_io_handler handler, void *opaque,
                    bh_error *err);
/* Marks [base, base+len) as unavailable for devices (e.g. KVM's TSS pages); accesses stay unhandled. */
int bh_bus_reserve(bh_bus *bus, uint64_t base, uint64_t len, const char *why, bh_error *err);
/* Finds the handler owning all of [addr, addr+size). False when nothing (or only a reservation)
 * covers it, and also when the access starts inside a range but leaves it: a handler only ever
 * sees offset + size <= its range's length, so a device can copy `size` bytes at `offset` into
 * a register file or config space of the range's length without checking again. */
bool bh_bus_lookup(bh_bus *bus, uint64_t addr, uint8_t size, bh_bus_range *out);

#endif
