/*
 * agent.h — the in-zone agent's internals: the event loop, sessions, streams, processes.
 *
 * One thread, one epoll loop. Every fd the agent opens is O_CLOEXEC and (on the agent's side)
 * non-blocking, except regular files, whose reads and writes are short and local.
 */
#ifndef BH_AGENT_H
#define BH_AGENT_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "proto.h"

#define AG_VERSION_STRING "bulkhead-agent 0.1.0"

/* ---- configuration (main.c) ------------------------------------------------------------- */

typedef struct {
    bool test_mode;        /* no boot mounts; power-off and reboot end the process */
    const char *listen_unix;
    bool stdio;            /* one session on fds 0/1 */
    unsigned vsock_port;
    const char *etc_dir;   /* where passwd and group are read (default /etc) */
} ag_config;

extern ag_config ag_cfg;
void ag_log(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* ---- event loop (loop.c) ---------------------------------------------------------------- */

typedef struct ag_watch ag_watch;
typedef void (*ag_watch_fn)(ag_watch *w, uint32_t events);
struct ag_watch {
    int fd;           /* -1 once deleted (or never added) */
    uint32_t events;  /* what is asked for; 0: the fd is out of epoll altogether (armed false) */
    bool armed;       /* in the epoll set */
    ag_watch_fn fn;
    void *ctx;
};

int loop_init(void);
int loop_add(ag_watch *w, int fd, uint32_t events, ag_watch_fn fn, void *ctx);
/* No system call when unchanged. 0 takes the fd out of epoll: epoll reports EPOLLHUP and EPOLLERR
 * level-triggered whatever is asked for, so an fd that is not wanted would wake the loop forever. */
void loop_set(ag_watch *w, uint32_t events);
void loop_del(ag_watch *w);                  /* does not close the fd */
/* Frees p after the current batch of events (a later event of the batch may still name it). */
void loop_defer_free(void *p);
/* fn runs after every batch of events, before deferred frees. */
void loop_after_batch(void (*fn)(void));
void loop_run(void);
/* One batch: waits at most timeout_ms (-1: forever), runs the callbacks, the hook, the frees. */
void loop_poll(int timeout_ms);
void loop_quit(void);

/* ---- sessions (session.c) --------------------------------------------------------------- */

typedef struct ag_session ag_session;
typedef struct ag_stream ag_stream;
typedef struct ag_proc ag_proc;

struct ag_stream {
    ag_session *s;
    uint32_t id;
    uint8_t op;
    uint64_t out_credit[AG_CH_COUNT]; /* bytes we may still send the host, per channel */
    uint64_t in_allowed[AG_CH_COUNT]; /* bytes the host may still send us, per channel */
    ag_proc *proc;                    /* LAUNCH, EXEC */
    int fd;                           /* FILE_READ, FILE_WRITE: the open file, or -1 */
    uint64_t remaining;               /* FILE_READ: bytes still to send */
    uint64_t done_bytes;              /* FILE_READ/WRITE: bytes moved so far */
};

ag_session *session_open(int in_fd, int out_fd, const char *peer);
void session_close_all(void);
/* Tears down the sessions marked dead (registered as the loop's after-batch hook). */
void sessions_reap_dead(void);
/* Frames to the host. Errors end (and free) the stream; END too. */
void send_frame(ag_session *s, ag_buf *frame); /* takes the buffer */
void send_error(ag_session *s, uint32_t stream, int code, int err, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));
void stream_error(ag_stream *st, int code, int err, const char *fmt, ...) __attribute__((format(printf, 4, 5)));
void stream_end(ag_stream *st, const ag_buf *payload); /* payload may be NULL */
void stream_reply(ag_stream *st, const ag_buf *payload);
void stream_data(ag_stream *st, uint8_t channel, const void *p, size_t n);
void stream_grant(ag_stream *st, uint8_t channel, uint32_t bytes);
/* True while the session's output queue is over its high mark: producers must wait. */
bool session_congested(const ag_session *s);
/* Every open events stream of every session gets this EVENT payload. */
void sessions_broadcast_event(const ag_buf *payload);
/* True when no session has bytes waiting to go out. */
bool sessions_flushed(void);
/* Writes whatever can be written now, without waiting (before power-off). */
void sessions_flush_now(void);

