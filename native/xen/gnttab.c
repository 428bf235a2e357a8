/* Grant tables (see gnttab.h); prototypes of libxengnttab (xengnttab.h, Xen 4.17). */
#include "gnttab.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "libs.h"

struct bh_gnt {
    void *shr, *tab;
    int (*shr_close)(void *);
    void *(*share)(void *, uint32_t, int, uint32_t *, int);
    int (*unshare)(void *, void *, uint32_t);
    int (*tab_close)(void *);
    void *(*map)(void *, uint32_t count, uint32_t domid, uint32_t *refs, int prot);
    int (*unmap)(void *, void *, uint32_t);
};

static int fail(char *err, const char *what) {
    int e = errno ? errno : EIO;
    snprintf(err, BH_XEN_ERR_LEN, "%s: %s", what, strerror(e));
    return -e;
}

#define SYM(field, name) g->field = (__typeof__(g->field))bh_xen_sym(BH_XEN_LIB_GNTTAB, name)

int bh_gnt_open(bh_gnt **out, char *err) {
    *out = NULL;
    bh_xen_libs_load();
    const bh_xen_lib_status *st = bh_xen_lib_info(BH_XEN_LIB_GNTTAB);
    if (!st->loaded) {
        snprintf(err, BH_XEN_ERR_LEN, "libxengnttab is missing: %.200s", st->error);
        return -ENOENT;
    }
    bh_gnt *g = calloc(1, sizeof *g);
    if (!g) return -ENOMEM;
    void *(*shr_open)(void *, unsigned) = (void *(*)(void *, unsigned))bh_xen_sym(BH_XEN_LIB_GNTTAB, "xengntshr_open");
    void *(*tab_open)(void *, unsigned) = (void *(*)(void *, unsigned))bh_xen_sym(BH_XEN_LIB_GNTTAB, "xengnttab_open");
    SYM(shr_close, "xengntshr_close");
    SYM(share, "xengntshr_share_pages");
    SYM(unshare, "xengntshr_unshare");
    SYM(tab_close, "xengnttab_close");
    SYM(map, "xengnttab_map_domain_grant_refs");
    SYM(unmap, "xengnttab_unmap");
    errno = 0;
    g->shr = shr_open(NULL, 0);
    if (!g->shr) {
        int r = fail(err, "xengntshr_open (/dev/xen/gntalloc)");
        free(g);
        return r;
    }
    errno = 0;
    g->tab = tab_open(NULL, 0);
    if (!g->tab) {
        int r = fail(err, "xengnttab_open (/dev/xen/gntdev)");
        g->shr_close(g->shr);
        free(g);
        return r;
    }
    *out = g;
    return 0;
}

void bh_gnt_close(bh_gnt *g) {
    if (!g) return;
    g->tab_close(g->tab);
    g->shr_close(g->shr);
    free(g);
}

int bh_gnt_share(bh_gnt *g, uint32_t domid, uint32_t pages, int writable, uint32_t *refs, bh_grant_region *out, char *err) {
    out->addr = NULL;
    out->pages = 0;
    if (pages == 0 || pages > BH_GRANT_MAX_PAGES) {
        snprintf(err, BH_XEN_ERR_LEN, "share %u pages: 1..%u allowed", pages, BH_GRANT_MAX_PAGES);
        return -EINVAL;
    }
    errno = 0;
    void *a = g->share(g->shr, domid, (int)pages, refs, writable);
    if (!a) return fail(err, "xengntshr_share_pages");
    out->addr = a;
    out->pages = pages;
    return 0;
}

int bh_gnt_unshare(bh_gnt *g, bh_grant_region *r, char *err) {
    if (!r->addr) return 0;
    errno = 0;
    if (g->unshare(g->shr, r->addr, r->pages) != 0) return fail(err, "xengntshr_unshare");
    r->addr = NULL;
    r->pages = 0;
    return 0;
}

int bh_gnt_map(bh_gnt *g, uint32_t domid, const uint32_t *refs, uint32_t count, int writable, bh_grant_region *out, char *err) {
    out->addr = NULL;
    out->pages = 0;
    if (count == 0 || count > BH_GRANT_MAX_PAGES) {
        snprintf(err, BH_XEN_ERR_LEN, "map %u grant references: 1..%u allowed", count, BH_GRANT_MAX_PAGES);
        return -EINVAL;
    }
    uint32_t *copy = malloc(count * sizeof *copy);
    if (!copy) return -ENOMEM;
    memcpy(copy, refs, count * sizeof *copy);
    errno = 0;
    void *a = g->map(g->tab, count, domid, copy, writable ? PROT_READ | PROT_WRITE : PROT_READ);
    free(copy);
    if (!a) {
        int e = errno ? errno : EIO;
        snprintf(err, BH_XEN_ERR_LEN, "xengnttab_map_domain_grant_refs (domain %u, %u refs from %u): %s", domid, count, refs[0], strerror(e));
        return -e;
    }
    out->addr = a;
    out->pages = count;
    return 0;
}

int bh_gnt_unmap(bh_gnt *g, bh_grant_region *r, char *err) {
    if (!r->addr) return 0;
    errno = 0;
    if (g->unmap(g->tab, r->addr, r->pages) != 0) return fail(err, "xengnttab_unmap");
    r->addr = NULL;
    r->pages = 0;
    return 0;
}

static int in_bounds(const bh_grant_region *r, uint64_t offset, size_t len) {
    uint64_t size = (uint64_t)r->pages * BH_XEN_PAGE_SIZE;
    return r->addr && offset <= size && len <= size - offset;
}

int bh_grant_read(const bh_grant_region *r, uint64_t offset, void *dst, size_t len) {
    if (!in_bounds(r, offset, len)) return -ERANGE;
    memcpy(dst, r->addr + offset, len);
    return 0;
}

int bh_grant_write(const bh_grant_region *r, uint64_t offset, const void *src, size_t len) {
    if (!in_bounds(r, offset, len)) return -ERANGE;
    memcpy(r->addr + offset, src, len);
    return 0;
}
