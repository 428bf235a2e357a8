/*
 * i8042.c — the PC keyboard controller, reduced to what a Linux guest uses: the command byte
 * (CTR), the self-tests, port enable/disable, and the reset line. No keyboard or mouse is
 * attached: the AUX tests fail (so Linux skips the mouse port at once) and bytes sent to the
 * keyboard get no answer (atkbd gives up in the background).
 *
 * Reset is how a guest without ACPI restarts (`reboot=k`, and Linux's fallback chain): command
 * 0xFE, any other "pulse output port" command with bit 0 clear, or an output-port write with the
 * reset bit clear. It stops the VM with BH_EXIT_GUEST_REQUEST and the reason "reset".
 */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "bulkhead.h"

#define I8042_DATA_PORT 0x60
#define I8042_CMD_PORT 0x64

#define STR_OBF 0x01    /* output buffer full: data for the guest at 0x60 */
#define STR_SYSFLAG 0x04
#define STR_CMDDAT 0x08 /* last write was a command */

#define CTR_KBDINT 0x01
#define CTR_SYSFLAG 0x04
#define CTR_KBDDIS 0x10
#define CTR_AUXDIS 0x20
#define CTR_XLATE 0x40

#define CMD_READ_CTR 0x20
#define CMD_WRITE_CTR 0x60
#define CMD_AUX_DISABLE 0xa7
#define CMD_AUX_ENABLE 0xa8
#define CMD_AUX_TEST 0xa9
#define CMD_SELF_TEST 0xaa
#define CMD_KBD_TEST 0xab
#define CMD_KBD_DISABLE 0xad
#define CMD_KBD_ENABLE 0xae
#define CMD_READ_OUTPORT 0xd0
#define CMD_WRITE_OUTPORT 0xd1
#define CMD_WRITE_KBD_OUT 0xd2
#define CMD_WRITE_AUX_OUT 0xd3 /* Linux's AUX loopback test */
#define CMD_WRITE_AUX 0xd4
#define CMD_PULSE_FIRST 0xf0

#define SELF_TEST_OK 0x55
#define AUX_TEST_CLOCK_STUCK 0x01
#define OUTPORT_RESET_RELEASED 0x01

struct bh_i8042 {
    bh_vm *vm;
    pthread_mutex_t lock;
    uint8_t ctr;
    uint8_t status;
    uint8_t out;         /* the output buffer, valid when STR_OBF */
    uint8_t pending_cmd; /* a command that takes a data byte, or 0 */
    unsigned resets;
};

static void kbc_output(bh_i8042 *k, uint8_t byte)
{
    k->out = byte;
    k->status |= STR_OBF;
}

static void kbc_reset(bh_i8042 *k)
{
    k->resets++;
    bh_vm_request_stop(k->vm, BH_EXIT_GUEST_REQUEST, BH_GUEST_REQUEST_RESET_LINE, "reset");
}

static void kbc_command(bh_i8042 *k, uint8_t cmd)
{
    k->status |= STR_CMDDAT;
    switch (cmd) {
    case CMD_READ_CTR: kbc_output(k, k->ctr); break;
    case CMD_AUX_DISABLE: k->ctr |= CTR_AUXDIS; break;
    case CMD_AUX_ENABLE: k->ctr &= (uint8_t)~CTR_AUXDIS; break;
    case CMD_AUX_TEST: kbc_output(k, AUX_TEST_CLOCK_STUCK); break; /* no mouse here */
    case CMD_SELF_TEST: k->status |= STR_SYSFLAG, kbc_output(k, SELF_TEST_OK); break;
    case CMD_KBD_TEST: kbc_output(k, 0x00); break;
    case CMD_KBD_DISABLE: k->ctr |= CTR_KBDDIS; break;
    case CMD_KBD_ENABLE: k->ctr &= (uint8_t)~CTR_KBDDIS; break;
    case CMD_READ_OUTPORT: kbc_output(k, OUTPORT_RESET_RELEASED); break;
    case CMD_WRITE_CTR:
    case CMD_WRITE_OUTPORT:
    case CMD_WRITE_KBD_OUT:
    case CMD_WRITE_AUX_OUT:
    case CMD_WRITE_AUX:
        k->pending_cmd = cmd;
        break;
    default:
        /* 0xF0-0xFF pulse output-port lines low; bit 0 is the CPU reset line (0xFE). */
        if (cmd >= CMD_PULSE_FIRST && !(cmd & 1))
            kbc_reset(k);
        break;
    }
}

static void kbc_data(bh_i8042 *k, uint8_t v)
{
    uint8_t cmd = k->pending_cmd;
    k->pending_cmd = 0;
    k->status &= (uint8_t)~STR_CMDDAT;
    switch (cmd) {
    case CMD_WRITE_CTR: k->ctr = v; break;
    case CMD_WRITE_OUTPORT:
        if (!(v & OUTPORT_RESET_RELEASED))
            kbc_reset(k);
        break;
    case CMD_WRITE_KBD_OUT: kbc_output(k, v); break;
    case CMD_WRITE_AUX_OUT: kbc_output(k, (uint8_t)~v); break; /* loopback fails: no AUX port */
    default: break; /* to the keyboard or mouse, neither of which is attached */
    }
}

static bh_io_result kbc_io(void *opaque, bh_io_access *a)
{
    bh_i8042 *k = opaque;
    pthread_mutex_lock(&k->lock);
    if (a->addr == I8042_CMD_PORT) {
        if (a->is_write)
            kbc_command(k, a->data[0]);
        else
            a->data[0] = k->status;
    } else if (a->is_write) {
        kbc_data(k, a->data[0]);
    } else {
        a->data[0] = k->out;
        k->status &= (uint8_t)~STR_OBF;
    }
    pthread_mutex_unlock(&k->lock);
    return BH_IO_DONE;
}

static void i8042_destroy(void *opaque)
{
    bh_i8042 *k = opaque;
    pthread_mutex_destroy(&k->lock);
    free(k);
}

static const bh_device_ops i8042_ops = {.name = "i8042", .destroy = i8042_destroy};

int bh_i8042_create(bh_vm *vm, bh_i8042 **out, bh_error *err)
{
    bh_i8042 *k = calloc(1, sizeof *k);
    if (!k) {
        if (err) {
            err->code = BH_E_NOMEM, err->sys_errno = 0;
            strcpy(err->message, "out of memory for the i8042");
        }
        return BH_E_NOMEM;
    }
    k->vm = vm;
    k->ctr = CTR_KBDINT | CTR_SYSFLAG | CTR_XLATE;
    k->status = STR_SYSFLAG;
    pthread_mutex_init(&k->lock, NULL);
    /* The VM owns it before any port is registered: if the second registration fails, the first
     * range still points at it, and the VM frees it only after its threads are gone. */
    int rc = bh_vm_attach_device(vm, &i8042_ops, k, err);
    if (rc) {
        i8042_destroy(k);
        return rc;
    }
    rc = bh_vm_register_pio(vm, I8042_DATA_PORT, 1, kbc_io, k, err);
    if (!rc)
        rc = bh_vm_register_pio(vm, I8042_CMD_PORT, 1, kbc_io, k, err);
    if (rc)
        return rc;
    *out = k;
    return 0;
}

unsigned bh_i8042_resets(const bh_i8042 *k)
{
    return __atomic_load_n(&k->resets, __ATOMIC_RELAXED);
}
