/*
 * bh-boot — boot a Linux kernel with bulkhead's core, loader and legacy devices.
 *
 *   bh-boot --kernel K [--initrd I] [--cmdline "..."] [--memory-mib N] [--vcpus N]
 *           [--timeout-ms N] [--entry 64|pvh] [--stdin-after TEXT] [--marker TEXT] [--verbose]
 *
 * Serial (ttyS0) output goes to stdout, stdin goes to the guest's serial input (with
 * --stdin-after, only once the console has printed TEXT: bytes sent before the guest's 8250
 * driver starts are lost with the FIFO reset, as on real hardware). With --marker, the time from
 * process start to the first console line containing TEXT is printed on stderr (boot time). The exit status
 * says how the VM ended, and a last line on stderr says it in words:
 *   0 power-off  the guest halted every vCPU with interrupts off (Linux without ACPI has no power
 *                -off device: poweroff/halt end in "reboot: System halted" and HLT loops)
 *   2 reset      the guest pulsed the reset line through the i8042 (Linux `reboot=k`)
 *   3 shutdown   triple fault (Linux `reboot=t` resets this way; also a crashed guest)
 *   4 crash      a kernel panic on the console, or the VM failed (internal error, entry failure);
 *                the last console lines are printed
 *   5 timeout    --timeout-ms elapsed
 *   1            bad arguments, or the kernel/initrd/command line was refused (message says why)
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <linux/kvm.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "bulkhead.h"

enum { EXIT_POWEROFF = 0, EXIT_USAGE = 1, EXIT_RESET = 2, EXIT_SHUTDOWN = 3, EXIT_CRASH = 4,
       EXIT_TIMEOUT = 5 };

#define PANIC_MARKER "Kernel panic - not syncing"
#define PANIC_GRACE_MS 2000 /* time for panic=N / reboot to end the VM itself */
#define POLL_MS 100
#define HALT_CHECK_MS 300
#define TAIL_BYTES 4096
#define TAIL_LINES 20

typedef struct options {
    const char *kernel, *initrd, *cmdline;
    uint64_t memory_mib;
    uint32_t vcpus;
    uint64_t timeout_ms;
    bh_linux_entry entry;
    const char *stdin_after;
    const char *marker;
    bool verbose;
} options;

typedef struct session {
    pthread_mutex_t lock;
    bool have_exit;
    bh_vcpu_exit first_exit; /* the first vCPU exit that is not a plain stop */
    bool panic_seen;
    char line[256];          /* the console line being assembled, for panic detection */
    size_t line_len;
    const char *stdin_after; /* NULL once stdin may flow */
    const char *marker;      /* NULL once seen */
    double start;
    pthread_cond_t stdin_open;
    bh_serial *serial;
} session;

static session S = {.lock = PTHREAD_MUTEX_INITIALIZER, .stdin_open = PTHREAD_COND_INITIALIZER};

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void usage(void)
{
    fprintf(stderr, "usage: bh-boot --kernel K [--initrd I] [--cmdline \"...\"] [--memory-mib N] "
                    "[--vcpus N] [--timeout-ms N] [--entry 64|pvh] [--stdin-after TEXT] "
                    "[--marker TEXT] [--verbose]\n");
}

