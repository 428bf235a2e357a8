/*
 * machine_console.c — console output of a machine, from the 16550 (vCPU threads) and hvc0 (the
 * I/O thread): kept in a ring for the exit's console tail, passed to the embedder, and watched for
 * Linux's panic line. With panic=-1 the kernel resets at once and the reset says "panic" by itself
 * (machine_end.c); with panic=0 it spins, so the line arms a grace timer after which the machine
 * ends the VM as a panic.
 */
#include <stdlib.h>
#include <string.h>
#include <sys/timerfd.h>

#include "machine_internal.h"

#define PANIC_LINE "Kernel panic - not syncing"

int bh_console_tail_init(bh_console_tail *t, size_t bytes)
{
    memset(t, 0, sizeof *t);
    t->size = bytes ? bytes : 64 * 1024;
    t->ring = malloc(t->size);
    if (!t->ring)
        return BH_E_NOMEM;
    pthread_mutex_init(&t->lock, NULL);
    return BH_OK;
}

void bh_console_tail_free(bh_console_tail *t)
{
    if (t->ring)
        pthread_mutex_destroy(&t->lock);
    free(t->ring);
    t->ring = NULL;
}

/* With t->lock held: true when this byte completes or extends a line holding the panic marker. */
static bool scan_byte(bh_console_tail *t, int src, uint8_t b)
{
    if (b == '\n' || b == '\r') {
        t->line_len[src] = 0;
        return false;
    }
    if (t->line_len[src] < sizeof t->line[src] - 1)
        t->line[src][t->line_len[src]++] = (char)b;
    t->line[src][t->line_len[src]] = 0;
    return t->line_len[src] >= sizeof PANIC_LINE - 1 && strstr(t->line[src], PANIC_LINE) != NULL;
}

static void panic_seen(bh_machine *m)
{
    pthread_mutex_lock(&m->lock);
    bool first = !m->panic_seen;
    m->panic_seen = true;
    pthread_mutex_unlock(&m->lock);
    if (first && m->panic_timer_fd >= 0) {
        struct itimerspec t = {.it_value = {BH_MACHINE_PANIC_GRACE_MS / 1000, (BH_MACHINE_PANIC_GRACE_MS % 1000) * 1000000L}};
        timerfd_settime(m->panic_timer_fd, 0, &t, NULL);
    }
}

void bh_machine_console_bytes(bh_machine *m, bh_console_source source, const uint8_t *data, size_t len)
{
    bh_console_tail *t = &m->tail;
    int src = source == BH_CONSOLE_VIRTIO ? 1 : 0;
    bool panic = false;
    pthread_mutex_lock(&t->lock);
    for (size_t i = 0; i < len; i++) {
        t->ring[t->pos++] = data[i];
        if (t->pos == t->size)
            t->pos = 0, t->full = true;
        if (scan_byte(t, src, data[i]))
            panic = true;
    }
    pthread_mutex_unlock(&t->lock);
    if (panic)
        panic_seen(m);
    if (m->config.on_console)
        m->config.on_console(m->config.opaque, source, data, len);
}

size_t bh_machine_console_tail(bh_machine *m, uint8_t *dst, size_t max)
{
    bh_console_tail *t = &m->tail;
    pthread_mutex_lock(&t->lock);
    size_t have = t->full ? t->size : t->pos;
    size_t n = have < max ? have : max;
    size_t start = (t->pos + t->size - n) % t->size;
    for (size_t i = 0; i < n; i++)
        dst[i] = t->ring[(start + i) % t->size];
    pthread_mutex_unlock(&t->lock);
    return n;
}
