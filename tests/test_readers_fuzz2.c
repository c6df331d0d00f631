/* Mutation fuzz of the data readers added for issue 7 (CSV, NPY, TFRecord, image folders with
 * PNG and JPEG, SQLite): seeded bit flips, truncations and splices of valid files must give OK
 * or an error naming the file, never a crash, a leak or an unbounded allocation (run under
 * HERD_SANITIZE=ON for full value). Every sample of an accepted file is read as well. */
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "check.h"
#include "sample_check.h"
#include "mutate.h"
#include "herd/data.h"
#include "image_files.h"
#include "tfrecord_write.h"

/* HERD_FUZZ_ITERS raises the count for a longer soak than the default suite affords. */
static int ITERS = 300;

static char dir[64], path[700];
static int query_errors_ok; /* SQLite: a damaged schema can make the query itself fail */

static void write_raw(const char *p, const uint8_t *buf, size_t n) {
    FILE *f = fopen(p, "wb");
    if (!f || (n && fwrite(buf, 1, n, f) != n)) {
        perror(p);
        exit(2);
    }
    fclose(f);
}



/* OK, or a format/I/O/unsupported error whose message starts with prefix and is one line. */
static void check_result(herd_status st, const herd_error *err, const char *prefix, const char *what, int i) {
    CHECK(st == HERD_OK || st == HERD_EFORMAT || st == HERD_EUNSUPPORTED || st == HERD_EIO ||
              (query_errors_ok && st == HERD_EARG),
          "%s iteration %d: unexpected status %d: %s", what, i, st, err->msg);
    if (st != HERD_OK)
        CHECK(strncmp(err->msg, prefix, strlen(prefix)) == 0 && !strchr(err->msg, '\n'),
              "%s iteration %d: message without %s: %s", what, i, prefix, err->msg);
}

/* Reads every sample of an accepted dataset (ASan checks the claimed sizes). */
static int read_all(herd_dataset *ds, const char *prefix, const char *what, int i) {
    size_t sample = (size_t)herd_tensor_numel(&ds->x);
    float *x = malloc(sample * sizeof *x);
    CHECK(x != NULL, "%s iteration %d: sample of %zu floats", what, i, sample);
    int bad = 0;
    for (int64_t k = 0; x && k < ds->n && k < 64; k++) {
        int32_t y;
        herd_error err = {0};
        herd_status st = get_f32(ds, k, x, &y, &err);
        check_result(st, &err, prefix, what, i);
        if (st == HERD_OK) CHECK(y >= 0 && y < ds->num_classes, "%s iteration %d: label %d", what, i, y);
        bad += st != HERD_OK;
    }
    free(x);
    return bad;
}

typedef herd_status (*open_fn)(herd_dataset **out, herd_error *err);

/* Mutates seed[0..n) into file p ITERS times and opens it with fn each time. */
static void fuzz_file(const char *what, const char *p, const uint8_t *seed, size_t n, open_fn fn, uint64_t key,
                      int iters) {
    static uint8_t buf[1 << 17];
    herd_rng r;
    herd_rng_init(&r, 2026, key);
    int ok = 0, get_errors = 0;
    for (int i = 0; i < iters; i++) {
        size_t m = fuzz_mutate(&r, seed, n, buf, sizeof buf);
        write_raw(p, buf, m);
        herd_dataset *ds = NULL;
        herd_error err = {0};
        herd_status st = fn(&ds, &err);
        check_result(st, &err, path, what, i);
        if (st == HERD_OK) {
            ok++;
            get_errors += read_all(ds, path, what, i);
        }
        herd_dataset_close(ds);
    }
    printf("%s: %d mutations, %d opened, %d sample errors\n", what, iters, ok, get_errors);
}

static herd_status open_csv(herd_dataset **out, herd_error *err) { return herd_csv_open(out, path, NULL, err); }

static char npy_x[300], npy_y[300];
static herd_status open_npy(herd_dataset **out, herd_error *err) { return herd_npy_open(out, npy_x, npy_y, err); }

static herd_status open_tfr(herd_dataset **out, herd_error *err) {
    const char *paths[1] = {path};
    herd_image_options o = {.c = 1, .h = 4, .w = 4};
    return herd_tfrecord_open(out, paths, 1, &o, err);
}

