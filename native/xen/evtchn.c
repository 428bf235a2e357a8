/* Event channels (see evtchn.h); prototypes of libxenevtchn (xenevtchn.h, Xen 4.17). */
#include "evtchn.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "libs.h"

struct bh_evtchn {
    void *h;
    int (*close)(void *);
    int (*fd)(void *);
    int (*bind_unbound)(void *, uint32_t);
    int (*bind_interdomain)(void *, uint32_t, uint32_t);
    int (*notify)(void *, uint32_t);
    int (*unmask)(void *, uint32_t);
    int (*unbind)(void *, uint32_t);
    int (*pending)(void *);
};

static int fail(char *err, const char *what, uint32_t arg) {
    int e = errno ? errno : EIO;
    snprintf(err, BH_XEN_ERR_LEN, "%s(%u): %s", what, arg, strerror(e));
    return -e;
}

#define SYM(field, name) e->field = (__typeof__(e->field))bh_xen_sym(BH_XEN_LIB_EVTCHN, name)

int bh_evtchn_open(bh_evtchn **out, char *err) {
    *out = NULL;
    bh_xen_libs_load();
    const bh_xen_lib_status *st = bh_xen_lib_info(BH_XEN_LIB_EVTCHN);
    if (!st->loaded) {
        snprintf(err, BH_XEN_ERR_LEN, "libxenevtchn is missing: %.200s", st->error);
        return -ENOENT;
    }
    bh_evtchn *e = calloc(1, sizeof *e);
    if (!e) return -ENOMEM;
    void *(*open_fn)(void *, unsigned) = (void *(*)(void *, unsigned))bh_xen_sym(BH_XEN_LIB_EVTCHN, "xenevtchn_open");
    SYM(close, "xenevtchn_close");
    SYM(fd, "xenevtchn_fd");
    SYM(bind_unbound, "xenevtchn_bind_unbound_port");
    SYM(bind_interdomain, "xenevtchn_bind_interdomain");
    SYM(notify, "xenevtchn_notify");
    SYM(unmask, "xenevtchn_unmask");
    SYM(unbind, "xenevtchn_unbind");
    SYM(pending, "xenevtchn_pending");
    errno = 0;
    e->h = open_fn(NULL, 0);
    if (!e->h) {
        int r = fail(err, "xenevtchn_open (/dev/xen/evtchn)", 0);
        free(e);
        return r;
    }
    /* Non-blocking, so pending() answers "none" instead of waiting (the event loop polls the fd). */
    int fd = e->fd(e->h);
    int fl = fcntl(fd, F_GETFL);
    if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0) {
        int r = fail(err, "fcntl O_NONBLOCK on the evtchn fd", (uint32_t)fd);
        e->close(e->h);
        free(e);
        return r;
    }
    *out = e;
    return 0;
}

void bh_evtchn_close(bh_evtchn *e) {
    if (!e) return;
    e->close(e->h); /* unbinds every port this handle bound */
    free(e);
}

int bh_evtchn_fd(bh_evtchn *e) { return e->fd(e->h); }

int bh_evtchn_bind_unbound(bh_evtchn *e, uint32_t remote_domid, char *err) {
    errno = 0;
    int p = e->bind_unbound(e->h, remote_domid);
    return p >= 0 ? p : fail(err, "xenevtchn_bind_unbound_port", remote_domid);
}

int bh_evtchn_bind_interdomain(bh_evtchn *e, uint32_t remote_domid, uint32_t remote_port, char *err) {
    errno = 0;
    int p = e->bind_interdomain(e->h, remote_domid, remote_port);
    if (p >= 0) return p;
    int r = -(errno ? errno : EIO);
    snprintf(err, BH_XEN_ERR_LEN, "xenevtchn_bind_interdomain(domain %u, port %u): %s", remote_domid, remote_port, strerror(-r));
    return r;
}

int bh_evtchn_notify(bh_evtchn *e, uint32_t port, char *err) {
    errno = 0;
    return e->notify(e->h, port) == 0 ? 0 : fail(err, "xenevtchn_notify", port);
}

int bh_evtchn_unmask(bh_evtchn *e, uint32_t port, char *err) {
    errno = 0;
    return e->unmask(e->h, port) == 0 ? 0 : fail(err, "xenevtchn_unmask", port);
}

int bh_evtchn_unbind(bh_evtchn *e, uint32_t port, char *err) {
    errno = 0;
    return e->unbind(e->h, port) == 0 ? 0 : fail(err, "xenevtchn_unbind", port);
}

int bh_evtchn_pending(bh_evtchn *e, char *err) {
    errno = 0;
    int p = e->pending(e->h);
    if (p >= 0) return p;
    if (errno == EAGAIN || errno == EWOULDBLOCK) return -EAGAIN;
    return fail(err, "xenevtchn_pending", 0);
}
