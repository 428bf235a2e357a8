/*
 * kvm-floor — the exit round trip with no VMM around it: one thread, raw KVM_RUN, nothing but a
 * counter per KVM_EXIT_IO. It runs the same multiboot image with the same entry state as our driver,
 * so (t(N2) - t(N1)) / (N2 - N1) is the hypervisor's own floor for this exit, against which both
 * VMMs' figures can be read. Compiled at run time by src/bench/vmm (cc -O2 kvm-floor.c).
 *
 *   kvm-floor IMAGE N1 N2   ->   {"n1":..,"n2":..,"ns1":..,"ns2":..}   (one VM per N)
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/kvm.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#define MEM_SIZE (16u << 20)
#define DONE_PORT 0xf4
#define COUNT_OFFSET 0x24

static void die(const char *what)
{
    fprintf(stderr, "kvm-floor: %s: %s\n", what, strerror(errno));
    exit(1);
}

static double now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

/* One VM running the image with the loop count patched to n; returns KVM_RUN loop time, ns. */
static double run_once(int kvm, const uint8_t *image, size_t len, uint32_t n)
{
    uint32_t magic, flags, header_addr, load_addr, entry;
    memcpy(&magic, image, 4);
    memcpy(&flags, image + 4, 4);
    memcpy(&header_addr, image + 12, 4);
    memcpy(&load_addr, image + 16, 4);
    memcpy(&entry, image + 28, 4);
    if (magic != 0x1BADB002 || !(flags & 0x10000) || header_addr != load_addr || load_addr + len > MEM_SIZE) {
        fprintf(stderr, "kvm-floor: not the flat multiboot image expected\n");
        exit(1);
    }
    int vm = ioctl(kvm, KVM_CREATE_VM, 0);
    if (vm < 0) die("KVM_CREATE_VM");
    uint8_t *mem = mmap(NULL, MEM_SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (mem == MAP_FAILED) die("mmap");
    memcpy(mem + load_addr, image, len);
    memcpy(mem + load_addr + COUNT_OFFSET, &n, 4);
    struct kvm_userspace_memory_region region = {.slot = 0, .guest_phys_addr = 0, .memory_size = MEM_SIZE,
                                                  .userspace_addr = (uintptr_t)mem};
    if (ioctl(vm, KVM_SET_USER_MEMORY_REGION, &region) < 0) die("KVM_SET_USER_MEMORY_REGION");
    int vcpu = ioctl(vm, KVM_CREATE_VCPU, 0);
    if (vcpu < 0) die("KVM_CREATE_VCPU");
    /* PVM refuses to run a vCPU without KVM_SET_CPUID2 (see host-facts); hardware KVM wants it too. */
    struct { struct kvm_cpuid2 c; struct kvm_cpuid_entry2 e[256]; } cpuid = {.c.nent = 256};
    if (ioctl(kvm, KVM_GET_SUPPORTED_CPUID, &cpuid) < 0) die("KVM_GET_SUPPORTED_CPUID");
    if (ioctl(vcpu, KVM_SET_CPUID2, &cpuid) < 0) die("KVM_SET_CPUID2");
    int run_size = ioctl(kvm, KVM_GET_VCPU_MMAP_SIZE, 0);
    struct kvm_run *run = mmap(NULL, (size_t)run_size, PROT_READ | PROT_WRITE, MAP_SHARED, vcpu, 0);
    if (run == MAP_FAILED) die("mmap kvm_run");

    /* The multiboot entry state, as our driver sets it (src/bench/vmm/ours.ts). */
    struct kvm_sregs s;
    if (ioctl(vcpu, KVM_GET_SREGS, &s) < 0) die("KVM_GET_SREGS");
    struct kvm_segment flat = {.base = 0, .limit = 0xffffffff, .present = 1, .dpl = 0, .db = 1, .s = 1, .l = 0, .g = 1};
    s.cs = flat;
    s.cs.selector = 0x08;
    s.cs.type = 11;
    flat.selector = 0x10;
    flat.type = 3;
    s.ds = s.es = s.fs = s.gs = s.ss = flat;
    s.idt.base = 0;
    s.idt.limit = 0x3ff;
    s.cr0 = 0x11;
    s.cr3 = s.cr4 = s.efer = 0;
    if (ioctl(vcpu, KVM_SET_SREGS, &s) < 0) die("KVM_SET_SREGS");
    struct kvm_regs r = {.rip = entry, .rax = 0x2BADB002, .rbx = 0x9000, .rflags = 0x2};
    if (ioctl(vcpu, KVM_SET_REGS, &r) < 0) die("KVM_SET_REGS");

    uint64_t io = 0;
    double t0 = now_ns();
    for (;;) {
        if (ioctl(vcpu, KVM_RUN, 0) < 0) {
            if (errno == EINTR || errno == EAGAIN)
                continue;
            die("KVM_RUN");
        }
        if (run->exit_reason != KVM_EXIT_IO) {
            fprintf(stderr, "kvm-floor: unexpected exit %u\n", run->exit_reason);
            exit(1);
        }
        if (run->io.port == DONE_PORT)
            break;
        io++;
    }
    double t1 = now_ns();
    if (io != n) {
        fprintf(stderr, "kvm-floor: %llu port exits, expected %u\n", (unsigned long long)io, n);
        exit(1);
    }
    munmap(run, (size_t)run_size);
    close(vcpu);
    close(vm);
    munmap(mem, MEM_SIZE);
    return t1 - t0;
}

int main(int argc, char **argv)
{
    if (argc != 4) {
        fprintf(stderr, "usage: kvm-floor IMAGE N1 N2\n");
        return 1;
    }
    FILE *f = fopen(argv[1], "rb");
    if (!f) die(argv[1]);
    static uint8_t image[1 << 16];
    size_t len = fread(image, 1, sizeof image, f);
    fclose(f);
    uint32_t n1 = (uint32_t)strtoul(argv[2], NULL, 0), n2 = (uint32_t)strtoul(argv[3], NULL, 0);
    int kvm = open("/dev/kvm", O_RDWR | O_CLOEXEC);
    if (kvm < 0) die("/dev/kvm");
    double ns1 = run_once(kvm, image, len, n1);
    double ns2 = run_once(kvm, image, len, n2);
    printf("{\"n1\":%u,\"n2\":%u,\"ns1\":%.0f,\"ns2\":%.0f}\n", n1, n2, ns1, ns2);
    return 0;
}
