/* Our own PV domain builder (see domain_build.h), the sequence libxl follows for a PV guest
 * (libxl__domain_make, libxl__build_pv), with nothing of libxl: xc_domain_create, max vCPUs, max
 * memory and memmap limit, two unbound event channels for dom0, then libxenguest's xc_dom_* build.
 *
 * libxenguest's struct xc_dom_image is allocated by xc_dom_allocate; we write the few fields the
 * builder reads from its caller and read back the console and xenstore pfns and the p2m. Their
 * offsets are those of Xen 4.17's xenguest.h on x86_64 (checked against the header with offsetof
 * when this was written; Xen's sonames pin the version, libs.c). xen_domctl_createdomain is declared
 * with 4.17's layout (domctl interface 0x15) and size-checked. */
#include "domain_build.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "libs.h"
#include "unfinished.h"

struct xen_domctl_createdomain_417 {
    uint32_t ssidref;
    uint8_t handle[16];
    uint32_t flags, iommu_opts, max_vcpus, max_evtchn_port;
    int32_t max_grant_frames, max_maptrack_frames;
    uint32_t grant_opts, vmtrace_size, cpupool_id;
    uint32_t emulation_flags, misc_flags; /* struct xen_arch_domainconfig (x86) */
};
_Static_assert(sizeof(struct xen_domctl_createdomain_417) == 64, "xen_domctl_createdomain of Xen 4.17");

/* struct xc_dom_image (Xen 4.17, x86_64): offsets of the fields used here. */
enum {
    DOM_CONSOLE_PFN = 384,
    DOM_XENSTORE_PFN = 392,
    DOM_PV_P2M = 480,
    DOM_P2M_SIZE = 488,
    DOM_TOTAL_PAGES = 504,
    DOM_FLAGS = 560,
    DOM_CONSOLE_EVTCHN = 568,
    DOM_XENSTORE_EVTCHN = 572,
    DOM_CONSOLE_DOMID = 576,
    DOM_XENSTORE_DOMID = 580,
    DOM_CLAIM_ENABLED = 604,
    DOM_CONTAINER_TYPE = 1712,
    DOM_MAX_VCPUS = 1944,
    DOM_SIZE_417 = 1952,
};

#define FIELD(dom, off, type) (*(type *)(void *)((char *)(dom) + (off)))

typedef void *(*xc_open_fn)(void *logger, void *dombuild_logger, unsigned flags);
typedef int (*xc_close_fn)(void *xch);
typedef int (*xc_create_fn)(void *xch, uint32_t *domid, struct xen_domctl_createdomain_417 *cfg);
typedef int (*xc_max_vcpus_fn)(void *xch, uint32_t domid, unsigned max);
typedef int (*xc_setmaxmem_fn)(void *xch, uint32_t domid, uint64_t kb);
typedef int (*xc_memmap_fn)(void *xch, uint32_t domid, unsigned long kb);
typedef int (*xc_alloc_unbound_fn)(void *xch, uint32_t dom, uint32_t remote);
typedef int (*xc_domid_fn)(void *xch, uint32_t domid);
typedef void *(*dom_allocate_fn)(void *xch, const char *cmdline, const char *features);
typedef void (*dom_release_fn)(void *dom);
typedef int (*dom_file_fn)(void *dom, const char *file);
typedef int (*dom_module_fn)(void *dom, const char *file, const char *cmdline);
typedef int (*dom_boot_xen_init_fn)(void *dom, void *xch, uint32_t domid);
typedef int (*dom_fn)(void *dom);
typedef int (*dom_mem_init_fn)(void *dom, unsigned mem_mb);
struct xc_error_417 {
    int code;
    char message[1024];
};
typedef const struct xc_error_417 *(*xc_last_error_fn)(void *xch);

#define SYM(lib, name) bh_xen_sym(lib, name)

