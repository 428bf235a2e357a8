/*
 * loop.c — the agent's one epoll loop.
 *
 * A callback may free objects whose watches are still in the current batch: loop_del marks the
 * watch unregistered (fd -1) and loop_defer_free keeps the memory alive until the batch is done,
 * so a later event of the same batch sees fd == -1 (or a watch taken out of epoll, armed false)
 * and is skipped.
 */
#include "agent.h"

#include <errno.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <unistd.h>

#define BATCH 64

static int epfd = -1;
static bool quitting;
static void (*after_batch)(void);
static void **graveyard;
static size_t graves, graves_cap;

int loop_init(void)
{
    epfd = epoll_create1(EPOLL_CLOEXEC);
    return epfd < 0 ? -1 : 0;
}

static int epoll_update(ag_watch *w, int op, uint32_t events)
{
    struct epoll_event ev = {.events = events, .data.ptr = w};
    return epoll_ctl(epfd, op, w->fd, &ev);
}

int loop_add(ag_watch *w, int fd, uint32_t events, ag_watch_fn fn, void *ctx)
{
    w->fd = fd;
    w->events = 0;
    w->armed = false;
    w->fn = fn;
    w->ctx = ctx;
    if (!events) return 0;
    if (epoll_update(w, EPOLL_CTL_ADD, events) < 0) {
        w->fd = -1;
        return -1;
    }
    w->events = events;
    w->armed = true;
    return 0;
}

void loop_set(ag_watch *w, uint32_t events)
{
    if (w->fd < 0 || w->events == events) return;
    if (!events) {
        if (w->armed) epoll_update(w, EPOLL_CTL_DEL, 0);
        w->armed = false;
        w->events = 0;
        return;
    }
    if (epoll_update(w, w->armed ? EPOLL_CTL_MOD : EPOLL_CTL_ADD, events) < 0) {
        ag_log("epoll_ctl on fd %d failed (errno %d)", w->fd, errno);
        return;
    }
    w->events = events;
    w->armed = true;
}

void loop_del(ag_watch *w)
{
    if (w->fd < 0) return;
    if (w->armed) epoll_update(w, EPOLL_CTL_DEL, 0);
    w->fd = -1;
    w->armed = false;
    w->events = 0;
}

void loop_defer_free(void *p)
{
    if (!p) return;
    if (graves == graves_cap) {
        size_t cap = graves_cap ? graves_cap * 2 : 16;
        void **g = realloc(graveyard, cap * sizeof *g);
        if (!g) {
            /* Out of memory: leaking is safer than freeing memory the batch may still use. */
            return;
        }
        graveyard = g;
        graves_cap = cap;
    }
    graveyard[graves++] = p;
}

void loop_quit(void) { quitting = true; }

void loop_after_batch(void (*fn)(void)) { after_batch = fn; }

void loop_poll(int timeout_ms)
{
    struct epoll_event evs[BATCH];
    int n = epoll_wait(epfd, evs, BATCH, timeout_ms);
    if (n < 0) {
        if (errno != EINTR) {
            ag_log("epoll_wait failed (errno %d); the agent stops", errno);
            quitting = true;
        }
        return;
    }
    for (int i = 0; i < n; i++) {
        ag_watch *w = evs[i].data.ptr;
        if (w->fd >= 0 && w->armed && w->fn) w->fn(w, evs[i].events); /* not since taken out this batch */
    }
    if (after_batch) after_batch();
    for (size_t i = 0; i < graves; i++) free(graveyard[i]);
    graves = 0;
}

void loop_run(void)
{
    while (!quitting) loop_poll(-1);
}
