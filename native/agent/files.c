/*
 * files.c — the file service: streamed read and write, stat, list, mkdir, remove, rename.
 *
 * Paths are absolute paths of the zone: after the switch root the agent's root is the zone's
 * root, so the kernel keeps every path inside it. Reads and writes take regular files only (a
 * FIFO or a device could block the one loop or never end). File I/O is synchronous: regular
 * files on tmpfs or erofs answer at once, and each call moves at most one 64 KiB chunk.
 */

#include "agent.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define LIST_MAX 65536 /* entries in one listing; more are left out and the END says so */

static uint8_t file_type(mode_t m)
{
    if (S_ISREG(m)) return AG_FT_FILE;
    if (S_ISDIR(m)) return AG_FT_DIR;
    if (S_ISLNK(m)) return AG_FT_SYMLINK;
    if (S_ISCHR(m)) return AG_FT_CHAR;
    if (S_ISBLK(m)) return AG_FT_BLOCK;
    if (S_ISFIFO(m)) return AG_FT_FIFO;
    if (S_ISSOCK(m)) return AG_FT_SOCKET;
    return AG_FT_OTHER;
}

/* The stat record: u8 type, u32 mode, u32 uid, u32 gid, u64 size, i64 mtime s, u32 mtime ns. */
static void encode_stat(ag_buf *b, const struct stat *sb)
{
    ag_buf_u8(b, file_type(sb->st_mode));
    ag_buf_u32(b, sb->st_mode & 07777);
    ag_buf_u32(b, sb->st_uid);
    ag_buf_u32(b, sb->st_gid);
    ag_buf_u64(b, (uint64_t)sb->st_size);
    ag_buf_u64(b, (uint64_t)sb->st_mtim.tv_sec);
    ag_buf_u32(b, (uint32_t)sb->st_mtim.tv_nsec);
}

static void fail_errno(ag_stream *st, const char *what, const char *path)
{
    int e = errno;
    stream_error(st, AG_E_OS, e, "%s %s: %s", what, path, strerror(e));
}

static void end_u64(ag_stream *st, uint64_t v)
{
    ag_buf b = {0};
    ag_buf_u64(&b, v);
    stream_end(st, &b);
    ag_buf_free(&b);
}

/* mkdir -p: every missing directory of path (the whole path when `last`, else its parent). */
static int make_dirs(const char *path, mode_t mode, bool last)
{
    char buf[AG_PATH_MAX + 1];
    size_t n = strlen(path);
    if (n > AG_PATH_MAX) {
        errno = ENAMETOOLONG;
        return -1;
    }
    memcpy(buf, path, n + 1);
    if (!last) {
        char *slash = strrchr(buf, '/');
        if (!slash || slash == buf) return 0;
        *slash = 0;
    }
    for (char *p = buf + 1;; p++) {
        if (*p == '/' || *p == 0) {
            char c = *p;
            *p = 0;
            if (mkdir(buf, mode) < 0 && errno != EEXIST) return -1;
            *p = c;
            if (c == 0) break;
        }
    }
    struct stat sb;
    if (stat(buf, &sb) < 0) return -1;
    if (!S_ISDIR(sb.st_mode)) {
        errno = ENOTDIR;
        return -1;
    }
    return 0;
}

static void start_read(ag_stream *st, const ag_request *r, const char *path)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
    if (fd < 0) return fail_errno(st, "open", path);
    struct stat sb;
    if (fstat(fd, &sb) < 0) {
        fail_errno(st, "fstat", path);
        close(fd);
        return;
    }
    if (!S_ISREG(sb.st_mode)) {
        close(fd);
        return stream_error(st, AG_E_INVALID, EINVAL, "read %s: not a regular file", path);
    }
    st->fd = fd;
    st->done_bytes = r->u.read.offset; /* the file position of the next read */
    st->remaining = r->u.read.length;
    ag_buf b = {0};
    encode_stat(&b, &sb);
    stream_reply(st, &b);
    ag_buf_free(&b);
    file_read_pump(st);
}

