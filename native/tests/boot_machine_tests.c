/*
 * boot_machine_tests.c — the machine builder and the virtio devices on the real /dev/kvm (PVM here),
 * with synthetic kernels (boot_machine_guests.S): how a guest ends, the command line and layout
 * the builder writes, hostile virtio drivers that break only their own device while a second VM
 * keeps running, 50 create/destroy cycles without leaks, and bh-boot's input thread under ASan.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <stdbool.h>
#include <stdint.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "boot_images.h"
#include "boot_tests.h"
#include "tap.h"

#define MIB (1ULL << 20)

extern const uint8_t mg_poweroff[], mg_poweroff_end[], mg_reboot[], mg_reboot_end[];
extern const uint8_t mg_panic_reset[], mg_panic_reset_end[], mg_reset[], mg_reset_end[];
extern const uint8_t mg_virtio_driver[], mg_virtio_driver_end[], mg_ticker[], mg_ticker_end[];
extern const uint8_t mg_ticks_then_poweroff[], mg_ticks_then_poweroff_end[];

/* What a machine reported, recorded from its callbacks. */
typedef struct mrec {
    pthread_mutex_t lock;
    int markers;
    uint32_t marker_values[16];
    uint64_t marker_ns[16];
    int broken;
    char broken_device[32];
    char broken_reason[200];
    int ends;
    bh_machine_exit end;
    size_t console_bytes;
} mrec;

static void rec_event(void *opaque, const bh_machine_event *e)
{
    mrec *r = opaque;
    pthread_mutex_lock(&r->lock);
    if (e->kind == BH_MACHINE_EVENT_BOOT_MARKER) {
        if (r->markers < 16) {
            r->marker_values[r->markers] = e->marker;
            r->marker_ns[r->markers] = e->ns_since_create;
        }
        r->markers++;
    } else if (e->kind == BH_MACHINE_EVENT_DEVICE_BROKEN) {
        if (!r->broken) {
            snprintf(r->broken_device, sizeof r->broken_device, "%s", e->device);
            snprintf(r->broken_reason, sizeof r->broken_reason, "%s", e->reason);
        }
        r->broken++;
    }
    pthread_mutex_unlock(&r->lock);
}

static void rec_end(void *opaque, const bh_machine_exit *x)
{
    mrec *r = opaque;
    pthread_mutex_lock(&r->lock);
    r->ends++;
    r->end = *x;
    pthread_mutex_unlock(&r->lock);
}

static void rec_console(void *opaque, bh_console_source s, const uint8_t *d, size_t n)
{
    mrec *r = opaque;
    (void)s, (void)d;
    pthread_mutex_lock(&r->lock);
    r->console_bytes += n;
    pthread_mutex_unlock(&r->lock);
}

static void rec_init(mrec *r)
{
    memset(r, 0, sizeof *r);
    pthread_mutex_init(&r->lock, NULL);
}

static int rec_get(mrec *r, int *field)
{
    pthread_mutex_lock(&r->lock);
    int v = *field;
    pthread_mutex_unlock(&r->lock);
    return v;
}

static bool wait_for(mrec *r, int *field, int at_least, double seconds)
{
    double deadline = tap_now() + seconds;
    while (rec_get(r, field) < at_least && tap_now() < deadline)
        tap_sleep_ms(5);
    return rec_get(r, field) >= at_least;
}

static bh_machine_config machine_config(const bi_image *k, mrec *r)
{
    return (bh_machine_config){
        .kernel = k->data, .kernel_len = k->len, .memory_bytes = 32 * MIB, .vcpus = 1,
        .on_event = rec_event, .on_end = rec_end, .on_console = rec_console, .opaque = r,
    };
}

static bi_image kernel_of(const uint8_t *start, const uint8_t *end)
{
    bi_elf_options o = {.code = start, .code_len = (size_t)(end - start)};
    return bi_make_vmlinux(&o);
}

