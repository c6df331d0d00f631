/* Atomic file replacement shared by every writer of whole files (safetensors, ONNX):
 * temp file beside the target, fsync, rename, fsync of the directory. */
#include "io/atomic_file.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* The temp file of the write in progress, for herdi_io_atomic_remove_inflight (a signal handler):
 * a fixed buffer and a flag, since the handler may only make async-signal-safe calls. */
static char inflight[4096];
static volatile sig_atomic_t inflight_set;

void herdi_io_atomic_remove_inflight(void) {
    if (inflight_set) unlink(inflight);
}

static void track_inflight(const char *tmp) {
    inflight_set = 0;
    if (tmp && strlen(tmp) < sizeof inflight) {
        memcpy(inflight, tmp, strlen(tmp) + 1);
        inflight_set = 1;
    }
}

static herd_status write_all(int fd, const void *buf, size_t n, const char *path, herd_error *err) {
    const char *p = buf;
    while (n > 0) {
        ssize_t k = write(fd, p, n > (1u << 30) ? (1u << 30) : n);
        if (k < 0) {
            if (errno == EINTR) continue;
            return herd_fail(err, HERD_EIO, "%s: write failed: %s", path, strerror(errno));
        }
        p += k;
        n -= (size_t)k;
    }
    return HERD_OK;
}

static herd_status fsync_parent_dir(const char *path, herd_error *err) {
    char dir[4096];
    const char *slash = strrchr(path, '/');
    if (!slash)
        snprintf(dir, sizeof dir, ".");
    else if (slash == path)
        snprintf(dir, sizeof dir, "/");
    else {
        size_t k = (size_t)(slash - path);
        if (k >= sizeof dir) return herd_fail(err, HERD_EIO, "%s: directory path too long", path);
        memcpy(dir, path, k);
        dir[k] = '\0';
    }
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) return herd_fail(err, HERD_EIO, "%s: cannot open directory %s to sync: %s", path, dir, strerror(errno));
    int rc = fsync(fd);
    int e = errno;
    close(fd);
    /* Some filesystems cannot fsync directories; the rename itself has happened. */
    if (rc != 0 && e != EINVAL && e != ENOTSUP)
        return herd_fail(err, HERD_EIO, "%s: fsync of directory %s failed: %s", path, dir, strerror(e));
    return HERD_OK;
}

herd_status herdi_io_atomic_create(io_atomic *f, const char *path, herd_error *err) {
    struct stat sb;
    memset(f, 0, sizeof *f);
    f->fd = -1;
    /* rename() would put a regular file in place of a device or pipe (/dev/stdout) */
    if (stat(path, &sb) == 0 && !S_ISREG(sb.st_mode))
        return herd_fail(err, HERD_EIO,
                         "%s: exists and is not a regular file (herd replaces files atomically, by rename)", path);
    size_t plen = strlen(path);
    if (!(f->path = strdup(path)) || !(f->tmp = malloc(plen + 32))) {
        free(f->path);
        f->path = NULL;
        return herd_fail(err, HERD_ENOMEM, "%s: out of memory", path);
    }
    snprintf(f->tmp, plen + 32, "%s.tmp.%ld", path, (long)getpid());
    track_inflight(f->tmp); /* before the file exists: a signal in between finds nothing to remove */
    f->fd = open(f->tmp, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (f->fd < 0) {
        herd_status st = herd_fail(err, HERD_EIO, "%s: cannot create %s: %s", path, f->tmp, strerror(errno));
        herdi_io_atomic_abort(f);
        return st;
    }
    return HERD_OK;
}

herd_status herdi_io_atomic_write(io_atomic *f, const void *buf, size_t n, herd_error *err) {
    return write_all(f->fd, buf, n, f->tmp, err);
}

herd_status herdi_io_atomic_pwrite(io_atomic *f, const void *buf, size_t n, uint64_t offset, herd_error *err) {
    const char *p = buf;
    while (n > 0) {
        ssize_t k = pwrite(f->fd, p, n > (1u << 30) ? (1u << 30) : n, (off_t)offset);
        if (k < 0) {
            if (errno == EINTR) continue;
            return herd_fail(err, HERD_EIO, "%s: write failed: %s", f->tmp, strerror(errno));
        }
        p += k, n -= (size_t)k, offset += (uint64_t)k;
    }
    return HERD_OK;
}

void herdi_io_atomic_writeback(io_atomic *f, uint64_t offset, uint64_t n) {
#ifdef __linux__
    /* SYNC_FILE_RANGE_WRITE queues the dirty pages for writing and returns; errors show at commit's fsync */
    if (n > 0) (void)sync_file_range(f->fd, (off_t)offset, (off_t)n, SYNC_FILE_RANGE_WRITE);
#else
    (void)f, (void)offset, (void)n;
#endif
}

void herdi_io_atomic_abort(io_atomic *f) {
    if (f->fd >= 0) close(f->fd);
    if (f->tmp) unlink(f->tmp); /* never leave a half-written file beside the target */
    track_inflight(NULL);
    free(f->tmp);
    free(f->path);
    memset(f, 0, sizeof *f);
    f->fd = -1;
}

herd_status herdi_io_atomic_commit(io_atomic *f, const char *fault_point, herd_error *err) {
    herd_status st = HERD_OK;
    if (fsync(f->fd) != 0) st = herd_fail(err, HERD_EIO, "%s: fsync failed: %s", f->tmp, strerror(errno));
    int rc = close(f->fd);
    f->fd = -1;
    if (rc != 0 && st == HERD_OK) st = herd_fail(err, HERD_EIO, "%s: close failed: %s", f->tmp, strerror(errno));
    if (st == HERD_OK && fault_point) herd_fault_point(fault_point); /* tests: a kill -9 here keeps the old file */
    if (st == HERD_OK && rename(f->tmp, f->path) != 0)
        st = herd_fail(err, HERD_EIO, "%s: cannot rename %s into place: %s", f->path, f->tmp, strerror(errno));
    if (st != HERD_OK) {
        herdi_io_atomic_abort(f);
        return st;
    }
    track_inflight(NULL);
    st = fsync_parent_dir(f->path, err);
    free(f->tmp);
    free(f->path);
    memset(f, 0, sizeof *f);
    f->fd = -1;
    return st;
}

herd_status herdi_io_write_file_atomic(const char *path, const void *const *data, const size_t *len, int n,
                                 const char *fault_point, herd_error *err) {
    io_atomic f;
    herd_status st = herdi_io_atomic_create(&f, path, err);
    for (int i = 0; i < n && st == HERD_OK; i++) st = herdi_io_atomic_write(&f, data[i], len[i], err);
    if (st != HERD_OK) {
        herdi_io_atomic_abort(&f);
        return st;
    }
    return herdi_io_atomic_commit(&f, fault_point, err);
}
