/*
 * main.c — the agent's entry: PID 1 of a zone, or a test-mode server on this host.
 *
 *   bulkhead-agent                         PID 1 in a zone: boot mounts, then vsock port 1024
 *   bulkhead-agent --test --listen PATH    no boot mounts; sessions on a Unix socket
 *   bulkhead-agent --test --stdio          no boot mounts; one session on stdin/stdout
 *   options: --vsock-port N, --etc DIR (where passwd/group are read; default /etc)
 *
 * In test mode, run it as PID 1 of a PID namespace (unshare --pid --fork) to exercise the
 * reaping of orphans; otherwise it makes itself a child subreaper.
 */

#include "agent.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

/* <linux/vm_sockets.h>, which musl's headers do not carry. */
#ifndef VMADDR_CID_ANY
#define VMADDR_CID_ANY 0xFFFFFFFFu
#endif
struct ag_sockaddr_vm {
    sa_family_t svm_family;
    unsigned short svm_reserved1;
    unsigned int svm_port;
    unsigned int svm_cid;
    unsigned char svm_flags;
    unsigned char svm_zero[sizeof(struct sockaddr) - sizeof(sa_family_t) - sizeof(unsigned short) -
                           sizeof(unsigned int) - sizeof(unsigned int) - sizeof(unsigned char)];
};

ag_config ag_cfg = {.vsock_port = 1024};

static int fcntl_dup(int fd) { return fcntl(fd, F_DUPFD_CLOEXEC, 0); }

static int fcntl_nonblock(int fd) { return fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK); }

void ag_log(const char *fmt, ...)
{
    char buf[1200];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    dprintf(2, "bulkhead-agent: %s\n", buf);
}

static ag_watch listen_w = {.fd = -1}, signal_w = {.fd = -1};
static bool vsock;
static unsigned accepted;

/* A spare fd, so that when the agent runs out of fds it can still accept and close a connection
 * instead of spinning on a listener that stays readable. */
static int spare_fd = -1;

/* Refused connections linger until the host closes them (reading and dropping what it sends):
 * closing at once could reset the connection before the host has read why. At most 8 linger;
 * the oldest goes first. */
#define LINGER_MAX 8
static ag_watch lingering[LINGER_MAX];
static int linger_next;

static void end_linger(ag_watch *w)
{
    int fd = w->fd;
    loop_del(w);
    close(fd);
}

static void on_lingering(ag_watch *w, uint32_t events)
{
    (void)events;
    char buf[4096];
    ssize_t n;
    while ((n = read(w->fd, buf, sizeof buf)) > 0) {}
    if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) end_linger(w);
}

static void refuse(int fd, const char *why)
{
    ag_buf b = {0};
    size_t f = ag_frame_begin(&b, 0, AG_T_ERROR, 0);
    ag_buf_u16(&b, AG_E_LIMIT);
    ag_buf_u32(&b, 0);
    ag_buf_str(&b, why, strlen(why));
    ag_frame_end(&b, f);
    if (!b.failed && write(fd, b.data, b.len) < 0) { /* the host will see the close */ }
    ag_buf_free(&b);
    shutdown(fd, SHUT_WR);
    ag_watch *w = &lingering[linger_next];
    linger_next = (linger_next + 1) % LINGER_MAX;
    if (w->fd >= 0) end_linger(w);
    if (loop_add(w, fd, EPOLLIN | EPOLLRDHUP, on_lingering, NULL) < 0) close(fd);
}

static void on_accept(ag_watch *w, uint32_t events)
{
    (void)events;
    for (;;) {
        int fd = accept4(w->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if ((errno == EMFILE || errno == ENFILE) && spare_fd >= 0) {
                close(spare_fd);
                fd = accept4(w->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
                if (fd >= 0) refuse(fd, "the agent is out of file descriptors");
                spare_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
                ag_log("accept: out of file descriptors; a connection was refused");
                continue;
            }
            if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR && errno != ECONNABORTED)
                ag_log("accept: %s", strerror(errno));
            return;
        }
        int out = fcntl_dup(fd);
        char peer[32];
        snprintf(peer, sizeof peer, "%s#%u", vsock ? "vsock" : "unix", ++accepted);
        if (out < 0) {
            refuse(fd, "the agent is out of file descriptors");
            continue;
        }
        if (!session_open(fd, out, peer)) {
            close(out);
            refuse(fd, "too many sessions: the agent serves at most 32 at once");
        }
    }
}

static void on_stop_signal(int signo) { (void)signo; }

static void on_signal(ag_watch *w, uint32_t events)
{
    (void)events;
    struct signalfd_siginfo si;
    while (read(w->fd, &si, sizeof si) == (ssize_t)sizeof si) {
        if (si.ssi_signo == SIGCHLD) continue;
        ag_log("signal %u: stopping", si.ssi_signo);
        loop_quit();
    }
    procs_reap();
}

