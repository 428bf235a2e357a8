/*
 * metrics.c — a snapshot of the zone: memory (with PSI pressure when the kernel has it), CPU
 * time, load, and per process RSS and CPU time (a `top`). Read from /proc; layout in PROTOCOL.md.
 */

#include "agent.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Reads a small /proc file into buf (NUL-terminated); returns its length or -1. */
static ssize_t read_small(const char *path, char *buf, size_t cap)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return -1;
    size_t len = 0;
    while (len + 1 < cap) {
        ssize_t n = read(fd, buf + len, cap - 1 - len);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) break;
        len += (size_t)n;
    }
    close(fd);
    buf[len] = 0;
    return (ssize_t)len;
}

static uint64_t meminfo_field(const char *text, const char *name)
{
    const char *p = strstr(text, name);
    if (!p) return 0;
    return strtoull(p + strlen(name), NULL, 10) * 1024; /* kB */
}

/* "avg10=1.23": hundredths of a percent. */
static uint32_t psi_avg(const char *line, const char *key)
{
    const char *p = line ? strstr(line, key) : NULL;
    if (!p) return 0;
    return (uint32_t)(strtod(p + strlen(key), NULL) * 100.0 + 0.5);
}

static void encode_psi_line(ag_buf *b, const char *text, const char *kind)
{
    const char *line = text ? strstr(text, kind) : NULL;
    const char *t = line ? strstr(line, "total=") : NULL;
    ag_buf_u32(b, psi_avg(line, "avg10="));
    ag_buf_u32(b, psi_avg(line, "avg60="));
    ag_buf_u32(b, psi_avg(line, "avg300="));
    ag_buf_u64(b, t ? strtoull(t + 6, NULL, 10) : 0);
}

static void encode_process(ag_buf *b, int pid, long page)
{
    char path[64], buf[4096];
    snprintf(path, sizeof path, "/proc/%d/stat", pid);
    if (read_small(path, buf, sizeof buf) <= 0) return;
    /* comm is in parentheses and may hold anything: find the last ')'. */
    char *open_p = strchr(buf, '('), *close_p = strrchr(buf, ')');
    if (!open_p || !close_p || close_p < open_p) return;
    char comm[32];
    size_t clen = (size_t)(close_p - open_p - 1);
    if (clen >= sizeof comm) clen = sizeof comm - 1;
    memcpy(comm, open_p + 1, clen);
    comm[clen] = 0;
    /* Fields after comm: state(3) ppid(4) ... utime(14) stime(15) ... num_threads(20) ... starttime(22) ... rss(24) */
    char state = 0;
    unsigned long long f[24] = {0};
    const char *p = close_p + 1;
    while (*p == ' ') p++;
    state = *p ? *p++ : '?';
    for (int i = 4; i <= 24 && *p; i++) {
        while (*p == ' ') p++;
        f[i - 1] = strtoull(p, (char **)&p, 10);
    }
    char status[4096];
    uint32_t uid = 0;
    snprintf(path, sizeof path, "/proc/%d/status", pid);
    if (read_small(path, status, sizeof status) > 0) {
        const char *u = strstr(status, "\nUid:");
        if (u) uid = (uint32_t)strtoul(u + 5, NULL, 10);
    }
    char cmd[AG_CMDLINE_MAX + 1];
    snprintf(path, sizeof path, "/proc/%d/cmdline", pid);
    ssize_t cl = read_small(path, cmd, sizeof cmd);
    if (cl < 0) cl = 0;
    for (ssize_t i = 0; i < cl; i++)
        if (cmd[i] == 0) cmd[i] = ' ';
    while (cl > 0 && cmd[cl - 1] == ' ') cl--;
    ag_buf_u32(b, (uint32_t)pid);
    ag_buf_u32(b, (uint32_t)f[3]);          /* ppid */
    ag_buf_u32(b, uid);
    ag_buf_u8(b, (uint8_t)state);
    ag_buf_u32(b, (uint32_t)f[19]);         /* threads */
    ag_buf_u64(b, f[23] * (uint64_t)page);  /* rss bytes */
    ag_buf_u64(b, f[13]);                   /* utime ticks */
    ag_buf_u64(b, f[14]);                   /* stime ticks */
    ag_buf_u64(b, f[21]);                   /* start time, ticks after boot */
    ag_buf_str(b, comm, strlen(comm));
    ag_buf_str(b, cmd, (size_t)cl);
}

void metrics_request(ag_stream *st)
{
    static char text[16384];
    ag_buf b = {0};
    long page = sysconf(_SC_PAGESIZE);

    double up = 0;
    if (read_small("/proc/uptime", text, sizeof text) > 0) up = strtod(text, NULL);
    ag_buf_u64(&b, (uint64_t)(up * 1000.0));

    if (read_small("/proc/meminfo", text, sizeof text) < 0) text[0] = 0;
    static const char *const mem[] = {"MemTotal:", "MemFree:", "MemAvailable:", "Buffers:", "Cached:",
                                      "Shmem:", "SwapTotal:", "SwapFree:"};
    for (size_t i = 0; i < sizeof mem / sizeof mem[0]; i++) ag_buf_u64(&b, meminfo_field(text, mem[i]));

    bool psi = read_small("/proc/pressure/memory", text, sizeof text) > 0;
    ag_buf_u8(&b, psi);
    encode_psi_line(&b, psi ? text : NULL, "some");
    encode_psi_line(&b, psi ? text : NULL, "full");

    ag_buf_u32(&b, (uint32_t)sysconf(_SC_CLK_TCK));
    ag_buf_u16(&b, (uint16_t)sysconf(_SC_NPROCESSORS_ONLN));
    unsigned long long cpu[8] = {0};
    if (read_small("/proc/stat", text, sizeof text) > 0 && !strncmp(text, "cpu ", 4)) {
        char *p = text + 4;
        for (int i = 0; i < 8; i++) cpu[i] = strtoull(p, &p, 10);
    }
    for (int i = 0; i < 8; i++) ag_buf_u64(&b, cpu[i]); /* user nice system idle iowait irq softirq steal */

    double load[3] = {0};
    if (read_small("/proc/loadavg", text, sizeof text) > 0) {
        char *p = text;
        for (int i = 0; i < 3; i++) load[i] = strtod(p, &p);
    }
    for (int i = 0; i < 3; i++) ag_buf_u32(&b, (uint32_t)(load[i] * 100.0 + 0.5));

    /* Processes: a count placeholder, filled in after the walk. */
    size_t count_at = b.len;
    ag_buf_u32(&b, 0);
    ag_buf_u8(&b, 0);
    uint32_t n = 0;
    bool truncated = false;
    DIR *d = opendir("/proc");
    struct dirent *de;
    while (d && (de = readdir(d))) {
        if (!isdigit((unsigned char)de->d_name[0])) continue;
        if (n == AG_PROCS_MAX) {
            truncated = true;
            break;
        }
        size_t before = b.len;
        encode_process(&b, atoi(de->d_name), page);
        if (b.len != before) n++;
    }
    if (d) closedir(d);
    if (!b.failed) {
        for (int i = 0; i < 4; i++) b.data[count_at + (size_t)i] = (uint8_t)(n >> (8 * i));
        b.data[count_at + 4] = truncated;
    }
    stream_end(st, &b);
    ag_buf_free(&b);
}
