/* Replacing a file atomically: write a temp file beside it, fsync, rename, fsync the
 * directory, so readers see the old file or the new one, never half of one. */
#ifndef HERD_IO_ATOMIC_FILE_H
#define HERD_IO_ATOMIC_FILE_H

#include <stddef.h>

#include "herd/core.h"

/* Writes the n chunks (data[i], len[i] bytes) in order to path atomically. On failure
 * the temp file is removed and the old file (if any) is untouched. fault_point (or NULL)
 * names the herd_fault_point reached just before the rename, for crash tests. */
herd_status io_write_file_atomic(const char *path, const void *const *data, const size_t *len, int n,
                                 const char *fault_point, herd_error *err);

/* Removes the temp file of the atomic write in progress, if any. Async-signal-safe: for a
 * handler that ends the process in the middle of a write (the target stays as it was). */
void io_atomic_remove_inflight(void);

#endif
