/* The loader: the same batches for any prefetch depth and thread count (augmentation and
 * cache included), plain batches equal to herd_dataset_batch, flips that are flips, the cache
 * bound, a rank's share of rows, and read errors coming back to the caller. */
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "herd/data.h"

enum { N = 100, C = 1, H = 6, W = 5, PER = C * H * W, BATCH = 7, EPOCHS = 2 };

static herd_dataset *make_ds(void) {
    uint8_t *img = malloc((size_t)N * PER);
    int32_t *lab = malloc(N * sizeof *lab);
    for (int i = 0; i < N * PER; i++) img[i] = (uint8_t)(i * 7 + i / 13);
    for (int i = 0; i < N; i++) lab[i] = i % 10;
    herd_dataset *ds;
    herd_error err = {0};
    if (herd_dataset_from_u8(&ds, img, lab, N, C, H, W, 10, "mem", &err)) exit(2);
    return ds;
}

/* Every batch of EPOCHS epochs, rows [lo, hi) of each, into x/y (in step order). */
static herd_status run(const herd_dataset *ds, const herd_loader_config *cfg, herd_rows_fn rows, float *x, int32_t *y,
                       herd_error *err) {
    herd_loader *l;
    herd_sampler s;
    herd_status st = herd_loader_create(&l, ds, BATCH, cfg, rows, NULL, err);
    if (st) return st;
    herd_sampler_init(&s, N, 9, 1, err);
    size_t at = 0;
    for (int e = 0; e < EPOCHS && !st; e++) {
        herd_sampler_set_epoch(&s, e);
        st = herd_loader_start_epoch(l, e, s.perm, N, BATCH, 0, err);
        for (int64_t k = 0; k * BATCH < N && !st; k++) {
            int B = N - k * BATCH < BATCH ? (int)(N - k * BATCH) : BATCH, lo = 0, hi = B;
            if (rows) rows(NULL, B, &lo, &hi);
            /* asked in two pieces, as deterministic groups or pipeline micro-batches do */
            int mid = lo + (hi - lo) / 2;
            st = herd_loader_rows(l, k, lo, mid - lo, x + at * PER, y + at, err);
            if (!st) st = herd_loader_rows(l, k, mid, hi - mid, x + (at + (size_t)(mid - lo)) * PER, y + at + mid - lo, err);
            at += (size_t)(hi - lo);
        }
    }
    herd_sampler_free(&s);
    herd_loader_destroy(l);
    return st;
}

static void second_half(void *ctx, int B, int *lo, int *hi) {
    (void)ctx;
    *lo = B / 2, *hi = B;
}

static herd_status failing_get(const herd_dataset *ds, int64_t i, float *x, int32_t *y, herd_error *err) {
    if (i == 42) return herd_fail(err, HERD_EFORMAT, "%s: record %lld: broken", ds->source, (long long)i);
    memset(x, 0, PER * sizeof *x);
    *y = 0;
    return HERD_OK;
}
static void no_close(herd_dataset *ds) { (void)ds; }
static const herd_dataset_ops failing_ops = {failing_get, no_close};

