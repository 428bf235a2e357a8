/* XenStore (see xenstore.h), over libxenstore's socket connection to xenstored. The prototypes are
 * libxenstore's (xenstore.h of Xen 4.17), resolved by libs.c. */
#include "xenstore.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "libs.h"

struct xs_permissions_417 {
    unsigned int id;
    unsigned int perms;
};

struct bh_xs {
    void *h;
    void (*close)(void *);
    void *(*read)(void *, uint32_t, const char *, unsigned *);
    bool (*write)(void *, uint32_t, const char *, const void *, unsigned);
    bool (*mkdir)(void *, uint32_t, const char *);
    bool (*rm)(void *, uint32_t, const char *);
    char **(*directory)(void *, uint32_t, const char *, unsigned *);
    struct xs_permissions_417 *(*get_perms)(void *, uint32_t, const char *, unsigned *);
    bool (*set_perms)(void *, uint32_t, const char *, struct xs_permissions_417 *, unsigned);
    uint32_t (*tx_start)(void *);
    bool (*tx_end)(void *, uint32_t, bool);
    bool (*watch)(void *, const char *, const char *);
    bool (*unwatch)(void *, const char *, const char *);
    int (*fileno)(void *);
    char **(*check_watch)(void *);
};

static int fail(char *err, const char *what, const char *path) {
    int e = errno ? errno : EIO;
    snprintf(err, BH_XEN_ERR_LEN, "%s %.160s: %s", what, path ? path : "", strerror(e));
    return -e;
}

#define SYM(field, name) xs->field = (__typeof__(xs->field))bh_xen_sym(BH_XEN_LIB_STORE, name)

int bh_xs_open(bh_xs **out, char *err) {
    *out = NULL;
    bh_xen_libs_load();
    const bh_xen_lib_status *st = bh_xen_lib_info(BH_XEN_LIB_STORE);
    if (!st->loaded) {
        snprintf(err, BH_XEN_ERR_LEN, "libxenstore is missing: %.200s", st->error);
        return -ENOENT;
    }
    bh_xs *xs = calloc(1, sizeof *xs);
    if (!xs) return -ENOMEM;
    void *(*open_fn)(unsigned long) = (void *(*)(unsigned long))bh_xen_sym(BH_XEN_LIB_STORE, "xs_open");
    SYM(close, "xs_close");
    SYM(read, "xs_read");
    SYM(write, "xs_write");
    SYM(mkdir, "xs_mkdir");
    SYM(rm, "xs_rm");
    SYM(directory, "xs_directory");
    SYM(get_perms, "xs_get_permissions");
    SYM(set_perms, "xs_set_permissions");
    SYM(tx_start, "xs_transaction_start");
    SYM(tx_end, "xs_transaction_end");
    SYM(watch, "xs_watch");
    SYM(unwatch, "xs_unwatch");
    SYM(fileno, "xs_fileno");
    SYM(check_watch, "xs_check_watch");
    errno = 0;
    xs->h = open_fn(0);
    if (!xs->h) {
        int r = fail(err, "xs_open (is xenstored running?)", NULL);
        free(xs);
        return r;
    }
    *out = xs;
    return 0;
}

void bh_xs_close(bh_xs *xs) {
    if (!xs) return;
    xs->close(xs->h);
    free(xs);
}

int bh_xs_read(bh_xs *xs, uint32_t tx, const char *path, char **value, unsigned *len, char *err) {
    unsigned n = 0;
    errno = 0;
    char *v = xs->read(xs->h, tx, path, &n);
    if (!v) return fail(err, "xs_read", path);
    if (n > BH_XS_PAYLOAD_MAX) {
        free(v);
        snprintf(err, BH_XEN_ERR_LEN, "xs_read %.160s: %u bytes, more than XenStore's %d", path, n, BH_XS_PAYLOAD_MAX);
        return -EPROTO;
    }
    *value = v; /* libxenstore NUL-terminates at v[n] */
    *len = n;
    return 0;
}

int bh_xs_write(bh_xs *xs, uint32_t tx, const char *path, const void *data, unsigned len, char *err) {
    if (len > BH_XS_PAYLOAD_MAX) {
        snprintf(err, BH_XEN_ERR_LEN, "xs_write %.160s: %u bytes, more than XenStore's %d", path, len, BH_XS_PAYLOAD_MAX);
        return -E2BIG;
    }
    errno = 0;
    return xs->write(xs->h, tx, path, data, len) ? 0 : fail(err, "xs_write", path);
}

int bh_xs_mkdir(bh_xs *xs, uint32_t tx, const char *path, char *err) {
    errno = 0;
    return xs->mkdir(xs->h, tx, path) ? 0 : fail(err, "xs_mkdir", path);
}

