/*
 * boot.c — what PID 1 does before serving: the API filesystems, the image's root (read-only
 * erofs on a virtio-blk disk) under a tmpfs overlay, the switch into it, and the mounts a
 * workload expects inside (devpts, /dev/shm, /run, /tmp, cgroup2). The disk and its type come
 * from the kernel command line: bulkhead.root=/dev/vda bulkhead.rootfstype=erofs
 * [bulkhead.rootflags=...]. Without bulkhead.root= the agent serves from the initramfs itself.
 */

#include "agent.h"

#include <errno.h>
#include <fcntl.h>
#include <net/if.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define STAGE "/bulkhead"       /* a tmpfs in the initramfs: lower, upper, work and the new root */
#define ROOT_WAIT_MS 10000      /* how long the root disk may take to appear */

static int do_mount(const char *src, const char *dst, const char *type, unsigned long flags, const char *data)
{
    mkdir(dst, 0755);
    if (mount(src, dst, type, flags, data) < 0 && errno != EBUSY) {
        ag_log("mount %s on %s (%s): %s", src, dst, type ? type : "move", strerror(errno));
        return -1;
    }
    return 0;
}

/* The value of key= on the kernel command line, or NULL. */
static const char *cmdline_value(const char *cmdline, const char *key, char *out, size_t cap)
{
    size_t klen = strlen(key);
    for (const char *p = cmdline; *p;) {
        while (*p == ' ' || *p == '\n') p++;
        const char *end = p;
        while (*end && *end != ' ' && *end != '\n') end++;
        if ((size_t)(end - p) > klen && !strncmp(p, key, klen) && p[klen] == '=') {
            size_t n = (size_t)(end - p) - klen - 1;
            if (n >= cap) return NULL;
            memcpy(out, p + klen + 1, n);
            out[n] = 0;
            return out;
        }
        p = end;
    }
    return NULL;
}

static bool wait_for(const char *dev)
{
    struct timespec step = {0, 10 * 1000 * 1000};
    for (int waited = 0; waited < ROOT_WAIT_MS; waited += 10) {
        if (access(dev, F_OK) == 0) return true;
        nanosleep(&step, NULL);
    }
    return access(dev, F_OK) == 0;
}

static void loopback_up(void)
{
    int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return;
    struct ifreq ifr = {0};
    strcpy(ifr.ifr_name, "lo");
    if (ioctl(fd, SIOCGIFFLAGS, &ifr) == 0) {
        ifr.ifr_flags |= IFF_UP;
        ioctl(fd, SIOCSIFFLAGS, &ifr);
    }
    close(fd);
}

/* Mounts inside the (new) root that every workload expects. */
static void inner_mounts(void)
{
    do_mount("devpts", "/dev/pts", "devpts", MS_NOSUID | MS_NOEXEC, "mode=0620,ptmxmode=0666");
    do_mount("shm", "/dev/shm", "tmpfs", MS_NOSUID | MS_NODEV, "mode=1777");
    do_mount("tmpfs", "/run", "tmpfs", MS_NOSUID | MS_NODEV, "mode=0755");
    do_mount("tmpfs", "/tmp", "tmpfs", MS_NOSUID | MS_NODEV, "mode=1777");
    if (access("/sys/fs/cgroup", F_OK) == 0) do_mount("cgroup2", "/sys/fs/cgroup", "cgroup2", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL);
    loopback_up();
}

static bool valid_hostname(const char *h)
{
    size_t n = strlen(h);
    if (n == 0 || n > 63 || h[0] == '-' || h[n - 1] == '-') return false;
    for (size_t i = 0; i < n; i++)
        if (!((h[i] >= 'a' && h[i] <= 'z') || (h[i] >= 'A' && h[i] <= 'Z') || (h[i] >= '0' && h[i] <= '9') || h[i] == '-'))
            return false;
    return true;
}

int boot_zone(void)
{
    if (do_mount("devtmpfs", "/dev", "devtmpfs", MS_NOSUID, "mode=0755") < 0) return -1;
    agent_announce_started(); /* needs /dev/mem; the mapping it keeps outlives the switch of root */
    if (do_mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL) < 0) return -1;
    if (do_mount("sysfs", "/sys", "sysfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL) < 0) return -1;

    static char cmdline[4096];
    int fd = open("/proc/cmdline", O_RDONLY | O_CLOEXEC);
    ssize_t n = fd >= 0 ? read(fd, cmdline, sizeof cmdline - 1) : -1;
    if (fd >= 0) close(fd);
    cmdline[n > 0 ? n : 0] = 0;

    /* The zone's hostname from the start, also for zones without a main process (a LAUNCH may set
     * another one later). A value that is not a plain label is ignored. */
    char host[65];
    if (cmdline_value(cmdline, "bulkhead.hostname", host, sizeof host) && valid_hostname(host) &&
        sethostname(host, strlen(host)) < 0)
        ag_log("sethostname %s: %s", host, strerror(errno));

    char root[256], type[64], flags[512];
    if (!cmdline_value(cmdline, "bulkhead.root", root, sizeof root)) {
        ag_log("no bulkhead.root= on the command line: serving from the initramfs");
        inner_mounts();
        return 0;
    }
    if (!cmdline_value(cmdline, "bulkhead.rootfstype", type, sizeof type)) strcpy(type, "erofs");
    if (!cmdline_value(cmdline, "bulkhead.rootflags", flags, sizeof flags)) flags[0] = 0;
    if (!wait_for(root)) {
        ag_log("the root disk %s did not appear within %d ms", root, ROOT_WAIT_MS);
        return -1;
    }
    if (do_mount("tmpfs", STAGE, "tmpfs", 0, "mode=0755") < 0) return -1;
    mkdir(STAGE "/upper", 0755);
    mkdir(STAGE "/work", 0755);
    if (do_mount(root, STAGE "/lower", type, MS_RDONLY, flags[0] ? flags : NULL) < 0) return -1;
    if (do_mount("overlay", STAGE "/root", "overlay", 0,
                 "lowerdir=" STAGE "/lower,upperdir=" STAGE "/upper,workdir=" STAGE "/work") < 0)
        return -1;
    static const char *const api[] = {"/dev", "/proc", "/sys"};
    for (size_t i = 0; i < 3; i++) {
        char dst[64];
        snprintf(dst, sizeof dst, STAGE "/root%s", api[i]);
        if (do_mount(api[i], dst, NULL, MS_MOVE, NULL) < 0) return -1;
    }
    /* The initramfs is rootfs, which pivot_root cannot leave: move the new root over it and
     * chroot, as switch_root does. The agent binary's own file is freed first. */
    unlink("/init");
    if (chdir(STAGE "/root") < 0 || mount(".", "/", NULL, MS_MOVE, NULL) < 0 || chroot(".") < 0 || chdir("/") < 0) {
        ag_log("switching to the new root: %s", strerror(errno));
        return -1;
    }
    inner_mounts();
    return 0;
}