/* Boots `code` in a machine with no virtio devices and returns how it ended. */
static bool run_to_end(bh_kvm *kvm, const uint8_t *start, const uint8_t *end, mrec *r, bh_machine_exit *x)
{
    bh_error e = {0};
    bi_image k = kernel_of(start, end);
    bh_machine_config c = machine_config(&k, r);
    bh_machine *m = NULL;
    bool ok = bh_machine_create(kvm, &c, &m, &e) == 0;
    bi_free(&k);
    if (!ok) {
        tap_diag("bh_machine_create: %s", e.message);
        return false;
    }
    ok = bh_machine_start(m, &e) == 0 && bh_machine_wait(m, 30000, x, &e) == 0;
    if (!ok)
        tap_diag("machine: %s", e.message);
    bh_machine_destroy(m);
    return ok;
}

/* --------------------------------------------------------------------------------------------- */

void test_machine_power_device_ends_and_marks(void)
{
    bh_kvm *kvm = tap_open_kvm();
    if (!kvm)
        return;
    mrec r;
    rec_init(&r);
    bh_machine_exit x;
    REQUIRE(run_to_end(kvm, mg_poweroff, mg_poweroff_end, &r, &x));
    CHECK_EQ_U64(x.end, BH_MACHINE_POWER_OFF);
    CHECK_EQ_U64(x.cause.reason, BH_EXIT_GUEST_REQUEST);
    CHECK_EQ_U64(x.cause.detail[0], BH_GUEST_REQUEST_POWER_OFF);
    CHECK(strncmp(x.message, "power-off", 9) == 0);
    CHECK(x.ns_since_create > 0);
    CHECK_EQ_U64(r.markers, 2);
    CHECK_EQ_U64(r.marker_values[0], 1);
    CHECK_EQ_U64(r.marker_values[1], 2);
    CHECK(r.marker_ns[0] > 0 && r.marker_ns[1] >= r.marker_ns[0] && r.marker_ns[1] <= x.ns_since_create);
    CHECK_EQ_U64(r.ends, 1); /* on_end exactly once */
    tap_diag("boot markers at %.2f and %.2f ms after creation; ended after %.2f ms", r.marker_ns[0] / 1e6,
             r.marker_ns[1] / 1e6, x.ns_since_create / 1e6);
    bh_kvm_close(kvm);
}

void test_machine_reboot_and_panic_told_apart(void)
{
    bh_kvm *kvm = tap_open_kvm();
    if (!kvm)
        return;
    struct { const uint8_t *start, *end; bh_machine_end want; const char *what; } cases[] = {
        {mg_reboot, mg_reboot_end, BH_MACHINE_REBOOT, "REBOOT through the power device"},
        {mg_reset, mg_reset_end, BH_MACHINE_REBOOT, "a kernel reboot (cold flag, i8042 reset)"},
        {mg_panic_reset, mg_panic_reset_end, BH_MACHINE_PANIC, "a panic's reset (warm flag, i8042 reset)"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        mrec r;
        rec_init(&r);
        bh_machine_exit x;
        REQUIRE(run_to_end(kvm, cases[i].start, cases[i].end, &r, &x));
        tap_diag("%s: %s", cases[i].what, x.message);
        CHECK_EQ_U64(x.end, cases[i].want);
    }
    bh_kvm_close(kvm);
}

/* --------------------------------------------------------------------------------------------- */

static char *temp_dir(void)
{
    char *dir = strdup("/tmp/bh-machine-XXXXXX");
    return mkdtemp(dir) ? dir : NULL;
}

static void make_file(const char *path, size_t bytes)
{
    int fd = open(path, O_CREAT | O_TRUNC | O_WRONLY | O_CLOEXEC, 0600);
    if (fd >= 0) {
        if (ftruncate(fd, (off_t)bytes) != 0)
            tap_diag("ftruncate %s failed", path);
        close(fd);
    }
}

static void remove_tree(const char *dir)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    char p[512];
    while (d && (e = readdir(d))) {
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) {
            snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
            unlink(p);
        }
    }
    if (d)
        closedir(d);
    rmdir(dir);
}

