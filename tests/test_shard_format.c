/* herd shards: round trip of u8 and f32 datasets (values, labels, CRCs), sharding into
 * contiguous ranges, and each kind of damaged file giving a one-line error naming the file
 * (and the record for record damage). Also the stats map-reduce and the normalised view. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "sample_check.h"
#include "herd/data.h"

static char dir[64];

static herd_dataset *make_u8(int64_t n, int c, int h, int w) {
    size_t per = (size_t)c * h * w;
    uint8_t *img = malloc((size_t)n * per);
    int32_t *lab = malloc((size_t)n * sizeof *lab);
    for (size_t i = 0; i < (size_t)n * per; i++) img[i] = (uint8_t)(i * 37 + 11);
    for (int64_t i = 0; i < n; i++) lab[i] = (int32_t)(i % 3);
    herd_dataset *ds;
    herd_error err = {0};
    int64_t xd[4] = {n, c, h, w};
    if (herd_dataset_from_memory(&ds, herd_tensor_make(HERD_U8, 4, xd, img), herd_tensor_make(HERD_I32, 1, &n, lab), 3,
                                 "u8", &err)) {
        fprintf(stderr, "%s\n", err.msg);
        exit(2);
    }
    return ds;
}

static herd_dataset *make_f32(int64_t n, int c, int h, int w) {
    size_t per = (size_t)c * h * w;
    float *x = malloc((size_t)n * per * sizeof *x);
    int32_t *lab = malloc((size_t)n * sizeof *lab);
    for (size_t i = 0; i < (size_t)n * per; i++) x[i] = (float)i * 0.37f - 5.0f;
    for (int64_t i = 0; i < n; i++) lab[i] = (int32_t)(i % 4);
    herd_dataset *ds;
    herd_error err = {0};
    int64_t xd[4] = {n, c, h, w};
    if (herd_dataset_from_memory(&ds, herd_tensor_make(HERD_F32, 4, xd, x), herd_tensor_make(HERD_I32, 1, &n, lab), 4,
                                 "f32", &err)) {
        fprintf(stderr, "%s\n", err.msg);
        exit(2);
    }
    return ds;
}

/* Every sample (as the model's f32 input) and label of a equals b's, bit for bit; the dims
 * match (the stored dtypes may differ: a normalised view of u8 is written as f32). */
static void check_same(const herd_dataset *a, const herd_dataset *b, const char *what) {
    char sa[64], sb[64];
    herd_tensor bx = b->x;
    bx.dtype = a->x.dtype;
    CHECK(a->n == b->n && herd_tensor_same(&a->x, &bx) && herd_tensor_same(&a->y, &b->y) &&
              a->num_classes == b->num_classes,
          "%s: n %lld/%lld samples %s/%s classes %d/%d", what, (long long)a->n, (long long)b->n,
          herd_tensor_shape_str(&a->x, sa, sizeof sa), herd_tensor_shape_str(&b->x, sb, sizeof sb), a->num_classes,
          b->num_classes);
    size_t per = (size_t)herd_tensor_numel(&a->x);
    float *x = malloc(per * sizeof *x), *z = malloc(per * sizeof *z);
    int diffs = 0;
    for (int64_t i = 0; i < a->n && i < b->n; i++) {
        int32_t y1, y2;
        herd_error err = {0};
        CHECK(get_f32(a, i, x, &y1, &err) == HERD_OK, "%s: get %lld: %s", what, (long long)i, err.msg);
        CHECK(get_f32(b, i, z, &y2, &err) == HERD_OK, "%s: get %lld: %s", what, (long long)i, err.msg);
        diffs += y1 != y2 || memcmp(x, z, per * sizeof *x) != 0;
    }
    CHECK(diffs == 0, "%s: %d samples differ", what, diffs);
    free(x);
    free(z);
}

/* Shards keep the stored dtype: u8 samples read back as u8 bytes, a set mixing u8 and f32
 * shards reads as f32, (F) rows are stored F x 1 x 1, a normalised view is written as its
 * f32 values, not its base's bytes. */
