/*
 * io_thread.c — one I/O thread per VM: an epoll loop that serves the device models off the vCPU
 * threads. Queue notifications arrive as ioeventfds (the kernel signals them without an exit to
 * user space), host-side sockets and files are watched here too, and interrupts leave through
 * irqfds written from this thread. A vCPU therefore never waits for device I/O.
 *
 * The thread follows the VM's state machine (control.c): it is released with the vCPUs after
 * RUNNING was reported, parks when the VM pauses (bh_vm_pause returns only once it is parked, so
 * no device touches guest memory in a paused VM), and leaves when the VM stops. It is created by
 * bh_vm_start only if something is watched, and joined by bh_vm_stop/bh_vm_destroy before any
 * device is destroyed.
 *
 * Watches: epoll's data pointer is a bh_io_watch. bh_vm_io_unwatch removes the fd from epoll and
 * marks the watch dead; the I/O thread frees dead watches only at the end of a batch of events,
 * after it has skipped any event of that batch that still names them. Handlers run with no core
 * lock held.
 */
#include "internal.h"

#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#define IO_MAX_EVENTS 64

struct bh_io_watch {
    int fd;
    bh_io_event_handler handler;
    void *opaque;
    bool dead;                 /* atomic: set by unwatch, read by the I/O thread */
    struct bh_io_watch *next;  /* vm->io_watches (live) or vm->io_graveyard (dead) */
};

/* The control eventfd's epoll data: not a watch. */
static char control_marker;

static uint64_t thread_cpu_ns(clockid_t clock)
{
    struct timespec ts;
    if (clock_gettime(clock, &ts) != 0)
        return 0;
    return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

/* With vm->lock held. */
void bh_io_thread_wake_locked(bh_vm *vm)
{
    if (!vm->io_thread_created)
        return;
    pthread_cond_broadcast(&vm->io_wake);
    uint64_t one = 1;
    if (vm->io_control_fd >= 0 && write(vm->io_control_fd, &one, sizeof one) < 0) {
        /* EAGAIN: the counter is saturated, so the thread is being woken anyway. */
    }
}

bool bh_io_thread_parked_locked(const bh_vm *vm)
{
    return !vm->io_thread_created || vm->io_phase != BH_PHASE_RUNNING;
}

void bh_io_thread_request_stop_locked(bh_vm *vm)
{
    vm->io_stop = true;
    bh_io_thread_wake_locked(vm);
}

static void free_watch_list(struct bh_io_watch *w)
{
    while (w) {
        struct bh_io_watch *next = w->next;
        free(w);
        w = next;
    }
}

static void reap_graveyard(bh_vm *vm)
{
    pthread_mutex_lock(&vm->io_watch_lock);
    struct bh_io_watch *dead = vm->io_graveyard;
    vm->io_graveyard = NULL;
    pthread_mutex_unlock(&vm->io_watch_lock);
    free_watch_list(dead);
}

/* Parks while the VM is paused or not yet released. Returns false when the thread must leave. */
static bool wait_until_serving(bh_vm *vm)
{
    pthread_mutex_lock(&vm->lock);
    while (!vm->io_stop && (!vm->released || vm->pause_requested)) {
        vm->io_phase = BH_PHASE_PARKED;
        pthread_cond_broadcast(&vm->control);
        pthread_cond_wait(&vm->io_wake, &vm->lock);
    }
    bool serve = !vm->io_stop;
    vm->io_phase = BH_PHASE_RUNNING;
    pthread_mutex_unlock(&vm->lock);
    return serve;
}

static void drain_control(bh_vm *vm)
{
    uint64_t v;
    while (read(vm->io_control_fd, &v, sizeof v) > 0) {
    }
}

static void *io_thread_main(void *arg)
{
    bh_vm *vm = arg;
    struct epoll_event events[IO_MAX_EVENTS];
    pthread_setname_np(pthread_self(), "bh-io");
    while (wait_until_serving(vm)) {
        int n = epoll_wait(vm->io_epoll_fd, events, IO_MAX_EVENTS, -1);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            bh_vm_request_stop(vm, BH_EXIT_STOPPED, 0, "the I/O thread's epoll_wait failed");
            break;
        }
        for (int i = 0; i < n; i++) {
            if (events[i].data.ptr == &control_marker) {
                drain_control(vm);
                continue;
            }
            struct bh_io_watch *w = events[i].data.ptr;
            if (!__atomic_load_n(&w->dead, __ATOMIC_ACQUIRE))
                w->handler(w->opaque, events[i].events);
        }
        reap_graveyard(vm);
    }
    uint64_t cpu = thread_cpu_ns(CLOCK_THREAD_CPUTIME_ID);
    pthread_mutex_lock(&vm->lock);
    vm->io_cpu_ns_final = cpu;
    vm->io_phase = BH_PHASE_EXITED;
    pthread_cond_broadcast(&vm->control);
    pthread_mutex_unlock(&vm->lock);
    return NULL;
}

