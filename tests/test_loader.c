/* The loader: the same batches for any prefetch depth and thread count (augmentation and
 * cache included), plain batches equal to herd_dataset_batch, flips that are flips, the cache
 * bound, u8 samples cached as u8 (about 4x the samples of f32 in the same budget, the same
 * batches, normalised views included), a rank's share of rows, and read errors coming back
 * to the caller. */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "check.h"
#include "sample_check.h"
#include "herd/data.h"

enum { N = 100, C = 1, H = 6, W = 5, PER = C * H * W, BATCH = 7, EPOCHS = 2 };

static herd_dataset *make_ds(void) {
    uint8_t *img = malloc((size_t)N * PER);
    int32_t *lab = malloc(N * sizeof *lab);
    for (int i = 0; i < N * PER; i++) img[i] = (uint8_t)(i * 7 + i / 13);
    for (int i = 0; i < N; i++) lab[i] = i % 10;
    herd_dataset *ds;
    herd_error err = {0};
    int64_t xd[4] = {N, C, H, W}, n = N;
    if (herd_dataset_from_memory(&ds, herd_tensor_make(HERD_U8, 4, xd, img), herd_tensor_make(HERD_I32, 1, &n, lab),
                                 10, "mem", &err))
        exit(2);
    return ds;
}

/* Loads one epoch of ds in batches of BATCH through cfg: x gets n * numel floats; returns
 * the samples the cache then holds. */
static int64_t epoch_through(const herd_dataset *ds, const herd_loader_config *cfg, float *x, int32_t *y,
                             herd_error *err) {
    herd_loader *l;
    herd_sampler s;
    int64_t per = herd_tensor_numel(&ds->x), cached = -1;
    if (herd_loader_create(&l, ds, BATCH, cfg, NULL, NULL, err)) return -1;
    herd_sampler_init(&s, ds->n, 3, 1, err);
    herd_status st = herd_loader_start_epoch(l, 0, s.perm, ds->n, BATCH, 0, err);
    for (int64_t k = 0; k * BATCH < ds->n && !st; k++) {
        int B = ds->n - k * BATCH < BATCH ? (int)(ds->n - k * BATCH) : BATCH;
        st = herd_loader_rows(l, k, 0, B, x + k * BATCH * per, y + k * BATCH, err);
    }
    if (!st) cached = herd_loader_cached_samples(l);
    herd_sampler_free(&s);
    herd_loader_destroy(l);
    return cached;
}

/* The cache keeps samples in their stored dtype: u8 images take a quarter of the bytes of
 * the same images as f32 (the 4-byte label aside), and come out as the same floats. */