static void test_typed_samples(void) {
    herd_error err = {0};
    char p[512], a[512], b[512];
    herd_dataset *u8 = make_u8(6, 1, 2, 2), *back = NULL;
    snprintf(p, sizeof p, "%s/typed", dir);
    CHECK(herd_shards_write(u8, p, "train", 1, NULL, &err) == HERD_OK, "write: %s", err.msg);
    CHECK(herd_data_open(p, &back, NULL, &err) == HERD_OK && sample_is(back, HERD_U8, "1x2x2"), "u8 back: %s %s",
          err.msg, sample_desc(back));
    uint8_t xa[4], xb[4];
    int32_t ya, yb;
    CHECK(back && herd_dataset_get(u8, 5, xa, &ya, &err) == HERD_OK &&
              herd_dataset_get(back, 5, xb, &yb, &err) == HERD_OK && memcmp(xa, xb, 4) == 0 && ya == yb,
          "stored bytes differ: %s", err.msg);
    herd_dataset_close(back);
    /* u8 shard + f32 shard of the same shape: f32 samples, the u8 records as k/255 */
    herd_dataset *f32 = make_f32(3, 1, 2, 2);
    snprintf(a, sizeof a, "%s/typed/train-00000-of-00001.herd", dir);
    snprintf(b, sizeof b, "%s/typed/f.herd", dir);
    CHECK(herd_shard_write(b, f32, 0, 3, NULL, NULL, &err) == HERD_OK, "write f32: %s", err.msg);
    const char *both[2] = {a, b};
    CHECK(herd_shards_open(&back, both, 2, &err) == HERD_OK && sample_is(back, HERD_F32, "1x2x2") && back->n == 9,
          "mixed: %s %s", err.msg, sample_desc(back));
    float fa[4], fb[4];
    CHECK(back && get_f32(u8, 4, fa, &ya, &err) == HERD_OK && get_f32(back, 4, fb, &yb, &err) == HERD_OK &&
              memcmp(fa, fb, sizeof fa) == 0 && get_f32(f32, 1, fa, &ya, &err) == HERD_OK &&
              get_f32(back, 7, fb, &yb, &err) == HERD_OK && memcmp(fa, fb, sizeof fa) == 0,
          "mixed set values: %s", err.msg);
    herd_dataset_close(back);
    /* a normalised view of u8 samples: f32 records holding the normalised values */
    double mean[1] = {0.5}, std[1] = {0.25};
    herd_dataset *nv = NULL;
    CHECK(herd_dataset_normalize(&nv, u8, 1, mean, std, &err) == HERD_OK, "normalize: %s", err.msg);
    snprintf(b, sizeof b, "%s/typed/norm.herd", dir);
    const char *one[1] = {b};
    CHECK(nv && herd_shard_write(b, nv, 0, 6, NULL, NULL, &err) == HERD_OK && herd_shards_open(&back, one, 1, &err) == HERD_OK,
          "normalised view: %s", err.msg);
    if (back) check_same(nv, back, "normalised view round trip");
    CHECK(back && sample_is(back, HERD_F32, "1x2x2"), "normalised view stored as %s", sample_desc(back));
    herd_dataset_close(back);
    herd_dataset_close(nv);
    /* rows of F features: F x 1 x 1 in the header, the same values */
    float *rows = malloc(4 * 3 * sizeof *rows);
    int32_t *lab = malloc(4 * sizeof *lab);
    for (int i = 0; i < 12; i++) rows[i] = (float)i * 0.5f - 1.0f;
    for (int i = 0; i < 4; i++) lab[i] = i % 2;
    int64_t rd[2] = {4, 3}, rn = 4;
    herd_dataset *tab = NULL;
    herd_dataset_from_memory(&tab, herd_tensor_make(HERD_F32, 2, rd, rows), herd_tensor_make(HERD_I32, 1, &rn, lab), 2,
                             "rows", &err);
    snprintf(b, sizeof b, "%s/typed/rows.herd", dir);
    CHECK(tab && sample_is(tab, HERD_F32, "3") && herd_shard_write(b, tab, 0, 4, NULL, NULL, &err) == HERD_OK &&
              herd_shards_open(&back, one, 1, &err) == HERD_OK && sample_is(back, HERD_F32, "3x1x1"),
          "rows: %s %s", err.msg, sample_desc(back));
    CHECK(back && get_f32(tab, 3, fa, &ya, &err) == HERD_OK && get_f32(back, 3, fb, &yb, &err) == HERD_OK &&
              memcmp(fa, fb, 3 * sizeof *fa) == 0 && ya == yb,
          "rows values: %s", err.msg);
    herd_dataset_close(back);
    herd_dataset_close(tab);
    herd_dataset_close(f32);
    herd_dataset_close(u8);
}

