/*
 * proto.c — decoding of host frames and encoding of agent frames (PROTOCOL.md).
 *
 * The host is untrusted: every read goes through a cursor that refuses to pass the end, every
 * count and length is checked against its limit before anything is used, and a payload must be
 * consumed exactly (trailing bytes are an error, so two encodings never mean the same thing).
 */
#include "proto.h"

#include <stdlib.h>
#include <string.h>

typedef struct {
    const uint8_t *p;
    size_t n, off;
    bool bad;
} cursor;

static bool need(cursor *c, size_t k)
{
    if (c->bad || c->n - c->off < k) {
        c->bad = true;
        return false;
    }
    return true;
}

static uint8_t rd_u8(cursor *c)
{
    if (!need(c, 1)) return 0;
    return c->p[c->off++];
}

static uint16_t rd_u16(cursor *c)
{
    if (!need(c, 2)) return 0;
    uint16_t v = (uint16_t)(c->p[c->off] | (c->p[c->off + 1] << 8));
    c->off += 2;
    return v;
}

static uint32_t rd_u32(cursor *c)
{
    if (!need(c, 4)) return 0;
    const uint8_t *q = c->p + c->off;
    c->off += 4;
    return (uint32_t)q[0] | ((uint32_t)q[1] << 8) | ((uint32_t)q[2] << 16) | ((uint32_t)q[3] << 24);
}

static uint64_t rd_u64(cursor *c)
{
    uint64_t lo = rd_u32(c);
    uint64_t hi = rd_u32(c);
    return lo | (hi << 32);
}

/* A u32-length string of at most `max` bytes without NUL bytes. */
static ag_str rd_str(cursor *c, uint32_t max, const char **why, const char *what)
{
    ag_str s = {NULL, 0};
    uint32_t len = rd_u32(c);
    if (c->bad) return s;
    if (len > max) {
        c->bad = true;
        if (!*why) *why = what;
        return s;
    }
    if (!need(c, len)) return s;
    s.data = c->p + c->off;
    s.len = len;
    c->off += len;
    if (len && memchr(s.data, 0, len)) {
        c->bad = true;
        if (!*why) *why = what;
    }
    return s;
}

static ag_status finish(cursor *c, const char *why, const char *truncated)
{
    if (why) return (ag_status){AG_E_PROTOCOL, why};
    if (c->bad) return (ag_status){AG_E_PROTOCOL, truncated};
    if (c->off != c->n) return (ag_status){AG_E_PROTOCOL, "trailing bytes after the payload"};
    return AG_OK;
}

ag_status ag_header_decode(const uint8_t *b, ag_header *h)
{
    h->length = (uint32_t)b[0] | ((uint32_t)b[1] << 8) | ((uint32_t)b[2] << 16) | ((uint32_t)b[3] << 24);
    h->stream = (uint32_t)b[4] | ((uint32_t)b[5] << 8) | ((uint32_t)b[6] << 16) | ((uint32_t)b[7] << 24);
    h->type = b[8];
    h->flags = b[9];
    if (b[10] || b[11]) return (ag_status){AG_E_PROTOCOL, "reserved header bytes are not zero"};
    if (h->length > AG_FRAME_MAX) return (ag_status){AG_E_PROTOCOL, "frame longer than 1 MiB"};
    return AG_OK;
}

void ag_header_encode(uint8_t *b, const ag_header *h)
{
    for (int i = 0; i < 4; i++) b[i] = (uint8_t)(h->length >> (8 * i));
    for (int i = 0; i < 4; i++) b[4 + i] = (uint8_t)(h->stream >> (8 * i));
    b[8] = h->type;
    b[9] = h->flags;
    b[10] = b[11] = 0;
}

ag_status ag_host_header_check(const ag_header *h)
{
    switch (h->type) {
    case AG_T_HELLO:
    case AG_T_PING:
        if (h->stream != 0) return (ag_status){AG_E_PROTOCOL, "HELLO and PING belong on stream 0"};
        break;
    case AG_T_REQUEST:
    case AG_T_DATA:
    case AG_T_CREDIT:
    case AG_T_SIGNAL:
    case AG_T_RESIZE:
    case AG_T_CANCEL:
        if (h->stream == 0) return (ag_status){AG_E_PROTOCOL, "stream 0 carries only HELLO and PING"};
        break;
    default:
        return (ag_status){AG_E_PROTOCOL, "unknown frame type"};
    }
    if (h->flags & ~(h->type == AG_T_DATA ? AG_F_EOF : 0))
        return (ag_status){AG_E_PROTOCOL, "unknown frame flags"};
    return AG_OK;
}

