/*
 * devtest.c — PID 1 of the devices end-to-end test (test/e2e/devices-machine.test.ts): drives each
 * virtio device from inside the guest and prints what it saw on the console, one "BH-..." line per
 * fact, for the host side (test/e2e/fixtures/devices-host.js) to check and answer.
 *
 * `bhsteps=` on the command line picks the steps, in this order:
 *   blk      vda (read-only): sha256 of the whole disk, its ro flag, a write refused, its serial;
 *            vdb (read-write): a pattern written at offset 4096 and fsync'ed, then "BH-VDB-FLUSHED",
 *            and the host's go-ahead line read from the console
 *   console  a line read from the console (hvc0 is stdin), echoed as BH-ECHO
 *   rng      64 bytes from /dev/hwrng
 *   vsock    listens on 1024 and 1025 (BH-LISTEN), serves the host's connections: an echo on 1024
 *            and a counted stream on 1025 (until EOF: BH-VSOCK-IN <bytes> <crc32>); then, as a
 *            client of the host (CID 2): a stream of `bhvsockmib=` MiB to port 5000 (BH-VSOCK-OUT),
 *            64 concurrent echo connections to port 5001 (BH-VSOCK-64), and port 5999 where
 *            nothing listens (BH-VSOCK-REFUSED <errno>)
 * and ends as `bhend=` says: poweroff (default; power device), reboot (power device), kernel-reboot
 * (reboot(2)), or panic (init exits). Every step writes a boot marker (1 at start, then 2, 3...).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/vm_sockets.h>
#include <poll.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/reboot.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <termios.h>
#include <unistd.h>

#include "bh_power.h"
#include "sha256.h"

static char cmdline[4096];
static uint32_t marker = 1;

static void say(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void say(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
    putchar('\n');
    fflush(stdout);
}

static void read_cmdline(void)
{
    int fd = open("/proc/cmdline", O_RDONLY);
    ssize_t n = fd >= 0 ? read(fd, cmdline, sizeof cmdline - 1) : 0;
    if (fd >= 0)
        close(fd);
    cmdline[n > 0 ? n : 0] = 0;
    cmdline[strcspn(cmdline, "\n")] = 0;
}

static void cmdline_value(const char *key, char *out, size_t max, const char *dflt)
{
    size_t klen = strlen(key);
    for (const char *p = cmdline; (p = strstr(p, key)); p += klen) {
        if ((p == cmdline || p[-1] == ' ') && p[klen] == '=') {
            size_t i = 0;
            for (p += klen + 1; *p && *p != ' ' && i + 1 < max; p++)
                out[i++] = *p;
            out[i] = 0;
            return;
        }
    }
    snprintf(out, max, "%s", dflt);
}

static bool has_step(const char *steps, const char *name)
{
    size_t n = strlen(name);
    for (const char *p = steps; (p = strstr(p, name)); p += n)
        if ((p == steps || p[-1] == ',') && (p[n] == 0 || p[n] == ','))
            return true;
    return false;
}

static void next_marker(void)
{
    bh_guest_power(BH_GUEST_MARKER(++marker));
}

static void read_line_file(const char *path, char *out, size_t max)
{
    out[0] = 0;
    int fd = open(path, O_RDONLY);
    ssize_t n = fd >= 0 ? read(fd, out, max - 1) : -1;
    if (fd >= 0)
        close(fd);
    out[n > 0 ? n : 0] = 0;
    out[strcspn(out, "\n")] = 0;
}

static void hex(const uint8_t *b, size_t n, char *out)
{
    for (size_t i = 0; i < n; i++)
        sprintf(out + 2 * i, "%02x", b[i]);
}

/* --------------------------------------------------------------------------------------------- */

static void step_blk(void)
{
    static uint8_t buf[1 << 20];
    char line[256], digest_hex[65];
    uint8_t digest[32];

    int fd = open("/dev/vda", O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        say("BH-VDA-ERROR open %s", strerror(errno));
    } else {
        sha256_ctx c;
        sha256_init(&c);
        uint64_t total = 0;
        for (ssize_t n; (n = read(fd, buf, sizeof buf)) > 0; total += (uint64_t)n) {
            if (getenv("BH_TRACE") || strstr(cmdline, "bhtrace=1"))
                say("BH-TRACE read %zd at %llu", n, (unsigned long long)total);
            sha256_update(&c, buf, (size_t)n);
        }
        close(fd);
        sha256_final(&c, digest);
        hex(digest, 32, digest_hex);
        say("BH-VDA-SHA256 %s %llu", digest_hex, (unsigned long long)total);
    }
    read_line_file("/sys/block/vda/ro", line, sizeof line);
    say("BH-VDA-RO %s", line);
    fd = open("/dev/vda", O_WRONLY | O_CLOEXEC);
    if (fd >= 0) {
        ssize_t w = pwrite(fd, buf, 4096, 0);
        int e = errno;
        int s = w == 4096 ? fsync(fd) : -1;
        say("BH-VDA-WRITE %s", w == 4096 && s == 0 ? "accepted" : strerrorname_np(e));
        close(fd);
    } else {
        say("BH-VDA-WRITE %s", strerrorname_np(errno));
    }
    read_line_file("/sys/block/vda/serial", line, sizeof line);
    say("BH-VDA-SERIAL %s", line);

    /* vdb: 1 MiB at offset 4096, then a flush; the host reads the file while we wait. */
    for (size_t i = 0; i < sizeof buf; i++)
        buf[i] = (uint8_t)(i * 7 % 251);
    fd = open("/dev/vdb", O_RDWR | O_CLOEXEC);
    bool ok = fd >= 0 && pwrite(fd, buf, sizeof buf, 4096) == (ssize_t)sizeof buf && fsync(fd) == 0;
    if (fd >= 0)
        close(fd);
    sha256_ctx c;
    sha256_init(&c);
    sha256_update(&c, buf, sizeof buf);
    sha256_final(&c, digest);
    hex(digest, 32, digest_hex);
    say("BH-VDB-FLUSHED %s %s", ok ? "ok" : strerror(errno), digest_hex);
    if (fgets(line, sizeof line, stdin))
        say("BH-VDB-GO %s", strtok(line, "\r\n") ? line : "");
    next_marker();
}

