/* CIFAR-10 reader: synthetic batches round-trip values, labels and the R,G,B plane
 * order; bad sizes, out-of-range labels and incomplete directories are rejected. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "check.h"
#include "sample_check.h"
#include "herd/data.h"

#define REC 3073

static char dir[256];

/* Record r of file f: label (f*7 + r) % 10, pixel value depends on (f, r, channel, pos). */
static uint8_t pixel(int f, int r, int ch, int pos) { return (uint8_t)(f * 31 + r * 17 + ch * 80 + pos); }

static void write_batch(const char *path, int f, int records, int bad_label_at) {
    FILE *fp = fopen(path, "wb");
    if (!fp) {
        perror(path);
        exit(2);
    }
    uint8_t rec[REC];
    for (int r = 0; r < records; r++) {
        rec[0] = (uint8_t)(r == bad_label_at ? 10 : (f * 7 + r) % 10);
        for (int ch = 0; ch < 3; ch++)
            for (int pos = 0; pos < 1024; pos++) rec[1 + ch * 1024 + pos] = pixel(f, r, ch, pos);
        fwrite(rec, 1, REC, fp);
    }
    fclose(fp);
}

static void test_good(void) {
    char paths[2][512];
    const char *ptrs[2];
    for (int f = 0; f < 2; f++) {
        snprintf(paths[f], 512, "%s/good_%d.bin", dir, f);
        write_batch(paths[f], f, 3 + f, -1);
        ptrs[f] = paths[f];
    }
    herd_error err = {0};
    herd_dataset *ds = NULL;
    herd_status st = herd_cifar10_open(&ds, ptrs, 2, &err);
    CHECK(st == HERD_OK, "open: %s", err.msg);
    if (st != HERD_OK) return;
    CHECK(ds->n == 7 && sample_is(ds, HERD_U8, "3x32x32") && ds->num_classes == 10, "n=%lld samples %s",
          (long long)ds->n, sample_desc(ds));
    static float x[3072];
    int bad = 0;
    for (int64_t i = 0; i < ds->n; i++) {
        int f = i < 3 ? 0 : 1, r = i < 3 ? (int)i : (int)i - 3;
        int32_t y = -1;
        st = get_f32(ds, i, x, &y, &err);
        CHECK(st == HERD_OK && y == (f * 7 + r) % 10, "sample %lld label %d expected %d", (long long)i, y,
              (f * 7 + r) % 10);
        /* x[c*1024 + row*32 + col]: plane c is channel c (R, G, B). */
        for (int ch = 0; ch < 3; ch++)
            for (int pos = 0; pos < 1024; pos++)
                if (x[ch * 1024 + pos] != (float)pixel(f, r, ch, pos) / 255.0f) bad++;
    }
    CHECK(bad == 0, "%d pixel values differ from the R,G,B planes written", bad);
    herd_dataset_close(ds);
}

static void expect_bad(const char *path, herd_status want, const char *needle) {
    herd_error err = {0};
    herd_dataset *ds = NULL;
    const char *ptrs[1] = {path};
    herd_status st = herd_cifar10_open(&ds, ptrs, 1, &err);
    CHECK(st == want && ds == NULL, "%s: status %d expected %d: %s", path, st, want, err.msg);
    CHECK(strncmp(err.msg, path, strlen(path)) == 0 && strstr(err.msg, needle), "%s: message '%s' should contain '%s'",
          path, err.msg, needle);
}

static void test_bad(void) {
    char p[512];
    snprintf(p, sizeof p, "%s/short.bin", dir);
    write_batch(p, 0, 2, -1);
    if (truncate(p, 2 * REC - 5) != 0) perror("truncate");
    expect_bad(p, HERD_EFORMAT, "not a positive multiple");

    snprintf(p, sizeof p, "%s/empty.bin", dir);
    write_batch(p, 0, 0, -1);
    expect_bad(p, HERD_EFORMAT, "not a positive multiple");

    snprintf(p, sizeof p, "%s/label10.bin", dir);
    write_batch(p, 0, 3, 2);
    expect_bad(p, HERD_EFORMAT, "record 2 has label 10");

    snprintf(p, sizeof p, "%s/missing.bin", dir);
    expect_bad(p, HERD_EIO, "cannot open");
}

static void test_dir(void) {
    char sub[512], p[600];
    snprintf(sub, sizeof sub, "%s/cifar", dir);
    mkdir(sub, 0755);
    herd_error err = {0};
    herd_dataset *tr = NULL, *te = NULL;
    for (int f = 1; f <= 4; f++) {
        snprintf(p, sizeof p, "%s/data_batch_%d.bin", sub, f);
        write_batch(p, f, 2, -1);
    }
    herd_status st = herd_data_open(sub, &tr, &te, &err);
    CHECK(st == HERD_EIO && strstr(err.msg, "data_batch_5.bin") && strncmp(err.msg, sub, strlen(sub)) == 0,
          "missing batch 5: %s", err.msg);
    CHECK(tr == NULL && te == NULL, "nothing open after failure");
    snprintf(p, sizeof p, "%s/data_batch_5.bin", sub);
    write_batch(p, 5, 2, -1);
    st = herd_data_open(sub, &tr, &te, &err);
    CHECK(st == HERD_EIO && strstr(err.msg, "test_batch.bin"), "missing test batch: %s", err.msg);
    st = herd_data_open(sub, &tr, NULL, &err);
    CHECK(st == HERD_OK && tr && tr->n == 10, "train only: %s", err.msg);
    herd_dataset_close(tr);
    tr = NULL;
    snprintf(p, sizeof p, "%s/test_batch.bin", sub);
    write_batch(p, 9, 3, -1);
    st = herd_data_open(sub, &tr, &te, &err);
    CHECK(st == HERD_OK && tr && te && tr->n == 10 && te->n == 3 && sample_is(te, HERD_U8, "3x32x32"),
          "train+test: %s", err.msg);
    if (st == HERD_OK) {
        float x[3072];
        int32_t y;
        get_f32(te, 1, x, &y, &err);
        CHECK(y == (9 * 7 + 1) % 10, "test label %d", y);
    }
    herd_dataset_close(tr);
    herd_dataset_close(te);

    /* The tarball's own subdirectory is found too. */
    char parent[512], nested[600];
    snprintf(parent, sizeof parent, "%s/unpacked", dir);
    mkdir(parent, 0755);
    snprintf(nested, sizeof nested, "%s/cifar-10-batches-bin", parent);
    if (rename(sub, nested) != 0) perror("rename");
    st = herd_data_open(parent, &tr, &te, &err);
    CHECK(st == HERD_OK && tr && tr->n == 10, "cifar-10-batches-bin subdirectory: %s", err.msg);
    herd_dataset_close(tr);
    herd_dataset_close(te);
}

int main(void) {
    snprintf(dir, sizeof dir, "/tmp/herd_cifar_XXXXXX");
    if (!mkdtemp(dir)) {
        perror("mkdtemp");
        return 2;
    }
    test_good();
    test_bad();
    test_dir();
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", dir);
    return check_summary();
}
