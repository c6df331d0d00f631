/* Core utilities: error formatting, arena planning, Philox RNG, thread pool partitioning. */
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "herd/core.h"

static void test_errors(void) {
    herd_error err = {0};
    CHECK(herd_fail(&err, HERD_EIO, "%s: cannot open\nsecond", "a.idx") == HERD_EIO, "returns status");
    CHECK(err.status == HERD_EIO && strcmp(err.msg, "a.idx: cannot open second") == 0, "'%s'", err.msg);
    herd_fail_prefix(&err, "loading %d", 3);
    CHECK(strcmp(err.msg, "loading 3: a.idx: cannot open second") == 0, "'%s'", err.msg);
    CHECK(strcmp(herd_status_str(HERD_ESPEC), "bad model spec") == 0, "status name");
    /* bytes of a damaged file quoted in a message: one printable line (no CR, escape, vertical
     * tab, invalid UTF-8, C1 control or line separator), valid UTF-8 kept */
    herd_fail(&err, HERD_EFORMAT, "%s: label '%s'", "c.tsv:1", "\r0\x1b[2J\x0b\xff\xc2\x85\xc3\xa9\xe2\x80\xa8\xe0\x80\x80\t.");
    CHECK(strcmp(err.msg, "c.tsv:1: label ' 0\?[2J\?\?\?\xc3\xa9\?\?\?\? .'") == 0, "'%s'", err.msg);
    char big[3000];
    memset(big, 'x', sizeof big - 1);
    big[sizeof big - 1] = 0;
    herd_fail(&err, HERD_EARG, "%s", big);
    CHECK(strlen(err.msg) == sizeof err.msg - 1, "long messages are truncated");
    herd_fail_prefix(&err, "%s", big);
    CHECK(strlen(err.msg) <= sizeof err.msg - 1, "prefix of a long message stays bounded");
    /* a long path loses its middle, not the cause at the end of the message */
    char path[2400];
    strcpy(path, "/data/start");
    for (size_t k = strlen(path); k < sizeof path - 20; k += 10) memcpy(path + k, "/deep/dirs", 11);
    strcat(path, "/train.npy");
    herd_fail(&err, HERD_EFORMAT, "%s: shape (3, 4) needs 48 bytes of data, the file has 12", path);
    CHECK(strlen(err.msg) == sizeof err.msg - 1 && strncmp(err.msg, "/data/start", 11) == 0 &&
              strstr(err.msg, "...") && strstr(err.msg, "train.npy: shape (3, 4) needs 48 bytes of data, the file has 12"),
          "long path shortened in the middle, cause kept: '%s'", err.msg);
    herd_fail(&err, HERD_EIO, "%s: cannot open", path);
    herd_fail_prefix(&err, "loading %s", path);
    CHECK(strlen(err.msg) <= sizeof err.msg - 1 && strncmp(err.msg, "loading /data/start", 19) == 0 &&
              strstr(err.msg, "train.npy: cannot open") == err.msg + strlen(err.msg) - strlen("train.npy: cannot open"),
          "prefix + long paths keep both ends: '%s'", err.msg);
    size_t out;
    CHECK(!herd_mul_size(SIZE_MAX / 2, 3, &out), "overflow detected");
    CHECK(herd_mul_size(1000, 1000, &out) && out == 1000000, "product");
    CHECK(herd_malloc_array(SIZE_MAX / 4, 8) == NULL, "overflowing allocation refused");
}

static void test_arena(void) {
    herd_arena *plan = herd_arena_create_planner();
    CHECK(herd_arena_alloc(plan, 10) != NULL && herd_arena_alloc(plan, 100) != NULL, "planner hands out pointers");
    CHECK(herd_arena_used(plan) == 64 + 128, "planner counts aligned sizes: %zu", herd_arena_used(plan));
    size_t need = herd_arena_used(plan);
    herd_arena_destroy(plan);
    herd_arena *a = NULL;
    herd_error err = {0};
    CHECK(herd_arena_create(&a, need, &err) == HERD_OK, "%s", err.msg);
    char *p = herd_arena_alloc(a, 10), *q = herd_arena_alloc(a, 100);
    CHECK(p && q && ((uintptr_t)p % 64) == 0 && ((uintptr_t)q % 64) == 0 && q - p == 64, "aligned bump");
    CHECK(herd_arena_alloc(a, 1) == NULL, "exhausted arena returns NULL");
    herd_arena_reset(a);
    CHECK(herd_arena_alloc(a, 10) == p, "reset reuses");
    herd_arena_destroy(a);
    CHECK(herd_arena_create(&a, SIZE_MAX / 2, &err) == HERD_ENOMEM && strstr(err.msg, "planned"), "%s", err.msg);
}

