/*
 * exec.c — processes: the main process (LAUNCH) and exec'd commands (EXEC).
 *
 * Each process runs in its own session and process group (setsid), with pipes or a pty for its
 * stdio. Output is read only while the host has granted credit for that channel and the
 * session's queue is below its high mark; stdin is buffered up to the window the agent granted
 * and credit goes back as bytes reach the pipe. A process is finished when it has been reaped
 * AND its output pipes reached EOF (like Node's 'close'); then its END carries the wait status.
 * The main process is different in one way: its exit is announced (EVENT) as soon as it is
 * reaped, and that starts the power-off unless the zone stays up.
 */

#include "agent.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <pty.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/ioctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>

#ifndef SYS_close_range
#define SYS_close_range 436
#endif
#ifndef CLOSE_RANGE_CLOEXEC
#define CLOSE_RANGE_CLOEXEC (1U << 2)
#endif

extern char **environ;

static ag_proc *procs;
static ag_proc *main_proc;
static int main_st = AG_MAIN_NONE;
static int main_status;
static pid_t main_pid;
static bool main_stay_up;

int main_state(void) { return main_st; }

bool main_finished(void) { return main_st == AG_MAIN_EXITED && main_proc == NULL; }

void encode_wait_status(ag_buf *b, int status)
{
    if (WIFSIGNALED(status)) {
        ag_buf_u8(b, 1);
        ag_buf_u32(b, (uint32_t)WTERMSIG(status));
        ag_buf_u8(b, WCOREDUMP(status) ? 1 : 0);
    } else {
        ag_buf_u8(b, 0);
        ag_buf_u32(b, (uint32_t)WEXITSTATUS(status));
        ag_buf_u8(b, 0);
    }
}

bool main_exit_event(ag_buf *out)
{
    if (main_st != AG_MAIN_EXITED) return false;
    ag_buf_u8(out, AG_EV_MAIN_EXIT);
    ag_buf_u32(out, (uint32_t)main_pid);
    encode_wait_status(out, main_status);
    return true;
}

int main_signal(int signo)
{
    if (main_st != AG_MAIN_RUNNING) return -ESRCH;
    return kill(main_pid, signo) < 0 ? -errno : 0;
}

/* ---- teardown ------------------------------------------------------------------------- */

static void close_watch(ag_watch *w, int *fd)
{
    if (*fd < 0) return;
    loop_del(w);
    close(*fd);
    *fd = -1;
}

static void drop_stdin(ag_proc *p)
{
    close_watch(&p->in_w, &p->in_fd);
    if (p->stream && p->in_len) stream_grant(p->stream, AG_CH_STDIN, (uint32_t)p->in_len);
    p->in_len = 0;
}

static void maybe_finish(ag_proc *p)
{
    if (!p->reaped) return;
    if (p->is_main && main_st == AG_MAIN_RUNNING) {
        main_st = AG_MAIN_EXITED;
        main_status = p->status;
        ag_buf ev = {0};
        main_exit_event(&ev);
        sessions_broadcast_event(&ev);
        ag_buf_free(&ev);
        if (WIFSIGNALED(p->status))
            ag_log("main process %d killed by signal %d", p->pid, WTERMSIG(p->status));
        else
            ag_log("main process %d exited with %d", p->pid, WEXITSTATUS(p->status));
        if (!main_stay_up) power_off_soon();
    }
    if (p->out_fd[1] >= 0 || p->out_fd[2] >= 0) return;
    drop_stdin(p);
    if (p->stream) {
        ag_stream *st = p->stream;
        p->stream = NULL;
        st->proc = NULL;
        ag_buf b = {0};
        encode_wait_status(&b, p->status);
        stream_end(st, &b);
        ag_buf_free(&b);
    }
    for (ag_proc **pp = &procs; *pp; pp = &(*pp)->next) {
        if (*pp == p) {
            *pp = p->next;
            break;
        }
    }
    if (main_proc == p) main_proc = NULL;
    free(p->inbuf);
    loop_defer_free(p);
}

