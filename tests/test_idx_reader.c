/* IDX reader: plain and gzip files round-trip; each kind of bad file gives the right
 * status and a message naming the file; the installed Fashion-MNIST opens by name. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include "check.h"
#include "sample_check.h"
#include "herd/data.h"

static char dir[256];

static const char *path_in(const char *name) {
    static char bufs[4][512];
    static int k;
    char *p = bufs[k++ & 3];
    snprintf(p, 512, "%s/%s", dir, name);
    return p;
}

static void write_plain(const char *path, const void *buf, size_t n) {
    FILE *f = fopen(path, "wb");
    if (!f || (n && fwrite(buf, 1, n, f) != n)) {
        perror(path);
        exit(2);
    }
    fclose(f);
}

static void write_gz(const char *path, const void *buf, size_t n) {
    gzFile g = gzopen(path, "wb");
    if (!g || (n && gzwrite(g, buf, (unsigned)n) != (int)n)) {
        fprintf(stderr, "%s: gzwrite failed\n", path);
        exit(2);
    }
    gzclose(g);
}

/* IDX header for type 0x08 and the given dims, followed by data bytes. */
static size_t make_idx(uint8_t *out, int type, int ndim, const uint32_t *dims, const uint8_t *data, size_t n) {
    size_t k = 0;
    out[k++] = 0;
    out[k++] = 0;
    out[k++] = (uint8_t)type;
    out[k++] = (uint8_t)ndim;
    for (int i = 0; i < ndim; i++) {
        out[k++] = (uint8_t)(dims[i] >> 24);
        out[k++] = (uint8_t)(dims[i] >> 16);
        out[k++] = (uint8_t)(dims[i] >> 8);
        out[k++] = (uint8_t)dims[i];
    }
    memcpy(out + k, data, n);
    return k + n;
}

/* Expects herd_idx_read to fail with st, a message naming path and containing needle. */
static void expect_bad(const char *path, herd_status want, const char *needle) {
    herd_error err = {0};
    uint8_t *data = NULL;
    int nd;
    int64_t dims[4];
    herd_status st = herd_idx_read(path, &data, &nd, dims, &err);
    CHECK(st == want, "%s: status %d (%s) expected %d; msg: %s", path, st, herd_status_str(st), want, err.msg);
    CHECK(strncmp(err.msg, path, strlen(path)) == 0, "message should start with the path: %s", err.msg);
    CHECK(strstr(err.msg, needle) != NULL, "message should mention '%s': %s", needle, err.msg);
    CHECK(data == NULL, "no data on failure");
    free(data);
}

static void test_good(int gz) {
    uint8_t pix[2 * 3 * 4], lab[2] = {3, 7}, buf[256];
    for (size_t i = 0; i < sizeof pix; i++) pix[i] = (uint8_t)(i * 10);
    uint32_t idims[3] = {2, 3, 4}, ldims[1] = {2};
    const char *ip = path_in(gz ? "img.gz" : "img"), *lp = path_in(gz ? "lab.gz" : "lab");
    size_t n = make_idx(buf, 8, 3, idims, pix, sizeof pix);
    (gz ? write_gz : write_plain)(ip, buf, n);
    n = make_idx(buf, 8, 1, ldims, lab, 2);
    (gz ? write_gz : write_plain)(lp, buf, n);

    herd_error err = {0};
    uint8_t *data = NULL;
    int nd = 0;
    int64_t dims[4];
    herd_status st = herd_idx_read(ip, &data, &nd, dims, &err);
    CHECK(st == HERD_OK, "read %s: %s", ip, err.msg);
    if (st == HERD_OK) {
        CHECK(nd == 3 && dims[0] == 2 && dims[1] == 3 && dims[2] == 4, "dims %d: %lld %lld %lld", nd,
              (long long)dims[0], (long long)dims[1], (long long)dims[2]);
        CHECK(memcmp(data, pix, sizeof pix) == 0, "%s: data round-trips", ip);
    }
    free(data);

    herd_dataset *ds = NULL;
    st = herd_idx_open(&ds, ip, lp, &err);
    CHECK(st == HERD_OK, "open pair: %s", err.msg);
    if (st == HERD_OK) {
        CHECK(ds->n == 2 && sample_is(ds, HERD_U8, "1x3x4"), "n=%lld samples %s", (long long)ds->n, sample_desc(ds));
        CHECK(ds->num_classes == 8, "num_classes = max label + 1: %d", ds->num_classes);
        float x[2 * 12];
        int32_t y[2];
        int64_t idx[2] = {1, 0};
        st = herd_dataset_batch(ds, idx, 2, x, y, &err);
        CHECK(st == HERD_OK, "batch: %s", err.msg);
        CHECK(y[0] == 7 && y[1] == 3, "labels %d %d", y[0], y[1]);
        CHECK_CLOSE(x[0], pix[12] / 255.0, 1e-7, 0, "x[0] scaled");
        CHECK_CLOSE(x[12 + 5], pix[5] / 255.0, 1e-7, 0, "x[17] scaled");
        int64_t bad = 2;
        st = herd_dataset_batch(ds, &bad, 1, x, y, &err);
        CHECK(st == HERD_EARG && strstr(err.msg, ip), "out-of-range sample: %d %s", st, err.msg);

        herd_dataset *sl = NULL;
        st = herd_dataset_slice(&sl, ds, 1, 2, &err);
        CHECK(st == HERD_OK && sl->n == 1, "slice: %s", err.msg);
        if (st == HERD_OK) {
            st = get_f32(sl, 0, x, y, &err);
            CHECK(st == HERD_OK && y[0] == 7, "slice sample 0 is base sample 1: %d", y[0]);
            CHECK(get_f32(sl, 1, x, y, &err) == HERD_EARG, "slice bounds: %s", err.msg);
        }
        herd_dataset_close(sl);
        CHECK(herd_dataset_slice(&sl, ds, 1, 3, &err) == HERD_EARG, "slice past end: %s", err.msg);
    }
    herd_dataset_close(ds);
}

