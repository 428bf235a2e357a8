/*
 * The benchmark workload: one static program, run unchanged on bare metal, in containers and in zones.
 *
 * usage: workload TEST=ITERATIONS [TEST=ITERATIONS ...]
 *
 * Runs the named tests in the order given and prints one JSON object per test on stdout, e.g.
 *   {"test":"sys_getppid","iterations":100000,"elapsed_ns":17712345,"value":177.1,"check":0}
 * `value` is the per-test figure (its unit is defined by the harness catalog, src/bench/workload.ts);
 * `check` is derived from the computed data so the compiler cannot drop the work.
 * Iteration counts come from the harness so slow runners (gVisor ptrace: ~30 µs per syscall) can be
 * given fewer of them; sizes (buffers, mappings) are fixed so caches see the same footprint everywhere.
 *
 * Build: gcc -static -O2 -o workload workload.c   (static: the container images are FROM scratch)
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define MIB (1024UL * 1024UL)
#define PAGE 4096UL

static uint64_t now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

static void die(const char *what) {
  fprintf(stderr, "workload: %s: %s\n", what, strerror(errno));
  exit(1);
}

static void *alloc_touched(size_t bytes) {
  void *p = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED) die("mmap");
  memset(p, 1, bytes); /* fault everything in before timing */
  return p;
}

static uint64_t xorshift(uint64_t *s) {
  uint64_t x = *s;
  x ^= x << 13;
  x ^= x >> 7;
  x ^= x << 17;
  return *s = x;
}

/* Each test returns its figure; *check receives a value that depends on the work done. */


/* ---- CPU ---- */

/* Integer ALU: shifts, xors, a multiply and a division per iteration. Figure: ns per iteration. */
static double cpu_int(uint64_t n, uint64_t *elapsed, uint64_t *check) {
  uint64_t s = 88172645463325252ULL, acc = 0;
  uint64_t t0 = now_ns();
  for (uint64_t i = 0; i < n; i++) acc += (xorshift(&s) * 0x9E3779B97F4A7C15ULL) % 1000003ULL;
  *elapsed = now_ns() - t0;
  *check = acc;
  return (double)*elapsed / (double)n;
}

/* Floating point: a dependent multiply-add chain plus a square root. Figure: ns per iteration. */
static double cpu_float(uint64_t n, uint64_t *elapsed, uint64_t *check) {
  volatile double seed = 1.0;
  double x = seed, y = 0.0;
  uint64_t t0 = now_ns();
  for (uint64_t i = 0; i < n; i++) {
    x = x * 1.0000001 + 0.0000001;
    y += sqrt(x);
  }
  *elapsed = now_ns() - t0;
  *check = (uint64_t)y;
  return (double)*elapsed / (double)n;
}

/* Hashing: FNV-1a 64 over a 1 MiB buffer, `n` passes. Figure: MiB/s. */
static double cpu_hash(uint64_t n, uint64_t *elapsed, uint64_t *check) {
  const size_t len = 1 * MIB;
  unsigned char *buf = alloc_touched(len);
  uint64_t s = 1;
  for (size_t i = 0; i < len; i++) buf[i] = (unsigned char)xorshift(&s);
  uint64_t h = 1469598103934665603ULL;
  uint64_t t0 = now_ns();
  for (uint64_t pass = 0; pass < n; pass++)
    for (size_t i = 0; i < len; i++) h = (h ^ buf[i]) * 1099511628211ULL;
  *elapsed = now_ns() - t0;
  *check = h;
  munmap(buf, len);
  return ((double)n * (double)len / (double)MIB) / ((double)*elapsed / 1e9);
}

/* ---- memory ---- */

/* memcpy between two 64 MiB buffers (well beyond the caches), `n` copies. Figure: GiB/s. */
static double mem_memcpy(uint64_t n, uint64_t *elapsed, uint64_t *check) {
  const size_t len = 64 * MIB;
  unsigned char *a = alloc_touched(len), *b = alloc_touched(len);
  uint64_t t0 = now_ns();
  for (uint64_t i = 0; i < n; i++) {
    a[i % len] = (unsigned char)i; /* makes each copy observable */
    memcpy(b, a, len);
  }
  *elapsed = now_ns() - t0;
  *check = b[(n - 1) % len];
  munmap(a, len);
  munmap(b, len);
  return ((double)n * (double)len / (double)(1024 * MIB)) / ((double)*elapsed / 1e9);
}

