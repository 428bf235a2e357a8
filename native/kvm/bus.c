/* bus.c — sorted, non-overlapping I/O ranges with thread-safe lookup. */
#include "bus.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

int bh_bus_init(bh_bus *bus, const char *name, bh_error *err)
{
    memset(bus, 0, sizeof *bus);
    bus->name = name;
    int rc = pthread_rwlock_init(&bus->lock, NULL);
    if (rc != 0)
        return bh_fail(err, BH_E_SYSTEM, rc, "pthread_rwlock_init for the %s bus failed", name);
    return BH_OK;
}

void bh_bus_destroy(bh_bus *bus)
{
    free(bus->ranges);
    bus->ranges = NULL;
    bus->count = bus->cap = 0;
    pthread_rwlock_destroy(&bus->lock);
}

/* Index of the first range whose end is above `addr` (the only candidate that can contain it). */
static size_t first_ending_after(const bh_bus *bus, uint64_t addr)
{
    size_t lo = 0, hi = bus->count;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        const bh_bus_range *r = &bus->ranges[mid];
        if (r->base + (r->len - 1) < addr) /* the last byte, so a range ending at 2^64 cannot wrap */
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

static int insert_range(bh_bus *bus, const bh_bus_range *range, bh_error *err)
{
    uint64_t last = range->base + range->len - 1;
    if (range->len == 0)
        return bh_fail(err, BH_E_INVALID_ARG, 0, "%s range length is 0; it must be at least 1", bus->name);
    if (last < range->base)
        return bh_fail(err, BH_E_INVALID_ARG, 0,
                       "%s range base 0x%llx + length 0x%llx wraps around the address space", bus->name,
                       (unsigned long long)range->base, (unsigned long long)range->len);

    pthread_rwlock_wrlock(&bus->lock);
    size_t at = first_ending_after(bus, range->base);
    if (at < bus->count && bus->ranges[at].base <= last) {
        const bh_bus_range *other = &bus->ranges[at];
        pthread_rwlock_unlock(&bus->lock);
        return bh_fail(err, BH_E_BUSY, 0, "%s range [0x%llx, 0x%llx] overlaps [0x%llx, 0x%llx] (%s)",
                       bus->name, (unsigned long long)range->base, (unsigned long long)last,
                       (unsigned long long)other->base, (unsigned long long)(other->base + other->len - 1),
                       other->owner);
    }
    if (bus->count == bus->cap) {
        size_t cap = bus->cap ? bus->cap * 2 : 8;
        bh_bus_range *grown = realloc(bus->ranges, cap * sizeof *grown);
        if (!grown) {
            pthread_rwlock_unlock(&bus->lock);
            return bh_fail(err, BH_E_NOMEM, ENOMEM, "out of memory growing the %s bus", bus->name);
        }
        bus->ranges = grown;
        bus->cap = cap;
    }
    memmove(&bus->ranges[at + 1], &bus->ranges[at], (bus->count - at) * sizeof *bus->ranges);
    bus->ranges[at] = *range;
    bus->count++;
    pthread_rwlock_unlock(&bus->lock);
    return BH_OK;
}

int bh_bus_register(bh_bus *bus, uint64_t base, uint64_t len, bh_io_handler handler, void *opaque,
                    bh_error *err)
{
    if (!handler)
        return bh_fail(err, BH_E_INVALID_ARG, 0, "%s handler is NULL", bus->name);
    bh_bus_range range = {.base = base, .len = len, .handler = handler, .opaque = opaque, .owner = "a device"};
    return insert_range(bus, &range, err);
}

int bh_bus_reserve(bh_bus *bus, uint64_t base, uint64_t len, const char *why, bh_error *err)
{
    bh_bus_range range = {.base = base, .len = len, .owner = why};
    return insert_range(bus, &range, err);
}

bool bh_bus_lookup(bh_bus *bus, uint64_t addr, uint8_t size, bh_bus_range *out)
{
    bool found = false;
    if (size == 0)
        return false;
    pthread_rwlock_rdlock(&bus->lock);
    size_t at = first_ending_after(bus, addr);
    const bh_bus_range *r = at < bus->count ? &bus->ranges[at] : NULL;
    /* offset <= len - 1 holds once base <= addr <= last byte; then size <= len - offset is the
     * overflow-free form of offset + size <= len. */
    if (r && r->base <= addr && r->handler && (uint64_t)size <= r->len - (addr - r->base)) {
        *out = *r;
        found = true;
    }
    pthread_rwlock_unlock(&bus->lock);
    return found;
}
