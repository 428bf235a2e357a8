/* test_lifecycle.c — many VMs in a row leave no fd, thread or mapping behind. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <sys/resource.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "guests.h"
#include "helpers.h"
#include "tests.h"

#define MIB (1024ULL * 1024ULL)
#define CYCLES 200

static int count_dir(const char *path)
{
    DIR *d = opendir(path);
    if (!d)
        return -1;
    int n = 0;
    struct dirent *ent;
    while ((ent = readdir(d)))
        if (ent->d_name[0] != '.')
            n++;
    closedir(d);
    return n;
}

typedef struct usage {
    int fds, threads, maps, guest_maps;
} usage;

static usage measure(void)
{
    usage u = {.fds = count_dir("/proc/self/fd"), .threads = count_dir("/proc/self/task")};
    FILE *f = fopen("/proc/self/maps", "r");
    char line[512];
    while (f && fgets(line, sizeof line, f)) {
        u.maps++;
        if (strstr(line, "bulkhead-guest-ram") || strstr(line, "kvm-vcpu"))
            u.guest_maps++;
    }
    if (f)
        fclose(f);
    return u;
}

static bool wait_log(io_log *log, int n)
{
    double deadline = tap_now() + 10;
    for (;;) {
        pthread_mutex_lock(&log->lock);
        int have = log->count;
        pthread_mutex_unlock(&log->lock);
        if (have >= n)
            return true;
        if (tap_now() > deadline)
            return false;
        tap_sleep_ms(1);
    }
}

/* One cycle, varied by `i`: 1-3 vCPUs, with or without irqchip and eventfds, ended by HLT, by
 * bh_vm_stop (vCPU halted in the kernel, or spinning), by destroy while running, or never started. */
static bool one_cycle(int i)
{
    test_vm t;
    bh_error e = {0};
    io_log log;
    iolog_init(&log, 0x5a);
    bool irqchip = i % 2 == 1;
    uint32_t vcpus = 1 + (uint32_t)(i % 3);
    if (!tvm_create(&t, 2 * MIB, vcpus, irqchip))
        return false;
    bool ok = bh_vm_register_pio(t.vm, 0x10, 3, iolog_handler, &log, &e) == 0 &&
              gb_load(t.vm, 0x1000, g_real_io, g_real_io_len, &e) == 0 &&
              gb_load(t.vm, 0x2000, g_spin16, g_spin16_len, &e) == 0 && gb_real_mode(t.vm, 0, 0x1000, &e) == 0;
    for (uint32_t v = 1; v < vcpus && ok; v++)
        ok = gb_real_mode(t.vm, v, 0x2000, &e) == 0;
    if (ok && irqchip && i % 4 == 1) {
        int fd;
        ok = bh_vm_add_irqfd(t.vm, 4, &fd, &e) == 0 && bh_vm_add_ioeventfd(t.vm, 0x510, 1, false, false, 0, &fd, &e) == 0;
    }
    if (ok && i % 10 != 9) { /* every tenth VM is destroyed without ever starting */
        ok = bh_vm_start(t.vm, &e) == 0 && wait_log(&log, 3);
        if (ok && i % 5 != 0) /* every fifth is destroyed while running */
            ok = bh_vm_stop(t.vm, &e) == 0;
    }
    if (!ok)
        tap_diag("cycle %d failed: %s", i, e.message[0] ? e.message : "(timed out)");
    tvm_destroy(&t);
    return ok;
}

void test_create_run_destroy_200_cycles_no_leaks(void)
{
    for (int i = 0; i < 10; i++) /* warm up allocator pools and the sanitizer's own mappings */
        if (!one_cycle(i))
            return;
    usage before = measure();
    double start = tap_now();
    int failed = 0;
    for (int i = 0; i < CYCLES; i++)
        failed += !one_cycle(i);
    double took = tap_now() - start;
    usage after = measure();
    tap_diag("%d cycles in %.2f s (%.2f ms each); fds %d -> %d, threads %d -> %d, maps %d -> %d, guest maps %d -> %d",
             CYCLES, took, took * 1000 / CYCLES, before.fds, after.fds, before.threads, after.threads,
             before.maps, after.maps, before.guest_maps, after.guest_maps);
    CHECK(failed == 0);
    CHECK(after.fds == before.fds);
    CHECK(after.threads == before.threads);
    CHECK(after.guest_maps == 0);
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define UNDER_SANITIZER 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
#define UNDER_SANITIZER 1
#endif
#endif
#ifdef UNDER_SANITIZER
    /* A sanitizer's runtime maps regions of its own as it goes (measured over 200 cycles: ASan +8,
     * TSan +16..+51), so here the bound only catches a per-VM leak (each leaked VM would leave at
     * least its RAM and one kvm_run mapping: 400+ lines). The exact count is checked by
     * cycles_no_leaks_unsanitized_exact_maps, which runs this test from the plain build. */
    CHECK(after.maps < before.maps + CYCLES);
#else
    CHECK(after.maps == before.maps);
#endif
}

