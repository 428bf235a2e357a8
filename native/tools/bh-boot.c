/*
 * bh-boot — a zone VM from C alone: bulkhead's machine builder (native/machine) with a kernel,
 * an initrd and its devices, the console on stdout and stdin.
 *
 *   bh-boot --kernel K [--initrd I] [--cmdline "..."] [--memory-mib N] [--vcpus N] [--entry 64|pvh]
 *           [--disk PATH[,ro][,serial=ID]]... [--hvc] [--rng] [--vsock-uds PATH [--vsock-cid N]]
 *           [--keep-running-on-device-failure] [--timeout-ms N] [--stdin-after TEXT] [--marker TEXT]
 *           [--verbose]
 *
 * Console output (ttyS0 and hvc0) goes to stdout, stdin to the guest's console (hvc0 with --hvc,
 * else ttyS0; with --stdin-after, only once the console has printed TEXT: bytes sent before the
 * guest's driver starts are lost, as on real hardware). With --marker, the time from process start
 * to the first console line containing TEXT is printed on stderr; markers the guest writes to the
 * power device are printed too. The exit status says how the machine ended, and a last line on
 * stderr says it in words ("bh-boot: VM ended: <word>: <detail> after N s"):
 *   0 power-off       the power device's POWER_OFF
 *   2 reset           a reboot: the power device's REBOOT or the kernel's (i8042 reset line)
 *   3 shutdown        a triple fault that was not a panic's reset
 *   4 crash           a kernel panic, or the VM failed; the last console lines are printed
 *   5 timeout         --timeout-ms elapsed
 *   6 device-failure  a device found the guest misusing it
 *   1                 bad arguments, or the kernel/initrd/command line/a disk was refused
 */
#define _GNU_SOURCE
#include <errno.h>
#include <getopt.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include "bulkhead.h"

enum { EXIT_POWEROFF = 0, EXIT_USAGE = 1, EXIT_RESET = 2, EXIT_SHUTDOWN = 3, EXIT_CRASH = 4,
       EXIT_TIMEOUT = 5, EXIT_DEVICE_FAILURE = 6 };

#define TAIL_BYTES 4096
#define TAIL_LINES 20

typedef struct options {
    bh_machine_config mc;
    bh_machine_disk disks[BH_MACHINE_MAX_DISKS];
    uint64_t timeout_ms;
    const char *stdin_after;
    const char *marker;
    bool verbose;
} options;

typedef struct session {
    pthread_mutex_t lock;
    char line[256];          /* the console line being assembled, for --marker / --stdin-after */
    size_t line_len;
    const char *stdin_after; /* NULL once stdin may flow */
    const char *marker;      /* NULL once seen */
    double start;
    bh_machine *machine;
    int input_stop_fd;       /* written before the machine is destroyed: the input thread leaves */
} session;

static session S = {.lock = PTHREAD_MUTEX_INITIALIZER};

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void usage(void)
{
    fprintf(stderr, "usage: bh-boot --kernel K [--initrd I] [--cmdline \"...\"] [--memory-mib N] [--vcpus N] "
                    "[--entry 64|pvh] [--disk PATH[,ro][,serial=ID]]... [--hvc] [--rng] "
                    "[--vsock-uds PATH [--vsock-cid N]] [--keep-running-on-device-failure] [--timeout-ms N] "
                    "[--stdin-after TEXT] [--marker TEXT] [--verbose]\n");
}

/* PATH[,ro][,serial=ID] */
static int parse_disk(options *o, char *arg)
{
    if (o->mc.disk_count >= BH_MACHINE_MAX_DISKS) {
        fprintf(stderr, "bh-boot: at most %d --disk\n", BH_MACHINE_MAX_DISKS);
        return -1;
    }
    bh_machine_disk *d = &o->disks[o->mc.disk_count++];
    char *save = NULL;
    d->path = strtok_r(arg, ",", &save);
    for (char *opt; (opt = strtok_r(NULL, ",", &save));) {
        if (strcmp(opt, "ro") == 0)
            d->read_only = true;
        else if (strncmp(opt, "serial=", 7) == 0)
            d->serial = opt + 7;
        else {
            fprintf(stderr, "bh-boot: --disk option \"%s\" is unknown (allowed: ro, serial=ID)\n", opt);
            return -1;
        }
    }
    return d->path ? 0 : -1;
}