static void test_cache_dtype(void) {
    enum { M = 400, CC = 3, HH = 32, WW = 32, P = CC * HH * WW };
    herd_error err = {0};
    uint8_t *u8 = malloc((size_t)M * P);
    float *f32 = malloc((size_t)M * P * sizeof *f32);
    int32_t *l8 = malloc(M * sizeof *l8), *l32 = malloc(M * sizeof *l32);
    for (int i = 0; i < M * P; i++) u8[i] = (uint8_t)(i * 31 + i / 7), f32[i] = (float)u8[i] / 255.0f;
    for (int i = 0; i < M; i++) l8[i] = l32[i] = i % 10;
    int64_t xd[4] = {M, CC, HH, WW}, n = M;
    herd_dataset *du = NULL, *df = NULL, *nu = NULL, *nf = NULL;
    herd_dataset_from_memory(&du, herd_tensor_make(HERD_U8, 4, xd, u8), herd_tensor_make(HERD_I32, 1, &n, l8), 10,
                             "u8", &err);
    herd_dataset_from_memory(&df, herd_tensor_make(HERD_F32, 4, xd, f32), herd_tensor_make(HERD_I32, 1, &n, l32), 10,
                             "f32", &err);
    CHECK(du && df && sample_is(du, HERD_U8, "3x32x32") && sample_is(df, HERD_F32, "3x32x32"), "datasets: %s",
          err.msg);
    if (!du || !df) return;
    /* a budget of exactly 50 f32 samples (index included) */
    size_t index = M * sizeof(int), f32_entry = P * sizeof(float) + sizeof(int32_t), u8_entry = P + sizeof(int32_t);
    size_t budget = index + 50 * f32_entry;
    float *a = malloc((size_t)M * P * sizeof *a), *b = malloc((size_t)M * P * sizeof *b);
    float *ref = malloc((size_t)M * P * sizeof *ref);
    static int32_t ya[M], yb[M], yr[M];
    herd_loader_config none = {.prefetch = 2, .threads = 2};
    herd_loader_config cache = {.prefetch = 2, .threads = 2, .cache_bytes = budget};
    CHECK(epoch_through(df, &none, ref, yr, &err) == 0, "no cache: %s", err.msg);
    int64_t in_f32 = epoch_through(df, &cache, a, ya, &err), in_u8 = epoch_through(du, &cache, b, yb, &err);
    CHECK(in_f32 == 50 && in_u8 == (int64_t)((budget - index) / u8_entry),
          "cached: f32 %lld (expected 50), u8 %lld (expected %zu)", (long long)in_f32, (long long)in_u8,
          (budget - index) / u8_entry);
    CHECK(in_u8 >= 4 * in_f32 - 1 && (double)in_u8 / (double)in_f32 > 3.9, "u8 cache holds %lld samples, f32 %lld",
          (long long)in_u8, (long long)in_f32);
    size_t bytes = (size_t)M * P * sizeof(float);
    CHECK(memcmp(a, ref, bytes) == 0 && memcmp(b, ref, bytes) == 0 && memcmp(ya, yr, sizeof ya) == 0 &&
              memcmp(yb, yr, sizeof yb) == 0,
          "batches through the u8 cache, the f32 cache and no cache differ");
    /* a normalised view: still cached as u8 (the view converts), the same floats as f32 */
    double mean[CC] = {0.25, 0.5, 0.125}, std[CC] = {0.5, 0.0, 2.0};
    CHECK(herd_dataset_normalize(&nu, du, CC, mean, std, &err) == HERD_OK &&
              herd_dataset_normalize(&nf, df, CC, mean, std, &err) == HERD_OK,
          "normalize: %s", err.msg);
    herd_loader_config aug = {.prefetch = 1, .threads = 2, .cache_bytes = budget, .augment = HERD_AUGMENT_CROP,
                              .seed = 4};
    herd_loader_config aug_none = aug;
    aug_none.cache_bytes = 0;
    in_u8 = epoch_through(nu, &aug, a, ya, &err);
    CHECK(epoch_through(nf, &aug_none, ref, yr, &err) == 0 && in_u8 == (int64_t)((budget - index) / u8_entry),
          "normalised u8 view cached %lld samples: %s", (long long)in_u8, err.msg);
    CHECK(memcmp(a, ref, bytes) == 0, "normalised u8 through the cache differs from normalised f32");
    int64_t idx[3] = {5, 0, M - 1};
    float one[3 * P];
    herd_dataset_batch(nu, idx, 3, one, yb, &err);
    herd_dataset_batch(nf, idx, 3, b, ya, &err);
    CHECK(memcmp(one, b, sizeof one) == 0 && one[0] != f32[(size_t)5 * P],
          "herd_dataset_batch of the views differs or is raw");
    herd_dataset_close(nu);
    herd_dataset_close(nf);
    herd_dataset_close(du);
    herd_dataset_close(df);
    free(a), free(b), free(ref);
}

/* run(): 0, or the next epoch planned ahead (herd_loader_plan_epoch) right after each epoch
 * starts: 1 the right one (the next epoch's first step then waits, loaded, for 20 ms), 2 a
 * wrong one (another epoch's order: loaded ahead, then not used), 3 the right one with no wait
 * (the next epoch starts while its first step may still be loading: it must wait for it) */
static int plan_mode;

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
        if (plan_mode && !st) {
            herd_sampler next;
            herd_sampler_init(&next, N, 9, 1, err);
            herd_sampler_set_epoch(&next, plan_mode == 2 ? e + 7 : e + 1);
            st = herd_loader_plan_epoch(l, e + 1, next.perm, N, BATCH, err);
            herd_sampler_free(&next);
        }
        for (int64_t k = 0; k * BATCH < N && !st; k++) {
            int B = N - k * BATCH < BATCH ? (int)(N - k * BATCH) : BATCH, lo = 0, hi = B;
            if (rows) rows(NULL, B, &lo, &hi);
            /* asked in two pieces, as deterministic groups or pipeline micro-batches do */
            int mid = lo + (hi - lo) / 2;
            st = herd_loader_rows(l, k, lo, mid - lo, x + at * PER, y + at, err);
            if (!st) st = herd_loader_rows(l, k, mid, hi - mid, x + (at + (size_t)(mid - lo)) * PER, y + at + mid - lo, err);
            at += (size_t)(hi - lo);
        }
        if (plan_mode == 1 || plan_mode == 2) nanosleep(&(struct timespec){0, 20 * 1000 * 1000}, NULL);
    }
    herd_sampler_free(&s);
    herd_loader_destroy(l);
    return st;
}