typedef struct full_machine {
    char *dir;
    char disk_a[256], disk_b[256], uds[256];
    bh_machine_disk disks[2];
} full_machine;

static void full_machine_files(full_machine *f)
{
    f->dir = temp_dir();
    snprintf(f->disk_a, sizeof f->disk_a, "%s/a.img", f->dir);
    snprintf(f->disk_b, sizeof f->disk_b, "%s/b.img", f->dir);
    snprintf(f->uds, sizeof f->uds, "%s/v.sock", f->dir);
    make_file(f->disk_a, 1 * MIB);
    make_file(f->disk_b, 2 * MIB);
    f->disks[0] = (bh_machine_disk){.path = f->disk_a, .read_only = true, .serial = "root-image"};
    f->disks[1] = (bh_machine_disk){.path = f->disk_b};
}

static void with_every_device(bh_machine_config *c, full_machine *f)
{
    c->disks = f->disks;
    c->disk_count = 2;
    c->virtio_console = true;
    c->rng = true;
    c->vsock = true;
    c->vsock_cid = 3;
    c->vsock_uds = f->uds;
}

void test_machine_cmdline_layout_and_bad_input(void)
{
    bh_kvm *kvm = tap_open_kvm();
    if (!kvm)
        return;
    bh_error e = {0};
    mrec r;
    rec_init(&r);
    full_machine f;
    full_machine_files(&f);
    bi_image k = kernel_of(mg_poweroff, mg_poweroff_end);
    bh_machine_config c = machine_config(&k, &r);
    with_every_device(&c, &f);
    c.cmdline = "console=hvc0 bhtest=1";
    bh_machine *m = NULL;
    REQUIRE_OK(bh_machine_create(kvm, &c, &m, &e));
    char cmdline[512] = {0};
    REQUIRE_OK(bh_mem_read(bh_machine_vm(m), 0x20000, cmdline, sizeof cmdline - 1, &e));
    tap_diag("command line: %s", cmdline);
    CHECK(strcmp(cmdline, "reboot=k,panic_warm panic=-1 console=hvc0 bhtest=1 "
                          "virtio_mmio.device=4K@0xd0001000:5 virtio_mmio.device=4K@0xd0002000:6 "
                          "virtio_mmio.device=4K@0xd0003000:7 virtio_mmio.device=4K@0xd0004000:9 "
                          "virtio_mmio.device=4K@0xd0005000:10") == 0);
    struct stat st;
    CHECK(stat(f.uds, &st) == 0 && S_ISSOCK(st.st_mode)); /* the vsock listener is up before start */
    /* A second machine cannot take the same socket while the first listens there. */
    bh_machine *twin = NULL;
    CHECK(bh_machine_create(kvm, &c, &twin, &e) == BH_E_BUSY);
    CHECK(strstr(e.message, "already listens") != NULL);
    bh_machine_destroy(m);
    CHECK(stat(f.uds, &st) != 0); /* gone with the machine */

    /* Bad input is a typed error that names the problem. */
    bh_machine_config bad = c;
    bad.kernel = NULL, bad.kernel_len = 0, bad.kernel_path = "/nonexistent/vmlinux";
    CHECK(bh_machine_create(kvm, &bad, &m, &e) == BH_E_INVALID_ARG && strstr(e.message, "/nonexistent/vmlinux"));
    bad = c;
    bad.disk_count = BH_MACHINE_MAX_DISKS + 1;
    CHECK(bh_machine_create(kvm, &bad, &m, &e) == BH_E_INVALID_ARG && strstr(e.message, "disks"));
    bad = c;
    bad.vsock_uds = NULL;
    CHECK(bh_machine_create(kvm, &bad, &m, &e) == BH_E_INVALID_ARG && strstr(e.message, "vsock_uds"));
    bad = c;
    bad.vsock_cid = 2;
    CHECK(bh_machine_create(kvm, &bad, &m, &e) == BH_E_INVALID_ARG && strstr(e.message, "CID"));
    bh_machine_disk missing[1] = {{.path = "/nonexistent/disk.img"}};
    bad = c;
    bad.disks = missing, bad.disk_count = 1;
    CHECK(bh_machine_create(kvm, &bad, &m, &e) == BH_E_INVALID_ARG && strstr(e.message, "/nonexistent/disk.img"));
    bh_machine_disk long_serial[1] = {{.path = f.disk_a, .serial = "this serial is longer than twenty bytes"}};
    bad = c;
    bad.disks = long_serial, bad.disk_count = 1;
    CHECK(bh_machine_create(kvm, &bad, &m, &e) == BH_E_INVALID_ARG && strstr(e.message, "serial"));
    bi_free(&k);
    remove_tree(f.dir);
    free(f.dir);
    bh_kvm_close(kvm);
}