static int parse_options(int argc, char **argv, options *o)
{
    enum { O_DISK = 256, O_HVC, O_RNG, O_VSOCK_UDS, O_VSOCK_CID, O_KEEP };
    static const struct option longopts[] = {
        {"kernel", required_argument, 0, 'k'},  {"initrd", required_argument, 0, 'i'},
        {"cmdline", required_argument, 0, 'c'}, {"memory-mib", required_argument, 0, 'm'},
        {"vcpus", required_argument, 0, 'n'},   {"timeout-ms", required_argument, 0, 't'},
        {"entry", required_argument, 0, 'e'},   {"verbose", no_argument, 0, 'v'},
        {"stdin-after", required_argument, 0, 's'}, {"marker", required_argument, 0, 'M'},
        {"disk", required_argument, 0, O_DISK}, {"hvc", no_argument, 0, O_HVC}, {"rng", no_argument, 0, O_RNG},
        {"vsock-uds", required_argument, 0, O_VSOCK_UDS}, {"vsock-cid", required_argument, 0, O_VSOCK_CID},
        {"keep-running-on-device-failure", no_argument, 0, O_KEEP},
        {"help", no_argument, 0, 'h'},          {0, 0, 0, 0}};
    memset(o, 0, sizeof *o);
    o->mc.cmdline = "console=ttyS0";
    o->mc.memory_bytes = 256ULL << 20;
    o->mc.vcpus = 1;
    o->mc.disks = o->disks;
    int c;
    while ((c = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
        switch (c) {
        case 'k': o->mc.kernel_path = optarg; break;
        case 'i': o->mc.initrd_path = optarg; break;
        case 'c': o->mc.cmdline = optarg; break;
        case 'm': o->mc.memory_bytes = strtoull(optarg, NULL, 0) << 20; break;
        case 'n': o->mc.vcpus = (uint32_t)strtoul(optarg, NULL, 0); break;
        case 't': o->timeout_ms = strtoull(optarg, NULL, 0); break;
        case 'e':
            if (strcmp(optarg, "pvh") == 0) o->mc.entry = BH_LINUX_ENTRY_PVH;
            else if (strcmp(optarg, "64") == 0) o->mc.entry = BH_LINUX_ENTRY_64BIT;
            else return usage(), -1;
            break;
        case 'v': o->verbose = true; break;
        case 's': o->stdin_after = optarg; break;
        case 'M': o->marker = optarg; break;
        case O_DISK: if (parse_disk(o, optarg)) return usage(), -1; break;
        case O_HVC: o->mc.virtio_console = true; break;
        case O_RNG: o->mc.rng = true; break;
        case O_VSOCK_UDS: o->mc.vsock = true, o->mc.vsock_uds = optarg; break;
        case O_VSOCK_CID: o->mc.vsock_cid = strtoull(optarg, NULL, 0); break;
        case O_KEEP: o->mc.keep_running_on_device_failure = true; break;
        default: return usage(), -1;
        }
    }
    if (!o->mc.kernel_path || optind != argc || o->mc.memory_bytes == 0 || o->mc.vcpus == 0)
        return usage(), -1;
    return 0;
}

/* ------------------------------------------------------------------------------------------ */
/* Console and events                                                                           */

/* With S.lock held: track the current console line for --marker and --stdin-after. */
static void console_line_byte(uint8_t b)
{
    if (b != '\n' && b != '\r' && S.line_len < sizeof S.line - 1)
        S.line[S.line_len++] = (char)b;
    S.line[S.line_len] = 0;
    if (S.stdin_after && strstr(S.line, S.stdin_after))
        S.stdin_after = NULL;
    if (b == '\n') {
        if (S.marker && strstr(S.line, S.marker)) {
            fprintf(stderr, "bh-boot: marker \"%s\" after %.2f s\n", S.marker, now_s() - S.start);
            S.marker = NULL;
        }
        S.line_len = 0;
    }
}

static void on_console(void *opaque, bh_console_source source, const uint8_t *data, size_t len)
{
    (void)opaque, (void)source;
    pthread_mutex_lock(&S.lock);
    fwrite(data, 1, len, stdout);
    for (size_t i = 0; i < len; i++)
        console_line_byte(data[i]);
    if (memchr(data, '\n', len))
        fflush(stdout);
    pthread_mutex_unlock(&S.lock);
}

static void on_event(void *opaque, const bh_machine_event *e)
{
    (void)opaque;
    if (e->kind == BH_MACHINE_EVENT_BOOT_MARKER)
        fprintf(stderr, "bh-boot: boot marker %u from the guest %.3f s after VM creation\n", e->marker,
                (double)e->ns_since_create / 1e9);
    else if (e->kind == BH_MACHINE_EVENT_DEVICE_BROKEN)
        fprintf(stderr, "bh-boot: device %s broken: %s\n", e->device, e->reason);
}

static bool input_allowed(void)
{
    pthread_mutex_lock(&S.lock);
    bool ok = S.stdin_after == NULL;
    pthread_mutex_unlock(&S.lock);
    return ok;
}

static bool input_stopping(int wait_ms)
{
    struct pollfd p = {.fd = S.input_stop_fd, .events = POLLIN};
    return poll(&p, 1, wait_ms) > 0;
}

/* Feeds stdin to the guest until EOF or until the machine is about to be destroyed: it is joined
 * before bh_machine_destroy, because the console it writes to is freed with the machine. */
static void *console_input_thread(void *arg)
{
    (void)arg;
    uint8_t buf[256];
    while (!input_allowed())
        if (input_stopping(50))
            return NULL;
    for (;;) {
        struct pollfd p[2] = {{.fd = STDIN_FILENO, .events = POLLIN}, {.fd = S.input_stop_fd, .events = POLLIN}};
        if (poll(p, 2, -1) < 0 && errno != EINTR)
            return NULL;
        if (p[1].revents)
            return NULL;
        if (!p[0].revents)
            continue;
        ssize_t n = read(STDIN_FILENO, buf, sizeof buf);
        if (n <= 0)
            return NULL;
        size_t done = 0;
        while (done < (size_t)n) {
            done += bh_machine_console_input(S.machine, BH_CONSOLE_DEFAULT, buf + done, (size_t)n - done);
            if (done < (size_t)n && input_stopping(10))
                return NULL; /* the guest has not drained its queue yet; unless we are leaving */
        }
    }
}

static void print_tail(void)
{
    char tail[TAIL_BYTES + 1];
    size_t n = bh_machine_console_tail(S.machine, (uint8_t *)tail, TAIL_BYTES);
    tail[n] = 0;
    const char *start = tail + n;
    int lines = 0;
    while (start > tail && lines <= TAIL_LINES)
        if (*--start == '\n')
            lines++;
    if (*start == '\n')
        start++;
    fprintf(stderr, "bh-boot: last console lines:\n%s%s", start, n && tail[n - 1] != '\n' ? "\n" : "");
}

/* ------------------------------------------------------------------------------------------ */

static int report(const bh_machine_exit *x, bool timed_out, double secs)
{
    const char *word;
    const char *detail = strchr(x->message, ':') ? strchr(x->message, ':') + 2 : x->message;
    int status;
    switch (timed_out ? BH_MACHINE_STOPPED : x->end) {
    case BH_MACHINE_POWER_OFF: word = "power-off", status = EXIT_POWEROFF; break;
    case BH_MACHINE_REBOOT:
        word = "reset", status = EXIT_RESET;
        if (x->cause.detail[0] == BH_GUEST_REQUEST_RESET_LINE)
            detail = "i8042 reset line";
        break;
    case BH_MACHINE_TRIPLE_FAULT: word = "shutdown", status = EXIT_SHUTDOWN; break;
    case BH_MACHINE_PANIC: word = "crash", detail = "kernel panic", status = EXIT_CRASH; break;
    case BH_MACHINE_DEVICE_FAILURE: word = "device-failure", status = EXIT_DEVICE_FAILURE; break;
    case BH_MACHINE_STOPPED:
        word = timed_out ? "timeout" : "stopped", status = timed_out ? EXIT_TIMEOUT : EXIT_CRASH;
        detail = timed_out ? NULL : detail;
        break;
    default: word = "crash", status = EXIT_CRASH; break;
    }
    fflush(stdout);
    if (x->end == BH_MACHINE_TRIPLE_FAULT)
        fprintf(stderr, "bh-boot: VM ended: shutdown: triple fault on vCPU %u (%s) after %.2f s\n", x->cause.vcpu,
                x->cause.message, secs);
    else
        fprintf(stderr, "bh-boot: VM ended: %s%s%s after %.2f s\n", word, detail ? ": " : "", detail ? detail : "", secs);
    if (status == EXIT_CRASH || status == EXIT_SHUTDOWN || status == EXIT_TIMEOUT || status == EXIT_DEVICE_FAILURE)
        print_tail();
    return status;
}

static int run(options *o)
{
    bh_error e = {0};
    bh_kvm *kvm = NULL;
    int status = EXIT_USAGE;
    pthread_t input;
    bool input_running = false;
    S.start = now_s();
    if (bh_kvm_open(NULL, &kvm, &e) != 0) {
        fprintf(stderr, "bh-boot: %s\n", e.message);
        return EXIT_USAGE;
    }
    o->mc.on_console = on_console;
    o->mc.on_event = on_event;
    if (bh_machine_create(kvm, &o->mc, &S.machine, &e) != 0) {
        fprintf(stderr, "bh-boot: %s\n", e.message);
        bh_kvm_close(kvm);
        return EXIT_USAGE;
    }
    if (o->verbose)
        fprintf(stderr, "bh-boot: machine built in %.1f ms\n", (now_s() - S.start) * 1000);
    S.stdin_after = o->stdin_after;
    S.marker = o->marker;
    S.input_stop_fd = eventfd(0, EFD_CLOEXEC);
    if (S.input_stop_fd >= 0 && pthread_create(&input, NULL, console_input_thread, NULL) == 0)
        input_running = true;
    if (bh_machine_start(S.machine, &e) != 0) {
        fprintf(stderr, "bh-boot: %s\n", e.message);
        goto out;
    }
    bh_machine_exit x;
    bool timed_out = bh_machine_wait(S.machine, o->timeout_ms ? (int64_t)o->timeout_ms : -1, &x, NULL) == BH_E_TIMEOUT;
    if (timed_out) {
        bh_vm *vm = bh_machine_vm(S.machine);
        if (o->verbose && bh_vm_pause(vm, NULL) == 0) { /* where the guest was, for a hung one */
            for (uint32_t i = 0; i < bh_vm_vcpu_count(vm); i++) {
                bh_regs r;
                if (bh_vcpu_get_regs(vm, i, &r, NULL) == 0)
                    fprintf(stderr, "bh-boot: vCPU %u at rip 0x%llx rflags 0x%llx\n", i, (unsigned long long)r.rip,
                            (unsigned long long)r.rflags);
            }
        }
        bh_machine_stop(S.machine, NULL);
        bh_machine_wait(S.machine, -1, &x, NULL);
    }
    bh_machine_stop(S.machine, NULL); /* joins the threads: the last console bytes are out */
    if (o->verbose) {
        bh_machine_stats st;
        bh_machine_get_stats(S.machine, &st);
        fprintf(stderr, "bh-boot: %llu exits (%llu MMIO), vCPU time %.2f s, I/O thread %.2f s\n",
                (unsigned long long)st.vm.exits, (unsigned long long)st.vm.mmio_exits, (double)st.vcpu_cpu_ns / 1e9,
                (double)st.io_cpu_ns / 1e9);
        const struct { const char *name; const bh_virtio_stats *s; } devs[] = {
            {"vda", &st.disks[0]}, {"vdb", &st.disks[1]}, {"hvc0", &st.console}, {"rng", &st.rng}, {"vsock", &st.vsock}};
        for (size_t i = 0; i < sizeof devs / sizeof devs[0]; i++)
            if (devs[i].s->notifications || devs[i].s->requests)
                fprintf(stderr, "bh-boot:   %s: %llu kicks, %llu requests, %llu interrupts, %llu bytes in, %llu out%s\n",
                        devs[i].name, (unsigned long long)devs[i].s->notifications,
                        (unsigned long long)devs[i].s->requests, (unsigned long long)devs[i].s->interrupts,
                        (unsigned long long)devs[i].s->bytes_in, (unsigned long long)devs[i].s->bytes_out,
                        devs[i].s->broken ? " (broken)" : "");
    }
    status = report(&x, timed_out, now_s() - S.start);
out:
    /* The console is freed with the machine: the input thread must be gone first. */
    if (input_running) {
        uint64_t one = 1;
        if (write(S.input_stop_fd, &one, sizeof one) != sizeof one)
            perror("bh-boot: stopping the input thread");
        pthread_join(input, NULL);
    }
    if (S.input_stop_fd >= 0)
        close(S.input_stop_fd);
    bh_machine_destroy(S.machine);
    bh_kvm_close(kvm);
    return status;
}

int main(int argc, char **argv)
{
    options o;
    if (parse_options(argc, argv, &o) != 0)
        return EXIT_USAGE;
    int status = run(&o);
    fflush(stdout);
    return status;
}
