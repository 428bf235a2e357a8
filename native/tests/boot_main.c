/*
 * boot_main.c — runs the boot tests: `boot_tests [name ...]`. Exit 0 when nothing failed.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "boot_tap.h"
#include "boot_tests.h"

#define TEST_TIMEOUT_S 120
#define EXIT_SKIP 77

typedef struct boot_test {
    const char *name;
    void (*fn)(void);
} boot_test;

#define BT_ENTRY(name) {#name, test_##name},
static const boot_test all_tests[] = {BOOT_TEST_LIST(BT_ENTRY)};

int bt_failures;
static int skip_fd = -1;
static bool skipped;

void bt_diag(const char *fmt, ...)
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

void bt_skip(const char *fmt, ...)
{
    char reason[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(reason, sizeof reason, fmt, ap);
    va_end(ap);
    skipped = true;
    if (skip_fd >= 0 && write(skip_fd, reason, strlen(reason)) < 0)
        bt_diag("could not report the skip reason");
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static bool run_one(int number, const boot_test *t)
{
    int pipefd[2];
    if (pipe2(pipefd, O_CLOEXEC) < 0) {
        printf("not ok %d - boot_%s\n", number, t->name);
        return false;
    }
    fflush(stdout);
    double start = now_s();
    pid_t pid = fork();
    if (pid == 0) {
        close(pipefd[0]);
        skip_fd = pipefd[1];
        alarm(TEST_TIMEOUT_S);
        t->fn();
        close(skip_fd);
        fflush(stdout);
        exit(bt_failures ? 1 : skipped ? EXIT_SKIP : 0); /* exit(): LeakSanitizer runs */
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
    double secs = now_s() - start;
    if (WIFEXITED(status) && WEXITSTATUS(status) == EXIT_SKIP) {
        printf("ok %d - boot_%s # SKIP %s\n", number, t->name, reason);
        return true;
    }
    if (WIFEXITED(status) && WEXITSTATUS(status) == 0) {
        printf("ok %d - boot_%s # time=%.0fms\n", number, t->name, secs * 1000);
        return true;
    }
    if (WIFSIGNALED(status))
        printf("# boot_%s: killed by signal %d%s\n", t->name, WTERMSIG(status),
               WTERMSIG(status) == SIGALRM ? " (timeout)" : "");
    printf("not ok %d - boot_%s\n", number, t->name);
    return false;
}

int main(int argc, char **argv)
{
    size_t count = sizeof all_tests / sizeof all_tests[0];
    const boot_test *chosen[sizeof all_tests / sizeof all_tests[0]];
    size_t n = 0;
    for (size_t i = 0; i < count; i++) {
        bool want = argc < 2;
        for (int a = 1; a < argc; a++)
            want |= strcmp(argv[a], all_tests[i].name) == 0;
        if (want)
            chosen[n++] = &all_tests[i];
    }
    setvbuf(stdout, NULL, _IOLBF, 0);
    printf("TAP version 14\n1..%zu\n", n);
    int failed = 0;
    for (size_t i = 0; i < n; i++)
        failed += !run_one((int)i + 1, chosen[i]);
    printf("# boot tests: %zu run, %d failed\n", n, failed);
    return failed ? 1 : 0;
}