void proc_detach(ag_proc *p, bool kill_it)
{
    if (p->stream) p->stream->proc = NULL;
    p->stream = NULL;
    p->in_len = 0;
    close_watch(&p->in_w, &p->in_fd);
    if (kill_it && !p->reaped) kill(-p->pid, SIGKILL);
    proc_update(p);
}

void procs_kill_all(void)
{
    for (ag_proc *p = procs; p; p = p->next)
        if (!p->reaped) kill(-p->pid, SIGKILL);
    if (getpid() == 1) kill(-1, SIGKILL); /* PID 1 of a VM or a PID namespace: everything else */
}

/* ---- output ---------------------------------------------------------------------------- */

static void read_output(ag_proc *p, int ch)
{
    uint8_t buf[AG_DATA_CHUNK];
    size_t want = sizeof buf;
    if (p->stream) {
        uint64_t credit = p->stream->out_credit[ch];
        if (credit == 0 || session_congested(p->stream->s)) return proc_update(p);
        if (credit < want) want = (size_t)credit;
    }
    ssize_t n = read(p->out_fd[ch], buf, want);
    if (n < 0 && (errno == EAGAIN || errno == EINTR)) return;
    if (n <= 0) { /* EOF, or EIO from a pty master whose last slave closed */
        close_watch(&p->out_w[ch], &p->out_fd[ch]);
        if (p->tty) close_watch(&p->in_w, &p->in_fd); /* the terminal is gone: no input either */
        maybe_finish(p);
        return;
    }
    if (p->stream) stream_data(p->stream, (uint8_t)ch, buf, (size_t)n);
    proc_update(p);
}

static void on_stdout(ag_watch *w, uint32_t events)
{
    (void)events;
    read_output(w->ctx, 1);
}

static void on_stderr(ag_watch *w, uint32_t events)
{
    (void)events;
    read_output(w->ctx, 2);
}

/* ---- input ----------------------------------------------------------------------------- */

static void write_stdin(ag_proc *p)
{
    size_t written = 0;
    while (p->in_fd >= 0 && written < p->in_len) {
        ssize_t n = write(p->in_fd, p->inbuf + written, p->in_len - written);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) break;
        if (n < 0) { /* EPIPE: it closed its stdin; what the host still sends is dropped */
            close_watch(&p->in_w, &p->in_fd);
            written = p->in_len;
            break;
        }
        written += (size_t)n;
    }
    if (written) {
        memmove(p->inbuf, p->inbuf + written, p->in_len - written);
        p->in_len -= written;
        if (p->stream) stream_grant(p->stream, AG_CH_STDIN, (uint32_t)written);
    }
    if (p->in_len == 0 && p->in_eof && p->in_fd >= 0) {
        if (p->tty) {
            /* A terminal has no half-close: end the input the way a user would, with ^D. */
            const char eot = 4;
            if (write(p->in_fd, &eot, 1) < 0) { /* nothing more to do */ }
            p->in_eof = false;
        } else {
            close_watch(&p->in_w, &p->in_fd);
        }
    }
    proc_update(p);
}

static void on_stdin_writable(ag_watch *w, uint32_t events)
{
    ag_proc *p = w->ctx;
    if (events & (EPOLLERR | EPOLLHUP)) {
        drop_stdin(p);
        return;
    }
    write_stdin(p);
}

void proc_on_stdin(ag_proc *p, const uint8_t *data, size_t n, bool eof)
{
    if (p->in_fd < 0) { /* no stdin (or it was closed): drop, and give the credit back */
        if (p->stream && n) stream_grant(p->stream, AG_CH_STDIN, (uint32_t)n);
        return;
    }
    if (!p->inbuf) {
        p->inbuf = malloc(AG_WINDOW);
        if (!p->inbuf) {
            if (p->stream) stream_grant(p->stream, AG_CH_STDIN, (uint32_t)n);
            return;
        }
    }
    /* The credit check in session.c keeps in_len + n within the window. */
    if (p->in_len + n > AG_WINDOW) n = AG_WINDOW - p->in_len;
    memcpy(p->inbuf + p->in_len, data, n);
    p->in_len += n;
    if (eof) p->in_eof = true;
    write_stdin(p);
}