static herd_status open_glob(const char *pattern, herd_dataset **ds, herd_error *err) {
    return herd_data_open(pattern, ds, NULL, err);
}

static long file_size(const char *p) {
    FILE *f = fopen(p, "rb");
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fclose(f);
    return n;
}

static void patch(const char *p, long at, uint8_t xor_mask) {
    FILE *f = fopen(p, "r+b");
    fseek(f, at, SEEK_SET);
    int c = fgetc(f);
    fseek(f, at, SEEK_SET);
    fputc(c ^ xor_mask, f);
    fclose(f);
}

static void copy_file(const char *from, const char *to) {
    FILE *a = fopen(from, "rb"), *b = fopen(to, "wb");
    int c;
    while ((c = fgetc(a)) != EOF) fputc(c, b);
    fclose(a);
    fclose(b);
}

/* Opening (and, when it opens, reading every record of) p fails with a one-line message holding want. */
static void expect_damage(const char *p, const char *want, const char *what) {
    const char *paths[1] = {p};
    herd_dataset *ds = NULL;
    herd_error err = {0};
    herd_status st = herd_shards_open(&ds, paths, 1, &err);
    if (st == HERD_OK) {
        float x[64];
        int32_t y;
        for (int64_t i = 0; i < ds->n && st == HERD_OK; i++) st = get_f32(ds, i, x, &y, &err);
        herd_dataset_close(ds);
    }
    CHECK(st == HERD_EFORMAT, "%s: status %d (%s)", what, st, err.msg);
    CHECK(strstr(err.msg, p) && strstr(err.msg, want) && !strchr(err.msg, '\n'),
          "%s: message should name %s and say '%s': %s", what, p, want, err.msg);
}

