/*
 * internal.h — private structures shared by the files of the KVM layer.
 *
 * Locking: vm->lock protects the VM state machine, the per-vCPU control fields and the eventfd
 * list. It is never held while calling a user callback or an I/O handler, and never held across
 * KVM_RUN, so handlers may call back into the API (bh_vm_request_stop, bh_vcpu_complete_io...).
 */
#ifndef BH_KVM_INTERNAL_H
#define BH_KVM_INTERNAL_H

#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif

#include <linux/kvm.h>
#include <pthread.h>
#include <stdarg.h>

#include "bulkhead.h"
#include "bus.h"

struct bh_kvm {
    int fd;
    int api_version;
    int vcpu_mmap_size;
};

/* Where a vCPU thread currently is, as seen by the controller (bh_vm_pause/stop). */
typedef enum bh_vcpu_phase {
    BH_PHASE_NOT_STARTED = 0,
    BH_PHASE_RUNNING,    /* inside or around KVM_RUN */
    BH_PHASE_PARKED,     /* waiting for resume, outside KVM_RUN */
    BH_PHASE_IO_WAIT,    /* waiting for bh_vcpu_complete_io, outside KVM_RUN */
    BH_PHASE_EXITED,     /* left its run loop for good */
} bh_vcpu_phase;

typedef struct bh_vcpu {
    struct bh_vm *vm;
    uint32_t index;
    int fd;
    struct kvm_run *run;
    size_t run_size;

    pthread_t thread;
    bool thread_created;
    bool thread_joined;

    /* Protected by vm->lock. */
    bh_vcpu_phase phase;
    pthread_cond_t wake; /* resume, stop, or I/O completion */
    bool io_waiting;     /* a BH_IO_PENDING access awaits bh_vcpu_complete_io */
    bool io_completed;
    uint64_t io_token;   /* the token of the access being handled (see bh_io_access.token) */
    uint64_t io_tokens_issued;
    bool io_ok;
    bool io_is_write;
    uint64_t cpu_ns_final; /* the thread's CPU time when it left its loop */
    uint8_t io_size;
    uint8_t io_data[8];
} bh_vcpu;

typedef struct bh_mem_slot {
    uint64_t gpa;
    uint64_t size;
    uint8_t *host;      /* inside vm->mem_base */
    uint64_t fd_offset;
} bh_mem_slot;

#define BH_MAX_MEM_SLOTS 2

typedef struct bh_device_entry {
    const bh_device_ops *ops;
    void *device;
} bh_device_entry;

struct bh_io_watch;

struct bh_vm {
    bh_kvm *kvm; /* borrowed: the caller keeps /dev/kvm open for the VM's lifetime */
    int fd;
    bh_vm_config config;
    bool has_irqchip;

    /* Guest RAM: one memfd, one mapping, up to two KVM slots (below the hole and above 4 GiB). */
    int memfd;
    uint8_t *mem_base;
    uint64_t mem_size;
    bh_mem_slot slots[BH_MAX_MEM_SLOTS];
    size_t slot_count;

    bh_vcpu *vcpus;
    uint32_t vcpu_count;   /* vCPUs successfully created */
    struct kvm_cpuid2 *cpuid; /* the table every vCPU starts from (cpuid.c) */

    bh_bus pio_bus;
    bh_bus mmio_bus;
    bool buses_ready;

    pthread_mutex_t lock;
    pthread_cond_t control; /* the controller waits here for vCPUs to park or exit */
    pthread_mutex_t join_lock; /* serialises joining the vCPU threads between concurrent stops */
    bool sync_ready;
    bh_vm_state state;
    bool released;        /* bh_vm_start has announced RUNNING: vCPU threads may enter KVM_RUN */
    bool pause_requested;
    bool stop_requested;
    bh_exit_reason stop_reason;
    uint64_t stop_code;
    char stop_why[128];
    uint32_t threads_running; /* vCPU threads not yet EXITED */

    int *eventfds;
    size_t eventfd_count, eventfd_cap;

    /* Devices the VM owns (device.c), destroyed after every thread was joined. */
    bh_device_entry *devices;
    size_t device_count, device_cap;
    bool devices_stopped;

