/*
 * mmio.c — the virtio-mmio transport (virtio 1.2 §4.2, version 2 only): the register page a
 * driver programs, feature negotiation, queue setup, notifications and interrupts. See virtio.h
 * for the threads and locks.
 */
#include "virtio.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#define MMIO_MAGIC 0x74726976u /* "virt" */
#define MMIO_VERSION 2u
#define MMIO_VENDOR 0x4b484221u /* "!BHK" */

enum {
    REG_MAGIC = 0x000,
    REG_VERSION = 0x004,
    REG_DEVICE_ID = 0x008,
    REG_VENDOR_ID = 0x00c,
    REG_DEVICE_FEATURES = 0x010,
    REG_DEVICE_FEATURES_SEL = 0x014,
    REG_DRIVER_FEATURES = 0x020,
    REG_DRIVER_FEATURES_SEL = 0x024,
    REG_QUEUE_SEL = 0x030,
    REG_QUEUE_NUM_MAX = 0x034,
    REG_QUEUE_NUM = 0x038,
    REG_QUEUE_READY = 0x044,
    REG_QUEUE_NOTIFY = 0x050,
    REG_INTERRUPT_STATUS = 0x060,
    REG_INTERRUPT_ACK = 0x064,
    REG_STATUS = 0x070,
    REG_QUEUE_DESC_LOW = 0x080,
    REG_QUEUE_DESC_HIGH = 0x084,
    REG_QUEUE_DRIVER_LOW = 0x090,
    REG_QUEUE_DRIVER_HIGH = 0x094,
    REG_QUEUE_DEVICE_LOW = 0x0a0,
    REG_QUEUE_DEVICE_HIGH = 0x0a4,
    REG_SHM_SEL = 0x0ac,
    REG_SHM_LEN_LOW = 0x0b0,
    REG_SHM_LEN_HIGH = 0x0b4,
    REG_SHM_BASE_LOW = 0x0b8,
    REG_SHM_BASE_HIGH = 0x0bc,
    REG_CONFIG_GENERATION = 0x0fc,
    REG_CONFIG = 0x100,
};

#define TRANSPORT_FEATURES (BH_VIRTIO_F_VERSION_1 | BH_VIRTIO_F_RING_EVENT_IDX | BH_VIRTIO_F_RING_INDIRECT_DESC)

static uint64_t access_value(const bh_io_access *a)
{
    uint64_t v = 0;
    memcpy(&v, a->data, a->size);
    return v;
}

static void set_read_value(bh_io_access *a, uint64_t v)
{
    memcpy(a->data, &v, a->size);
}

/* --------------------------------------------------------------------------------------------- */
/* Interrupts and failure                                                                          */

static void raise_interrupt(bh_virtio *v, uint32_t bits)
{
    __atomic_fetch_or(&v->interrupt_status, bits, __ATOMIC_SEQ_CST);
    bh_virtio_count(&v->stats.interrupts, 1);
    if (v->irq_fd >= 0) {
        uint64_t one = 1;
        if (write(v->irq_fd, &one, sizeof one) < 0) {
            /* EAGAIN: the counter is saturated, an interrupt is pending anyway */
        }
    }
}

void bh_virtio_notify_used(bh_virtio *v, bh_virtq *q)
{
    if (bh_vq_need_interrupt(q))
        raise_interrupt(v, BH_VIRTIO_INT_USED);
}

void bh_virtio_fail(bh_virtio *v, const char *fmt, ...)
{
    char reason[200];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(reason, sizeof reason, fmt, ap);
    va_end(ap);
    pthread_mutex_lock(&v->regs_lock);
    bool first = !v->broken;
    v->broken = true;
    v->status |= BH_VIRTIO_STATUS_NEEDS_RESET;
    pthread_mutex_unlock(&v->regs_lock);
    if (!first)
        return;
    __atomic_fetch_add(&v->stats.broken, 1, __ATOMIC_RELAXED);
    raise_interrupt(v, BH_VIRTIO_INT_CONFIG); /* the driver reads the status and sees NEEDS_RESET */
    if (v->config.on_broken)
        v->config.on_broken(v->config.opaque, v->name, reason);
    if (v->vm && v->config.stop_vm_on_failure) {
        char why[128]; /* the VM keeps 128 bytes of it */
        snprintf(why, sizeof why, "%s: %.100s", v->name, reason);
        bh_vm_request_stop(v->vm, BH_EXIT_DEVICE_FAILURE, 0, why);
    }
}