void proc_update(ag_proc *p)
{
    for (int ch = 1; ch <= 2; ch++) {
        if (p->out_fd[ch] < 0) continue;
        bool want = !p->stream || (p->stream->out_credit[ch] > 0 && !session_congested(p->stream->s));
        loop_set(&p->out_w[ch], want ? EPOLLIN : 0);
    }
    if (p->in_fd >= 0) loop_set(&p->in_w, p->in_len ? EPOLLOUT : 0);
}

void proc_signal(ag_proc *p, int signo)
{
    if (!p->reaped) kill(p->pid, signo);
}

void proc_resize(ag_proc *p, uint16_t rows, uint16_t cols)
{
    if (!p->tty || p->out_fd[1] < 0) return;
    struct winsize ws = {.ws_row = rows, .ws_col = cols};
    ioctl(p->out_fd[1], TIOCSWINSZ, &ws);
}

void procs_reap(void)
{
    for (;;) {
        int status;
        pid_t pid = waitpid(-1, &status, WNOHANG);
        if (pid <= 0) return;
        for (ag_proc *p = procs; p; p = p->next) {
            if (p->pid == pid && !p->reaped) {
                p->reaped = true;
                p->status = status;
                maybe_finish(p);
                break;
            }
        }
        /* Anyone else was an orphan re-parented to us: reaped, nothing to report. */
    }
}

/* ---- starting ---------------------------------------------------------------------------- */

typedef struct {
    char **argv, **envp;
    char *cwd;
} cstrings;

static void free_strings(cstrings *c)
{
    if (c->argv)
        for (char **a = c->argv; *a; a++) free(*a);
    if (c->envp)
        for (char **e = c->envp; *e; e++) free(*e);
    free(c->argv);
    free(c->envp);
    free(c->cwd);
}

static bool has_env(const ag_exec_req *r, const char *name)
{
    size_t n = strlen(name);
    for (int i = 0; i < r->envc; i++)
        if (r->env[i].len > n && memcmp(r->env[i].data, name, n) == 0 && r->env[i].data[n] == '=') return true;
    return false;
}

static char *concat(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    char *s = malloc(la + lb + 1);
    if (!s) return NULL;
    memcpy(s, a, la);
    memcpy(s + la, b, lb + 1);
    return s;
}

/* argv, env (with PATH, HOME and, for a tty, TERM when the host gave none) and cwd as C strings. */
static bool build_strings(const ag_exec_req *r, const ag_user *u, cstrings *c)
{
    c->argv = calloc((size_t)r->argc + 1, sizeof(char *));
    c->envp = calloc((size_t)r->envc + 4, sizeof(char *));
    if (!c->argv || !c->envp) return false;
    for (int i = 0; i < r->argc; i++)
        if (!(c->argv[i] = ag_strdup(r->argv[i]))) return false;
    int e = 0;
    for (int i = 0; i < r->envc; i++)
        if (!(c->envp[e++] = ag_strdup(r->env[i]))) return false;
    if (!has_env(r, "PATH") && !(c->envp[e++] = strdup("PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")))
        return false;
    if (!has_env(r, "HOME") && !(c->envp[e++] = concat("HOME=", u->home))) return false;
    if ((r->flags & AG_EXEC_TTY) && !has_env(r, "TERM") && !(c->envp[e++] = strdup("TERM=xterm"))) return false;
    c->cwd = r->cwd.len ? ag_strdup(r->cwd) : strdup("/");
    return c->cwd != NULL;
}

typedef struct {
    int stage, err;
} child_failure;

static const char *const stages[] = {"exec", "setgroups", "setgid", "setuid", "chdir", "stdio", "controlling tty"};

static void __attribute__((noreturn)) child_fail(int pipe_fd, int stage)
{
    child_failure f = {stage, errno};
    if (write(pipe_fd, &f, sizeof f) < 0) { /* the parent sees EOF and a dead child */ }
    _exit(127);
}

