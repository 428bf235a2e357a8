/*
 * tap_runner.c — the TAP 14 runner shared by run_tests (main.c) and boot_tests (boot_main.c), and
 * the diagnostics, skip and timing helpers of tap.h.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "tap.h"
#include "tap_runner.h"

#define TEST_TIMEOUT_S 120
#define EXIT_SKIP 77

int tap_failures;
static int skip_fd = -1; /* the child writes its skip reason here */
static bool skipped;

/* One "# ..." line: newlines in the message are flattened so it cannot break the TAP stream. */
void tap_diag(const char *fmt, ...)
{
    char line[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    for (char *p = line; *p; p++)
        if (*p == '\n')
            *p = ' ';
    printf("# %s\n", line);
    fflush(stdout);
}

void tap_skip(const char *fmt, ...)
{
    char reason[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(reason, sizeof reason, fmt, ap);
    va_end(ap);
    skipped = true;
    if (skip_fd >= 0 && write(skip_fd, reason, strlen(reason)) < 0)
        tap_diag("could not report the skip reason");
}

/* BH_KVM_PATH overrides /dev/kvm (e.g. BH_KVM_PATH=/nonexistent shows every test's skip path). */
bh_kvm *tap_open_kvm(void)
{
    bh_kvm *kvm = NULL;
    bh_error e = {0};
    const char *path = getenv("BH_KVM_PATH");
    if (bh_kvm_open(path && *path ? path : NULL, &kvm, &e) != 0) {
        tap_skip("no usable /dev/kvm: %s", e.message);
        return NULL;
    }
    return kvm;
}

double tap_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

void tap_sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) < 0 && errno == EINTR) {
    }
}

static void run_child(const tap_test *t, int fd)
{
    skip_fd = fd;
    alarm(TEST_TIMEOUT_S);
    t->fn();
    close(fd);
    fflush(stdout);
    exit(tap_failures ? 1 : skipped ? EXIT_SKIP : 0); /* exit(), not _exit(): LeakSanitizer runs */
}

/* Returns true when the test passed or was skipped. */
static bool run_one(int number, const tap_test *t)
{
    const char *prefix = t->prefix ? t->prefix : "";
    int pipefd[2];
    if (pipe2(pipefd, O_CLOEXEC) < 0) {
        printf("not ok %d - %s%s\n# pipe: %s\n", number, prefix, t->name, strerror(errno));
        return false;
    }
    fflush(stdout);
    double start = tap_now();
    pid_t pid = fork();
    if (pid == 0) {
        close(pipefd[0]);
        run_child(t, pipefd[1]);
    }
    close(pipefd[1]);
    char reason[512] = {0};
    ssize_t got = 0, n;
    while ((n = read(pipefd[0], reason + got, sizeof reason - 1 - (size_t)got)) > 0)
        got += n;
    close(pipefd[0]);
    int status = 0;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
    double secs = tap_now() - start;

    if (WIFEXITED(status) && WEXITSTATUS(status) == EXIT_SKIP) {
        printf("ok %d - %s%s # SKIP %s\n", number, prefix, t->name, reason);
        return true;
    }
    if (WIFEXITED(status) && WEXITSTATUS(status) == 0) {
        printf("ok %d - %s%s # time=%.0fms\n", number, prefix, t->name, secs * 1000);
        return true;
    }
    if (WIFSIGNALED(status))
        printf("# %s%s: killed by signal %d (%s)%s\n", prefix, t->name, WTERMSIG(status),
               strsignal(WTERMSIG(status)), WTERMSIG(status) == SIGALRM ? " — timed out" : "");
    else
        printf("# %s%s: exit status %d\n", prefix, t->name, WEXITSTATUS(status));
    printf("not ok %d - %s%s\n", number, prefix, t->name);
    return false;
}

static bool selected(const char *name, int argc, char **argv)
{
    if (argc <= 1)
        return true;
    for (int i = 1; i < argc; i++)
        if (strcmp(argv[i], name) == 0)
            return true;
    return false;
}

int tap_run(const tap_test *tests, size_t count, int argc, char **argv)
{
    const tap_test *chosen[count ? count : 1];
    size_t n = 0;
    for (size_t i = 0; i < count; i++)
        if (selected(tests[i].name, argc, argv))
            chosen[n++] = &tests[i];

    setvbuf(stdout, NULL, _IOLBF, 0);
    printf("TAP version 14\n1..%zu\n", n);
    int failed = 0;
    for (size_t i = 0; i < n; i++)
        if (!run_one((int)i + 1, chosen[i]))
            failed++;
    printf("# %zu run, %d failed\n", n, failed);
    fflush(stdout);
    return failed ? 1 : 0;
}