bool bh_virtio_running(bh_virtio *v)
{
    pthread_mutex_lock(&v->regs_lock);
    bool live = !v->broken && (v->status & BH_VIRTIO_STATUS_DRIVER_OK);
    pthread_mutex_unlock(&v->regs_lock);
    return live;
}

bool bh_virtio_feature(const bh_virtio *v, uint64_t bit)
{
    return (v->driver_features & bit) != 0;
}

void bh_virtio_stats_read(const bh_virtio *v, bh_virtio_stats *out)
{
    out->requests = __atomic_load_n(&v->stats.requests, __ATOMIC_RELAXED);
    out->bytes_in = __atomic_load_n(&v->stats.bytes_in, __ATOMIC_RELAXED);
    out->bytes_out = __atomic_load_n(&v->stats.bytes_out, __ATOMIC_RELAXED);
    out->interrupts = __atomic_load_n(&v->stats.interrupts, __ATOMIC_RELAXED);
    out->notifications = __atomic_load_n(&v->stats.notifications, __ATOMIC_RELAXED);
    out->broken = __atomic_load_n(&v->stats.broken, __ATOMIC_RELAXED);
}

/* --------------------------------------------------------------------------------------------- */
/* Queue processing (I/O thread)                                                                   */

void bh_virtio_kick(bh_virtio *v, uint16_t q)
{
    if (q >= v->ops->num_queues || v->queues[q].notify_fd < 0)
        return;
    uint64_t one = 1;
    if (write(v->queues[q].notify_fd, &one, sizeof one) < 0) {
        /* EAGAIN: a kick is pending anyway */
    }
}

void bh_virtio_run_queue(bh_virtio *v, uint16_t q)
{
    if (q >= v->ops->num_queues)
        return;
    pthread_mutex_lock(&v->work_lock);
    bh_virtio_count(&v->stats.notifications, 1);
    if (bh_virtio_running(v) && bh_vq_enabled(&v->queues[q].vq))
        v->ops->queue_notify(v->dev, q);
    pthread_mutex_unlock(&v->work_lock);
}

static void on_queue_event(void *opaque, uint32_t events)
{
    bh_virtio_queue *queue = opaque;
    uint64_t count;
    (void)events;
    if (read(queue->notify_fd, &count, sizeof count) != sizeof count)
        return; /* spurious wakeup */
    bh_virtio_run_queue(queue->v, queue->index);
}

bool bh_virtio_serve(bh_virtio *v, uint16_t qi, bh_vq_chain *chain, bh_virtio_chain_fn handle, void *dev)
{
    bh_virtq *q = &v->queues[qi].vq;
    char why[160] = "";
    unsigned served = 0;
    bool more = true;
    while (more) {
        bh_vq_notifications_off(q);
        bh_vq_result r;
        while (served < BH_VIRTIO_BUDGET && (r = bh_vq_pop(q, chain, why, sizeof why)) == BH_VQ_CHAIN) {
            int64_t written = handle(dev, chain, why, sizeof why);
            if (written < 0) {
                bh_virtio_fail(v, "queue %u: %s", qi, why);
                return false;
            }
            bh_vq_push(q, chain->head, (uint32_t)written);
            bh_virtio_count(&v->stats.requests, 1);
            served++;
        }
        if (served >= BH_VIRTIO_BUDGET) {
            bh_virtio_notify_used(v, q);
            bh_virtio_kick(v, qi); /* the rest on the next turn, after others had theirs */
            return true;
        }
        if (r == BH_VQ_BROKEN) {
            bh_virtio_notify_used(v, q);
            bh_virtio_fail(v, "queue %u: %s", qi, why);
            return false;
        }
        bool broke = false;
        more = bh_vq_notifications_on(q, &broke, why, sizeof why);
        if (broke) {
            bh_virtio_fail(v, "queue %u: %s", qi, why);
            return false;
        }
    }
    bh_virtio_notify_used(v, q);
    return true;
}

/* --------------------------------------------------------------------------------------------- */
/* Registers (vCPU threads)                                                                        */

static bool features_acceptable(const bh_virtio *v)
{
    return (v->driver_features & ~v->features) == 0 && (v->driver_features & BH_VIRTIO_F_VERSION_1);
}