void file_read_pump(ag_stream *st)
{
    static uint8_t buf[AG_DATA_CHUNK];
    uint64_t start = 0;
    bool started = false;
    while (st->fd >= 0 && st->out_credit[AG_CH_FILE] > 0 && !session_congested(st->s)) {
        if (!started) {
            start = st->done_bytes;
            started = true;
        }
        size_t want = sizeof buf;
        if (st->out_credit[AG_CH_FILE] < want) want = (size_t)st->out_credit[AG_CH_FILE];
        if (st->remaining < want) want = (size_t)st->remaining;
        ssize_t n = want ? pread(st->fd, buf, want, (off_t)st->done_bytes) : 0;
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) {
            int e = errno;
            return stream_error(st, AG_E_OS, e, "read: %s", strerror(e));
        }
        if (n == 0) {
            (void)start;
            return end_u64(st, st->done_bytes);
        }
        st->done_bytes += (uint64_t)n;
        st->remaining -= (uint64_t)n;
        stream_data(st, AG_CH_FILE, buf, (size_t)n);
    }
}

static void start_write(ag_stream *st, const ag_request *r, const char *path)
{
    if (r->u.write.parents && make_dirs(path, 0755, false) < 0) return fail_errno(st, "mkdir -p for", path);
    int base = O_WRONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK;
    int how = r->u.write.how == AG_WRITE_APPEND ? O_APPEND : r->u.write.how == AG_WRITE_TRUNCATE ? O_TRUNC : 0;
    bool created = true;
    int fd = open(path, base | O_CREAT | O_EXCL | how, (mode_t)r->u.write.mode);
    if (fd < 0 && errno == EEXIST && r->u.write.how != AG_WRITE_EXCLUSIVE) {
        created = false;
        fd = open(path, base | how);
    }
    if (fd < 0) return fail_errno(st, "open", path);
    struct stat sb;
    if (fstat(fd, &sb) < 0 || !S_ISREG(sb.st_mode)) {
        close(fd);
        return stream_error(st, AG_E_INVALID, EINVAL, "write %s: not a regular file", path);
    }
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK);
    if (created) fchmod(fd, (mode_t)r->u.write.mode); /* exactly the mode asked for, umask aside */
    st->fd = fd;
    stream_reply(st, NULL);
}

void file_write_data(ag_stream *st, const uint8_t *p, size_t n, bool eof)
{
    size_t off = 0;
    while (st->fd >= 0 && off < n) {
        ssize_t w = write(st->fd, p + off, n - off);
        if (w < 0 && errno == EINTR) continue;
        if (w < 0) {
            int e = errno;
            return stream_error(st, AG_E_OS, e, "write: %s", strerror(e));
        }
        off += (size_t)w;
    }
    st->done_bytes += n;
    if (eof) {
        int fd = st->fd;
        st->fd = -1;
        if (close(fd) < 0) {
            int e = errno;
            return stream_error(st, AG_E_OS, e, "close: %s", strerror(e));
        }
        return end_u64(st, st->done_bytes);
    }
    if (n) stream_grant(st, AG_CH_FILE, (uint32_t)n);
}

void file_close(ag_stream *st)
{
    if (st->fd >= 0) close(st->fd);
    st->fd = -1;
}

