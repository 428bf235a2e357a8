/*
 * session.c — one connection from the host: frame reassembly, the handshake, the stream table,
 * the output queue, and dispatch of every frame to its service.
 *
 * A malformed frame ends this session only (an ERROR on stream 0, then close); other sessions
 * and the main process carry on. The output queue has a high mark: above it, producers (process
 * output, file reads) wait, and above a hard mark the session stops reading from the host, so a
 * host that never reads cannot make the agent allocate without bound.
 */
#include "agent.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <unistd.h>

#define QUEUE_HIGH (1u << 20)
#define QUEUE_HARD (4u << 20)
#define CREDIT_MAX (1ull << 32) /* outstanding credit the host may grant on one channel */

typedef struct out_chunk {
    struct out_chunk *next;
    size_t len, off;
    uint8_t data[];
} out_chunk;

struct ag_session {
    int in_fd, out_fd;
    ag_watch in_w, out_w;
    char peer[64];
    bool hello_done, dead;
    uint32_t last_stream;
    ag_stream *streams[AG_MAX_STREAMS];
    int nstreams;
    /* reassembly */
    uint8_t hdr[AG_HEADER_SIZE];
    size_t hdr_got;
    ag_header cur;
    uint8_t *payload;
    size_t payload_got;
    /* output */
    out_chunk *head, *tail;
    size_t queued;
    ag_session *next;
};

static ag_session *sessions;
static int nsessions;
static ag_request *scratch_request; /* ~32 KiB: decoded requests point into the payload */

static void session_destroy(ag_session *s);
static void update_interest(ag_session *s);

/* ---- output --------------------------------------------------------------------------- */

static void flush(ag_session *s)
{
    while (s->head) {
        out_chunk *c = s->head;
        ssize_t n = write(s->out_fd, c->data + c->off, c->len - c->off);
        if (n < 0) {
            if (errno == EINTR) continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK) break;
            s->dead = true; /* the host went away: reading will see it too */
            break;
        }
        c->off += (size_t)n;
        s->queued -= (size_t)n;
        if (c->off == c->len) {
            s->head = c->next;
            if (!s->head) s->tail = NULL;
            free(c);
        }
    }
}

void send_frame(ag_session *s, ag_buf *frame)
{
    if (frame->failed) {
        ag_log("session %s: out of memory encoding a frame; closing it", s->peer);
        ag_buf_free(frame);
        s->dead = true;
        update_interest(s);
        return;
    }
    if (s->dead) {
        ag_buf_free(frame);
        return;
    }
    bool was_congested = session_congested(s);
    out_chunk *c = malloc(sizeof *c + frame->len);
    if (!c) {
        ag_buf_free(frame);
        s->dead = true;
        update_interest(s);
        return;
    }
    c->next = NULL;
    c->len = frame->len;
    c->off = 0;
    memcpy(c->data, frame->data, frame->len);
    ag_buf_free(frame);
    if (s->tail) s->tail->next = c;
    else s->head = c;
    s->tail = c;
    s->queued += c->len;
    if (s->head == c) flush(s);
    if (session_congested(s) != was_congested || s->queued > QUEUE_HARD || s->head || s->dead) update_interest(s);
}

bool session_congested(const ag_session *s) { return s->queued > QUEUE_HIGH; }

void send_error(ag_session *s, uint32_t stream, int code, int err, const char *fmt, ...)
{
    char msg[AG_MESSAGE_MAX];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (n < 0) n = 0;
    if ((size_t)n >= sizeof msg) n = sizeof msg - 1;
    ag_buf b = {0};
    size_t f = ag_frame_begin(&b, stream, AG_T_ERROR, 0);
    ag_buf_u16(&b, (uint16_t)code);
    ag_buf_u32(&b, (uint32_t)err);
    ag_buf_str(&b, msg, (size_t)n);
    ag_frame_end(&b, f);
    send_frame(s, &b);
}

static void stream_free(ag_stream *st)
{
    ag_session *s = st->s;
    for (int i = 0; i < s->nstreams; i++) {
        if (s->streams[i] == st) {
            s->streams[i] = s->streams[--s->nstreams];
            break;
        }
    }
    if (st->proc) proc_detach(st->proc, st->op == AG_OP_EXEC);
    file_close(st);
    loop_defer_free(st);
}