/* Random-access latency: chase a single random cycle through 1 Mi cache-line nodes (64 MiB).
 * Each step depends on the previous load, so the figure (ns per step) is the load latency. */
struct node {
  struct node *next;
  char pad[56];
};

static double mem_chase(uint64_t n, uint64_t *elapsed, uint64_t *check) {
  const size_t count = 1024 * 1024;
  struct node *nodes = alloc_touched(count * sizeof(struct node));
  uint32_t *order = malloc(count * sizeof(uint32_t));
  if (!order) die("malloc");
  for (size_t i = 0; i < count; i++) order[i] = (uint32_t)i;
  uint64_t s = 2463534242ULL;
  for (size_t i = count - 1; i > 0; i--) { /* Sattolo: one cycle through every node */
    size_t j = xorshift(&s) % i;
    uint32_t t = order[i];
    order[i] = order[j];
    order[j] = t;
  }
  for (size_t i = 0; i < count; i++) nodes[order[i]].next = &nodes[order[(i + 1) % count]];
  free(order);
  struct node *p = &nodes[0];
  uint64_t t0 = now_ns();
  for (uint64_t i = 0; i < n; i++) p = p->next;
  *elapsed = now_ns() - t0;
  *check = (uint64_t)(p - nodes);
  munmap(nodes, count * sizeof(struct node));
  return (double)*elapsed / (double)n;
}

/* Page faults: map 16 MiB of fresh anonymous memory, write one byte per page, unmap; `n` rounds.
 * Figure: ns per page (fault + zeroing, with the mmap/munmap cost spread over the pages). */
static double mem_pagefault(uint64_t n, uint64_t *elapsed, uint64_t *check) {
  const size_t len = 16 * MIB;
  uint64_t sum = 0;
  uint64_t t0 = now_ns();
  for (uint64_t r = 0; r < n; r++) {
    volatile unsigned char *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) die("mmap");
    for (size_t off = 0; off < len; off += PAGE) p[off] = 1;
    sum += p[len - PAGE];
    munmap((void *)p, len);
  }
  *elapsed = now_ns() - t0;
  *check = sum;
  return (double)*elapsed / ((double)n * (double)(len / PAGE));
}

/* ---- syscalls ---- */

/* The cheapest real syscall (raw, so no libc caching). Figure: ns per call. */
static double sys_getppid(uint64_t n, uint64_t *elapsed, uint64_t *check) {
  uint64_t sum = 0;
  uint64_t t0 = now_ns();
  for (uint64_t i = 0; i < n; i++) sum += (uint64_t)syscall(SYS_getppid);
  *elapsed = now_ns() - t0;
  *check = sum;
  return (double)*elapsed / (double)n;
}

/* A 1-byte read of /dev/zero: syscall plus a trip through the VFS and a copy-out. ns per read. */
static double sys_read(uint64_t n, uint64_t *elapsed, uint64_t *check) {
  int fd = open("/dev/zero", O_RDONLY);
  if (fd < 0) die("open /dev/zero");
  char c = 1;
  uint64_t sum = 0;
  uint64_t t0 = now_ns();
  for (uint64_t i = 0; i < n; i++) {
    if (read(fd, &c, 1) != 1) die("read /dev/zero");
    sum += (unsigned char)c;
  }
  *elapsed = now_ns() - t0;
  close(fd);
  *check = sum;
  return (double)*elapsed / (double)n;
}

/* open + close of /dev/null: path lookup and file-table work. ns per pair. */
static double sys_openclose(uint64_t n, uint64_t *elapsed, uint64_t *check) {
  uint64_t sum = 0;
  uint64_t t0 = now_ns();
  for (uint64_t i = 0; i < n; i++) {
    int fd = open("/dev/null", O_RDONLY);
    if (fd < 0) die("open /dev/null");
    sum += (uint64_t)fd;
    close(fd);
  }
  *elapsed = now_ns() - t0;
  *check = sum;
  return (double)*elapsed / (double)n;
}

