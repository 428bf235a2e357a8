/* The Xen host through libxenctrl: version, physical info, the domain list. */
#ifndef BULKHEAD_XEN_HOST_H
#define BULKHEAD_XEN_HOST_H

#include <stddef.h>
#include <stdint.h>

#define BH_XEN_ERR_LEN 256

typedef struct bh_xen_host bh_xen_host;

typedef struct {
    unsigned major, minor;
    char extra[17]; /* ".7": Xen's 16 bytes, always NUL-terminated here */
} bh_xen_version;

typedef struct {
    uint32_t nr_cpus, cpu_khz, threads_per_core, cores_per_socket, nr_nodes, capabilities;
    uint64_t total_pages, free_pages, scrub_pages, outstanding_pages;
} bh_xen_physinfo;

typedef struct {
    uint32_t domid;
    uint32_t flags; /* XEN_DOMINF_*: dying 1, hvm 2, shutdown 4, paused 8, blocked 16, running 32; reason in bits 16..23 */
    uint64_t tot_pages, max_pages, cpu_time_ns;
    uint32_t online_vcpus, max_vcpu_id;
    uint8_t handle[16];
} bh_xen_dominfo;

/* Each returns 0, or -errno with a message in err (BH_XEN_ERR_LEN bytes). */
int bh_xen_host_open(bh_xen_host **out, char *err);
void bh_xen_host_close(bh_xen_host *host);
int bh_xen_host_version(bh_xen_host *host, bh_xen_version *out, char *err);
int bh_xen_host_physinfo(bh_xen_host *host, bh_xen_physinfo *out, char *err);
/* Domains from `first` on, at most `max`; *count gets how many were written. */
int bh_xen_host_domains(bh_xen_host *host, uint32_t first, bh_xen_dominfo *out, unsigned max, unsigned *count, char *err);

typedef enum { BH_XEN_DOMAIN_PAUSE, BH_XEN_DOMAIN_UNPAUSE, BH_XEN_DOMAIN_DESTROY } bh_xen_domain_op;

/* Pauses, unpauses or destroys domain `domid`. 0 or -errno (-ESRCH: no such domain). */
int bh_xen_host_domain_op(bh_xen_host *host, uint32_t domid, bh_xen_domain_op op, char *err);
/* Xen's memory limit of `domid`, in KiB (xc_domain_setmaxmem). Xen takes a limit below what the
 * domain holds: it then refuses the domain new pages until it gives some back. 0 or -errno. */
int bh_xen_host_domain_setmaxmem(bh_xen_host *host, uint32_t domid, uint64_t kib, char *err);
/* The one domain `domid`: 0, -ESRCH when it does not exist, or -errno. */
int bh_xen_host_domain(bh_xen_host *host, uint32_t domid, bh_xen_dominfo *out, char *err);

#endif
