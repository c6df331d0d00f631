/* Image folder reader: classes and files sorted, PNG (RGB, gray) and JPEG decoding, channel
 * conversion, scale-and-center-crop, --data with and without train/test; and damaged images
 * giving one-line errors naming the file. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "check.h"
#include "sample_check.h"
#include "herd/data.h"
#include "image_files.h"

static char dir[64];

static void put(const char *rel, const unsigned char *data, size_t n) {
    char p[256];
    snprintf(p, sizeof p, "%s/%s", dir, rel);
    for (char *s = strchr(p + strlen(dir) + 1, '/'); s; s = strchr(s + 1, '/')) {
        *s = 0;
        mkdir(p, 0755);
        *s = '/';
    }
    if (!test_write_file(p, data, n)) exit(2);
}

static void put_png(const char *rel, const unsigned char *pix, int w, int h, int c) {
    unsigned char *b;
    size_t n;
    if (!test_png(pix, w, h, c, &b, &n)) exit(2);
    put(rel, b, n);
    free(b);
}

static void put_jpeg(const char *rel, const unsigned char *pix, int w, int h, int c) {
    unsigned char *b;
    size_t n;
    if (!test_jpeg(pix, w, h, c, 95, &b, &n)) exit(2);
    put(rel, b, n);
    free(b);
}

static herd_status open_root(herd_dataset **ds, const char *rel, int c, int h, int w, herd_error *err) {
    char p[256];
    snprintf(p, sizeof p, "%s/%s", dir, rel);
    herd_image_options o = {.c = c, .h = h, .w = w};
    return herd_imagefolder_open(ds, p, &o, err);
}

int main(void) {
    snprintf(dir, sizeof dir, "/tmp/herd_imgf_XXXXXX");
    if (!mkdtemp(dir)) return 2;
    herd_error err = {0};
    herd_dataset *ds = NULL;
    unsigned char rgb[4 * 4 * 3], gray[4 * 8], dark[16], light[16];
    for (int i = 0; i < 48; i++) rgb[i] = (unsigned char)(i * 5);
    for (int i = 0; i < 32; i++) gray[i] = (unsigned char)(i * 7);
    memset(dark, 20, sizeof dark);
    memset(light, 230, sizeof light);

    /* classes sorted by name: a_cat = 0, b_dog = 1, c_empty = 2 (empty, still a class) */
    put_png("train/b_dog/2.png", rgb, 4, 4, 3);
    put_png("train/b_dog/1.png", gray, 4, 8, 1); /* 4 wide, 8 tall */
    put_jpeg("train/a_cat/x.JPG", dark, 4, 4, 1);
    put_jpeg("train/a_cat/y.jpeg", light, 4, 4, 1);
    put("train/a_cat/notes.txt", (const unsigned char *)"ignored", 7);
    put("train/a_cat/.hidden.png", (const unsigned char *)"ignored", 7);
    char empty[256];
    snprintf(empty, sizeof empty, "%s/train/c_empty", dir);
    mkdir(empty, 0755);
    put_png("test/a_cat/t.png", dark, 4, 4, 1);
    put_png("test/b_dog/t.png", light, 4, 4, 1);

    herd_status st = open_root(&ds, "train", 3, 4, 4, &err);
    CHECK(st == HERD_OK && ds->n == 4 && ds->num_classes == 3 && sample_is(ds, HERD_U8, "3x4x4"),
          "train folder: %s", err.msg);
    if (st == HERD_OK) {
        float x[48];
        int32_t y;
        const int32_t labels[4] = {0, 0, 1, 1};
        for (int i = 0; i < 4; i++)
            CHECK(get_f32(ds, i, x, &y, &err) == HERD_OK && y == labels[i], "sample %d: label %d %s", i, y,
                  err.msg);
        /* x.JPG (dark) comes before y.jpeg (light): files sorted within a class */
        CHECK(get_f32(ds, 0, x, &y, &err) == HERD_OK && x[0] < 0.15f && x[16] == x[0], "x.JPG first, gray->RGB");
        CHECK(get_f32(ds, 1, x, &y, &err) == HERD_OK && x[0] > 0.85f, "y.jpeg second");
        /* 1.png: 4x8 gray, covers 4x4 at scale 1, center crop keeps rows 2..5 exactly */
        CHECK(get_f32(ds, 2, x, &y, &err) == HERD_OK, "1.png: %s", err.msg);
        int same = 1;
        for (int r = 0; r < 4; r++)
            for (int c = 0; c < 4; c++) same &= x[r * 4 + c] == gray[(r + 2) * 4 + c] / 255.0f && x[32 + r * 4 + c] == x[r * 4 + c];
        CHECK(same, "center crop of a tall image: x[0]=%g want %g", x[0], gray[8] / 255.0f);
        /* 2.png: RGB at its own size, exact */
        CHECK(get_f32(ds, 3, x, &y, &err) == HERD_OK, "2.png: %s", err.msg);
        same = 1;
        for (int c = 0; c < 3; c++)
            for (int i = 0; i < 16; i++) same &= x[c * 16 + i] == rgb[i * 3 + c] / 255.0f;
        CHECK(same, "RGB PNG exact");
    }
    herd_dataset_close(ds);

    /* no model shape: the first image decides (x.JPG: 1x4x4); a 2x2 model scales down */
    st = open_root(&ds, "train", 0, 0, 0, &err);
    CHECK(st == HERD_OK && sample_is(ds, HERD_U8, "1x4x4"), "shape from the first image: %s", err.msg);
    herd_dataset_close(ds);
    st = open_root(&ds, "train", 1, 2, 2, &err);
    if (st == HERD_OK) {
        float x[4];
        int32_t y;
        CHECK(get_f32(ds, 3, x, &y, &err) == HERD_OK, "scaled: %s", err.msg);
        float luma = 0.299f * rgb[0] + 0.587f * rgb[1] + 0.114f * rgb[2];
        CHECK(x[0] > luma / 255.0f && x[0] < x[3], "2x2 average of the top-left block: %g", x[0]);
    }
    herd_dataset_close(ds);
    st = open_root(&ds, "train", 2, 4, 4, &err);
    CHECK(st == HERD_EARG && strstr(err.msg, "1 or 3 channels"), "2 channels: %s", err.msg);

    /* --data: DIR with train/ and test/, and DIR of class folders */
    herd_dataset *tr = NULL, *te = NULL;
    herd_image_options o = {.c = 1, .h = 4, .w = 4};
    st = herd_data_open_with(dir, &o, &tr, &te, &err);
    CHECK(st == HERD_OK && tr && tr->n == 4 && te && te->n == 2 && te->x.dims[0] == 1, "train/ + test/: %s", err.msg);
    herd_dataset_close(tr);
    herd_dataset_close(te);
    char root[256];
    snprintf(root, sizeof root, "%s/test", dir);
    st = herd_data_open(root, &tr, &te, &err);
    CHECK(st == HERD_OK && tr && tr->n == 2 && !te, "class folders directly: %s", err.msg);
    herd_dataset_close(tr);

    /* damaged images: open lists, get() fails naming the file */
    unsigned char *png;
    size_t n;
    test_png(rgb, 4, 4, 3, &png, &n);
    png[n - 20] ^= 0xFF;
    put("bad/a/1.png", png, n);
    put("bad/a/2.png", png, n / 2);
    put("bad/a/3.png", (const unsigned char *)"not an image", 12);
    free(png);
    test_jpeg(rgb, 4, 4, 3, 90, &png, &n);
    put("bad/b/1.jpg", png, n - 10);
    memset(png + 2, 0, 20); /* JPEG has no checksums: damage the markers, not the entropy data */
    put("bad/b/2.jpg", png, n);
    free(png);
    st = open_root(&ds, "bad", 3, 4, 4, &err);
    CHECK(st == HERD_OK && ds->n == 5, "bad folder lists: %s", err.msg);
    const char *files[5] = {"a/1.png", "a/2.png", "a/3.png", "b/1.jpg", "b/2.jpg"};
    const char *want[5] = {"bad PNG", "bad PNG", "neither a PNG nor a JPEG", "bad JPEG", "bad JPEG"};
    for (int i = 0; st == HERD_OK && i < 5; i++) {
        float x[48];
        int32_t y;
        char p[256];
        snprintf(p, sizeof p, "%s/bad/%s: ", dir, files[i]);
        herd_status g = get_f32(ds, i, x, &y, &err);
        CHECK(g == HERD_EFORMAT && strncmp(err.msg, p, strlen(p)) == 0 && strstr(err.msg, want[i]) &&
                  !strchr(err.msg, '\n'),
              "%s: %s", files[i], err.msg);
    }
    herd_dataset_close(ds);
    st = open_root(&ds, "bad", 0, 0, 0, &err);
    CHECK(st == HERD_EFORMAT && strstr(err.msg, "/bad/a/1.png: bad PNG"), "first image decides the shape: %s", err.msg);
    st = open_root(&ds, "train/c_empty", 1, 4, 4, &err);
    CHECK(st == HERD_EFORMAT && strstr(err.msg, "no class folders"), "no classes: %s", err.msg);
    put("noimg/a/readme.txt", (const unsigned char *)"x", 1);
    st = open_root(&ds, "noimg", 1, 4, 4, &err);
    CHECK(st == HERD_EFORMAT && strstr(err.msg, "no .png/.jpg/.jpeg images"), "no images: %s", err.msg);
    st = open_root(&ds, "missing", 1, 4, 4, &err);
    CHECK(st == HERD_EIO && strstr(err.msg, "/missing: cannot open directory"), "missing root: %s", err.msg);

    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", dir);
    return check_summary();
}
