/*
 * layout.h — where the Linux loader puts things in guest-physical memory, in one place.
 *
 *   0x000500  GDT (null, null, __BOOT_CS 0x10, __BOOT_DS 0x18, TSS 0x20)
 *   0x006000  hvm_start_info + its memory map (PVH entry only)
 *   0x007000  boot_params, the "zero page" (64-bit entry)
 *   0x009000  PML4, PDPT, then four page directories: 0-4 GiB identity-mapped with 2 MiB pages
 *   0x020000  kernel command line (up to 64 KiB)
 *   0x09fc00  EBDA (reserved, empty)
 *   0x0f0000  MP floating pointer, then the MP configuration table (BIOS area, reserved)
 *   0x100000  bzImage protected-mode code; a vmlinux goes to its own physical addresses (>= 1 MiB)
 *   top       initrd, as high as it fits below initrd_addr_max and the end of low RAM
 */
#ifndef BH_BOOT_LAYOUT_H
#define BH_BOOT_LAYOUT_H

#define BH_BOOT_GDT_ADDR 0x500ULL
#define BH_BOOT_PVH_INFO_ADDR 0x6000ULL
#define BH_BOOT_PVH_MEMMAP_ADDR 0x6100ULL
#define BH_BOOT_ZERO_PAGE_ADDR 0x7000ULL
#define BH_BOOT_PML4_ADDR 0x9000ULL
#define BH_BOOT_PDPT_ADDR 0xa000ULL
#define BH_BOOT_PD_ADDR 0xb000ULL /* four pages: 0xb000 .. 0xefff */
#define BH_BOOT_PD_COUNT 4        /* 4 x 512 x 2 MiB = 4 GiB */
#define BH_BOOT_STACK_TOP 0x8ff0ULL /* a scratch stack for the first instructions (PVH) */
#define BH_BOOT_CMDLINE_ADDR 0x20000ULL
#define BH_BOOT_CMDLINE_MAX 0x10000ULL
#define BH_BOOT_EBDA_START 0x9fc00ULL
#define BH_BOOT_VGA_START 0xa0000ULL
#define BH_BOOT_BIOS_START 0xf0000ULL
#define BH_BOOT_MPTABLE_ADDR 0xf0000ULL
#define BH_BOOT_HIGH_MEM 0x100000ULL /* 1 MiB: kernels load here or above */
#define BH_BOOT_BZIMAGE_LOAD 0x100000ULL

/* Boot-time GDT selectors the Linux 64-bit boot protocol requires. */
#define BH_BOOT_CS 0x10
#define BH_BOOT_DS 0x18
#define BH_BOOT_TSS 0x20

#define BH_LAPIC_BASE 0xfee00000ULL
#define BH_IOAPIC_BASE 0xfec00000ULL

#endif
