/*
 * bh_power.h — how a guest userspace program reaches bulkhead's power device: map its MMIO page
 * from /dev/mem (the zone kernel has DEVMEM with STRICT_DEVMEM; no driver claims the page) and
 * write a command to the register at +8. Returns false when there is no power device (not a
 * bulkhead machine, or a kernel without /dev/mem): callers then fall back to reboot(2).
 */
#ifndef BH_GUEST_POWER_H
#define BH_GUEST_POWER_H

#include <fcntl.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/mman.h>
#include <unistd.h>

#define BH_GUEST_POWER_BASE 0xd0000000UL /* BH_POWER_MMIO_BASE */
#define BH_GUEST_POWER_MAGIC 0x57504842u /* "BHPW" */
#define BH_GUEST_POWER_OFF 0x01u
#define BH_GUEST_REBOOT 0x02u
#define BH_GUEST_MARKER(n) (0x03u | ((uint32_t)(n) << 8))

static inline bool bh_guest_power(uint32_t command)
{
    int fd = open("/dev/mem", O_RDWR | O_SYNC | O_CLOEXEC);
    if (fd < 0)
        return false;
    volatile uint32_t *page = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, fd, BH_GUEST_POWER_BASE);
    close(fd);
    if (page == MAP_FAILED)
        return false;
    bool ok = page[0] == BH_GUEST_POWER_MAGIC;
    if (ok)
        page[2] = command;
    munmap((void *)page, 4096);
    return ok;
}

#endif