/* --------------------------------------------------------------------------------------------- */
/* Hostile virtio drivers: mg_virtio_driver sets up queue 0 of the rng at 0xd0001000 with rings the
 * test laid out in guest memory, and notifies once. */

#define DESC 0x40000ULL
#define AVAIL 0x41000ULL
#define USED 0x42000ULL
#define BUF 0x50000ULL
#define TABLE 0x60000ULL

typedef struct desc {
    uint64_t addr;
    uint32_t len;
    uint16_t flags, next;
} desc;

typedef enum attack { BENIGN, DESC_LOOP, OUT_OF_RAM, AVAIL_JUMP, HUGE_CHAIN, INDIRECT_LOOP } attack;

static const char *attack_name(attack a)
{
    static const char *names[] = {"benign", "descriptor loop", "buffer outside RAM", "avail-index jump",
                                  "huge chain (indirect table of 4096 entries)", "loop inside an indirect table"};
    return names[a];
}

static bool lay_out_rings(bh_vm *vm, attack a, bh_error *e)
{
    desc d[16] = {{0}};
    uint16_t avail[3] = {0, 1, 0}; /* flags, idx, ring[0] = descriptor 0 */
    switch (a) {
    case BENIGN: d[0] = (desc){BUF, 64, 2, 0}; break;
    case DESC_LOOP:
        d[0] = (desc){BUF, 16, 2 | 1, 1};
        d[1] = (desc){BUF + 16, 16, 2 | 1, 0}; /* back to 0 */
        break;
    case OUT_OF_RAM: d[0] = (desc){0x7fff0000, 4096, 2, 0}; break;
    case AVAIL_JUMP:
        d[0] = (desc){BUF, 64, 2, 0};
        avail[1] = 1000; /* 1000 new buffers in a queue of 16 */
        break;
    case HUGE_CHAIN: d[0] = (desc){TABLE, 16 * 4096, 4, 0}; break;
    case INDIRECT_LOOP: {
        desc t[4];
        for (int i = 0; i < 4; i++)
            t[i] = (desc){BUF + 16 * (uint64_t)i, 16, 2 | 1, (uint16_t)((i + 1) % 4)};
        if (bh_mem_write(vm, TABLE, t, sizeof t, e))
            return false;
        d[0] = (desc){TABLE, sizeof t, 4, 0};
        break;
    }
    }
    uint8_t zeros[4096] = {0};
    return bh_mem_write(vm, DESC, d, sizeof d, e) == 0 && bh_mem_write(vm, AVAIL, avail, sizeof avail, e) == 0 &&
           bh_mem_write(vm, USED, zeros, sizeof zeros, e) == 0 && bh_mem_write(vm, BUF, zeros, 64, e) == 0;
}

static bh_machine *driver_machine(bh_kvm *kvm, const bi_image *k, mrec *r, bool keep_running, attack a)
{
    bh_error e = {0};
    bh_machine_config c = machine_config(k, r);
    c.rng = true;
    c.keep_running_on_device_failure = keep_running;
    bh_machine *m = NULL;
    if (bh_machine_create(kvm, &c, &m, &e) || !lay_out_rings(bh_machine_vm(m), a, &e) || bh_machine_start(m, &e)) {
        tap_diag("driver machine: %s", e.message);
        bh_machine_destroy(m);
        return NULL;
    }
    return m;
}

