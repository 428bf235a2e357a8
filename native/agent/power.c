/*
 * power.c — readiness and the end of the zone, through bulkhead's paravirtual power device
 * (issue 8: one MMIO page at 0xD0000000; magic "BHPW" at 0x0, version 1 at 0x4, a 32-bit command
 * at 0x8: 0x01 power off, 0x02 reboot, 0x03 | n << 8 boot-time marker n), reached through /dev/mem.
 *
 * agent_announce_started() writes marker 2 as soon as /dev is there (the kernel's boot is over and
 * the agent runs), agent_announce_ready() marker 1 once the vsock listener is up (and says so on
 * the console): the host splits a zone's start-up at them. agent_power_off() and agent_reboot() write their command. Where there is no such
 * device (QEMU, another VMM: the magic does not read back) they fall back to reboot(2). In --test
 * mode nothing touches /dev/mem and power-off or reboot end the process instead.
 */
#include "agent.h"

#include <fcntl.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <sys/mman.h>
#include <sys/reboot.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

#define GRACE_MS 5000 /* after the main process exits: time to deliver what is queued */
#define TICK_MS 20

#define POWER_BASE 0xD0000000UL
#define POWER_SIZE 0x1000UL
#define POWER_MAGIC 0x57504842u /* "BHPW" in memory order */
#define POWER_VERSION 1u
#define POWER_REG_MAGIC 0     /* u32 index of offset 0x0 */
#define POWER_REG_VERSION 1   /* 0x4 */
#define POWER_REG_COMMAND 2   /* 0x8 */
#define POWER_CMD_POWER_OFF 0x01u
#define POWER_CMD_REBOOT 0x02u
#define POWER_CMD_MARKER 0x03u
#define MARKER_AGENT_READY 1u
#define MARKER_AGENT_STARTED 2u

/* The device's registers, or NULL when this VM has none (probed once). */
static volatile uint32_t *power_device(void)
{
    static bool probed;
    static volatile uint32_t *regs;
    if (probed) return regs;
    probed = true;
    if (ag_cfg.test_mode) return NULL;
    int fd = open("/dev/mem", O_RDWR | O_SYNC | O_CLOEXEC);
    if (fd < 0) return NULL;
    void *p = mmap(NULL, POWER_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, (off_t)POWER_BASE);
    close(fd);
    if (p == MAP_FAILED) return NULL;
    volatile uint32_t *r = p;
    if (r[POWER_REG_MAGIC] != POWER_MAGIC || r[POWER_REG_VERSION] != POWER_VERSION) {
        munmap(p, POWER_SIZE);
        return NULL;
    }
    regs = r;
    return regs;
}

static bool power_command(uint32_t command)
{
    volatile uint32_t *r = power_device();
    if (!r) return false;
    r[POWER_REG_COMMAND] = command;
    return true;
}

void agent_announce_started(void)
{
    power_command(POWER_CMD_MARKER | (MARKER_AGENT_STARTED << 8));
}

void agent_announce_ready(void)
{
    bool marked = power_command(POWER_CMD_MARKER | (MARKER_AGENT_READY << 8));
    ag_log("ready: protocol %d, %s%s", AG_PROTOCOL_VERSION, AG_VERSION_STRING,
           marked ? ", boot marker 1 written to the power device" : "");
}

static void __attribute__((noreturn)) end_machine(int how, const char *what)
{
    procs_kill_all();
    sessions_flush_now();
    if (ag_cfg.test_mode) {
        ag_log("%s (test mode: the agent exits)", what);
        exit(0);
    }
    ag_log("%s", what);
    sync();
    /* The device stops the VM on the write; if it did not (or there is none), reboot(2). */
    power_command(how == RB_POWER_OFF ? POWER_CMD_POWER_OFF : POWER_CMD_REBOOT);
    reboot(how);
    for (;;) pause(); /* reboot(2) returned: nothing more PID 1 can do */
}

void agent_power_off(void) { end_machine(RB_POWER_OFF, "power off"); }

void agent_reboot(void) { end_machine(RB_AUTOBOOT, "reboot"); }

static ag_watch timer_w = {.fd = -1};
static int timer_fd = -1;
static bool want_reboot, asked; /* asked: a SHUTDOWN request, which need not wait for main */
static struct timespec deadline;

static void power_soon(void);

static bool past_deadline(void)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return now.tv_sec > deadline.tv_sec || (now.tv_sec == deadline.tv_sec && now.tv_nsec >= deadline.tv_nsec);
}

static void on_tick(ag_watch *w, uint32_t events)
{
    (void)events;
    uint64_t ticks;
    if (read(w->fd, &ticks, sizeof ticks) < 0) { /* spurious */ }
    /* Wait until the main process's last output and END are out, or the grace time is over. */
    if (((asked || main_finished()) && sessions_flushed()) || past_deadline()) {
        if (want_reboot) agent_reboot();
        agent_power_off();
    }
}

void power_reboot_soon(bool reboot)
{
    want_reboot = want_reboot || reboot;
    asked = true;
    power_soon();
}

static void power_soon(void)
{
    if (timer_fd >= 0) return;
    clock_gettime(CLOCK_MONOTONIC, &deadline);
    deadline.tv_sec += GRACE_MS / 1000;
    timer_fd = timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC | TFD_NONBLOCK);
    if (timer_fd < 0) {
        if (want_reboot) agent_reboot();
        agent_power_off();
    }
    struct itimerspec its = {{0, TICK_MS * 1000000L}, {0, TICK_MS * 1000000L}};
    timerfd_settime(timer_fd, 0, &its, NULL);
    loop_add(&timer_w, timer_fd, EPOLLIN, on_tick, NULL);
}

void power_off_soon(void) { power_soon(); }
