/*
 * proto.h — the agent protocol: constants, limits, and the decoded form of every host request.
 *
 * PROTOCOL.md beside this file is the specification (byte layouts, sequencing, errors); this
 * header is its C mirror and must stay in step with src/zone/agent/protocol.ts. Everything here
 * is pure: decoding never touches the OS, so the fuzz target (fuzz/fuzz_frames.c) drives it alone.
 */
#ifndef BH_AGENT_PROTO_H
#define BH_AGENT_PROTO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define AG_PROTOCOL_VERSION 1
#define AG_MAGIC 0x47414842u /* "BHAG" read as a little-endian u32 */

/* Limits. Every one is checked on input; PROTOCOL.md lists them. */
#define AG_HEADER_SIZE 12
#define AG_FRAME_MAX (1u << 20)      /* payload bytes of one frame */
#define AG_DATA_CHUNK 65536u         /* the agent's DATA frames carry at most this much */
#define AG_WINDOW (256u * 1024u)     /* initial credit of every data channel, each direction */
#define AG_MAX_STREAMS 64            /* open streams per session */
#define AG_MAX_SESSIONS 32           /* sessions at once */
#define AG_PATH_MAX 4096             /* bytes of a path, without a terminator */
#define AG_ARGV_MAX 1024             /* arguments of an exec */
#define AG_ENV_MAX 1024              /* environment entries of an exec */
#define AG_STRING_MAX 65536u         /* bytes of one argument or environment entry */
#define AG_USER_MAX 256              /* bytes of a user spec ("name", "uid:gid", ...) */
#define AG_HOSTNAME_MAX 64
#define AG_MESSAGE_MAX 1024          /* bytes of an ERROR message */
#define AG_PROCS_MAX 1024            /* processes in one METRICS answer */
#define AG_CMDLINE_MAX 256           /* bytes of a process's command line in METRICS */
#define AG_LIST_BATCH 256            /* entries in one LIST reply frame */

/* Frame types, host → agent. */
enum {
    AG_T_HELLO = 0x01,
    AG_T_PING = 0x02,
    AG_T_REQUEST = 0x03,
    AG_T_DATA = 0x04,
    AG_T_CREDIT = 0x05,
    AG_T_SIGNAL = 0x06,
    AG_T_RESIZE = 0x07,
    AG_T_CANCEL = 0x08,
};

/* Frame types, agent → host. */
enum {
    AG_T_HELLO_OK = 0x41,
    AG_T_PONG = 0x42,
    AG_T_REPLY = 0x43,
    AG_T_OUT_DATA = 0x44,
    AG_T_OUT_CREDIT = 0x45,
    AG_T_EVENT = 0x46,
    AG_T_END = 0x47,
    AG_T_ERROR = 0x48,
};

#define AG_F_EOF 0x01 /* DATA: no more bytes on this channel after these */

/* Data channels of a stream. */
enum { AG_CH_STDIN = 0, AG_CH_STDOUT = 1, AG_CH_STDERR = 2, AG_CH_FILE = 3, AG_CH_COUNT = 4 };

/* Request operations (the first payload byte of a REQUEST). */
enum {
    AG_OP_LAUNCH = 1,
    AG_OP_EXEC = 2,
    AG_OP_SIGNAL_MAIN = 3,
    AG_OP_SHUTDOWN = 4,
    AG_OP_EVENTS = 5,
    AG_OP_METRICS = 6,
    AG_OP_FILE_READ = 16,
    AG_OP_FILE_WRITE = 17,
    AG_OP_STAT = 18,
    AG_OP_LIST = 19,
    AG_OP_MKDIR = 20,
    AG_OP_REMOVE = 21,
    AG_OP_RENAME = 22,
};

/* ERROR codes. */
enum {
    AG_E_PROTOCOL = 1,  /* malformed frame: the session is closed after this (stream 0) */
    AG_E_UNKNOWN_OP = 2,
    AG_E_LIMIT = 3,     /* too many streams or sessions, a size over its limit */
    AG_E_INVALID = 4,   /* a well-formed request with a bad argument */
    AG_E_OS = 5,        /* a system call failed; errno says which way */
    AG_E_EXEC = 6,      /* the program could not be started; errno says why */
    AG_E_STATE = 7,     /* not now: launched twice, no main process, ... */
    AG_E_CANCELLED = 8, /* the host cancelled the stream */
};

/* Exec flags. */
#define AG_EXEC_TTY 0x01
#define AG_EXEC_STDIN 0x02
#define AG_EXEC_FLAGS_ALL 0x03
/* Launch flags. */
#define AG_LAUNCH_STAY_UP 0x01
#define AG_LAUNCH_CONSOLE 0x02 /* main's stdio is the agent's console, not this stream */
#define AG_LAUNCH_FLAGS_ALL 0x03

