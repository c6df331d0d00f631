/* The streaming shard writer: auto dtype restarting as f32 when a later record is not k/255,
 * --skip-bad leaving out failing samples (each reported once, also across that restart), a
 * shard whose every sample was left out, the same bytes for any thread count, and resume
 * keeping complete shards while rewriting a damaged one. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "check.h"
#include "herd/data.h"

enum { N = 40, C = 2, H = 3, W = 5, PER = C * H * W };

typedef struct fake {
    int inexact_from; /* samples from here on hold a value that is not k/255 (-1: none) */
    int fail_every;   /* get fails for i % fail_every == 1 (0: never) */
    int fail_all;
} fake;

static herd_status fake_get(const herd_dataset *ds, int64_t i, void *xv, void *yv, herd_error *err) {
    const fake *f = ds->impl;
    float *x = xv;
    int32_t *y = yv;
    if (f->fail_all || (f->fail_every && i % f->fail_every == 1))
        return herd_fail(err, HERD_EFORMAT, "fake/%03lld.jpg: bad JPEG", (long long)i);
    for (int k = 0; k < PER; k++) x[k] = (float)((i * 7 + k * 3) % 256) / 255.0f;
    if (f->inexact_from >= 0 && i >= f->inexact_from) x[PER - 1] = 0.3333f;
    *y = (int32_t)(i % 3);
    return HERD_OK;
}
static void fake_close(herd_dataset *ds) { (void)ds; }
static const herd_dataset_ops fake_ops = {fake_get, fake_close, NULL, NULL};

static herd_dataset make(fake *f) {
    herd_dataset ds = {.ops = &fake_ops, .n = N, .num_classes = 3, .impl = f};
    ds.x = herd_tensor_make(HERD_F32, 3, (int64_t[]){C, H, W}, NULL);
    ds.y = herd_tensor_make(HERD_I32, 0, NULL, NULL);
    snprintf(ds.source, sizeof ds.source, "fake");
    return ds;
}

typedef struct counts {
    int skips, shards, kept;
    int64_t records;
} counts;
static void on_skip(void *ctx, const herd_error *e) {
    (void)e;
    ((counts *)ctx)->skips++;
}
static void on_shard(void *ctx, const char *path, int64_t n, int kept) {
    (void)path;
    counts *c = ctx;
    c->shards++, c->kept += kept, c->records += n;
}

static char dir[64];

static int read_file(const char *path, uint8_t **buf, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f) return 0;
    fseek(f, 0, SEEK_END);
    *len = (size_t)ftell(f);
    fseek(f, 0, SEEK_SET);
    *buf = malloc(*len ? *len : 1);
    int ok = fread(*buf, 1, *len, f) == *len;
    fclose(f);
    return ok;
}

static int same_files(const char *a, const char *b) {
    uint8_t *x = NULL, *y = NULL;
    size_t nx = 0, ny = 0;
    int same = read_file(a, &x, &nx) && read_file(b, &y, &ny) && nx == ny && memcmp(x, y, nx) == 0;
    free(x), free(y);
    return same;
}