static void test_bad(void) {
    uint8_t buf[512], pix[64];
    memset(pix, 1, sizeof pix);
    uint32_t d3[3] = {2, 4, 4};
    size_t n;

    expect_bad(path_in("does-not-exist"), HERD_EIO, "cannot open");

    write_plain(path_in("empty"), "", 0);
    expect_bad(path_in("empty"), HERD_EFORMAT, "empty");

    n = make_idx(buf, 8, 3, d3, pix, 32);
    buf[1] = 0x42;
    write_plain(path_in("magic"), buf, n);
    expect_bad(path_in("magic"), HERD_EFORMAT, "not an IDX file");

    n = make_idx(buf, 0x0D, 3, d3, pix, 32);
    write_plain(path_in("float"), buf, n);
    expect_bad(path_in("float"), HERD_EUNSUPPORTED, "unsupported IDX data type 0x0D");

    n = make_idx(buf, 0x08, 0, d3, pix, 1);
    write_plain(path_in("ndim0"), buf, n);
    expect_bad(path_in("ndim0"), HERD_EFORMAT, "0 dimensions");

    uint32_t d5[5] = {1, 1, 1, 1, 1};
    n = make_idx(buf, 0x08, 5, d5, pix, 1);
    write_plain(path_in("ndim5"), buf, n);
    expect_bad(path_in("ndim5"), HERD_EFORMAT, "5 dimensions");

    uint32_t dz[3] = {2, 0, 4};
    n = make_idx(buf, 0x08, 3, dz, pix, 0);
    write_plain(path_in("zerodim"), buf, n);
    expect_bad(path_in("zerodim"), HERD_EFORMAT, "dimension 1 is 0");

    uint32_t dbig[4] = {0xFFFFFFFFu, 0xFFFFFFFFu, 0xFFFFFFFFu, 0xFFFFFFFFu};
    n = make_idx(buf, 0x08, 4, dbig, pix, 16);
    write_plain(path_in("overflow"), buf, n);
    expect_bad(path_in("overflow"), HERD_EFORMAT, "overflows");

    /* Large but non-overflowing dims: must be rejected by the file-size bound, not malloc'd. */
    uint32_t dhuge[3] = {0x7FFFFFFFu, 0x7FFFFFFFu, 1};
    n = make_idx(buf, 0x08, 3, dhuge, pix, 16);
    write_plain(path_in("huge"), buf, n);
    expect_bad(path_in("huge"), HERD_EFORMAT, "truncated");
    write_gz(path_in("huge.gz"), buf, n);
    expect_bad(path_in("huge.gz"), HERD_EFORMAT, "truncated");

    n = make_idx(buf, 0x08, 3, d3, pix, 31);
    write_plain(path_in("short"), buf, n);
    expect_bad(path_in("short"), HERD_EFORMAT, "truncated: expected 32 bytes of data, found 31");
    write_gz(path_in("short.gz"), buf, n);
    expect_bad(path_in("short.gz"), HERD_EFORMAT, "truncated: expected 32 bytes of data, found 31");

    n = make_idx(buf, 0x08, 3, d3, pix, 35);
    write_plain(path_in("trailing"), buf, n);
    expect_bad(path_in("trailing"), HERD_EFORMAT, "trailing");
    write_gz(path_in("trailing.gz"), buf, n);
    expect_bad(path_in("trailing.gz"), HERD_EFORMAT, "trailing");

    n = make_idx(buf, 0x08, 3, d3, pix, 2);
    write_plain(path_in("hdr-short"), buf, 7);
    expect_bad(path_in("hdr-short"), HERD_EFORMAT, "truncated");

    /* A gzip file cut short: the stream ends mid-member. */
    uint8_t big[4096];
    uint32_t dg[3] = {4, 32, 32};
    for (size_t i = 0; i < 4096; i++) big[i] = (uint8_t)(i * 2654435761u >> 13);
    {
        uint8_t whole[4096 + 16];
        size_t m = make_idx(whole, 0x08, 3, dg, big, 4096);
        write_gz(path_in("cut.gz"), whole, m);
        FILE *f = fopen(path_in("cut.gz"), "rb");
        uint8_t gzbytes[8192];
        size_t gn = fread(gzbytes, 1, sizeof gzbytes, f);
        fclose(f);
        write_plain(path_in("cut.gz"), gzbytes, gn / 2);
        expect_bad(path_in("cut.gz"), HERD_EFORMAT, "truncated gzip");
        /* Cut only the 8-byte CRC/size trailer: all data arrives, the stream is still incomplete. */
        write_plain(path_in("cut2.gz"), gzbytes, gn - 4);
        expect_bad(path_in("cut2.gz"), HERD_EFORMAT, "truncated gzip");
        /* Corrupt the deflate stream in the middle. */
        gzbytes[gn - 6] ^= 0xFF;
        write_plain(path_in("crc.gz"), gzbytes, gn);
        herd_error err = {0};
        uint8_t *data = NULL;
        int nd;
        int64_t dims[4];
        herd_status st = herd_idx_read(path_in("crc.gz"), &data, &nd, dims, &err);
        CHECK(st == HERD_EFORMAT && strstr(err.msg, path_in("crc.gz")), "corrupt gzip: %d %s", st, err.msg);
        free(data);
    }

    /* Pairing errors. */
    herd_error err = {0};
    herd_dataset *ds = NULL;
    uint32_t ld[1] = {3};
    n = make_idx(buf, 0x08, 1, ld, pix, 3);
    write_plain(path_in("lab3"), buf, n);
    n = make_idx(buf, 0x08, 3, d3, pix, 32);
    write_plain(path_in("img2"), buf, n);
    herd_status st = herd_idx_open(&ds, path_in("img2"), path_in("lab3"), &err);
    CHECK(st == HERD_EFORMAT && ds == NULL, "count mismatch status %d", st);
    CHECK(strncmp(err.msg, path_in("lab3"), strlen(path_in("lab3"))) == 0 && strstr(err.msg, "3 labels") &&
              strstr(err.msg, "2 images"),
          "count mismatch message: %s", err.msg);
    st = herd_idx_open(&ds, path_in("lab3"), path_in("lab3"), &err);
    CHECK(st == HERD_EFORMAT && strstr(err.msg, "expected 3 (N,H,W) or 4"), "1-d images file: %s", err.msg);
    st = herd_idx_open(&ds, path_in("img2"), path_in("img2"), &err);
    CHECK(st == HERD_EFORMAT && strstr(err.msg, "expected 1 (N)"), "3-d labels file: %s", err.msg);

    /* 4-d images give channels. */
    uint32_t d4[4] = {2, 2, 2, 4};
    n = make_idx(buf, 0x08, 4, d4, pix, 32);
    write_plain(path_in("img4"), buf, n);
    uint32_t l2[1] = {2};
    uint8_t labs[2] = {0, 0};
    n = make_idx(buf, 0x08, 1, l2, labs, 2);
    write_plain(path_in("lab2"), buf, n);
    st = herd_idx_open(&ds, path_in("img4"), path_in("lab2"), &err);
    CHECK(st == HERD_OK, "4-d images: %s", err.msg);
    if (st == HERD_OK) {
        CHECK(sample_is(ds, HERD_U8, "2x2x4"), "4-d samples %s", sample_desc(ds));
        CHECK(ds->num_classes == 2, "at least 2 classes: %d", ds->num_classes);
    }
    herd_dataset_close(ds);
}

