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
 *  - vCPUs run on their own native threads, and each VM's devices are served by one I/O thread.
 *    Callbacks (I/O handlers, exit events, device output) are called on those threads; an embedder
 *    that needs another thread marshals the call itself.
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
    BH_EXIT_GUEST_REQUEST = 10, /* a device model asked the VM to stop on the guest's behalf;
                                   detail[0] = a bh_guest_request code */
    BH_EXIT_DEVICE_FAILURE = 11, /* a device found the guest misusing it and the VM was set to end
                                    then; detail[0] = 0, the message names the device */
} bh_exit_reason;

/* detail[0] of a BH_EXIT_GUEST_REQUEST exit: what the guest asked for, as a code (never parse
 * the message). */
typedef enum bh_guest_request {
    BH_GUEST_REQUEST_OTHER = 0,
    BH_GUEST_REQUEST_POWER_OFF = 1,  /* the power device's POWER_OFF command (or a halted guest) */
    BH_GUEST_REQUEST_REBOOT = 2,     /* the power device's REBOOT command */
    BH_GUEST_REQUEST_RESET_LINE = 3, /* the i8042's reset line (Linux reboot=k, and its panic path) */
    BH_GUEST_REQUEST_DEBUG_EXIT = 4, /* a test guest wrote the debug-exit port */
} bh_guest_request;

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
/* Asks the VM to stop without waiting; safe from vCPU threads, the I/O thread and device models.
 * Every vCPU then reports `reason`, detail[0] = `code` (a bh_guest_request for
 * BH_EXIT_GUEST_REQUEST) and `why` as its message. The first request wins. */
void bh_vm_request_stop(bh_vm *vm, bh_exit_reason reason, uint64_t code, const char *why);

/* CPU time (user + system) of vCPU `vcpu`'s thread so far, or when it ended; 0 before start. */
uint64_t bh_vcpu_cpu_ns(const bh_vm *vm, uint32_t vcpu);
/* The same for the VM's I/O thread (0 if it never ran: nothing was watched). */
uint64_t bh_vm_io_thread_cpu_ns(const bh_vm *vm);

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

/* CPUID is built once per VM, at bh_vm_create, from the caller's bh_kvm handle: KVM's supported
 * table plus the hypervisor bit, the KVM leaves with kvm-clock, the TSC-deadline timer when the
 * in-kernel LAPIC has it, and per vCPU its APIC ID (= index) and topology. This reads back what
 * vCPU `vcpu` was given for leaf `function`/`index` (regs = eax, ebx, ecx, edx);
 * BH_E_INVALID_ARG when the leaf is not in the table. */
int bh_vcpu_get_cpuid(const bh_vm *vm, uint32_t vcpu, uint32_t function, uint32_t index, uint32_t regs[4],
                      bh_error *err);

/* ---------------------------------------------------------------------------------------------- */
/* I/O buses: port I/O and MMIO                                                                    */

typedef struct bh_io_access {
    uint32_t vcpu;
    bool is_mmio;
    bool is_write;
    uint8_t size;      /* 1, 2, 4 or 8 bytes */
    uint64_t addr;     /* absolute port number or guest-physical address */
    uint64_t offset;   /* addr - base of the registered range; offset + size <= the range's length
                          (an access that leaves the range never reaches the handler) */
    uint8_t data[8];   /* write: the bytes written. read: the handler fills the bytes to return */
    uint64_t token;    /* names this access for bh_vcpu_complete_io */
} bh_io_access;

typedef enum bh_io_result {
    BH_IO_DONE = 0,     /* handled; for reads, data[] holds the value */
    BH_IO_PENDING = 1,  /* completed later by bh_vcpu_complete_io (the vCPU waits, but stop wakes it) */
    BH_IO_ERROR = -1,   /* the access is fatal for the VM (BH_EXIT_IO_ERROR) */
} bh_io_result;

