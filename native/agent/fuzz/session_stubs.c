/*
 * session_stubs.c — the services behind session.c, replaced for fuzz_session: nothing is
 * executed, no file is touched. File reads answer from a counter so the credit and congestion
 * paths run; file writes grant credit back like the real one; everything else ends at once.
 */
#include <errno.h>
#include <string.h>

#include "agent.h"

ag_config ag_cfg = {.test_mode = true};

void ag_log(const char *fmt, ...) { (void)fmt; }

int proc_start(ag_stream *st, const ag_exec_req *req)
{
    (void)req;
    stream_error(st, AG_E_STATE, 0, "no processes in the fuzzer");
    return -1;
}
void proc_on_stdin(ag_proc *p, const uint8_t *d, size_t n, bool eof) { (void)p, (void)d, (void)n, (void)eof; }
void proc_signal(ag_proc *p, int s) { (void)p, (void)s; }
void proc_resize(ag_proc *p, uint16_t r, uint16_t c) { (void)p, (void)r, (void)c; }
void proc_detach(ag_proc *p, bool k) { (void)p, (void)k; }
void proc_update(ag_proc *p) { (void)p; }
void procs_reap(void) {}
void procs_kill_all(void) {}
int main_state(void) { return AG_MAIN_NONE; }
bool main_finished(void) { return false; }
int main_signal(int s) { (void)s; return -ESRCH; }
bool main_exit_event(ag_buf *out) { (void)out; return false; }
void encode_wait_status(ag_buf *b, int status) { (void)b, (void)status; }
void power_off_soon(void) {}
void power_reboot_soon(bool r) { (void)r; }
void agent_announce_ready(void) {}

void files_request(ag_stream *st, const ag_request *r)
{
    switch (r->op) {
    case AG_OP_FILE_READ:
        st->remaining = 300000; /* more than the window: the host must grant credit */
        stream_reply(st, NULL);
        file_read_pump(st);
        break;
    case AG_OP_FILE_WRITE:
        stream_reply(st, NULL);
        break;
    default:
        stream_end(st, NULL);
    }
}

void file_read_pump(ag_stream *st)
{
    static uint8_t chunk[AG_DATA_CHUNK];
    while (st->remaining && st->out_credit[AG_CH_FILE] && !session_congested(st->s)) {
        size_t n = sizeof chunk;
        if (n > st->out_credit[AG_CH_FILE]) n = (size_t)st->out_credit[AG_CH_FILE];
        if (n > st->remaining) n = (size_t)st->remaining;
        st->remaining -= n;
        stream_data(st, AG_CH_FILE, chunk, n);
    }
    if (!st->remaining) stream_end(st, NULL);
}

void file_write_data(ag_stream *st, const uint8_t *p, size_t n, bool eof)
{
    (void)p;
    if (eof) return stream_end(st, NULL);
    if (n) stream_grant(st, AG_CH_FILE, (uint32_t)n);
}

void file_close(ag_stream *st) { (void)st; }
void metrics_request(ag_stream *st) { stream_end(st, NULL); }
