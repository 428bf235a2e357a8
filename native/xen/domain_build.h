/* Our own PV domain build through libxenctrl and libxenguest's xc_dom_* builder (no xl, no libxl):
 * create the domain, allocate its console and xenstore event channels (unbound, remote dom0), load
 * kernel and initrd, build, boot (left paused), seed grant refs 0 (console) and 1 (xenstore) for
 * dom0. A failure at any step destroys the half-built domain and releases everything. */
#ifndef BULKHEAD_XEN_DOMAIN_BUILD_H
#define BULKHEAD_XEN_DOMAIN_BUILD_H

#include <stdint.h>

#include "host.h"

typedef struct {
    const char *kernel;  /* path of an ELF PV kernel (vmlinux) */
    const char *initrd;  /* path, or NULL */
    const char *cmdline; /* may be NULL */
    uint32_t memory_mib;
    uint32_t vcpus;
} bh_xen_pv_config;

typedef struct {
    uint32_t domid;
    uint32_t console_port, xenstore_port; /* in the new domain, unbound, remote dom0 */
    uint64_t console_mfn, xenstore_mfn;
    uint32_t console_gref, xenstore_gref; /* 0 and 1 (GNTTAB_RESERVED_*) */
} bh_xen_pv_result;

/* The stage that failed, for typed errors: */
typedef enum {
    BH_XEN_BUILD_OK = 0,
    BH_XEN_BUILD_OPEN,     /* libraries / xc_interface_open */
    BH_XEN_BUILD_CREATE,   /* xc_domain_create */
    BH_XEN_BUILD_VCPUS,    /* xc_domain_max_vcpus */
    BH_XEN_BUILD_MEMORY,   /* setmaxmem, memmap limit, xc_dom_mem_init, xc_dom_boot_mem_init */
    BH_XEN_BUILD_EVTCHN,   /* xc_evtchn_alloc_unbound */
    BH_XEN_BUILD_KERNEL,   /* xc_dom_kernel_file, xc_dom_parse_image */
    BH_XEN_BUILD_INITRD,   /* xc_dom_module_file */
    BH_XEN_BUILD_IMAGE,    /* xc_dom_boot_xen_init, build, boot, gnttab */
} bh_xen_build_stage;

/* 0, or -errno with the failing stage in *stage and a message in err (BH_XEN_ERR_LEN). On failure
 * no domain is left behind (it is destroyed) and every handle is closed. On success the domain stays
 * recorded as unfinished (unfinished.h: destroyed at exit) until the caller calls
 * bh_xen_unfinished_done once it owns it. */
int bh_xen_build_pv(const bh_xen_pv_config *cfg, bh_xen_pv_result *out, bh_xen_build_stage *stage, char *err);

/* xs_introduce_domain / xs_release_domain through libxenstore (own short-lived connection). */
int bh_xen_introduce_domain(uint32_t domid, uint64_t store_mfn, uint32_t store_port, char *err);
int bh_xen_release_domain(uint32_t domid, char *err);

#endif
