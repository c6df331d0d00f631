/* Reads from memory-mapped data files (NPY features, herd shards) under a SIGBUS guard: a file
 * that shrinks while it is mapped makes the next read of a lost page raise SIGBUS, which here
 * becomes an error naming the file instead of killing the process. */
#ifndef HERD_DATA_MAPPED_READ_H
#define HERD_DATA_MAPPED_READ_H

#include "herd/data.h"

/* Runs get(ds, i, x, y, err), a reader's get() over pages mapped from the file at path. A
 * SIGBUS raised in this thread meanwhile ends it at once and returns HERD_EIO naming path.
 * Thread-safe; the process's other SIGBUS handling is kept (faults outside a guarded read go
 * to the handler that was there before). */
herd_status herdi_mapped_get_guarded(const char *path,
                               herd_status (*get)(const herd_dataset *ds, int64_t i, void *x, void *y, herd_error *err),
                               const herd_dataset *ds, int64_t i, void *x, void *y, herd_error *err);

#endif