ag_status ag_hello_decode(const uint8_t *p, size_t n, uint16_t *min_version, uint16_t *max_version)
{
    cursor c = {p, n, 0, false};
    uint32_t magic = rd_u32(&c);
    *min_version = rd_u16(&c);
    *max_version = rd_u16(&c);
    ag_status st = finish(&c, NULL, "HELLO is 8 bytes");
    if (st.code) return st;
    if (magic != AG_MAGIC) return (ag_status){AG_E_PROTOCOL, "HELLO magic is not BHAG"};
    if (*min_version > *max_version) return (ag_status){AG_E_PROTOCOL, "HELLO min version above max"};
    return AG_OK;
}

ag_status ag_u64_payload(const uint8_t *p, size_t n, uint64_t *v)
{
    cursor c = {p, n, 0, false};
    *v = rd_u64(&c);
    return finish(&c, NULL, "payload is one u64");
}

ag_status ag_credit_decode(const uint8_t *p, size_t n, uint8_t *channel, uint32_t *bytes)
{
    cursor c = {p, n, 0, false};
    *channel = rd_u8(&c);
    *bytes = rd_u32(&c);
    ag_status st = finish(&c, NULL, "CREDIT is 5 bytes");
    if (st.code) return st;
    if (*channel >= AG_CH_COUNT) return (ag_status){AG_E_PROTOCOL, "CREDIT for an unknown channel"};
    return AG_OK;
}

ag_status ag_signal_decode(const uint8_t *p, size_t n, uint32_t *signo)
{
    cursor c = {p, n, 0, false};
    *signo = rd_u32(&c);
    ag_status st = finish(&c, NULL, "SIGNAL is 4 bytes");
    if (st.code) return st;
    if (*signo < 1 || *signo > 64) return (ag_status){AG_E_PROTOCOL, "signal number outside 1..64"};
    return AG_OK;
}

ag_status ag_resize_decode(const uint8_t *p, size_t n, uint16_t *rows, uint16_t *cols)
{
    cursor c = {p, n, 0, false};
    *rows = rd_u16(&c);
    *cols = rd_u16(&c);
    return finish(&c, NULL, "RESIZE is 4 bytes");
}

ag_status ag_data_decode(const uint8_t *p, size_t n, uint8_t *channel, const uint8_t **bytes, size_t *len)
{
    if (n < 1) return (ag_status){AG_E_PROTOCOL, "DATA needs a channel byte"};
    *channel = p[0];
    if (*channel >= AG_CH_COUNT) return (ag_status){AG_E_PROTOCOL, "DATA on an unknown channel"};
    *bytes = p + 1;
    *len = n - 1;
    return AG_OK;
}

static bool is_env_entry(ag_str s)
{
    const uint8_t *eq = s.len ? memchr(s.data, '=', s.len) : NULL;
    return eq && eq != s.data;
}

