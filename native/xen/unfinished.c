/* unfinished.c — see unfinished.h. Builds run on several threads at once, so the list is locked. */
#include <pthread.h>
#include <stdlib.h>

#include "host.h"
#include "unfinished.h"

#define MAX_UNFINISHED 256 /* far more builds than a process runs at once; past it, no exit cleanup */

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_once_t registered = PTHREAD_ONCE_INIT;
static uint32_t domids[MAX_UNFINISHED];
static unsigned count;

/* Opens the host for the destroy: these run where no caller is left to hand a handle or an error to. */
static void destroy_domains(const uint32_t *ids, unsigned n)
{
    char err[BH_XEN_ERR_LEN] = "";
    bh_xen_host *host = NULL;
    if (n == 0 || bh_xen_host_open(&host, err) < 0)
        return;
    for (unsigned i = 0; i < n; i++)
        bh_xen_host_domain_op(host, ids[i], BH_XEN_DOMAIN_DESTROY, err);
    bh_xen_host_close(host);
}

static void destroy_unfinished(void)
{
    pthread_mutex_lock(&lock);
    destroy_domains(domids, count);
    count = 0;
    pthread_mutex_unlock(&lock);
}

static void register_handler(void)
{
    atexit(destroy_unfinished);
}

void bh_xen_unfinished_add(uint32_t domid)
{
    pthread_once(&registered, register_handler);
    pthread_mutex_lock(&lock);
    if (count < MAX_UNFINISHED)
        domids[count++] = domid;
    pthread_mutex_unlock(&lock);
}

void bh_xen_unfinished_done(uint32_t domid)
{
    pthread_mutex_lock(&lock);
    for (unsigned i = 0; i < count; i++) {
        if (domids[i] == domid) {
            domids[i] = domids[--count];
            break;
        }
    }
    pthread_mutex_unlock(&lock);
}

void bh_xen_unfinished_destroy(uint32_t domid)
{
    destroy_domains(&domid, 1);
    bh_xen_unfinished_done(domid);
}
