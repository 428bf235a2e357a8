/* power.h — the power device's register logic, apart from the VM, for its fuzzer (fuzz/fuzz_power.c). */
#ifndef BH_DEVICES_POWER_H
#define BH_DEVICES_POWER_H

#include "bulkhead.h"

typedef struct bh_power_core {
    bh_vm *vm; /* NULL in the fuzzer: requests are only reported */
    bh_power_config config;
    uint32_t markers;          /* atomic */
    uint64_t first_marker_ns;  /* atomic */
} bh_power_core;

void bh_power_core_init(bh_power_core *p, const bh_power_config *config);
/* The MMIO handler of the page (opaque: a bh_power_core). */
bh_io_result bh_power_access(void *opaque, bh_io_access *a);

#endif