static void test_rng(void) {
    /* Philox4x32-10 known-answer test (Random123 kat_vectors: counter 0, key 0) */
    uint32_t w[4];
    herd_philox(0, 0, w);
    CHECK(w[0] == 0x6627e8d5u && w[1] == 0xe169c58du && w[2] == 0xbc57ac4cu && w[3] == 0x9b00dbd8u,
          "philox kat: %08x %08x %08x %08x", w[0], w[1], w[2], w[3]);
    herd_rng a, b;
    herd_rng_init(&a, 42, 1);
    herd_rng_init(&b, 42, 1);
    int same = 1;
    for (int i = 0; i < 1000; i++) same &= herd_rng_u32(&a) == herd_rng_u32(&b);
    CHECK(same, "same seed and stream, same sequence");
    herd_rng_init(&b, 42, 2);
    herd_rng_init(&a, 42, 1);
    int diff = 0;
    for (int i = 0; i < 100; i++) diff += herd_rng_u32(&a) != herd_rng_u32(&b);
    CHECK(diff > 95, "streams differ (%d of 100)", diff);
    double sum = 0, sq = 0;
    int n = 200000, below[10] = {0};
    herd_rng_init(&a, 7, 0);
    for (int i = 0; i < n; i++) {
        float u = herd_rng_uniform(&a);
        CHECK(u >= 0 && u < 1, "uniform in [0,1): %g", u);
        if (!(u >= 0 && u < 1)) break;
        below[herd_rng_below(&a, 10)]++;
        float z = herd_rng_normal(&a);
        sum += z, sq += (double)z * z;
    }
    CHECK(fabs(sum / n) < 0.01 && fabs(sq / n - 1) < 0.02, "normal mean %g var %g", sum / n, sq / n);
    for (int k = 0; k < 10; k++) CHECK(abs(below[k] - n / 10) < n / 100, "below(10) bucket %d: %d", k, below[k]);
}

/* herd_rng_normals: bit for bit n herd_rng_normal draws times the scale, from any counter (a
 * stream that drew an odd number of words before), inline or split over threads */
static void test_rng_normals(void) {
    enum { N = 10007 };
    static float want[N], got[N];
    for (int skip = 0; skip < 4; skip++)
        for (int threads = 0; threads <= 3; threads++) {
            herd_rng a, b;
            herd_rng_init(&a, 11, 3);
            for (int k = 0; k < skip; k++) herd_rng_u32(&a);
            b = a;
            for (int i = 0; i < N; i++) want[i] = 0.37f * herd_rng_normal(&a);
            herd_pool *p = NULL;
            herd_error err = {0};
            if (threads) CHECK(herd_pool_create(&p, threads, &err) == HERD_OK, "%s", err.msg);
            herd_rng_normals(&b, got, N, 0.37f, p);
            herd_pool_destroy(p);
            CHECK(memcmp(want, got, sizeof want) == 0 && a.counter == b.counter,
                  "normals after %d words, %d threads: bit-identical to herd_rng_normal", skip, threads);
        }
}

typedef struct {
    int64_t hits[1000];
    int owner[1000];
} pool_ctx;

static void mark(void *ctx, int64_t begin, int64_t end, int thread) {
    pool_ctx *c = ctx;
    for (int64_t i = begin; i < end; i++) {
        c->hits[i]++;
        c->owner[i] = thread;
    }
}

static void test_pool(void) {
    for (int threads = 1; threads <= 4; threads++) {
        herd_pool *p = NULL;
        herd_error err = {0};
        CHECK(herd_pool_create(&p, threads, &err) == HERD_OK, "%s", err.msg);
        for (int n = 1; n <= 1000; n += 333) {
            for (int rep = 0; rep < 50; rep++) {
                pool_ctx *c = calloc(1, sizeof *c);
                herd_pool_for(p, n, mark, c);
                int ok = 1;
                for (int i = 0; i < n; i++) ok &= c->hits[i] == 1;
                for (int i = 1; i < n; i++) ok &= c->owner[i] >= c->owner[i - 1]; /* contiguous ranges in thread order */
                CHECK(ok, "threads %d n %d: every index once, contiguous", threads, n);
                free(c);
            }
        }
        herd_pool_destroy(p);
    }
    herd_pool *p = NULL;
    herd_error err = {0};
    CHECK(herd_pool_create(&p, 0, &err) == HERD_EARG, "0 threads refused");
    CHECK(herd_cpu_count() >= 1, "cpu count");
}

static void test_tensor(void) {
    int64_t dims[3] = {3, 32, 32};
    herd_tensor t = herd_tensor_make(HERD_F32, 3, dims, NULL);
    char buf[64];
    CHECK(herd_tensor_numel(&t) == 3072 && herd_tensor_bytes(&t) == 3072 * 4, "numel %lld",
          (long long)herd_tensor_numel(&t));
    CHECK(strcmp(herd_tensor_shape_str(&t, buf, sizeof buf), "3x32x32") == 0, "'%s'", buf);
    herd_tensor s = herd_tensor_make(HERD_I32, 0, NULL, NULL);
    CHECK(herd_tensor_numel(&s) == 1 && strcmp(herd_tensor_shape_str(&s, buf, sizeof buf), "scalar") == 0, "scalar");
    herd_tensor u = herd_tensor_make(HERD_U8, 3, dims, NULL);
    CHECK(herd_tensor_bytes(&u) == 3072 && !herd_tensor_same(&t, &u), "u8 bytes, dtype compared");
    u.dtype = HERD_F32;
    CHECK(herd_tensor_same(&t, &u), "same shape and dtype");
    int64_t huge[3] = {INT64_MAX / 2, 4, 1};
    herd_tensor h = herd_tensor_make(HERD_F32, 3, huge, NULL);
    CHECK(herd_tensor_numel(&h) == -1 && herd_tensor_bytes(&h) == 0, "overflow is -1 / 0 bytes");
    int64_t neg[1] = {-2};
    herd_tensor n = herd_tensor_make(HERD_F32, 1, neg, NULL);
    CHECK(herd_tensor_numel(&n) == -1, "negative dim");
    CHECK(herd_dtype_size(HERD_BF16) == 2 && strcmp(herd_dtype_name(HERD_I32), "i32") == 0, "dtype table");
}

int main(void) {
    test_tensor();
    test_errors();
    test_arena();
    test_rng();
    test_rng_normals();
    test_pool();
    return check_summary();
}