static int stage_fail(char *err, bh_xen_build_stage *stage, bh_xen_build_stage s, int e, const char *what, void *xch) {
    *stage = s;
    char detail[200] = "";
    xc_last_error_fn last = xch ? (xc_last_error_fn)SYM(BH_XEN_LIB_CTRL, "xc_get_last_error") : NULL;
    if (last) {
        const struct xc_error_417 *le = last(xch);
        if (le && le->code != 0 && le->message[0]) snprintf(detail, sizeof detail, " [%.180s]", le->message);
    }
    snprintf(err, BH_XEN_ERR_LEN, "%s: %s%s", what, strerror(e), detail);
    return -e;
}

static int err_or(int fallback) {
    return errno > 0 ? errno : fallback;
}

int bh_xen_build_pv(const bh_xen_pv_config *cfg, bh_xen_pv_result *out, bh_xen_build_stage *stage, char *err) {
    memset(out, 0, sizeof *out);
    *stage = BH_XEN_BUILD_OK;
    bh_xen_libs_load();
    const bh_xen_lib_status *ctrl = bh_xen_lib_info(BH_XEN_LIB_CTRL), *guest = bh_xen_lib_info(BH_XEN_LIB_GUEST);
    if (!ctrl->loaded || !guest->loaded) {
        *stage = BH_XEN_BUILD_OPEN;
        snprintf(err, BH_XEN_ERR_LEN, "%s is missing: %.200s", ctrl->loaded ? "libxenguest" : "libxenctrl", ctrl->loaded ? guest->error : ctrl->error);
        return -ENOENT;
    }
    if (!cfg->kernel || cfg->memory_mib == 0 || cfg->vcpus == 0) {
        *stage = cfg->kernel ? (cfg->vcpus == 0 ? BH_XEN_BUILD_VCPUS : BH_XEN_BUILD_MEMORY) : BH_XEN_BUILD_KERNEL;
        snprintf(err, BH_XEN_ERR_LEN, "a kernel, memory_mib >= 1 and vcpus >= 1 are required");
        return -EINVAL;
    }
    if (cfg->memory_mib > (1u << 22)) { /* 4 TiB: mem_mb * 1024 must fit the KiB arithmetic below */
        *stage = BH_XEN_BUILD_MEMORY;
        snprintf(err, BH_XEN_ERR_LEN, "memory_mib %u is out of range", cfg->memory_mib);
        return -EINVAL;
    }

    xc_open_fn xopen = (xc_open_fn)SYM(BH_XEN_LIB_CTRL, "xc_interface_open");
    xc_close_fn xclose = (xc_close_fn)SYM(BH_XEN_LIB_CTRL, "xc_interface_close");
    xc_create_fn create = (xc_create_fn)SYM(BH_XEN_LIB_CTRL, "xc_domain_create");
    xc_max_vcpus_fn max_vcpus = (xc_max_vcpus_fn)SYM(BH_XEN_LIB_CTRL, "xc_domain_max_vcpus");
    xc_setmaxmem_fn setmaxmem = (xc_setmaxmem_fn)SYM(BH_XEN_LIB_CTRL, "xc_domain_setmaxmem");
    xc_memmap_fn memmap = (xc_memmap_fn)SYM(BH_XEN_LIB_CTRL, "xc_domain_set_memmap_limit");
    xc_alloc_unbound_fn alloc_unbound = (xc_alloc_unbound_fn)SYM(BH_XEN_LIB_CTRL, "xc_evtchn_alloc_unbound");
    xc_domid_fn destroy = (xc_domid_fn)SYM(BH_XEN_LIB_CTRL, "xc_domain_destroy");
    dom_allocate_fn dom_allocate = (dom_allocate_fn)SYM(BH_XEN_LIB_GUEST, "xc_dom_allocate");
    dom_release_fn dom_release = (dom_release_fn)SYM(BH_XEN_LIB_GUEST, "xc_dom_release");
    dom_file_fn kernel_file = (dom_file_fn)SYM(BH_XEN_LIB_GUEST, "xc_dom_kernel_file");
    dom_module_fn module_file = (dom_module_fn)SYM(BH_XEN_LIB_GUEST, "xc_dom_module_file");
    dom_boot_xen_init_fn boot_xen_init = (dom_boot_xen_init_fn)SYM(BH_XEN_LIB_GUEST, "xc_dom_boot_xen_init");
    dom_fn parse_image = (dom_fn)SYM(BH_XEN_LIB_GUEST, "xc_dom_parse_image");
    dom_mem_init_fn mem_init = (dom_mem_init_fn)SYM(BH_XEN_LIB_GUEST, "xc_dom_mem_init");
    dom_fn boot_mem_init = (dom_fn)SYM(BH_XEN_LIB_GUEST, "xc_dom_boot_mem_init");
    dom_fn build_image = (dom_fn)SYM(BH_XEN_LIB_GUEST, "xc_dom_build_image");
    dom_fn boot_image = (dom_fn)SYM(BH_XEN_LIB_GUEST, "xc_dom_boot_image");
    dom_fn gnttab_init = (dom_fn)SYM(BH_XEN_LIB_GUEST, "xc_dom_gnttab_init");

    /* Files first: a missing kernel or initrd fails before any domain exists. */
    if (access(cfg->kernel, R_OK) != 0) return stage_fail(err, stage, BH_XEN_BUILD_KERNEL, err_or(ENOENT), "kernel", NULL);
    if (cfg->initrd && access(cfg->initrd, R_OK) != 0) return stage_fail(err, stage, BH_XEN_BUILD_INITRD, err_or(ENOENT), "initrd", NULL);

    errno = 0;
    void *xch = xopen(NULL, NULL, 0);
    if (!xch) return stage_fail(err, stage, BH_XEN_BUILD_OPEN, err_or(EACCES), "xc_interface_open (is this dom0, with /dev/xen/privcmd?)", NULL);

    struct xen_domctl_createdomain_417 cd;
    memset(&cd, 0, sizeof cd);
    int ufd = open("/dev/urandom", O_RDONLY | O_CLOEXEC);
    if (ufd >= 0) {
        if (read(ufd, cd.handle, sizeof cd.handle) != (ssize_t)sizeof cd.handle) memset(cd.handle, 0, sizeof cd.handle);
        close(ufd);
    }
    cd.handle[6] = (uint8_t)((cd.handle[6] & 0x0f) | 0x40); /* a version-4 UUID */
    cd.handle[8] = (uint8_t)((cd.handle[8] & 0x3f) | 0x80);
    cd.flags = 0; /* PV: neither hvm nor hap */
    cd.max_vcpus = cfg->vcpus;
    cd.max_evtchn_port = 1023;
    cd.max_grant_frames = -1;    /* Xen's defaults */
    cd.max_maptrack_frames = -1;
    cd.grant_opts = 1;           /* grant table version 1 */

    uint32_t domid = 0;
    int created = 0, rc = 0;
    void *dom = NULL;
    errno = 0;
    if (create(xch, &domid, &cd) != 0) {
        rc = stage_fail(err, stage, BH_XEN_BUILD_CREATE, err_or(EIO), "xc_domain_create", xch);
        if (rc == -EINVAL && cfg->vcpus > 1) *stage = BH_XEN_BUILD_VCPUS; /* Xen refuses max_vcpus beyond its limit with EINVAL */
        goto out;
    }
    created = 1;
    bh_xen_unfinished_add(domid); /* until the caller takes it (bh_xen_unfinished_done) */
    out->domid = domid;
    errno = 0;
    if (max_vcpus(xch, domid, cfg->vcpus) != 0) {
        rc = stage_fail(err, stage, BH_XEN_BUILD_VCPUS, err_or(EIO), "xc_domain_max_vcpus", xch);
        goto out;
    }
    uint64_t mem_kb = (uint64_t)cfg->memory_mib * 1024u;
    errno = 0;
    if (setmaxmem(xch, domid, mem_kb + 1024 /* libxl's LIBXL_MAXMEM_CONSTANT */) != 0) {
        rc = stage_fail(err, stage, BH_XEN_BUILD_MEMORY, err_or(EIO), "xc_domain_setmaxmem", xch);
        goto out;
    }
    errno = 0;
    if (memmap(xch, domid, (unsigned long)mem_kb) != 0) {
        rc = stage_fail(err, stage, BH_XEN_BUILD_MEMORY, err_or(EIO), "xc_domain_set_memmap_limit", xch);
        goto out;
    }
    errno = 0;
    int store_port = alloc_unbound(xch, domid, 0);
    if (store_port < 0) {
        rc = stage_fail(err, stage, BH_XEN_BUILD_EVTCHN, err_or(EIO), "xc_evtchn_alloc_unbound (xenstore)", xch);
        goto out;
    }
    errno = 0;
    int console_port = alloc_unbound(xch, domid, 0);
    if (console_port < 0) {
        rc = stage_fail(err, stage, BH_XEN_BUILD_EVTCHN, err_or(EIO), "xc_evtchn_alloc_unbound (console)", xch);
        goto out;
    }

    errno = 0;
    dom = dom_allocate(xch, cfg->cmdline, NULL);
    if (!dom) {
        rc = stage_fail(err, stage, BH_XEN_BUILD_IMAGE, err_or(ENOMEM), "xc_dom_allocate", xch);
        goto out;
    }
    errno = 0;
    if (kernel_file(dom, cfg->kernel) != 0) {
        rc = stage_fail(err, stage, BH_XEN_BUILD_KERNEL, err_or(EINVAL), "xc_dom_kernel_file", xch);
        goto out;
    }
    errno = 0;
    if (cfg->initrd && module_file(dom, cfg->initrd, NULL) != 0) {
        rc = stage_fail(err, stage, BH_XEN_BUILD_INITRD, err_or(EINVAL), "xc_dom_module_file", xch);
        goto out;
    }
    FIELD(dom, DOM_CONTAINER_TYPE, int) = 0; /* XC_DOM_PV_CONTAINER */
    FIELD(dom, DOM_FLAGS, unsigned long) = 0;
    FIELD(dom, DOM_CONSOLE_EVTCHN, unsigned) = (unsigned)console_port;
    FIELD(dom, DOM_XENSTORE_EVTCHN, unsigned) = (unsigned)store_port;
    FIELD(dom, DOM_CONSOLE_DOMID, uint32_t) = 0;
    FIELD(dom, DOM_XENSTORE_DOMID, uint32_t) = 0;
    FIELD(dom, DOM_CLAIM_ENABLED, int) = 0;
    FIELD(dom, DOM_MAX_VCPUS, unsigned) = cfg->vcpus;

    struct {
        dom_fn fn;
        const char *name;
        bh_xen_build_stage stage;
    } steps[] = {
        {NULL, "xc_dom_boot_xen_init", BH_XEN_BUILD_IMAGE},
        {parse_image, "xc_dom_parse_image", BH_XEN_BUILD_KERNEL},
        {NULL, "xc_dom_mem_init", BH_XEN_BUILD_MEMORY},
        {boot_mem_init, "xc_dom_boot_mem_init", BH_XEN_BUILD_MEMORY},
        {build_image, "xc_dom_build_image", BH_XEN_BUILD_IMAGE},
        {boot_image, "xc_dom_boot_image", BH_XEN_BUILD_IMAGE},
        {gnttab_init, "xc_dom_gnttab_init", BH_XEN_BUILD_IMAGE},
    };
    for (size_t i = 0; i < sizeof steps / sizeof steps[0]; i++) {
        errno = 0;
        int r = i == 0 ? boot_xen_init(dom, xch, domid) : i == 2 ? mem_init(dom, cfg->memory_mib) : steps[i].fn(dom);
        if (r != 0) {
            rc = stage_fail(err, stage, steps[i].stage, err_or(EIO), steps[i].name, xch);
            goto out;
        }
    }

    /* PV: the guest's frames are machine frames; look the two pages up in the builder's p2m. */
    uint64_t total = FIELD(dom, DOM_TOTAL_PAGES, uint64_t), p2m_size = FIELD(dom, DOM_P2M_SIZE, uint64_t);
    const uint64_t *p2m = FIELD(dom, DOM_PV_P2M, const uint64_t *);
    uint64_t cpfn = FIELD(dom, DOM_CONSOLE_PFN, uint64_t), spfn = FIELD(dom, DOM_XENSTORE_PFN, uint64_t);
    if (!p2m || cpfn >= total || spfn >= total || cpfn >= p2m_size || spfn >= p2m_size) {
        rc = stage_fail(err, stage, BH_XEN_BUILD_IMAGE, EPROTO, "console/xenstore pfn outside the guest's p2m", NULL);
        goto out;
    }
    out->console_mfn = p2m[cpfn];
    out->xenstore_mfn = p2m[spfn];
    out->console_port = (uint32_t)console_port;
    out->xenstore_port = (uint32_t)store_port;
    out->console_gref = 0;  /* GNTTAB_RESERVED_CONSOLE */
    out->xenstore_gref = 1; /* GNTTAB_RESERVED_XENSTORE */
    rc = 0;

out:
    if (dom) dom_release(dom);
    if (rc != 0 && created) {
        destroy(xch, domid); /* the half-built domain goes; its ports and pages with it */
        bh_xen_unfinished_done(domid);
        out->domid = 0;
    }
    xclose(xch);
    return rc;
}

