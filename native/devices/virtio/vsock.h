/*
 * vsock.h — virtio-vsock in user space (virtio 1.2 §5.10), shared by its files:
 *   vsock_packet.c  the 44-byte packet header
 *   vsock_conn.c    the connection table, host sockets, and what the guest's packets do
 *   vsock_rx.c      packets for the guest: control replies and host data, under flow control
 *   vsock.c         the virtio device, the host listener, create/destroy
 *
 * Host side (Firecracker's scheme): a guest connection to host port P is connected to the Unix
 * socket "<uds>_P"; a host client connects to <uds>, writes "CONNECT <port>\n" and reads
 * "OK <host port>\n" once the guest accepted.
 *
 * Everything here runs on the VM's I/O thread with the transport's work_lock held (queue kicks,
 * host-socket events, the close timer), so the core needs no lock of its own. Without a VM (the
 * fuzzer) there is no listener and guest connections to the host are refused (reset).
 *
 * Bounds: at most max_connections connections; per connection at most BH_VSOCK_BUF_ALLOC bytes of
 * guest data waiting for a slow host socket (the credit we give the guest); at most
 * BH_VSOCK_MAX_ORPHAN_RSTS resets for unknown connections waiting for a guest buffer (when full, the
 * device stops reading the guest's transmit queue until the guest gives it receive buffers).
 */
#ifndef BH_DEVICES_VIRTIO_VSOCK_H
#define BH_DEVICES_VIRTIO_VSOCK_H

#include <sys/uio.h>

#include "virtio.h"

#define BH_VSOCK_HOST_CID 2
#define BH_VSOCK_HDR_SIZE 44
#define BH_VSOCK_MAX_PAYLOAD (64 * 1024)   /* VIRTIO_VSOCK_MAX_PKT_BUF_SIZE */
#define BH_VSOCK_BUF_ALLOC (256 * 1024)    /* the receive buffer we advertise per connection */
#define BH_VSOCK_CREDIT_STEP (128 * 1024)  /* send a credit update after forwarding this much */
#define BH_VSOCK_MAX_ORPHAN_RSTS 64
#define BH_VSOCK_HANDSHAKE_MAX 64          /* "CONNECT 4294967295\n" and a little early data */
#define BH_VSOCK_CLOSE_TIMEOUT_NS (2ULL * 1000 * 1000 * 1000)
#define BH_VSOCK_BUCKETS 256
#define BH_VSOCK_FIRST_HOST_PORT (1u << 30)

#define BH_VSOCK_TYPE_STREAM 1
enum {
    BH_VSOCK_OP_REQUEST = 1,
    BH_VSOCK_OP_RESPONSE = 2,
    BH_VSOCK_OP_RST = 3,
    BH_VSOCK_OP_SHUTDOWN = 4,
    BH_VSOCK_OP_RW = 5,
    BH_VSOCK_OP_CREDIT_UPDATE = 6,
    BH_VSOCK_OP_CREDIT_REQUEST = 7,
};
#define BH_VSOCK_SHUTDOWN_RCV 1u
#define BH_VSOCK_SHUTDOWN_SEND 2u

typedef struct bh_vsock_hdr {
    uint64_t src_cid, dst_cid;
    uint32_t src_port, dst_port;
    uint32_t len;
    uint16_t type, op;
    uint32_t flags;
    uint32_t buf_alloc, fwd_cnt;
} bh_vsock_hdr;

void bh_vsock_hdr_decode(const uint8_t raw[BH_VSOCK_HDR_SIZE], bh_vsock_hdr *h);
void bh_vsock_hdr_encode(const bh_vsock_hdr *h, uint8_t raw[BH_VSOCK_HDR_SIZE]);
/* Checks a transmitted chain's header and payload length against the chain: false with `why` for a
 * packet no driver can send (the device is then failed). */
bool bh_vsock_parse_tx(const bh_vq_chain *c, bh_vsock_hdr *h, char *why, size_t why_len);

typedef enum bh_vsock_state {
    BH_VSOCK_HANDSHAKE = 1, /* a host client is sending its CONNECT line */
    BH_VSOCK_CONNECTING,    /* REQUEST to the guest sent or queued; waiting for RESPONSE */
    BH_VSOCK_ESTABLISHED,
    BH_VSOCK_CLOSING,       /* we told the guest we are done; waiting for its RST (or the timeout) */
} bh_vsock_state;

/* Control packets a connection still owes the guest (sent in this order of priority). */
#define BH_VSOCK_SEND_RST 0x01u
#define BH_VSOCK_SEND_RESPONSE 0x02u
#define BH_VSOCK_SEND_REQUEST 0x04u
#define BH_VSOCK_SEND_SHUTDOWN 0x08u
#define BH_VSOCK_SEND_CREDIT 0x10u

