/*
 * devices-init.c — PID 1 of the devices benchmark's guest (src/bench/vmm/devices.ts), the same binary
 * under both VMMs. It prints "BH-INIT" at once (the boot benchmark's marker), then does what
 * `bhbench=` says and prints one result line with the guest's own clock:
 *   blk        read /dev/vda to the end in 1 MiB reads        BH-BLK <bytes> <ns>
 *   vsock-out  connect to the host (CID 2) port 5000 and send `bhmib=` MiB, then close
 *                                                              BH-VSOCK-OUT <bytes> <ns> (send side)
 *   vsock-in   listen on port 5001 (BH-LISTEN), read one connection to its end
 *                                                              BH-VSOCK-IN <bytes> <ns> (first byte to EOF)
 * then "BH-DONE", and powers off (bulkhead's power device, else reboot(2), which QEMU's microvm
 * without ACPI turns into a halt: the benchmark kills the VMM once it has the result).
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <linux/vm_sockets.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/reboot.h>
#include <sys/socket.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

static char cmdline[4096];
static uint8_t buf[1 << 20];

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

static const char *arg(const char *key, const char *dflt)
{
    static char out[64];
    size_t k = strlen(key);
    for (const char *p = cmdline; (p = strstr(p, key)); p += k)
        if ((p == cmdline || p[-1] == ' ') && p[k] == '=') {
            size_t i = 0;
            for (p += k + 1; *p && *p != ' ' && i + 1 < sizeof out; p++)
                out[i++] = *p;
            out[i] = 0;
            return out;
        }
    return dflt;
}

static void power_off(void)
{
    tcdrain(STDOUT_FILENO); /* the power device ends the VM at once */
    int fd = open("/dev/mem", O_RDWR | O_SYNC);
    volatile uint32_t *p = fd >= 0 ? mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0xd0000000) : MAP_FAILED;
    if (p != MAP_FAILED && p[0] == 0x57504842u)
        p[2] = 1;
    reboot(RB_POWER_OFF);
}

static void blk(void)
{
    int fd = open("/dev/vda", O_RDONLY);
    uint64_t total = 0, t0 = now_ns();
    for (ssize_t n; fd >= 0 && (n = read(fd, buf, sizeof buf)) > 0;)
        total += (uint64_t)n;
    printf("BH-BLK %llu %llu\n", (unsigned long long)total, (unsigned long long)(now_ns() - t0));
}

static void vsock_out(void)
{
    uint64_t mib = strtoull(arg("bhmib", "64"), NULL, 10), total = 0;
    int s = socket(AF_VSOCK, SOCK_STREAM, 0);
    struct sockaddr_vm a = {.svm_family = AF_VSOCK, .svm_cid = VMADDR_CID_HOST, .svm_port = 5000};
    memset(buf, 0x5a, sizeof buf);
    uint64_t t0 = now_ns();
    if (s >= 0 && connect(s, (struct sockaddr *)&a, sizeof a) == 0) {
        for (uint64_t i = 0; i < mib; i++)
            for (size_t off = 0; off < sizeof buf;) {
                ssize_t w = write(s, buf + off, sizeof buf - off);
                if (w <= 0)
                    goto out;
                off += (size_t)w, total += (uint64_t)w;
            }
    }
out:
    if (s >= 0)
        close(s);
    printf("BH-VSOCK-OUT %llu %llu\n", (unsigned long long)total, (unsigned long long)(now_ns() - t0));
}

static void vsock_in(void)
{
    int l = socket(AF_VSOCK, SOCK_STREAM, 0);
    struct sockaddr_vm a = {.svm_family = AF_VSOCK, .svm_cid = VMADDR_CID_ANY, .svm_port = 5001};
    if (l < 0 || bind(l, (struct sockaddr *)&a, sizeof a) || listen(l, 1)) {
        printf("BH-VSOCK-IN-ERROR\n");
        return;
    }
    printf("BH-LISTEN\n");
    fflush(stdout);
    int c = accept(l, NULL, NULL);
    uint64_t total = 0, t0 = 0;
    for (ssize_t n; c >= 0 && (n = read(c, buf, sizeof buf)) > 0;) {
        if (!total)
            t0 = now_ns();
        total += (uint64_t)n;
    }
    printf("BH-VSOCK-IN %llu %llu\n", (unsigned long long)total, (unsigned long long)(now_ns() - t0));
}

int main(void)
{
    mount("proc", "/proc", "proc", 0, NULL);
    mount("devtmpfs", "/dev", "devtmpfs", 0, NULL);
    printf("BH-INIT: devices benchmark guest\n");
    fflush(stdout);
    int fd = open("/proc/cmdline", O_RDONLY);
    ssize_t n = fd >= 0 ? read(fd, cmdline, sizeof cmdline - 1) : 0;
    cmdline[n > 0 ? n : 0] = 0;
    const char *what = arg("bhbench", "boot");
    if (strcmp(what, "blk") == 0)
        blk();
    else if (strcmp(what, "vsock-out") == 0)
        vsock_out();
    else if (strcmp(what, "vsock-in") == 0)
        vsock_in();
    printf("BH-DONE\n");
    fflush(stdout);
    power_off();
    for (;;)
        pause();
}
