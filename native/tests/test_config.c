/* test_config.c — /dev/kvm probing, config validation, guest-memory bounds and bus rules. */
#include <string.h>

#include <linux/kvm.h>

#include "../kvm/bus.h"
#include "helpers.h"
#include "tests.h"

#define MIB (1024ULL * 1024ULL)
#define GIB (1024ULL * MIB)

static bh_io_result nop_handler(void *opaque, bh_io_access *access)
{
    (void)opaque;
    (void)access;
    return BH_IO_DONE;
}

/* The bus on its own: sorted insertion, overlap rejection, adjacency, lookup, reservations. */
void test_bus_ranges(void)
{
    bh_bus bus;
    bh_error e = {0};
    int a, b, c;
    REQUIRE_OK(bh_bus_init(&bus, "test", &e));
    REQUIRE_OK(bh_bus_register(&bus, 0x100, 0x10, nop_handler, &b, &e));
    REQUIRE_OK(bh_bus_register(&bus, 0x10, 0x10, nop_handler, &a, &e));
    REQUIRE_OK(bh_bus_register(&bus, 0x110, 0x10, nop_handler, &c, &e)); /* adjacent is fine */
    CHECK(bh_bus_register(&bus, 0x10f, 1, nop_handler, &a, &e) == BH_E_BUSY);
    CHECK(strstr(e.message, "overlaps") != NULL);
    CHECK(bh_bus_register(&bus, 0x0, 0x1000, nop_handler, &a, &e) == BH_E_BUSY); /* covers all */
    CHECK(bh_bus_register(&bus, 0x105, 2, nop_handler, &a, &e) == BH_E_BUSY);    /* inside one */
    CHECK(bh_bus_register(&bus, 0x5, 0, nop_handler, &a, &e) == BH_E_INVALID_ARG);
    CHECK(bh_bus_register(&bus, UINT64_MAX - 1, 4, nop_handler, &a, &e) == BH_E_INVALID_ARG);
    REQUIRE_OK(bh_bus_register(&bus, UINT64_MAX - 1, 2, nop_handler, &a, &e)); /* ends exactly at the top */
    REQUIRE_OK(bh_bus_reserve(&bus, 0x200, 0x10, "a reservation", &e));
    CHECK(bh_bus_register(&bus, 0x208, 1, nop_handler, &a, &e) == BH_E_BUSY);
    CHECK(strstr(e.message, "a reservation") != NULL);

    bh_bus_range r;
    CHECK(bh_bus_lookup(&bus, 0x10, 1, &r) && r.opaque == &a && r.base == 0x10);
    CHECK(bh_bus_lookup(&bus, 0x1f, 1, &r) && r.opaque == &a);
    CHECK(!bh_bus_lookup(&bus, 0x20, 1, &r));
    CHECK(bh_bus_lookup(&bus, 0x10f, 1, &r) && r.opaque == &b);
    CHECK(bh_bus_lookup(&bus, 0x110, 1, &r) && r.opaque == &c);
    CHECK(!bh_bus_lookup(&bus, 0x120, 1, &r));
    CHECK(!bh_bus_lookup(&bus, 0x205, 1, &r)); /* reserved: nobody handles it */
    CHECK(bh_bus_lookup(&bus, UINT64_MAX, 1, &r) && r.opaque == &a);
    CHECK(!bh_bus_lookup(&bus, 0, 1, &r));
    /* The whole access must lie inside one range: the last byte counts, not only the first. */
    CHECK(bh_bus_lookup(&bus, 0x1c, 4, &r) && r.opaque == &a);
    CHECK(!bh_bus_lookup(&bus, 0x1d, 4, &r));  /* 0x1d..0x20 leaves [0x10, 0x20) */
    CHECK(!bh_bus_lookup(&bus, 0x1f, 8, &r));
    CHECK(!bh_bus_lookup(&bus, 0x10f, 2, &r)); /* straddles two adjacent ranges */
    CHECK(!bh_bus_lookup(&bus, UINT64_MAX, 2, &r)); /* would wrap */
    CHECK(bh_bus_lookup(&bus, UINT64_MAX - 1, 2, &r));
    CHECK(!bh_bus_lookup(&bus, 0x10, 0, &r));
    for (size_t i = 1; i < bus.count; i++)
        CHECK(bus.ranges[i - 1].base + bus.ranges[i - 1].len <= bus.ranges[i].base);
    bh_bus_destroy(&bus);
}