static int parse_options(int argc, char **argv, options *o)
{
    static const struct option longopts[] = {
        {"kernel", required_argument, 0, 'k'},  {"initrd", required_argument, 0, 'i'},
        {"cmdline", required_argument, 0, 'c'}, {"memory-mib", required_argument, 0, 'm'},
        {"vcpus", required_argument, 0, 'n'},   {"timeout-ms", required_argument, 0, 't'},
        {"entry", required_argument, 0, 'e'},   {"verbose", no_argument, 0, 'v'},
        {"stdin-after", required_argument, 0, 's'}, {"marker", required_argument, 0, 'M'},
        {"help", no_argument, 0, 'h'},          {0, 0, 0, 0}};
    *o = (options){.cmdline = "console=ttyS0", .memory_mib = 256, .vcpus = 1};
    int c;
    while ((c = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
        switch (c) {
        case 'k': o->kernel = optarg; break;
        case 'i': o->initrd = optarg; break;
        case 'c': o->cmdline = optarg; break;
        case 'm': o->memory_mib = strtoull(optarg, NULL, 0); break;
        case 'n': o->vcpus = (uint32_t)strtoul(optarg, NULL, 0); break;
        case 't': o->timeout_ms = strtoull(optarg, NULL, 0); break;
        case 'e':
            if (strcmp(optarg, "pvh") == 0) o->entry = BH_LINUX_ENTRY_PVH;
            else if (strcmp(optarg, "64") == 0) o->entry = BH_LINUX_ENTRY_64BIT;
            else return usage(), -1;
            break;
        case 'v': o->verbose = true; break;
        case 's': o->stdin_after = optarg; break;
        case 'M': o->marker = optarg; break;
        default: return usage(), -1;
        }
    }
    if (!o->kernel || optind != argc || o->memory_mib == 0 || o->vcpus == 0)
        return usage(), -1;
    return 0;
}

static uint8_t *read_file(const char *path, size_t *len)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) < 0) {
        fprintf(stderr, "bh-boot: %s: %s\n", path, strerror(errno));
        if (fd >= 0) close(fd);
        return NULL;
    }
    uint8_t *buf = malloc(st.st_size ? (size_t)st.st_size : 1);
    size_t got = 0;
    while (buf && got < (size_t)st.st_size) {
        ssize_t n = read(fd, buf + got, (size_t)st.st_size - got);
        if (n <= 0) {
            fprintf(stderr, "bh-boot: reading %s: %s\n", path, n ? strerror(errno) : "short read");
            free(buf);
            buf = NULL;
            break;
        }
        got += (size_t)n;
    }
    close(fd);
    *len = got;
    return buf;
}

/* ------------------------------------------------------------------------------------------ */
/* Console: serial output to stdout, panic detection, serial input from stdin                  */

/* With S.lock held: track the current console line for the panic marker and --stdin-after. */
static void console_line_byte(uint8_t b)
{
    if (b != '\n' && b != '\r' && S.line_len < sizeof S.line - 1)
        S.line[S.line_len++] = (char)b;
    S.line[S.line_len] = 0;
    if (S.stdin_after && strstr(S.line, S.stdin_after)) {
        S.stdin_after = NULL;
        pthread_cond_broadcast(&S.stdin_open);
    }
    if (b == '\n') {
        if (S.marker && strstr(S.line, S.marker)) {
            fprintf(stderr, "bh-boot: marker \"%s\" after %.2f s\n", S.marker, now_s() - S.start);
            S.marker = NULL;
        }
        if (strstr(S.line, PANIC_MARKER))
            S.panic_seen = true;
        S.line_len = 0;
    }
}

static void console_output(void *opaque, const uint8_t *data, size_t len)
{
    (void)opaque;
    pthread_mutex_lock(&S.lock);
    fwrite(data, 1, len, stdout);
    for (size_t i = 0; i < len; i++)
        console_line_byte(data[i]);
    if (memchr(data, '\n', len))
        fflush(stdout);
    pthread_mutex_unlock(&S.lock);
}

static void *console_input_thread(void *arg)
{
    (void)arg;
    uint8_t buf[256];
    ssize_t n;
    pthread_mutex_lock(&S.lock);
    while (S.stdin_after)
        pthread_cond_wait(&S.stdin_open, &S.lock);
    pthread_mutex_unlock(&S.lock);
    while ((n = read(STDIN_FILENO, buf, sizeof buf)) > 0) {
        size_t done = 0;
        while (done < (size_t)n) {
            done += bh_serial_input(S.serial, buf + done, (size_t)n - done);
            if (done < (size_t)n)
                usleep(10000); /* the guest has not drained its receive queue yet */
        }
    }
    return NULL;
}

static void print_tail(void)
{
    char tail[TAIL_BYTES + 1];
    size_t n = bh_serial_recent_output(S.serial, (uint8_t *)tail, TAIL_BYTES);
    tail[n] = 0;
    const char *start = tail + n;
    int lines = 0;
    while (start > tail && lines <= TAIL_LINES)
        if (*--start == '\n')
            lines++;
    if (*start == '\n')
        start++;
    fprintf(stderr, "bh-boot: last console lines:\n%s%s", start,
            n && tail[n - 1] != '\n' ? "\n" : "");
}