void test_malicious_drivers_break_only_their_device(void)
{
    bh_kvm *kvm = tap_open_kvm();
    if (!kvm)
        return;
    bh_error e = {0};
    /* A second VM in the same process that keeps working through all of it. */
    mrec bystander;
    rec_init(&bystander);
    bi_image tk = kernel_of(mg_ticker, mg_ticker_end);
    bh_machine_config tc = machine_config(&tk, &bystander);
    tc.rng = true;
    bh_machine *ticker = NULL;
    REQUIRE_OK(bh_machine_create(kvm, &tc, &ticker, &e));
    REQUIRE_OK(bh_machine_start(ticker, &e));
    REQUIRE(wait_for(&bystander, &bystander.markers, 1, 20));

    bi_image k = kernel_of(mg_virtio_driver, mg_virtio_driver_end);
    static const struct { attack a; const char *reason; } cases[] = {
        {DESC_LOOP, "loops"},           {OUT_OF_RAM, "not in guest RAM"}, {AVAIL_JUMP, "avail index"},
        {HUGE_CHAIN, "indirect table"}, {INDIRECT_LOOP, "loops"},
    };
    /* First a well-behaved driver: its buffer comes back filled, nothing breaks. */
    {
        mrec r;
        rec_init(&r);
        bh_machine *m = driver_machine(kvm, &k, &r, true, BENIGN);
        REQUIRE(m);
        if (!wait_for(&r, &r.markers, 1, 20)) {
            bh_machine_exit x;
            int rc = bh_machine_wait(m, 0, &x, &e);
            uint8_t tail[2048];
            size_t n = bh_machine_console_tail(m, tail, sizeof tail);
            tap_diag("no marker from the benign driver: %s (%d, state %d, console %zu bytes)", rc ? e.message : x.message,
                     rc, bh_vm_get_state(bh_machine_vm(m)), n);
        }
        REQUIRE(rec_get(&r, &r.markers) >= 1);
        uint16_t used_idx = 0;
        uint8_t buf[64] = {0}, zeros[64] = {0};
        /* Read like a driver: the index with acquire ordering, then the buffer it covers. */
        uint16_t *idx = bh_mem_ptr(bh_machine_vm(m), USED + 2, 2);
        REQUIRE(idx);
        for (int i = 0; i < 400 && (used_idx = __atomic_load_n(idx, __ATOMIC_ACQUIRE)) == 0; i++)
            tap_sleep_ms(5);
        bh_mem_read(bh_machine_vm(m), BUF, buf, sizeof buf, &e);
        CHECK_EQ_U64(used_idx, 1);
        CHECK(memcmp(buf, zeros, sizeof buf) != 0); /* entropy arrived */
        CHECK_EQ_U64(rec_get(&r, &r.broken), 0);
        bh_machine_stats st;
        bh_machine_get_stats(m, &st);
        CHECK_EQ_U64(st.rng.requests, 1);
        CHECK(st.rng.bytes_out == 64);
        bh_machine_destroy(m);
    }
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        mrec r;
        rec_init(&r);
        bh_machine *m = driver_machine(kvm, &k, &r, true, cases[i].a);
        REQUIRE(m);
        CHECK(wait_for(&r, &r.broken, 1, 20));
        tap_diag("%s: device %s broken: %s", attack_name(cases[i].a), r.broken_device, r.broken_reason);
        CHECK(strcmp(r.broken_device, "rng") == 0);
        CHECK(strstr(r.broken_reason, cases[i].reason) != NULL);
        /* keep_running_on_device_failure: the VM goes on (the guest still writes its marker). */
        CHECK(wait_for(&r, &r.markers, 1, 20));
        CHECK_EQ_U64(bh_vm_get_state(bh_machine_vm(m)), BH_VM_RUNNING);
        uint32_t status = 0;
        bh_machine_exit x;
        CHECK(bh_machine_wait(m, 0, &x, &e) == BH_E_TIMEOUT);
        (void)status;
        bh_machine_destroy(m);
    }
    /* With the default policy the broken device ends its machine, as a device failure. */
    {
        mrec r;
        rec_init(&r);
        bh_machine *m = driver_machine(kvm, &k, &r, false, DESC_LOOP);
        REQUIRE(m);
        bh_machine_exit x;
        REQUIRE_OK(bh_machine_wait(m, 20000, &x, &e));
        CHECK_EQ_U64(x.end, BH_MACHINE_DEVICE_FAILURE);
        CHECK(strcmp(x.device, "rng") == 0);
        CHECK_EQ_U64(x.cause.reason, BH_EXIT_DEVICE_FAILURE);
        tap_diag("default policy: %s", x.message);
        bh_machine_destroy(m);
    }
    /* The bystander kept running and working the whole time. */
    int before = rec_get(&bystander, &bystander.markers);
    CHECK(wait_for(&bystander, &bystander.markers, before + 2, 20));
    CHECK_EQ_U64(bh_vm_get_state(bh_machine_vm(ticker)), BH_VM_RUNNING);
    CHECK_EQ_U64(rec_get(&bystander, &bystander.broken), 0);
    REQUIRE_OK(bh_machine_stop(ticker, &e));
    bh_machine_exit x;
    REQUIRE_OK(bh_machine_wait(ticker, 1000, &x, &e));
    CHECK_EQ_U64(x.end, BH_MACHINE_STOPPED);
    tap_diag("the bystander wrote %d markers meanwhile", rec_get(&bystander, &bystander.markers));
    bh_machine_destroy(ticker);
    bi_free(&k);
    bi_free(&tk);
    bh_kvm_close(kvm);
}

