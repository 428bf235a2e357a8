/* error.c — filling bh_error: every failure says what was wrong, in words. */
#include "internal.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

int bh_fail(bh_error *err, bh_status code, int sys_errno, const char *fmt, ...)
{
    if (err) {
        va_list ap;
        err->code = code;
        err->sys_errno = sys_errno;
        va_start(ap, fmt);
        vsnprintf(err->message, sizeof err->message, fmt, ap);
        va_end(ap);
    }
    return code;
}

int bh_fail_errno(bh_error *err, const char *what)
{
    int e = errno;
    return bh_fail(err, e == ENOMEM ? BH_E_NOMEM : BH_E_SYSTEM, e, "%s failed: %s", what, strerror(e));
}

void bh_clear_error(bh_error *err)
{
    if (err) {
        err->code = BH_OK;
        err->sys_errno = 0;
        err->message[0] = '\0';
    }
}

void bh_copy_text(char *dst, size_t size, const char *src)
{
    if (size == 0)
        return;
    size_t n = src ? strnlen(src, size - 1) : 0;
    if (n)
        memcpy(dst, src, n);
    dst[n] = '\0';
}