static void test_data_open_dir(void) {
    herd_error err = {0};
    herd_dataset *tr = NULL, *te = NULL;
    /* A directory with plain train files and gzip test files. */
    char sub[512];
    snprintf(sub, sizeof sub, "%s/idxdir", dir);
    mkdir(sub, 0755);
    uint8_t buf[256], pix[48], lab[3] = {1, 2, 0};
    memset(pix, 200, sizeof pix);
    uint32_t id[3] = {3, 4, 4}, ld[1] = {3};
    char p[600];
    size_t n = make_idx(buf, 8, 3, id, pix, 48);
    snprintf(p, sizeof p, "%s/train-images-idx3-ubyte", sub);
    write_plain(p, buf, n);
    herd_status st = herd_data_open(sub, &tr, &te, &err);
    CHECK(st == HERD_EIO && strstr(err.msg, "train-labels-idx1-ubyte") && strncmp(err.msg, sub, strlen(sub)) == 0,
          "missing labels: %s", err.msg);
    CHECK(tr == NULL && te == NULL, "nothing left open on failure");
    snprintf(p, sizeof p, "%s/t10k-images-idx3-ubyte.gz", sub);
    write_gz(p, buf, n);
    n = make_idx(buf, 8, 1, ld, lab, 3);
    snprintf(p, sizeof p, "%s/train-labels-idx1-ubyte", sub);
    write_plain(p, buf, n);
    st = herd_data_open(sub, &tr, NULL, &err);
    CHECK(st == HERD_OK && tr && tr->n == 3, "train only: %s", err.msg);
    herd_dataset_close(tr);
    st = herd_data_open(sub, &tr, &te, &err);
    CHECK(st == HERD_EIO && strstr(err.msg, "t10k-labels-idx1-ubyte"), "missing test labels: %s", err.msg);
    snprintf(p, sizeof p, "%s/t10k-labels-idx1-ubyte.gz", sub);
    write_gz(p, buf, n);
    st = herd_data_open(sub, &tr, &te, &err);
    CHECK(st == HERD_OK && tr && te && te->n == 3 && te->x.dims[1] == 4, "train+test: %s", err.msg);
    herd_dataset_close(tr);
    herd_dataset_close(te);

    st = herd_data_open("no-such-dataset", &tr, &te, &err);
    CHECK(st == HERD_EARG && strstr(err.msg, "no-such-dataset") == err.msg && strstr(err.msg, "fashion-mnist") &&
              strstr(err.msg, "train-images-idx3-ubyte") && strstr(err.msg, "data_batch_1.bin"),
          "unknown spec lists what was looked for: %s", err.msg);
    st = herd_data_open(dir, &tr, &te, &err); /* a directory with none of the names */
    CHECK(st == HERD_EIO && strstr(err.msg, dir) == err.msg && strstr(err.msg, "neither"), "empty dir: %s", err.msg);

    /* HERD_DATA_DIR redirects the named datasets. */
    setenv("HERD_DATA_DIR", sub, 1);
    st = herd_data_open("mnist", &tr, &te, &err);
    CHECK(st == HERD_OK && tr && tr->n == 3, "HERD_DATA_DIR as the dataset dir: %s", err.msg);
    herd_dataset_close(tr);
    herd_dataset_close(te);
    setenv("HERD_DATA_DIR", dir, 1); /* dir/idxdir is not named mnist: nothing there */
    st = herd_data_open("mnist", &tr, &te, &err);
    CHECK(st == HERD_EIO && strstr(err.msg, "HERD_DATA_DIR"), "HERD_DATA_DIR without files: %s", err.msg);
    unsetenv("HERD_DATA_DIR");
}

