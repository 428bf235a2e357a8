/*
 * bulkhead.h — the embeddable C core of bulkhead.
 *
 * Plain C11, no Node.js types: any runtime can embed it. Linux/x86-64 only (it drives /dev/kvm).
 *
 * Conventions
 *  - Fallible functions return 0 on success or a negative bh_status, and fill *err (which may be NULL)
 *    with a code, the errno if one applies, and a message that says what was wrong.
 *  - Every access to guest memory goes through the bounds-checked bh_mem_* accessors. Nothing else in
 *    the core does pointer arithmetic on guest-physical addresses.
 *  - vCPUs run on their own native threads. Callbacks (I/O handlers, exit events) are called on those
 *    threads; an embedder that needs another thread marshals the call itself.
 *  - No function calls abort() or exit(): a broken guest ends its VM, never the host process.
 */
#ifndef BULKHEAD_H
#define BULKHEAD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ---------------------------------------------------------------------------------------------- */
/* Errors                                                                                          */

typedef enum bh_status {
    BH_OK = 0,
    BH_E_UNAVAILABLE = -1,  /* /dev/kvm missing, not accessible, or wrong API version */
    BH_E_INVALID_ARG = -2,  /* a caller-supplied value is out of range; message names it */
    BH_E_SYSTEM = -3,       /* a system call failed; err->sys_errno says which errno */
    BH_E_STATE = -4,        /* not allowed in the VM's current state */
    BH_E_OUT_OF_RANGE = -5, /* a guest-physical range is not (entirely) guest RAM */
    BH_E_BUSY = -6,         /* an I/O range overlaps one already registered */
    BH_E_TIMEOUT = -7,      /* a bounded wait ran out */
    BH_E_NOMEM = -8,
} bh_status;

typedef struct bh_error {
    bh_status code;
    int sys_errno;     /* errno for BH_E_SYSTEM / BH_E_UNAVAILABLE, else 0 */
    char message[256];
} bh_error;

/* ---------------------------------------------------------------------------------------------- */
/* The hypervisor: /dev/kvm                                                                        */

typedef struct bh_kvm bh_kvm;

/* Opens /dev/kvm (or `path` if not NULL) and checks KVM_GET_API_VERSION == 12. */
int bh_kvm_open(const char *path, bh_kvm **out, bh_error *err);
void bh_kvm_close(bh_kvm *kvm);
int bh_kvm_api_version(const bh_kvm *kvm);
/* KVM_CHECK_EXTENSION on the system fd: 0 when absent, else the capability's value (>0). */
int bh_kvm_check_extension(const bh_kvm *kvm, unsigned int cap);
/* KVM_CAP_MAX_VCPUS (falls back to NR_VCPUS, then 4, as the KVM API documents). */
int bh_kvm_max_vcpus(const bh_kvm *kvm);

/* The capabilities bulkhead knows by name, for probes and `doctor`. */
typedef struct bh_kvm_cap_info {
    const char *name; /* e.g. "KVM_CAP_IRQFD" */
    unsigned int id;
} bh_kvm_cap_info;
const bh_kvm_cap_info *bh_kvm_known_caps(size_t *count);

/* ---------------------------------------------------------------------------------------------- */
/* Virtual machines                                                                                */

typedef struct bh_vm bh_vm;

/* Guest RAM layout: one memfd-backed region at GPA 0 up to BH_MMIO_HOLE_START; what does not fit
 * there continues at 4 GiB. The range [BH_MMIO_HOLE_START, 4 GiB) is never RAM: device MMIO. */
#define BH_MMIO_HOLE_START 0xC0000000ULL
#define BH_MMIO_HOLE_END 0x100000000ULL
#define BH_MAX_VCPUS_HARD_LIMIT 256

typedef enum bh_vm_state {
    BH_VM_CREATED = 0, /* built; vCPU threads not started */
    BH_VM_RUNNING = 1,
    BH_VM_PAUSED = 2,  /* every vCPU thread parked outside KVM_RUN */
    BH_VM_STOPPED = 3, /* every vCPU thread has exited; cannot be restarted */
} bh_vm_state;

/* Why a vCPU left its run loop. Terminal for that vCPU; any reason other than BH_EXIT_HLT and
 * BH_EXIT_STOPPED also stops the whole VM (a triple-faulted or broken machine is dead). */