static void list_dir(ag_stream *st, const char *path)
{
    DIR *d = opendir(path);
    if (!d) return fail_errno(st, "opendir", path);
    uint32_t total = 0;
    bool truncated = false;
    ag_buf batch = {0};
    uint16_t count = 0;
    ag_buf_u16(&batch, 0);
    struct dirent *de;
    while ((de = readdir(d))) {
        if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, "..")) continue;
        if (total == LIST_MAX) {
            truncated = true;
            break;
        }
        struct stat sb;
        if (fstatat(dirfd(d), de->d_name, &sb, AT_SYMLINK_NOFOLLOW) < 0) continue; /* vanished */
        ag_buf_str(&batch, de->d_name, strlen(de->d_name));
        encode_stat(&batch, &sb);
        total++;
        if (++count == AG_LIST_BATCH) {
            if (!batch.failed) batch.data[0] = (uint8_t)count, batch.data[1] = (uint8_t)(count >> 8);
            stream_reply(st, &batch);
            batch.len = 0;
            count = 0;
            ag_buf_u16(&batch, 0);
        }
    }
    closedir(d);
    if (count) {
        if (!batch.failed) batch.data[0] = (uint8_t)count, batch.data[1] = (uint8_t)(count >> 8);
        stream_reply(st, &batch);
    }
    ag_buf_free(&batch);
    ag_buf b = {0};
    ag_buf_u32(&b, total);
    ag_buf_u8(&b, truncated);
    stream_end(st, &b);
    ag_buf_free(&b);
}

static int remove_one(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)ftw;
    return (flag == FTW_DP ? rmdir(path) : unlink(path)) < 0 ? -1 : 0;
}

void files_request(ag_stream *st, const ag_request *r)
{
    char *path = NULL, *to = NULL;
    switch (r->op) {
    case AG_OP_FILE_READ: path = ag_strdup(r->u.read.path); break;
    case AG_OP_FILE_WRITE: path = ag_strdup(r->u.write.path); break;
    case AG_OP_STAT: path = ag_strdup(r->u.stat.path); break;
    case AG_OP_LIST: path = ag_strdup(r->u.list.path); break;
    case AG_OP_MKDIR: path = ag_strdup(r->u.mkdir.path); break;
    case AG_OP_REMOVE: path = ag_strdup(r->u.remove.path); break;
    case AG_OP_RENAME:
        path = ag_strdup(r->u.rename.from);
        to = ag_strdup(r->u.rename.to);
        if (!to) {
            free(path);
            path = NULL;
        }
        break;
    }
    if (!path) return stream_error(st, AG_E_OS, ENOMEM, "out of memory");
    struct stat sb;
    switch (r->op) {
    case AG_OP_FILE_READ:
        start_read(st, r, path);
        break;
    case AG_OP_FILE_WRITE:
        start_write(st, r, path);
        break;
    case AG_OP_STAT:
        if ((r->u.stat.follow ? stat(path, &sb) : lstat(path, &sb)) < 0) {
            fail_errno(st, "stat", path);
        } else {
            ag_buf b = {0};
            encode_stat(&b, &sb);
            stream_end(st, &b);
            ag_buf_free(&b);
        }
        break;
    case AG_OP_LIST:
        list_dir(st, path);
        break;
    case AG_OP_MKDIR:
        if ((r->u.mkdir.parents ? make_dirs(path, (mode_t)r->u.mkdir.mode, true) : mkdir(path, (mode_t)r->u.mkdir.mode)) < 0)
            fail_errno(st, "mkdir", path);
        else
            stream_end(st, NULL);
        break;
    case AG_OP_REMOVE:
        if (lstat(path, &sb) < 0) {
            fail_errno(st, "remove", path);
        } else if (S_ISDIR(sb.st_mode)) {
            int rc = r->u.remove.recursive ? nftw(path, remove_one, 32, FTW_DEPTH | FTW_PHYS | FTW_MOUNT) : rmdir(path);
            if (rc < 0) fail_errno(st, "remove", path);
            else stream_end(st, NULL);
        } else if (unlink(path) < 0) {
            fail_errno(st, "remove", path);
        } else {
            stream_end(st, NULL);
        }
        break;
    case AG_OP_RENAME:
        if (rename(path, to) < 0) fail_errno(st, "rename", path);
        else stream_end(st, NULL);
        break;
    }
    free(path);
    free(to);
}