void test_kvm_system_and_caps(void)
{
    bh_error e = {0};
    bh_kvm *bad = NULL;
    CHECK(bh_kvm_open("/nonexistent/kvm", &bad, &e) == BH_E_UNAVAILABLE);
    CHECK(bad == NULL && e.sys_errno != 0 && strstr(e.message, "/nonexistent/kvm"));
    CHECK(bh_kvm_open("/dev/null", &bad, &e) == BH_E_UNAVAILABLE); /* not KVM: wrong API version */

    bh_kvm *kvm = tap_open_kvm();
    if (!kvm)
        return;
    CHECK(bh_kvm_api_version(kvm) == 12);
    CHECK(bh_kvm_max_vcpus(kvm) >= 1);
    size_t n = 0;
    const bh_kvm_cap_info *caps = bh_kvm_known_caps(&n);
    static const char *const needed[] = {
        "KVM_CAP_IRQCHIP", "KVM_CAP_PIT2", "KVM_CAP_IRQFD", "KVM_CAP_IOEVENTFD", "KVM_CAP_SIGNAL_MSI",
        "KVM_CAP_IMMEDIATE_EXIT", "KVM_CAP_READONLY_MEM", "KVM_CAP_SET_TSS_ADDR", "KVM_CAP_USER_MEMORY",
        "KVM_CAP_MAX_VCPUS", "KVM_CAP_NR_VCPUS", "KVM_CAP_EXT_CPUID", "KVM_CAP_TSC_DEADLINE_TIMER",
        "KVM_CAP_X2APIC_API", "KVM_CAP_KVMCLOCK_CTRL", "KVM_CAP_XEN_HVM", "KVM_CAP_NESTED_STATE",
        "KVM_CAP_SYNC_REGS", "KVM_CAP_SPLIT_IRQCHIP", "KVM_CAP_ADJUST_CLOCK", "KVM_CAP_GET_MSR_FEATURES",
    };
    for (size_t i = 0; i < sizeof needed / sizeof needed[0]; i++) {
        bool found = false;
        for (size_t j = 0; j < n; j++)
            found |= strcmp(caps[j].name, needed[i]) == 0;
        if (!found)
            tap_diag("missing from the capability table: %s", needed[i]);
        CHECK(found);
    }
    char line[1024] = "";
    for (size_t j = 0; j < n; j++) {
        char item[64];
        snprintf(item, sizeof item, " %s=%d", caps[j].name + 8, bh_kvm_check_extension(kvm, caps[j].id));
        if (strlen(line) + strlen(item) >= sizeof line - 1) {
            tap_diag("caps:%s", line);
            line[0] = '\0';
        }
        strcat(line, item);
    }
    tap_diag("caps:%s", line);
    tap_diag("max vcpus %d", bh_kvm_max_vcpus(kvm));
    CHECK(bh_kvm_check_extension(kvm, KVM_CAP_IMMEDIATE_EXIT) > 0);
    bh_kvm_close(kvm);
}

static void expect_invalid(bh_kvm *kvm, bh_vm_config c, const char *field)
{
    bh_error e = {0};
    bh_vm *vm = (bh_vm *)0x1;
    int rc = bh_vm_create(kvm, &c, &vm, &e);
    CHECK(rc == BH_E_INVALID_ARG);
    CHECK(vm == NULL);
    if (!strstr(e.message, field)) {
        tap_diag("message does not name %s: %s", field, e.message);
        tap_failures++;
    }
    if (rc != BH_E_INVALID_ARG && rc == 0)
        bh_vm_destroy(vm);
}