/* FILE_WRITE modes. */
enum { AG_WRITE_TRUNCATE = 0, AG_WRITE_APPEND = 1, AG_WRITE_EXCLUSIVE = 2 };

/* SHUTDOWN actions. */
enum { AG_SHUTDOWN_POWER_OFF = 0, AG_SHUTDOWN_REBOOT = 1 };

/* Stat record file types. */
enum {
    AG_FT_OTHER = 0, AG_FT_FILE = 1, AG_FT_DIR = 2, AG_FT_SYMLINK = 3,
    AG_FT_CHAR = 4, AG_FT_BLOCK = 5, AG_FT_FIFO = 6, AG_FT_SOCKET = 7,
};

/* Events. */
enum { AG_EV_MAIN_EXIT = 1 };

/* A frame header as it is on the wire (little-endian). */
typedef struct {
    uint32_t length; /* payload bytes, <= AG_FRAME_MAX */
    uint32_t stream;
    uint8_t type;
    uint8_t flags;
} ag_header;

/*
 * A view of a string inside a payload: not NUL-terminated in the payload; decoders that need a
 * C string copy it (ag_strdup). Decoded requests point into the payload buffer they came from.
 */
typedef struct {
    const uint8_t *data;
    uint32_t len;
} ag_str;

typedef struct {
    uint16_t argc;
    ag_str argv[AG_ARGV_MAX];
    uint16_t envc;
    ag_str env[AG_ENV_MAX];
    ag_str cwd;
    ag_str user;
    uint8_t flags;
    uint16_t rows, cols;
    /* LAUNCH only */
    ag_str hostname;
    uint8_t launch_flags;
} ag_exec_req;

typedef struct {
    uint8_t op;
    union {
        ag_exec_req exec; /* LAUNCH, EXEC */
        uint32_t signo;   /* SIGNAL_MAIN */
        uint8_t action;   /* SHUTDOWN */
        struct { ag_str path; uint64_t offset, length; } read;
        struct { ag_str path; uint32_t mode; uint8_t how; uint8_t parents; } write;
        struct { ag_str path; uint8_t follow; } stat;
        struct { ag_str path; } list;
        struct { ag_str path; uint32_t mode; uint8_t parents; } mkdir;
        struct { ag_str path; uint8_t recursive; } remove;
        struct { ag_str from, to; } rename;
    } u;
} ag_request;

/* The result of a decoder: 0, or an AG_E_* code with a static message. */
typedef struct {
    int code;
    const char *message;
} ag_status;

#define AG_OK ((ag_status){0, NULL})

/* Header: exactly AG_HEADER_SIZE bytes. Checks the reserved bytes, the length cap and the flags. */
ag_status ag_header_decode(const uint8_t *buf, ag_header *out);
void ag_header_encode(uint8_t *buf, const ag_header *h);

/* Payload decoders of host frames. They accept only a payload consumed exactly. */
ag_status ag_hello_decode(const uint8_t *p, size_t n, uint16_t *min_version, uint16_t *max_version);
ag_status ag_u64_payload(const uint8_t *p, size_t n, uint64_t *v);            /* PING */
ag_status ag_credit_decode(const uint8_t *p, size_t n, uint8_t *channel, uint32_t *bytes);
ag_status ag_signal_decode(const uint8_t *p, size_t n, uint32_t *signo);
ag_status ag_resize_decode(const uint8_t *p, size_t n, uint16_t *rows, uint16_t *cols);
ag_status ag_data_decode(const uint8_t *p, size_t n, uint8_t *channel, const uint8_t **bytes, size_t *len);
ag_status ag_request_decode(const uint8_t *p, size_t n, ag_request *out);

/* Checks the header of a host frame against the frame types the host may send. */
ag_status ag_host_header_check(const ag_header *h);

/* A malloc'd C string of s (NULL on allocation failure). */
char *ag_strdup(ag_str s);

/* A growable output buffer for encoding agent frames. Allocation failure sets `failed`. */
typedef struct {
    uint8_t *data;
    size_t len, cap;
    bool failed;
} ag_buf;

void ag_buf_u8(ag_buf *b, uint8_t v);
void ag_buf_u16(ag_buf *b, uint16_t v);
void ag_buf_u32(ag_buf *b, uint32_t v);
void ag_buf_u64(ag_buf *b, uint64_t v);
void ag_buf_bytes(ag_buf *b, const void *p, size_t n);
void ag_buf_str(ag_buf *b, const char *s, size_t n); /* u32 length + bytes */
void ag_buf_free(ag_buf *b);
/* Starts a frame (header placeholder); ag_frame_end fills in the length. */
size_t ag_frame_begin(ag_buf *b, uint32_t stream, uint8_t type, uint8_t flags);
void ag_frame_end(ag_buf *b, size_t start);

#endif
