/*
 * bh-exits — the exit benchmark's image run by bulkhead's C core as a process of its own, for the
 * comparison with QEMU on QEMU's terms (process spawn to process exit, done through a native
 * native done-port handler like QEMU's isa-debug-exit). Compiled at run time by src/bench/vmm against
 * the native/ sources; nothing JavaScript is involved.
 *
 *   bh-exits IMAGE    runs the image (its loop count already patched) once; exit status 0 when the
 *                     guest wrote its done value, and one JSON line on stdout:
 *                     {"openNs", "createNs", "loadNs": the phases before start,
 *                      "runNs":  start -> the done port's handler (what the loop costs),
 *                      "stopNs": that handler -> the VM reported stopped, "destroyNs",
 *                      "unhandledPio": loop writes counted by the core, "value": the done byte}
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bulkhead.h"

#define MEM_BYTES (16ull << 20) /* QEMU's -m 16 on the other side */
#define DONE_PORT 0xf4
#define MBI_ADDR 0x9000

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t stopped_cond = PTHREAD_COND_INITIALIZER;
static int stopped;
static double stopped_at, done_at;
static volatile int done_value = -1;
static bh_vm *the_vm;

static double now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

static void on_state(void *opaque, bh_vm_state state)
{
    (void)opaque;
    if (state != BH_VM_STOPPED)
        return;
    double t = now_ns();
    pthread_mutex_lock(&lock);
    if (!stopped) {
        stopped = 1;
        stopped_at = t;
    }
    pthread_cond_broadcast(&stopped_cond);
    pthread_mutex_unlock(&lock);
}

/* The done port: remember the byte and when, and stop the VM (what isa-debug-exit does in QEMU). */
static bh_io_result done_port(void *opaque, bh_io_access *a)
{
    (void)opaque;
    if (!a->is_write)
        return BH_IO_DONE;
    done_at = now_ns();
    done_value = a->data[0];
    bh_vm_request_stop(the_vm, BH_EXIT_GUEST_REQUEST, 0, "done port");
    return BH_IO_DONE;
}

static int fail(const char *what, const bh_error *e)
{
    fprintf(stderr, "bh-exits: %s: %s\n", what, e ? e->message : "");
    return 1;
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: bh-exits IMAGE\n");
        return 1;
    }
    FILE *f = fopen(argv[1], "rb");
    if (!f)
        return fail(argv[1], NULL);
    static uint8_t image[1 << 16];
    size_t len = fread(image, 1, sizeof image, f);
    fclose(f);
    uint32_t magic, flags, header_addr, load_addr, entry;
    memcpy(&magic, image, 4);
    memcpy(&flags, image + 4, 4);
    memcpy(&header_addr, image + 12, 4);
    memcpy(&load_addr, image + 16, 4);
    memcpy(&entry, image + 28, 4);
    if (len < 64 || magic != 0x1BADB002 || !(flags & 0x10000) || header_addr != load_addr)
        return fail("not the flat multiboot image expected", NULL);

    bh_error e = {0};
    bh_kvm *kvm = NULL;
    bh_vm *vm = NULL;
    bh_vm_config vc = {.memory_bytes = MEM_BYTES, .vcpus = 1, .irqchip = false, .on_state = on_state};
    double t_open = now_ns();
    if (bh_kvm_open(NULL, &kvm, &e))
        return fail("opening /dev/kvm", &e);
    double t_create = now_ns();
    if (bh_vm_create(kvm, &vc, &vm, &e))
        return fail("creating the VM", &e);
    the_vm = vm;
    double t_load = now_ns();
    uint8_t mbi[16] = {0};
    if (bh_mem_write(vm, load_addr, image, len, &e) || bh_mem_write(vm, MBI_ADDR, mbi, sizeof mbi, &e))
        return fail("loading the image", &e);
    /* The multiboot entry state, as src/bench/vmm/ours.ts sets it through the library. */
    bh_sregs s;
    if (bh_vcpu_get_sregs(vm, 0, &s, &e))
        return fail("KVM_GET_SREGS", &e);
    bh_segment flat = {.base = 0, .limit = 0xffffffff, .present = 1, .dpl = 0, .db = 1, .s = 1, .g = 1};
    s.cs = flat;
    s.cs.selector = 0x08;
    s.cs.type = 11;
    flat.selector = 0x10;
    flat.type = 3;
    s.ds = s.es = s.fs = s.gs = s.ss = flat;
    s.idt.base = 0;
    s.idt.limit = 0x3ff;
    s.cr0 = 0x11;
    s.cr3 = s.cr4 = s.efer = 0;
    bh_regs r = {.rip = entry, .rax = 0x2BADB002, .rbx = MBI_ADDR, .rflags = 0x2};
    if (bh_vcpu_set_sregs(vm, 0, &s, &e) || bh_vcpu_set_regs(vm, 0, &r, &e))
        return fail("setting the entry state", &e);
    if (bh_vm_register_pio(vm, DONE_PORT, 1, done_port, NULL, &e))
        return fail("the done port", &e);

    double t0 = now_ns();
    if (bh_vm_start(vm, &e))
        return fail("starting the VM", &e);
    pthread_mutex_lock(&lock);
    while (!stopped)
        pthread_cond_wait(&stopped_cond, &lock);
    double t1 = stopped_at;
    pthread_mutex_unlock(&lock);

    bh_vm_stats st;
    bh_vm_get_stats(vm, &st);
    int value = done_value;
    double t_destroy = now_ns();
    bh_vm_destroy(vm);
    bh_kvm_close(kvm);
    double t_end = now_ns();
    printf("{\"openNs\":%.0f,\"createNs\":%.0f,\"loadNs\":%.0f,\"runNs\":%.0f,\"stopNs\":%.0f,"
           "\"destroyNs\":%.0f,\"unhandledPio\":%llu,\"value\":%d}\n",
           t_create - t_open, t_load - t_create, t0 - t_load, done_at - t0, t1 - done_at, t_end - t_destroy,
           (unsigned long long)st.unhandled_pio, value);
    return value == 0x21 ? 0 : 2;
}
