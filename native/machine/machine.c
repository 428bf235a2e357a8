/*
 * machine.c — the machine builder: one call from a description (kernel, initrd, command line,
 * memory, vCPUs, disks, console, rng, vsock) to a VM ready to start, and its life after that.
 * See bulkhead.h, "The machine builder", for the device order and the command line it writes.
 */
#include <errno.h>
#include <stdarg.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

#include "machine_internal.h"

#define SERIAL_RING_BYTES 4096 /* the machine keeps its own tail of both consoles */
#define CMDLINE_PREFIX "reboot=k,panic_warm panic=-1"
#define CMDLINE_EXTRA 2048     /* room for the prefix and the virtio_mmio.device= entries */

uint64_t bh_machine_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

static int invalid(bh_error *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int invalid(bh_error *err, const char *fmt, ...)
{
    if (err) {
        va_list ap;
        va_start(ap, fmt);
        err->code = BH_E_INVALID_ARG;
        err->sys_errno = 0;
        vsnprintf(err->message, sizeof err->message, fmt, ap);
        va_end(ap);
    }
    return BH_E_INVALID_ARG;
}

/* A read-only mapping of a whole file (its pages are dropped again after the copy into guest RAM). */
typedef struct mapped_file {
    const uint8_t *data;
    size_t len;
    bool mapped;
} mapped_file;

static int map_file(const char *what, const char *path, mapped_file *f, bh_error *err)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) != 0) {
        int e = errno;
        if (fd >= 0)
            close(fd);
        int rc = invalid(err, "%s %s cannot be read: %s", what, path, strerror(e));
        if (err)
            err->sys_errno = e;
        return rc;
    }
    if (!S_ISREG(st.st_mode) || st.st_size == 0) {
        close(fd);
        return invalid(err, "%s %s is not a non-empty regular file", what, path);
    }
    void *p = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
    close(fd);
    if (p == MAP_FAILED)
        return invalid(err, "%s %s cannot be mapped: %s", what, path, strerror(errno));
    *f = (mapped_file){p, (size_t)st.st_size, true};
    return BH_OK;
}

static void unmap_file(mapped_file *f)
{
    if (f->mapped)
        munmap((void *)f->data, f->len);
    *f = (mapped_file){0};
}

/* --------------------------------------------------------------------------------------------- */
/* Callbacks from the VM and the devices                                                           */

static void on_vcpu_exit(void *opaque, const bh_vcpu_exit *exit)
{
    bh_machine *m = opaque;
    pthread_mutex_lock(&m->lock);
    if (!m->have_cause && exit->reason != BH_EXIT_STOPPED) {
        m->cause = *exit;
        m->have_cause = true;
    }
    pthread_mutex_unlock(&m->lock);
}

static void on_vm_state(void *opaque, bh_vm_state state)
{
    bh_machine *m = opaque;
    if (state != BH_VM_STOPPED)
        return;
    pthread_mutex_lock(&m->lock);
    bool report = !m->ended && m->started;
    if (!m->ended) {
        bh_machine_classify_locked(m);
        m->ended = true;
        pthread_cond_broadcast(&m->ended_cond);
    }
    bh_machine_exit exit = m->exit;
    pthread_mutex_unlock(&m->lock);
    if (report && m->config.on_end)
        m->config.on_end(m->config.opaque, &exit);
}

static void emit(bh_machine *m, const bh_machine_event *e)
{
    if (m->config.on_event)
        m->config.on_event(m->config.opaque, e);
}

static void on_device_broken(void *opaque, const char *device, const char *reason)
{
    bh_machine *m = opaque;
    pthread_mutex_lock(&m->lock);
    if (!m->device_failed) {
        m->device_failed = true;
        snprintf(m->failed_device, sizeof m->failed_device, "%s", device);
    }
    pthread_mutex_unlock(&m->lock);
    bh_machine_event e = {.kind = BH_MACHINE_EVENT_DEVICE_BROKEN, .ns_since_create = bh_machine_now_ns() - m->created_ns};
    snprintf(e.device, sizeof e.device, "%s", device);
    snprintf(e.reason, sizeof e.reason, "%s", reason);
    emit(m, &e);
}

static void on_power(void *opaque, bh_power_request request, uint32_t argument, uint64_t ns_since_start)
{
    bh_machine *m = opaque;
    if (request != BH_POWER_REQUEST_MARKER)
        return; /* power-off and reboot end the VM; the exit says so */
    bh_machine_event e = {.kind = BH_MACHINE_EVENT_BOOT_MARKER, .marker = argument, .ns_since_create = ns_since_start};
    emit(m, &e);
}

