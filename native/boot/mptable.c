/*
 * mptable.c — an Intel MultiProcessor Specification 1.4 table, so a guest without ACPI finds
 * every vCPU (one processor entry each, APIC ID = vCPU index), the ISA bus, the IOAPIC and how
 * IRQs 0-23 reach it (identity, as KVM's default GSI routing wires them), plus LINT0 = ExtINT and
 * LINT1 = NMI. The floating pointer sits in the BIOS area (0xF0000) Linux scans, followed by the
 * configuration table; e820 marks the area reserved.
 */
#include <string.h>

#include "boot_internal.h"
#include "layout.h"

#define MP_SPEC_REV 4
#define MPF_SIZE 16
#define MPC_HEADER_SIZE 44
#define MP_PROC_SIZE 20
#define MP_ENTRY_SIZE 8
#define MP_IRQS 24
#define MP_APIC_VERSION 0x14
#define MP_IOAPIC_VERSION 0x11
#define MP_TYPE_PROCESSOR 0
#define MP_TYPE_BUS 1
#define MP_TYPE_IOAPIC 2
#define MP_TYPE_INTSRC 3
#define MP_TYPE_LINTSRC 4
#define MP_INT 0
#define MP_NMI 1
#define MP_EXTINT 3
#define MP_CPU_ENABLED 0x01
#define MP_CPU_BOOT 0x02
#define MP_ISA_BUS 0
#define MP_ALL_LAPICS 0xff
#define MP_MAX_SIZE (MPF_SIZE + MPC_HEADER_SIZE + BH_MAX_VCPUS_HARD_LIMIT * MP_PROC_SIZE + 64 * 8)

static uint8_t mp_checksum(const uint8_t *p, size_t len)
{
    uint8_t sum = 0;
    for (size_t i = 0; i < len; i++)
        sum = (uint8_t)(sum + p[i]);
    return (uint8_t)-sum;
}

static size_t mp_processor(uint8_t *p, uint32_t id, uint32_t signature, uint32_t features)
{
    p[0] = MP_TYPE_PROCESSOR;
    p[1] = (uint8_t)id;
    p[2] = MP_APIC_VERSION;
    p[3] = MP_CPU_ENABLED | (id == 0 ? MP_CPU_BOOT : 0);
    bh_put32(p + 4, signature);
    bh_put32(p + 8, features);
    return MP_PROC_SIZE;
}

static size_t mp_bus_isa(uint8_t *p)
{
    p[0] = MP_TYPE_BUS;
    p[1] = MP_ISA_BUS;
    memcpy(p + 2, "ISA   ", 6);
    return MP_ENTRY_SIZE;
}

static size_t mp_ioapic(uint8_t *p, uint8_t id)
{
    p[0] = MP_TYPE_IOAPIC;
    p[1] = id;
    p[2] = MP_IOAPIC_VERSION;
    p[3] = 1; /* enabled */
    bh_put32(p + 4, (uint32_t)BH_IOAPIC_BASE);
    return MP_ENTRY_SIZE;
}

/* Flags 0: polarity and trigger "conform to the bus" (ISA: active high, edge). */
static size_t mp_intsrc(uint8_t *p, uint8_t type, uint8_t irq, uint8_t ioapic, uint8_t pin)
{
    p[0] = MP_TYPE_INTSRC;
    p[1] = type;
    bh_put16(p + 2, 0);
    p[4] = MP_ISA_BUS;
    p[5] = irq;
    p[6] = ioapic;
    p[7] = pin;
    return MP_ENTRY_SIZE;
}

static size_t mp_lintsrc(uint8_t *p, uint8_t type, uint8_t lint)
{
    p[0] = MP_TYPE_LINTSRC;
    p[1] = type;
    bh_put16(p + 2, 0);
    p[4] = MP_ISA_BUS;
    p[5] = 0;
    p[6] = MP_ALL_LAPICS;
    p[7] = lint;
    return MP_ENTRY_SIZE;
}

static void mp_header(uint8_t *h, size_t length, uint16_t entries)
{
    memcpy(h, "PCMP", 4);
    bh_put16(h + 4, (uint16_t)length);
    h[6] = MP_SPEC_REV;
    memcpy(h + 8, "BULKHEAD", 8);
    memcpy(h + 16, "VM          ", 12);
    bh_put16(h + 34, entries);
    bh_put32(h + 36, (uint32_t)BH_LAPIC_BASE);
    h[7] = mp_checksum(h, length);
}

static void mp_floating_pointer(uint8_t *f, uint32_t table_addr)
{
    memcpy(f, "_MP_", 4);
    bh_put32(f + 4, table_addr);
    f[8] = 1; /* length in 16-byte units */
    f[9] = MP_SPEC_REV;
    f[11] = 0; /* a configuration table is present */
    f[12] = 0; /* virtual wire mode, no IMCR */
    f[10] = mp_checksum(f, MPF_SIZE);
}

int bh_boot_write_mptable(bh_vm *vm, uint32_t vcpus, uint32_t cpu_signature, uint32_t cpu_features,
                          bh_error *err)
{
    uint8_t buf[MP_MAX_SIZE];
    if (vcpus == 0 || vcpus >= MP_ALL_LAPICS)
        return bh_boot_invalid(err, "MP table: %u vCPUs (1..254 fit 8-bit APIC IDs)", vcpus);
    memset(buf, 0, sizeof buf);
    uint8_t *table = buf + MPF_SIZE, *p = table + MPC_HEADER_SIZE;
    uint16_t entries = 0;
    uint8_t ioapic_id = (uint8_t)vcpus;
    for (uint32_t i = 0; i < vcpus; i++, entries++)
        p += mp_processor(p, i, cpu_signature, cpu_features);
    p += mp_bus_isa(p), entries++;
    p += mp_ioapic(p, ioapic_id), entries++;
    for (uint8_t irq = 0; irq < MP_IRQS; irq++, entries++)
        p += mp_intsrc(p, MP_INT, irq, ioapic_id, irq);
    p += mp_lintsrc(p, MP_EXTINT, 0), entries++;
    p += mp_lintsrc(p, MP_NMI, 1), entries++;
    mp_header(table, (size_t)(p - table), entries);
    mp_floating_pointer(buf, (uint32_t)(BH_BOOT_MPTABLE_ADDR + MPF_SIZE));
    return bh_mem_write(vm, BH_BOOT_MPTABLE_ADDR, buf, (size_t)(p - buf), err);
}
