/*
 * fuzz_frames.c — libFuzzer target for the agent's decoding of host frames (proto.c).
 *
 * The input is a byte stream as a host would send it: it is cut into frames the way session.c
 * does (12-byte header, then the payload) and each payload goes to the decoder of its type. A
 * refusal must carry a code and a message; an accepted request must hold the invariants the
 * services rely on: every string inside the payload, within its limit and free of NUL, counts
 * within limits, paths absolute, env entries NAME=value. The first byte of the input also picks
 * a frame type to force onto the first payload, so every decoder sees arbitrary payloads.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proto.h"

#define check(ok) check_at((ok), __LINE__, #ok)
static void check_at(bool ok, int line, const char *what)
{
    if (!ok) {
        fprintf(stderr, "fuzz_frames.c:%d: invariant broken: %s\n", line, what);
        abort();
    }
}

static const uint8_t *lo, *hi;

static void check_str(ag_str s, uint32_t max)
{
    check(s.len <= max);
    if (s.len) {
        check(s.data >= lo && s.data + s.len <= hi);
        check(memchr(s.data, 0, s.len) == NULL);
    }
}

static void check_path(ag_str s)
{
    check_str(s, AG_PATH_MAX);
    check(s.len >= 1 && s.data[0] == '/');
}

static ag_request req; /* ~32 KiB: static, as in session.c */

static void check_request(void)
{
    switch (req.op) {
    case AG_OP_LAUNCH:
    case AG_OP_EXEC: {
        ag_exec_req *e = &req.u.exec;
        check(e->argc >= 1 && e->argc <= AG_ARGV_MAX);
        check(e->envc <= AG_ENV_MAX);
        for (int i = 0; i < e->argc; i++) check_str(e->argv[i], AG_STRING_MAX);
        check(e->argv[0].len > 0);
        for (int i = 0; i < e->envc; i++) {
            check_str(e->env[i], AG_STRING_MAX);
            check(e->env[i].len > 1 && e->env[i].data[0] != '=' && memchr(e->env[i].data, '=', e->env[i].len));
        }
        check_str(e->cwd, AG_PATH_MAX);
        check(e->cwd.len == 0 || e->cwd.data[0] == '/');
        check_str(e->user, AG_USER_MAX);
        check((e->flags & ~AG_EXEC_FLAGS_ALL) == 0);
        check_str(e->hostname, AG_HOSTNAME_MAX);
        check((e->launch_flags & ~AG_LAUNCH_FLAGS_ALL) == 0);
        /* What exec.c does with them: C strings. */
        char *s = ag_strdup(e->argv[0]);
        check(s && strlen(s) == e->argv[0].len);
        free(s);
        break;
    }
    case AG_OP_SIGNAL_MAIN: check(req.u.signo >= 1 && req.u.signo <= 64); break;
    case AG_OP_SHUTDOWN: check(req.u.action <= AG_SHUTDOWN_REBOOT); break;
    case AG_OP_FILE_READ: check_path(req.u.read.path); break;
    case AG_OP_FILE_WRITE:
        check_path(req.u.write.path);
        check(req.u.write.mode <= 07777 && req.u.write.how <= AG_WRITE_EXCLUSIVE && req.u.write.parents <= 1);
        break;
    case AG_OP_STAT: check_path(req.u.stat.path); check(req.u.stat.follow <= 1); break;
    case AG_OP_LIST: check_path(req.u.list.path); break;
    case AG_OP_MKDIR: check_path(req.u.mkdir.path); check(req.u.mkdir.mode <= 07777); break;
    case AG_OP_REMOVE: check_path(req.u.remove.path); check(req.u.remove.recursive <= 1); break;
    case AG_OP_RENAME: check_path(req.u.rename.from); check_path(req.u.rename.to); break;
    case AG_OP_EVENTS:
    case AG_OP_METRICS: break;
    default: check(!"an unknown op was accepted");
    }
}

static void decode(uint8_t type, const uint8_t *p, size_t n)
{
    lo = p;
    hi = p + n;
    ag_status st = AG_OK;
    uint16_t a, b;
    uint32_t u;
    uint64_t v;
    uint8_t ch;
    const uint8_t *bytes;
    size_t len;
    switch (type) {
    case AG_T_HELLO:
        st = ag_hello_decode(p, n, &a, &b);
        if (!st.code) check(a <= b && n == 8);
        break;
    case AG_T_PING: st = ag_u64_payload(p, n, &v); if (!st.code) check(n == 8); break;
    case AG_T_CREDIT: st = ag_credit_decode(p, n, &ch, &u); if (!st.code) check(ch < AG_CH_COUNT && n == 5); break;
    case AG_T_SIGNAL: st = ag_signal_decode(p, n, &u); if (!st.code) check(u >= 1 && u <= 64); break;
    case AG_T_RESIZE: st = ag_resize_decode(p, n, &a, &b); if (!st.code) check(n == 4); break;
    case AG_T_DATA:
        st = ag_data_decode(p, n, &ch, &bytes, &len);
        if (!st.code) check(ch < AG_CH_COUNT && bytes + len == p + n);
        break;
    case AG_T_REQUEST:
        st = ag_request_decode(p, n, &req);
        if (!st.code) check_request();
        break;
    default: return;
    }
    if (st.code) check(st.message != NULL && st.code >= AG_E_PROTOCOL && st.code <= AG_E_CANCELLED);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1) return 0;
    static const uint8_t types[] = {AG_T_HELLO, AG_T_PING, AG_T_REQUEST, AG_T_DATA, AG_T_CREDIT, AG_T_SIGNAL, AG_T_RESIZE};
    uint8_t forced = data[0];
    data++;
    size--;
    /* Each payload is copied into a buffer of its exact size, so ASan sees any read past it. */
    bool first = true;
    while (size >= AG_HEADER_SIZE) {
        ag_header h;
        ag_status st = ag_header_decode(data, &h);
        if (!st.code) st = ag_host_header_check(&h);
        uint32_t take = st.code ? (uint32_t)(size - AG_HEADER_SIZE) : h.length;
        if (take > size - AG_HEADER_SIZE) take = (uint32_t)(size - AG_HEADER_SIZE);
        uint8_t *payload = malloc(take ? take : 1);
        memcpy(payload, data + AG_HEADER_SIZE, take);
        uint8_t type = first && (forced & 0x80) ? types[forced % sizeof types] : h.type;
        if (!st.code || (first && (forced & 0x80))) decode(type, payload, take);
        free(payload);
        first = false;
        if (st.code) break;
        data += AG_HEADER_SIZE + take;
        size -= AG_HEADER_SIZE + take;
        /* What the agent sends back (an ERROR frame) must itself be a valid frame. */
        ag_buf out = {0};
        size_t f = ag_frame_begin(&out, h.stream, AG_T_ERROR, 0);
        ag_buf_u16(&out, AG_E_PROTOCOL);
        ag_buf_str(&out, "x", 1);
        ag_frame_end(&out, f);
        if (!out.failed) {
            ag_header back;
            check(ag_header_decode(out.data, &back).code == 0 && back.length == out.len - AG_HEADER_SIZE);
        }
        ag_buf_free(&out);
    }
    return 0;
}
