/* --trace FILE: every rank's timeline gathered on rank 0 and written as one Chrome trace
 * (one process row per rank), atomically. */
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "dist/comm.h"
#include "herd/trace.h"
#include "io/atomic_file.h"

enum { TAG_TRACE_LEN = 401, TAG_TRACE_DATA = 402 };

herd_status cli_write_trace(const char *path, herd_trace *t, herd_comm *c, herd_error *err) {
    int rank = herd_comm_rank(c), world = herd_comm_size(c);
    char *mine = NULL;
    size_t len = 0;
    herd_status st = herd_trace_json(t, rank, &mine, &len, err);
    if (st) return st;
    herd_comm_request *r;
    if (rank != 0) {
        int64_t n = (int64_t)len;
        if (!(st = herd_comm_isend(c, &n, sizeof n, 0, TAG_TRACE_LEN, &r, err))) st = herd_comm_wait(c, r, err);
        if (!st && !(st = herd_comm_isend(c, mine, n, 0, TAG_TRACE_DATA, &r, err))) st = herd_comm_wait(c, r, err);
        free(mine);
        return st;
    }
    /* rank 0: "[", its own events, then each rank's in rank order, "]" */
    const void **parts = calloc((size_t)world * 2 + 2, sizeof *parts);
    size_t *lens = calloc((size_t)world * 2 + 2, sizeof *lens);
    char **bufs = calloc((size_t)world, sizeof *bufs);
    if (!parts || !lens || !bufs) st = herd_fail(err, HERD_ENOMEM, "%s: out of memory", path);
    int n = 0;
    if (!st) {
        parts[n] = "{\"displayTimeUnit\":\"ms\",\"traceEvents\":[", lens[n++] = strlen(parts[0]);
        parts[n] = mine, lens[n++] = len;
    }
    for (int src = 1; src < world && !st; src++) {
        int64_t m = 0;
        if (!(st = herd_comm_irecv(c, &m, sizeof m, src, TAG_TRACE_LEN, &r, err))) st = herd_comm_wait(c, r, err);
        if (!st && (m < 0 || m > ((int64_t)1 << 31))) st = herd_fail(err, HERD_EINTERNAL, "trace of rank %d: bad size", src);
        if (!st && !(bufs[src] = malloc((size_t)m + 1))) st = herd_fail(err, HERD_ENOMEM, "%s: out of memory", path);
        bufs[src][0] = ',';
        if (!st && !(st = herd_comm_irecv(c, bufs[src] + 1, m, src, TAG_TRACE_DATA, &r, err)))
            st = herd_comm_wait(c, r, err);
        if (!st) parts[n] = bufs[src], lens[n++] = (size_t)m + 1;
    }
    if (!st) {
        parts[n] = "]}\n", lens[n++] = 3;
        st = herdi_io_write_file_atomic(path, parts, lens, n, NULL, err);
    }
    for (int i = 0; bufs && i < world; i++) free(bufs[i]);
    free(bufs), free(parts), free(lens), free(mine);
    return st;
}
