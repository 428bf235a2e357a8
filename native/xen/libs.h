/* Xen's control libraries, loaded at run time (dlopen), so the addon loads on hosts without Xen and
 * can say which library is missing. Each library is opened once, with every symbol bulkhead uses
 * resolved up front: a library that lacks one counts as missing, with the symbol named. */
#ifndef BULKHEAD_XEN_LIBS_H
#define BULKHEAD_XEN_LIBS_H

typedef enum {
    BH_XEN_LIB_TOOLLOG,
    BH_XEN_LIB_CTRL,
    BH_XEN_LIB_GUEST,
    BH_XEN_LIB_EVTCHN,
    BH_XEN_LIB_GNTTAB,
    BH_XEN_LIB_STORE,
    BH_XEN_LIB_FOREIGNMEMORY,
    BH_XEN_LIB_COUNT
} bh_xen_lib;

typedef struct {
    const char *name;   /* libxenctrl */
    const char *soname; /* libxenctrl.so.4.17 */
    int loaded;
    char error[256];    /* dlerror() or the missing symbol, when !loaded */
} bh_xen_lib_status;

/* Opens every library not opened yet (thread-safe, idempotent). Returns how many are missing. */
int bh_xen_libs_load(void);
const bh_xen_lib_status *bh_xen_lib_info(bh_xen_lib lib);
/* A symbol of a loaded library (checked at load), or NULL when the library is missing. */
void *bh_xen_sym(bh_xen_lib lib, const char *symbol);

#endif
