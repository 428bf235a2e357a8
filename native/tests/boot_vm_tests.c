/*
 * boot_vm_tests.c — the loader and devices on the real /dev/kvm (PVM here). Each test boots a
 * synthetic kernel whose entry is a few instructions (boot_guests.S): the guest checks what only
 * it can (segments load from our GDT, the identity map reaches the initrd and command line) and
 * the host checks the rest with bh_mem_read and the vCPU ioctls once the guest has stopped.
 */
#define _GNU_SOURCE
#include <linux/kvm.h>
#include <pthread.h>
#include <stdlib.h>
#include <sys/ioctl.h>
#include <time.h>
#include <unistd.h>

#include "boot/boot_internal.h"
#include "boot/layout.h"
#include "boot_images.h"
#include "tap.h"
#include "boot_tests.h"

#define MIB (1ULL << 20)
#define MAX_CAPTURE 16

typedef struct rig {
    bh_kvm *kvm;
    bh_vm *vm;
    bh_debug_exit *dbg;
    pthread_mutex_t lock;
    uint32_t captured[MAX_CAPTURE];
    int ncaptured;
    bh_vcpu_exit first_exit;
    bool have_exit;
    char output[256];
    size_t output_len;
} rig;

static bh_io_result capture_io(void *opaque, bh_io_access *a)
{
    rig *r = opaque;
    if (a->is_write) {
        uint32_t v = 0;
        memcpy(&v, a->data, a->size < 4 ? a->size : 4);
        pthread_mutex_lock(&r->lock);
        if (r->ncaptured < MAX_CAPTURE)
            r->captured[r->ncaptured++] = v;
        pthread_mutex_unlock(&r->lock);
    }
    return BH_IO_DONE;
}

static void rig_on_exit(void *opaque, const bh_vcpu_exit *x)
{
    rig *r = opaque;
    pthread_mutex_lock(&r->lock);
    if (!r->have_exit && x->reason != BH_EXIT_STOPPED) {
        r->first_exit = *x;
        r->have_exit = true;
    }
    pthread_mutex_unlock(&r->lock);
}

/* A VM with the capture and debug-exit ports; NULL (test skipped) without /dev/kvm. */
static bool rig_open(rig *r, uint64_t mem, uint32_t vcpus)
{
    bh_error e = {0};
    memset(r, 0, sizeof *r);
    pthread_mutex_init(&r->lock, NULL);
    if (bh_kvm_open(NULL, &r->kvm, &e) != 0) {
        tap_skip("no usable /dev/kvm: %s", e.message);
        return false;
    }
    bh_vm_config c = {.memory_bytes = mem, .vcpus = vcpus, .irqchip = true, .on_exit = rig_on_exit,
                      .opaque = r};
    if (bh_vm_create(r->kvm, &c, &r->vm, &e) || bh_debug_exit_create(r->vm, BI_DEBUG_EXIT_PORT,
                                                                     &r->dbg, &e) ||
        bh_vm_register_pio(r->vm, BI_CAPTURE_PORT, 4, capture_io, r, &e)) {
        tap_diag("rig: %s", e.message);
        tap_failures++;
        return false;
    }
    return true;
}

static void rig_close(rig *r)
{
    if (r->vm)
        bh_vm_destroy(r->vm); /* and the devices it owns */
    if (r->kvm)
        bh_kvm_close(r->kvm);
    pthread_mutex_destroy(&r->lock);
}

static bool rig_run(rig *r, int timeout_ms)
{
    bh_error e = {0};
    if (bh_vm_start(r->vm, &e) != 0) {
        tap_diag("start: %s", e.message);
        return false;
    }
    for (int waited = 0; bh_vm_get_state(r->vm) != BH_VM_STOPPED; waited += 5) {
        if (waited >= timeout_ms) {
            tap_diag("the guest did not stop within %d ms", timeout_ms);
            bh_vm_stop(r->vm, NULL);
            return false;
        }
        usleep(5000);
    }
    bh_vm_stop(r->vm, NULL);
    return true;
}

static uint64_t rd64(bh_vm *vm, uint64_t gpa)
{
    uint64_t v = 0;
    bh_mem_read(vm, gpa, &v, 8, NULL);
    return v;
}
static uint32_t rd32(bh_vm *vm, uint64_t gpa) { return (uint32_t)rd64(vm, gpa); }
static uint16_t rd16(bh_vm *vm, uint64_t gpa) { return (uint16_t)rd64(vm, gpa); }
static uint8_t rd8(bh_vm *vm, uint64_t gpa) { return (uint8_t)rd64(vm, gpa); }