int bh_xs_rm(bh_xs *xs, uint32_t tx, const char *path, char *err) {
    errno = 0;
    return xs->rm(xs->h, tx, path) ? 0 : fail(err, "xs_rm", path);
}

int bh_xs_directory(bh_xs *xs, uint32_t tx, const char *path, char ***names, unsigned *count, char *err) {
    unsigned n = 0;
    errno = 0;
    char **v = xs->directory(xs->h, tx, path, &n);
    if (!v) return fail(err, "xs_directory", path);
    /* Each name takes at least 2 bytes (a character and its NUL) of one payload. */
    if (n > BH_XS_PAYLOAD_MAX / 2) {
        free(v);
        snprintf(err, BH_XEN_ERR_LEN, "xs_directory %.160s: %u entries, more than a payload holds", path, n);
        return -EPROTO;
    }
    *names = v;
    *count = n;
    return 0;
}

int bh_xs_get_perms(bh_xs *xs, uint32_t tx, const char *path, bh_xs_perm **perms, unsigned *count, char *err) {
    unsigned n = 0;
    errno = 0;
    struct xs_permissions_417 *p = xs->get_perms(xs->h, tx, path, &n);
    if (!p) return fail(err, "xs_get_permissions", path);
    if (n == 0 || n > BH_XS_PAYLOAD_MAX / 2) {
        free(p);
        snprintf(err, BH_XEN_ERR_LEN, "xs_get_permissions %.160s: %u entries", path, n);
        return -EPROTO;
    }
    bh_xs_perm *out = calloc(n, sizeof *out);
    if (!out) {
        free(p);
        return -ENOMEM;
    }
    for (unsigned i = 0; i < n; i++) out[i] = (bh_xs_perm){.domid = p[i].id, .perms = p[i].perms & 3};
    free(p);
    *perms = out;
    *count = n;
    return 0;
}

int bh_xs_set_perms(bh_xs *xs, uint32_t tx, const char *path, const bh_xs_perm *perms, unsigned count, char *err) {
    if (count == 0 || count > 256) {
        snprintf(err, BH_XEN_ERR_LEN, "xs_set_permissions %.160s: %u entries (1..256 allowed)", path, count);
        return -EINVAL;
    }
    struct xs_permissions_417 p[256];
    for (unsigned i = 0; i < count; i++) p[i] = (struct xs_permissions_417){.id = perms[i].domid, .perms = perms[i].perms & 3};
    errno = 0;
    return xs->set_perms(xs->h, tx, path, p, count) ? 0 : fail(err, "xs_set_permissions", path);
}

int bh_xs_tx_start(bh_xs *xs, uint32_t *tx, char *err) {
    errno = 0;
    *tx = xs->tx_start(xs->h);
    return *tx != 0 ? 0 : fail(err, "xs_transaction_start", NULL);
}

int bh_xs_tx_end(bh_xs *xs, uint32_t tx, int abort, char *err) {
    errno = 0;
    return xs->tx_end(xs->h, tx, abort != 0) ? 0 : fail(err, "xs_transaction_end", NULL);
}

int bh_xs_watch(bh_xs *xs, const char *path, const char *token, char *err) {
    errno = 0;
    return xs->watch(xs->h, path, token) ? 0 : fail(err, "xs_watch", path);
}

int bh_xs_unwatch(bh_xs *xs, const char *path, const char *token, char *err) {
    errno = 0;
    return xs->unwatch(xs->h, path, token) ? 0 : fail(err, "xs_unwatch", path);
}

int bh_xs_fileno(bh_xs *xs) { return xs->fileno(xs->h); }

int bh_xs_next_event(bh_xs *xs, char **path, char **token, char *err) {
    *path = *token = NULL;
    errno = 0;
    char **ev = xs->check_watch(xs->h);
    if (!ev) {
        if (errno == 0 || errno == EAGAIN) return 0;
        return fail(err, "xs_check_watch", NULL);
    }
    /* ev[0] the path, ev[1] the token (XS_WATCH_PATH, XS_WATCH_TOKEN), in one block. */
    size_t pl = strnlen(ev[0], BH_XS_PAYLOAD_MAX + 1), tl = strnlen(ev[1], BH_XS_PAYLOAD_MAX + 1);
    if (pl > BH_XS_PAYLOAD_MAX || tl > BH_XS_PAYLOAD_MAX) {
        free(ev);
        snprintf(err, BH_XEN_ERR_LEN, "xs_check_watch: an event longer than a payload");
        return -EPROTO;
    }
    *path = strndup(ev[0], pl);
    *token = strndup(ev[1], tl);
    free(ev);
    if (!*path || !*token) {
        free(*path);
        free(*token);
        *path = *token = NULL;
        return -ENOMEM;
    }
    return 1;
}