/* ------------------------------------------------------------------------------------------ */
/* How the VM ended                                                                             */

static void on_exit_cb(void *opaque, const bh_vcpu_exit *exit)
{
    (void)opaque;
    pthread_mutex_lock(&S.lock);
    if (!S.have_exit && exit->reason != BH_EXIT_STOPPED) {
        S.first_exit = *exit;
        S.have_exit = true;
    }
    pthread_mutex_unlock(&S.lock);
}

/* Linux without ACPI "powers off" by halting every vCPU (see native/boot/halt.c). */
static bool check_halted(bh_vm *vm)
{
    bool halted = false;
    return bh_linux_guest_halted(vm, &halted, NULL) == 0 && halted;
}

static int report(const char *what, const char *detail, int status, double secs)
{
    fflush(stdout);
    fprintf(stderr, "bh-boot: VM ended: %s%s%s after %.2f s\n", what, detail ? ": " : "",
            detail ? detail : "", secs);
    if (status == EXIT_CRASH || status == EXIT_SHUTDOWN || status == EXIT_TIMEOUT)
        print_tail();
    return status;
}

static int classify_exit(const bh_vcpu_exit *e, double secs)
{
    if (S.panic_seen)
        return report("crash", "kernel panic", EXIT_CRASH, secs);
    switch (e->reason) {
    case BH_EXIT_GUEST_REQUEST:
        if (strncmp(e->message, "reset", 5) == 0) /* "reset at rip 0x..." */
            return report("reset", "i8042 reset line", EXIT_RESET, secs);
        return report("power-off", e->message, EXIT_POWEROFF, secs);
    case BH_EXIT_SHUTDOWN: {
        char detail[200];
        snprintf(detail, sizeof detail, "triple fault on vCPU %u (%s)", e->vcpu, e->message);
        return report("shutdown", detail, EXIT_SHUTDOWN, secs);
    }
    case BH_EXIT_SYSTEM_EVENT:
        if (e->detail[0] == KVM_SYSTEM_EVENT_SHUTDOWN)
            return report("power-off", "KVM_SYSTEM_EVENT_SHUTDOWN", EXIT_POWEROFF, secs);
        if (e->detail[0] == KVM_SYSTEM_EVENT_RESET)
            return report("reset", "KVM_SYSTEM_EVENT_RESET", EXIT_RESET, secs);
        return report("crash", e->message, EXIT_CRASH, secs);
    default:
        return report("crash", e->message, EXIT_CRASH, secs);
    }
}

static int supervise(bh_vm *vm, const options *o, double start)
{
    double last_halt_check = start, panic_at = 0;
    for (;;) {
        usleep(POLL_MS * 1000);
        double t = now_s();
        pthread_mutex_lock(&S.lock);
        fflush(stdout);
        bool panic = S.panic_seen;
        pthread_mutex_unlock(&S.lock);
        if (bh_vm_get_state(vm) == BH_VM_STOPPED)
            break;
        if (panic && !panic_at)
            panic_at = t;
        if (panic_at && (t - panic_at) * 1000 >= PANIC_GRACE_MS) {
            bh_vm_stop(vm, NULL);
            return report("crash", "kernel panic", EXIT_CRASH, t - start);
        }
        if (o->timeout_ms && (t - start) * 1000 >= (double)o->timeout_ms) {
            bh_vm_stop(vm, NULL);
            return report("timeout", NULL, EXIT_TIMEOUT, t - start);
        }
        if ((t - last_halt_check) * 1000 >= HALT_CHECK_MS) {
            last_halt_check = t;
            if (check_halted(vm)) {
                bh_vm_stop(vm, NULL);
                return report("power-off", "all vCPUs halted with interrupts off", EXIT_POWEROFF,
                              t - start);
            }
        }
    }
    bh_vm_stop(vm, NULL);
    pthread_mutex_lock(&S.lock);
    bh_vcpu_exit e = S.first_exit;
    bool have = S.have_exit;
    pthread_mutex_unlock(&S.lock);
    if (!have)
        return report("crash", "the VM stopped without a reason", EXIT_CRASH, now_s() - start);
    return classify_exit(&e, now_s() - start);
}