static uint8_t initrd_bytes[8192];
static const char *test_cmdline = "console=ttyS0 bh.test=1";

static void fill_ram(bh_vm *vm, uint8_t byte, uint64_t from, uint64_t len)
{
    uint8_t *p = bh_mem_ptr(vm, from, len);
    if (p)
        memset(p, byte, len);
}

static void check_zero_page(bh_vm *vm, const bh_boot_info *info)
{
    uint64_t zp = BH_BOOT_ZERO_PAGE_ADDR;
    CHECK_EQ_U64(rd16(vm, zp + 0x1fe), 0xAA55);
    CHECK_EQ_U64(rd32(vm, zp + 0x202), 0x53726448); /* "HdrS" */
    CHECK_EQ_U64(rd8(vm, zp + 0x210), 0xff);        /* type_of_loader */
    CHECK(rd8(vm, zp + 0x211) & 1);       /* LOADED_HIGH */
    CHECK_EQ_U64(rd32(vm, zp + 0x228), BH_BOOT_CMDLINE_ADDR);
    CHECK_EQ_U64(rd32(vm, zp + 0x218), info->initrd_addr);
    CHECK_EQ_U64(rd32(vm, zp + 0x21c), sizeof initrd_bytes);
    CHECK_EQ_U64(rd8(vm, zp + 0x1e8), 4); /* e820 entries */
    CHECK_EQ_U64(rd64(vm, zp + 0x2d0), 0);
    CHECK_EQ_U64(rd64(vm, zp + 0x2d0 + 8), 0x9fc00);
    CHECK_EQ_U64(rd32(vm, zp + 0x2d0 + 16), 1);
    CHECK_EQ_U64(rd64(vm, zp + 0x2d0 + 60), MIB);
    CHECK_EQ_U64(rd64(vm, zp + 0x2d0 + 68), bh_mem_size(vm) - MIB);
    CHECK_EQ_U64(rd32(vm, zp + 0x2d0 + 76), 1);
    char cmd[64] = {0};
    bh_mem_read(vm, BH_BOOT_CMDLINE_ADDR, cmd, strlen(test_cmdline) + 1, NULL);
    CHECK(strcmp(cmd, test_cmdline) == 0);
    uint8_t back[sizeof initrd_bytes];
    bh_mem_read(vm, info->initrd_addr, back, sizeof back, NULL);
    CHECK(memcmp(back, initrd_bytes, sizeof back) == 0);
}

static void check_gdt_and_paging(bh_vm *vm)
{
    CHECK_EQ_U64(rd64(vm, BH_BOOT_GDT_ADDR + 0x10), 0x00af9b000000ffffULL); /* __BOOT_CS, 64-bit */
    CHECK_EQ_U64(rd64(vm, BH_BOOT_GDT_ADDR + 0x18), 0x00cf93000000ffffULL); /* __BOOT_DS */
    CHECK_EQ_U64(rd64(vm, BH_BOOT_GDT_ADDR + 0x20), 0x008f8b000000ffffULL); /* busy TSS */
    CHECK_EQ_U64(rd64(vm, BH_BOOT_PML4_ADDR), BH_BOOT_PDPT_ADDR | 3);
    CHECK_EQ_U64(rd64(vm, BH_BOOT_PDPT_ADDR + 3 * 8), (BH_BOOT_PD_ADDR + 3 * 4096) | 3);
    CHECK_EQ_U64(rd64(vm, BH_BOOT_PD_ADDR + 8), 0x200000 | 0x83);
    CHECK_EQ_U64(rd64(vm, BH_BOOT_PD_ADDR + 3 * 4096 + 511 * 8), 0xffe00000ULL | 0x83);
}