    /* The I/O thread (io_thread.c). io_phase, io_stop and io_cpu_ns_final: under vm->lock. */
    int io_epoll_fd;
    int io_control_fd;
    pthread_t io_thread;
    bool io_thread_created;
    bool io_thread_joined;
    bh_vcpu_phase io_phase;
    bool io_stop;
    pthread_cond_t io_wake;
    uint64_t io_cpu_ns_final;
    pthread_mutex_t io_watch_lock; /* the watch lists and epoll_ctl */
    struct bh_io_watch *io_watches;
    struct bh_io_watch *io_graveyard;

    /* Updated with relaxed atomics from vCPU threads. */
    bh_vm_stats stats;
};

/* error.c */
int bh_fail(bh_error *err, bh_status code, int sys_errno, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
int bh_fail_errno(bh_error *err, const char *what); /* BH_E_SYSTEM with the current errno */
void bh_clear_error(bh_error *err);
/* Copies a NUL-terminated string, truncating to fit (messages are for people; cutting is fine). */
void bh_copy_text(char *dst, size_t size, const char *src);

/* system.c */
int bh_kvm_ioctl_retry(int fd, unsigned long request, void *arg); /* retries EINTR */

/* memory.c */
int bh_memory_create(bh_vm *vm, uint64_t bytes, bh_error *err);
void bh_memory_destroy(bh_vm *vm);
/* True when [gpa, gpa+len) (len > 0) overlaps guest RAM at all. */
bool bh_mem_overlaps_ram(const bh_vm *vm, uint64_t gpa, uint64_t len);

/* vcpu.c */
int bh_vcpu_create(bh_vm *vm, uint32_t index, bh_error *err);
void bh_vcpu_destroy(bh_vcpu *vcpu);

/* io.c */
typedef enum bh_io_outcome {
    BH_IO_OUTCOME_DONE,    /* access complete; for reads, access->data holds the value */
    BH_IO_OUTCOME_ERROR,   /* a handler returned BH_IO_ERROR or completed with ok=false */
    BH_IO_OUTCOME_STOPPED, /* the VM was stopped while the access was pending */
} bh_io_outcome;
/* Routes one access (one element of a string op) to its handler, waiting if it is pending. */
bh_io_outcome bh_io_dispatch(bh_vcpu *vcpu, bh_io_access *access);

/* run_loop.c */
void *bh_vcpu_thread_main(void *arg);

/* control.c */
void bh_control_install_kick_signal(void);
bool bh_control_on_vcpu_thread(const bh_vm *vm, uint32_t *vcpu_out);
/* With vm->lock held: make every vCPU leave KVM_RUN soon. */
void bh_control_kick_all_locked(bh_vm *vm);
/* With vm->lock held: change state; returns true if it changed (caller notifies after unlock). */
bool bh_control_set_state_locked(bh_vm *vm, bh_vm_state state);
void bh_control_notify_state(bh_vm *vm, bh_vm_state state);
/* Marks the current thread as vCPU `index` of `vm` (for the "not from a vCPU thread" checks). */
void bh_control_bind_thread(bh_vm *vm, uint32_t index);
/* Joins every vCPU thread, however long that takes (destroy's last resort after a stop timeout). */
void bh_control_join_all(bh_vm *vm);

/* irq.c */
void bh_irq_close_eventfds(bh_vm *vm);

/* device.c */
void bh_devices_stop(bh_vm *vm);
void bh_devices_destroy(bh_vm *vm);

/* io_thread.c (the *_locked ones with vm->lock held) */
void bh_io_thread_wake_locked(bh_vm *vm);
bool bh_io_thread_parked_locked(const bh_vm *vm);
void bh_io_thread_request_stop_locked(bh_vm *vm);
int bh_io_thread_start_locked(bh_vm *vm, bh_error *err);
void bh_io_thread_join(bh_vm *vm);
void bh_io_thread_destroy(bh_vm *vm);

/* cpuid.c: the CPUID each vCPU is given, built once per VM from the caller's /dev/kvm handle. */
int bh_cpuid_build(bh_vm *vm, bh_error *err);
int bh_cpuid_set_vcpu(bh_vm *vm, uint32_t vcpu, bh_error *err);
void bh_cpuid_free(bh_vm *vm);

static inline void bh_stat_add(uint64_t *counter)
{
    __atomic_fetch_add(counter, 1, __ATOMIC_RELAXED);
}

#endif