static void on_serial(void *opaque, const uint8_t *data, size_t len)
{
    bh_machine_console_bytes(opaque, BH_CONSOLE_SERIAL, data, len);
}

static void on_hvc(void *opaque, const uint8_t *data, size_t len)
{
    bh_machine_console_bytes(opaque, BH_CONSOLE_VIRTIO, data, len);
}

/* The panic line's grace ran out and the guest is still there (panic=0 spins): end it as a panic. */
static void on_panic_timer(void *opaque, uint32_t events)
{
    bh_machine *m = opaque;
    uint64_t ticks;
    (void)events;
    if (read(m->panic_timer_fd, &ticks, sizeof ticks) != sizeof ticks)
        return;
    pthread_mutex_lock(&m->lock);
    bool act = !m->ended;
    if (act)
        m->panic_stop = true;
    pthread_mutex_unlock(&m->lock);
    if (act)
        bh_vm_request_stop(m->vm, BH_EXIT_GUEST_REQUEST, BH_GUEST_REQUEST_OTHER, "kernel panic (console)");
}

/* --------------------------------------------------------------------------------------------- */
/* Building                                                                                         */

static int validate(const bh_machine_config *c, bh_error *err)
{
    bool kernel_path = c->kernel_path && c->kernel_path[0], kernel_bytes = c->kernel && c->kernel_len;
    if (kernel_path == kernel_bytes)
        return invalid(err, "kernel: give exactly one of kernel_path or kernel bytes");
    if (c->initrd_path && c->initrd)
        return invalid(err, "initrd: give at most one of initrd_path or initrd bytes");
    if (c->initrd_len && !c->initrd)
        return invalid(err, "initrd_len is %zu but initrd is NULL", c->initrd_len);
    if (c->disk_count > BH_MACHINE_MAX_DISKS)
        return invalid(err, "%zu disks: at most %d", c->disk_count, BH_MACHINE_MAX_DISKS);
    if (c->disk_count && !c->disks)
        return invalid(err, "disk_count is %zu but disks is NULL", c->disk_count);
    for (size_t i = 0; i < c->disk_count; i++)
        if (!c->disks[i].path || !c->disks[i].path[0])
            return invalid(err, "disk %zu has no path", i);
    if (c->vsock && (!c->vsock_uds || !c->vsock_uds[0]))
        return invalid(err, "vsock: vsock_uds (the host socket path) is required");
    if (c->cmdline && strlen(c->cmdline) > 64 * 1024)
        return invalid(err, "cmdline of %zu bytes is too long", strlen(c->cmdline));
    return BH_OK;
}

static bh_virtio_config device_common(bh_machine *m, const bh_virtio_slot *slot, const char *name)
{
    return (bh_virtio_config){
        .slot = *slot,
        .name = name,
        .on_broken = on_device_broken,
        .opaque = m,
        .stop_vm_on_failure = !m->config.keep_running_on_device_failure,
    };
}

static int add_devices(bh_machine *m, const bh_machine_config *c, bh_mmio_window *w, bh_error *err)
{
    int rc;
    bh_serial_config sc = {.port = 0x3f8, .irq = 4, .ring_bytes = SERIAL_RING_BYTES, .output = on_serial, .opaque = m};
    bh_power_config pc = {.start_ns = m->created_ns, .on_request = on_power, .opaque = m};
    if ((rc = bh_serial_create(m->vm, &sc, &m->serial, err)) || (rc = bh_i8042_create(m->vm, &m->i8042, err)) ||
        (rc = bh_power_create(m->vm, &pc, &m->power, err)))
        return rc;
    bh_virtio_slot slot;
    for (size_t i = 0; i < c->disk_count; i++) {
        char name[8];
        snprintf(name, sizeof name, "vd%c", (char)('a' + i));
        bh_virtio_blk_config bc = {.path = c->disks[i].path, .read_only = c->disks[i].read_only,
                                   .serial = c->disks[i].serial};
        bh_virtio_config common;
        if ((rc = bh_mmio_window_alloc(w, &slot, err)))
            return rc;
        common = device_common(m, &slot, name);
        if ((rc = bh_virtio_blk_create(m->vm, &common, &bc, &m->disks[i], err)))
            return rc;
        m->disk_count = i + 1;
    }
    if (c->virtio_console) {
        bh_virtio_console_config kc = {.output = on_hvc, .opaque = m};
        bh_virtio_config common;
        if ((rc = bh_mmio_window_alloc(w, &slot, err)))
            return rc;
        common = device_common(m, &slot, "hvc0");
        if ((rc = bh_virtio_console_create(m->vm, &common, &kc, &m->console, err)))
            return rc;
    }
    if (c->rng) {
        bh_virtio_config common;
        if ((rc = bh_mmio_window_alloc(w, &slot, err)))
            return rc;
        common = device_common(m, &slot, "rng");
        if ((rc = bh_virtio_rng_create(m->vm, &common, &m->rng, err)))
            return rc;
    }
    if (c->vsock) {
        bh_virtio_vsock_config vc = {.guest_cid = c->vsock_cid ? c->vsock_cid : 3, .uds_path = c->vsock_uds};
        bh_virtio_config common;
        if ((rc = bh_mmio_window_alloc(w, &slot, err)))
            return rc;
        common = device_common(m, &slot, "vsock");
        if ((rc = bh_virtio_vsock_create(m->vm, &common, &vc, &m->vsock, err)))
            return rc;
    }
    return BH_OK;
}