static int listen_unix(const char *path)
{
    struct sockaddr_un a = {.sun_family = AF_UNIX};
    if (strlen(path) >= sizeof a.sun_path) {
        ag_log("--listen path longer than %zu bytes", sizeof a.sun_path - 1);
        return -1;
    }
    strcpy(a.sun_path, path);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0) return -1;
    unlink(path);
    if (bind(fd, (struct sockaddr *)&a, sizeof a) < 0 || listen(fd, 64) < 0) {
        ag_log("listen on %s: %s", path, strerror(errno));
        close(fd);
        return -1;
    }
    chmod(path, 0600);
    return fd;
}

static int listen_vsock(unsigned port)
{
    int fd = socket(AF_VSOCK, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0) {
        ag_log("socket(AF_VSOCK): %s (does the zone have a vsock device?)", strerror(errno));
        return -1;
    }
    struct ag_sockaddr_vm a = {.svm_family = AF_VSOCK, .svm_port = port, .svm_cid = VMADDR_CID_ANY};
    if (bind(fd, (struct sockaddr *)&a, sizeof a) < 0 || listen(fd, 64) < 0) {
        ag_log("listen on vsock port %u: %s", port, strerror(errno));
        close(fd);
        return -1;
    }
    vsock = true;
    return fd;
}

static void usage(void)
{
    dprintf(2, "usage: bulkhead-agent                (PID 1 of a zone)\n"
               "       bulkhead-agent --test (--listen PATH | --stdio) [--etc DIR]\n"
               "       options: --vsock-port N, --etc DIR\n");
    exit(2);
}

int main(int argc, char **argv)
{
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--test")) ag_cfg.test_mode = true;
        else if (!strcmp(a, "--stdio")) ag_cfg.stdio = true;
        else if (!strcmp(a, "--listen") && i + 1 < argc) ag_cfg.listen_unix = argv[++i];
        else if (!strcmp(a, "--etc") && i + 1 < argc) ag_cfg.etc_dir = argv[++i];
        else if (!strcmp(a, "--vsock-port") && i + 1 < argc) ag_cfg.vsock_port = (unsigned)strtoul(argv[++i], NULL, 10);
        else if (getpid() == 1) continue; /* the kernel passes unknown command-line words to init */
        else usage();
    }
    if (!ag_cfg.test_mode && getpid() != 1) {
        ag_log("not PID 1: run me as a zone's init, or with --test");
        return 2;
    }
    if (ag_cfg.test_mode && !ag_cfg.stdio && !ag_cfg.listen_unix) usage();
    umask(022);
    signal(SIGPIPE, SIG_IGN);
    if (getpid() != 1) prctl(PR_SET_CHILD_SUBREAPER, 1);

    sigset_t mask;
    sigemptyset(&mask);
    sigaddset(&mask, SIGCHLD);
    if (ag_cfg.test_mode) {
        sigaddset(&mask, SIGTERM);
        sigaddset(&mask, SIGINT);
    }
    sigprocmask(SIG_BLOCK, &mask, NULL);
    if (ag_cfg.test_mode) {
        /* PID 1 of a namespace only gets signals it has a handler for; blocked, they then queue
         * for the signalfd below. */
        struct sigaction sa = {.sa_handler = on_stop_signal};
        sigaction(SIGTERM, &sa, NULL);
        sigaction(SIGINT, &sa, NULL);
    }

    if (!ag_cfg.test_mode && boot_zone() < 0) {
        ag_log("boot failed: powering off");
        agent_power_off();
    }
    if (loop_init() < 0) {
        ag_log("epoll_create1: %s", strerror(errno));
        return 1;
    }
    int sfd = signalfd(-1, &mask, SFD_CLOEXEC | SFD_NONBLOCK);
    if (sfd < 0 || loop_add(&signal_w, sfd, EPOLLIN, on_signal, NULL) < 0) {
        ag_log("signalfd: %s", strerror(errno));
        return 1;
    }
    loop_after_batch(sessions_reap_dead);

    if (ag_cfg.stdio) {
        if (fcntl_nonblock(0) < 0 || fcntl_nonblock(1) < 0 || !session_open(0, 1, "stdio")) {
            ag_log("cannot serve on stdin/stdout");
            return 1;
        }
    } else {
        int lfd = ag_cfg.listen_unix ? listen_unix(ag_cfg.listen_unix) : listen_vsock(ag_cfg.vsock_port);
        if (lfd < 0) {
            if (!ag_cfg.test_mode) agent_power_off();
            return 1;
        }
        spare_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
        for (int i = 0; i < LINGER_MAX; i++) lingering[i].fd = -1;
        loop_add(&listen_w, lfd, EPOLLIN, on_accept, NULL);
    }
    agent_announce_ready();
    loop_run();

    procs_kill_all();
    session_close_all();
    if (ag_cfg.listen_unix) unlink(ag_cfg.listen_unix);
    if (!ag_cfg.test_mode) agent_power_off();
    return 0;
}
