/*
 * tap_runner.h — the one TAP 14 runner of the native test binaries (run_tests and boot_tests):
 * one forked child per test, a per-test timeout, skips reported through a pipe (exit status 77),
 * tests chosen by name on the command line. The checks the tests use are in tap.h.
 */
#ifndef BH_TESTS_TAP_RUNNER_H
#define BH_TESTS_TAP_RUNNER_H

#include <stddef.h>

typedef struct tap_test {
    const char *prefix; /* reported before the name ("ok 1 - <prefix><name>"); not matched by filters */
    const char *name;   /* what a command-line filter matches */
    void (*fn)(void);
} tap_test;

/* Runs the tests named in argv[1..] (all of them when there is none) and prints their TAP stream
 * on stdout. Returns the exit status: 0 when nothing failed, 1 otherwise. */
int tap_run(const tap_test *tests, size_t count, int argc, char **argv);

#endif