/* ---- processes (exec.c) ----------------------------------------------------------------- */

struct ag_proc {
    pid_t pid;
    bool is_main, tty, reaped;
    int status;               /* from waitpid */
    ag_stream *stream;        /* NULL when detached: output is then read and dropped */
    int in_fd;                /* pipe to its stdin, or the pty master; -1 when closed */
    int out_fd[3];            /* [1] stdout pipe or pty master, [2] stderr pipe; -1 when closed */
    ag_watch in_w, out_w[3];
    uint8_t *inbuf;           /* stdin bytes received and not yet written */
    size_t in_len;
    bool in_eof;              /* the host ended stdin */
    ag_proc *next;
};

/* Starts a process for the stream (LAUNCH or EXEC). On failure: an ERROR went out, returns -1. */
int proc_start(ag_stream *st, const ag_exec_req *req);
void proc_on_stdin(ag_proc *p, const uint8_t *data, size_t n, bool eof);
void proc_signal(ag_proc *p, int signo);
void proc_resize(ag_proc *p, uint16_t rows, uint16_t cols);
/* The stream goes away (cancel, session end): EXEC is killed, LAUNCH keeps running detached. */
void proc_detach(ag_proc *p, bool kill_it);
/* Re-evaluates which fds the process waits on (after credit or a drained queue). */
void proc_update(ag_proc *p);
void procs_reap(void);
/* The main process: state for HELLO_OK and events. */
enum { AG_MAIN_NONE = 0, AG_MAIN_RUNNING = 1, AG_MAIN_EXITED = 2 };
int main_state(void);
/* The main process exited and its stream got its END (its output is all out). */
bool main_finished(void);
int main_signal(int signo); /* -errno */
/* The EVENT payload of the main process's exit, or false before it exited. */
bool main_exit_event(ag_buf *out);
void procs_kill_all(void);
/* A wait status as END/EVENT bytes: u8 kind (0 exited, 1 signalled), i32 value, u8 core dumped. */
void encode_wait_status(ag_buf *b, int status);

/* ---- services ----------------------------------------------------------------------------- */

void files_request(ag_stream *st, const ag_request *r);  /* files.c */
void file_read_pump(ag_stream *st);
void file_write_data(ag_stream *st, const uint8_t *p, size_t n, bool eof);
void file_close(ag_stream *st);
void metrics_request(ag_stream *st);                     /* metrics.c */

/* ---- users (users.c): resolves a user spec against passwd and group ------------------------ */

#define AG_GROUPS_MAX 64
typedef struct {
    uint32_t uid, gid;
    uint32_t groups[AG_GROUPS_MAX];
    int ngroups;
    char home[AG_PATH_MAX + 1];
} ag_user;

/* Returns NULL, or a message saying why the spec cannot be resolved. */
const char *user_resolve(const char *spec, const char *passwd, size_t passwd_len, const char *group,
                         size_t group_len, ag_user *out);
/* The same, reading passwd and group under ag_cfg.etc_dir. */
const char *user_lookup(const char *spec, ag_user *out);

/* ---- boot and power (boot.c, power.c) -------------------------------------------------------- */

/* PID 1 in a VM: mounts, overlay root, switch root. Returns 0, or -1 after logging why. */
int boot_zone(void);
/* The lead wires these to the paravirtual power device (issue 8). See power.c. */
void agent_announce_started(void);
void agent_announce_ready(void);
void agent_power_off(void) __attribute__((noreturn));
void agent_reboot(void) __attribute__((noreturn));
/* After the main process exits (and stay-up is off): flush, then power off within a grace time. */
void power_off_soon(void);
void power_reboot_soon(bool reboot);

#endif
