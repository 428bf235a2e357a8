/*
 * serial.c — a 16550A UART (COM1: port 0x3f8, IRQ 4), enough for Linux's 8250 driver and its
 * autoconfig: scratch and IER probes, the loopback test (MCR -> MSR), FIFO identification, and a
 * THRE interrupt that re-asserts while the transmitter is idle and enabled.
 *
 * Transmission is instant: a byte written to THR goes to the output callback and to a ring of the
 * most recent output, so LSR always shows THRE|TEMT. Received bytes come from the host
 * (bh_serial_input, any thread) through a bounded queue that stands for the receive FIFO. The
 * IRQ line follows "an interrupt is pending" and is only touched when that changes.
 */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "bulkhead.h"

#define UART_RX_QUEUE 4096
#define UART_DEFAULT_RING (64 * 1024)

/* Register offsets. */
#define UART_RBR_THR_DLL 0
#define UART_IER_DLM 1
#define UART_IIR_FCR 2
#define UART_LCR 3
#define UART_MCR 4
#define UART_LSR 5
#define UART_MSR 6
#define UART_SCR 7

#define IER_RDI 0x01  /* received data available */
#define IER_THRI 0x02 /* transmitter holding register empty */
#define IER_MASK 0x0f
#define IIR_NO_INT 0x01
#define IIR_THRI 0x02
#define IIR_RDI 0x04
#define IIR_FIFO_ENABLED 0xc0
#define FCR_ENABLE 0x01
#define FCR_CLEAR_RX 0x02
#define LCR_DLAB 0x80
#define MCR_DTR 0x01
#define MCR_RTS 0x02
#define MCR_OUT1 0x04
#define MCR_OUT2 0x08
#define MCR_LOOP 0x10
#define MCR_MASK 0x1f
#define LSR_DR 0x01
#define LSR_THRE 0x20
#define LSR_TEMT 0x40
#define MSR_CTS 0x10
#define MSR_DSR 0x20
#define MSR_RI 0x40
#define MSR_DCD 0x80

struct bh_serial {
    bh_vm *vm;
    bh_serial_config config;
    pthread_mutex_t lock;

    uint8_t ier, lcr, mcr, scr, fcr, dll, dlm;
    bool thr_ipending; /* THRE interrupt latched, cleared by reading it in IIR or writing THR */
    bool irq_level;

    uint8_t rx[UART_RX_QUEUE];
    size_t rx_head, rx_count;

    uint8_t *ring;
    size_t ring_size, ring_pos;
    bool ring_full;
};

static uint8_t uart_iir_locked(const bh_serial *s)
{
    uint8_t fifo = (s->fcr & FCR_ENABLE) ? IIR_FIFO_ENABLED : 0;
    if ((s->ier & IER_RDI) && s->rx_count)
        return fifo | IIR_RDI;
    if ((s->ier & IER_THRI) && s->thr_ipending)
        return fifo | IIR_THRI;
    return fifo | IIR_NO_INT;
}

/* Raises or lowers the IRQ line when "an interrupt is pending" changed. */
static void uart_update_irq_locked(bh_serial *s)
{
    bool level = !(uart_iir_locked(s) & IIR_NO_INT);
    if (level != s->irq_level) {
        s->irq_level = level;
        bh_vm_set_irq_line(s->vm, s->config.irq, level, NULL);
    }
}

static void uart_rx_push_locked(bh_serial *s, uint8_t byte)
{
    if (s->rx_count == UART_RX_QUEUE)
        return; /* overrun: the byte is lost, as on hardware */
    s->rx[(s->rx_head + s->rx_count) % UART_RX_QUEUE] = byte;
    s->rx_count++;
}

static uint8_t uart_rx_pop_locked(bh_serial *s)
{
    if (!s->rx_count)
        return 0;
    uint8_t byte = s->rx[s->rx_head];
    s->rx_head = (s->rx_head + 1) % UART_RX_QUEUE;
    s->rx_count--;
    return byte;
}

static void uart_ring_append_locked(bh_serial *s, uint8_t byte)
{
    s->ring[s->ring_pos++] = byte;
    if (s->ring_pos == s->ring_size) {
        s->ring_pos = 0;
        s->ring_full = true;
    }
}

static uint8_t uart_msr_locked(const bh_serial *s)
{
    if (s->mcr & MCR_LOOP) /* loopback wires the modem outputs to the inputs */
        return (uint8_t)(((s->mcr & MCR_RTS) ? MSR_CTS : 0) | ((s->mcr & MCR_DTR) ? MSR_DSR : 0) |
                         ((s->mcr & MCR_OUT1) ? MSR_RI : 0) | ((s->mcr & MCR_OUT2) ? MSR_DCD : 0));
    return MSR_DCD | MSR_DSR | MSR_CTS; /* a connected, ready terminal */
}

