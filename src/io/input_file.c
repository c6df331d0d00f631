/* Opening a file herd reads: one check, for every reader, that it is a regular file. */
#include "io/input_file.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <unistd.h>

static const char *kind_of(mode_t m) {
    return S_ISDIR(m) ? "a directory" : S_ISFIFO(m) ? "a FIFO" : S_ISSOCK(m) ? "a socket" :
           S_ISCHR(m) || S_ISBLK(m) ? "a device" : "not a file";
}

herd_status herdi_input_open(const char *path, int *fd, struct stat *sb, herd_error *err) {
    struct stat own;
    if (!sb) sb = &own;
    *fd = -1;
    /* O_NONBLOCK: opening a FIFO without a writer returns at once instead of waiting */
    int f = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
    if (f < 0) return herd_fail(err, HERD_EIO, "%s: cannot open: %s", path, strerror(errno));
    if (fstat(f, sb) != 0) {
        int e = errno;
        close(f);
        return herd_fail(err, HERD_EIO, "%s: cannot open: %s", path, strerror(e));
    }
    if (!S_ISREG(sb->st_mode)) {
        close(f);
        return herd_fail(err, HERD_EIO, "%s: not a regular file (%s)", path, kind_of(sb->st_mode));
    }
    int flags = fcntl(f, F_GETFL);
    if (flags < 0 || fcntl(f, F_SETFL, flags & ~O_NONBLOCK) != 0) {
        int e = errno;
        close(f);
        return herd_fail(err, HERD_EIO, "%s: cannot open: %s", path, strerror(e));
    }
    *fd = f;
    return HERD_OK;
}

herd_status herdi_input_fopen(const char *path, FILE **f, herd_error *err) {
    int fd;
    herd_status st = herdi_input_open(path, &fd, NULL, err);
    if (st) return st;
    if (!(*f = fdopen(fd, "rb"))) {
        close(fd);
        return herd_fail(err, HERD_ENOMEM, "%s: out of memory", path);
    }
    return HERD_OK;
}