/* Lazily creates the epoll fd and the control eventfd (with vm->io_watch_lock held). */
static int ensure_epoll(bh_vm *vm, bh_error *err)
{
    if (vm->io_epoll_fd >= 0)
        return BH_OK;
    int ep = epoll_create1(EPOLL_CLOEXEC);
    if (ep < 0)
        return bh_fail_errno(err, "epoll_create1 for the I/O thread");
    int ctl = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (ctl < 0) {
        int rc = bh_fail_errno(err, "eventfd for the I/O thread");
        close(ep);
        return rc;
    }
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = &control_marker};
    if (epoll_ctl(ep, EPOLL_CTL_ADD, ctl, &ev) < 0) {
        int rc = bh_fail_errno(err, "epoll_ctl for the I/O thread's control eventfd");
        close(ctl);
        close(ep);
        return rc;
    }
    vm->io_control_fd = ctl;
    vm->io_epoll_fd = ep;
    return BH_OK;
}

/* With vm->lock held: starts the thread if something is watched and it is not running yet. The
 * caller has blocked every signal, so the thread starts with all signals blocked (it never wants
 * one: it is woken through the control eventfd). */
int bh_io_thread_start_locked(bh_vm *vm, bh_error *err)
{
    if (vm->io_thread_created || vm->io_epoll_fd < 0)
        return BH_OK;
    vm->io_phase = BH_PHASE_RUNNING; /* like a vCPU: not "parked" until it has looked at the flags */
    int rc = pthread_create(&vm->io_thread, NULL, io_thread_main, vm);
    if (rc != 0) {
        vm->io_phase = BH_PHASE_NOT_STARTED;
        return bh_fail(err, BH_E_SYSTEM, rc, "pthread_create for the I/O thread failed: %s", strerror(rc));
    }
    vm->io_thread_created = true;
    return BH_OK;
}

void bh_io_thread_join(bh_vm *vm)
{
    if (vm->io_thread_created && !vm->io_thread_joined) {
        pthread_join(vm->io_thread, NULL);
        vm->io_thread_joined = true;
    }
}

void bh_io_thread_destroy(bh_vm *vm)
{
    free_watch_list(vm->io_watches);
    free_watch_list(vm->io_graveyard);
    vm->io_watches = vm->io_graveyard = NULL;
    if (vm->io_control_fd >= 0)
        close(vm->io_control_fd);
    if (vm->io_epoll_fd >= 0)
        close(vm->io_epoll_fd);
    vm->io_control_fd = vm->io_epoll_fd = -1;
}

/* --------------------------------------------------------------------------------------------- */

static int start_if_running(bh_vm *vm, bh_error *err)
{
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    pthread_mutex_lock(&vm->lock);
    int rc = BH_OK;
    if ((vm->state == BH_VM_RUNNING || vm->state == BH_VM_PAUSED) && !vm->stop_requested)
        rc = bh_io_thread_start_locked(vm, err);
    pthread_mutex_unlock(&vm->lock);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    return rc;
}

