/* Mapped data files that shrink during a run (NPY features, herd shards): a read of a page the
 * file lost raises SIGBUS; herd turns it into one error naming the file, and the process lives. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "herd/data.h"

#define N 64
#define FEATURES 4096 /* 16 KiB per float32 sample: the file is 1 MiB, many pages */

static char dir[64];

static void write_file(const char *path, const void *a, size_t na, const void *b, size_t nb) {
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(a, 1, na, f) != na || (nb && fwrite(b, 1, nb, f) != nb) || fclose(f) != 0) {
        perror(path);
        exit(2);
    }
}

/* A v1 header of 128 bytes in all (the dict padded with blanks and a newline). */
static void write_npy(const char *path, const char *dict, const void *data, size_t bytes) {
    char head[128];
    memset(head, ' ', sizeof head);
    memcpy(head, "\x93NUMPY\x01\x00", 8);
    head[8] = (char)(sizeof head - 10), head[9] = 0;
    memcpy(head + 10, dict, strlen(dict));
    head[sizeof head - 1] = '\n';
    write_file(path, head, sizeof head, data, bytes);
}

/* Reads sample 0, shrinks path to `keep` bytes, then reads the last sample: an error naming the file. */
static void expect_shrink_error(herd_dataset *ds, const char *path, long keep, const char *what) {
    float *x = malloc(FEATURES * sizeof *x);
    int32_t y;
    herd_error err = {0};
    CHECK(x && ds->ops->get(ds, 0, x, &y, &err) == HERD_OK, "%s: sample 0 before: %s", what, err.msg);
    CHECK(truncate(path, keep) == 0, "%s: truncate", what);
    herd_status st = ds->ops->get(ds, N - 1, x, &y, &err);
    CHECK(st == HERD_EIO && strstr(err.msg, path) == err.msg && strstr(err.msg, "SIGBUS"),
          "%s: after shrinking: status %d, '%s'", what, st, err.msg);
    /* the guard is per read: the next read of a page still there works, the next lost one fails again */
    CHECK(ds->ops->get(ds, N - 2, x, &y, &err) == HERD_EIO, "%s: a second lost page", what);
    free(x);
}

int main(void) {
    snprintf(dir, sizeof dir, "/tmp/herd_shrink_XXXXXX");
    if (!mkdtemp(dir)) return 2;
    float *x = malloc((size_t)N * FEATURES * sizeof *x);
    uint8_t labels[N];
    for (size_t i = 0; i < (size_t)N * FEATURES; i++) x[i] = (float)(i % 97) / 97.0f;
    for (int i = 0; i < N; i++) labels[i] = (uint8_t)(i % 3);
    char xp[128], yp[128], sp[128];
    snprintf(xp, sizeof xp, "%s/x.npy", dir);
    snprintf(yp, sizeof yp, "%s/y.npy", dir);
    snprintf(sp, sizeof sp, "%s/train.herd", dir);
    char dict[100];
    snprintf(dict, sizeof dict, "{'descr': '<f4', 'fortran_order': False, 'shape': (%d, %d), }", N, FEATURES);
    write_npy(xp, dict, x, (size_t)N * FEATURES * sizeof *x);
    snprintf(dict, sizeof dict, "{'descr': '|u1', 'fortran_order': False, 'shape': (%d,), }", N);
    write_npy(yp, dict, labels, sizeof labels);

    herd_dataset *ds = NULL;
    herd_error err = {0};
    CHECK(herd_npy_open(&ds, xp, yp, &err) == HERD_OK, "npy open: %s", err.msg);
    if (ds) {
        herd_shard_write_options f32 = {.dtype = HERD_SHARD_F32};
        CHECK(herd_shard_write(sp, ds, 0, N, &f32, NULL, &err) == HERD_OK, "shard write: %s", err.msg);
        expect_shrink_error(ds, xp, 8192, "npy");
        herd_dataset_close(ds);
    }
    ds = NULL;
    const char *paths[1] = {sp};
    CHECK(herd_shards_open(&ds, paths, 1, &err) == HERD_OK, "shard open: %s", err.msg);
    if (ds) {
        expect_shrink_error(ds, sp, 8192, "shard");
        herd_dataset_close(ds);
    }
    free(x);
    unlink(xp), unlink(yp), unlink(sp), rmdir(dir);
    return check_summary();
}