typedef void *(*xs_open_fn)(unsigned long flags);
typedef void (*xs_close_fn)(void *h);



static void *store_open(char *err) {
    bh_xen_libs_load();
    const bh_xen_lib_status *st = bh_xen_lib_info(BH_XEN_LIB_STORE);
    if (!st->loaded) {
        snprintf(err, BH_XEN_ERR_LEN, "libxenstore is missing: %.200s", st->error);
        return NULL;
    }
    errno = 0;
    void *h = ((xs_open_fn)SYM(BH_XEN_LIB_STORE, "xs_open"))(0);
    if (!h) snprintf(err, BH_XEN_ERR_LEN, "xs_open: %s", strerror(err_or(ECONNREFUSED)));
    return h;
}

int bh_xen_introduce_domain(uint32_t domid, uint64_t store_mfn, uint32_t store_port, char *err) {
    void *h = store_open(err);
    if (!h) return -ENOENT;
    errno = 0;
    _Bool ok = ((_Bool(*)(void *, unsigned, unsigned long, unsigned))SYM(BH_XEN_LIB_STORE, "xs_introduce_domain"))(h, domid, (unsigned long)store_mfn, store_port);
    int e = err_or(EIO);
    ((xs_close_fn)SYM(BH_XEN_LIB_STORE, "xs_close"))(h);
    if (ok) return 0;
    snprintf(err, BH_XEN_ERR_LEN, "xs_introduce_domain(%u): %s", domid, strerror(e));
    return -e;
}

int bh_xen_release_domain(uint32_t domid, char *err) {
    void *h = store_open(err);
    if (!h) return -ENOENT;
    errno = 0;
    _Bool ok = ((_Bool(*)(void *, unsigned))SYM(BH_XEN_LIB_STORE, "xs_release_domain"))(h, domid);
    int e = err_or(EIO);
    ((xs_close_fn)SYM(BH_XEN_LIB_STORE, "xs_close"))(h);
    if (ok) return 0;
    snprintf(err, BH_XEN_ERR_LEN, "xs_release_domain(%u): %s", domid, strerror(e));
    return -e;
}
