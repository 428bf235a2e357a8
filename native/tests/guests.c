/*
 * guests.c — the hand-made test guests, as machine code.
 *
 * Assembled with GNU as (`as --64`, `.code16` or `.code64`) and pasted from `objdump -d -M intel`;
 * the disassembly is beside each instruction. Real-mode guests run at 0:entry; long-mode guests at
 * GB_CODE with the tables of guest_builder.c. Port 0x13 is the "done" port (helpers.h). A port
 * access of N bytes covers N consecutive ports (the bus routes it only to a range that holds all
 * of them), so multi-byte accesses use ports that leave room.
 */
#include "guests.h"

/* 16-bit real mode */
const uint8_t g_real_io[] = {
    0xb0, 0x42,                              /* mov    al,0x42 */
    0xe6, 0x10,                              /* out    0x10,al */
    0xe4, 0x11,                              /* in     al,0x11 */
    0xba, 0x12, 0x00,                        /* mov    dx,0x12 */
    0xee,                                    /* out    dx,al */
    0xf4,                                    /* hlt */
};
const size_t g_real_io_len = sizeof g_real_io;

/* 16-bit real mode */
const uint8_t g_real_string[] = {
    0xfc,                                    /* cld */
    0xbe, 0x00, 0x05,                        /* mov    si,0x500 */
    0xba, 0x20, 0x00,                        /* mov    dx,0x20 */
    0xb9, 0x04, 0x00,                        /* mov    cx,0x4 */
    0xf3, 0x6e,                              /* rep outs dx,BYTE PTR ds:[si] */
    0xbf, 0x00, 0x06,                        /* mov    di,0x600 */
    0xb9, 0x03, 0x00,                        /* mov    cx,0x3 */
    0xf3, 0x6d,                              /* rep ins WORD PTR es:[di],dx */
    0xf4,                                    /* hlt */
};
const size_t g_real_string_len = sizeof g_real_string;

/* 64-bit mode */
const uint8_t g_lm_io[] = {
    0x66, 0xb8, 0x34, 0x12,                  /* mov    ax,0x1234 */
    0x66, 0xba, 0x10, 0x00,                  /* mov    dx,0x10 */
    0x66, 0xef,                              /* out    dx,ax */
    0xe5, 0x14,                              /* in     eax,0x14 */
    0xe7, 0x18,                              /* out    0x18,eax */
    0xe6, 0x13,                              /* out    0x13,al */
    0xeb, 0xfe,                              /* jmp    0x10 */
};
const size_t g_lm_io_len = sizeof g_lm_io;

/* 64-bit mode */
const uint8_t g_mmio[] = {
    0xbb, 0x00, 0x00, 0x00, 0xd0,            /* mov    ebx,0xd0000000 */
    0xc6, 0x03, 0x11,                        /* mov    BYTE PTR [rbx],0x11 */
    0x66, 0xc7, 0x43, 0x10, 0x22, 0x22,      /* mov    WORD PTR [rbx+0x10],0x2222 */
    0xc7, 0x43, 0x20, 0x33, 0x33, 0x33, 0x33, /* mov    DWORD PTR [rbx+0x20],0x33333333 */
    0x48, 0xb8, 0x44, 0x44, 0x44, 0x44, 0x44, /* movabs rax,0x4444444444444444 */
    0x44, 0x44, 0x44,
    0x48, 0x89, 0x43, 0x30,                  /* mov    QWORD PTR [rbx+0x30],rax */
    0x0f, 0xb6, 0x43, 0x40,                  /* movzx  eax,BYTE PTR [rbx+0x40] */
    0x48, 0x89, 0x04, 0x25, 0x00, 0x00, 0x03, /* mov    QWORD PTR ds:0x30000,rax */
    0x00,
    0x0f, 0xb7, 0x43, 0x50,                  /* movzx  eax,WORD PTR [rbx+0x50] */
    0x48, 0x89, 0x04, 0x25, 0x08, 0x00, 0x03, /* mov    QWORD PTR ds:0x30008,rax */
    0x00,
    0x8b, 0x43, 0x60,                        /* mov    eax,DWORD PTR [rbx+0x60] */
    0x48, 0x89, 0x04, 0x25, 0x10, 0x00, 0x03, /* mov    QWORD PTR ds:0x30010,rax */
    0x00,
    0x48, 0x8b, 0x43, 0x70,                  /* mov    rax,QWORD PTR [rbx+0x70] */
    0x48, 0x89, 0x04, 0x25, 0x18, 0x00, 0x03, /* mov    QWORD PTR ds:0x30018,rax */
    0x00,
    0xe6, 0x13,                              /* out    0x13,al */
    0xeb, 0xfe,                              /* jmp    0x54 */
};
const size_t g_mmio_len = sizeof g_mmio;