typedef struct bh_vsock_conn {
    struct bh_vsock_core *core;
    bh_vsock_state state;
    uint32_t local_port;  /* the host side's port */
    uint32_t peer_port;   /* the guest side's port */
    int fd;               /* the host socket, -1 once closed */
    bool watched;
    bool in_table;

    uint32_t owe;          /* BH_VSOCK_SEND_* */
    uint32_t shutdown_flags; /* what SHUTDOWN says, once owed */
    bool free_after_send;  /* an owed RST: the connection goes once it is sent */

    /* Host -> guest. */
    bool host_readable;    /* edge-triggered: data or EOF may be waiting */
    bool host_eof;         /* read side finished (EOF seen) */
    bool host_hup;         /* the host peer closed entirely */
    uint32_t tx_cnt;       /* payload bytes sent to the guest */
    uint32_t peer_buf_alloc, peer_fwd_cnt; /* the guest's last credit */
    bool guest_no_recv;    /* the guest said SHUTDOWN_RCV */
    uint8_t early[BH_VSOCK_HANDSHAKE_MAX]; /* host bytes after the CONNECT line */
    size_t early_len;

    /* Guest -> host. */
    uint32_t rx_cnt;       /* payload bytes received from the guest */
    uint32_t fwd_cnt;      /* of those, written to the host socket */
    uint32_t fwd_cnt_told; /* the fwd_cnt the guest last saw */
    uint8_t *pending;      /* guest bytes the host socket did not take yet */
    size_t pending_len;
    bool guest_no_send;    /* the guest said SHUTDOWN_SEND: half-close the host once drained */
    bool host_write_shut;

    char handshake[BH_VSOCK_HANDSHAKE_MAX];
    size_t handshake_len;
    uint64_t close_deadline_ns;

    struct bh_vsock_conn *hash_next;
    struct bh_vsock_conn *rx_next; /* the queue of connections with something for the guest */
    bool in_rx_queue;
    struct bh_vsock_conn *all_next, *all_prev;
} bh_vsock_conn;

typedef struct bh_vsock_orphan_rst {
    uint32_t local_port, peer_port;
} bh_vsock_pending_rst;

typedef struct bh_vsock_core {
    bh_vm *vm;              /* for watching host sockets; NULL in the fuzzer */
    bh_virtio *transport;   /* kicks and failure */
    uint64_t guest_cid;
    char uds[108];
    uint32_t max_connections;

    bh_vsock_conn *buckets[BH_VSOCK_BUCKETS];
    bh_vsock_conn *all;     /* every connection, handshaking ones included */
    uint32_t connections;   /* atomic for readers on other threads */
    bh_vsock_conn *rx_head, *rx_tail;
    bh_vsock_pending_rst rsts[BH_VSOCK_MAX_ORPHAN_RSTS];
    uint32_t rst_head, rst_len;
    bool tx_blocked;        /* stopped reading the transmit queue until resets drain */
    uint32_t next_host_port;
    int timer_fd;           /* the close timer, -1 without a VM */
    bool timer_armed;

    bool reset_pending;     /* the driver reset the device: close everything on the I/O thread */
    bh_vq_chain *chain;     /* the device's scratch chain for the receive pump */

    struct iovec iov[BH_VQ_MAX_SEGMENTS];
    uint64_t bytes_to_host, bytes_to_guest; /* atomic */
} bh_vsock_core;

/* vsock_conn.c */
void bh_vsock_core_init(bh_vsock_core *k, bh_vm *vm, bh_virtio *transport, uint64_t guest_cid, const char *uds,
                        uint32_t max_connections);
/* Every connection gone (driver reset, stop): host sockets closed. */
void bh_vsock_close_all(bh_vsock_core *k);
/* One packet the guest sent (header checked by bh_vsock_parse_tx). */
void bh_vsock_guest_packet(bh_vsock_core *k, const bh_vsock_hdr *h, const bh_vq_chain *c);
/* A host client connected to <uds> (fd non-blocking, owned by the core from here on); returns it
 * (NULL when refused: too many connections). */
bh_vsock_conn *bh_vsock_host_accepted(bh_vsock_core *k, int fd);
/* A host socket's events (EPOLL* bits), as the I/O thread delivers them; may free c. */
void bh_vsock_host_event(bh_vsock_conn *c, uint32_t events);
/* The close timer fired. */
void bh_vsock_timer(bh_vsock_core *k, uint64_t now_ns);
bh_vsock_conn *bh_vsock_find(bh_vsock_core *k, uint32_t local_port, uint32_t peer_port);
void bh_vsock_conn_free(bh_vsock_conn *c);
/* Queues the connection for the receive pump (it owes a packet or has data). */
void bh_vsock_want_rx(bh_vsock_conn *c);
void bh_vsock_owe(bh_vsock_conn *c, uint32_t what);
/* Writes pending guest data to the host socket; false if the socket failed (then RST is owed). */
bool bh_vsock_flush_to_host(bh_vsock_conn *c);
uint64_t bh_vsock_now_ns(void);
/* After SHUTDOWN(RCV|SEND) went to the guest: wait for its RST, at most BH_VSOCK_CLOSE_TIMEOUT_NS. */
void bh_vsock_enter_closing(bh_vsock_conn *c);
/* I/O-thread entry points call this first (with work_lock held): true if a driver reset was
 * carried out, after which no connection pointer they hold is valid. */
bool bh_vsock_apply_reset(bh_vsock_core *k);

/* vsock_rx.c */
/* Runs the receive pump if the device is live, interrupts the guest, fails the device if its receive
 * queue is broken (work_lock held). */
void bh_vsock_pump(bh_vsock_core *k);
/* Fills the guest's receive buffers. False (with `why`) if the receive queue is broken. */
bool bh_vsock_rx_pump(bh_vsock_core *k, bh_virtq *q, bh_vq_chain *chain, char *why, size_t why_len);
/* Whether the transmit queue may be read (resets for unknown connections have room). */
bool bh_vsock_tx_allowed(const bh_vsock_core *k);
/* Queues a reset for a packet that names no connection; false when the ring is full. */
bool bh_vsock_orphan_rst(bh_vsock_core *k, uint32_t local_port, uint32_t peer_port);

#endif
