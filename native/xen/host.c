/* The Xen host through libxenctrl (see host.h). The two structures Xen fills are declared here with
 * the layout of Xen 4.17's public headers (sysctl interface 0x15, domctl 0x15; xen/sysctl.h,
 * xen/domctl.h), checked by size, and handed to Xen inside larger zeroed buffers, so a Xen with a
 * longer structure cannot write past them. Values are copied out field by field. */
#include "host.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "libs.h"

struct xen_physinfo_417 {
    uint32_t threads_per_core, cores_per_socket, nr_cpus, max_cpu_id, nr_nodes, max_node_id, cpu_khz;
    uint32_t capabilities, arch_capabilities, pad;
    uint64_t total_pages, free_pages, scrub_pages, outstanding_pages, max_mfn;
    uint32_t hw_cap[8];
};
_Static_assert(sizeof(struct xen_physinfo_417) == 112, "xen_sysctl_physinfo of Xen 4.17");

struct xen_dominfo_417 {
    uint16_t domain, pad1;
    uint32_t flags;
    uint64_t tot_pages, max_pages, outstanding_pages, shr_pages, paged_pages, shared_info_frame, cpu_time;
    uint32_t nr_online_vcpus, max_vcpu_id, ssidref;
    uint8_t handle[16];
    uint32_t cpupool;
    uint8_t gpaddr_bits, pad2[7];
    uint32_t emulation_flags, misc_flags;
};
_Static_assert(sizeof(struct xen_dominfo_417) == 112, "xen_domctl_getdomaininfo of Xen 4.17");

/* Room for a future Xen's longer structure: it writes into slack, never past the buffer. */
#define SLACK 256

typedef void *(*xc_open_fn)(void *logger, void *dombuild_logger, unsigned flags);
typedef int (*xc_close_fn)(void *xch);
typedef int (*xc_version_fn)(void *xch, int cmd, void *arg);
typedef int (*xc_physinfo_fn)(void *xch, void *info);
typedef int (*xc_getinfolist_fn)(void *xch, uint32_t first, unsigned max, void *info);
typedef int (*xc_domain_fn)(void *xch, uint32_t domid);
typedef int (*xc_setmaxmem_fn)(void *xch, uint32_t domid, uint64_t kib);

struct bh_xen_host {
    void *xch;
    xc_close_fn close;
    xc_version_fn version;
    xc_physinfo_fn physinfo;
    xc_getinfolist_fn getinfolist;
    xc_domain_fn pause, unpause, destroy;
    xc_setmaxmem_fn setmaxmem;
};

static int fail(char *err, int e, const char *what) {
    snprintf(err, BH_XEN_ERR_LEN, "%s: %s", what, strerror(e));
    return -e;
}

int bh_xen_host_open(bh_xen_host **out, char *err) {
    *out = NULL;
    bh_xen_libs_load();
    const bh_xen_lib_status *st = bh_xen_lib_info(BH_XEN_LIB_CTRL);
    if (!st->loaded) {
        snprintf(err, BH_XEN_ERR_LEN, "libxenctrl is missing: %.200s", st->error);
        return -ENOENT;
    }
    bh_xen_host *h = calloc(1, sizeof *h);
    if (!h) return fail(err, ENOMEM, "allocating the Xen host handle");
    xc_open_fn open_fn = (xc_open_fn)bh_xen_sym(BH_XEN_LIB_CTRL, "xc_interface_open");
    h->close = (xc_close_fn)bh_xen_sym(BH_XEN_LIB_CTRL, "xc_interface_close");
    h->version = (xc_version_fn)bh_xen_sym(BH_XEN_LIB_CTRL, "xc_version");
    h->physinfo = (xc_physinfo_fn)bh_xen_sym(BH_XEN_LIB_CTRL, "xc_physinfo");
    h->getinfolist = (xc_getinfolist_fn)bh_xen_sym(BH_XEN_LIB_CTRL, "xc_domain_getinfolist");
    h->pause = (xc_domain_fn)bh_xen_sym(BH_XEN_LIB_CTRL, "xc_domain_pause");
    h->unpause = (xc_domain_fn)bh_xen_sym(BH_XEN_LIB_CTRL, "xc_domain_unpause");
    h->destroy = (xc_domain_fn)bh_xen_sym(BH_XEN_LIB_CTRL, "xc_domain_destroy");
    h->setmaxmem = (xc_setmaxmem_fn)bh_xen_sym(BH_XEN_LIB_CTRL, "xc_domain_setmaxmem");
    errno = 0;
    h->xch = open_fn(NULL, NULL, 0);
    if (!h->xch) {
        int e = errno ? errno : EACCES;
        free(h);
        return fail(err, e, "xc_interface_open (is this dom0, with /dev/xen/privcmd?)");
    }
    *out = h;
    return 0;
}

void bh_xen_host_close(bh_xen_host *h) {
    if (!h) return;
    h->close(h->xch);
    free(h);
}

