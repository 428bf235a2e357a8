/*
 * fuzz_session.c — libFuzzer target for a whole agent session (session.c over the real loop.c
 * and proto.c), with the services stubbed (fuzz/session_stubs.c): the input is what a host sends
 * on one connection. The session must never crash, leak or hang: the input is written to one end
 * of a socketpair, the host side then half-closes, and the loop must tear the session down.
 * ASan/UBSan and LeakSanitizer judge the rest.
 */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>
#include <fcntl.h>

#include "agent.h"

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc, (void)argv;
    if (loop_init() < 0) abort();
    loop_after_batch(sessions_reap_dead);
    return 0;
}

static void drain(int fd)
{
    char buf[65536];
    while (read(fd, buf, sizeof buf) > 0) {}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv) < 0) abort();
    int out = fcntl(sv[0], F_DUPFD_CLOEXEC, 0);
    if (!session_open(sv[0], out, "fuzz")) abort();
    size_t off = 0;
    for (int rounds = 0; off < size && rounds < 10000; rounds++) {
        ssize_t n = write(sv[1], data + off, size - off);
        if (n > 0) off += (size_t)n;
        else if (n < 0 && errno != EAGAIN) break; /* the agent closed the session */
        loop_poll(0);
        drain(sv[1]);
    }
    shutdown(sv[1], SHUT_WR);
    for (int i = 0; i < 200; i++) {
        loop_poll(0);
        drain(sv[1]);
    }
    session_close_all(); /* whatever is left (a session that still waits on credit) */
    loop_poll(0);        /* frees what was deferred */
    close(sv[1]);
    return 0;
}