/* Called on the vCPU thread for each access (a `rep outs/ins` arrives as one call per element). */
typedef bh_io_result (*bh_io_handler)(void *opaque, bh_io_access *access);

/* Ranges must not overlap a registered range (BH_E_BUSY) nor, for MMIO, guest RAM. An access is
 * routed to a range only when all of its bytes lie inside it; otherwise it is unhandled (below). */
int bh_vm_register_pio(bh_vm *vm, uint16_t base, uint32_t len, bh_io_handler handler, void *opaque,
                       bh_error *err);
int bh_vm_register_mmio(bh_vm *vm, uint64_t base, uint64_t len, bh_io_handler handler, void *opaque,
                        bh_error *err);
/* Completes the BH_IO_PENDING access of `vcpu` whose bh_io_access.token is `token`. For reads,
 * `data` holds `size` bytes to return; `ok` false turns the access into BH_EXIT_IO_ERROR. A token
 * that is not the pending access's (a late or repeated completion, or one for an access a stop
 * abandoned) is BH_E_STATE and changes nothing. */
int bh_vcpu_complete_io(bh_vm *vm, uint32_t vcpu, uint64_t token, const uint8_t *data, uint8_t size,
                        bool ok, bh_error *err);

/* Accesses that hit no registered range: reads return all ones, writes are dropped, and they are
 * counted here. */