static int load_kernel(bh_machine *m, const bh_machine_config *c, const bh_mmio_window *w, bh_error *err)
{
    mapped_file kernel = {c->kernel, c->kernel_len, false}, initrd = {c->initrd, c->initrd_len, false};
    int rc = BH_OK;
    size_t user = c->cmdline ? strlen(c->cmdline) : 0;
    size_t cap = user + CMDLINE_EXTRA;
    char *cmdline = malloc(cap);
    if (!cmdline)
        return invalid(err, "out of memory for the command line");
    snprintf(cmdline, cap, "%s%s%s", CMDLINE_PREFIX, user ? " " : "", user ? c->cmdline : "");
    if ((rc = bh_mmio_window_cmdline(w, cmdline, cap, err)))
        goto out;
    if (c->kernel_path && (rc = map_file("kernel", c->kernel_path, &kernel, err)))
        goto out;
    if (c->initrd_path && (rc = map_file("initrd", c->initrd_path, &initrd, err)))
        goto out;
    bh_linux_boot_config bc = {.kernel = kernel.data, .kernel_len = kernel.len, .initrd = initrd.data,
                               .initrd_len = initrd.len, .cmdline = cmdline, .entry = c->entry};
    rc = bh_boot_linux(m->vm, &bc, NULL, err);
out:
    unmap_file(&kernel);
    unmap_file(&initrd);
    free(cmdline);
    return rc;
}

static int build(bh_machine *m, const bh_machine_config *c, bh_error *err)
{
    int rc = bh_console_tail_init(&m->tail, c->console_tail_bytes);
    if (rc)
        return invalid(err, "out of memory for the console tail");
    bh_vm_config vc = {.memory_bytes = c->memory_bytes, .vcpus = c->vcpus, .irqchip = true,
                       .on_exit = on_vcpu_exit, .on_state = on_vm_state, .opaque = m};
    if ((rc = bh_vm_create(m->kvm, &vc, &m->vm, err)))
        return rc;
    if (!bh_vm_has_irqchip(m->vm)) {
        if (err)
            *err = (bh_error){.code = BH_E_UNAVAILABLE, .message = "this host's KVM has no in-kernel irqchip, which the "
                                                                    "machine's devices need"};
        return BH_E_UNAVAILABLE;
    }
    bh_mmio_window w;
    bh_mmio_window_init(&w);
    if ((rc = add_devices(m, c, &w, err)) || (rc = load_kernel(m, c, &w, err)))
        return rc;
    m->panic_timer_fd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
    if (m->panic_timer_fd < 0) {
        if (err)
            *err = (bh_error){.code = BH_E_SYSTEM, .sys_errno = errno, .message = "timerfd_create for the panic grace"};
        return BH_E_SYSTEM;
    }
    return bh_vm_io_watch(m->vm, m->panic_timer_fd, EPOLLIN, on_panic_timer, m, err);
}

