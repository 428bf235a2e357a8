/* XenStore through libxenstore: one connection, reads, writes, directories, permissions,
 * transactions and watches. Values come from any domain that can write the node: every length is
 * checked against XenStore's own payload limit before it is copied. */
#ifndef BULKHEAD_XEN_XENSTORE_H
#define BULKHEAD_XEN_XENSTORE_H

#include <stddef.h>
#include <stdint.h>

#include "host.h"

/* XENSTORE_PAYLOAD_MAX (xen/io/xs_wire.h): no value or listing is longer. */
#define BH_XS_PAYLOAD_MAX 4096

typedef struct bh_xs bh_xs;

typedef struct {
    uint32_t domid;
    unsigned perms; /* 0 none, 1 read, 2 write, 3 both */
} bh_xs_perm;

/* All return 0 or -errno with a message in err. */
int bh_xs_open(bh_xs **out, char *err);
void bh_xs_close(bh_xs *xs);
/* *value is malloc'd (len bytes + NUL); the caller frees it. */
int bh_xs_read(bh_xs *xs, uint32_t tx, const char *path, char **value, unsigned *len, char *err);
int bh_xs_write(bh_xs *xs, uint32_t tx, const char *path, const void *data, unsigned len, char *err);
int bh_xs_mkdir(bh_xs *xs, uint32_t tx, const char *path, char *err);
int bh_xs_rm(bh_xs *xs, uint32_t tx, const char *path, char *err);
/* *names is one malloc'd block (free it); *count names. */
int bh_xs_directory(bh_xs *xs, uint32_t tx, const char *path, char ***names, unsigned *count, char *err);
/* *perms is malloc'd (free it). */
int bh_xs_get_perms(bh_xs *xs, uint32_t tx, const char *path, bh_xs_perm **perms, unsigned *count, char *err);
int bh_xs_set_perms(bh_xs *xs, uint32_t tx, const char *path, const bh_xs_perm *perms, unsigned count, char *err);
int bh_xs_tx_start(bh_xs *xs, uint32_t *tx, char *err);
/* -EAGAIN: another writer got there first, nothing was committed. */
int bh_xs_tx_end(bh_xs *xs, uint32_t tx, int abort, char *err);
int bh_xs_watch(bh_xs *xs, const char *path, const char *token, char *err);
int bh_xs_unwatch(bh_xs *xs, const char *path, const char *token, char *err);
/* A descriptor that becomes readable when a watch event is queued. */
int bh_xs_fileno(bh_xs *xs);
/* The next queued event without blocking: 1 (path/token malloc'd, free both), 0 none, or -errno. */
int bh_xs_next_event(bh_xs *xs, char **path, char **token, char *err);

#endif