static ag_status decode_exec(cursor *c, ag_exec_req *e, bool launch)
{
    const char *why = NULL;
    e->argc = rd_u16(c);
    if (!c->bad && (e->argc < 1 || e->argc > AG_ARGV_MAX)) return (ag_status){AG_E_PROTOCOL, "argv count outside 1..1024"};
    for (uint32_t i = 0; i < e->argc && !c->bad; i++)
        e->argv[i] = rd_str(c, AG_STRING_MAX, &why, "an argument is longer than 64 KiB or holds NUL");
    if (!c->bad && e->argv[0].len == 0) return (ag_status){AG_E_PROTOCOL, "argv[0] is empty"};
    e->envc = rd_u16(c);
    if (!c->bad && e->envc > AG_ENV_MAX) return (ag_status){AG_E_PROTOCOL, "env count above 1024"};
    for (uint32_t i = 0; i < e->envc && !c->bad; i++) {
        e->env[i] = rd_str(c, AG_STRING_MAX, &why, "an env entry is longer than 64 KiB or holds NUL");
        if (!c->bad && !is_env_entry(e->env[i])) return (ag_status){AG_E_PROTOCOL, "an env entry is not NAME=value"};
    }
    e->cwd = rd_str(c, AG_PATH_MAX, &why, "cwd longer than 4096 bytes or holds NUL");
    if (!c->bad && e->cwd.len && e->cwd.data[0] != '/') return (ag_status){AG_E_PROTOCOL, "cwd is not an absolute path"};
    e->user = rd_str(c, AG_USER_MAX, &why, "user longer than 256 bytes or holds NUL");
    e->flags = rd_u8(c);
    if (!c->bad && (e->flags & ~AG_EXEC_FLAGS_ALL)) return (ag_status){AG_E_PROTOCOL, "unknown exec flags"};
    e->rows = rd_u16(c);
    e->cols = rd_u16(c);
    e->hostname = (ag_str){NULL, 0};
    e->launch_flags = 0;
    if (launch) {
        e->hostname = rd_str(c, AG_HOSTNAME_MAX, &why, "hostname longer than 64 bytes or holds NUL");
        e->launch_flags = rd_u8(c);
        if (!c->bad && (e->launch_flags & ~AG_LAUNCH_FLAGS_ALL)) return (ag_status){AG_E_PROTOCOL, "unknown launch flags"};
    }
    return finish(c, why, "exec request truncated");
}

static ag_str rd_path(cursor *c, const char **why)
{
    ag_str s = rd_str(c, AG_PATH_MAX, why, "path longer than 4096 bytes or holds NUL");
    if (!c->bad && (s.len == 0 || s.data[0] != '/')) {
        c->bad = true;
        if (!*why) *why = "path is not absolute";
    }
    return s;
}

ag_status ag_request_decode(const uint8_t *p, size_t n, ag_request *r)
{
    cursor c = {p, n, 0, false};
    const char *why = NULL;
    r->op = rd_u8(&c);
    if (c.bad) return (ag_status){AG_E_PROTOCOL, "REQUEST needs an operation byte"};
    switch (r->op) {
    case AG_OP_LAUNCH:
    case AG_OP_EXEC:
        return decode_exec(&c, &r->u.exec, r->op == AG_OP_LAUNCH);
    case AG_OP_SIGNAL_MAIN:
        r->u.signo = rd_u32(&c);
        if (!c.bad && (r->u.signo < 1 || r->u.signo > 64)) return (ag_status){AG_E_PROTOCOL, "signal number outside 1..64"};
        return finish(&c, NULL, "SIGNAL_MAIN is a u32");
    case AG_OP_SHUTDOWN:
        r->u.action = rd_u8(&c);
        if (!c.bad && r->u.action > AG_SHUTDOWN_REBOOT) return (ag_status){AG_E_PROTOCOL, "unknown shutdown action"};
        return finish(&c, NULL, "SHUTDOWN is a u8");
    case AG_OP_EVENTS:
    case AG_OP_METRICS:
        return finish(&c, NULL, "no payload expected");
    case AG_OP_FILE_READ:
        r->u.read.path = rd_path(&c, &why);
        r->u.read.offset = rd_u64(&c);
        r->u.read.length = rd_u64(&c);
        return finish(&c, why, "FILE_READ truncated");
    case AG_OP_FILE_WRITE:
        r->u.write.path = rd_path(&c, &why);
        r->u.write.mode = rd_u32(&c);
        r->u.write.how = rd_u8(&c);
        r->u.write.parents = rd_u8(&c);
        if (!c.bad && !why && r->u.write.mode > 07777) return (ag_status){AG_E_PROTOCOL, "file mode above 07777"};
        if (!c.bad && !why && r->u.write.how > AG_WRITE_EXCLUSIVE) return (ag_status){AG_E_PROTOCOL, "unknown write mode"};
        if (!c.bad && !why && r->u.write.parents > 1) return (ag_status){AG_E_PROTOCOL, "parents is 0 or 1"};
        return finish(&c, why, "FILE_WRITE truncated");
    case AG_OP_STAT:
        r->u.stat.path = rd_path(&c, &why);
        r->u.stat.follow = rd_u8(&c);
        if (!c.bad && !why && r->u.stat.follow > 1) return (ag_status){AG_E_PROTOCOL, "follow is 0 or 1"};
        return finish(&c, why, "STAT truncated");
    case AG_OP_LIST:
        r->u.list.path = rd_path(&c, &why);
        return finish(&c, why, "LIST truncated");
    case AG_OP_MKDIR:
        r->u.mkdir.path = rd_path(&c, &why);
        r->u.mkdir.mode = rd_u32(&c);
        r->u.mkdir.parents = rd_u8(&c);
        if (!c.bad && !why && r->u.mkdir.mode > 07777) return (ag_status){AG_E_PROTOCOL, "directory mode above 07777"};
        if (!c.bad && !why && r->u.mkdir.parents > 1) return (ag_status){AG_E_PROTOCOL, "parents is 0 or 1"};
        return finish(&c, why, "MKDIR truncated");
    case AG_OP_REMOVE:
        r->u.remove.path = rd_path(&c, &why);
        r->u.remove.recursive = rd_u8(&c);
        if (!c.bad && !why && r->u.remove.recursive > 1) return (ag_status){AG_E_PROTOCOL, "recursive is 0 or 1"};
        return finish(&c, why, "REMOVE truncated");
    case AG_OP_RENAME:
        r->u.rename.from = rd_path(&c, &why);
        r->u.rename.to = rd_path(&c, &why);
        return finish(&c, why, "RENAME truncated");
    default:
        return (ag_status){AG_E_UNKNOWN_OP, "unknown request operation"};
    }
}

