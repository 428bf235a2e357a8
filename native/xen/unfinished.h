/* Domains a build has created that no caller owns yet: from xc_domain_create until the toolstack
 * has attached them (its XenStore keys and console) or destroyed them. A process that exits in
 * between (process.exit() while the build runs on Node's thread pool, or before the JS side took
 * it) would leave a paused domain nobody knows; at exit() they are destroyed instead. A signal that
 * kills the process outright runs no exit handler: that case stays a paused orphan. */
#ifndef BULKHEAD_XEN_UNFINISHED_H
#define BULKHEAD_XEN_UNFINISHED_H

#include <stdint.h>

/* Records domid as unfinished (and, once per process, registers the exit handler). */
void bh_xen_unfinished_add(uint32_t domid);
/* The caller owns domid now, or it is gone: the exit handler leaves it alone. */
void bh_xen_unfinished_done(uint32_t domid);
/* Destroys domid now (a build whose caller went away before it could take it), and marks it done. */
void bh_xen_unfinished_destroy(uint32_t domid);

#endif