static void step_console(void)
{
    char line[256];
    say("BH-READY type a line");
    if (fgets(line, sizeof line, stdin)) {
        line[strcspn(line, "\r\n")] = 0;
        say("BH-ECHO %s", line);
    } else {
        say("BH-ECHO-FAILED");
    }
    next_marker();
}

static void step_rng(void)
{
    uint8_t b[64];
    char h[129], cur[64];
    int fd = open("/dev/hwrng", O_RDONLY | O_CLOEXEC);
    ssize_t n = fd >= 0 ? read(fd, b, sizeof b) : -1;
    if (fd >= 0)
        close(fd);
    read_line_file("/sys/class/misc/hw_random/rng_current", cur, sizeof cur);
    if (n == (ssize_t)sizeof b) {
        hex(b, sizeof b, h);
        say("BH-HWRNG %s %s", cur, h);
    } else {
        say("BH-HWRNG-FAILED %s %s", cur, strerror(errno));
    }
    next_marker();
}

/* --------------------------------------------------------------------------------------------- */
/* vsock                                                                                           */

static uint32_t crc_table[256];

static void crc_init(void)
{
    for (uint32_t i = 0; i < 256; i++) {
        uint32_t c = i;
        for (int k = 0; k < 8; k++)
            c = c & 1 ? 0xedb88320u ^ (c >> 1) : c >> 1;
        crc_table[i] = c;
    }
}

/* zlib's crc32 (the host side uses zlib.crc32): value 0 to start. */
static uint32_t crc32_update(uint32_t crc, const uint8_t *p, size_t n)
{
    crc = ~crc;
    while (n--)
        crc = crc_table[(crc ^ *p++) & 0xff] ^ (crc >> 8);
    return ~crc;
}