int main(void) {
    snprintf(dir, sizeof dir, "/tmp/herd_shard_XXXXXX");
    if (!mkdtemp(dir)) return 2;
    char p[512], q[512];
    herd_error err = {0};

    /* u8: 4 shards of 10 samples 2x3x4, auto dtype -> u8, exact round trip through the --data resolver */
    herd_dataset *src = make_u8(10, 2, 3, 4), *back = NULL;
    snprintf(p, sizeof p, "%s/u8", dir);
    CHECK(herd_shards_write(src, p, "train", 4, NULL, &err) == HERD_OK, "write u8: %s", err.msg);
    snprintf(q, sizeof q, "%s/u8/train-00001-of-00004.herd", dir);
    CHECK(file_size(q) == 64 + 24 * 3 + 3 * 24, "u8 shard 1 (3 records of 24 bytes) is %ld bytes", file_size(q));
    CHECK(herd_data_open(p, &back, NULL, &err) == HERD_OK, "open dir: %s", err.msg);
    if (back) check_same(src, back, "u8 round trip (directory)");
    herd_dataset_close(back);
    snprintf(q, sizeof q, "%s/u8/train-0000[0-1]-of-00004.herd,%s/u8/train-00002-of-00004.herd", dir, dir);
    CHECK(open_glob(q, &back, &err) == HERD_OK, "open glob list: %s", err.msg);
    CHECK(back && back->n == 7, "glob + comma list: %lld records (expected 2+3+2)", back ? (long long)back->n : -1LL);
    herd_dataset_close(back);
    herd_dataset_close(src);

    /* f32: auto dtype -> f32; forced u8 quantises */
    src = make_f32(9, 1, 2, 5);
    snprintf(p, sizeof p, "%s/f32", dir);
    CHECK(herd_shards_write(src, p, "train", 2, NULL, &err) == HERD_OK, "write f32: %s", err.msg);
    CHECK(herd_data_open(p, &back, NULL, &err) == HERD_OK, "open f32: %s", err.msg);
    if (back) check_same(src, back, "f32 round trip");
    herd_dataset_close(back);
    snprintf(q, sizeof q, "%s/f32/train-00000-of-00002.herd", dir);
    CHECK(file_size(q) == 64 + 24 * 4 + 4 * 40, "f32 shard 0 (4 records of 40 bytes) is %ld bytes", file_size(q));
    herd_dataset_close(src);
    test_typed_samples();

    /* damaged files, each a fresh copy of a good shard */
    snprintf(p, sizeof p, "%s/u8/train-00002-of-00004.herd", dir); /* 2 records */
    snprintf(q, sizeof q, "%s/bad.herd", dir);
    copy_file(p, q), patch(q, 0, 0x20);
    expect_damage(q, "bad magic", "bad magic");
    copy_file(p, q), patch(q, 20, 0x01);
    expect_damage(q, "header CRC mismatch", "header CRC");
    copy_file(p, q), patch(q, 64 + 24 + 12, 0x01); /* record 1's label */
    expect_damage(q, "index CRC mismatch", "index CRC");
    copy_file(p, q), patch(q, 64 + 2 * 24 + 24 + 5, 0x40); /* a byte of record 1 */
    expect_damage(q, "record 1: CRC mismatch", "record CRC");
    copy_file(p, q);
    CHECK(truncate(q, 64 + 24 + 7) == 0, "truncate");
    expect_damage(q, "truncated index", "truncated index");
    copy_file(p, q);
    CHECK(truncate(q, 40) == 0, "truncate");
    expect_damage(q, "too short", "truncated header");

    /* stats: exact on a known dataset; the normalised view */
    src = make_u8(10, 2, 3, 4);
    herd_data_stats s;
    CHECK(herd_data_stats_compute(&s, src, 0, 1, NULL, NULL, &err) == HERD_OK, "stats: %s", err.msg);
    double sum[2] = {0, 0}, sq[2] = {0, 0};
    float x[24];
    int32_t y;
    for (int64_t i = 0; i < 10; i++) {
        get_f32(src, i, x, &y, &err);
        for (int k = 0; k < 24; k++) sum[k / 12] += x[k], sq[k / 12] += (double)x[k] * x[k];
    }
    for (int c = 0; c < 2; c++) {
        double mean = sum[c] / 120, sd = sqrt(sq[c] / 120 - mean * mean);
        CHECK_CLOSE(s.mean[c], mean, 1e-12, 1e-12, "channel mean");
        CHECK_CLOSE(s.std[c], sd, 1e-9, 1e-9, "channel std");
    }
    CHECK(s.class_count[0] == 4 && s.class_count[1] == 3 && s.class_count[2] == 3, "class counts %lld %lld %lld",
          (long long)s.class_count[0], (long long)s.class_count[1], (long long)s.class_count[2]);
    herd_dataset *nv = NULL;
    CHECK(herd_dataset_normalize(&nv, src, 2, s.mean, s.std, &err) == HERD_OK, "normalize: %s", err.msg);
    herd_data_stats s2;
    CHECK(herd_data_stats_compute(&s2, nv, 0, 1, NULL, NULL, &err) == HERD_OK, "stats of view: %s", err.msg);
    for (int c = 0; c < 2; c++) {
        CHECK_CLOSE(s2.mean[c], 0, 1e-6, 0, "normalised mean");
        CHECK_CLOSE(s2.std[c], 1, 1e-5, 0, "normalised std");
    }
    herd_data_stats_free(&s);
    herd_data_stats_free(&s2);
    herd_dataset_close(nv);
    herd_dataset_close(src);

    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", dir);
    return check_summary();
}
