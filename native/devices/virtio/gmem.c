/* gmem.c — a device's view of a VM's RAM (see gmem.h). */
#include "gmem.h"

#include <stdio.h>

int bh_gmem_from_vm(bh_gmem *m, bh_vm *vm, bh_error *err)
{
    bh_mem_region regions[BH_GMEM_MAX_REGIONS];
    size_t n = bh_mem_regions(vm, regions, BH_GMEM_MAX_REGIONS);
    m->count = 0;
    if (n > BH_GMEM_MAX_REGIONS)
        n = BH_GMEM_MAX_REGIONS;
    for (size_t i = 0; i < n; i++) {
        uint8_t *host = bh_mem_ptr(vm, regions[i].gpa, (size_t)regions[i].size);
        if (!host) {
            if (err) {
                err->code = BH_E_STATE;
                err->sys_errno = 0;
                snprintf(err->message, sizeof err->message, "guest RAM region at 0x%llx has no host mapping",
                         (unsigned long long)regions[i].gpa);
            }
            return BH_E_STATE;
        }
        m->regions[m->count++] = (bh_gmem_region){regions[i].gpa, regions[i].size, host};
    }
    return BH_OK;
}