/* --------------------------------------------------------------------------------------------- */

static int count_dir(const char *path)
{
    DIR *d = opendir(path);
    int n = 0;
    for (struct dirent *e; d && (e = readdir(d));)
        if (e->d_name[0] != '.')
            n++;
    if (d)
        closedir(d);
    return n;
}

static void count_maps(int *all, int *guest)
{
    *all = *guest = 0;
    FILE *f = fopen("/proc/self/maps", "r");
    char line[512];
    while (f && fgets(line, sizeof line, f)) {
        (*all)++;
        if (strstr(line, "bulkhead-guest-ram"))
            (*guest)++;
    }
    if (f)
        fclose(f);
}

/* 50 machines with every device, each started and powered off, then destroyed: no fd, thread,
 * guest mapping or socket file is left, and the process's mappings stop growing. */
void test_machine_50_cycles_no_leaks(void)
{
    bh_kvm *kvm = tap_open_kvm();
    if (!kvm)
        return;
    bh_error e = {0};
    full_machine f;
    full_machine_files(&f);
    bi_image k = kernel_of(mg_poweroff, mg_poweroff_end);
    int fds0 = count_dir("/proc/self/fd"), threads0 = count_dir("/proc/self/task"), maps10 = 0, guest;
    for (int i = 0; i < 50; i++) {
        mrec r;
        rec_init(&r);
        bh_machine_config c = machine_config(&k, &r);
        with_every_device(&c, &f);
        c.vcpus = 1 + (uint32_t)(i % 2);
        bh_machine *m = NULL;
        REQUIRE_OK(bh_machine_create(kvm, &c, &m, &e));
        REQUIRE_OK(bh_machine_start(m, &e));
        bh_machine_exit x;
        REQUIRE_OK(bh_machine_wait(m, 20000, &x, &e));
        CHECK_EQ_U64(x.end, BH_MACHINE_POWER_OFF);
        bh_machine_destroy(m);
        if (i == 9)
            count_maps(&maps10, &guest);
    }
    int fds = count_dir("/proc/self/fd"), threads = count_dir("/proc/self/task"), maps;
    count_maps(&maps, &guest);
    tap_diag("after 50 cycles: fds %d -> %d, threads %d -> %d, mappings %d (after 10) -> %d, guest RAM mappings %d",
             fds0, fds, threads0, threads, maps10, maps, guest);
    CHECK_EQ_U64(fds, fds0);
    CHECK_EQ_U64(threads, threads0);
    CHECK_EQ_U64(guest, 0);
    CHECK(maps <= maps10 + 4); /* ASan's allocator may map a little; a leaked VM maps far more */
    struct stat st;
    CHECK(stat(f.uds, &st) != 0);
    bi_free(&k);
    remove_tree(f.dir);
    free(f.dir);
    bh_kvm_close(kvm);
}

