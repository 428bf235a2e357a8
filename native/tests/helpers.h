/* helpers.h — a VM wrapper that records exits and state changes, and a recording I/O device. */
#ifndef BH_TESTS_HELPERS_H
#define BH_TESTS_HELPERS_H

#include <pthread.h>

#include "guest_builder.h"
#include "tap.h"

#define TVM_MAX_EXITS 16
#define TVM_MAX_STATES 64
#define IOLOG_MAX 64

typedef struct test_vm {
    bh_kvm *kvm;
    bh_vm *vm;
    pthread_mutex_t lock;
    pthread_cond_t cond;
    bh_vcpu_exit exits[TVM_MAX_EXITS];
    int exit_count;
    bh_vm_state states[TVM_MAX_STATES];
    int state_count;
    int running_report_delay_ms; /* the state callback sleeps this long after recording RUNNING */
} test_vm;

/* Opens /dev/kvm (or skips: returns false with the test marked skipped) and creates a VM. */
bool tvm_create(test_vm *t, uint64_t memory, uint32_t vcpus, bool irqchip);
void tvm_destroy(test_vm *t);
/* Waits until `n` vCPUs have reported their exit. */
bool tvm_wait_exits(test_vm *t, int n, double timeout_s);
const bh_vcpu_exit *tvm_exit_of(test_vm *t, uint32_t vcpu);

/* A device that logs every access; reads answer `read_value` (little-endian, truncated). */
typedef struct io_log {
    pthread_mutex_t lock;
    bh_io_access entries[IOLOG_MAX];
    int count;
    uint64_t read_value;
} io_log;

void iolog_init(io_log *log, uint64_t read_value);
bh_io_result iolog_handler(void *opaque, bh_io_access *access);
uint64_t access_value(const bh_io_access *a);

/* Port GB_DONE_PORT: any write stops the VM with BH_EXIT_GUEST_REQUEST ("guest done"). */
#define GB_DONE_PORT 0x13
int register_done_port(test_vm *t, bh_error *err);

#endif