typedef enum bh_exit_reason {
    BH_EXIT_HLT = 1,            /* HLT exit (only without an in-kernel irqchip) */
    BH_EXIT_SHUTDOWN = 2,       /* triple fault */
    BH_EXIT_SYSTEM_EVENT = 3,   /* detail[0] = KVM_SYSTEM_EVENT_* type */
    BH_EXIT_FAIL_ENTRY = 4,     /* detail[0] = hardware_entry_failure_reason, detail[1] = cpu */
    BH_EXIT_INTERNAL_ERROR = 5, /* detail[0] = suberror, detail[1..3] = first data words */
    BH_EXIT_IO_ERROR = 6,       /* an I/O handler returned BH_IO_ERROR; detail[0] = addr */
    BH_EXIT_UNKNOWN = 7,        /* an exit reason the core does not handle; detail[0] = it */
    BH_EXIT_RUN_FAILED = 8,     /* KVM_RUN itself failed; error_errno says why */
    BH_EXIT_STOPPED = 9,        /* bh_vm_stop() / bh_vm_destroy() */
    BH_EXIT_GUEST_REQUEST = 10, /* a device model asked the VM to stop (reset, power-off) */
} bh_exit_reason;

typedef struct bh_vcpu_exit {
    uint32_t vcpu;
    bh_exit_reason reason;
    uint32_t kvm_exit_reason; /* raw KVM_EXIT_* of the last exit, 0 if none */
    uint64_t detail[4];
    int error_errno;
    uint64_t rip;             /* guest RIP when it left, if registers could be read */
    char message[160];        /* human text, e.g. "triple fault (KVM_EXIT_SHUTDOWN) at rip 0x1003" */
} bh_vcpu_exit;

/* Called on the vCPU's thread once when that vCPU leaves its run loop for good. */
typedef void (*bh_exit_callback)(void *opaque, const bh_vcpu_exit *exit);
/* Called (on whichever thread caused it) after the VM's state changes. */
typedef void (*bh_state_callback)(void *opaque, bh_vm_state state);

typedef struct bh_vm_config {
    uint64_t memory_bytes;  /* >= 1 MiB, multiple of 4 KiB */
    uint32_t vcpus;         /* 1 .. bh_kvm_max_vcpus() */
    bool irqchip;           /* in-kernel IOAPIC/PIC/LAPIC + PIT2 (when the host supports them) */
    bh_exit_callback on_exit;
    bh_state_callback on_state;
    void *opaque;           /* passed to both callbacks */
} bh_vm_config;

int bh_vm_create(bh_kvm *kvm, const bh_vm_config *config, bh_vm **out, bh_error *err);
/* Stops the VM if needed (bounded), joins all threads, closes every fd, unmaps all memory. */
void bh_vm_destroy(bh_vm *vm);

bh_vm_state bh_vm_get_state(const bh_vm *vm);
uint32_t bh_vm_vcpu_count(const bh_vm *vm);
bool bh_vm_has_irqchip(const bh_vm *vm);
int bh_vm_fd(const bh_vm *vm);

/* Starts one native thread per vCPU (CREATED -> RUNNING). */
int bh_vm_start(bh_vm *vm, bh_error *err);
/* RUNNING -> PAUSED; returns once every vCPU is parked outside KVM_RUN. Callable from any thread
 * except a vCPU thread. */
int bh_vm_pause(bh_vm *vm, bh_error *err);
int bh_vm_resume(bh_vm *vm, bh_error *err);
/* Any state -> STOPPED, bounded: kicks every vCPU out of KVM_RUN (immediate_exit + signal), wakes
 * any vCPU waiting on a pending I/O, and joins the threads. Safe to call more than once and from
 * any thread except a vCPU thread (a vCPU thread should use bh_vm_request_stop). */
int bh_vm_stop(bh_vm *vm, bh_error *err);
/* Asks the VM to stop without waiting; safe from vCPU threads and device models. */
void bh_vm_request_stop(bh_vm *vm, bh_exit_reason reason, const char *why);

/* The signal used to kick vCPU threads out of KVM_RUN. The core installs a no-op handler for it. */
int bh_vcpu_kick_signal(void);

/* ---------------------------------------------------------------------------------------------- */
/* Guest memory (bounds-checked)                                                                   */

