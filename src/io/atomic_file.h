/* Replacing a file atomically: write a temp file beside it, fsync, rename, fsync the
 * directory, so readers see the old file or the new one, never half of one. */
#ifndef HERD_IO_ATOMIC_FILE_H
#define HERD_IO_ATOMIC_FILE_H

#include <stddef.h>
#include <stdint.h>

#include "herd/core.h"

/* Writes the n chunks (data[i], len[i] bytes) in order to path atomically. On failure
 * the temp file is removed and the old file (if any) is untouched. fault_point (or NULL)
 * names the herd_fault_point reached just before the rename, for crash tests. */
herd_status herdi_io_write_file_atomic(const char *path, const void *const *data, const size_t *len, int n,
                                 const char *fault_point, herd_error *err);

/* Removes the temp file of the atomic write in progress, if any. Async-signal-safe: for a
 * handler that ends the process in the middle of a write (the target stays as it was). */
void herdi_io_atomic_remove_inflight(void);
/* The same for a file written piece by piece: create opens path.tmp.<pid>; write appends,
 * pwrite writes at an offset (e.g. a header reserved at the start); commit fsyncs, renames
 * into place and fsyncs the directory (fault_point as above; a failed commit has removed the
 * temp file); abort (after a failed write, or to give up) closes and removes the temp file. */
typedef struct io_atomic {
    int fd;
    char *tmp, *path;
} io_atomic;
herd_status herdi_io_atomic_create(io_atomic *f, const char *path, herd_error *err);
herd_status herdi_io_atomic_write(io_atomic *f, const void *buf, size_t n, herd_error *err);
herd_status herdi_io_atomic_pwrite(io_atomic *f, const void *buf, size_t n, uint64_t offset, herd_error *err);
/* Starts writing bytes [offset, offset + n) already written to storage, in the background
 * (Linux: sync_file_range; elsewhere nothing), so that commit's fsync of a large file finds
 * little left to write instead of all of it at once. */
void herdi_io_atomic_writeback(io_atomic *f, uint64_t offset, uint64_t n);
herd_status herdi_io_atomic_commit(io_atomic *f, const char *fault_point, herd_error *err);
void herdi_io_atomic_abort(io_atomic *f);

#endif
