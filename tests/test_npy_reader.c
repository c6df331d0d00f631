/* NPY reader: headers v1/v2/v3, the dtypes and shapes herd maps to samples, label files,
 * the --data naming conventions, and each kind of bad file with its one-line error. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "sample_check.h"
#include "herd/data.h"

static char dir[64];

/* Writes a .npy: magic, version, header padded to 64 bytes with '\n', then data. */
static void write_npy(const char *name, int major, const char *dict, const void *data, size_t bytes) {
    char path[256], hdr[512];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    size_t pre = major == 1 ? 10 : 12, n = strlen(dict);
    size_t total = (pre + n + 1 + 63) / 64 * 64;
    size_t hl = total - pre;
    memcpy(hdr, dict, n);
    memset(hdr + n, ' ', hl - n - 1);
    hdr[hl - 1] = '\n';
    unsigned char head[12] = {0x93, 'N', 'U', 'M', 'P', 'Y', (unsigned char)major, 0,
                              (unsigned char)(hl & 0xFF), (unsigned char)(hl >> 8), 0, 0};
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(head, 1, pre, f) != pre || fwrite(hdr, 1, hl, f) != hl || (bytes && fwrite(data, 1, bytes, f) != bytes)) {
        perror(path);
        exit(2);
    }
    fclose(f);
}

static void write_raw(const char *name, const void *data, size_t n) {
    char path[256];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(data, 1, n, f) != n) exit(2);
    fclose(f);
}

static herd_status open_pair(herd_dataset **ds, const char *x, const char *y, herd_error *err) {
    char xp[256], yp[256];
    snprintf(xp, sizeof xp, "%s/%s", dir, x);
    snprintf(yp, sizeof yp, "%s/%s", dir, y);
    return herd_npy_open(ds, xp, yp, err);
}

static void expect_error(const char *x, const char *y, const char *bad_file, const char *want) {
    herd_dataset *ds = NULL;
    herd_error err = {0};
    char p[256];
    snprintf(p, sizeof p, "%s/%s: ", dir, bad_file);
    herd_status st = open_pair(&ds, x, y, &err);
    CHECK(st != HERD_OK && !ds, "accepted %s (%s)", bad_file, want);
    CHECK(strncmp(err.msg, p, strlen(p)) == 0 && strstr(err.msg, want) && !strchr(err.msg, '\n'),
          "message '%s' should start '%s' and say '%s'", err.msg, p, want);
    herd_dataset_close(ds);
}