int main(void) {
    snprintf(dir, sizeof dir, "/tmp/herd_sw_XXXXXX");
    if (!mkdtemp(dir)) return 2;
    herd_error err = {0};
    char p1[128], p2[128];

    /* auto: u8 until record 25 is not k/255, then the whole shard again as f32; skips reported once */
    fake f = {.inexact_from = 25, .fail_every = 6};
    herd_dataset ds = make(&f);
    counts c = {0};
    herd_shard_write_options o = {.skip_bad = 1, .threads = 3, .on_skip = on_skip, .ctx = &c};
    snprintf(p1, sizeof p1, "%s/a.herd", dir);
    int64_t written = -1;
    CHECK(herd_shard_write(p1, &ds, 0, N, &o, &written, &err) == HERD_OK, "write: %s", err.msg);
    int bad = 0;
    for (int i = 0; i < N; i++) bad += i % 6 == 1;
    CHECK(written == N - bad && c.skips == bad, "written %lld (want %d), skips reported %d (want %d)",
          (long long)written, N - bad, c.skips, bad);
    herd_dataset *r = NULL;
    const char *paths[1] = {p1};
    CHECK(herd_shards_open(&r, paths, 1, &err) == HERD_OK, "open: %s", err.msg);
    if (r) {
        float x[PER], want[PER];
        int32_t y = -1, wy = -2;
        int exact = r->n == N - bad;
        for (int64_t i = 0, j = 0; i < N && exact; i++) {
            if (i % 6 == 1) continue;
            r->ops->get(r, j++, x, &y, &err);
            fake_get(&ds, i, want, &wy, &err);
            exact &= memcmp(x, want, sizeof x) == 0 && y == wy;
        }
        CHECK(exact, "f32 records differ from the samples");
        herd_dataset_close(r);
    }
    /* the same bytes with one thread */
    o.threads = 1;
    snprintf(p2, sizeof p2, "%s/b.herd", dir);
    CHECK(herd_shard_write(p2, &ds, 0, N, &o, NULL, &err) == HERD_OK, "write, 1 thread: %s", err.msg);
    CHECK(same_files(p1, p2), "1 thread and 3 threads wrote different files");
    /* without skip_bad the first failing sample stops it, named, and nothing is left behind */
    herd_shard_write_options strict = {.threads = 2};
    snprintf(p2, sizeof p2, "%s/c.herd", dir);
    CHECK(herd_shard_write(p2, &ds, 0, N, &strict, NULL, &err) == HERD_EFORMAT && strstr(err.msg, "fake/001.jpg"),
          "a failing sample: %s", err.msg);
    CHECK(access(p2, F_OK) != 0, "a failed write left %s", p2);
    /* every sample left out: an empty shard that opens */
    fake all = {.inexact_from = -1, .fail_all = 1};
    herd_dataset dall = make(&all);
    snprintf(p2, sizeof p2, "%s/d.herd", dir);
    CHECK(herd_shard_write(p2, &dall, 0, 10, &o, &written, &err) == HERD_OK && written == 0, "all bad: %s", err.msg);
    paths[0] = p2;
    CHECK(herd_shards_open(&r, paths, 1, &err) == HERD_OK && r->n == 0, "empty shard: %s", err.msg);
    herd_dataset_close(r);

    /* resume: complete shards kept, a damaged one rewritten, the result as a clean write */
    fake ok = {.inexact_from = -1};
    herd_dataset dok = make(&ok);
    char sdir[96], cdir[96];
    snprintf(sdir, sizeof sdir, "%s/s", dir);
    snprintf(cdir, sizeof cdir, "%s/clean", dir);
    counts c1 = {0}, c2 = {0};
    herd_shard_write_options w1 = {.threads = 2, .on_shard = on_shard, .ctx = &c1};
    CHECK(herd_shards_write(&dok, sdir, "train", 3, &w1, &err) == HERD_OK, "shards: %s", err.msg);
    CHECK(herd_shards_write(&dok, cdir, "train", 3, NULL, &err) == HERD_OK, "clean shards: %s", err.msg);
    snprintf(p1, sizeof p1, "%s/train-00001-of-00003.herd", sdir);
    CHECK(truncate(p1, 100) == 0, "truncate");
    herd_shard_write_options w2 = {.threads = 2, .resume = 1, .on_shard = on_shard, .ctx = &c2};
    CHECK(herd_shards_write(&dok, sdir, "train", 3, &w2, &err) == HERD_OK, "resume: %s", err.msg);
    CHECK(c1.shards == 3 && c1.kept == 0 && c2.shards == 3 && c2.kept == 2 && c2.records == N,
          "resume kept %d of %d shards (want 2 of 3), %lld records", c2.kept, c2.shards, (long long)c2.records);
    for (int k = 0; k < 3; k++) {
        snprintf(p1, sizeof p1, "%s/train-%05d-of-00003.herd", sdir, k);
        snprintf(p2, sizeof p2, "%s/train-%05d-of-00003.herd", cdir, k);
        CHECK(same_files(p1, p2), "shard %d after resume differs from a clean write", k);
    }
    char cmd[160];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    if (system(cmd) != 0) return 2;
    return check_summary();
}
