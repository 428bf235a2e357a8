/* test_irq.c — irq lines, irqfds and ioeventfds; the VM closes every eventfd it made. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <string.h>
#include <unistd.h>

#include "guests.h"
#include "helpers.h"
#include "tests.h"

#define MIB (1024ULL * 1024ULL)

static uint64_t drain(int fd)
{
    struct pollfd p = {.fd = fd, .events = POLLIN};
    if (poll(&p, 1, 0) != 1)
        return 0;
    uint64_t v = 0;
    if (read(fd, &v, sizeof v) != sizeof v)
        return 0;
    return v;
}

/* The guest writes port 0x510 (ioeventfd, any value) and 0xd0001000 twice: 1 (no datamatch: a
 * normal, unhandled MMIO exit) and 0xabcd (datamatch: the eventfd, no exit). */
void test_irqfd_and_ioeventfd(void)
{
    test_vm t;
    bh_error e = {0};
    if (!tvm_create(&t, 2 * MIB, 1, true))
        return;
    if (!bh_vm_has_irqchip(t.vm)) {
        tap_skip("the host has no in-kernel irqchip");
        tvm_destroy(&t);
        return;
    }
    int irqfd = -1, pio_fd = -1, mmio_fd = -1;
    REQUIRE_OK(bh_vm_add_irqfd(t.vm, 4, &irqfd, &e));
    CHECK(irqfd >= 0);
    uint64_t one = 1;
    CHECK(write(irqfd, &one, 8) == 8); /* raises GSI 4 in the in-kernel irqchip */
    REQUIRE_OK(bh_vm_set_irq_line(t.vm, 5, true, &e));
    REQUIRE_OK(bh_vm_set_irq_line(t.vm, 5, false, &e));

    REQUIRE_OK(bh_vm_add_ioeventfd(t.vm, 0x510, 1, false, false, 0, &pio_fd, &e));
    REQUIRE_OK(bh_vm_add_ioeventfd(t.vm, 0xd0001000, 4, true, true, 0xabcd, &mmio_fd, &e));
    CHECK(bh_vm_add_ioeventfd(t.vm, 0x510, 3, false, false, 0, &pio_fd, &e) == BH_E_INVALID_ARG);
    CHECK(strstr(e.message, "len") != NULL);
    CHECK(bh_vm_add_ioeventfd(t.vm, 0x10000, 1, false, false, 0, &pio_fd, &e) == BH_E_INVALID_ARG);
    CHECK(drain(pio_fd) == 0 && drain(mmio_fd) == 0);

    REQUIRE_OK(register_done_port(&t, &e));
    REQUIRE_OK(gb_long_mode_tables(t.vm, &e));
    REQUIRE_OK(gb_load(t.vm, GB_CODE, g_ioev, g_ioev_len, &e));
    REQUIRE_OK(gb_long_mode(t.vm, 0, GB_CODE, GB_STACK, 0, &e));
    REQUIRE_OK(bh_vm_start(t.vm, &e));
    REQUIRE(tvm_wait_exits(&t, 1, 10));
    const bh_vcpu_exit *x = tvm_exit_of(&t, 0);
    REQUIRE(x);
    CHECK(x->reason == BH_EXIT_GUEST_REQUEST);
    CHECK_EQ_U64(drain(pio_fd), 1);
    CHECK_EQ_U64(drain(mmio_fd), 1);
    bh_vm_stats st;
    bh_vm_get_stats(t.vm, &st);
    CHECK_EQ_U64(st.unhandled_pio, 0);  /* 0x510 never reached userspace */
    CHECK_EQ_U64(st.unhandled_mmio, 1); /* only the non-matching write did */
    tvm_destroy(&t);
    /* Closed by the VM (this child opens nothing meanwhile, so the numbers are not reused). */
    CHECK(fcntl(irqfd, F_GETFD) < 0 && errno == EBADF);
    CHECK(fcntl(pio_fd, F_GETFD) < 0 && errno == EBADF);
    CHECK(fcntl(mmio_fd, F_GETFD) < 0 && errno == EBADF);

    /* Without an irqchip: refused, with a reason. */
    if (!tvm_create(&t, 2 * MIB, 1, false))
        return;
    CHECK(bh_vm_add_irqfd(t.vm, 4, &irqfd, &e) == BH_E_STATE);
    CHECK(strstr(e.message, "irqchip") != NULL);
    CHECK(bh_vm_set_irq_line(t.vm, 4, true, &e) == BH_E_STATE);
    REQUIRE_OK(bh_vm_add_ioeventfd(t.vm, 0x510, 0, false, false, 0, &pio_fd, &e)); /* works anyway */
    tvm_destroy(&t);
}