static void check_long_mode_regs(rig *r, uint64_t entry)
{
    bh_error e = {0};
    bh_regs regs;
    bh_sregs s;
    REQUIRE_OK(bh_vcpu_get_regs(r->vm, 0, &regs, &e));
    REQUIRE_OK(bh_vcpu_get_sregs(r->vm, 0, &s, &e));
    CHECK_EQ_U64(regs.rsi, BH_BOOT_ZERO_PAGE_ADDR);
    CHECK(regs.rip > entry && regs.rip < entry + 0x100);
    CHECK_EQ_U64(s.cs.selector, 0x10);
    CHECK_EQ_U64(s.cs.l, 1);
    CHECK_EQ_U64(s.ds.selector, 0x18);
    CHECK_EQ_U64(s.ss.selector, 0x18);
    CHECK_EQ_U64(s.cr3, BH_BOOT_PML4_ADDR);
    CHECK(s.cr0 & 0x80000001ULL);
    CHECK(s.cr4 & 0x20);
    CHECK(s.efer & 0x400); /* LMA */
    CHECK_EQ_U64(s.gdt.base, BH_BOOT_GDT_ADDR);
}

static void run_probe(bi_image *k, bool bz)
{
    bh_error e = {0};
    rig r;
    if (!rig_open(&r, 64 * MIB, 1))
        return;
    for (size_t i = 0; i < sizeof initrd_bytes; i++)
        initrd_bytes[i] = (uint8_t)(i * 7 + 1);
    memcpy(initrd_bytes, "INRD", 4);
    fill_ram(r.vm, 0xcc, MIB, 63 * MIB); /* so the loader's zero-fill is visible */
    bh_linux_boot_config c = {.kernel = k->data, .kernel_len = k->len, .initrd = initrd_bytes,
                              .initrd_len = sizeof initrd_bytes, .cmdline = test_cmdline};
    bh_boot_info info;
    REQUIRE_OK(bh_boot_linux(r.vm, &c, &info, &e));
    tap_diag("entry 0x%llx, initrd at 0x%llx, notes: %s", (unsigned long long)info.entry_point,
            (unsigned long long)info.initrd_addr, info.notes[0] ? info.notes : "none");
    if (!bz) {
        uint8_t bss[BI_BSS], zeros[BI_BSS] = {0};
        bh_mem_read(r.vm, BI_KERNEL_PADDR + 0x1000, bss, sizeof bss, NULL);
        CHECK(memcmp(bss, zeros, sizeof bss) == 0);
    } else {
        CHECK_EQ_U64(rd32(r.vm, BH_BOOT_ZERO_PAGE_ADDR + 0x214), 0x100000); /* code32_start */
        CHECK_EQ_U64(rd16(r.vm, BH_BOOT_ZERO_PAGE_ADDR + 0x206), 0x020f);   /* header copied */
    }
    check_zero_page(r.vm, &info);
    check_gdt_and_paging(r.vm);
    double t0 = (double)clock() / CLOCKS_PER_SEC;
    CHECK(rig_run(&r, 20000));
    (void)t0;
    CHECK_EQ_U64(bh_debug_exit_value(r.dbg), 0x64);
    CHECK_EQ_U64(r.ncaptured, 2);
    CHECK_EQ_U64(r.captured[0], 0x44524e49); /* "INRD": initrd reached through the identity map */
    CHECK_EQ_U64(r.captured[1], 0x736e6f63); /* "cons": the command line */
    check_long_mode_regs(&r, info.entry_point);
    rig_close(&r);
}

void test_vm_vmlinux_entry_state_and_memory(void)
{
    bi_elf_options o = {.code = bg_probe64, .code_len = BG_LEN(bg_probe64), .virtual_entry = true};
    bi_image k = bi_make_vmlinux(&o);
    run_probe(&k, false);
    bi_free(&k);
}

void test_vm_bzimage_entry(void)
{
    bi_bz_options o = {.code = bg_probe64, .code_len = BG_LEN(bg_probe64)};
    bi_image k = bi_make_bzimage(&o);
    run_probe(&k, true);
    bi_free(&k);
}

