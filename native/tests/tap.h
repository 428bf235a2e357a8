/*
 * tap.h — the checks and helpers of the native tests' TAP 14 harness (core and boot tests alike).
 * Each test runs in its own forked child (so a hung or crashing test is reported, not fatal to the
 * run), prints diagnostics as "# ..." lines, and either passes, fails (any CHECK failed) or skips
 * with a reason. The runner itself is tap_runner.h.
 */
#ifndef BH_TESTS_TAP_H
#define BH_TESTS_TAP_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "bulkhead.h"

extern int tap_failures;

void tap_diag(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void tap_skip(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#define CHECK(cond)                                                                   \
    do {                                                                              \
        if (!(cond)) {                                                                \
            tap_diag("%s:%d: CHECK(%s) failed", __FILE__, __LINE__, #cond);           \
            tap_failures++;                                                           \
        }                                                                             \
    } while (0)

#define REQUIRE(cond)                                                                 \
    do {                                                                              \
        if (!(cond)) {                                                                \
            tap_diag("%s:%d: REQUIRE(%s) failed", __FILE__, __LINE__, #cond);         \
            tap_failures++;                                                           \
            return;                                                                   \
        }                                                                             \
    } while (0)

#define CHECK_EQ_U64(a, b)                                                            \
    do {                                                                              \
        uint64_t a_ = (uint64_t)(a), b_ = (uint64_t)(b);                              \
        if (a_ != b_) {                                                               \
            tap_diag("%s:%d: %s == 0x%llx, expected %s == 0x%llx", __FILE__, __LINE__, \
                     #a, (unsigned long long)a_, #b, (unsigned long long)b_);         \
            tap_failures++;                                                           \
        }                                                                             \
    } while (0)

/* A call returning a bh_status that must succeed; `e` is a bh_error in scope. */
#define REQUIRE_OK(call)                                                              \
    do {                                                                              \
        int rc_ = (call);                                                             \
        if (rc_ != 0) {                                                               \
            tap_diag("%s:%d: %s returned %d: %s", __FILE__, __LINE__, #call, rc_,    \
                     e.message);                                                      \
            tap_failures++;                                                           \
            return;                                                                   \
        }                                                                             \
    } while (0)

/* The call must fail with `want` and a message containing `needle`; `e` is a bh_error in scope. */
#define CHECK_FAILS_WITH(call, want, needle)                                          \
    do {                                                                              \
        memset(&e, 0, sizeof e);                                                      \
        int rc_ = (call);                                                             \
        if (rc_ != (want) || e.code != (want) || !strstr(e.message, (needle))) {      \
            tap_diag("%s:%d: %s returned %d (%s), expected %d with \"%s\"", __FILE__,  \
                     __LINE__, #call, rc_, e.message, (int)(want), (needle));         \
            tap_failures++;                                                           \
        } else {                                                                      \
            tap_diag("refused as expected: %s", e.message);                           \
        }                                                                             \
    } while (0)

/* Opens /dev/kvm, or marks the test skipped (with the reason) and returns NULL. */
bh_kvm *tap_open_kvm(void);

double tap_now(void); /* monotonic seconds */
void tap_sleep_ms(int ms);

#endif