void test_config_validation(void)
{
    bh_kvm *kvm = tap_open_kvm();
    if (!kvm)
        return;
    bh_vm_config ok = {.memory_bytes = 2 * MIB, .vcpus = 1};
    bh_vm_config c = ok;
    c.memory_bytes = 0;
    expect_invalid(kvm, c, "memory_bytes");
    c.memory_bytes = MIB - 4096;
    expect_invalid(kvm, c, "memory_bytes");
    c.memory_bytes = 2 * MIB + 1;
    expect_invalid(kvm, c, "memory_bytes");
    c.memory_bytes = 1ULL << 62;
    expect_invalid(kvm, c, "memory_bytes");
    c = ok;
    c.vcpus = 0;
    expect_invalid(kvm, c, "vcpus");
    c.vcpus = BH_MAX_VCPUS_HARD_LIMIT + 1;
    expect_invalid(kvm, c, "vcpus");
    c.vcpus = 100000;
    expect_invalid(kvm, c, "vcpus");

    bh_error e = {0};
    bh_vm *vm = NULL;
    CHECK(bh_vm_create(kvm, NULL, &vm, &e) == BH_E_INVALID_ARG);
    c = ok;
    c.memory_bytes = MIB; /* the smallest allowed */
    REQUIRE_OK(bh_vm_create(kvm, &c, &vm, &e));
    CHECK(bh_vm_get_state(vm) == BH_VM_CREATED);
    CHECK(bh_vm_vcpu_count(vm) == 1 && bh_mem_size(vm) == MIB && bh_vm_fd(vm) >= 0 && bh_vcpu_fd(vm, 0) >= 0);
    CHECK(bh_vcpu_fd(vm, 1) == -1);
    bh_vm_destroy(vm);
    bh_kvm_close(kvm);
}

/* A guest of 3 GiB + 2 MiB: RAM at [0, 3 GiB) and [4 GiB, 4 GiB + 2 MiB). MAP_NORESERVE keeps it
 * cheap. Every rejected range leaves the buffer untouched. */