int bh_machine_create(bh_kvm *kvm, const bh_machine_config *config, bh_machine **out, bh_error *err)
{
    if (!kvm || !config || !out)
        return invalid(err, "bh_machine_create: kvm, config and out are required");
    *out = NULL;
    int rc = validate(config, err);
    if (rc)
        return rc;
    bh_machine *m = calloc(1, sizeof *m);
    if (!m)
        return invalid(err, "out of memory for the machine");
    m->created_ns = bh_machine_now_ns();
    m->kvm = kvm;
    m->config = *config;
    m->config.kernel_path = m->config.initrd_path = m->config.cmdline = m->config.vsock_uds = NULL;
    m->config.kernel = m->config.initrd = NULL;
    m->config.disks = NULL;
    m->panic_timer_fd = -1;
    pthread_mutex_init(&m->lock, NULL);
    pthread_cond_init(&m->ended_cond, NULL);
    if ((rc = build(m, config, err))) {
        bh_machine_destroy(m);
        return rc;
    }
    *out = m;
    return BH_OK;
}

/* --------------------------------------------------------------------------------------------- */
/* Life                                                                                             */

int bh_machine_start(bh_machine *m, bh_error *err)
{
    pthread_mutex_lock(&m->lock);
    bool again = m->started;
    m->started = true;
    pthread_mutex_unlock(&m->lock);
    if (again) {
        if (err)
            *err = (bh_error){.code = BH_E_STATE, .message = "the machine was already started (a machine runs once)"};
        return BH_E_STATE;
    }
    return bh_vm_start(m->vm, err);
}

int bh_machine_wait(bh_machine *m, int64_t timeout_ms, bh_machine_exit *out, bh_error *err)
{
    struct timespec deadline;
    clock_gettime(CLOCK_REALTIME, &deadline);
    if (timeout_ms >= 0) {
        long long ns = deadline.tv_nsec + (timeout_ms % 1000) * 1000000LL;
        deadline.tv_sec += timeout_ms / 1000 + ns / 1000000000LL;
        deadline.tv_nsec = ns % 1000000000LL;
    }
    pthread_mutex_lock(&m->lock);
    while (!m->ended) {
        if (timeout_ms < 0)
            pthread_cond_wait(&m->ended_cond, &m->lock);
        else if (pthread_cond_timedwait(&m->ended_cond, &m->lock, &deadline) == ETIMEDOUT)
            break;
    }
    bool ended = m->ended;
    if (ended && out)
        *out = m->exit;
    pthread_mutex_unlock(&m->lock);
    if (!ended) {
        if (err)
            *err = (bh_error){.code = BH_E_TIMEOUT, .message = "the machine is still running"};
        return BH_E_TIMEOUT;
    }
    return BH_OK;
}

int bh_machine_stop(bh_machine *m, bh_error *err)
{
    return bh_vm_stop(m->vm, err);
}

void bh_machine_destroy(bh_machine *m)
{
    if (!m)
        return;
    /* The VM first: it joins every thread, then frees the devices it owns. */
    if (m->vm)
        bh_vm_destroy(m->vm);
    m->vm = NULL;
    if (m->panic_timer_fd >= 0)
        close(m->panic_timer_fd);
    bh_console_tail_free(&m->tail);
    pthread_cond_destroy(&m->ended_cond);
    pthread_mutex_destroy(&m->lock);
    free(m);
}

size_t bh_machine_console_input(bh_machine *m, bh_console_source to, const uint8_t *data, size_t len)
{
    if (to == BH_CONSOLE_VIRTIO || (to == BH_CONSOLE_DEFAULT && m->console))
        return m->console ? bh_virtio_console_input(m->console, data, len) : 0;
    return m->serial ? bh_serial_input(m->serial, data, len) : 0;
}

bh_vm *bh_machine_vm(bh_machine *m)
{
    return m->vm;
}

void bh_machine_get_stats(bh_machine *m, bh_machine_stats *out)
{
    memset(out, 0, sizeof *out);
    bh_vm_get_stats(m->vm, &out->vm);
    out->vcpus = bh_vm_vcpu_count(m->vm);
    for (uint32_t i = 0; i < out->vcpus; i++)
        out->vcpu_cpu_ns += bh_vcpu_cpu_ns(m->vm, i);
    out->io_cpu_ns = bh_vm_io_thread_cpu_ns(m->vm);
    out->disk_count = (uint32_t)m->disk_count;
    for (size_t i = 0; i < m->disk_count; i++)
        bh_virtio_blk_stats(m->disks[i], &out->disks[i]);
    if (m->console)
        bh_virtio_console_stats(m->console, &out->console);
    if (m->rng)
        bh_virtio_rng_stats(m->rng, &out->rng);
    if (m->vsock) {
        bh_virtio_vsock_stats(m->vsock, &out->vsock);
        out->vsock_connections = bh_virtio_vsock_connections(m->vsock);
    }
    if (m->power)
        out->boot_markers = bh_power_markers(m->power, &out->first_marker_ns);
}
