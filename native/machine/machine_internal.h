/*
 * machine_internal.h — the machine builder's state, shared by its files:
 *   machine.c          create (VM, devices, kernel), start, wait, stop, destroy, stats
 *   machine_console.c  console bytes from ttyS0 and hvc0: the tail ring and the panic line
 *   machine_end.c      how the guest ended, as a bh_machine_end
 */
#ifndef BH_MACHINE_INTERNAL_H
#define BH_MACHINE_INTERNAL_H

#include <pthread.h>

#include "bulkhead.h"

#define BH_MACHINE_PANIC_GRACE_MS 2000 /* a panic line, then this long for panic=N to end the VM */

typedef struct bh_console_tail {
    pthread_mutex_t lock;
    uint8_t *ring;
    size_t size, pos;
    bool full;
    char line[2][160];       /* the line being written, per source (for the panic line) */
    size_t line_len[2];
} bh_console_tail;

struct bh_machine {
    bh_machine_config config;  /* the callbacks and flags (paths are not kept) */
    bh_kvm *kvm;
    bh_vm *vm;
    uint64_t created_ns;       /* CLOCK_MONOTONIC, before the VM was created */

    bh_serial *serial;
    bh_i8042 *i8042;
    bh_power *power;
    bh_virtio_blk *disks[BH_MACHINE_MAX_DISKS];
    size_t disk_count;
    bh_virtio_console *console;
    bh_virtio_rng *rng;
    bh_virtio_vsock *vsock;

    bh_console_tail tail;
    int panic_timer_fd;        /* the grace after a panic line, on the I/O thread */

    pthread_mutex_t lock;      /* everything below */
    pthread_cond_t ended_cond;
    bool started;
    bool ended;
    bool have_cause;
    bh_vcpu_exit cause;
    bool panic_seen;           /* the console showed the panic line */
    bool panic_stop;           /* the machine stopped the VM after the grace */
    bool device_failed;
    char failed_device[32];
    bh_machine_exit exit;
};

uint64_t bh_machine_now_ns(void);

/* machine_console.c */
int bh_console_tail_init(bh_console_tail *t, size_t bytes);
void bh_console_tail_free(bh_console_tail *t);
/* Keeps the bytes, passes them on, and watches for the panic line. */
void bh_machine_console_bytes(bh_machine *m, bh_console_source source, const uint8_t *data, size_t len);

/* machine_end.c: fills m->exit once the VM has stopped (m->lock held). */
void bh_machine_classify_locked(bh_machine *m);

#endif
