/*
 * vsock-bridge.c — stdin/stdout to an AF_VSOCK stream: `vsock-bridge CID PORT [RETRY_MS]`.
 *
 * The host side of the agent channel for tests that run QEMU with vhost-vsock (our own VMM's
 * vsock speaks Unix sockets instead). It retries the connection for RETRY_MS (default 30000)
 * while nothing listens yet (the zone is still booting), then copies bytes both ways until
 * either side closes. Exit: 0 after a clean close, 1 when it never connected.
 */

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

struct vm_addr {
    sa_family_t family;
    unsigned short reserved1;
    unsigned int port, cid;
    unsigned char flags, zero[3];
};

static long now_ms(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec * 1000L + t.tv_nsec / 1000000L;
}

static int copy(int from, int to)
{
    char buf[65536];
    ssize_t n = read(from, buf, sizeof buf);
    if (n < 0 && errno == EINTR) return 1;
    if (n <= 0) return 0;
    for (ssize_t off = 0; off < n;) {
        ssize_t w = write(to, buf + off, (size_t)(n - off));
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) return -1;
        off += w;
    }
    return 1;
}

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: vsock-bridge CID PORT [RETRY_MS]\n");
        return 2;
    }
    struct vm_addr a = {.family = AF_VSOCK, .port = (unsigned)atoi(argv[2]), .cid = (unsigned)atoi(argv[1])};
    long deadline = now_ms() + (argc > 3 ? atol(argv[3]) : 30000);
    int fd = -1;
    for (;;) {
        fd = socket(AF_VSOCK, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd < 0) {
            perror("vsock-bridge: socket(AF_VSOCK)");
            return 1;
        }
        if (connect(fd, (struct sockaddr *)&a, sizeof a) == 0) break;
        int e = errno;
        close(fd);
        if (now_ms() > deadline) {
            fprintf(stderr, "vsock-bridge: connect %s:%s: %s\n", argv[1], argv[2], strerror(e));
            return 1;
        }
        usleep(50 * 1000);
    }
    struct pollfd p[2] = {{0, POLLIN, 0}, {fd, POLLIN, 0}};
    for (;;) {
        if (poll(p, 2, -1) < 0) {
            if (errno == EINTR) continue;
            return 1;
        }
        if (p[0].revents) {
            int r = copy(0, fd);
            if (r <= 0) {
                shutdown(fd, SHUT_WR); /* the host's stdin ended: half-close, keep reading */
                p[0].fd = -1;
            }
        }
        if (p[1].revents) {
            if (copy(fd, 1) <= 0) return 0;
        }
    }
}
