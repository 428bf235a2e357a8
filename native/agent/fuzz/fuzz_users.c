/*
 * fuzz_users.c — libFuzzer target for the user resolution against an image's passwd and group
 * files (users.c), which come from the image and are untrusted. The input is
 * "spec \0 passwd \0 group"; the result must be a refusal with a message, or a user whose
 * groups are within their limit and whose home is an absolute, terminated path.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agent.h"

ag_config ag_cfg;

#define check(ok) check_at((ok), __LINE__, #ok)
static void check_at(bool ok, int line, const char *what)
{
    if (!ok) {
        fprintf(stderr, "fuzz_users.c:%d: invariant broken: %s\n", line, what);
        abort();
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *p = (const char *)data, *end = p + size;
    const char *z1 = memchr(p, 0, size);
    if (!z1) return 0;
    const char *z2 = memchr(z1 + 1, 0, (size_t)(end - z1 - 1));
    if (!z2) z2 = end;
    char *spec = strndup(p, (size_t)(z1 - p));
    size_t plen = (size_t)(z2 - z1 - 1);
    char *passwd = malloc(plen ? plen : 1);
    memcpy(passwd, z1 + 1, plen);
    size_t glen = z2 < end ? (size_t)(end - z2 - 1) : 0;
    char *group = malloc(glen ? glen : 1);
    if (glen) memcpy(group, z2 + 1, glen);
    static ag_user u;
    const char *why = user_resolve(spec, passwd, plen, group, glen, &u);
    if (!why) {
        check(u.ngroups >= 1 && u.ngroups <= AG_GROUPS_MAX);
        check(memchr(u.home, 0, sizeof u.home) != NULL && u.home[0] == '/');
        bool primary = false;
        for (int i = 0; i < u.ngroups; i++) primary |= u.groups[i] == u.gid;
        check(primary);
    } else {
        check(strlen(why) > 0);
    }
    free(spec);
    free(passwd);
    free(group);
    return 0;
}