int main(void) {
    herd_dataset *ds = make_ds();
    herd_error err = {0};
    size_t total = (size_t)N * EPOCHS;
    float *ref = malloc(total * PER * sizeof(float)), *got = malloc(total * PER * sizeof(float));
    int32_t *ry = malloc(total * sizeof *ry), *gy = malloc(total * sizeof *gy);

    /* plain loading equals herd_dataset_batch over the sampler's order */
    herd_loader_config plain = {0};
    CHECK(run(ds, &plain, NULL, got, gy, &err) == HERD_OK, "plain: %s", err.msg);
    herd_sampler s;
    herd_sampler_init(&s, N, 9, 1, &err);
    for (int e = 0; e < EPOCHS; e++) {
        herd_sampler_set_epoch(&s, e);
        herd_dataset_batch(ds, s.perm, N, ref + (size_t)e * N * PER, ry + (size_t)e * N, &err);
    }
    CHECK(memcmp(ref, got, total * PER * sizeof(float)) == 0 && memcmp(ry, gy, total * sizeof *ry) == 0,
          "prefetch 0 without augmentation differs from herd_dataset_batch");

    /* augmented: identical for every prefetch depth, thread count and cache */
    herd_loader_config a0 = {.augment = HERD_AUGMENT_CROP | HERD_AUGMENT_FLIP, .seed = 5};
    CHECK(run(ds, &a0, NULL, ref, ry, &err) == HERD_OK, "augment, prefetch 0: %s", err.msg);
    const herd_loader_config variants[] = {
        {.prefetch = 1, .threads = 1, .augment = a0.augment, .seed = 5},
        {.prefetch = 2, .threads = 2, .augment = a0.augment, .seed = 5},
        {.prefetch = 5, .threads = 4, .augment = a0.augment, .seed = 5, .cache_bytes = 1 << 20},
        {.prefetch = 0, .augment = a0.augment, .seed = 5, .cache_bytes = 2000},
    };
    for (size_t v = 0; v < sizeof variants / sizeof variants[0]; v++) {
        memset(got, 0, total * PER * sizeof(float));
        CHECK(run(ds, &variants[v], NULL, got, gy, &err) == HERD_OK, "variant %zu: %s", v, err.msg);
        CHECK(memcmp(ref, got, total * PER * sizeof(float)) == 0 && memcmp(ry, gy, total * sizeof *ry) == 0,
              "variant %zu (prefetch %d, threads %d, cache %zu) differs from prefetch 0", v, variants[v].prefetch,
              variants[v].threads, variants[v].cache_bytes);
    }
    herd_loader_config other_seed = a0;
    other_seed.seed = 6;
    run(ds, &other_seed, NULL, got, gy, &err);
    CHECK(memcmp(ref, got, total * PER * sizeof(float)) != 0, "another seed gives the same augmentation");

    /* flip only: every sample is itself or its mirror, and both happen */
    herd_loader_config fl = {.prefetch = 2, .threads = 2, .augment = HERD_AUGMENT_FLIP, .seed = 1};
    CHECK(run(ds, &fl, NULL, got, gy, &err) == HERD_OK, "flip: %s", err.msg);
    int same = 0, mirrored = 0, neither = 0;
    float x[PER];
    for (int e = 0; e < EPOCHS; e++) {
        herd_sampler_set_epoch(&s, e);
        for (int i = 0; i < N; i++) {
            int32_t y;
            ds->ops->get(ds, s.perm[i], x, &y, &err);
            const float *g = got + ((size_t)e * N + i) * PER;
            int is_same = memcmp(g, x, sizeof x) == 0, is_mirror = 1;
            for (int r = 0; r < H; r++)
                for (int c = 0; c < W; c++) is_mirror &= g[r * W + c] == x[r * W + (W - 1 - c)];
            same += is_same, mirrored += is_mirror && !is_same, neither += !is_same && !is_mirror;
        }
    }
    CHECK(neither == 0 && same > 20 && mirrored > 20, "flip: %d unchanged, %d mirrored, %d neither", same, mirrored,
          neither);

    /* the cache: bound respected, filled up to it */
    size_t bound = N * sizeof(int) + 10 * (PER * sizeof(float) + sizeof(int32_t));
    herd_loader *l;
    herd_loader_config cc = {.prefetch = 2, .threads = 2, .cache_bytes = bound};
    CHECK(herd_loader_create(&l, ds, BATCH, &cc, NULL, NULL, &err) == HERD_OK, "cache loader: %s", err.msg);
    herd_sampler_set_epoch(&s, 0);
    herd_loader_start_epoch(l, 0, s.perm, N, BATCH, 0, &err);
    for (int64_t k = 0; k * BATCH < N; k++) {
        int B = N - k * BATCH < BATCH ? (int)(N - k * BATCH) : BATCH;
        herd_loader_rows(l, k, 0, B, got, gy, &err);
    }
    CHECK(herd_loader_cache_bytes(l) <= bound && herd_loader_cache_bytes(l) > 0,
          "cache allocated %zu bytes, bound %zu", herd_loader_cache_bytes(l), bound);
    CHECK(herd_loader_cached_samples(l) == 10, "cache holds %lld samples, room for 10",
          (long long)herd_loader_cached_samples(l));
    /* rows outside the caller's share are a bug in the caller */
    CHECK(herd_loader_rows(l, 0, 0, BATCH + 1, got, gy, &err) == HERD_EINTERNAL, "rows past the batch accepted");
    herd_loader_destroy(l);

    /* a rank's share: the second half of every batch, same content as the full load's */
    herd_loader_config sh = {.prefetch = 2, .threads = 3, .augment = a0.augment, .seed = 5};
    CHECK(run(ds, &sh, second_half, got, gy, &err) == HERD_OK, "share: %s", err.msg);
    size_t at = 0, full = 0;
    int share_diffs = 0;
    for (int e = 0; e < EPOCHS; e++)
        for (int k = 0; k * BATCH < N; k++) {
            int B = N - k * BATCH < BATCH ? N - k * BATCH : BATCH;
            for (int r = B / 2; r < B; r++, at++)
                share_diffs += memcmp(got + at * PER, ref + (full + (size_t)r) * PER, PER * sizeof(float)) != 0;
            full += (size_t)B;
        }
    CHECK(share_diffs == 0, "%d rows of the share differ from the full batches", share_diffs);

    /* a read error comes back from the step that holds the sample, with its message */
    herd_dataset bad = *ds;
    bad.ops = &failing_ops;
    snprintf(bad.source, sizeof bad.source, "broken.herd");
    herd_loader_config pf = {.prefetch = 2, .threads = 2};
    herd_status st = run(&bad, &pf, NULL, got, gy, &err);
    CHECK(st == HERD_EFORMAT && strstr(err.msg, "broken.herd: record 42"), "read error: %d %s", st, err.msg);

    herd_sampler_free(&s);
    herd_dataset_close(ds);
    free(ref), free(got), free(ry), free(gy);
    return check_summary();
}