static void __attribute__((noreturn)) child(const cstrings *c, const ag_user *u, int stdio[3], bool tty, int err_fd)
{
    sigset_t all;
    sigemptyset(&all);
    sigprocmask(SIG_SETMASK, &all, NULL);
    signal(SIGPIPE, SIG_DFL);
    setsid();
    if (tty && ioctl(stdio[0], TIOCSCTTY, 0) < 0) child_fail(err_fd, 6);
    for (int i = 0; i < 3; i++) {
        if (stdio[i] < 0) continue; /* inherit the agent's (the console) */
        if (dup2(stdio[i], i) < 0) child_fail(err_fd, 5);
    }
    /* Everything the agent holds is O_CLOEXEC already; this also covers fds inherited from
     * whoever started the agent in test mode. */
    syscall(SYS_close_range, 3, ~0U, CLOSE_RANGE_CLOEXEC);
    gid_t groups[AG_GROUPS_MAX];
    for (int i = 0; i < u->ngroups; i++) groups[i] = u->groups[i];
    if (setgroups((size_t)u->ngroups, groups) < 0) child_fail(err_fd, 1);
    if (setgid(u->gid) < 0) child_fail(err_fd, 2);
    if (setuid(u->uid) < 0) child_fail(err_fd, 3);
    if (chdir(c->cwd) < 0) child_fail(err_fd, 4);
    environ = c->envp;
    execvp(c->argv[0], c->argv);
    child_fail(err_fd, 0);
}

static int nonblock(int fd) { return fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK); }

static void close_all(int *fds, int n)
{
    for (int i = 0; i < n; i++)
        if (fds[i] >= 0) {
            close(fds[i]);
            fds[i] = -1;
        }
}