int bh_xen_host_version(bh_xen_host *h, bh_xen_version *out, char *err) {
    memset(out, 0, sizeof *out);
    int v = h->version(h->xch, 0 /* XENVER_version */, NULL);
    if (v < 0) return fail(err, errno ? errno : EIO, "xc_version(XENVER_version)");
    out->major = (unsigned)v >> 16;
    out->minor = (unsigned)v & 0xffff;
    char extra[16 + SLACK];
    memset(extra, 0, sizeof extra);
    if (h->version(h->xch, 1 /* XENVER_extraversion */, extra) < 0) return fail(err, errno ? errno : EIO, "xc_version(XENVER_extraversion)");
    memcpy(out->extra, extra, 16); /* Xen's field is 16 bytes, NUL-terminated or not */
    out->extra[16] = '\0';
    return 0;
}

int bh_xen_host_physinfo(bh_xen_host *h, bh_xen_physinfo *out, char *err) {
    union {
        struct xen_physinfo_417 p;
        char room[sizeof(struct xen_physinfo_417) + SLACK];
    } buf;
    memset(&buf, 0, sizeof buf);
    if (h->physinfo(h->xch, &buf) < 0) return fail(err, errno ? errno : EIO, "xc_physinfo");
    *out = (bh_xen_physinfo){
        .nr_cpus = buf.p.nr_cpus,
        .cpu_khz = buf.p.cpu_khz,
        .threads_per_core = buf.p.threads_per_core,
        .cores_per_socket = buf.p.cores_per_socket,
        .nr_nodes = buf.p.nr_nodes,
        .capabilities = buf.p.capabilities,
        .total_pages = buf.p.total_pages,
        .free_pages = buf.p.free_pages,
        .scrub_pages = buf.p.scrub_pages,
        .outstanding_pages = buf.p.outstanding_pages,
    };
    return 0;
}

int bh_xen_host_domains(bh_xen_host *h, uint32_t first, bh_xen_dominfo *out, unsigned max, unsigned *count, char *err) {
    *count = 0;
    if (max == 0) return 0;
    if (max > 4096) max = 4096;
    size_t bytes = (size_t)max * sizeof(struct xen_dominfo_417) + SLACK;
    struct xen_dominfo_417 *infos = calloc(1, bytes);
    if (!infos) return fail(err, ENOMEM, "allocating the domain list");
    int n = h->getinfolist(h->xch, first, max, infos);
    if (n < 0) {
        int e = errno ? errno : EIO;
        free(infos);
        return fail(err, e, "xc_domain_getinfolist");
    }
    if ((unsigned)n > max) n = (int)max; /* never trust a count beyond what we asked for */
    for (int i = 0; i < n; i++) {
        const struct xen_dominfo_417 *d = &infos[i];
        out[i] = (bh_xen_dominfo){
            .domid = d->domain,
            .flags = d->flags,
            .tot_pages = d->tot_pages,
            .max_pages = d->max_pages,
            .cpu_time_ns = d->cpu_time,
            .online_vcpus = d->nr_online_vcpus,
            .max_vcpu_id = d->max_vcpu_id,
        };
        memcpy(out[i].handle, d->handle, sizeof out[i].handle);
    }
    free(infos);
    *count = (unsigned)n;
    return 0;
}

int bh_xen_host_domain(bh_xen_host *h, uint32_t domid, bh_xen_dominfo *out, char *err) {
    unsigned n = 0;
    int rc = bh_xen_host_domains(h, domid, out, 1, &n, err);
    if (rc < 0) return rc;
    /* getinfolist answers with the first domain at or after domid: another id means none. */
    if (n == 0 || out->domid != domid) {
        snprintf(err, BH_XEN_ERR_LEN, "no domain %u", domid);
        return -ESRCH;
    }
    return 0;
}

int bh_xen_host_domain_op(bh_xen_host *h, uint32_t domid, bh_xen_domain_op op, char *err) {
    static const char *const names[] = {"xc_domain_pause", "xc_domain_unpause", "xc_domain_destroy"};
    xc_domain_fn fn = op == BH_XEN_DOMAIN_PAUSE ? h->pause : op == BH_XEN_DOMAIN_UNPAUSE ? h->unpause : op == BH_XEN_DOMAIN_DESTROY ? h->destroy : NULL;
    if (!fn) {
        snprintf(err, BH_XEN_ERR_LEN, "unknown domain operation %d", (int)op);
        return -EINVAL;
    }
    errno = 0;
    if (fn(h->xch, domid) == 0) return 0;
    int e = errno ? errno : EIO;
    snprintf(err, BH_XEN_ERR_LEN, "%s(%u): %s", names[op], domid, strerror(e));
    return -e;
}

int bh_xen_host_domain_setmaxmem(bh_xen_host *h, uint32_t domid, uint64_t kib, char *err) {
    errno = 0;
    if (h->setmaxmem(h->xch, domid, kib) == 0) return 0;
    int e = errno ? errno : EIO;
    snprintf(err, BH_XEN_ERR_LEN, "xc_domain_setmaxmem(%u, %llu KiB): %s", domid, (unsigned long long)kib, strerror(e));
    return -e;
}
