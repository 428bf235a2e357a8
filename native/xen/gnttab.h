/* Grant tables: sharing our pages with a domain (libxengnttab's gntshr, /dev/xen/gntalloc) and
 * mapping another domain's grants (gnttab, /dev/xen/gntdev). A mapping is a region of whole pages;
 * every access to it goes through bh_grant_read/bh_grant_write, which check offset and length. */
#ifndef BULKHEAD_XEN_GNTTAB_H
#define BULKHEAD_XEN_GNTTAB_H

#include <stddef.h>
#include <stdint.h>

#include "host.h"

#define BH_XEN_PAGE_SIZE 4096u
#define BH_GRANT_MAX_PAGES 1024u

typedef struct bh_gnt bh_gnt;

typedef struct {
    uint8_t *addr;
    uint32_t pages;
} bh_grant_region;

/* One handle for both directions (a gntshr and a gnttab handle). 0 or -errno. */
int bh_gnt_open(bh_gnt **out, char *err);
void bh_gnt_close(bh_gnt *g);
/* Shares `pages` fresh zeroed pages with `domid`; refs[pages] gets the grant references. */
int bh_gnt_share(bh_gnt *g, uint32_t domid, uint32_t pages, int writable, uint32_t *refs, bh_grant_region *out, char *err);
int bh_gnt_unshare(bh_gnt *g, bh_grant_region *region, char *err);
/* Maps `count` grant references of `domid` as one contiguous region. */
int bh_gnt_map(bh_gnt *g, uint32_t domid, const uint32_t *refs, uint32_t count, int writable, bh_grant_region *out, char *err);
int bh_gnt_unmap(bh_gnt *g, bh_grant_region *region, char *err);

/* Bounds-checked copies: -ERANGE unless [offset, offset + len) lies inside the region. */
int bh_grant_read(const bh_grant_region *r, uint64_t offset, void *dst, size_t len);
int bh_grant_write(const bh_grant_region *r, uint64_t offset, const void *src, size_t len);

#endif