int proc_start(ag_stream *st, const ag_exec_req *req)
{
    bool launch = st->op == AG_OP_LAUNCH;
    bool console = launch && (req->launch_flags & AG_LAUNCH_CONSOLE);
    bool tty = !console && (req->flags & AG_EXEC_TTY);
    if (launch && main_st != AG_MAIN_NONE) {
        stream_error(st, AG_E_STATE, 0, "the main process was already launched");
        return -1;
    }
    char *user = ag_strdup(req->user);
    ag_user *u = malloc(sizeof *u);
    if (!user || !u) {
        free(user);
        free(u);
        stream_error(st, AG_E_OS, ENOMEM, "out of memory");
        return -1;
    }
    const char *why = user_lookup(user, u);
    if (why) {
        stream_error(st, AG_E_INVALID, 0, "user \"%s\": %s", user, why);
        free(user);
        free(u);
        return -1;
    }
    free(user);
    cstrings c = {0};
    if (!build_strings(req, u, &c)) {
        free_strings(&c);
        free(u);
        stream_error(st, AG_E_OS, ENOMEM, "out of memory");
        return -1;
    }
    if (launch && req->hostname.len && sethostname((const char *)req->hostname.data, req->hostname.len) < 0) {
        int e = errno;
        free_strings(&c);
        free(u);
        stream_error(st, AG_E_OS, e, "sethostname: %s", strerror(e));
        return -1;
    }

    /* parent[i]: the agent's end of child fd i; kid[i]: the child's end (-1: inherit). */
    int parent[3] = {-1, -1, -1}, kid[3] = {-1, -1, -1}, errp[2] = {-1, -1};
    int e = 0;
    const char *what = "pipe2";
    if (pipe2(errp, O_CLOEXEC) < 0) e = errno;
    if (!e && tty) {
        what = "openpty";
        struct winsize ws = {.ws_row = req->rows ? req->rows : 24, .ws_col = req->cols ? req->cols : 80};
        int master, slave;
        if (openpty(&master, &slave, NULL, NULL, &ws) < 0) e = errno;
        else {
            fcntl(master, F_SETFD, FD_CLOEXEC);
            fcntl(slave, F_SETFD, FD_CLOEXEC);
            parent[1] = master;
            parent[0] = dup(master);
            if (parent[0] >= 0) fcntl(parent[0], F_SETFD, FD_CLOEXEC);
            kid[0] = slave;
            kid[1] = dup(slave);
            kid[2] = dup(slave);
            if (parent[0] < 0 || kid[1] < 0 || kid[2] < 0) e = errno;
            for (int i = 1; i < 3; i++)
                if (kid[i] >= 0) fcntl(kid[i], F_SETFD, FD_CLOEXEC);
        }
    } else if (!e && !console) {
        int fds[2];
        if (req->flags & AG_EXEC_STDIN) {
            if (pipe2(fds, O_CLOEXEC) < 0) e = errno;
            else {
                kid[0] = fds[0];
                parent[0] = fds[1];
            }
        } else {
            what = "open /dev/null";
            kid[0] = open("/dev/null", O_RDONLY | O_CLOEXEC);
            if (kid[0] < 0) e = errno;
        }
        for (int i = 1; i < 3 && !e; i++) {
            what = "pipe2";
            if (pipe2(fds, O_CLOEXEC) < 0) e = errno;
            else {
                parent[i] = fds[0];
                kid[i] = fds[1];
            }
        }
    }
    pid_t pid = -1;
    if (!e) {
        what = "fork";
        pid = fork();
        if (pid < 0) e = errno;
        if (pid == 0) {
            close(errp[0]);
            child(&c, u, kid, tty, errp[1]);
        }
    }
    close_all(kid, 3);
    if (errp[1] >= 0) close(errp[1]);
    child_failure f = {0, 0};
    ssize_t got = 0;
    if (!e) {
        do got = read(errp[0], &f, sizeof f);
        while (got < 0 && errno == EINTR);
    }
    if (errp[0] >= 0) close(errp[0]);
    if (got > 0) waitpid(pid, NULL, 0);
    free(u);
    if (e || got > 0) {
        close_all(parent, 3);
        if (got > 0) {
            const char *stage = f.stage >= 0 && f.stage < 7 ? stages[f.stage] : "?";
            stream_error(st, AG_E_EXEC, f.err, "cannot start %s: %s: %s", c.argv[0], stage, strerror(f.err));
        } else {
            stream_error(st, AG_E_OS, e, "%s: %s", what, strerror(e));
        }
        free_strings(&c);
        return -1;
    }
    free_strings(&c);

    ag_proc *p = calloc(1, sizeof *p);
    if (!p) { /* the process runs unobserved; kill it rather than leave it */
        kill(-pid, SIGKILL);
        close_all(parent, 3);
        stream_error(st, AG_E_OS, ENOMEM, "out of memory");
        return -1;
    }
    p->pid = pid;
    p->is_main = launch;
    p->tty = tty;
    p->stream = st;
    p->in_fd = parent[0];
    p->out_fd[0] = -1;
    p->out_fd[1] = parent[1];
    p->out_fd[2] = parent[2];
    p->in_w.fd = p->out_w[0].fd = p->out_w[1].fd = p->out_w[2].fd = -1;
    for (int i = 0; i < 3; i++)
        if (parent[i] >= 0) nonblock(parent[i]);
    if (p->in_fd >= 0) loop_add(&p->in_w, p->in_fd, 0, on_stdin_writable, p);
    if (p->out_fd[1] >= 0) loop_add(&p->out_w[1], p->out_fd[1], EPOLLIN, on_stdout, p);
    if (p->out_fd[2] >= 0) loop_add(&p->out_w[2], p->out_fd[2], EPOLLIN, on_stderr, p);
    p->next = procs;
    procs = p;
    st->proc = p;
    if (launch) {
        main_proc = p;
        main_pid = pid;
        main_st = AG_MAIN_RUNNING;
        main_stay_up = req->launch_flags & AG_LAUNCH_STAY_UP;
    }
    ag_buf b = {0};
    ag_buf_u32(&b, (uint32_t)pid);
    stream_reply(st, &b);
    ag_buf_free(&b);
    proc_update(p);
    return 0;
}