/* ASan maps memory of its own, so the exact mapping count is checked by running the lifecycle test
 * from the unsanitized build of this runner (BH_PLAIN_RUNNER, set by the Makefile). */
void test_cycles_no_leaks_unsanitized_exact_maps(void)
{
    const char *runner = getenv("BH_PLAIN_RUNNER");
    if (!runner || !*runner) {
        tap_skip("BH_PLAIN_RUNNER is not set (make -C native test sets it)");
        return;
    }
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "%s create_run_destroy_200_cycles_no_leaks 2>&1", runner);
    FILE *p = popen(cmd, "r");
    REQUIRE(p != NULL);
    char line[1024];
    bool passed = false, skipped = false;
    while (fgets(line, sizeof line, p)) {
        line[strcspn(line, "\n")] = '\0';
        if (strncmp(line, "ok 1 ", 5) == 0) {
            skipped = strstr(line, "# SKIP") != NULL;
            passed = !skipped;
        }
        tap_diag("plain: %s", line);
    }
    int status = pclose(p);
    if (skipped) {
        tap_skip("the unsanitized run skipped (see its reason above)");
        return;
    }
    CHECK(passed);
    CHECK(status == 0);
}

/* Fills every unused descriptor number below the highest one in use, so that "limit = highest + 1 +
 * n" leaves exactly n descriptors for the code under test. Returns the highest fd in use. */
static int fill_fd_holes(int *fillers, int max_fillers, int *nfillers)
{
    int top = -1;
    DIR *d = opendir("/proc/self/fd");
    struct dirent *ent;
    int self = d ? dirfd(d) : -1;
    while (d && (ent = readdir(d)))
        if (ent->d_name[0] != '.' && atoi(ent->d_name) != self && atoi(ent->d_name) > top)
            top = atoi(ent->d_name);
    if (d)
        closedir(d);
    *nfillers = 0;
    while (*nfillers < max_fillers) {
        int fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
        if (fd < 0 || fd > top) {
            if (fd >= 0)
                close(fd);
            break;
        }
        fillers[(*nfillers)++] = fd;
    }
    return top;
}

/* Creation that fails part-way (the fd limit is hit at each successive step: VM fd, memfd, each
 * vCPU fd) frees whatever was already built. */
void test_partial_create_frees_everything(void)
{
    bh_kvm *kvm = tap_open_kvm();
    if (!kvm)
        return;
    struct rlimit saved;
    REQUIRE(getrlimit(RLIMIT_NOFILE, &saved) == 0);
    int fillers[256], nfillers = 0;
    int top = fill_fd_holes(fillers, 256, &nfillers);
    usage before = measure();
    int failures = 0, successes = 0;
    for (int spare = 0; spare <= 6; spare++) { /* the VM needs 1 + 1 + 3 = 5 */
        struct rlimit lim = saved;
        lim.rlim_cur = (rlim_t)(top + 1 + spare);
        REQUIRE(setrlimit(RLIMIT_NOFILE, &lim) == 0);
        bh_vm_config c = {.memory_bytes = 2 * MIB, .vcpus = 3, .irqchip = true};
        bh_vm *vm = NULL;
        bh_error e = {0};
        int rc = bh_vm_create(kvm, &c, &vm, &e);
        REQUIRE(setrlimit(RLIMIT_NOFILE, &saved) == 0);
        if (rc == 0) {
            successes++;
            bh_vm_destroy(vm);
        } else {
            failures++;
            CHECK(vm == NULL);
            CHECK(rc == BH_E_SYSTEM && e.sys_errno == EMFILE);
            tap_diag("with %d spare fds: %s", spare, e.message);
        }
        usage now = measure();
        CHECK(now.fds == before.fds);
        CHECK(now.guest_maps == 0);
    }
    CHECK_EQ_U64(failures, 5); /* VM fd, memfd, vCPU 0, 1, 2 */
    CHECK_EQ_U64(successes, 2);
    for (int i = 0; i < nfillers; i++)
        close(fillers[i]);
    bh_kvm_close(kvm);
}