/* 64-bit mode */
const uint8_t g_outside[] = {
    0xbb, 0x00, 0x00, 0x00, 0x40,            /* mov    ebx,0x40000000 */
    0x8b, 0x03,                              /* mov    eax,DWORD PTR [rbx] */
    0x48, 0x89, 0x04, 0x25, 0x00, 0x00, 0x03, /* mov    QWORD PTR ds:0x30000,rax */
    0x00,
    0xc7, 0x03, 0x78, 0x56, 0x34, 0x12,      /* mov    DWORD PTR [rbx],0x12345678 */
    0x66, 0xba, 0x99, 0x00,                  /* mov    dx,0x99 */
    0xed,                                    /* in     eax,dx */
    0x48, 0x89, 0x04, 0x25, 0x08, 0x00, 0x03, /* mov    QWORD PTR ds:0x30008,rax */
    0x00,
    0xef,                                    /* out    dx,eax */
    0xe6, 0x13,                              /* out    0x13,al */
    0xeb, 0xfe,                              /* jmp    0x25 */
};
const size_t g_outside_len = sizeof g_outside;

/* 64-bit mode */
const uint8_t g_shared[] = {
    0x48, 0x8b, 0x04, 0x25, 0x00, 0x00, 0x03, /* mov    rax,QWORD PTR ds:0x30000 */
    0x00,
    0x48, 0x83, 0xc0, 0x01,                  /* add    rax,0x1 */
    0x48, 0x89, 0x04, 0x25, 0x08, 0x00, 0x03, /* mov    QWORD PTR ds:0x30008,rax */
    0x00,
    0x48, 0xb9, 0x88, 0x77, 0x66, 0x55, 0x44, /* movabs rcx,0x1122334455667788 */
    0x33, 0x22, 0x11,
    0x48, 0x89, 0x0c, 0x25, 0x10, 0x00, 0x03, /* mov    QWORD PTR ds:0x30010,rcx */
    0x00,
    0xe6, 0x13,                              /* out    0x13,al */
    0xeb, 0xfe,                              /* jmp    0x28 */
};
const size_t g_shared_len = sizeof g_shared;

/* 16-bit real mode */
const uint8_t g_hlt[] = {
    0x90,                                    /* nop */
    0xf4,                                    /* hlt */
};
const size_t g_hlt_len = sizeof g_hlt;

/* 64-bit mode, CPL0: wait until the other vCPU's counter at 0x30000 moves, then #UD */
const uint8_t g_ud2_64[] = {
    0x48, 0x83, 0x3c, 0x25, 0x00, 0x00, 0x03, /* 1: cmp    QWORD PTR ds:0x30000,0x0 */
    0x00, 0x00,
    0x74, 0xf5,                              /* je     1b */
    0x0f, 0x0b,                              /* ud2 */
};
const size_t g_ud2_64_len = sizeof g_ud2_64;

/* 16-bit real mode */
const uint8_t g_spin16[] = {
    0xfa,                                    /* cli */
    0xeb, 0xfe,                              /* jmp    0x1 */
};
const size_t g_spin16_len = sizeof g_spin16;

/* 64-bit mode, for CPL3: RFLAGS.IF starts clear (PVM faults `cli` at CPL3 whatever IOPL says) */
const uint8_t g_spin64[] = {
    0xeb, 0xfe,                              /* jmp    0x0 */
};
const size_t g_spin64_len = sizeof g_spin64;

/* 64-bit mode */
const uint8_t g_count64[] = {
    0xbb, 0x00, 0x00, 0x03, 0x00,            /* mov    ebx,0x30000 */
    0x48, 0xff, 0x03,                        /* inc    QWORD PTR [rbx] */
    0xeb, 0xfb,                              /* jmp    0x5 */
};
const size_t g_count64_len = sizeof g_count64;

