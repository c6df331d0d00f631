/* Mutation fuzz of the file readers (safetensors, IDX plain and gzip, CIFAR-10):
 * seeded random bit flips, truncations and splices of valid files must give OK or an
 * error naming the file, never a crash (run under HERD_SANITIZE=ON for full value). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zlib.h>

#include "check.h"
#include "sample_check.h"
#include "mutate.h"
#include "herd/data.h"
#include "herd/io.h"

/* HERD_FUZZ_ITERS raises the count for a longer soak than the default suite affords. */
static int ITERS = 400;

static char dir[256], path[512];

static void write_raw(const uint8_t *buf, size_t n) {
    FILE *f = fopen(path, "wb");
    if (!f || (n && fwrite(buf, 1, n, f) != n)) {
        perror(path);
        exit(2);
    }
    fclose(f);
}



static void check_result(herd_status st, const herd_error *err, const char *what, int i) {
    CHECK(st == HERD_OK || st == HERD_EFORMAT || st == HERD_EUNSUPPORTED || st == HERD_EIO,
          "%s iteration %d: unexpected status %d: %s", what, i, st, err->msg);
    if (st != HERD_OK)
        CHECK(strncmp(err->msg, path, strlen(path)) == 0, "%s iteration %d: message without path: %s", what, i,
              err->msg);
}

static void fuzz_safetensors(void) {
    static uint8_t seed[4096], buf[8192];
    float f[6] = {1, 2, 3, 4, 5, 6};
    int64_t l[2] = {7, 8};
    uint8_t u[3] = {1, 2, 3};
    herd_tensor_ref t[] = {{"w", HERD_F32, 2, {2, 3}, f}, {"u", HERD_U8, 1, {3}, u}, {"l", HERD_I64, 1, {2}, l}};
    const char *meta[] = {"k", "v"};
    herd_error err = {0};
    snprintf(path, sizeof path, "%s/fuzz.safetensors", dir);
    CHECK(herd_safetensors_write(path, t, 3, meta, 1, &err) == HERD_OK, "seed file: %s", err.msg);
    size_t n = fuzz_slurp(path, seed, sizeof seed);
    herd_rng r;
    herd_rng_init(&r, 1234, 1);
    int ok = 0;
    for (int i = 0; i < ITERS; i++) {
        size_t m = fuzz_mutate(&r, seed, n, buf, sizeof buf);
        write_raw(buf, m);
        herd_safetensors *st = NULL;
        herd_status s = herd_safetensors_open(&st, path, &err);
        check_result(s, &err, "safetensors", i);
        if (s == HERD_OK) {
            ok++;
            /* Whatever was accepted must be self-consistent enough to walk. */
            for (int k = 0; k < herd_safetensors_count(st); k++) {
                const herd_tensor_ref *tr = herd_safetensors_get(st, k);
                CHECK(herd_safetensors_find(st, tr->name) == tr, "find after fuzz");
            }
        }
        herd_safetensors_close(st);
    }
    printf("safetensors: %d mutations, %d still valid\n", ITERS, ok);
}

static void fuzz_idx(int gz) {
    static uint8_t seed[4096], buf[8192], pix[3 * 5 * 7];
    for (size_t i = 0; i < sizeof pix; i++) pix[i] = (uint8_t)(i * 37);
    uint8_t hdr[16] = {0, 0, 8, 3, 0, 0, 0, 3, 0, 0, 0, 5, 0, 0, 0, 7};
    memcpy(seed, hdr, 16);
    memcpy(seed + 16, pix, sizeof pix);
    size_t n = 16 + sizeof pix;
    snprintf(path, sizeof path, "%s/fuzz.idx%s", dir, gz ? ".gz" : "");
    if (gz) {
        gzFile g = gzopen(path, "wb");
        gzwrite(g, seed, (unsigned)n);
        gzclose(g);
        n = fuzz_slurp(path, seed, sizeof seed);
    }
    herd_rng r;
    herd_rng_init(&r, 99, (uint64_t)gz);
    int ok = 0;
    for (int i = 0; i < ITERS; i++) {
        size_t m = fuzz_mutate(&r, seed, n, buf, sizeof buf);
        write_raw(buf, m);
        herd_error err = {0};
        uint8_t *data = NULL;
        int nd;
        int64_t dims[4];
        herd_status s = herd_idx_read(path, &data, &nd, dims, &err);
        check_result(s, &err, gz ? "idx.gz" : "idx", i);
        if (s == HERD_OK) {
            ok++;
            size_t total = 1;
            for (int k = 0; k < nd; k++) total *= (size_t)dims[k];
            volatile uint8_t sink = 0;
            for (size_t k = 0; k < total; k++) sink ^= data[k]; /* ASan checks the claimed size */
            (void)sink;
        }
        free(data);
    }
    printf("idx%s: %d mutations, %d still valid\n", gz ? ".gz" : "", ITERS, ok);
}

static void fuzz_cifar(void) {
    static uint8_t seed[2 * 3073], buf[2 * 3073 + 64];
    for (size_t i = 0; i < sizeof seed; i++) seed[i] = (uint8_t)(i % 3073 == 0 ? (i / 3073) : i * 13);
    snprintf(path, sizeof path, "%s/fuzz_batch.bin", dir);
    herd_rng r;
    herd_rng_init(&r, 5, 5);
    const char *paths[1] = {path};
    for (int i = 0; i < ITERS / 4; i++) {
        size_t m = fuzz_mutate(&r, seed, sizeof seed, buf, sizeof buf);
        write_raw(buf, m);
        herd_error err = {0};
        herd_dataset *ds = NULL;
        herd_status s = herd_cifar10_open(&ds, paths, 1, &err);
        check_result(s, &err, "cifar", i);
        if (s == HERD_OK) {
            float x[3072];
            int32_t y;
            CHECK(get_f32(ds, ds->n - 1, x, &y, &err) == HERD_OK && y >= 0 && y < 10, "cifar sample");
        }
        herd_dataset_close(ds);
    }
}

int main(void) {
    const char *it = getenv("HERD_FUZZ_ITERS");
    if (it && atoi(it) > 0) ITERS = atoi(it);
    snprintf(dir, sizeof dir, "/tmp/herd_fuzz_XXXXXX");
    if (!mkdtemp(dir)) {
        perror("mkdtemp");
        return 2;
    }
    fuzz_safetensors();
    fuzz_idx(0);
    fuzz_idx(1);
    fuzz_cifar();
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", dir);
    return check_summary();
}
