/*
 * boot_tap.h — the Linux loader's test runner (TAP 14, one forked child per test, so a crash or
 * hang is a "not ok", never the end of the run). Separate from the core's run_tests: the boot
 * tests link the loader and device models as well.
 */
#ifndef BH_BOOT_TAP_H
#define BH_BOOT_TAP_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "bulkhead.h"

extern int bt_failures;
void bt_diag(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void bt_skip(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#define BT_CHECK(cond)                                                                   \
    do {                                                                                 \
        if (!(cond)) {                                                                   \
            bt_diag("%s:%d: CHECK(%s) failed", __FILE__, __LINE__, #cond);               \
            bt_failures++;                                                               \
        }                                                                                \
    } while (0)

#define BT_REQUIRE(cond)                                                                 \
    do {                                                                                 \
        if (!(cond)) {                                                                   \
            bt_diag("%s:%d: REQUIRE(%s) failed", __FILE__, __LINE__, #cond);             \
            bt_failures++;                                                               \
            return;                                                                      \
        }                                                                                \
    } while (0)

#define BT_EQ(a, b)                                                                      \
    do {                                                                                 \
        uint64_t a_ = (uint64_t)(a), b_ = (uint64_t)(b);                                 \
        if (a_ != b_) {                                                                  \
            bt_diag("%s:%d: %s == 0x%llx, expected %s == 0x%llx", __FILE__, __LINE__, #a, \
                    (unsigned long long)a_, #b, (unsigned long long)b_);                 \
            bt_failures++;                                                               \
        }                                                                                \
    } while (0)

#define BT_OK(call)                                                                      \
    do {                                                                                 \
        int rc_ = (call);                                                                \
        if (rc_ != 0) {                                                                  \
            bt_diag("%s:%d: %s returned %d: %s", __FILE__, __LINE__, #call, rc_,         \
                    e.message);                                                          \
            bt_failures++;                                                               \
            return;                                                                      \
        }                                                                                \
    } while (0)

/* The call must fail with `want` and a message containing `needle`. */
#define BT_FAILS_WITH(call, want, needle)                                                \
    do {                                                                                 \
        memset(&e, 0, sizeof e);                                                         \
        int rc_ = (call);                                                                \
        if (rc_ != (want) || e.code != (want) || !strstr(e.message, (needle))) {         \
            bt_diag("%s:%d: %s returned %d (%s), expected %d with \"%s\"", __FILE__,     \
                    __LINE__, #call, rc_, e.message, (int)(want), (needle));             \
            bt_failures++;                                                               \
        } else {                                                                         \
            bt_diag("refused as expected: %s", e.message);                              \
        }                                                                                \
    } while (0)

#endif
