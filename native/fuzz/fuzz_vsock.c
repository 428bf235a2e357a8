/*
 * fuzz_vsock.c — virtio-vsock's packet handling (devices/virtio/vsock_*.c) over a fake guest memory:
 * the guest's packets on the transmit queue (queue B) drive the connection state machine, and the
 * receive pump answers into the guest's buffers on queue A. Two host clients are connected through
 * socketpairs first ("CONNECT 1024\n" and "CONNECT 7\n" + early data; their host ports are 2^30 and
 * 2^30+1), so packets can answer, feed, credit, shut down and reset real connections; the input
 * also writes host bytes and hangs up host sides between packets. Guest connections to the host are
 * refused (there is no VM, so no Unix-socket peer). Nothing may leak, overrun or crash.
 *
 * Header: [0] queue size code; [1] flags (bit 0 EVENT_IDX, bit 1 INDIRECT_DESC, bits 2..7 host
 * events between packets: which client gets bytes or a hang-up).
 */
#include <stdint.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "devices/virtio/vsock.h"
#include "fuzz_support.h"

static bh_vq_chain tx_chain, rx_chain;

static void nop_notify(void *dev, uint16_t q)
{
    (void)dev, (void)q;
}

static const bh_virtio_ops transport_ops = {.kind = "fuzz-vsock", .device_id = BH_VIRTIO_ID_VSOCK, .num_queues = 3,
                                            .queue_notify = nop_notify};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2)
        return 0;
    fuzz_mem m;
    fuzz_mem_init(&m, data + 2, size - 2);
    bh_virtio v;
    bh_error err;
    bh_virtio_config cfg = {.name = "vsock"};
    if (bh_virtio_init(&v, NULL, &m.gmem, &cfg, &transport_ops, NULL, 0, &err))
        __builtin_trap();
    v.status = BH_VIRTIO_STATUS_DRIVER_OK; /* a live device */
    uint16_t num = fuzz_queue_size(data[0]);
    bool event_idx = data[1] & 1, indirect = data[1] & 2;
    char why[160];
    bh_virtq *rx = &v.queues[0].vq, tx = {0};
    bool rx_ok = bh_vq_enable(rx, &m.gmem, num, FUZZ_QA_DESC, FUZZ_QA_AVAIL, FUZZ_QA_USED, event_idx, indirect, why, sizeof why);
    bool tx_ok = bh_vq_enable(&tx, &m.gmem, num, FUZZ_QB_DESC, FUZZ_QB_AVAIL, FUZZ_QB_USED, event_idx, indirect, why, sizeof why);
    (void)rx_ok;

    static bh_vsock_core k;
    bh_vsock_core_init(&k, NULL, &v, 3, NULL, 8);
    k.chain = &rx_chain;
    int peers[2] = {-1, -1};
    static const char *hello[2] = {"CONNECT 1024\n", "CONNECT 7\nearly bytes"};
    for (int i = 0; i < 2; i++) {
        int sv[2];
        if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv) != 0)
            __builtin_trap();
        peers[i] = sv[1];
        if (send(sv[1], hello[i], strlen(hello[i]), MSG_NOSIGNAL) < 0)
            __builtin_trap();
        bh_vsock_conn *c = bh_vsock_host_accepted(&k, sv[0]);
        if (c)
            bh_vsock_host_event(c, EPOLLIN);
    }

    uint8_t events = data[1] >> 2;
    for (unsigned turn = 0; tx_ok && turn < num + 2u; turn++) {
        bh_vq_result r = bh_vq_pop(&tx, &tx_chain, why, sizeof why);
        if (r != BH_VQ_CHAIN)
            break;
        fuzz_check_chain(&m, &tx_chain);
        bh_vsock_hdr h;
        if (!bh_vsock_parse_tx(&tx_chain, &h, why, sizeof why))
            break; /* the device would be failed */
        bh_vsock_guest_packet(&k, &h, &tx_chain);
        bh_vq_push(&tx, tx_chain.head, 0);
        /* The host side moves between packets. */
        int who = (events >> (turn % 6)) & 1;
        bh_vsock_conn *c = bh_vsock_find(&k, BH_VSOCK_FIRST_HOST_PORT + (uint32_t)who, who ? 7 : 1024);
        if (c && peers[who] >= 0) {
            if (turn % 5 == 4) {
                close(peers[who]);
                peers[who] = -1;
                bh_vsock_host_event(c, EPOLLIN | EPOLLRDHUP | EPOLLHUP);
            } else if (send(peers[who], "host data", 9, MSG_NOSIGNAL | MSG_DONTWAIT) >= 0) {
                bh_vsock_host_event(c, EPOLLIN | EPOLLOUT);
            }
        }
        if (!bh_vsock_rx_pump(&k, rx, &rx_chain, why, sizeof why))
            break;
        if (k.connections > k.max_connections)
            __builtin_trap();
    }
    bh_vsock_close_all(&k);
    for (int i = 0; i < 2; i++)
        if (peers[i] >= 0)
            close(peers[i]);
    bh_virtio_teardown(&v);
    fuzz_mem_free(&m);
    return 0;
}
