/*
 * users.c — a user spec ("name", "uid", "name:group", "uid:gid", empty for root) resolved the
 * way Docker does it, against the zone image's own passwd and group files (no NSS).
 *
 * The files come from the image, so they are untrusted input: lines are parsed within the
 * buffer, fields are bounded, and a malformed line is skipped rather than trusted.
 */
#include "agent.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define FIELDS_MAX 8

typedef struct {
    const char *p[FIELDS_MAX];
    size_t len[FIELDS_MAX];
    int n;
} fields;

/* Splits the line [p, end) at ':' into at most FIELDS_MAX fields. */
static void split(const char *p, const char *end, fields *f)
{
    f->n = 0;
    while (f->n < FIELDS_MAX) {
        const char *c = memchr(p, ':', (size_t)(end - p));
        const char *stop = c ? c : end;
        f->p[f->n] = p;
        f->len[f->n] = (size_t)(stop - p);
        f->n++;
        if (!c) break;
        p = c + 1;
    }
}

static bool field_is(const fields *f, int i, const char *s, size_t n)
{
    return i < f->n && f->len[i] == n && memcmp(f->p[i], s, n) == 0;
}

/* A decimal id of at most 10 digits that fits in u32. */
static bool parse_id(const char *p, size_t n, uint32_t *out)
{
    if (n == 0 || n > 10) return false;
    uint64_t v = 0;
    for (size_t i = 0; i < n; i++) {
        if (p[i] < '0' || p[i] > '9') return false;
        v = v * 10 + (uint64_t)(p[i] - '0');
    }
    if (v > UINT32_MAX) return false;
    *out = (uint32_t)v;
    return true;
}

/* Calls fn for every line of buf; stops when fn returns true. */
static bool each_line(const char *buf, size_t len, bool (*fn)(const fields *, void *), void *ctx)
{
    const char *p = buf, *end = buf + len;
    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        const char *stop = nl ? nl : end;
        if (stop > p && *p != '#') {
            fields f;
            split(p, stop, &f);
            if (fn(&f, ctx)) return true;
        }
        p = nl ? nl + 1 : end;
    }
    return false;
}

typedef struct {
    const char *name; size_t name_len; /* match by name, or */
    bool by_id; uint32_t id;           /* by id */
    bool found;
    uint32_t uid, gid;
    char name_out[256];
    const char *home; size_t home_len;
} pw_query;

static bool pw_match(const fields *f, void *ctx)
{
    pw_query *q = ctx;
    uint32_t uid, gid;
    if (f->n < 7 || !parse_id(f->p[2], f->len[2], &uid) || !parse_id(f->p[3], f->len[3], &gid)) return false;
    if (q->by_id ? uid != q->id : !field_is(f, 0, q->name, q->name_len)) return false;
    if (f->len[0] >= sizeof q->name_out) return false;
    q->found = true;
    q->uid = uid;
    q->gid = gid;
    memcpy(q->name_out, f->p[0], f->len[0]);
    q->name_out[f->len[0]] = 0;
    q->home = f->p[5];
    q->home_len = f->len[5];
    return true;
}

typedef struct {
    const char *name; size_t name_len;
    bool found; uint32_t gid;
} gr_query;

static bool gr_match(const fields *f, void *ctx)
{
    gr_query *q = ctx;
    uint32_t gid;
    if (f->n < 3 || !parse_id(f->p[2], f->len[2], &gid) || !field_is(f, 0, q->name, q->name_len)) return false;
    q->found = true;
    q->gid = gid;
    return true;
}

typedef struct {
    const char *user;
    ag_user *out;
} member_query;

static void add_group(ag_user *u, uint32_t gid)
{
    for (int i = 0; i < u->ngroups; i++)
        if (u->groups[i] == gid) return;
    if (u->ngroups < AG_GROUPS_MAX) u->groups[u->ngroups++] = gid;
}

static bool member_match(const fields *f, void *ctx)
{
    member_query *q = ctx;
    uint32_t gid;
    if (f->n < 4 || !parse_id(f->p[2], f->len[2], &gid)) return false;
    const char *p = f->p[3], *end = f->p[3] + f->len[3];
    size_t ulen = strlen(q->user);
    while (p < end) {
        const char *c = memchr(p, ',', (size_t)(end - p));
        const char *stop = c ? c : end;
        if ((size_t)(stop - p) == ulen && memcmp(p, q->user, ulen) == 0) {
            add_group(q->out, gid);
            break;
        }
        p = c ? c + 1 : end;
    }
    return false;
}

const char *user_resolve(const char *spec, const char *passwd, size_t passwd_len, const char *group,
                         size_t group_len, ag_user *out)
{
    memset(out, 0, sizeof *out);
    strcpy(out->home, "/");
    if (!spec || !*spec) spec = "0";
    const char *colon = strchr(spec, ':');
    size_t ulen = colon ? (size_t)(colon - spec) : strlen(spec);
    if (ulen == 0) return "the user part of the user spec is empty";

    pw_query pq = {.name = spec, .name_len = ulen};
    uint32_t id;
    if (parse_id(spec, ulen, &id)) {
        pq.by_id = true;
        pq.id = id;
    }
    each_line(passwd, passwd_len, pw_match, &pq);
    if (!pq.found && !pq.by_id) return "no such user in the image's /etc/passwd";
    out->uid = pq.found ? pq.uid : id;
    out->gid = pq.found ? pq.gid : 0;
    if (pq.found && pq.home_len > 0 && pq.home_len <= AG_PATH_MAX && pq.home[0] == '/') {
        memcpy(out->home, pq.home, pq.home_len);
        out->home[pq.home_len] = 0;
    }
    if (colon) {
        const char *g = colon + 1;
        size_t glen = strlen(g);
        if (glen == 0) return "the group part of the user spec is empty";
        if (!parse_id(g, glen, &out->gid)) {
            gr_query gq = {.name = g, .name_len = glen};
            each_line(group, group_len, gr_match, &gq);
            if (!gq.found) return "no such group in the image's /etc/group";
            out->gid = gq.gid;
        }
    }
    add_group(out, out->gid);
    if (pq.found) {
        member_query mq = {pq.name_out, out};
        each_line(group, group_len, member_match, &mq);
    }
    return NULL;
}

/* Reads at most 1 MiB of a file; a missing file reads as empty. */
static char *slurp(const char *dir, const char *name, size_t *len)
{
    char path[AG_PATH_MAX + 32];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    *len = 0;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return NULL;
    size_t cap = 1 << 20;
    char *buf = malloc(cap);
    if (buf) {
        while (*len < cap) {
            ssize_t n = read(fd, buf + *len, cap - *len);
            if (n < 0 && errno == EINTR) continue;
            if (n <= 0) break;
            *len += (size_t)n;
        }
    }
    close(fd);
    return buf;
}

const char *user_lookup(const char *spec, ag_user *out)
{
    const char *dir = ag_cfg.etc_dir ? ag_cfg.etc_dir : "/etc";
    size_t plen, glen;
    char *pw = slurp(dir, "passwd", &plen);
    char *gr = slurp(dir, "group", &glen);
    const char *why = user_resolve(spec, pw ? pw : "", plen, gr ? gr : "", glen, out);
    free(pw);
    free(gr);
    return why;
}