static int vsock_listen(uint32_t port)
{
    int s = socket(AF_VSOCK, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_vm a = {.svm_family = AF_VSOCK, .svm_cid = VMADDR_CID_ANY, .svm_port = port};
    if (s < 0 || bind(s, (struct sockaddr *)&a, sizeof a) || listen(s, 16)) {
        say("BH-VSOCK-ERROR listen %u %s", port, strerror(errno));
        return -1;
    }
    return s;
}

static int vsock_connect(uint32_t port, int *err)
{
    int s = socket(AF_VSOCK, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_vm a = {.svm_family = AF_VSOCK, .svm_cid = VMADDR_CID_HOST, .svm_port = port};
    if (s < 0)
        return *err = errno, -1;
    if (connect(s, (struct sockaddr *)&a, sizeof a) != 0) {
        *err = errno;
        close(s);
        return -1;
    }
    return s;
}

static bool write_all(int fd, const void *p, size_t n)
{
    const uint8_t *b = p;
    while (n) {
        ssize_t w = write(fd, b, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return false;
        b += w, n -= (size_t)w;
    }
    return true;
}

/* Port 1024: echo lines until EOF. Port 1025: count and checksum everything until EOF. */
static void serve_host_connections(int l1024, int l1025)
{
    static uint8_t buf[64 * 1024];
    int c = accept4(l1024, NULL, NULL, SOCK_CLOEXEC);
    if (c >= 0) {
        for (ssize_t n; (n = read(c, buf, sizeof buf)) > 0;)
            if (!write_all(c, buf, (size_t)n))
                break;
        close(c);
        say("BH-VSOCK-ECHO-DONE");
    }
    c = accept4(l1025, NULL, NULL, SOCK_CLOEXEC);
    if (c >= 0) {
        uint64_t total = 0;
        uint32_t crc = 0;
        for (ssize_t n; (n = read(c, buf, sizeof buf)) > 0; total += (uint64_t)n)
            crc = crc32_update(crc, buf, (size_t)n);
        close(c);
        say("BH-VSOCK-IN %llu %08x", (unsigned long long)total, crc);
    }
}

static void stream_to_host(uint64_t mib)
{
    static uint64_t buf[64 * 1024 / 8];
    int err = 0;
    int s = vsock_connect(5000, &err);
    if (s < 0) {
        say("BH-VSOCK-OUT-ERROR %s", strerror(err));
        return;
    }
    uint64_t x = 0x9e3779b97f4a7c15ULL, total = 0;
    uint32_t crc = 0;
    for (uint64_t chunk = 0; chunk < mib * 16; chunk++) {
        for (size_t i = 0; i < sizeof buf / 8; i++) {
            x ^= x << 13, x ^= x >> 7, x ^= x << 17;
            buf[i] = x;
        }
        crc = crc32_update(crc, (const uint8_t *)buf, sizeof buf);
        if (!write_all(s, buf, sizeof buf))
            break;
        total += sizeof buf;
    }
    close(s);
    say("BH-VSOCK-OUT %llu %08x", (unsigned long long)total, crc);
}

/* 64 connections open at once to the host's echo port; each sends 64 KiB and reads it back. */
static void concurrent_echo(void)
{
    enum { N = 64, BYTES = 64 * 1024 };
    static uint8_t out[BYTES], in[N][BYTES];
    int fds[N], err = 0, opened = 0;
    size_t sent[N] = {0}, got[N] = {0};
    for (size_t i = 0; i < BYTES; i++)
        out[i] = (uint8_t)(i * 13 + 5);
    for (int i = 0; i < N; i++) {
        fds[i] = vsock_connect(5001, &err);
        if (fds[i] >= 0) {
            opened++;
            fcntl(fds[i], F_SETFL, O_NONBLOCK);
        }
    }
    int done = 0, good = 0;
    while (done < opened) {
        struct pollfd p[N];
        int map[N], np = 0;
        for (int i = 0; i < N; i++) {
            if (fds[i] < 0)
                continue;
            p[np] = (struct pollfd){.fd = fds[i], .events = POLLIN | (sent[i] < BYTES ? POLLOUT : 0)};
            map[np++] = i;
        }
        if (poll(p, (nfds_t)np, 30000) <= 0)
            break;
        for (int k = 0; k < np; k++) {
            int i = map[k];
            if ((p[k].revents & POLLOUT) && sent[i] < BYTES) {
                ssize_t w = write(fds[i], out + sent[i], BYTES - sent[i]);
                if (w > 0)
                    sent[i] += (size_t)w;
            }
            if (p[k].revents & (POLLIN | POLLHUP)) {
                ssize_t r = read(fds[i], in[i] + got[i], BYTES - got[i]);
                if (r > 0)
                    got[i] += (size_t)r;
                if (r == 0 || got[i] == BYTES) {
                    good += got[i] == BYTES && memcmp(in[i], out, BYTES) == 0;
                    close(fds[i]);
                    fds[i] = -1;
                    done++;
                }
            }
        }
    }
    say("BH-VSOCK-64 opened %d matched %d", opened, good);
}

static void step_vsock(void)
{
    char mib[16];
    crc_init();
    cmdline_value("bhvsockmib", mib, sizeof mib, "256");
    int l1024 = vsock_listen(1024), l1025 = vsock_listen(1025);
    say("BH-LISTEN 1024 1025");
    if (l1024 >= 0 && l1025 >= 0)
        serve_host_connections(l1024, l1025);
    if (l1024 >= 0)
        close(l1024);
    if (l1025 >= 0)
        close(l1025);
    next_marker();
    stream_to_host(strtoull(mib, NULL, 10));
    concurrent_echo();
    int err = 0;
    int s = vsock_connect(5999, &err);
    say("BH-VSOCK-REFUSED %s", s < 0 ? strerrorname_np(err) : "connected");
    if (s >= 0)
        close(s);
    next_marker();
}

/* --------------------------------------------------------------------------------------------- */

int main(void)
{
    mount("proc", "/proc", "proc", 0, NULL);
    mount("sysfs", "/sys", "sysfs", 0, NULL);
    mount("devtmpfs", "/dev", "devtmpfs", 0, NULL);
    read_cmdline();
    bool power = bh_guest_power(BH_GUEST_MARKER(1));
    say("BH-DEVTEST start (power device %s)", power ? "found" : "missing");
    char steps[256], end[32];
    cmdline_value("bhsteps", steps, sizeof steps, "blk,console,rng,vsock");
    cmdline_value("bhend", end, sizeof end, "poweroff");
    if (has_step(steps, "blk"))
        step_blk();
    if (has_step(steps, "console"))
        step_console();
    if (has_step(steps, "rng"))
        step_rng();
    if (has_step(steps, "vsock"))
        step_vsock();
    say("BH-END %s", end);
    sync();
    if (strcmp(end, "panic") == 0)
        return 1; /* "Attempted to kill init" */
    if (strcmp(end, "kernel-reboot") == 0)
        reboot(RB_AUTOBOOT);
    tcdrain(STDOUT_FILENO); /* the power device ends the VM at once */
    bh_guest_power(strcmp(end, "reboot") == 0 ? BH_GUEST_REBOOT : BH_GUEST_POWER_OFF);
    for (;;)
        pause();
}