static uint8_t uart_read_locked(bh_serial *s, uint64_t reg)
{
    bool dlab = s->lcr & LCR_DLAB;
    switch (reg) {
    case UART_RBR_THR_DLL:
        return dlab ? s->dll : uart_rx_pop_locked(s);
    case UART_IER_DLM:
        return dlab ? s->dlm : s->ier;
    case UART_IIR_FCR: {
        uint8_t iir = uart_iir_locked(s);
        if ((iir & 0x0f) == IIR_THRI)
            s->thr_ipending = false; /* reading THRE as the source acknowledges it */
        return iir;
    }
    case UART_LCR:
        return s->lcr;
    case UART_MCR:
        return s->mcr;
    case UART_LSR:
        return LSR_THRE | LSR_TEMT | (s->rx_count ? LSR_DR : 0);
    case UART_MSR:
        return uart_msr_locked(s);
    default:
        return s->scr;
    }
}

/* Returns true when `byte` was transmitted (to be passed to the output callback). */
static bool uart_write_locked(bh_serial *s, uint64_t reg, uint8_t v, uint8_t *byte)
{
    bool dlab = s->lcr & LCR_DLAB;
    switch (reg) {
    case UART_RBR_THR_DLL:
        if (dlab) {
            s->dll = v;
            return false;
        }
        s->thr_ipending = true; /* sent at once: THR is empty again */
        if (s->mcr & MCR_LOOP) {
            uart_rx_push_locked(s, v);
            return false;
        }
        uart_ring_append_locked(s, v);
        *byte = v;
        return true;
    case UART_IER_DLM:
        if (dlab) {
            s->dlm = v;
        } else {
            if (!(s->ier & IER_THRI) && (v & IER_THRI))
                s->thr_ipending = true; /* enabling THRE with THR empty raises it */
            s->ier = v & IER_MASK;
        }
        return false;
    case UART_IIR_FCR:
        s->fcr = v & 0xc9; /* enable, DMA mode and trigger level are kept */
        if (v & FCR_CLEAR_RX)
            s->rx_head = s->rx_count = 0;
        return false;
    case UART_LCR:
        s->lcr = v;
        return false;
    case UART_MCR:
        s->mcr = v & MCR_MASK;
        return false;
    case UART_LSR:
    case UART_MSR:
        return false; /* read-only */
    default:
        s->scr = v;
        return false;
    }
}

static bh_io_result uart_io(void *opaque, bh_io_access *a)
{
    bh_serial *s = opaque;
    uint8_t out = 0;
    bool sent = false;
    pthread_mutex_lock(&s->lock);
    if (a->is_write)
        sent = uart_write_locked(s, a->offset, a->data[0], &out);
    else
        a->data[0] = uart_read_locked(s, a->offset);
    for (uint8_t i = 1; i < a->size && !a->is_write; i++)
        a->data[i] = 0xff;
    uart_update_irq_locked(s);
    pthread_mutex_unlock(&s->lock);
    if (sent && s->config.output)
        s->config.output(s->config.opaque, &out, 1);
    return BH_IO_DONE;
}

static void serial_destroy(void *opaque)
{
    bh_serial *s = opaque;
    pthread_mutex_destroy(&s->lock);
    free(s->ring);
    free(s);
}

static const bh_device_ops serial_ops = {.name = "16550 UART", .destroy = serial_destroy};

int bh_serial_create(bh_vm *vm, const bh_serial_config *config, bh_serial **out, bh_error *err)
{
    bh_serial *s = calloc(1, sizeof *s);
    size_t ring = config->ring_bytes ? config->ring_bytes : UART_DEFAULT_RING;
    if (s)
        s->ring = malloc(ring);
    if (!s || !s->ring) {
        if (s)
            free(s);
        if (err) {
            err->code = BH_E_NOMEM, err->sys_errno = 0;
            strcpy(err->message, "out of memory for the serial port");
        }
        return BH_E_NOMEM;
    }
    s->vm = vm;
    s->config = *config;
    s->ring_size = ring;
    s->lcr = 0x03; /* 8N1 */
    s->dll = 0x0c; /* 9600 baud, as a BIOS leaves it */
    pthread_mutex_init(&s->lock, NULL);
    /* Owned by the VM from here on, so it is freed even if the registration below fails. */
    int rc = bh_vm_attach_device(vm, &serial_ops, s, err);
    if (rc) {
        serial_destroy(s);
        return rc;
    }
    rc = bh_vm_register_pio(vm, config->port, 8, uart_io, s, err);
    if (rc)
        return rc;
    *out = s;
    return 0;
}

size_t bh_serial_input(bh_serial *s, const uint8_t *data, size_t len)
{
    size_t n = 0;
    pthread_mutex_lock(&s->lock);
    for (; n < len && s->rx_count < UART_RX_QUEUE; n++)
        uart_rx_push_locked(s, data[n]);
    uart_update_irq_locked(s);
    pthread_mutex_unlock(&s->lock);
    return n;
}

size_t bh_serial_recent_output(bh_serial *s, uint8_t *dst, size_t max)
{
    pthread_mutex_lock(&s->lock);
    size_t have = s->ring_full ? s->ring_size : s->ring_pos;
    size_t n = have < max ? have : max;
    /* The last n bytes end at ring_pos (exclusive), wrapping around. */
    size_t start = (s->ring_pos + s->ring_size - n) % s->ring_size;
    for (size_t i = 0; i < n; i++)
        dst[i] = s->ring[(start + i) % s->ring_size];
    pthread_mutex_unlock(&s->lock);
    return n;
}