/* ------------------------------------------------------------------------------------------ */

/* Takes ownership of the kernel and initrd buffers: they are freed as soon as they are in guest RAM
 * (bh_boot_linux only reads them during the call), so the VMM does not carry a second copy of
 * the images for the guest's whole life (~20 MiB of RSS for the zone kernel + initrd). */
static int build_and_run(const options *o, uint8_t *kernel, size_t klen, uint8_t *initrd, size_t ilen)
{
    bh_error e = {0};
    bh_kvm *kvm = NULL;
    bh_vm *vm = NULL;
    bh_i8042 *kbc = NULL;
    int status = EXIT_USAGE;
    double start = now_s();
    if (bh_kvm_open(NULL, &kvm, &e) != 0) {
        fprintf(stderr, "bh-boot: %s\n", e.message);
        free(kernel);
        free(initrd);
        return EXIT_USAGE;
    }
    bh_vm_config vc = {.memory_bytes = o->memory_mib << 20, .vcpus = o->vcpus, .irqchip = true,
                       .on_exit = on_exit_cb};
    bh_serial_config sc = {.port = 0x3f8, .irq = 4, .output = console_output};
    bh_linux_boot_config bc = {.kernel = kernel, .kernel_len = klen, .initrd = initrd,
                               .initrd_len = ilen, .cmdline = o->cmdline, .entry = o->entry};
    bh_boot_info info;
    int failed = bh_vm_create(kvm, &vc, &vm, &e) || bh_serial_create(vm, &sc, &S.serial, &e) ||
                 bh_i8042_create(vm, &kbc, &e) || bh_boot_linux(vm, &bc, &info, &e);
    free(kernel);
    free(initrd);
    if (failed) {
        fprintf(stderr, "bh-boot: %s\n", e.message);
        goto out;
    }
    if (o->verbose)
        fprintf(stderr, "bh-boot: %s, entry 0x%llx (%s), kernel 0x%llx-0x%llx, initrd 0x%llx+%llu, "
                        "%u e820 entries, setup %.1f ms%s%s\n",
                info.format == BH_KERNEL_ELF ? "vmlinux" : "bzImage",
                (unsigned long long)info.entry_point,
                info.entry == BH_LINUX_ENTRY_PVH ? "PVH" : "64-bit",
                (unsigned long long)info.kernel_start, (unsigned long long)info.kernel_end,
                (unsigned long long)info.initrd_addr, (unsigned long long)info.initrd_size,
                info.e820_entries, (now_s() - start) * 1000, info.notes[0] ? "; " : "", info.notes);
    pthread_t input;
    S.stdin_after = o->stdin_after;
    S.marker = o->marker;
    S.start = start;
    if (pthread_create(&input, NULL, console_input_thread, NULL) == 0)
        pthread_detach(input);
    if (bh_vm_start(vm, &e) != 0) {
        fprintf(stderr, "bh-boot: %s\n", e.message);
        goto out;
    }
    status = supervise(vm, o, start);
out:
    /* The stdin thread may still be inside bh_serial_input: leave the devices to process exit. */
    if (vm)
        bh_vm_destroy(vm);
    bh_kvm_close(kvm);
    return status;
}

int main(int argc, char **argv)
{
    options o;
    if (parse_options(argc, argv, &o) != 0)
        return EXIT_USAGE;
    size_t klen = 0, ilen = 0;
    uint8_t *kernel = read_file(o.kernel, &klen), *initrd = NULL;
    if (!kernel || (o.initrd && !(initrd = read_file(o.initrd, &ilen))))
        return EXIT_USAGE;
    int status = build_and_run(&o, kernel, klen, initrd, ilen);
    fflush(stdout);
    _exit(status); /* the stdin reader may be blocked in read(): do not wait for it */
}