static void second_half(void *ctx, int B, int *lo, int *hi) {
    (void)ctx;
    *lo = B / 2, *hi = B;
}

static herd_status failing_get(const herd_dataset *ds, int64_t i, void *x, void *y, herd_error *err) {
    if (i == 42) return herd_fail(err, HERD_EFORMAT, "%s: record %lld: broken", ds->source, (long long)i);
    memset(x, 0, PER); /* u8 samples */
    memset(y, 0, sizeof(int32_t));
    return HERD_OK;
}
static void no_close(herd_dataset *ds) { (void)ds; }
static const herd_dataset_ops failing_ops = {failing_get, no_close, NULL, NULL};

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
    /* the next epoch's first step loaded ahead: used when planned right, not when planned wrong */
    float *share = calloc(total * PER, sizeof(float)); /* a rank's half of each batch, not planned */
    int32_t *share_y = calloc(total, sizeof *share_y); /* rows past the share stay 0, as in gy below */
    CHECK(run(ds, &variants[1], second_half, share, share_y, &err) == HERD_OK, "share: %s", err.msg);
    for (plan_mode = 1; plan_mode <= 3; plan_mode++)
        for (size_t v = 0; v < 3; v++) {
            memset(got, 0, total * PER * sizeof(float));
            memset(gy, 0, total * sizeof *gy);
            CHECK(run(ds, &variants[v], v == 1 ? second_half : NULL, got, gy, &err) == HERD_OK, "plan %d, variant %zu: "
                  "%s", plan_mode, v, err.msg);
            const float *want = v == 1 ? share : ref;
            const int32_t *want_y = v == 1 ? share_y : ry;
            CHECK(memcmp(want, got, total * PER * sizeof(float)) == 0 && memcmp(want_y, gy, total * sizeof *ry) == 0,
                  "next epoch planned %s, variant %zu differs from the same without planning",
                  plan_mode == 2 ? "wrong" : "right", v);
        }
    plan_mode = 0;
    free(share);
    free(share_y);
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
            get_f32(ds, s.perm[i], x, &y, &err);
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
    size_t bound = N * sizeof(int) + 10 * (PER * sizeof(uint8_t) + sizeof(int32_t)); /* u8 samples cached as u8 */
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

    /* --augment crops images: other samples are refused by name */
    float *rows = malloc(6 * 4 * sizeof *rows);
    int32_t *rl = calloc(6, sizeof *rl);
    int64_t td[2] = {6, 4}, tn = 6;
    for (int i = 0; i < 24; i++) rows[i] = (float)i;
    herd_dataset *tab = NULL;
    herd_dataset_from_memory(&tab, herd_tensor_make(HERD_F32, 2, td, rows), herd_tensor_make(HERD_I32, 1, &tn, rl), 2,
                             "rows.csv", &err);
    herd_loader *tl = NULL;
    st = herd_loader_create(&tl, tab, 2, &a0, NULL, NULL, &err);
    CHECK(st == HERD_EARG && strstr(err.msg, "rows.csv: --augment crops and flips images (C,H,W); the samples are 4"),
          "augment of (F) rows: %s", err.msg);
    herd_loader_destroy(tl);
    herd_dataset_close(tab);

    test_cache_dtype();

    /* the one u8 -> f32 conversion: k / 255.0f for every k, in place as out of place, for a
     * length that is no multiple of its chunk */
    enum { L = 1000 };
    float conv[L], inplace[L];
    uint8_t bytes[L];
    for (int i = 0; i < L; i++) bytes[i] = (uint8_t)(i * 91 + 7);
    memcpy(inplace, bytes, L);
    herd_samples_to_f32(HERD_U8, bytes, L, conv);
    herd_samples_to_f32(HERD_U8, inplace, L, inplace);
    int conv_bad = 0;
    for (int i = 0; i < L; i++) conv_bad += conv[i] != (float)bytes[i] / 255.0f || inplace[i] != conv[i];
    CHECK(conv_bad == 0, "%d of %d u8 values converted wrongly (in place or not)", conv_bad, L);
    herd_sampler_free(&s);
    herd_dataset_close(ds);
    free(ref), free(got), free(ry), free(gy);
    return check_summary();
}