/* work_lock and regs_lock held. */
static void reset_locked(bh_virtio *v)
{
    for (uint16_t i = 0; i < v->ops->num_queues; i++) {
        bh_virtio_queue *q = &v->queues[i];
        bh_vq_disable(&q->vq);
        q->ready = false;
        q->num = 0;
        q->desc = q->avail = q->used = 0;
    }
    v->status = 0;
    v->device_features_sel = v->driver_features_sel = 0;
    v->driver_features = 0;
    v->queue_sel = 0;
    v->broken = false;
    __atomic_store_n(&v->interrupt_status, 0, __ATOMIC_SEQ_CST);
    if (v->ops->reset)
        v->ops->reset(v->dev);
}

static bh_virtio_queue *selected_queue(bh_virtio *v)
{
    return v->queue_sel < v->ops->num_queues ? &v->queues[v->queue_sel] : NULL;
}

/* QueueReady = 1: checks and maps the rings (work_lock and regs_lock held). A driver that points a
 * queue outside RAM is buggy or hostile: the device breaks (reported after the locks are dropped). */
static bool enable_queue_locked(bh_virtio *v, bh_virtio_queue *q, char *why, size_t why_len)
{
    bool ok = bh_vq_enable(&q->vq, &v->mem, q->num, q->desc, q->avail, q->used,
                           bh_virtio_feature(v, BH_VIRTIO_F_RING_EVENT_IDX),
                           bh_virtio_feature(v, BH_VIRTIO_F_RING_INDIRECT_DESC), why, why_len);
    q->ready = ok;
    return ok;
}

static void write_status_locked(bh_virtio *v, uint32_t value, bool *activate)
{
    if (value == 0) {
        reset_locked(v);
        return;
    }
    uint32_t old = v->status;
    if ((value & BH_VIRTIO_STATUS_FEATURES_OK) && !(old & BH_VIRTIO_STATUS_FEATURES_OK) && !features_acceptable(v))
        value &= ~BH_VIRTIO_STATUS_FEATURES_OK; /* the driver reads it back and gives up */
    v->status = (value & 0xffu) | (old & BH_VIRTIO_STATUS_NEEDS_RESET);
    if ((value & BH_VIRTIO_STATUS_DRIVER_OK) && !(old & BH_VIRTIO_STATUS_DRIVER_OK) && !v->broken)
        *activate = true;
}

/* Writes that reconfigure the device take the work lock, so they never race with queue service. */
static bool needs_work_lock(uint64_t offset)
{
    return offset == REG_STATUS || offset == REG_QUEUE_READY;
}

static void write_register(bh_virtio *v, uint64_t offset, uint32_t value)
{
    char why[160] = "";
    bool activate = false, failed = false;
    bool heavy = needs_work_lock(offset);
    if (heavy)
        pthread_mutex_lock(&v->work_lock);
    pthread_mutex_lock(&v->regs_lock);
    bh_virtio_queue *q = selected_queue(v);
    bool configurable = q && !q->ready;
    switch (offset) {
    case REG_DEVICE_FEATURES_SEL: v->device_features_sel = value; break;
    case REG_DRIVER_FEATURES_SEL: v->driver_features_sel = value; break;
    case REG_DRIVER_FEATURES:
        if (!(v->status & BH_VIRTIO_STATUS_FEATURES_OK) && v->driver_features_sel < 2) {
            unsigned shift = 32 * v->driver_features_sel;
            v->driver_features = (v->driver_features & ~(0xffffffffULL << shift)) | ((uint64_t)value << shift);
        }
        break;
    case REG_QUEUE_SEL: v->queue_sel = value; break;
    case REG_QUEUE_NUM: if (configurable) q->num = (uint16_t)(value > BH_VIRTIO_QUEUE_MAX ? 0 : value); break;
    case REG_QUEUE_DESC_LOW: if (configurable) q->desc = (q->desc & ~0xffffffffULL) | value; break;
    case REG_QUEUE_DESC_HIGH: if (configurable) q->desc = (q->desc & 0xffffffffULL) | (uint64_t)value << 32; break;
    case REG_QUEUE_DRIVER_LOW: if (configurable) q->avail = (q->avail & ~0xffffffffULL) | value; break;
    case REG_QUEUE_DRIVER_HIGH: if (configurable) q->avail = (q->avail & 0xffffffffULL) | (uint64_t)value << 32; break;
    case REG_QUEUE_DEVICE_LOW: if (configurable) q->used = (q->used & ~0xffffffffULL) | value; break;
    case REG_QUEUE_DEVICE_HIGH: if (configurable) q->used = (q->used & 0xffffffffULL) | (uint64_t)value << 32; break;
    case REG_QUEUE_READY:
        if (!q)
            break;
        if (value == 1 && !q->ready && !v->broken) {
            if (!(v->status & BH_VIRTIO_STATUS_FEATURES_OK)) {
                snprintf(why, sizeof why, "queue %u enabled before FEATURES_OK", v->queue_sel);
                failed = true;
            } else if (!enable_queue_locked(v, q, why, sizeof why)) {
                failed = true;
            }
        } else if (value == 0) {
            bh_vq_disable(&q->vq);
            q->ready = false;
        }
        break;
    case REG_INTERRUPT_ACK: __atomic_fetch_and(&v->interrupt_status, ~value, __ATOMIC_SEQ_CST); break;
    case REG_STATUS: write_status_locked(v, value, &activate); break;
    case REG_SHM_SEL: break;
    default: break; /* read-only or unknown: ignored */
    }
    uint32_t qsel = v->queue_sel;
    pthread_mutex_unlock(&v->regs_lock);
    if (activate && v->ops->activate)
        v->ops->activate(v->dev);
    if (heavy)
        pthread_mutex_unlock(&v->work_lock);
    if (failed)
        bh_virtio_fail(v, "queue %u: %s", qsel, why);
    if (activate) /* buffers the driver added before DRIVER_OK */
        for (uint16_t i = 0; i < v->ops->num_queues; i++)
            bh_virtio_kick(v, i);
}