void test_vm_pvh_entry(void)
{
    bh_error e = {0};
    rig r;
    if (!rig_open(&r, 64 * MIB, 1))
        return;
    bi_elf_options o = {.code = bg_probe64, .code_len = BG_LEN(bg_probe64), .pvh_code = bg_pvh32,
                        .pvh_code_len = BG_LEN(bg_pvh32)};
    bi_image k = bi_make_vmlinux(&o);
    bh_linux_boot_config c = {.kernel = k.data, .kernel_len = k.len, .initrd = initrd_bytes,
                              .initrd_len = 4096, .cmdline = test_cmdline,
                              .entry = BH_LINUX_ENTRY_PVH};
    bh_boot_info info;
    REQUIRE_OK(bh_boot_linux(r.vm, &c, &info, &e));
    CHECK_EQ_U64(info.entry_point, BI_KERNEL_PADDR + 0x800);
    CHECK_EQ_U64(rd32(r.vm, BH_BOOT_PVH_INFO_ADDR), 0x336ec578);
    CHECK_EQ_U64(rd32(r.vm, BH_BOOT_PVH_INFO_ADDR + 12), 1);            /* nr_modules */
    CHECK_EQ_U64(rd64(r.vm, BH_BOOT_PVH_INFO_ADDR + 0x40), info.initrd_addr);
    CHECK_EQ_U64(rd32(r.vm, BH_BOOT_PVH_INFO_ADDR + 48), info.e820_entries);
    CHECK_EQ_U64(rd64(r.vm, BH_BOOT_GDT_ADDR + 0x10), 0x00cf9b000000ffffULL); /* 32-bit code */
    CHECK(rig_run(&r, 20000));
    CHECK_EQ_U64(bh_debug_exit_value(r.dbg), 0x32);
    CHECK_EQ_U64(r.ncaptured, 2);
    CHECK_EQ_U64(r.captured[0], 0x336ec578);
    CHECK_EQ_U64(r.captured[1], 0x736e6f63);
    bh_regs regs;
    bh_sregs s;
    REQUIRE_OK(bh_vcpu_get_regs(r.vm, 0, &regs, &e));
    REQUIRE_OK(bh_vcpu_get_sregs(r.vm, 0, &s, &e));
    CHECK_EQ_U64(regs.rbx, BH_BOOT_PVH_INFO_ADDR);
    CHECK_EQ_U64(s.cr0 & 0x80000001ULL, 1); /* protected mode, no paging */
    CHECK_EQ_U64(s.efer & 0x400, 0);
    bi_free(&k);
    rig_close(&r);
}

static struct kvm_cpuid_entry2 *find_leaf(struct kvm_cpuid2 *c, uint32_t fn, uint32_t idx)
{
    for (uint32_t i = 0; i < c->nent; i++)
        if (c->entries[i].function == fn && c->entries[i].index == idx)
            return &c->entries[i];
    return NULL;
}

static void check_mptable(bh_vm *vm, uint32_t vcpus)
{
    uint8_t f[16], sum = 0;
    bh_mem_read(vm, BH_BOOT_MPTABLE_ADDR, f, sizeof f, NULL);
    CHECK(memcmp(f, "_MP_", 4) == 0);
    for (int i = 0; i < 16; i++) sum = (uint8_t)(sum + f[i]);
    CHECK_EQ_U64(sum, 0);
    uint32_t table = f[4] | f[5] << 8 | f[6] << 16 | (uint32_t)f[7] << 24;
    uint16_t len = rd16(vm, table + 4), entries = rd16(vm, table + 34);
    uint8_t *t = malloc(len);
    bh_mem_read(vm, table, t, len, NULL);
    CHECK(memcmp(t, "PCMP", 4) == 0);
    sum = 0;
    for (int i = 0; i < len; i++) sum = (uint8_t)(sum + t[i]);
    CHECK_EQ_U64(sum, 0);
    int cpus = 0, boot = 0, ioapics = 0, intsrc = 0, lint = 0;
    size_t off = 44;
    for (int i = 0; i < entries && off < len; i++) {
        uint8_t type = t[off];
        if (type == 0) {
            CHECK_EQ_U64(t[off + 1], cpus);
            cpus++, boot += (t[off + 3] & 2) != 0, off += 20;
        } else {
            ioapics += type == 2, intsrc += type == 3, lint += type == 4, off += 8;
            if (type == 2)
                CHECK_EQ_U64(t[off - 8 + 1], vcpus);
        }
    }
    CHECK_EQ_U64(off, len);
    CHECK_EQ_U64(cpus, vcpus);
    CHECK_EQ_U64(boot, 1);
    CHECK_EQ_U64(ioapics, 1);
    CHECK_EQ_U64(intsrc, 24);
    CHECK_EQ_U64(lint, 2);
    free(t);
}