typedef struct bh_vm_stats {
    uint64_t exits;
    uint64_t pio_exits, mmio_exits;
    uint64_t unhandled_pio, unhandled_mmio;
    uint64_t pauses;   /* successful bh_vm_pause calls */
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
/* Devices the VM owns                                                                             */

/*
 * Every device model attaches itself to its VM when it is created (the ones below do). The VM
 * then decides when it goes away: bh_vm_stop joins the vCPU threads and the I/O thread and calls
 * each `stop` once (in attach order); bh_vm_destroy calls each `destroy` (newest first) before
 * it closes the VM's eventfds and unmaps guest memory. A device handle is valid exactly until
 * bh_vm_destroy of its VM returns: an embedder thread that feeds a device (console input...)
 * must be finished before that. A device whose creation failed half-way is still freed by its
 * VM (so a failed create never leaks).
 */
typedef struct bh_device_ops {
    const char *name;
    void (*stop)(void *device);    /* optional: no thread can reach the device any more */
    void (*destroy)(void *device); /* required: free it */
} bh_device_ops;
int bh_vm_attach_device(bh_vm *vm, const bh_device_ops *ops, void *device, bh_error *err);

/* ---------------------------------------------------------------------------------------------- */
/* The I/O thread                                                                                  */

/*
 * One thread per VM (epoll) serves the device models off the vCPU threads: ioeventfds (queue
 * notifications), host sockets and files. It is created by bh_vm_start if anything is watched
 * (or by the first watch of a running VM), is released after RUNNING was reported, parks before
 * bh_vm_pause returns (so no device touches guest memory in a paused VM), and leaves when the VM
 * stops. `events` are EPOLL* bits (EPOLLET allowed); the handler runs on the I/O thread with no
 * core lock held and receives the ready events. Unwatch before closing the fd; an unwatched
 * handler is never called again once bh_vm_io_unwatch returns, except when it is called on the
 * I/O thread itself for the current batch of events (which then skips it).
 */
typedef void (*bh_io_event_handler)(void *opaque, uint32_t events);
int bh_vm_io_watch(bh_vm *vm, int fd, uint32_t events, bh_io_event_handler handler, void *opaque,
                   bh_error *err);
int bh_vm_io_rewatch(bh_vm *vm, int fd, uint32_t events, bh_error *err);
void bh_vm_io_unwatch(bh_vm *vm, int fd);

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

/* Registers the UART on the port bus. Every device below is owned by its VM (see "Devices the VM
 * owns"): it is freed by bh_vm_destroy, and its handle must not be used after that. */
int bh_serial_create(bh_vm *vm, const bh_serial_config *config, bh_serial **out, bh_error *err);
/* Host -> guest bytes (any thread, until bh_vm_destroy). Returns how many were queued (the receive
 * queue is bounded). */
size_t bh_serial_input(bh_serial *serial, const uint8_t *data, size_t len);
/* Copies up to `max` of the most recent output bytes; returns how many were copied. */
size_t bh_serial_recent_output(bh_serial *serial, uint8_t *dst, size_t max);

/* i8042 at ports 0x60/0x64, just enough for Linux: controller commands, no keyboard or mouse.
 * Command 0xFE (pulse reset) stops the VM: BH_EXIT_GUEST_REQUEST, BH_GUEST_REQUEST_RESET_LINE. */
typedef struct bh_i8042 bh_i8042;
/* Guest power-off without ACPI: Linux has no power-off device then and halts every CPU with
 * interrupts off ("reboot: System halted"); bh_linux_guest_halted detects that state.
 * Reboot is the i8042 reset (`reboot=k`) or a triple fault (`reboot=t`, BH_EXIT_SHUTDOWN). */
int bh_i8042_create(bh_vm *vm, bh_i8042 **out, bh_error *err);
/* How many resets the guest requested (0 or 1 in practice). */
unsigned bh_i8042_resets(const bh_i8042 *dev);

/* A debug-exit port for hand-made test guests: a byte written to `port` stops the VM with
 * BH_EXIT_GUEST_REQUEST, BH_GUEST_REQUEST_DEBUG_EXIT and message "debug-exit <value>"; the value
 * is also stored. */
typedef struct bh_debug_exit bh_debug_exit;
int bh_debug_exit_create(bh_vm *vm, uint16_t port, bh_debug_exit **out, bh_error *err);
/* The last value written, or -1 if none. */
int bh_debug_exit_value(const bh_debug_exit *dev);

/* ---------------------------------------------------------------------------------------------- */
/* virtio devices over virtio-mmio (native/devices/virtio; layout and registers: devices/README.md)  */

/*
 * Modern virtio-mmio (virtio 1.2, version 2 only) with split virtqueues, EVENT_IDX and indirect
 * descriptors. Queue notifications arrive through ioeventfds on the VM's I/O thread, interrupts
 * leave through irqfds (the VM needs its in-kernel irqchip), and a vCPU never waits for device I/O.
 * The guest is hostile: a violation of the virtio rules (a descriptor loop, a buffer outside RAM,
 * an avail index that jumps, a malformed request header...) marks that device DEVICE_NEEDS_RESET
 * and reports it through on_broken; it never touches another device or VM. A driver reset (status
 * 0) revives the device.
 */

/* The MMIO window below 4 GiB where the builder places devices, 4 KiB each, and their GSIs. */
#define BH_VIRTIO_MMIO_BASE 0xD0001000ULL
#define BH_VIRTIO_MMIO_SLOT 0x1000ULL
#define BH_VIRTIO_MMIO_MAX_DEVICES 16
#define BH_VIRTIO_FIRST_GSI 5 /* GSIs 5.. (8 is skipped: the RTC's ISA IRQ), all below 24 */

typedef struct bh_virtio_slot {
    uint64_t base; /* guest-physical, 4 KiB */
    uint32_t gsi;
} bh_virtio_slot;

/* Hands out slots in the window, and writes "virtio_mmio.device=4K@0x...:<gsi>" for each. */
typedef struct bh_mmio_window {
    uint32_t used;
    bh_virtio_slot slots[BH_VIRTIO_MMIO_MAX_DEVICES];
} bh_mmio_window;
void bh_mmio_window_init(bh_mmio_window *w);
int bh_mmio_window_alloc(bh_mmio_window *w, bh_virtio_slot *out, bh_error *err);
/* Appends " virtio_mmio.device=..." for every slot handed out to `cmdline` (NUL-terminated,
 * `cap` bytes in all). BH_E_INVALID_ARG when it does not fit. */
int bh_mmio_window_cmdline(const bh_mmio_window *w, char *cmdline, size_t cap, bh_error *err);

/* Called (on the thread that found it: I/O thread or vCPU) when a device is marked broken. */
typedef void (*bh_device_broken_fn)(void *opaque, const char *device, const char *reason);

/* What every virtio device is given. */
typedef struct bh_virtio_config {
    bh_virtio_slot slot;
    const char *name;          /* for messages and events, e.g. "vda" (default: the device kind) */
    bh_device_broken_fn on_broken; /* optional */
    void *opaque;
    bool stop_vm_on_failure;   /* a broken device ends the VM (BH_EXIT_DEVICE_FAILURE) */
} bh_virtio_config;

typedef struct bh_virtio_stats {
    uint64_t requests;         /* chains completed */
    uint64_t bytes_in;         /* guest -> host (written to a disk, sent by the guest, console output) */
    uint64_t bytes_out;        /* host -> guest */
    uint64_t interrupts;
    uint64_t notifications;    /* queue kicks served */
    uint32_t broken;           /* times the device was marked DEVICE_NEEDS_RESET */
} bh_virtio_stats;

typedef struct bh_virtio_blk bh_virtio_blk;
typedef struct bh_virtio_blk_config {
    const char *path;          /* the backing file (or block device); its size is the capacity,
                                  rounded down to 512-byte sectors */
    bool read_only;            /* opened O_RDONLY; the guest sees VIRTIO_BLK_F_RO */
    const char *serial;        /* VIRTIO_BLK_T_GET_ID, at most 20 bytes (optional) */
} bh_virtio_blk_config;
/* A disk: reads, writes, flush (fdatasync) and the serial id. */
int bh_virtio_blk_create(bh_vm *vm, const bh_virtio_config *common, const bh_virtio_blk_config *config,
                         bh_virtio_blk **out, bh_error *err);
void bh_virtio_blk_stats(const bh_virtio_blk *dev, bh_virtio_stats *out);

typedef struct bh_virtio_rng bh_virtio_rng;
/* Entropy from getrandom(2). */
int bh_virtio_rng_create(bh_vm *vm, const bh_virtio_config *common, bh_virtio_rng **out, bh_error *err);
void bh_virtio_rng_stats(const bh_virtio_rng *dev, bh_virtio_stats *out);

typedef struct bh_virtio_console bh_virtio_console;
/* Guest output (hvc0), on the I/O thread; the bytes are valid only during the call. */
typedef void (*bh_console_output_fn)(void *opaque, const uint8_t *data, size_t len);
typedef struct bh_virtio_console_config {
    bh_console_output_fn output; /* optional */
    void *opaque;
    size_t input_bytes;          /* host -> guest bytes kept until the guest takes them (0: 64 KiB) */
} bh_virtio_console_config;
/* One console port, no multiport: Linux makes it hvc0. */
int bh_virtio_console_create(bh_vm *vm, const bh_virtio_config *common, const bh_virtio_console_config *config,
                             bh_virtio_console **out, bh_error *err);
/* Host -> guest bytes (any thread, until bh_vm_destroy): how many were queued (bounded). */
size_t bh_virtio_console_input(bh_virtio_console *dev, const uint8_t *data, size_t len);
void bh_virtio_console_stats(const bh_virtio_console *dev, bh_virtio_stats *out);

/*
 * vsock in user space, no vhost, with Firecracker's host-side scheme:
 *  - a guest connection to host port P (CID 2) is connected to the Unix socket "<uds_path>_P";
 *    if nothing listens there the guest gets a reset;
 *  - a host client connects to <uds_path>, writes "CONNECT <port>\n" and reads "OK <host port>\n"
 *    once the guest accepted; if nothing listens in the guest, the client's connection is closed.
 * Stream sockets only, credit-based flow control as the spec describes.
 */
typedef struct bh_virtio_vsock bh_virtio_vsock;
typedef struct bh_virtio_vsock_config {
    uint64_t guest_cid;        /* >= 3 (zones use 3) */
    const char *uds_path;      /* the host listener; a stale socket file there is replaced; at most
                                  96 bytes so "<uds_path>_<port>" fits sun_path */
    uint32_t max_connections;  /* 0: 1024 */
} bh_virtio_vsock_config;
int bh_virtio_vsock_create(bh_vm *vm, const bh_virtio_config *common, const bh_virtio_vsock_config *config,
                           bh_virtio_vsock **out, bh_error *err);
void bh_virtio_vsock_stats(const bh_virtio_vsock *dev, bh_virtio_stats *out);
/* Connections open now. */
uint32_t bh_virtio_vsock_connections(const bh_virtio_vsock *dev);

/* ---------------------------------------------------------------------------------------------- */
/* The paravirtual power device (native/devices/power.c; registers: devices/README.md)            */

/*
 * One 4 KiB MMIO page at a fixed address. A 32-bit write of a command to offset 0x8 from the
 * guest (its kernel, or userspace through /dev/mem) powers off, reboots, or records a boot-time
 * marker with the time since the VM was created. Reads: 0x0 = BH_POWER_MAGIC, 0x4 = version.
 * A guest userspace program (the zone agent) reaches it through /dev/mem (the zone kernel has
 * DEVMEM and STRICT_DEVMEM without IO_STRICT_DEVMEM):
 *     int fd = open("/dev/mem", O_RDWR | O_SYNC);
 *     volatile uint32_t *p = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0xd0000000);
 *     if (p != MAP_FAILED && p[0] == BH_POWER_MAGIC) p[2] = BH_POWER_CMD_MARKER | 1 << 8;
 * Power-off must come this way: Linux without ACPI halts its CPUs instead, which nothing watches.
 */
#define BH_POWER_MMIO_BASE 0xD0000000ULL
#define BH_POWER_MMIO_SIZE 0x1000ULL
#define BH_POWER_REG_MAGIC 0x0
#define BH_POWER_REG_VERSION 0x4
#define BH_POWER_REG_COMMAND 0x8
#define BH_POWER_MAGIC 0x57504842u /* "BHPW" in memory order */
#define BH_POWER_VERSION 1u
/* The command's low 8 bits; bits 8..31 are an argument (the marker's number). */
#define BH_POWER_CMD_POWER_OFF 0x01u
#define BH_POWER_CMD_REBOOT 0x02u
#define BH_POWER_CMD_MARKER 0x03u

typedef enum bh_power_request {
    BH_POWER_REQUEST_POWER_OFF = 1,
    BH_POWER_REQUEST_REBOOT = 2,
    BH_POWER_REQUEST_MARKER = 3,
} bh_power_request;

/* On the vCPU thread that wrote the register: keep it short. */
typedef void (*bh_power_fn)(void *opaque, bh_power_request request, uint32_t argument, uint64_t ns_since_start);

typedef struct bh_power bh_power;
typedef struct bh_power_config {
    uint64_t base;             /* 0: BH_POWER_MMIO_BASE */
    uint64_t start_ns;         /* CLOCK_MONOTONIC origin of the marker times (0: now) */
    bh_power_fn on_request;    /* optional */
    void *opaque;
} bh_power_config;
/* POWER_OFF and REBOOT stop the VM: BH_EXIT_GUEST_REQUEST with BH_GUEST_REQUEST_POWER_OFF or
 * BH_GUEST_REQUEST_REBOOT. A MARKER only calls on_request. Other values and accesses are ignored. */
int bh_power_create(bh_vm *vm, const bh_power_config *config, bh_power **out, bh_error *err);
/* How many markers were written, and the time of the first (0 if none). */
uint32_t bh_power_markers(const bh_power *dev, uint64_t *first_ns);

/* ---------------------------------------------------------------------------------------------- */
/* The machine builder (native/machine): a zone VM in one call                                    */

/*
 * A Linux guest with everything a zone needs: RAM and vCPUs (in-kernel irqchip), the kernel and
 * initrd loaded, a 16550 at ttyS0 (early boot output), the i8042 (its reset line), the power
 * device, and virtio-mmio devices in this order: the disks (vda, vdb, ... as listed), the console
 * (hvc0), rng, vsock. The kernel command line is
 *     "reboot=k,panic_warm panic=-1 " <config->cmdline> " virtio_mmio.device=4K@0x...:<gsi> ..."
 * so a kernel reboot or panic resets through the i8042 (a panic first writes the BIOS warm-reset
 * flag 0x1234 at guest-physical 0x472, which is how the machine tells a panic from a reboot);
 * the caller's own reboot=/panic= come later and win.
 *
 * How the guest ended is a bh_machine_end code (never parse the message). The machine never ends
 * by itself on a halted guest: power-off goes through the power device.
 *
 * Callbacks: on_console on the thread that produced the bytes (a vCPU for ttyS0, the I/O thread
 * for hvc0; valid only during the call), on_event on the vCPU or I/O thread, on_end once, on the
 * thread that saw the VM stop. Keep them short; none may call bh_machine_destroy.
 */
#define BH_MACHINE_MAX_DISKS 8

typedef struct bh_machine bh_machine;

typedef struct bh_machine_disk {
    const char *path;
    bool read_only;
    const char *serial; /* at most 20 bytes, optional */
} bh_machine_disk;

typedef enum bh_console_source {
    BH_CONSOLE_DEFAULT = 0, /* input: hvc0 if the machine has it, else ttyS0 */
    BH_CONSOLE_SERIAL = 1,  /* ttyS0 */
    BH_CONSOLE_VIRTIO = 2,  /* hvc0 */
} bh_console_source;

typedef enum bh_machine_end {
    BH_MACHINE_RUNNING = 0,        /* not ended (yet) */
    BH_MACHINE_POWER_OFF = 1,      /* the power device's POWER_OFF */
    BH_MACHINE_REBOOT = 2,         /* the power device's REBOOT, or a kernel reboot (i8042 reset line) */
    BH_MACHINE_PANIC = 3,          /* the guest kernel panicked */
    BH_MACHINE_TRIPLE_FAULT = 4,   /* a triple fault that was not a panic's reset */
    BH_MACHINE_CRASH = 5,          /* the VM failed: KVM internal error, entry failure, KVM_RUN error... */
    BH_MACHINE_DEVICE_FAILURE = 6, /* a device marked broken ended the machine (device names it) */
    BH_MACHINE_STOPPED = 7,        /* the host stopped it (bh_machine_stop, bh_machine_destroy) */
} bh_machine_end;

typedef struct bh_machine_exit {
    bh_machine_end end;
    uint64_t ns_since_create;  /* when the VM stopped */
    bh_vcpu_exit cause;        /* the first vCPU exit that was not a plain stop (reason 0 if none) */
    char device[32];           /* BH_MACHINE_DEVICE_FAILURE: the device ("vda", "vsock"...) */
    char message[256];         /* for people */
} bh_machine_exit;

typedef enum bh_machine_event_kind {
    BH_MACHINE_EVENT_BOOT_MARKER = 1,   /* the guest wrote a MARKER to the power device */
    BH_MACHINE_EVENT_DEVICE_BROKEN = 2, /* a device was marked DEVICE_NEEDS_RESET */
} bh_machine_event_kind;

typedef struct bh_machine_event {
    bh_machine_event_kind kind;
    uint32_t marker;           /* BOOT_MARKER: the number the guest wrote */
    uint64_t ns_since_create;
    char device[32];           /* DEVICE_BROKEN */
    char reason[200];          /* DEVICE_BROKEN */
} bh_machine_event;

typedef void (*bh_machine_console_fn)(void *opaque, bh_console_source source, const uint8_t *data, size_t len);
typedef void (*bh_machine_event_fn)(void *opaque, const bh_machine_event *event);
typedef void (*bh_machine_end_fn)(void *opaque, const bh_machine_exit *exit);

typedef struct bh_machine_config {
    /* The kernel (vmlinux or bzImage) and initrd: a path, or bytes (read during create only). */
    const char *kernel_path;
    const uint8_t *kernel;
    size_t kernel_len;
    const char *initrd_path;   /* optional */
    const uint8_t *initrd;
    size_t initrd_len;
    const char *cmdline;       /* the caller's part (see above); optional */
    bh_linux_entry entry;
    uint64_t memory_bytes;
    uint32_t vcpus;
    const bh_machine_disk *disks;
    size_t disk_count;         /* at most BH_MACHINE_MAX_DISKS */
    bool virtio_console;       /* hvc0 */
    bool rng;
    bool vsock;
    uint64_t vsock_cid;        /* 0: 3 */
    const char *vsock_uds;     /* required with vsock */
    /* A broken device ends the machine (BH_MACHINE_DEVICE_FAILURE) unless this is set; either way
     * it is reported as a BH_MACHINE_EVENT_DEVICE_BROKEN event. */
    bool keep_running_on_device_failure;
    size_t console_tail_bytes; /* recent console output kept for the exit (0: 64 KiB) */
    bh_machine_console_fn on_console;
    bh_machine_event_fn on_event;
    bh_machine_end_fn on_end;
    void *opaque;
} bh_machine_config;

/* Builds the VM and its devices and loads the kernel; nothing runs yet. `kvm` must stay open until
 * bh_machine_destroy. Bad input (a missing file, too many disks, a bad CID...) is BH_E_INVALID_ARG
 * naming it. */
int bh_machine_create(bh_kvm *kvm, const bh_machine_config *config, bh_machine **out, bh_error *err);
int bh_machine_start(bh_machine *m, bh_error *err);
/* Waits for the end (timeout_ms < 0: forever); BH_E_TIMEOUT if it is still running. */
int bh_machine_wait(bh_machine *m, int64_t timeout_ms, bh_machine_exit *out, bh_error *err);
/* Stops it (BH_MACHINE_STOPPED unless it had ended already) and joins every thread. */
int bh_machine_stop(bh_machine *m, bh_error *err);
/* Stops it if needed and frees everything: threads, fds, mappings, the vsock socket file. */
void bh_machine_destroy(bh_machine *m);
/* Host -> guest console bytes (any thread, until bh_machine_destroy); how many were queued. */
size_t bh_machine_console_input(bh_machine *m, bh_console_source to, const uint8_t *data, size_t len);
/* The last `max` bytes of console output (ttyS0 and hvc0 together, in order). */
size_t bh_machine_console_tail(bh_machine *m, uint8_t *dst, size_t max);
/* The VM underneath, for what this section does not wrap (registers, memory). */
bh_vm *bh_machine_vm(bh_machine *m);

typedef struct bh_machine_stats {
    bh_vm_stats vm;
    uint32_t vcpus;
    uint64_t vcpu_cpu_ns;      /* all vCPU threads together */
    uint64_t io_cpu_ns;        /* the I/O thread */
    uint32_t disk_count;
    bh_virtio_stats disks[BH_MACHINE_MAX_DISKS];
    bh_virtio_stats console, rng, vsock;
    uint32_t vsock_connections;
    uint32_t boot_markers;
    uint64_t first_marker_ns;  /* since create */
} bh_machine_stats;
void bh_machine_get_stats(bh_machine *m, bh_machine_stats *out);

/* "power-off", "reboot", "panic", ... (for messages and tools). */
const char *bh_machine_end_name(bh_machine_end end);

#ifdef __cplusplus
}
#endif

#endif /* BULKHEAD_H */
