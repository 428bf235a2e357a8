/*
 * vsock-peer.c — the host side of the devices benchmark's vsock runs (src/bench/vmm/devices.ts), for
 * both VMMs: ours is reached through its Unix socket (Firecracker's scheme), QEMU's vhost-vsock
 * through AF_VSOCK. It prints one line: "RECV <bytes> <ns>" (first byte to EOF) or "SENT <bytes> <ns>".
 *
 *   vsock-peer recv-unix PATH          accept one connection on PATH (ours: <uds>_5000), read to EOF
 *   vsock-peer recv-vsock PORT         the same on AF_VSOCK port PORT (QEMU: the guest dials CID 2)
 *   vsock-peer send-unix UDS PORT MIB  CONNECT PORT through UDS (ours), send MIB MiB, close
 *   vsock-peer send-vsock CID PORT MIB connect to CID:PORT over AF_VSOCK (QEMU), send, close
 */
#define _GNU_SOURCE
#include <linux/vm_sockets.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

static uint8_t buf[1 << 20];

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

static int fail(const char *what)
{
    perror(what);
    return 1;
}

static int recv_all(int l)
{
    printf("LISTENING\n");
    fflush(stdout);
    int c = accept(l, NULL, NULL);
    if (c < 0)
        return fail("accept");
    uint64_t total = 0, t0 = 0;
    for (ssize_t n; (n = read(c, buf, sizeof buf)) > 0;) {
        if (!total)
            t0 = now_ns();
        total += (uint64_t)n;
    }
    printf("RECV %llu %llu\n", (unsigned long long)total, (unsigned long long)(now_ns() - t0));
    return 0;
}

static int send_all(int s, uint64_t mib)
{
    memset(buf, 0xa5, sizeof buf);
    uint64_t total = 0, t0 = now_ns();
    for (uint64_t i = 0; i < mib; i++)
        for (size_t off = 0; off < sizeof buf;) {
            ssize_t w = write(s, buf + off, sizeof buf - off);
            if (w <= 0)
                return fail("write");
            off += (size_t)w, total += (uint64_t)w;
        }
    shutdown(s, SHUT_WR);
    while (read(s, buf, sizeof buf) > 0) {
    }
    printf("SENT %llu %llu\n", (unsigned long long)total, (unsigned long long)(now_ns() - t0));
    return 0;
}

int main(int argc, char **argv)
{
    if (argc == 3 && strcmp(argv[1], "recv-unix") == 0) {
        int l = socket(AF_UNIX, SOCK_STREAM, 0);
        struct sockaddr_un a = {.sun_family = AF_UNIX};
        snprintf(a.sun_path, sizeof a.sun_path, "%s", argv[2]);
        unlink(argv[2]);
        if (l < 0 || bind(l, (struct sockaddr *)&a, sizeof a) || listen(l, 1))
            return fail("listen (unix)");
        return recv_all(l);
    }
    if (argc == 3 && strcmp(argv[1], "recv-vsock") == 0) {
        int l = socket(AF_VSOCK, SOCK_STREAM, 0);
        struct sockaddr_vm a = {.svm_family = AF_VSOCK, .svm_cid = VMADDR_CID_ANY, .svm_port = (unsigned)atoi(argv[2])};
        if (l < 0 || bind(l, (struct sockaddr *)&a, sizeof a) || listen(l, 1))
            return fail("listen (vsock)");
        return recv_all(l);
    }
    if (argc == 5 && strcmp(argv[1], "send-unix") == 0) {
        int s = socket(AF_UNIX, SOCK_STREAM, 0);
        struct sockaddr_un a = {.sun_family = AF_UNIX};
        snprintf(a.sun_path, sizeof a.sun_path, "%s", argv[2]);
        if (s < 0 || connect(s, (struct sockaddr *)&a, sizeof a))
            return fail("connect (unix)");
        char line[64];
        int n = snprintf(line, sizeof line, "CONNECT %s\n", argv[3]);
        if (write(s, line, (size_t)n) != n)
            return fail("write CONNECT");
        size_t got = 0;
        while (got < sizeof line - 1 && read(s, line + got, 1) == 1 && line[got++] != '\n') {
        }
        if (got < 3 || strncmp(line, "OK ", 3) != 0)
            return fail("no OK");
        return send_all(s, strtoull(argv[4], NULL, 10));
    }
    if (argc == 5 && strcmp(argv[1], "send-vsock") == 0) {
        int s = socket(AF_VSOCK, SOCK_STREAM, 0);
        struct sockaddr_vm a = {.svm_family = AF_VSOCK, .svm_cid = (unsigned)atoi(argv[2]), .svm_port = (unsigned)atoi(argv[3])};
        if (s < 0 || connect(s, (struct sockaddr *)&a, sizeof a))
            return fail("connect (vsock)");
        return send_all(s, strtoull(argv[4], NULL, 10));
    }
    fprintf(stderr, "usage: vsock-peer recv-unix PATH | recv-vsock PORT | send-unix UDS PORT MIB | send-vsock CID PORT MIB\n");
    return 2;
}