static herd_status open_tfr_noshape(herd_dataset **out, herd_error *err) {
    const char *paths[1] = {path};
    return herd_tfrecord_open(out, paths, 1, NULL, err);
}

static char folder[300];
static herd_status open_folder(herd_dataset **out, herd_error *err) {
    herd_image_options o = {.c = 3, .h = 4, .w = 4};
    return herd_imagefolder_open(out, folder, &o, err);
}

static char sql_db[300];
static herd_status open_sqlite(herd_dataset **out, herd_error *err) {
    return herd_sqlite_open(out, sql_db, "SELECT a, b, label FROM t", NULL, err);
}

static void npy_header(uint8_t *out, size_t *n, const char *dict) {
    size_t len = strlen(dict), hl = (10 + len + 1 + 63) / 64 * 64 - 10;
    memcpy(out, "\x93NUMPY\x01\x00", 8);
    out[8] = (uint8_t)hl, out[9] = (uint8_t)(hl >> 8);
    memcpy(out + 10, dict, len);
    memset(out + 10 + len, ' ', hl - len - 1);
    out[10 + hl - 1] = '\n';
    *n = 10 + hl;
}

int main(void) {
    const char *it = getenv("HERD_FUZZ_ITERS");
    if (it && atoi(it) > 0) ITERS = atoi(it);
    snprintf(dir, sizeof dir, "/tmp/herd_fuzz2_XXXXXX");
    if (!mkdtemp(dir)) {
        perror("mkdtemp");
        return 2;
    }

    /* CSV */
    static const char csv[] = "\"a,\n1\",\"b \"\"2\"\"\",label\r\n1.5,2,0\r\n\"3\",-4e2,1\r\n\"5\",6,2\r\n7,8,1\r\n\r\n";
    snprintf(path, sizeof path, "%s/fuzz.csv", dir);
    fuzz_file("csv", path, (const uint8_t *)csv, strlen(csv), open_csv, 1, ITERS);

    /* NPY: the features file mutated, then the labels file */
    static uint8_t x[4096], y[1024];
    size_t xn, yn;
    npy_header(x, &xn, "{'descr': '<f4', 'fortran_order': False, 'shape': (3, 2, 2), }");
    for (int i = 0; i < 12; i++) {
        float v = (float)i * 0.5f;
        memcpy(x + xn, &v, 4);
        xn += 4;
    }
    npy_header(y, &yn, "{'descr': '<i8', 'fortran_order': False, 'shape': (3,), }");
    for (int i = 0; i < 3; i++) {
        int64_t v = i;
        memcpy(y + yn, &v, 8);
        yn += 8;
    }
    snprintf(npy_x, sizeof npy_x, "%s/fuzz_x.npy", dir);
    snprintf(npy_y, sizeof npy_y, "%s/fuzz_y.npy", dir);
    write_raw(npy_y, y, yn);
    snprintf(path, sizeof path, "%s", npy_x);
    fuzz_file("npy features", npy_x, x, xn, open_npy, 2, ITERS);
    write_raw(npy_x, x, xn);
    snprintf(path, sizeof path, "%s", npy_y);
    fuzz_file("npy labels", npy_y, y, yn, open_npy, 3, ITERS / 2);
    write_raw(npy_y, y, yn);
    /* u8 features of shape (N,H,W) */
    npy_header(x, &xn, "{'descr': '|u1', 'fortran_order': False, 'shape': (3, 2, 4), }");
    for (int i = 0; i < 24; i++) x[xn++] = (uint8_t)(i * 11);
    snprintf(path, sizeof path, "%s", npy_x);
    fuzz_file("npy u8", npy_x, x, xn, open_npy, 4, ITERS / 2);

    /* TFRecord: raw, PNG, JPEG and float records for a 1x4x4 input */
    uint8_t gray[16], rgb[48];
    for (int i = 0; i < 16; i++) gray[i] = (uint8_t)(i * 16);
    for (int i = 0; i < 48; i++) rgb[i] = (uint8_t)(i * 5);
    unsigned char *png = NULL, *jpg = NULL;
    size_t png_len = 0, jpg_len = 0;
    test_png(rgb, 4, 4, 3, &png, &png_len);
    test_jpeg(gray, 4, 4, 1, 90, &jpg, &jpg_len);
    snprintf(path, sizeof path, "%s/fuzz.tfrecord", dir);
    FILE *f = fopen(path, "wb");
    static pbuf feats, ex;
    float fl[16];
    for (int i = 0; i < 16; i++) fl[i] = (float)i;
    for (int r = 0; r < 4; r++) {
        feats.n = 0;
        if (r == 0) {
            ex_bytes(&feats, "image", gray, 16);
            ex_int64(&feats, "height", 4, 0);
            ex_int64(&feats, "width", 4, 1);
        }
        if (r == 1) ex_bytes(&feats, "image", png, png_len);
        if (r == 2) ex_bytes(&feats, "image", jpg, jpg_len);
        if (r == 3) ex_floats(&feats, "image", fl, 16, 1);
        ex_int64(&feats, "label", r % 2, r % 2);
        ex_finish(&ex, &feats);
        tfr_write(f, ex.b, ex.n);
    }
    fclose(f);
    static uint8_t seed[1 << 16];
    size_t n = fuzz_slurp(path, seed, sizeof seed);
    fuzz_file("tfrecord", path, seed, n, open_tfr, 5, ITERS);
    fuzz_file("tfrecord without a model shape", path, seed, n, open_tfr_noshape, 6, ITERS / 2);
    /* the same, with the framing CRCs made right again, so that mutations reach the protobuf and image decoders */
    {
        static uint8_t buf[1 << 17];
        herd_rng r;
        herd_rng_init(&r, 2026, 7);
        int ok = 0;
        for (int i = 0; i < ITERS; i++) {
            f = fopen(path, "wb");
            size_t at = 0;
            while (at + 12 <= n) { /* mutate each record's data, reframe it */
                uint64_t len = 0;
                for (int k = 0; k < 8; k++) len |= (uint64_t)seed[at + k] << (8 * k);
                size_t m = fuzz_mutate(&r, seed + at + 12, (size_t)len, buf, sizeof buf);
                if (herd_rng_below(&r, 2)) m = len, memcpy(buf, seed + at + 12, len);
                tfr_write(f, buf, m);
                at += 12 + len + 4;
            }
            fclose(f);
            herd_dataset *ds = NULL;
            herd_error err = {0};
            herd_status st = open_tfr(&ds, &err);
            check_result(st, &err, path, "tfrecord (reframed)", i);
            if (st == HERD_OK) ok++, read_all(ds, path, "tfrecord (reframed)", i);
            herd_dataset_close(ds);
        }
        printf("tfrecord (reframed): %d mutations, %d opened\n", ITERS, ok);
    }

    /* image folder: one class of a PNG, one of a JPEG; each file mutated in turn */
    snprintf(folder, sizeof folder, "%s/folder", dir);
    char sub[700];
    mkdir(folder, 0755);
    snprintf(sub, sizeof sub, "%s/a", folder);
    mkdir(sub, 0755);
    snprintf(sub, sizeof sub, "%s/b", folder);
    mkdir(sub, 0755);
    char png_path[700], jpg_path[700];
    snprintf(png_path, sizeof png_path, "%s/a/1.png", folder);
    snprintf(jpg_path, sizeof jpg_path, "%s/b/1.jpg", folder);
    write_raw(jpg_path, jpg, jpg_len);
    snprintf(path, sizeof path, "%s", folder);
    fuzz_file("image folder png", png_path, png, png_len, open_folder, 8, ITERS);
    write_raw(png_path, png, png_len);
    fuzz_file("image folder jpeg", jpg_path, jpg, jpg_len, open_folder, 9, ITERS);
    free(png);
    free(jpg);

    /* SQLite: a corrupt database file gives SQLite's error, never a crash */
    snprintf(sql_db, sizeof sql_db, "%s/fuzz.db", dir);
    sqlite3 *h;
    if (sqlite3_open(sql_db, &h) != SQLITE_OK ||
        sqlite3_exec(h, "CREATE TABLE t(a REAL, b REAL, label INTEGER); INSERT INTO t VALUES (1, 2, 0), (3, 4, 1);",
                     NULL, NULL, NULL) != SQLITE_OK)
        return 2;
    sqlite3_close(h);
    n = fuzz_slurp(sql_db, seed, sizeof seed);
    snprintf(path, sizeof path, "sqlite:%s", sql_db);
    query_errors_ok = 1;
    fuzz_file("sqlite", sql_db, seed, n, open_sqlite, 10, ITERS / 3);

    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", dir);
    return check_summary();
}