int main(void) {
    snprintf(dir, sizeof dir, "/tmp/herd_npy_XXXXXX");
    if (!mkdtemp(dir)) return 2;
    herd_error err = {0};
    herd_dataset *ds = NULL;

    float f4[3 * 2] = {0.5f, -1, 2, 3, 4, 5e-3f};
    int64_t y3[3] = {0, 2, 1};
    write_npy("f4x.npy", 1, "{'descr': '<f4', 'fortran_order': False, 'shape': (3, 2), }", f4, sizeof f4);
    write_npy("f4y.npy", 1, "{'descr': '<i8', 'fortran_order': False, 'shape': (3,), }", y3, sizeof y3);
    herd_status st = open_pair(&ds, "f4x.npy", "f4y.npy", &err);
    CHECK(st == HERD_OK, "f4 (N,F): %s", err.msg);
    if (st == HERD_OK) {
        CHECK(ds->n == 3 && sample_is(ds, HERD_F32, "2") && ds->num_classes == 3, "f4 samples %s", sample_desc(ds));
        float x[2];
        int32_t y;
        for (int i = 0; i < 3; i++) {
            CHECK(get_f32(ds, i, x, &y, &err) == HERD_OK, "get: %s", err.msg);
            CHECK(x[0] == f4[2 * i] && x[1] == f4[2 * i + 1] && y == y3[i], "f4 sample %d: %g %g %d", i, x[0], x[1], y);
        }
        CHECK(get_f32(ds, -1, x, &y, &err) == HERD_EARG, "negative index");
    }
    herd_dataset_close(ds);

    /* (N,) features: one value a sample, (1) */
    write_npy("f1x.npy", 1, "{'descr': '<f4', 'fortran_order': False, 'shape': (3,), }", f4, 3 * sizeof(float));
    st = open_pair(&ds, "f1x.npy", "f4y.npy", &err);
    CHECK(st == HERD_OK && sample_is(ds, HERD_F32, "1"), "(N,): %s %s", err.msg, sample_desc(ds));
    if (st == HERD_OK) {
        float x1;
        int32_t y;
        CHECK(get_f32(ds, 2, &x1, &y, &err) == HERD_OK && x1 == f4[2] && y == y3[2], "(N,) sample 2: %g", x1);
    }
    herd_dataset_close(ds);

    /* uint8 (N,H,W) scaled like images; version 2.0 header; int32 labels of shape (N, 1) */
    uint8_t u1[2 * 2 * 3] = {0, 255, 51, 1, 2, 3, 4, 5, 6, 7, 8, 9};
    int32_t y2[2] = {1, 0};
    write_npy("u1x.npy", 2, "{'descr': '|u1', 'fortran_order': False, 'shape': (2, 2, 3)}", u1, sizeof u1);
    write_npy("u1y.npy", 3, "{\"descr\": \"<i4\", \"fortran_order\": False, \"shape\": (2, 1)}", y2, sizeof y2);
    st = open_pair(&ds, "u1x.npy", "u1y.npy", &err);
    CHECK(st == HERD_OK && sample_is(ds, HERD_U8, "1x2x3") && ds->num_classes == 2, "u1 (N,H,W): %s %s", err.msg,
          sample_desc(ds));
    if (st == HERD_OK) {
        float x[6];
        int32_t y;
        CHECK(get_f32(ds, 0, x, &y, &err) == HERD_OK && x[0] == 0 && x[1] == 1.0f && x[2] == 51 / 255.0f && y == 1,
              "u1 scaled: %g %g %g", x[0], x[1], x[2]);
    }
    herd_dataset_close(ds);

    /* f8 (N,C,H,W), int8 features, uint8 labels */
    double f8[2 * 2 * 1 * 2] = {1, 2, 3, 4, 5, 6, 7, 8.25};
    int8_t i1[2 * 3] = {-128, 0, 127, 1, 2, 3};
    uint8_t yu[2] = {3, 0};
    write_npy("f8x.npy", 1, "{'descr': '<f8', 'fortran_order': False, 'shape': (2, 2, 1, 2), }", f8, sizeof f8);
    write_npy("i1x.npy", 1, "{'descr': '|i1', 'fortran_order': False, 'shape': (2, 3), }", i1, sizeof i1);
    write_npy("uy.npy", 1, "{'descr': '|u1', 'fortran_order': False, 'shape': (2,), }", yu, sizeof yu);
    st = open_pair(&ds, "f8x.npy", "uy.npy", &err);
    CHECK(st == HERD_OK && sample_is(ds, HERD_F32, "2x1x2") && ds->num_classes == 4, "f8 (N,C,H,W): %s %s", err.msg,
          sample_desc(ds));
    if (st == HERD_OK) {
        float x[4];
        int32_t y;
        CHECK(get_f32(ds, 1, x, &y, &err) == HERD_OK && x[0] == 5 && x[3] == 8.25f && y == 0, "f8 sample 1");
    }
    herd_dataset_close(ds);
    st = open_pair(&ds, "i1x.npy", "uy.npy", &err);
    if (st == HERD_OK) {
        float x[3];
        int32_t y;
        CHECK(get_f32(ds, 0, x, &y, &err) == HERD_OK && x[0] == -128 && x[2] == 127, "i1 kept as values");
    }
    CHECK(st == HERD_OK, "i1: %s", err.msg);
    herd_dataset_close(ds);

    /* bad files */
    write_npy("fort.npy", 1, "{'descr': '<f4', 'fortran_order': True, 'shape': (3, 2), }", f4, sizeof f4);
    expect_error("fort.npy", "f4y.npy", "fort.npy", "fortran_order True is not supported");
    write_npy("be.npy", 1, "{'descr': '>f4', 'fortran_order': False, 'shape': (3, 2), }", f4, sizeof f4);
    expect_error("be.npy", "f4y.npy", "be.npy", "'>f4' big-endian is not supported");
    write_npy("c8.npy", 1, "{'descr': '<c8', 'fortran_order': False, 'shape': (3,), }", f4, sizeof f4);
    expect_error("c8.npy", "f4y.npy", "c8.npy", "dtype '<c8' is not supported");
    write_npy("short.npy", 1, "{'descr': '<f4', 'fortran_order': False, 'shape': (3, 3), }", f4, sizeof f4);
    expect_error("short.npy", "f4y.npy", "short.npy", "shape (3, 3) of <f4 needs 36 bytes of data, the file has 24");
    write_npy("huge.npy", 1, "{'descr': '<f4', 'fortran_order': False, 'shape': (99999999999, 99999999999), }", f4,
              sizeof f4);
    expect_error("huge.npy", "f4y.npy", "huge.npy", "needs more than");
    /* the element count fits in 64 bits, count x 4 bytes does not: never "needs 0 bytes" (the wrapped product) */
    write_npy("wrap.npy", 1, "{'descr': '<f4', 'fortran_order': False, 'shape': (4611686018427387904,), }", f4,
              sizeof f4);
    expect_error("wrap.npy", "f4y.npy", "wrap.npy", "needs more than 18446744073709551615 bytes of data, the file has 24");
    write_npy("nodict.npy", 1, "['descr', '<f4']", f4, sizeof f4);
    expect_error("nodict.npy", "f4y.npy", "nodict.npy", "bad header dict");
    write_npy("nokey.npy", 1, "{'descr': '<f4', 'shape': (3, 2), }", f4, sizeof f4);
    expect_error("nokey.npy", "f4y.npy", "nokey.npy", "bad header dict: needs descr, fortran_order and shape");
    write_npy("extra.npy", 1, "{'descr': '<f4', 'fortran_order': False, 'shape': (3, 2), 'x': 1}", f4, sizeof f4);
    expect_error("extra.npy", "f4y.npy", "extra.npy", "unknown key 'x'");
    write_npy("badshape.npy", 1, "{'descr': '<f4', 'fortran_order': False, 'shape': (3, -2), }", f4, sizeof f4);
    expect_error("badshape.npy", "f4y.npy", "badshape.npy", "shape holds a non-integer");
    write_npy("five.npy", 1, "{'descr': '<f4', 'fortran_order': False, 'shape': (3, 1, 1, 1, 2), }", f4, sizeof f4);
    expect_error("five.npy", "f4y.npy", "five.npy", "features of 5 dimensions");
    write_raw("magic.npy", "\x93NUMPZ\x01\x00\x10\x00{}              ", 26);
    expect_error("magic.npy", "f4y.npy", "magic.npy", "bad magic");
    write_raw("v9.npy", "\x93NUMPY\x09\x00\x10\x00{}              ", 26);
    expect_error("v9.npy", "f4y.npy", "v9.npy", "format version 9.0 is not supported");
    write_raw("hdrlen.npy", "\x93NUMPY\x01\x00\xff\x00{}              ", 26);
    expect_error("hdrlen.npy", "f4y.npy", "hdrlen.npy", "header of 255 bytes runs past the end");
    write_raw("tiny.npy", "\x93NUMPY", 6);
    expect_error("tiny.npy", "f4y.npy", "tiny.npy", "too short");
    expect_error("f4x.npy", "uy.npy", "uy.npy", "2 labels for 3 samples");
    /* float targets (regression, binary): f32 values, one per sample or of the sample's shape */
    write_npy("fy.npy", 1, "{'descr': '<f4', 'fortran_order': False, 'shape': (3,), }", f4, 12);
    {
        herd_dataset *ds = NULL;
        herd_error err = {0};
        char xp[512], yp[512];
        snprintf(xp, sizeof xp, "%s/f4x.npy", dir), snprintf(yp, sizeof yp, "%s/fy.npy", dir);
        CHECK(herd_npy_open(&ds, xp, yp, &err) == HERD_OK, "float targets: %s", err.msg);
        float y = -1;
        unsigned char xb[64];
        if (ds) {
            CHECK(ds->y.dtype == HERD_F32 && ds->y.ndim == 0, "float targets are one f32 per sample");
            CHECK(herd_dataset_get(ds, 2, xb, &y, &err) == HERD_OK && y == f4[2], "target 2 is %g", (double)y);
        }
        herd_dataset_close(ds);
    }
    write_npy("nany.npy", 1, "{'descr': '<f4', 'fortran_order': False, 'shape': (3,), }",
              (float[]){1, NAN, 0}, 12);
    expect_error("f4x.npy", "nany.npy", "nany.npy", "target nan of sample 1 is not a finite float");
    int64_t neg[3] = {0, -1, 1};
    write_npy("negy.npy", 1, "{'descr': '<i8', 'fortran_order': False, 'shape': (3,), }", neg, sizeof neg);
    expect_error("f4x.npy", "negy.npy", "negy.npy", "label -1 of sample 1 is not a class id");
    write_npy("y2d.npy", 1, "{'descr': '<i8', 'fortran_order': False, 'shape': (1, 3), }", neg, sizeof neg);
    expect_error("f4x.npy", "y2d.npy", "y2d.npy", "1 labels for 3 samples");
    expect_error("missing.npy", "f4y.npy", "missing.npy", "cannot open");

    /* --data: FILEx.npy + FILEy.npy, train_x.npy -> test_x.npy, a directory of train_/test_ pairs */
    write_npy("train_x.npy", 1, "{'descr': '<f4', 'fortran_order': False, 'shape': (3, 2), }", f4, sizeof f4);
    write_npy("train_y.npy", 1, "{'descr': '<i8', 'fortran_order': False, 'shape': (3,), }", y3, sizeof y3);
    char spec[256];
    herd_dataset *tr = NULL, *te = NULL;
    snprintf(spec, sizeof spec, "%s/f4x.npy", dir);
    st = herd_data_open(spec, &tr, &te, &err);
    CHECK(st == HERD_OK && tr && tr->n == 3 && !te, "--data f4x.npy: %s", err.msg);
    herd_dataset_close(tr);
    snprintf(spec, sizeof spec, "%s/train_x.npy", dir);
    st = herd_data_open(spec, &tr, &te, &err);
    CHECK(st == HERD_OK && tr && !te, "--data train_x.npy without a test pair: %s", err.msg);
    herd_dataset_close(tr);
    write_npy("test_x.npy", 1, "{'descr': '<f4', 'fortran_order': False, 'shape': (1, 2), }", f4, 8);
    write_npy("test_y.npy", 1, "{'descr': '<i8', 'fortran_order': False, 'shape': (1,), }", y3, 8);
    st = herd_data_open(spec, &tr, &te, &err);
    CHECK(st == HERD_OK && tr && te && te->n == 1, "--data train_x.npy with test_x.npy: %s", err.msg);
    herd_dataset_close(tr);
    herd_dataset_close(te);
    st = herd_data_open(dir, &tr, &te, &err);
    CHECK(st == HERD_OK && tr && tr->n == 3 && te && te->n == 1, "--data DIR with train_x.npy: %s", err.msg);
    herd_dataset_close(tr);
    herd_dataset_close(te);
    snprintf(spec, sizeof spec, "%s/features.npy", dir);
    st = herd_data_open(spec, &tr, &te, &err);
    CHECK(st == HERD_EARG && strstr(err.msg, "FILEy.npy"), "unpaired name: %s", err.msg);

    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", dir);
    return check_summary();
}