/* --------------------------------------------------------------------------------------------- */

typedef struct feeder {
    int fd;
    volatile bool stop;
} feeder;

static void *feed_stdin(void *arg)
{
    feeder *fe = arg;
    const char chunk[] = "console input while the machine ends\n";
    while (!fe->stop)
        if (write(fe->fd, chunk, sizeof chunk - 1) < 0)
            break; /* EPIPE: bh-boot is gone */
    return NULL;
}

/* bh-boot (its ASan build) feeds stdin to the guest's console from a thread. Before the machine is
 * destroyed that thread is joined, so input that keeps arriving while the VM ends never reaches
 * freed memory (it did: bh_serial_input after bh_vm_destroy). */
void test_bh_boot_console_input_during_teardown(void)
{
    const char *tool = getenv("BH_BOOT_ASAN");
    if (!tool)
        return tap_skip("BH_BOOT_ASAN is not set (make -C native boot-test sets it)");
    bh_kvm *kvm = tap_open_kvm();
    if (!kvm)
        return;
    bh_kvm_close(kvm);
    char *dir = temp_dir();
    char kernel[256], errlog[256];
    snprintf(kernel, sizeof kernel, "%s/vmlinux", dir);
    snprintf(errlog, sizeof errlog, "%s/stderr", dir);
    bi_image k = kernel_of(mg_ticks_then_poweroff, mg_ticks_then_poweroff_end);
    int kfd = open(kernel, O_CREAT | O_WRONLY | O_TRUNC | O_CLOEXEC, 0600);
    REQUIRE(kfd >= 0 && write(kfd, k.data, k.len) == (ssize_t)k.len);
    close(kfd);
    bi_free(&k);
    for (int round = 0; round < 3; round++) {
        int in[2];
        REQUIRE(pipe2(in, O_CLOEXEC) == 0);
        pid_t pid = fork();
        if (pid == 0) {
            int err = open(errlog, O_CREAT | O_WRONLY | O_TRUNC, 0600);
            int null = open("/dev/null", O_WRONLY);
            dup2(in[0], 0);
            dup2(null, 1);
            dup2(err, 2);
            execl(tool, tool, "--kernel", kernel, "--memory-mib", "32", "--timeout-ms", "60000", (char *)NULL);
            _exit(127);
        }
        close(in[0]);
        signal(SIGPIPE, SIG_IGN);
        feeder fe = {.fd = in[1]};
        pthread_t th;
        REQUIRE(pthread_create(&th, NULL, feed_stdin, &fe) == 0);
        int status = 0;
        waitpid(pid, &status, 0);
        fe.stop = true;
        close(in[1]);
        pthread_join(th, NULL);
        char log[8192] = {0};
        int lfd = open(errlog, O_RDONLY);
        ssize_t n = lfd >= 0 ? read(lfd, log, sizeof log - 1) : 0;
        if (lfd >= 0)
            close(lfd);
        (void)n;
        CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
        CHECK(strstr(log, "AddressSanitizer") == NULL && strstr(log, "runtime error") == NULL);
        CHECK(strstr(log, "VM ended: power-off") != NULL);
        if (!(WIFEXITED(status) && WEXITSTATUS(status) == 0) || strstr(log, "Sanitizer"))
            tap_diag("bh-boot (round %d) said: %.3000s", round, log);
    }
    remove_tree(dir);
    free(dir);
}
