/* boot_error.c — errors of the Linux loader: a malformed image is the caller's bad argument. */
#include <stdarg.h>
#include <stdio.h>

#include "boot_internal.h"

static int boot_vfail(bh_error *err, bh_status code, const char *fmt, va_list ap)
{
    if (err) {
        err->code = code;
        err->sys_errno = 0;
        vsnprintf(err->message, sizeof err->message, fmt, ap);
    }
    return code;
}

int bh_boot_invalid(bh_error *err, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int rc = boot_vfail(err, BH_E_INVALID_ARG, fmt, ap);
    va_end(ap);
    return rc;
}

int bh_boot_status(bh_error *err, bh_status code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int rc = boot_vfail(err, code, fmt, ap);
    va_end(ap);
    return rc;
}