uint64_t bh_mem_size(const bh_vm *vm);
/* Copies between guest-physical memory and a host buffer. The whole range must be guest RAM (so
 * inside one region: the MMIO hole separates low and high RAM); otherwise BH_E_OUT_OF_RANGE and
 * nothing is copied. */
int bh_mem_read(const bh_vm *vm, uint64_t gpa, void *dst, size_t len, bh_error *err);
int bh_mem_write(bh_vm *vm, uint64_t gpa, const void *src, size_t len, bh_error *err);
/* A host pointer to [gpa, gpa+len) when that range lies inside one RAM region, else NULL.
 * For device models that parse guest structures in place; valid until bh_vm_destroy. */
void *bh_mem_ptr(bh_vm *vm, uint64_t gpa, size_t len);
bool bh_mem_is_ram(const bh_vm *vm, uint64_t gpa, size_t len);

typedef struct bh_mem_region {
    uint64_t gpa;
    uint64_t size;
    int memfd;          /* the memfd backing this region, for sharing/snapshots; owned by the VM */
    uint64_t fd_offset;
} bh_mem_region;
/* Fills up to `max` regions; returns how many regions the VM has. */
size_t bh_mem_regions(const bh_vm *vm, bh_mem_region *out, size_t max);

/* ---------------------------------------------------------------------------------------------- */
/* vCPU state (set before start, or read while paused/stopped)                                     */

typedef struct bh_regs {
    uint64_t rax, rbx, rcx, rdx, rsi, rdi, rsp, rbp;
    uint64_t r8, r9, r10, r11, r12, r13, r14, r15;
    uint64_t rip, rflags;
} bh_regs;

typedef struct bh_segment {
    uint64_t base;
    uint32_t limit;
    uint16_t selector;
    uint8_t type, present, dpl, db, s, l, g, avl;
} bh_segment;

typedef struct bh_dtable {
    uint64_t base;
    uint16_t limit;
} bh_dtable;

typedef struct bh_sregs {
    bh_segment cs, ds, es, fs, gs, ss, tr, ldt;
    bh_dtable gdt, idt;
    uint64_t cr0, cr2, cr3, cr4, cr8, efer, apic_base;
} bh_sregs;

int bh_vcpu_get_regs(bh_vm *vm, uint32_t vcpu, bh_regs *out, bh_error *err);
int bh_vcpu_set_regs(bh_vm *vm, uint32_t vcpu, const bh_regs *regs, bh_error *err);
int bh_vcpu_get_sregs(bh_vm *vm, uint32_t vcpu, bh_sregs *out, bh_error *err);
int bh_vcpu_set_sregs(bh_vm *vm, uint32_t vcpu, const bh_sregs *sregs, bh_error *err);
/* The vCPU fd, for callers (such as a Linux loader) that need ioctls this header does not wrap. */
int bh_vcpu_fd(const bh_vm *vm, uint32_t vcpu);

/* ---------------------------------------------------------------------------------------------- */
/* I/O buses: port I/O and MMIO                                                                    */

typedef struct bh_io_access {
    uint32_t vcpu;
    bool is_mmio;
    bool is_write;
    uint8_t size;      /* 1, 2, 4 or 8 bytes */
    uint64_t addr;     /* absolute port number or guest-physical address */
    uint64_t offset;   /* addr - base of the registered range */
    uint8_t data[8];   /* write: the bytes written. read: the handler fills the bytes to return */
} bh_io_access;

typedef enum bh_io_result {
    BH_IO_DONE = 0,     /* handled; for reads, data[] holds the value */
    BH_IO_PENDING = 1,  /* completed later by bh_vcpu_complete_io (the vCPU waits, but stop wakes it) */
    BH_IO_ERROR = -1,   /* the access is fatal for the VM (BH_EXIT_IO_ERROR) */
} bh_io_result;

/* Called on the vCPU thread for each access (a `rep outs/ins` arrives as one call per element). */
typedef bh_io_result (*bh_io_handler)(void *opaque, bh_io_access *access);

/* Ranges must not overlap a registered range (BH_E_BUSY) nor, for MMIO, guest RAM. */
int bh_vm_register_pio(bh_vm *vm, uint16_t base, uint32_t len, bh_io_handler handler, void *opaque,
                       bh_error *err);
int bh_vm_register_mmio(bh_vm *vm, uint64_t base, uint64_t len, bh_io_handler handler, void *opaque,
                        bh_error *err);