/* 64-bit mode */
const uint8_t g_twovcpu[] = {
    0xe7, 0x10,                              /* out    0x10,eax */
    0x48, 0xff, 0x03,                        /* inc    QWORD PTR [rbx] */
    0x48, 0x81, 0x3b, 0x40, 0x42, 0x0f, 0x00, /* cmp    QWORD PTR [rbx],0xf4240 */
    0x72, 0xf4,                              /* jb     0x2 */
    0xe7, 0x11,                              /* out    0x11,eax */
    0xeb, 0xfe,                              /* jmp    0x10 */
};
const size_t g_twovcpu_len = sizeof g_twovcpu;

/* 16-bit real mode */
const uint8_t g_pending[] = {
    0xe5, 0x10,                              /* in     ax,0x10 */
    0xe7, 0x12,                              /* out    0x12,ax */
    0xf4,                                    /* hlt */
};
const size_t g_pending_len = sizeof g_pending;

/* 64-bit mode */
const uint8_t g_ioev[] = {
    0x66, 0xba, 0x10, 0x05,                  /* mov    dx,0x510 */
    0xb0, 0x07,                              /* mov    al,0x7 */
    0xee,                                    /* out    dx,al */
    0xbb, 0x00, 0x10, 0x00, 0xd0,            /* mov    ebx,0xd0001000 */
    0xc7, 0x03, 0x01, 0x00, 0x00, 0x00,      /* mov    DWORD PTR [rbx],0x1 */
    0xc7, 0x03, 0xcd, 0xab, 0x00, 0x00,      /* mov    DWORD PTR [rbx],0xabcd */
    0xe6, 0x13,                              /* out    0x13,al */
    0xeb, 0xfe,                              /* jmp    0x1a */
};
const size_t g_ioev_len = sizeof g_ioev;

/* 64-bit mode, CPL3: poll port 0x30 until a device answers 0x5a, then the done port */
const uint8_t g_hotplug[] = {
    0xe4, 0x30,                              /* 1: in     al,0x30 */
    0x3c, 0x5a,                              /* cmp    al,0x5a */
    0x75, 0xfa,                              /* jne    1b */
    0xe6, 0x13,                              /* out    0x13,al */
    0xeb, 0xfe,                              /* 2: jmp    2b */
};
const size_t g_hotplug_len = sizeof g_hotplug;

/* 64-bit mode, CPL3: 10000 port writes to 0x30, then 10000 MMIO writes to 0xd0000000, then done */
const uint8_t g_exitloop[] = {
    0xb9, 0x10, 0x27, 0x00, 0x00,            /* mov    ecx,10000 */
    0xe6, 0x30,                              /* 1: out    0x30,al */
    0xff, 0xc9,                              /* dec    ecx */
    0x75, 0xfa,                              /* jne    1b */
    0xb9, 0x10, 0x27, 0x00, 0x00,            /* mov    ecx,10000 */
    0xbb, 0x00, 0x00, 0x00, 0xd0,            /* mov    ebx,0xd0000000 */
    0x89, 0x03,                              /* 2: mov    DWORD PTR [rbx],eax */
    0xff, 0xc9,                              /* dec    ecx */
    0x75, 0xfa,                              /* jne    2b */
    0xe6, 0x13,                              /* out    0x13,al */
    0xeb, 0xfe,                              /* 3: jmp    3b */
};
const size_t g_exitloop_len = sizeof g_exitloop;

/* 16-bit real mode: `rep outsb` of the 4 bytes at 0x500 to port 0x10, then HLT */
const uint8_t g_string_pending[] = {
    0xfc,                                    /* cld */
    0xbe, 0x00, 0x05,                        /* mov    si,0x500 */
    0xba, 0x10, 0x00,                        /* mov    dx,0x10 */
    0xb9, 0x04, 0x00,                        /* mov    cx,0x4 */
    0xf3, 0x6e,                              /* rep outs dx,BYTE PTR ds:[si] */
    0xf4,                                    /* hlt */
};
const size_t g_string_pending_len = sizeof g_string_pending;