static void check_cpuid(bh_vm *vm, uint32_t vcpu)
{
    size_t size = sizeof(struct kvm_cpuid2) + 512 * sizeof(struct kvm_cpuid_entry2);
    struct kvm_cpuid2 *c = calloc(1, size);
    c->nent = 512;
    REQUIRE(ioctl(bh_vcpu_fd(vm, vcpu), KVM_GET_CPUID2, c) == 0);
    struct kvm_cpuid_entry2 *l1 = find_leaf(c, 1, 0), *sig = find_leaf(c, 0x40000000, 0),
                            *feat = find_leaf(c, 0x40000001, 0), *topo = find_leaf(c, 0xb, 1);
    REQUIRE(l1 && sig && feat);
    CHECK_EQ_U64(l1->ebx >> 24, vcpu);
    CHECK(l1->ecx & (1u << 31));
    if (ioctl(bh_vm_fd(vm), KVM_CHECK_EXTENSION, KVM_CAP_TSC_DEADLINE_TIMER) > 0)
        CHECK(l1->ecx & (1u << 24)); /* TSC-deadline timer of the in-kernel LAPIC */
    CHECK_EQ_U64(sig->ebx, 0x4b4d564b);
    CHECK(feat->eax & (1u << 3)); /* KVM_FEATURE_CLOCKSOURCE2: MSR_KVM_SYSTEM_TIME_NEW */
    if (topo) {
        CHECK_EQ_U64(topo->edx, vcpu);
        CHECK_EQ_U64(topo->ebx, bh_vm_vcpu_count(vm));
    }
    free(c);
}

static void check_lapic_fpu_msrs(bh_vm *vm, uint32_t vcpu)
{
    int fd = bh_vcpu_fd(vm, vcpu);
    struct kvm_lapic_state lapic;
    uint32_t lint0, lint1;
    REQUIRE(ioctl(fd, KVM_GET_LAPIC, &lapic) == 0);
    memcpy(&lint0, lapic.regs + 0x350, 4);
    memcpy(&lint1, lapic.regs + 0x360, 4);
    CHECK_EQ_U64((lint0 >> 8) & 7, 7); /* ExtINT */
    CHECK_EQ_U64((lint1 >> 8) & 7, 4); /* NMI */
    /* Read back through the XSAVE image's legacy area (fcw at byte 0, mxcsr at byte 24): on this
     * host KVM_GET_FPU does not report MXCSR. */
    struct kvm_xsave xs;
    REQUIRE(ioctl(fd, KVM_GET_XSAVE, &xs) == 0);
    CHECK_EQ_U64(xs.region[0] & 0xffff, 0x37f);
    CHECK_EQ_U64(xs.region[6], 0x1f80);
    uint64_t buf[8] = {0};
    struct kvm_msrs *m = (struct kvm_msrs *)buf;
    m->nmsrs = 1;
    m->entries[0].index = 0x1a0;
    if (ioctl(fd, KVM_GET_MSRS, m) == 1)
        CHECK(m->entries[0].data & 1); /* fast strings */
    else
        tap_diag("vCPU %u: IA32_MISC_ENABLE not readable here", vcpu);
}

void test_vm_smp_mptable_cpuid_lapic_msrs(void)
{
    bh_error e = {0};
    rig r;
    if (!rig_open(&r, 64 * MIB, 2))
        return;
    bi_elf_options o = {.code = bg_probe64, .code_len = BG_LEN(bg_probe64)};
    bi_image k = bi_make_vmlinux(&o);
    bh_linux_boot_config c = {.kernel = k.data, .kernel_len = k.len, .initrd = initrd_bytes,
                              .initrd_len = 4096, .cmdline = test_cmdline};
    bh_boot_info info;
    REQUIRE_OK(bh_boot_linux(r.vm, &c, &info, &e));
    tap_diag("notes: %s", info.notes[0] ? info.notes : "none");
    check_mptable(r.vm, 2);
    for (uint32_t v = 0; v < 2; v++) {
        check_cpuid(r.vm, v);
        check_lapic_fpu_msrs(r.vm, v);
    }
    struct kvm_mp_state mp;
    REQUIRE(ioctl(bh_vcpu_fd(r.vm, 1), KVM_GET_MP_STATE, &mp) == 0);
    CHECK_EQ_U64(mp.mp_state, KVM_MP_STATE_UNINITIALIZED); /* the AP waits for INIT/SIPI */
    CHECK(rig_run(&r, 20000));
    CHECK_EQ_U64(bh_debug_exit_value(r.dbg), 0x64);
    bi_free(&k);
    rig_close(&r);
}