void stream_error(ag_stream *st, int code, int err, const char *fmt, ...)
{
    char msg[AG_MESSAGE_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    send_error(st->s, st->id, code, err, "%s", msg);
    stream_free(st);
}

static void send_payload_frame(ag_stream *st, uint8_t type, uint8_t flags, const ag_buf *payload)
{
    ag_buf b = {0};
    size_t f = ag_frame_begin(&b, st->id, type, flags);
    if (payload) {
        if (payload->failed) b.failed = true;
        else ag_buf_bytes(&b, payload->data, payload->len);
    }
    ag_frame_end(&b, f);
    send_frame(st->s, &b);
}

void stream_end(ag_stream *st, const ag_buf *payload)
{
    send_payload_frame(st, AG_T_END, 0, payload);
    stream_free(st);
}

void stream_reply(ag_stream *st, const ag_buf *payload) { send_payload_frame(st, AG_T_REPLY, 0, payload); }

void stream_data(ag_stream *st, uint8_t channel, const void *p, size_t n)
{
    ag_buf b = {0};
    size_t f = ag_frame_begin(&b, st->id, AG_T_OUT_DATA, 0);
    ag_buf_u8(&b, channel);
    ag_buf_bytes(&b, p, n);
    ag_frame_end(&b, f);
    st->out_credit[channel] -= n < st->out_credit[channel] ? n : st->out_credit[channel];
    send_frame(st->s, &b);
}

void stream_grant(ag_stream *st, uint8_t channel, uint32_t bytes)
{
    if (!bytes) return;
    st->in_allowed[channel] += bytes;
    ag_buf b = {0};
    size_t f = ag_frame_begin(&b, st->id, AG_T_OUT_CREDIT, 0);
    ag_buf_u8(&b, channel);
    ag_buf_u32(&b, bytes);
    ag_frame_end(&b, f);
    send_frame(st->s, &b);
}

void sessions_broadcast_event(const ag_buf *payload)
{
    for (ag_session *s = sessions; s; s = s->next)
        for (int i = 0; i < s->nstreams; i++)
            if (s->streams[i]->op == AG_OP_EVENTS) send_payload_frame(s->streams[i], AG_T_EVENT, 0, payload);
}

bool sessions_flushed(void)
{
    for (ag_session *s = sessions; s; s = s->next)
        if (s->queued && !s->dead) return false;
    return true;
}

void sessions_flush_now(void)
{
    for (ag_session *s = sessions; s; s = s->next)
        if (!s->dead) flush(s);
}

/* ---- interest ------------------------------------------------------------------------- */

static void pump_streams(ag_session *s)
{
    for (int i = 0; i < s->nstreams && !session_congested(s); i++) {
        ag_stream *st = s->streams[i];
        if (st->proc) proc_update(st->proc);
        else if (st->op == AG_OP_FILE_READ) file_read_pump(st);
    }
}

static void update_interest(ag_session *s)
{
    /* RDHUP only while reading: it is level-triggered, and a half-closed peer of a session that
     * has stopped reading (congested) would wake the loop for nothing, forever. A hang-up is still
     * seen (EPOLLHUP is always reported) and EOF is read once reading resumes. */
    bool reading = !s->dead && s->queued <= QUEUE_HARD;
    loop_set(&s->in_w, reading ? EPOLLIN | EPOLLRDHUP : 0);
    loop_set(&s->out_w, s->head && !s->dead ? EPOLLOUT : 0);
    /* A dead session is torn down after the batch (sessions_reap_dead), not from inside
     * whatever noticed: that code may still hold stream pointers. */
    if (s->dead) loop_set(&s->in_w, 0);
}

static void on_writable(ag_watch *w, uint32_t events)
{
    ag_session *s = w->ctx;
    if (events & (EPOLLHUP | EPOLLERR)) {
        /* Reported even with no events asked for, and level-triggered: end the session. */
        s->dead = true;
        update_interest(s);
        return;
    }
    bool was = session_congested(s);
    flush(s);
    if (was && !session_congested(s)) pump_streams(s);
    update_interest(s);
}

/* ---- frames --------------------------------------------------------------------------- */

static ag_stream *find_stream(ag_session *s, uint32_t id)
{
    for (int i = 0; i < s->nstreams; i++)
        if (s->streams[i]->id == id) return s->streams[i];
    return NULL;
}

static void protocol_error(ag_session *s, const char *why)
{
    ag_log("session %s: protocol error: %s; closing it", s->peer, why);
    send_error(s, 0, AG_E_PROTOCOL, 0, "protocol error: %s", why);
    flush(s);
    s->dead = true;
    update_interest(s);
}

static void on_hello(ag_session *s, const uint8_t *p, size_t n)
{
    uint16_t lo, hi;
    ag_status st = ag_hello_decode(p, n, &lo, &hi);
    if (st.code) return protocol_error(s, st.message);
    if (lo > AG_PROTOCOL_VERSION || hi < AG_PROTOCOL_VERSION) {
        send_error(s, 0, AG_E_PROTOCOL, 0, "no common protocol version: host speaks %u..%u, agent speaks %u", lo, hi,
                   AG_PROTOCOL_VERSION);
        flush(s);
        s->dead = true;
        update_interest(s);
        return;
    }
    s->hello_done = true;
    ag_buf b = {0};
    size_t f = ag_frame_begin(&b, 0, AG_T_HELLO_OK, 0);
    ag_buf_u16(&b, AG_PROTOCOL_VERSION);
    ag_buf_u32(&b, AG_FRAME_MAX);
    ag_buf_u32(&b, AG_WINDOW);
    ag_buf_u16(&b, AG_MAX_STREAMS);
    ag_buf_u32(&b, (uint32_t)getpid());
    ag_buf_u8(&b, (uint8_t)main_state());
    ag_buf_str(&b, AG_VERSION_STRING, strlen(AG_VERSION_STRING));
    ag_frame_end(&b, f);
    send_frame(s, &b);
}

static void open_stream(ag_session *s, uint32_t id, const uint8_t *p, size_t n)
{
    if (id <= s->last_stream) return protocol_error(s, "REQUEST stream ids must increase");
    s->last_stream = id;
    ag_status dst = ag_request_decode(p, n, scratch_request);
    if (dst.code == AG_E_PROTOCOL) return protocol_error(s, dst.message);
    if (dst.code) return send_error(s, id, dst.code, 0, "%s (op %u)", dst.message, n ? p[0] : 0);
    if (s->nstreams >= AG_MAX_STREAMS)
        return send_error(s, id, AG_E_LIMIT, 0, "this session has %d streams open, the limit", AG_MAX_STREAMS);
    ag_stream *st = calloc(1, sizeof *st);
    if (!st) return send_error(s, id, AG_E_OS, ENOMEM, "out of memory");
    st->s = s;
    st->id = id;
    st->op = scratch_request->op;
    st->fd = -1;
    for (int c = 0; c < AG_CH_COUNT; c++) {
        st->out_credit[c] = AG_WINDOW;
        st->in_allowed[c] = 0;
    }
    s->streams[s->nstreams++] = st;
    switch (st->op) {
    case AG_OP_LAUNCH:
    case AG_OP_EXEC:
        st->in_allowed[AG_CH_STDIN] = AG_WINDOW;
        proc_start(st, &scratch_request->u.exec);
        break;
    case AG_OP_SIGNAL_MAIN: {
        int r = main_signal((int)scratch_request->u.signo);
        if (r == -ESRCH) stream_error(st, AG_E_STATE, ESRCH, "there is no running main process");
        else if (r < 0) stream_error(st, AG_E_OS, -r, "kill: %s", strerror(-r));
        else stream_end(st, NULL);
        break;
    }
    case AG_OP_SHUTDOWN:
        stream_end(st, NULL);
        power_reboot_soon(scratch_request->u.action == AG_SHUTDOWN_REBOOT);
        break;
    case AG_OP_EVENTS: {
        stream_reply(st, NULL);
        ag_buf ev = {0};
        if (main_exit_event(&ev)) send_payload_frame(st, AG_T_EVENT, 0, &ev);
        ag_buf_free(&ev);
        break;
    }
    case AG_OP_METRICS:
        metrics_request(st);
        break;
    default:
        if (st->op == AG_OP_FILE_WRITE) st->in_allowed[AG_CH_FILE] = AG_WINDOW;
        files_request(st, scratch_request);
        break;
    }
}

static void on_stream_frame(ag_session *s, const ag_header *h, const uint8_t *p, size_t n)
{
    ag_stream *st = find_stream(s, h->stream);
    if (!st) {
        /* Ended streams may still get frames the host sent before it saw the end: ignore them.
         * A stream id never opened is a host bug. */
        if (h->stream > s->last_stream) protocol_error(s, "frame for a stream that was never opened");
        return;
    }
    ag_status v;
    switch (h->type) {
    case AG_T_DATA: {
        uint8_t ch;
        const uint8_t *bytes;
        size_t len;
        v = ag_data_decode(p, n, &ch, &bytes, &len);
        if (v.code) return protocol_error(s, v.message);
        bool ok_channel = (st->proc && ch == AG_CH_STDIN) || (st->op == AG_OP_FILE_WRITE && ch == AG_CH_FILE);
        if (!ok_channel) return protocol_error(s, "DATA on a channel this stream does not take");
        if (len > st->in_allowed[ch]) return protocol_error(s, "DATA beyond the credit the agent granted");
        st->in_allowed[ch] -= len;
        if (st->proc) proc_on_stdin(st->proc, bytes, len, h->flags & AG_F_EOF);
        else file_write_data(st, bytes, len, h->flags & AG_F_EOF);
        return;
    }
    case AG_T_CREDIT: {
        uint8_t ch;
        uint32_t bytes;
        v = ag_credit_decode(p, n, &ch, &bytes);
        if (v.code) return protocol_error(s, v.message);
        if (st->out_credit[ch] + bytes > CREDIT_MAX) return protocol_error(s, "credit beyond 4 GiB outstanding");
        st->out_credit[ch] += bytes;
        if (st->proc) proc_update(st->proc);
        else if (st->op == AG_OP_FILE_READ) file_read_pump(st);
        return;
    }
    case AG_T_SIGNAL: {
        uint32_t signo;
        v = ag_signal_decode(p, n, &signo);
        if (v.code) return protocol_error(s, v.message);
        if (!st->proc) return protocol_error(s, "SIGNAL on a stream without a process");
        proc_signal(st->proc, (int)signo);
        return;
    }
    case AG_T_RESIZE: {
        uint16_t rows, cols;
        v = ag_resize_decode(p, n, &rows, &cols);
        if (v.code) return protocol_error(s, v.message);
        if (!st->proc) return protocol_error(s, "RESIZE on a stream without a process");
        proc_resize(st->proc, rows, cols);
        return;
    }
    case AG_T_CANCEL:
        if (n) return protocol_error(s, "CANCEL has no payload");
        stream_error(st, AG_E_CANCELLED, 0, "cancelled by the host");
        return;
    }
}

static void on_frame(ag_session *s, const uint8_t *p, size_t n)
{
    const ag_header *h = &s->cur;
    if (!s->hello_done) {
        if (h->type != AG_T_HELLO) return protocol_error(s, "the first frame must be HELLO");
        return on_hello(s, p, n);
    }
    switch (h->type) {
    case AG_T_HELLO:
        return protocol_error(s, "HELLO sent twice");
    case AG_T_PING: {
        uint64_t nonce;
        ag_status v = ag_u64_payload(p, n, &nonce);
        if (v.code) return protocol_error(s, v.message);
        ag_buf b = {0};
        size_t f = ag_frame_begin(&b, 0, AG_T_PONG, 0);
        ag_buf_u64(&b, nonce);
        ag_frame_end(&b, f);
        send_frame(s, &b);
        return;
    }
    case AG_T_REQUEST:
        return open_stream(s, h->stream, p, n);
    default:
        return on_stream_frame(s, h, p, n);
    }
}

/* Consumes bytes from the socket into frames; returns false when the session must end. */
static bool consume(ag_session *s, const uint8_t *buf, size_t n)
{
    size_t i = 0;
    while (i < n && !s->dead) {
        if (s->hdr_got < AG_HEADER_SIZE) {
            size_t k = AG_HEADER_SIZE - s->hdr_got;
            if (k > n - i) k = n - i;
            memcpy(s->hdr + s->hdr_got, buf + i, k);
            s->hdr_got += k;
            i += k;
            if (s->hdr_got < AG_HEADER_SIZE) break;
            ag_status v = ag_header_decode(s->hdr, &s->cur);
            if (!v.code) v = ag_host_header_check(&s->cur);
            if (v.code) {
                protocol_error(s, v.message);
                return false;
            }
            s->payload_got = 0;
            if (s->cur.length) {
                s->payload = malloc(s->cur.length);
                if (!s->payload) {
                    protocol_error(s, "out of memory for a frame");
                    return false;
                }
            }
        }
        size_t k = s->cur.length - s->payload_got;
        if (k > n - i) k = n - i;
        if (k) memcpy(s->payload + s->payload_got, buf + i, k);
        s->payload_got += k;
        i += k;
        if (s->payload_got == s->cur.length) {
            on_frame(s, s->payload, s->cur.length);
            free(s->payload);
            s->payload = NULL;
            s->hdr_got = 0;
        }
    }
    return !s->dead;
}

static void on_readable(ag_watch *w, uint32_t events)
{
    ag_session *s = w->ctx;
    if (s->dead) return;
    if (events & EPOLLIN) {
        uint8_t buf[65536];
        for (int rounds = 0; rounds < 16 && !s->dead && s->queued <= QUEUE_HARD; rounds++) {
            ssize_t n = read(s->in_fd, buf, sizeof buf);
            if (n < 0) {
                if (errno == EINTR) continue;
                if (errno == EAGAIN || errno == EWOULDBLOCK) break;
                s->dead = true;
                break;
            }
            if (n == 0) {
                s->dead = true;
                break;
            }
            if (!consume(s, buf, (size_t)n)) break;
        }
    } else if (events & (EPOLLHUP | EPOLLERR)) {
        s->dead = true;
    }
    update_interest(s);
}

ag_session *session_open(int in_fd, int out_fd, const char *peer)
{
    if (!scratch_request) {
        scratch_request = malloc(sizeof *scratch_request);
        if (!scratch_request) return NULL;
    }
    if (nsessions >= AG_MAX_SESSIONS) {
        ag_log("refusing a session from %s: %d sessions are open, the limit", peer, AG_MAX_SESSIONS);
        return NULL;
    }
    ag_session *s = calloc(1, sizeof *s);
    if (!s) return NULL;
    s->in_fd = in_fd;
    s->out_fd = out_fd;
    snprintf(s->peer, sizeof s->peer, "%s", peer);
    s->in_w.fd = s->out_w.fd = -1;
    if (loop_add(&s->in_w, in_fd, EPOLLIN | EPOLLRDHUP, on_readable, s) < 0 ||
        loop_add(&s->out_w, out_fd, 0, on_writable, s) < 0) {
        loop_del(&s->in_w);
        free(s);
        return NULL;
    }
    s->next = sessions;
    sessions = s;
    nsessions++;
    return s;
}

static void session_destroy(ag_session *s)
{
    while (s->nstreams) stream_free(s->streams[s->nstreams - 1]);
    loop_del(&s->in_w);
    loop_del(&s->out_w);
    close(s->in_fd);
    if (s->out_fd != s->in_fd) close(s->out_fd);
    for (out_chunk *c = s->head, *n; c; c = n) {
        n = c->next;
        free(c);
    }
    free(s->payload);
    for (ag_session **pp = &sessions; *pp; pp = &(*pp)->next) {
        if (*pp == s) {
            *pp = s->next;
            break;
        }
    }
    nsessions--;
    loop_defer_free(s);
    if (ag_cfg.stdio) loop_quit(); /* the one session of --stdio is over */
}

void sessions_reap_dead(void)
{
    for (ag_session *s = sessions, *n; s; s = n) {
        n = s->next;
        if (s->dead) session_destroy(s);
    }
}

void session_close_all(void)
{
    while (sessions) session_destroy(sessions);
}