static void test_fashion_mnist(void) {
    const char *sys = "/usr/share/datasets/fashion-mnist";
    if (access(sys, R_OK) != 0) {
        printf("SKIP: %s not installed (Debian package dataset-fashion-mnist)\n", sys);
        return;
    }
    herd_error err = {0};
    herd_dataset *tr = NULL, *te = NULL;
    herd_status st = herd_data_open("fashion-mnist", &tr, &te, &err);
    CHECK(st == HERD_OK, "fashion-mnist: %s", err.msg);
    if (st != HERD_OK) return;
    CHECK(tr->n == 60000 && te->n == 10000, "sizes %lld %lld", (long long)tr->n, (long long)te->n);
    CHECK(sample_is(tr, HERD_U8, "1x28x28"), "samples %s", sample_desc(tr));
    CHECK(tr->num_classes == 10 && te->num_classes == 10, "classes %d %d", tr->num_classes, te->num_classes);
    float x[784];
    int32_t y = -1;
    st = get_f32(tr, 0, x, &y, &err);
    CHECK(st == HERD_OK && y == 9, "first train label %d (Fashion-MNIST: 9, ankle boot)", y);
    float lo = 1, hi = 0;
    for (int i = 0; i < 784; i++) {
        if (x[i] < lo) lo = x[i];
        if (x[i] > hi) hi = x[i];
    }
    CHECK(lo >= 0 && hi <= 1 && hi > 0.5f, "pixels in [0,1]: min %g max %g", lo, hi);
    herd_dataset_close(tr);
    herd_dataset_close(te);
}

int main(void) {
    snprintf(dir, sizeof dir, "/tmp/herd_idx_XXXXXX");
    if (!mkdtemp(dir)) {
        perror("mkdtemp");
        return 2;
    }
    test_good(0);
    test_good(1);
    test_bad();
    test_data_open_dir();
    test_fashion_mnist();
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", dir);
    return check_summary();
}
