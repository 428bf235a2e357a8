/*
 * guest_builder.h — just enough machine state for hand-made test guests.
 *
 * Long-mode layout (guest-physical):
 *   0x1000  GDT: 0x08 code64 DPL0, 0x10 data DPL0, 0x18 code64 DPL3, 0x20 data DPL3, 0x28 TSS
 *   0x2000  TSS (rsp0 = GB_STACK_CPL0) with an I/O bitmap allowing every port (for CPL3 in/out)
 *   0x10000 page tables: identity map of 0 .. 4 GiB in 2 MiB pages, user-accessible, so MMIO in
 *           the hole (0xC0000000..) is reachable from CPL0 and CPL3
 *   the IDT is empty (limit 0): any exception escalates to a triple fault, which tests rely on.
 */
#ifndef BH_TESTS_GUEST_BUILDER_H
#define BH_TESTS_GUEST_BUILDER_H

#include <stddef.h>
#include <stdint.h>

#include "bulkhead.h"

#define GB_GDT 0x1000ULL
#define GB_TSS 0x2000ULL
#define GB_IO_BITMAP_BYTES 8192
#define GB_TSS_LIMIT (104 + GB_IO_BITMAP_BYTES) /* TSS + I/O bitmap + terminator byte, minus 1 */
#define GB_PML4 0x10000ULL
#define GB_CODE 0x20000ULL     /* where tests put guest code */
#define GB_DATA 0x30000ULL     /* where guests leave results */
#define GB_STACK_CPL0 0x7f000ULL
#define GB_STACK 0x80000ULL

#define GB_SEL_CODE0 0x08
#define GB_SEL_DATA0 0x10
#define GB_SEL_CODE3 0x1b
#define GB_SEL_DATA3 0x23
#define GB_SEL_TSS 0x28

int gb_load(bh_vm *vm, uint64_t gpa, const void *code, size_t len, bh_error *err);
/* Real mode, CS:IP = 0:entry, DS = ES = SS = 0, SP = 0xfff0. */
int gb_real_mode(bh_vm *vm, uint32_t vcpu, uint16_t entry, bh_error *err);
/* Writes GDT, TSS and page tables (once per VM). */
int gb_long_mode_tables(bh_vm *vm, bh_error *err);
/* 64-bit mode at privilege `cpl` (0 or 3); at CPL3 RFLAGS.IOPL = 3 so the guest may use in/out/cli. */
int gb_long_mode(bh_vm *vm, uint32_t vcpu, uint64_t entry, uint64_t stack, int cpl, bh_error *err);

#endif
