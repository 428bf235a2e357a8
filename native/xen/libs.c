/* dlopen of Xen's libraries: see libs.h. The sonames are those of Xen 4.17 (Debian bookworm). */
#include "libs.h"

#include <dlfcn.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>

typedef struct {
    bh_xen_lib_status status;
    const char *const *symbols; /* NULL-terminated: what bulkhead calls */
    void *handle;
} lib_entry;

static const char *const toollog_syms[] = {"xtl_createlogger_stdiostream", "xtl_logger_destroy", NULL};
static const char *const ctrl_syms[] = {"xc_interface_open", "xc_interface_close", "xc_version", "xc_physinfo",
                                        "xc_domain_getinfolist", "xc_domain_destroy", "xc_domain_pause",
                                        "xc_domain_unpause", "xc_domain_create", "xc_domain_max_vcpus",
                                        "xc_domain_setmaxmem", "xc_domain_set_memmap_limit", "xc_evtchn_alloc_unbound", NULL};
static const char *const guest_syms[] = {"xc_dom_allocate", "xc_dom_release", "xc_dom_kernel_file",
                                         "xc_dom_module_file", "xc_dom_boot_xen_init", "xc_dom_parse_image",
                                         "xc_dom_mem_init", "xc_dom_boot_mem_init", "xc_dom_build_image",
                                         "xc_dom_boot_image", "xc_dom_gnttab_init", NULL};
static const char *const evtchn_syms[] = {"xenevtchn_open", "xenevtchn_close", "xenevtchn_fd",
                                          "xenevtchn_bind_unbound_port", "xenevtchn_bind_interdomain",
                                          "xenevtchn_notify", "xenevtchn_pending", "xenevtchn_unmask",
                                          "xenevtchn_unbind", NULL};
static const char *const gnttab_syms[] = {"xengnttab_open", "xengnttab_close", "xengnttab_map_domain_grant_refs",
                                          "xengnttab_unmap", "xengntshr_open", "xengntshr_close",
                                          "xengntshr_share_pages", "xengntshr_unshare", NULL};
static const char *const store_syms[] = {"xs_open", "xs_close", "xs_read", "xs_write", "xs_mkdir", "xs_rm",
                                         "xs_directory", "xs_get_permissions", "xs_set_permissions", "xs_watch",
                                         "xs_unwatch", "xs_read_watch", "xs_check_watch", "xs_fileno", "xs_transaction_start",
                                         "xs_transaction_end", "xs_introduce_domain", "xs_release_domain", NULL};
static const char *const foreignmemory_syms[] = {"xenforeignmemory_open", "xenforeignmemory_close",
                                                 "xenforeignmemory_map", "xenforeignmemory_unmap", NULL};

/* In dependency order: libxenctrl needs libxentoollog, libxenguest needs libxenctrl. */
static lib_entry libs[BH_XEN_LIB_COUNT] = {
    [BH_XEN_LIB_TOOLLOG] = {{"libxentoollog", "libxentoollog.so.1", 0, ""}, toollog_syms, NULL},
    [BH_XEN_LIB_CTRL] = {{"libxenctrl", "libxenctrl.so.4.17", 0, ""}, ctrl_syms, NULL},
    [BH_XEN_LIB_GUEST] = {{"libxenguest", "libxenguest.so.4.17", 0, ""}, guest_syms, NULL},
    [BH_XEN_LIB_EVTCHN] = {{"libxenevtchn", "libxenevtchn.so.1", 0, ""}, evtchn_syms, NULL},
    [BH_XEN_LIB_GNTTAB] = {{"libxengnttab", "libxengnttab.so.1", 0, ""}, gnttab_syms, NULL},
    [BH_XEN_LIB_STORE] = {{"libxenstore", "libxenstore.so.4", 0, ""}, store_syms, NULL},
    [BH_XEN_LIB_FOREIGNMEMORY] = {{"libxenforeignmemory", "libxenforeignmemory.so.1", 0, ""}, foreignmemory_syms, NULL},
};

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;

static void load_one(lib_entry *e) {
    dlerror();
    void *h = dlopen(e->status.soname, RTLD_NOW | RTLD_LOCAL);
    if (!h) {
        const char *why = dlerror();
        snprintf(e->status.error, sizeof e->status.error, "%s", why ? why : "dlopen failed");
        return;
    }
    for (const char *const *s = e->symbols; *s; s++) {
        if (!dlsym(h, *s)) {
            snprintf(e->status.error, sizeof e->status.error, "%s has no symbol %s (not Xen 4.17's?)", e->status.soname, *s);
            dlclose(h);
            return;
        }
    }
    e->handle = h;
    e->status.loaded = 1;
    e->status.error[0] = '\0';
}

int bh_xen_libs_load(void) {
    int missing = 0;
    pthread_mutex_lock(&lock);
    for (int i = 0; i < BH_XEN_LIB_COUNT; i++) {
        if (!libs[i].status.loaded) load_one(&libs[i]);
        if (!libs[i].status.loaded) missing++;
    }
    pthread_mutex_unlock(&lock);
    return missing;
}

const bh_xen_lib_status *bh_xen_lib_info(bh_xen_lib lib) {
    if ((unsigned)lib >= BH_XEN_LIB_COUNT) return NULL;
    return &libs[lib].status;
}

void *bh_xen_sym(bh_xen_lib lib, const char *symbol) {
    if ((unsigned)lib >= BH_XEN_LIB_COUNT) return NULL;
    pthread_mutex_lock(&lock);
    void *h = libs[lib].handle;
    pthread_mutex_unlock(&lock);
    return h ? dlsym(h, symbol) : NULL;
}