int bh_vm_io_watch(bh_vm *vm, int fd, uint32_t events, bh_io_event_handler handler, void *opaque,
                   bh_error *err)
{
    if (!vm || fd < 0 || !handler)
        return bh_fail(err, BH_E_INVALID_ARG, 0, "bh_vm_io_watch: vm, a valid fd and a handler are required");
    struct bh_io_watch *w = calloc(1, sizeof *w);
    if (!w)
        return bh_fail(err, BH_E_NOMEM, ENOMEM, "out of memory for an I/O watch");
    w->fd = fd;
    w->handler = handler;
    w->opaque = opaque;
    pthread_mutex_lock(&vm->io_watch_lock);
    int rc = ensure_epoll(vm, err);
    if (rc == BH_OK) {
        struct epoll_event ev = {.events = events, .data.ptr = w};
        if (epoll_ctl(vm->io_epoll_fd, EPOLL_CTL_ADD, fd, &ev) < 0)
            rc = bh_fail_errno(err, "epoll_ctl(EPOLL_CTL_ADD) for an I/O watch");
    }
    if (rc == BH_OK) {
        w->next = vm->io_watches;
        vm->io_watches = w;
    }
    pthread_mutex_unlock(&vm->io_watch_lock);
    if (rc != BH_OK) {
        free(w);
        return rc;
    }
    return start_if_running(vm, err);
}

static struct bh_io_watch **find_watch_locked(bh_vm *vm, int fd)
{
    for (struct bh_io_watch **p = &vm->io_watches; *p; p = &(*p)->next)
        if ((*p)->fd == fd)
            return p;
    return NULL;
}

int bh_vm_io_rewatch(bh_vm *vm, int fd, uint32_t events, bh_error *err)
{
    if (!vm)
        return bh_fail(err, BH_E_INVALID_ARG, 0, "bh_vm_io_rewatch: vm is NULL");
    pthread_mutex_lock(&vm->io_watch_lock);
    struct bh_io_watch **p = find_watch_locked(vm, fd);
    int rc = BH_OK;
    if (!p) {
        rc = bh_fail(err, BH_E_INVALID_ARG, 0, "fd %d is not watched by this VM's I/O thread", fd);
    } else {
        struct epoll_event ev = {.events = events, .data.ptr = *p};
        if (epoll_ctl(vm->io_epoll_fd, EPOLL_CTL_MOD, fd, &ev) < 0)
            rc = bh_fail_errno(err, "epoll_ctl(EPOLL_CTL_MOD) for an I/O watch");
    }
    pthread_mutex_unlock(&vm->io_watch_lock);
    return rc;
}

void bh_vm_io_unwatch(bh_vm *vm, int fd)
{
    if (!vm)
        return;
    pthread_mutex_lock(&vm->io_watch_lock);
    struct bh_io_watch **p = find_watch_locked(vm, fd);
    if (p) {
        struct bh_io_watch *w = *p;
        *p = w->next;
        epoll_ctl(vm->io_epoll_fd, EPOLL_CTL_DEL, fd, NULL);
        __atomic_store_n(&w->dead, true, __ATOMIC_RELEASE);
        w->next = vm->io_graveyard;
        vm->io_graveyard = w;
    }
    pthread_mutex_unlock(&vm->io_watch_lock);
}

uint64_t bh_vm_io_thread_cpu_ns(const bh_vm *vm)
{
    if (!vm)
        return 0;
    bh_vm *m = (bh_vm *)vm;
    pthread_mutex_lock(&m->lock);
    uint64_t ns = m->io_cpu_ns_final;
    bool live = m->io_thread_created && m->io_phase != BH_PHASE_EXITED;
    clockid_t clock;
    if (live && pthread_getcpuclockid(m->io_thread, &clock) == 0) {
        uint64_t now = thread_cpu_ns(clock);
        if (now)
            ns = now;
    }
    pthread_mutex_unlock(&m->lock);
    return ns;
}