void test_vm_bad_kernels_typed_errors(void)
{
    bh_error e = {0};
    rig r;
    if (!rig_open(&r, 32 * MIB, 1))
        return;
    uint8_t junk[4096];
    for (size_t i = 0; i < sizeof junk; i++)
        junk[i] = (uint8_t)(i * 131 + 17);
    bh_linux_boot_config c = {.kernel = junk, .kernel_len = sizeof junk};
    CHECK_FAILS_WITH(bh_boot_linux(r.vm, &c, NULL, &e), BH_E_INVALID_ARG, "neither");
    bi_elf_options o = {.code = bg_probe64, .code_len = BG_LEN(bg_probe64)};
    bi_image k = bi_make_vmlinux(&o);
    c = (bh_linux_boot_config){.kernel = k.data, .kernel_len = 100};
    CHECK_FAILS_WITH(bh_boot_linux(r.vm, &c, NULL, &e), BH_E_INVALID_ARG, "outside the file");
    k.data[4] = 1;
    c.kernel_len = k.len;
    CHECK_FAILS_WITH(bh_boot_linux(r.vm, &c, NULL, &e), BH_E_INVALID_ARG, "32-bit");
    k.data[4] = 2;
    bi_bz_options bo = {.code = bg_probe64, .code_len = BG_LEN(bg_probe64), .init_size = 0x100000};
    bi_image bz = bi_make_bzimage(&bo);
    memcpy(bz.data + 0x202, "HdrZ", 4);
    c = (bh_linux_boot_config){.kernel = bz.data, .kernel_len = bz.len};
    CHECK_FAILS_WITH(bh_boot_linux(r.vm, &c, NULL, &e), BH_E_INVALID_ARG, "HdrS");
    memcpy(bz.data + 0x202, "HdrS", 4);
    bz.data[0x206] = 0x04;
    CHECK_FAILS_WITH(bh_boot_linux(r.vm, &c, NULL, &e), BH_E_INVALID_ARG, "unsupported");
    char cmd[2100];
    memset(cmd, 'a', sizeof cmd - 1);
    cmd[sizeof cmd - 1] = 0;
    c = (bh_linux_boot_config){.kernel = k.data, .kernel_len = k.len, .cmdline = cmd};
    CHECK_FAILS_WITH(bh_boot_linux(r.vm, &c, NULL, &e), BH_E_INVALID_ARG, "command line");
    uint8_t *big = calloc(1, 20 * MIB);
    c = (bh_linux_boot_config){.kernel = k.data, .kernel_len = k.len, .initrd = big,
                               .initrd_len = 20 * MIB};
    CHECK_FAILS_WITH(bh_boot_linux(r.vm, &c, NULL, &e), BH_E_INVALID_ARG, "initrd");
    free(big);
    CHECK_EQ_U64(bh_vm_get_state(r.vm), BH_VM_CREATED); /* refused before anything ran */
    /* The same VM still boots a good kernel afterwards. */
    c = (bh_linux_boot_config){.kernel = k.data, .kernel_len = k.len, .initrd = initrd_bytes,
                               .initrd_len = 4096, .cmdline = test_cmdline};
    REQUIRE_OK(bh_boot_linux(r.vm, &c, NULL, &e));
    CHECK(rig_run(&r, 20000));
    CHECK_EQ_U64(bh_debug_exit_value(r.dbg), 0x64);
    bi_free(&k);
    bi_free(&bz);
    rig_close(&r);
}

static void serial_out(void *opaque, const uint8_t *data, size_t len)
{
    rig *r = opaque;
    pthread_mutex_lock(&r->lock);
    for (size_t i = 0; i < len && r->output_len < sizeof r->output - 1; i++)
        r->output[r->output_len++] = (char)data[i];
    pthread_mutex_unlock(&r->lock);
}