/* Two processes pass one byte back and forth over two pipes: wake-ups and context switches.
 * Figure: ns per round trip. */
static double sys_pipe(uint64_t n, uint64_t *elapsed, uint64_t *check) {
  int to_child[2], to_parent[2];
  if (pipe(to_child) || pipe(to_parent)) die("pipe");
  pid_t pid = fork();
  if (pid < 0) die("fork");
  char c = 0;
  if (pid == 0) {
    for (uint64_t i = 0; i < n; i++) {
      if (read(to_child[0], &c, 1) != 1) _exit(1);
      c++;
      if (write(to_parent[1], &c, 1) != 1) _exit(1);
    }
    _exit(0);
  }
  uint64_t sum = 0;
  uint64_t t0 = now_ns();
  for (uint64_t i = 0; i < n; i++) {
    c = (char)i;
    if (write(to_child[1], &c, 1) != 1) die("write pipe");
    if (read(to_parent[0], &c, 1) != 1) die("read pipe");
    sum += (unsigned char)c;
  }
  *elapsed = now_ns() - t0;
  int status;
  waitpid(pid, &status, 0);
  close(to_child[0]), close(to_child[1]), close(to_parent[0]), close(to_parent[1]);
  *check = sum;
  return (double)*elapsed / (double)n;
}

/* fork, the child exits at once, the parent waits. Figure: µs per fork + exit + wait. */
static double sys_fork(uint64_t n, uint64_t *elapsed, uint64_t *check) {
  uint64_t sum = 0;
  uint64_t t0 = now_ns();
  for (uint64_t i = 0; i < n; i++) {
    pid_t pid = fork();
    if (pid < 0) die("fork");
    if (pid == 0) _exit(0);
    int status;
    if (waitpid(pid, &status, 0) != pid) die("waitpid");
    sum += (uint64_t)WEXITSTATUS(status);
  }
  *elapsed = now_ns() - t0;
  *check = sum;
  return (double)*elapsed / (double)n / 1000.0;
}

static const struct {
  const char *name;
  double (*fn)(uint64_t, uint64_t *, uint64_t *);
} tests[] = {
    {"cpu_int", cpu_int},           {"cpu_float", cpu_float},     {"cpu_hash", cpu_hash},
    {"mem_memcpy", mem_memcpy},     {"mem_chase", mem_chase},     {"mem_pagefault", mem_pagefault},
    {"sys_getppid", sys_getppid},   {"sys_read", sys_read},       {"sys_openclose", sys_openclose},
    {"sys_pipe", sys_pipe},         {"sys_fork", sys_fork},
};
#define NTESTS (sizeof(tests) / sizeof(tests[0]))

static void usage(void) {
  fprintf(stderr, "usage: workload TEST=ITERATIONS [TEST=ITERATIONS ...]\ntests:");
  for (size_t i = 0; i < NTESTS; i++) fprintf(stderr, " %s", tests[i].name);
  fprintf(stderr, "\n");
  exit(2);
}

int main(int argc, char **argv) {
  if (argc < 2) usage();
  for (int a = 1; a < argc; a++) {
    const char *eq = strchr(argv[a], '=');
    if (!eq) usage();
    size_t name_len = (size_t)(eq - argv[a]);
    char *end;
    errno = 0;
    unsigned long long n = strtoull(eq + 1, &end, 10);
    if (errno || *end || n == 0) usage();
    size_t t = 0;
    while (t < NTESTS && !(strlen(tests[t].name) == name_len && !strncmp(tests[t].name, argv[a], name_len))) t++;
    if (t == NTESTS) usage();
    uint64_t elapsed = 0, check = 0;
    double value = tests[t].fn((uint64_t)n, &elapsed, &check);
    printf("{\"test\":\"%s\",\"iterations\":%llu,\"elapsed_ns\":%llu,\"value\":%.6g,\"check\":%llu}\n",
           tests[t].name, n, (unsigned long long)elapsed, value, (unsigned long long)check);
    fflush(stdout);
  }
  return 0;
}
