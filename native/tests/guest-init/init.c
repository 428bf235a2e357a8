/*
 * init.c — PID 1 of the boot end-to-end test's initramfs (static, no libraries at run time).
 *
 * Prints what the test checks, each line tagged "BH-":
 *   BH-INIT      the marker: userspace was reached
 *   BH-NPROC     online CPUs (the guest saw every vCPU the MP table announced)
 *   BH-CMDLINE   /proc/cmdline (the command line arrived intact)
 *   BH-MEMTOTAL  MemTotal from /proc/meminfo, in KiB (the e820 map reached the kernel)
 *   BH-CLOCKSOURCE  the kernel's current clocksource (kvm-clock when the KVM leaves are right)
 *   BH-ECHO      with `bhecho=1`: one line read from the console (serial input reached the guest)
 * then ends the way `bhaction=` says: poweroff (default: through bulkhead's power device when there
 * is one, else reboot(2)), reboot (the kernel's own, reboot(2)), or panic (init exits, so the kernel
 * panics with "Attempted to kill init").
 */
#include <stdio.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/reboot.h>
#include <termios.h>
#include <unistd.h>

#include "bh_power.h"

static char cmdline[4096];

/* The first line of a small text file into out (empty when unreadable). */
static void read_line(const char *path, char *out, size_t max)
{
    out[0] = 0;
    FILE *f = fopen(path, "r");
    if (!f)
        return;
    if (!fgets(out, (int)max, f))
        out[0] = 0;
    fclose(f);
    out[strcspn(out, "\n")] = 0;
}

static void read_cmdline(void)
{
    FILE *f = fopen("/proc/cmdline", "r");
    if (!f)
        return;
    size_t n = fread(cmdline, 1, sizeof cmdline - 1, f);
    fclose(f);
    cmdline[n] = 0;
    if (n && cmdline[n - 1] == '\n')
        cmdline[n - 1] = 0;
}

/* The value of `key=` on the command line, copied into out (empty when absent). */
static void cmdline_value(const char *key, char *out, size_t max)
{
    out[0] = 0;
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
}

static long mem_total_kib(void)
{
    char line[128];
    long kib = -1;
    FILE *f = fopen("/proc/meminfo", "r");
    while (f && fgets(line, sizeof line, f))
        if (sscanf(line, "MemTotal: %ld kB", &kib) == 1)
            break;
    if (f)
        fclose(f);
    return kib;
}

static void echo_one_line(void)
{
    char line[256];
    printf("BH-READY: type a line\n");
    fflush(stdout);
    if (fgets(line, sizeof line, stdin)) {
        line[strcspn(line, "\r\n")] = 0;
        printf("BH-ECHO: %s\n", line);
    } else {
        printf("BH-ECHO-FAILED\n");
    }
    fflush(stdout);
}

int main(void)
{
    mount("proc", "/proc", "proc", 0, NULL);
    mount("sysfs", "/sys", "sysfs", 0, NULL);
    mount("devtmpfs", "/dev", "devtmpfs", 0, NULL); /* /dev/mem, for the power device */
    read_cmdline();
    printf("BH-INIT: hello from the guest\n");
    printf("BH-NPROC: %ld\n", sysconf(_SC_NPROCESSORS_ONLN));
    printf("BH-CMDLINE: %s\n", cmdline);
    printf("BH-MEMTOTAL: %ld\n", mem_total_kib());
    char value[64];
    read_line("/sys/devices/system/clocksource/clocksource0/current_clocksource", value, sizeof value);
    printf("BH-CLOCKSOURCE: %s\n", value);
    fflush(stdout);
    cmdline_value("bhecho", value, sizeof value);
    if (strcmp(value, "1") == 0)
        echo_one_line();
    cmdline_value("bhaction", value, sizeof value);
    printf("BH-ACTION: %s\n", value[0] ? value : "poweroff");
    fflush(stdout);
    sync();
    if (strcmp(value, "panic") == 0)
        return 1;
    if (strcmp(value, "reboot") == 0)
        reboot(RB_AUTOBOOT);
    tcdrain(STDOUT_FILENO); /* the power device ends the VM at once: let the UART send what is queued */
    bh_guest_power(BH_GUEST_POWER_OFF);
    reboot(RB_POWER_OFF); /* no power device: Linux without ACPI halts, which a VMM may detect */
    for (;;)
        pause();
}