void test_mem_bounds(void)
{
    test_vm t;
    bh_error e = {0};
    const uint64_t low = BH_MMIO_HOLE_START, high = 2 * MIB;
    if (!tvm_create(&t, low + high, 1, false))
        return;
    bh_vm *vm = t.vm;
    bh_mem_region r[4];
    REQUIRE(bh_mem_regions(vm, r, 4) == 2);
    CHECK(r[0].gpa == 0 && r[0].size == low && r[0].fd_offset == 0 && r[0].memfd >= 0);
    CHECK(r[1].gpa == BH_MMIO_HOLE_END && r[1].size == high && r[1].fd_offset == low && r[1].memfd == r[0].memfd);
    CHECK(bh_mem_regions(vm, NULL, 0) == 2);

    uint8_t buf[16], pattern[16];
    for (int i = 0; i < 16; i++)
        pattern[i] = (uint8_t)(0xa0 + i);
    /* Inside each region, at the edges. */
    REQUIRE_OK(bh_mem_write(vm, 0, pattern, 16, &e));
    REQUIRE_OK(bh_mem_write(vm, low - 16, pattern, 16, &e));
    REQUIRE_OK(bh_mem_write(vm, BH_MMIO_HOLE_END, pattern, 16, &e));
    REQUIRE_OK(bh_mem_write(vm, BH_MMIO_HOLE_END + high - 16, pattern, 16, &e));
    REQUIRE_OK(bh_mem_read(vm, BH_MMIO_HOLE_END + high - 16, buf, 16, &e));
    CHECK(memcmp(buf, pattern, 16) == 0);
    CHECK(bh_mem_is_ram(vm, 0, (size_t)low));
    CHECK(bh_mem_ptr(vm, BH_MMIO_HOLE_END, (size_t)high) != NULL);
    /* The memfd holds the high region at fd_offset: the same bytes. */
    uint8_t *p = bh_mem_ptr(vm, BH_MMIO_HOLE_END, 16);
    CHECK(p && memcmp(p, pattern, 16) == 0);

    struct { uint64_t gpa; size_t len; const char *what; } bad[] = {
        {low - 8, 16, "straddles the start of the hole"},
        {BH_MMIO_HOLE_END - 8, 16, "straddles the end of the hole"},
        {low, 1, "inside the hole"},
        {0xfffbd000, 4, "KVM's TSS pages"},
        {BH_MMIO_HOLE_END + high - 8, 16, "runs past the end of RAM"},
        {BH_MMIO_HOLE_END + high, 1, "just past the end of RAM"},
        {UINT64_MAX - 7, 16, "gpa + len overflows"},
        {UINT64_MAX, 1, "the last address"},
        {16, SIZE_MAX, "len = SIZE_MAX"},
        {0, (size_t)low + 1, "one byte more than the low region"},
        {0, (size_t)(low + high), "both regions as if contiguous"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        bool accepted = bh_mem_is_ram(vm, bad[i].gpa, bad[i].len) || bh_mem_ptr(vm, bad[i].gpa, bad[i].len);
        if (bad[i].len <= sizeof buf) { /* small enough to try a real copy */
            memset(buf, 0x5a, sizeof buf);
            accepted |= bh_mem_read(vm, bad[i].gpa, buf, bad[i].len, &e) != BH_E_OUT_OF_RANGE;
            accepted |= buf[0] != 0x5a;
            accepted |= bh_mem_write(vm, bad[i].gpa, pattern, bad[i].len, &e) != BH_E_OUT_OF_RANGE;
        }
        if (accepted) {
            tap_diag("accepted a range that %s (gpa 0x%llx len %zu)", bad[i].what,
                     (unsigned long long)bad[i].gpa, bad[i].len);
            tap_failures++;
        }
    }
    CHECK(strstr(e.message, "not entirely guest RAM") != NULL);
    CHECK(bh_mem_read(vm, 0, NULL, 4, &e) == BH_E_INVALID_ARG);
    CHECK(bh_mem_read(vm, 0x1000, buf, 0, &e) == BH_OK); /* empty, inside RAM */
    tvm_destroy(&t);
}

/* MMIO may not cover RAM, KVM's private pages or the in-kernel irqchip; ports end at 0xffff. */
void test_mmio_registration_rules(void)
{
    test_vm t;
    bh_error e = {0};
    int dev;
    if (!tvm_create(&t, 16 * MIB, 1, true))
        return;
    bh_vm *vm = t.vm;
    CHECK(bh_vm_register_mmio(vm, 0x1000, 0x1000, nop_handler, &dev, &e) == BH_E_INVALID_ARG);
    CHECK(strstr(e.message, "guest RAM") != NULL);
    CHECK(bh_vm_register_mmio(vm, 16 * MIB - 8, 16, nop_handler, &dev, &e) == BH_E_INVALID_ARG);
    REQUIRE_OK(bh_vm_register_mmio(vm, 16 * MIB, 0x1000, nop_handler, &dev, &e)); /* right after RAM */
    REQUIRE_OK(bh_vm_register_mmio(vm, 0xd0000000, 0x1000, nop_handler, &dev, &e));
    CHECK(bh_vm_register_mmio(vm, 0xd0000800, 0x1000, nop_handler, &dev, &e) == BH_E_BUSY);
    CHECK(bh_vm_register_mmio(vm, 0xfffbd000, 0x10, nop_handler, &dev, &e) == BH_E_BUSY);
    CHECK(strstr(e.message, "TSS") != NULL);
    if (bh_vm_has_irqchip(vm)) {
        CHECK(bh_vm_register_mmio(vm, 0xfee00000, 0x10, nop_handler, &dev, &e) == BH_E_BUSY);
        CHECK(bh_vm_register_pio(vm, 0x20, 1, nop_handler, &dev, &e) == BH_E_BUSY);
        CHECK(bh_vm_register_pio(vm, 0x40, 4, nop_handler, &dev, &e) == BH_E_BUSY);
    } else {
        tap_diag("no in-kernel irqchip on this host");
    }
    CHECK(bh_vm_register_mmio(vm, UINT64_MAX - 4, 16, nop_handler, &dev, &e) == BH_E_INVALID_ARG);
    CHECK(bh_vm_register_mmio(vm, 0xe0000000, 0, nop_handler, &dev, &e) == BH_E_INVALID_ARG);
    CHECK(bh_vm_register_mmio(vm, 0xe0000000, 4, NULL, &dev, &e) == BH_E_INVALID_ARG);
    REQUIRE_OK(bh_vm_register_pio(vm, 0xfff0, 0x10, nop_handler, &dev, &e));
    CHECK(bh_vm_register_pio(vm, 0xffff, 2, nop_handler, &dev, &e) == BH_E_INVALID_ARG);
    CHECK(bh_vm_register_pio(vm, 0x3f8, 0, nop_handler, &dev, &e) == BH_E_INVALID_ARG);
    REQUIRE_OK(bh_vm_register_pio(vm, 0x3f8, 8, nop_handler, &dev, &e));
    CHECK(bh_vm_register_pio(vm, 0x3ff, 1, nop_handler, &dev, &e) == BH_E_BUSY);
    tvm_destroy(&t);
}
