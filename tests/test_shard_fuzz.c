/* Mutation fuzz of the herd shard reader (as test_readers_fuzz2.c does for the other readers):
 * seeded bit flips, truncations and splices of valid u8 and f32 shards must give OK or a
 * one-line error naming the file, never a crash or an unbounded allocation (run under
 * HERD_SANITIZE=ON for full value). Every record of an accepted shard is read too. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "sample_check.h"
#include "mutate.h"
#include "herd/data.h"

static int ITERS = 400;

static void write_raw(const char *p, const uint8_t *buf, size_t n) {
    FILE *f = fopen(p, "wb");
    if (!f || (n && fwrite(buf, 1, n, f) != n)) exit(2);
    fclose(f);
}

static void fuzz(const char *what, const char *good, const char *p, uint64_t key) {
    static uint8_t seed[1 << 14], buf[1 << 15];
    size_t n = fuzz_slurp(good, seed, sizeof seed);
    herd_rng r;
    herd_rng_init(&r, 2026, key);
    int opened = 0, record_errors = 0;
    for (int i = 0; i < ITERS; i++) {
        write_raw(p, buf, fuzz_mutate(&r, seed, n, buf, sizeof buf));
        const char *paths[1] = {p};
        herd_dataset *ds = NULL;
        herd_error err = {0};
        herd_status st = herd_shards_open(&ds, paths, 1, &err);
        if (st == HERD_OK) {
            opened++;
            size_t per = (size_t)herd_tensor_numel(&ds->x);
            float *x = malloc(per * sizeof *x);
            for (int64_t k = 0; k < ds->n; k++) {
                int32_t y;
                herd_error e2 = {0};
                herd_status s2 = get_f32(ds, k, x, &y, &e2);
                record_errors += s2 != HERD_OK;
                CHECK(s2 == HERD_OK || (s2 == HERD_EFORMAT && strstr(e2.msg, p) && strstr(e2.msg, "record ")),
                      "%s iteration %d: get %lld: %d %s", what, i, (long long)k, s2, e2.msg);
                if (s2 == HERD_OK) CHECK(y >= 0 && y < ds->num_classes, "%s iteration %d: label %d", what, i, y);
            }
            free(x);
            herd_dataset_close(ds);
        } else {
            CHECK((st == HERD_EFORMAT || st == HERD_EUNSUPPORTED || st == HERD_EIO) &&
                      strncmp(err.msg, p, strlen(p)) == 0 && !strchr(err.msg, '\n'),
                  "%s iteration %d: status %d: %s", what, i, st, err.msg);
        }
    }
    printf("%s: %d mutations, %d opened, %d record errors\n", what, ITERS, opened, record_errors);
}

int main(void) {
    const char *it = getenv("HERD_FUZZ_ITERS");
    if (it && atoi(it) > 0) ITERS = atoi(it);
    char dir[64], p[300], good[300];
    snprintf(dir, sizeof dir, "/tmp/herd_shardfuzz_XXXXXX");
    if (!mkdtemp(dir)) return 2;
    herd_error err = {0};
    /* u8: 12 samples of 1x4x4; f32: 6 samples of 2x2x3 */
    uint8_t *img = malloc(12 * 16);
    int32_t *lab = malloc(12 * sizeof *lab);
    for (int i = 0; i < 12 * 16; i++) img[i] = (uint8_t)(i * 29);
    for (int i = 0; i < 12; i++) lab[i] = i % 5;
    herd_dataset *u8, *f32;
    int64_t ud[4] = {12, 1, 4, 4}, un = 12, fd[4] = {6, 2, 2, 3}, fn = 6;
    herd_dataset_from_memory(&u8, herd_tensor_make(HERD_U8, 4, ud, img), herd_tensor_make(HERD_I32, 1, &un, lab), 5,
                             "u8", &err);
    float *x = malloc(6 * 12 * sizeof *x);
    int32_t *lab2 = malloc(6 * sizeof *lab2);
    for (int i = 0; i < 72; i++) x[i] = (float)i * 0.1f - 2;
    for (int i = 0; i < 6; i++) lab2[i] = i % 3;
    herd_dataset_from_memory(&f32, herd_tensor_make(HERD_F32, 4, fd, x), herd_tensor_make(HERD_I32, 1, &fn, lab2), 3,
                             "f32", &err);
    snprintf(p, sizeof p, "%s/fuzz.herd", dir);
    snprintf(good, sizeof good, "%s/good-u8.herd", dir);
    CHECK(herd_shard_write(good, u8, 0, 12, NULL, NULL, &err) == HERD_OK, "write: %s", err.msg);
    fuzz("shard u8", good, p, 1);
    snprintf(good, sizeof good, "%s/good-f32.herd", dir);
    CHECK(herd_shard_write(good, f32, 0, 6, NULL, NULL, &err) == HERD_OK, "write: %s", err.msg);
    fuzz("shard f32", good, p, 2);
    herd_dataset_close(u8);
    herd_dataset_close(f32);
    char cmd[400];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", dir);
    return check_summary();
}