char *ag_strdup(ag_str s)
{
    char *out = malloc((size_t)s.len + 1);
    if (!out) return NULL;
    if (s.len) memcpy(out, s.data, s.len);
    out[s.len] = 0;
    return out;
}

/* ---- encoding ---------------------------------------------------------------------------- */

static void reserve(ag_buf *b, size_t more)
{
    if (b->failed) return;
    if (b->cap - b->len >= more) return;
    size_t cap = b->cap ? b->cap : 256;
    while (cap - b->len < more) cap *= 2;
    uint8_t *d = realloc(b->data, cap);
    if (!d) {
        b->failed = true;
        return;
    }
    b->data = d;
    b->cap = cap;
}

void ag_buf_bytes(ag_buf *b, const void *p, size_t n)
{
    reserve(b, n);
    if (b->failed || n == 0) return;
    memcpy(b->data + b->len, p, n);
    b->len += n;
}

void ag_buf_u8(ag_buf *b, uint8_t v) { ag_buf_bytes(b, &v, 1); }

void ag_buf_u16(ag_buf *b, uint16_t v)
{
    uint8_t q[2] = {(uint8_t)v, (uint8_t)(v >> 8)};
    ag_buf_bytes(b, q, 2);
}

void ag_buf_u32(ag_buf *b, uint32_t v)
{
    uint8_t q[4];
    for (int i = 0; i < 4; i++) q[i] = (uint8_t)(v >> (8 * i));
    ag_buf_bytes(b, q, 4);
}

void ag_buf_u64(ag_buf *b, uint64_t v)
{
    ag_buf_u32(b, (uint32_t)v);
    ag_buf_u32(b, (uint32_t)(v >> 32));
}

void ag_buf_str(ag_buf *b, const char *s, size_t n)
{
    ag_buf_u32(b, (uint32_t)n);
    ag_buf_bytes(b, s, n);
}

void ag_buf_free(ag_buf *b)
{
    free(b->data);
    *b = (ag_buf){0};
}

size_t ag_frame_begin(ag_buf *b, uint32_t stream, uint8_t type, uint8_t flags)
{
    size_t start = b->len;
    uint8_t h[AG_HEADER_SIZE];
    ag_header hd = {0, stream, type, flags};
    ag_header_encode(h, &hd);
    ag_buf_bytes(b, h, sizeof h);
    return start;
}

void ag_frame_end(ag_buf *b, size_t start)
{
    if (b->failed) return;
    size_t payload = b->len - start - AG_HEADER_SIZE;
    if (payload > AG_FRAME_MAX) {
        b->failed = true; /* a bug in the agent: never send what the host must refuse */
        return;
    }
    for (int i = 0; i < 4; i++) b->data[start + (size_t)i] = (uint8_t)(payload >> (8 * i));
}