/* Completes a BH_IO_PENDING access of `vcpu`. For reads, `data` holds `size` bytes to return;
 * `ok` false turns the access into BH_EXIT_IO_ERROR. */
int bh_vcpu_complete_io(bh_vm *vm, uint32_t vcpu, const uint8_t *data, uint8_t size, bool ok,
                        bh_error *err);

/* Accesses that hit no registered range: reads return all ones, writes are dropped, and they are
 * counted here. */
typedef struct bh_vm_stats {
    uint64_t exits;
    uint64_t pio_exits, mmio_exits;
    uint64_t unhandled_pio, unhandled_mmio;
} bh_vm_stats;
void bh_vm_get_stats(const bh_vm *vm, bh_vm_stats *out);

/* ---------------------------------------------------------------------------------------------- */
/* Interrupts and eventfds                                                                         */

/* KVM_IRQ_LINE on the in-kernel irqchip. */
int bh_vm_set_irq_line(bh_vm *vm, uint32_t gsi, bool level, bh_error *err);
/* Creates an eventfd wired to `gsi` with KVM_IRQFD; writing 1 to it raises the interrupt.
 * The fd is owned by the VM and closed by bh_vm_destroy. */
int bh_vm_add_irqfd(bh_vm *vm, uint32_t gsi, int *out_fd, bh_error *err);
/* Creates an eventfd signalled by the kernel when the guest writes `len` bytes at `addr`
 * (MMIO or port), optionally only when the value equals `datamatch`. Owned by the VM. */
int bh_vm_add_ioeventfd(bh_vm *vm, uint64_t addr, uint32_t len, bool is_mmio, bool use_datamatch,
                        uint64_t datamatch, int *out_fd, bh_error *err);


/* ---------------------------------------------------------------------------------------------- */
/* Linux boot (native/boot): load a kernel, build the boot-time machine state, point vCPU 0 at it  */

/* Which entry point of the kernel vCPU 0 starts at. */
typedef enum bh_linux_entry {
    BH_LINUX_ENTRY_AUTO = 0,  /* the 64-bit boot protocol entry (vmlinux or bzImage) */
    BH_LINUX_ENTRY_64BIT = 1, /* 64-bit long mode, rsi = boot_params (Linux x86 boot protocol) */
    BH_LINUX_ENTRY_PVH = 2,   /* vmlinux only: 32-bit XEN_ELFNOTE_PHYS32_ENTRY, ebx = hvm_start_info */
} bh_linux_entry;

typedef enum bh_kernel_format {
    BH_KERNEL_ELF = 1,     /* an uncompressed vmlinux (ELF64, x86-64) */
    BH_KERNEL_BZIMAGE = 2, /* a bzImage (boot protocol 2.12 or later, XLF_KERNEL_64) */
} bh_kernel_format;

typedef struct bh_linux_boot_config {
    const uint8_t *kernel; /* the image bytes; only read during bh_boot_linux */
    size_t kernel_len;
    const uint8_t *initrd; /* optional (NULL or initrd_len 0: none) */
    size_t initrd_len;
    const char *cmdline;   /* optional, NUL-terminated; must fit the kernel's cmdline_size */
    bh_linux_entry entry;
} bh_linux_boot_config;

typedef struct bh_boot_info {
    bh_kernel_format format;
    bh_linux_entry entry;       /* the entry actually used */
    uint16_t boot_protocol;     /* bzImage header version (0x020f = 2.15); 0 for an ELF */
    uint64_t entry_point;       /* guest-physical */
    uint64_t kernel_start;      /* guest-physical footprint of the kernel, including init_size */
    uint64_t kernel_end;
    uint64_t initrd_addr;       /* 0 when there is no initrd */
    uint64_t initrd_size;
    uint64_t cmdline_addr;
    uint32_t cmdline_max;       /* the kernel's limit in bytes, excluding the NUL */
    uint64_t boot_params_addr;  /* zero page (64-bit entry) or hvm_start_info (PVH) */
    uint64_t mptable_addr;      /* the MP floating pointer */
    uint32_t e820_entries;
    uint32_t msrs_refused;      /* boot MSRs KVM did not accept (named in notes) */
    char notes[256];            /* non-fatal remarks, e.g. "MSR 0x1a0 refused" */
} bh_boot_info;