void test_vm_serial_16550(void)
{
    bh_error e = {0};
    rig r;
    bh_serial *uart = NULL;
    if (!rig_open(&r, 32 * MIB, 1))
        return;
    bh_serial_config sc = {.port = 0x3f8, .irq = 4, .ring_bytes = 2, .output = serial_out,
                           .opaque = &r};
    REQUIRE_OK(bh_serial_create(r.vm, &sc, &uart, &e));
    bi_elf_options o = {.code = bg_serial64, .code_len = BG_LEN(bg_serial64)};
    bi_image k = bi_make_vmlinux(&o);
    bh_linux_boot_config c = {.kernel = k.data, .kernel_len = k.len};
    REQUIRE_OK(bh_boot_linux(r.vm, &c, NULL, &e));
    CHECK_EQ_U64(bh_serial_input(uart, (const uint8_t *)"Z", 1), 1);
    CHECK(rig_run(&r, 20000));
    CHECK(strcmp(r.output, "hi\n") == 0);
    CHECK_EQ_U64(r.ncaptured, 4);
    CHECK_EQ_U64(r.captured[0] & 0xf0, 0x90); /* loopback: RTS -> CTS, OUT2 -> DCD */
    CHECK_EQ_U64(r.captured[1], 0x02);        /* THRE interrupt pending after enabling it */
    CHECK_EQ_U64(r.captured[2], 0x01);        /* ...and acknowledged by that IIR read */
    CHECK_EQ_U64(r.captured[3], 'Z');         /* host input reached the guest */
    uint8_t tail[8];
    size_t n = bh_serial_recent_output(uart, tail, sizeof tail);
    CHECK_EQ_U64(n, 2); /* a 2-byte ring keeps the last two bytes */
    CHECK(n == 2 && tail[0] == 'i' && tail[1] == '\n');
    bi_free(&k);
    rig_close(&r);
}

void test_vm_i8042_reset(void)
{
    bh_error e = {0};
    rig r;
    bh_i8042 *kbc = NULL;
    if (!rig_open(&r, 32 * MIB, 1))
        return;
    REQUIRE_OK(bh_i8042_create(r.vm, &kbc, &e));
    bi_elf_options o = {.code = bg_i8042_64, .code_len = BG_LEN(bg_i8042_64)};
    bi_image k = bi_make_vmlinux(&o);
    bh_linux_boot_config c = {.kernel = k.data, .kernel_len = k.len};
    REQUIRE_OK(bh_boot_linux(r.vm, &c, NULL, &e));
    CHECK(rig_run(&r, 20000));
    CHECK_EQ_U64(r.ncaptured, 3);
    CHECK(r.captured[0] & 1); /* output buffer full after the self-test */
    CHECK_EQ_U64(r.captured[1], 0x55);  /* self-test passed */
    CHECK_EQ_U64(r.captured[2], 0x45);  /* command byte: KBDINT | SYSFLAG | XLATE */
    REQUIRE(r.have_exit);
    CHECK_EQ_U64(r.first_exit.reason, BH_EXIT_GUEST_REQUEST);
    CHECK_EQ_U64(r.first_exit.detail[0], BH_GUEST_REQUEST_RESET_LINE);
    CHECK_EQ_U64(bh_i8042_resets(kbc), 1);
    bi_free(&k);
    rig_close(&r);
}

/* `poweroff` without ACPI: every vCPU halted with interrupts off (the AP never started counts). */
static void halt_case(const uint8_t *code, size_t len, uint32_t vcpus, bool expect)
{
    bh_error e = {0};
    rig r;
    if (!rig_open(&r, 32 * MIB, vcpus))
        return;
    bi_elf_options o = {.code = code, .code_len = len};
    bi_image k = bi_make_vmlinux(&o);
    bh_linux_boot_config c = {.kernel = k.data, .kernel_len = k.len};
    REQUIRE_OK(bh_boot_linux(r.vm, &c, NULL, &e));
    REQUIRE_OK(bh_vm_start(r.vm, &e));
    bool halted = false;
    for (int tries = 0; tries < 20 && !halted; tries++) {
        usleep(50000);
        REQUIRE_OK(bh_linux_guest_halted(r.vm, &halted, &e));
    }
    CHECK_EQ_U64(halted, expect);
    CHECK_EQ_U64(bh_vm_get_state(r.vm), expect ? BH_VM_PAUSED : BH_VM_RUNNING);
    bh_vm_stop(r.vm, NULL);
    bi_free(&k);
    rig_close(&r);
}

void test_vm_halt_detection(void)
{
    halt_case(bg_halt64, BG_LEN(bg_halt64), 2, true);
    halt_case(bg_idle64, BG_LEN(bg_idle64), 1, false);
}