static uint32_t read_register(bh_virtio *v, uint64_t offset)
{
    pthread_mutex_lock(&v->regs_lock);
    bh_virtio_queue *q = selected_queue(v);
    uint32_t r = 0;
    switch (offset) {
    case REG_MAGIC: r = MMIO_MAGIC; break;
    case REG_VERSION: r = MMIO_VERSION; break;
    case REG_DEVICE_ID: r = v->ops->device_id; break;
    case REG_VENDOR_ID: r = MMIO_VENDOR; break;
    case REG_DEVICE_FEATURES:
        r = v->device_features_sel < 2 ? (uint32_t)(v->features >> (32 * v->device_features_sel)) : 0;
        break;
    case REG_QUEUE_NUM_MAX: r = q ? BH_VIRTIO_QUEUE_MAX : 0; break;
    case REG_QUEUE_READY: r = q && q->ready; break;
    case REG_INTERRUPT_STATUS: r = __atomic_load_n(&v->interrupt_status, __ATOMIC_SEQ_CST); break;
    case REG_STATUS: r = v->status; break;
    case REG_SHM_LEN_LOW:
    case REG_SHM_LEN_HIGH: r = 0xffffffffu; break; /* no shared memory regions */
    case REG_CONFIG_GENERATION: r = 0; break;
    default: r = 0; break;
    }
    pthread_mutex_unlock(&v->regs_lock);
    return r;
}

bh_io_result bh_virtio_mmio_access(void *opaque, bh_io_access *a)
{
    bh_virtio *v = opaque;
    uint64_t off = a->offset;
    if (off >= REG_CONFIG) {
        /* Config space: any width; the bus guarantees off + size <= 4 KiB. */
        uint64_t coff = off - REG_CONFIG;
        if (a->is_write)
            return BH_IO_DONE; /* no device has writable config fields */
        memset(a->data, 0, sizeof a->data);
        if (coff + a->size <= v->ops->config_size && v->ops->config_read) {
            pthread_mutex_lock(&v->regs_lock);
            v->ops->config_read(v->dev, (uint32_t)coff, a->data, a->size);
            pthread_mutex_unlock(&v->regs_lock);
        }
        return BH_IO_DONE;
    }
    /* Registers are 32 bits wide and aligned (§4.2.2.2); anything else is ignored. */
    if (a->size != 4 || off % 4) {
        if (!a->is_write)
            memset(a->data, 0, sizeof a->data);
        return BH_IO_DONE;
    }
    if (a->is_write) {
        uint32_t value = (uint32_t)access_value(a);
        if (off == REG_QUEUE_NOTIFY) {
            /* Normally caught by the ioeventfd before it exits; this is the fallback. */
            bh_virtio_kick(v, (uint16_t)(value < v->ops->num_queues ? value : 0xffff));
            return BH_IO_DONE;
        }
        write_register(v, off, value);
    } else {
        set_read_value(a, read_register(v, off));
    }
    return BH_IO_DONE;
}

