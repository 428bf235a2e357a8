/* Event channels through libxenevtchn: one handle (one /dev/xen/evtchn open) with its ports. */
#ifndef BULKHEAD_XEN_EVTCHN_H
#define BULKHEAD_XEN_EVTCHN_H

#include <stdint.h>

#include "host.h"

typedef struct bh_evtchn bh_evtchn;

/* All return >= 0 (a port, or 0) or -errno with a message in err. */
int bh_evtchn_open(bh_evtchn **out, char *err);
void bh_evtchn_close(bh_evtchn *e);
int bh_evtchn_fd(bh_evtchn *e);
int bh_evtchn_bind_unbound(bh_evtchn *e, uint32_t remote_domid, char *err);
int bh_evtchn_bind_interdomain(bh_evtchn *e, uint32_t remote_domid, uint32_t remote_port, char *err);
int bh_evtchn_notify(bh_evtchn *e, uint32_t port, char *err);
int bh_evtchn_unmask(bh_evtchn *e, uint32_t port, char *err);
int bh_evtchn_unbind(bh_evtchn *e, uint32_t port, char *err);
/* The next pending port (masked until unmasked), -EAGAIN when none is pending. */
int bh_evtchn_pending(bh_evtchn *e, char *err);

#endif