/*
 * Validates the kernel image (every field is checked before use; a malformed image gives
 * BH_E_INVALID_ARG naming the problem), copies kernel, initrd and command line into guest RAM, and
 * writes boot_params (e820), GDT, identity page tables and an MP table. Sets up every vCPU
 * (CPUID with APIC IDs and the KVM leaves, boot MSRs, FPU, XCR0, LAPIC LINT0/LINT1) and the boot
 * vCPU's registers; the other vCPUs wait for INIT/SIPI from the in-kernel LAPIC. Call after
 * bh_vm_create and before bh_vm_start. `out` may be NULL.
 */
int bh_boot_linux(bh_vm *vm, const bh_linux_boot_config *config, bh_boot_info *out, bh_error *err);

/* True in *halted when a running guest has halted every vCPU with interrupts disabled (or left
 * APs unstarted): how Linux without ACPI ends `poweroff`. Pauses the VM to look; resumes it
 * unless halted (a halted VM is left paused, for the caller to stop). Not from a vCPU thread. */
int bh_linux_guest_halted(bh_vm *vm, bool *halted, bh_error *err);

/* Parses and validates a kernel image against a guest of `memory_bytes` without touching a VM
 * (for tools and fuzzing). Fills format, entry, boot_protocol, entry_point, kernel_start/end and
 * cmdline_max of `out`. */
int bh_kernel_image_check(const uint8_t *kernel, size_t kernel_len, uint64_t memory_bytes,
                          bh_linux_entry entry, bh_boot_info *out, bh_error *err);

/* ---------------------------------------------------------------------------------------------- */
/* Legacy devices for a Linux guest: 16550 UART and i8042 (native/devices)                         */

typedef struct bh_serial bh_serial;

/* Receives every byte the guest transmits (on the vCPU thread). */
typedef void (*bh_serial_output)(void *opaque, const uint8_t *data, size_t len);

typedef struct bh_serial_config {
    uint16_t port;          /* 0x3f8 for COM1 */
    uint32_t irq;           /* 4 for COM1 (a GSI of the in-kernel irqchip) */
    size_t ring_bytes;      /* keeps the last ring_bytes of output (0: 64 KiB) */
    bh_serial_output output; /* optional */
    void *opaque;
} bh_serial_config;

/* Registers the UART on the port bus. Port ranges cannot be unregistered, so every device below
 * is destroyed only after bh_vm_destroy of its VM. */
int bh_serial_create(bh_vm *vm, const bh_serial_config *config, bh_serial **out, bh_error *err);
void bh_serial_destroy(bh_serial *serial);
/* Host -> guest bytes (any thread). Returns how many were queued (the receive queue is bounded). */
size_t bh_serial_input(bh_serial *serial, const uint8_t *data, size_t len);
/* Copies up to `max` of the most recent output bytes; returns how many were copied. */
size_t bh_serial_recent_output(bh_serial *serial, uint8_t *dst, size_t max);

/* i8042 at ports 0x60/0x64, just enough for Linux: controller commands, no keyboard or mouse.
 * Command 0xFE (pulse reset) calls bh_vm_request_stop(BH_EXIT_GUEST_REQUEST, "reset"). */
typedef struct bh_i8042 bh_i8042;
/* Guest power-off without ACPI: Linux has no power-off device then and halts every CPU with
 * interrupts off ("reboot: System halted"); bh_linux_guest_halted detects that state.
 * Reboot is the i8042 reset (`reboot=k`) or a triple fault (`reboot=t`, BH_EXIT_SHUTDOWN). */
int bh_i8042_create(bh_vm *vm, bh_i8042 **out, bh_error *err);
void bh_i8042_destroy(bh_i8042 *dev);
/* How many resets the guest requested (0 or 1 in practice). */
unsigned bh_i8042_resets(const bh_i8042 *dev);

/* A debug-exit port for hand-made test guests: a byte written to `port` stops the VM with
 * BH_EXIT_GUEST_REQUEST and message "debug-exit <value>"; the value is also stored. */
typedef struct bh_debug_exit bh_debug_exit;
int bh_debug_exit_create(bh_vm *vm, uint16_t port, bh_debug_exit **out, bh_error *err);
void bh_debug_exit_destroy(bh_debug_exit *dev);
/* The last value written, or -1 if none. */
int bh_debug_exit_value(const bh_debug_exit *dev);

#ifdef __cplusplus
}
#endif

#endif /* BULKHEAD_H */