/* --------------------------------------------------------------------------------------------- */
/* Setup                                                                                            */

static int fail(bh_error *err, bh_status code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int fail(bh_error *err, bh_status code, const char *fmt, ...)
{
    if (err) {
        va_list ap;
        va_start(ap, fmt);
        err->code = code;
        err->sys_errno = code == BH_E_SYSTEM ? errno : 0;
        vsnprintf(err->message, sizeof err->message, fmt, ap);
        va_end(ap);
    }
    return code;
}

static int setup_queue_notify(bh_virtio *v, bh_virtio_queue *q, bh_error *err)
{
    int fd = -1;
    /* The kernel signals it on a 32-bit write of the queue index to QueueNotify, without an exit. */
    if (bh_vm_add_ioeventfd(v->vm, v->config.slot.base + REG_QUEUE_NOTIFY, 4, true, true, q->index, &fd, NULL) != 0) {
        fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
        if (fd < 0)
            return fail(err, BH_E_SYSTEM, "%s: eventfd for queue %u: %s", v->name, q->index, strerror(errno));
        q->own_notify_fd = true;
    }
    q->notify_fd = fd;
    return bh_vm_io_watch(v->vm, fd, EPOLLIN, on_queue_event, q, err);
}

int bh_virtio_init(bh_virtio *v, bh_vm *vm, const bh_gmem *mem, const bh_virtio_config *config,
                   const bh_virtio_ops *ops, void *dev, uint64_t device_features, bh_error *err)
{
    memset(v, 0, sizeof *v);
    v->ops = ops;
    v->dev = dev;
    v->vm = vm;
    v->config = *config;
    v->irq_fd = -1;
    v->features = device_features | TRANSPORT_FEATURES;
    snprintf(v->name, sizeof v->name, "%s", config->name && config->name[0] ? config->name : ops->kind);
    v->config.name = v->name;
    for (uint16_t i = 0; i < BH_VIRTIO_MAX_QUEUES; i++) {
        v->queues[i].notify_fd = -1;
        v->queues[i].v = v;
        v->queues[i].index = i;
    }
    pthread_mutex_init(&v->regs_lock, NULL);
    pthread_mutex_init(&v->work_lock, NULL);
    v->locks_ready = true;
    if (ops->num_queues > BH_VIRTIO_MAX_QUEUES)
        return fail(err, BH_E_INVALID_ARG, "%s: %u queues (at most %u)", v->name, ops->num_queues, BH_VIRTIO_MAX_QUEUES);
    if (!vm) {
        if (!mem)
            return fail(err, BH_E_INVALID_ARG, "%s: no VM and no guest memory", v->name);
        v->mem = *mem;
        return BH_OK;
    }
    if (!bh_vm_has_irqchip(vm))
        return fail(err, BH_E_STATE, "%s: virtio devices need the in-kernel irqchip (create the VM with irqchip = true)",
                    v->name);
    uint64_t base = config->slot.base;
    if (base % 0x1000)
        return fail(err, BH_E_INVALID_ARG, "%s: MMIO base 0x%llx is not 4 KiB aligned", v->name, (unsigned long long)base);
    int rc = bh_gmem_from_vm(&v->mem, vm, err);
    if (rc)
        return rc;
    if ((rc = bh_vm_register_mmio(vm, base, 0x1000, bh_virtio_mmio_access, v, err)))
        return rc;
    if ((rc = bh_vm_add_irqfd(vm, config->slot.gsi, &v->irq_fd, err)))
        return rc;
    for (uint16_t i = 0; i < ops->num_queues; i++)
        if ((rc = setup_queue_notify(v, &v->queues[i], err)))
            return rc;
    return BH_OK;
}

void bh_virtio_teardown(bh_virtio *v)
{
    for (uint16_t i = 0; i < BH_VIRTIO_MAX_QUEUES; i++)
        if (v->queues[i].own_notify_fd && v->queues[i].notify_fd >= 0)
            close(v->queues[i].notify_fd);
    if (v->locks_ready) {
        pthread_mutex_destroy(&v->regs_lock);
        pthread_mutex_destroy(&v->work_lock);
    }
}
