/* Partial JPEG decoding for a window of the sample (data/image_decode.h,
 * herd_image_decode_window_to_u8, what the loader uses for random_resized_crop): the window's
 * pixels are bit for bit those of the whole decode + resize, and a partial decode writes nothing
 * outside the window. Photo-like JPEGs (4:2:0 chroma, as most cameras write; also progressive
 * and 4:4:4 ones) at sizes that shrink, decode reduced in the DCT, enlarge, pass unchanged, odd
 * sizes, and gray/RGB mismatches (converted whole); windows drawn as random_resized_crop draws
 * its boxes, plus edges and the whole sample. With a directory argument, its .jpg/.jpeg files
 * (200 a folder at most) are checked too (bench/images224's photos). */
#include <dirent.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "check.h"
#include "data/augment.h"
#include "data/image_decode.h"
#include "image_files.h"

enum { SH = 224, SW = 224 };
#define SENTINEL 0xA5

static int checked;

/* smooth gradients, hard-edged discs, stripes and noise */
static unsigned char *photo(int w, int h, int c, unsigned seed) {
    unsigned char *p = malloc((size_t)w * h * c);
    srand(seed);
    int cx = rand() % w, cy = rand() % h, rad = 10 + rand() % (w < h ? w / 2 : h / 2);
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++)
            for (int k = 0; k < c; k++) {
                double v = 128 + 60 * sin(x * (0.01 + 0.007 * k) + y * 0.013) + ((x / 2) % 2 && y < h / 3 ? 50 : 0);
                if ((x - cx) * (x - cx) + (y - cy) * (y - cy) < rad * rad) v = 40 + 70 * k;
                v += rand() % 17 - 8;
                p[((size_t)y * w + x) * c + k] = (unsigned char)(v < 0 ? 0 : v > 255 ? 255 : v);
            }
    return p;
}

/* Each window of the sample from one encoded image against the whole decode. */
static void check_windows(const unsigned char *jpg, size_t len, int c, int partial, const char *what) {
    size_t n = (size_t)c * SH * SW;
    uint8_t *ref = malloc(n), *got = malloc(n);
    herd_error err = {0};
    CHECK(herd_image_decode_to_u8(jpg, len, what, c, SH, SW, ref, &err) == HERD_OK, "%s: %s", what, err.msg);
    const float scale[2] = {0.08f, 1.0f}, ratio[2] = {3.0f / 4, 4.0f / 3};
    for (int t = 0; t < 24; t++) {
        int win[4] = {0, 0, SH, SW};
        if (t == 1) win[0] = SH - 5, win[2] = 5;             /* the last rows */
        else if (t == 2) win[1] = SW - 3, win[3] = 3;        /* the last columns */
        else if (t == 3) win[0] = 100, win[1] = 37, win[2] = win[3] = 1; /* one pixel */
        else if (t > 3) {
            herd_rng r;
            herd_rng_init(&r, 11, (uint64_t)t);
            herd_augment_rrc_box(&r, SH, SW, scale, ratio, win);
        }
        /* first with every byte checked, then as a later epoch would (the tail known sound) */
        for (int vouched = 0; vouched < 2; vouched++) {
            int sound = vouched;
            memset(got, SENTINEL, n);
            CHECK(herd_image_decode_window_to_u8(jpg, len, what, c, SH, SW, win, &sound, got, &err) == HERD_OK,
                  "%s: %s", what, err.msg);
            CHECK(vouched || sound, "%s: a decode that checked every byte did not say so", what);
            int bad = 0, outside = 0;
            for (int k = 0; k < c; k++)
                for (int y = 0; y < SH; y++)
                    for (int x = 0; x < SW; x++) {
                        size_t o = ((size_t)k * SH + y) * SW + x;
                        int in = y >= win[0] && y < win[0] + win[2] && x >= win[1] && x < win[1] + win[3];
                        if (in) bad += got[o] != ref[o];
                        else outside += partial && got[o] != SENTINEL;
                    }
            CHECK(bad == 0 && outside == 0, "%s%s: window %d,%d %dx%d: %d pixels differ from the whole decode, %d "
                  "written outside", what, vouched ? " (tail vouched for)" : "", win[0], win[1], win[2], win[3], bad,
                  outside);
            checked++;
        }
    }
    free(ref);
    free(got);
}

static void synthetic(void) {
    /* w, h, channels encoded, channels wanted, progressive, 4:4:4 chroma */
    const int cases[][6] = {{500, 375, 3, 3, 0, 0}, {333, 500, 3, 3, 0, 0}, {1344, 1000, 3, 3, 0, 0},
                            {500, 460, 3, 3, 0, 0}, {257, 259, 3, 3, 0, 0}, {224, 224, 3, 3, 0, 0},
                            {180, 120, 3, 3, 0, 0}, {2100, 1500, 3, 3, 0, 0}, {640, 480, 1, 1, 0, 0},
                            {640, 480, 1, 3, 0, 0}, {400, 300, 3, 1, 0, 0}, {470, 350, 3, 3, 1, 0},
                            {1000, 700, 3, 3, 1, 0}, {450, 330, 3, 3, 0, 1}, {900, 999, 3, 3, 1, 1}};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        int w = cases[i][0], h = cases[i][1], ce = cases[i][2], c = cases[i][3];
        unsigned char *pix = photo(w, h, ce, (unsigned)i + 1), *jpg = NULL;
        size_t len = 0;
        CHECK(test_jpeg_with(pix, w, h, ce, 90, cases[i][4], cases[i][5], &jpg, &len), "encoding %dx%d", w, h);
        char what[96];
        snprintf(what, sizeof what, "%dx%dx%d%s%s as %d channels", w, h, ce, cases[i][4] ? " progressive" : "",
                 cases[i][5] ? " 4:4:4" : "", c);
        check_windows(jpg, len, c, ce == c, what);
        free(pix);
        free(jpg);
    }
}

/* A JPEG whose data below its first rows is cut short (the rest of the file's bytes are EOI
 * markers: same size): corrupt, found by the whole decode and by a window's first decode; a
 * window at the top skips the tail once the file has been found sound, so through an image
 * folder the skip holds only while the file keeps the size and time it had when checked. */
static void corrupt_tail(void) {
    int w = 400, h = 300;
    unsigned char *pix = photo(w, h, 3, 77), *jpg = NULL;
    size_t len = 0;
    CHECK(test_jpeg_with(pix, w, h, 3, 90, 0, 0, &jpg, &len), "encoding");
    unsigned char *bad = malloc(len);
    memcpy(bad, jpg, len);
    for (size_t i = len * 6 / 10; i + 1 < len; i += 2) bad[i] = 0xFF, bad[i + 1] = 0xD9;
    size_t n = 3 * SH * SW;
    uint8_t *out = malloc(n);
    herd_error err = {0};
    const int top[4] = {0, 0, 40, 224};
    int sound = 0;
    CHECK(herd_image_decode_to_u8(bad, len, "cut.jpg", 3, SH, SW, out, &err) != HERD_OK, "a cut JPEG decoded whole");
    CHECK(herd_image_decode_window_to_u8(bad, len, "cut.jpg", 3, SH, SW, top, &sound, out, &err) != HERD_OK,
          "a cut JPEG's window decoded without its tail vouched for");
    CHECK(strstr(err.msg, "cut.jpg") != NULL, "the error names the file: %s", err.msg);
    sound = 1;
    CHECK(herd_image_decode_window_to_u8(bad, len, "cut.jpg", 3, SH, SW, top, &sound, out, &err) == HERD_OK,
          "the top window of a cut JPEG with the tail vouched for: %s", err.msg);
    CHECK(!sound, "a decode that skipped the tail said it checked every byte");

    /* through an image folder: checked on first use, skipped after, checked again once changed */
    char root[] = "/tmp/herd_window_XXXXXX", path[256];
    CHECK(mkdtemp(root) != NULL, "mkdtemp");
    snprintf(path, sizeof path, "%s/cls", root);
    mkdir(path, 0755);
    snprintf(path, sizeof path, "%s/cls/a.jpg", root);
    FILE *f = fopen(path, "wb");
    fwrite(jpg, 1, len, f);
    fclose(f);
    herd_dataset *ds = NULL;
    herd_image_options opt = {.c = 3, .h = SH, .w = SW};
    CHECK(herd_imagefolder_open(&ds, root, &opt, &err) == HERD_OK, "open: %s", err.msg);
    int32_t y;
    struct stat sb;
    stat(path, &sb);
    CHECK(ds->ops->get_window(ds, 0, top, out, &y, &err) == HERD_OK, "first window: %s", err.msg);
    f = fopen(path, "wb"); /* the file corrupted, its size and time as they were */
    fwrite(bad, 1, len, f);
    fclose(f);
    struct timespec times[2] = {sb.st_atim, sb.st_mtim};
    utimensat(AT_FDCWD, path, times, 0);
    CHECK(ds->ops->get_window(ds, 0, top, out, &y, &err) == HERD_OK, "a window of a file found sound skips its tail: "
          "%s", err.msg);
    times[1].tv_sec -= 10;
    utimensat(AT_FDCWD, path, times, 0);
    CHECK(ds->ops->get_window(ds, 0, top, out, &y, &err) != HERD_OK, "a file changed since it was found sound was "
          "not checked again");
    CHECK(strstr(err.msg, "a.jpg") != NULL, "the error names the file: %s", err.msg);
    herd_dataset_close(ds);
    unlink(path);
    snprintf(path, sizeof path, "%s/cls", root);
    rmdir(path);
    rmdir(root);
    free(out);
    free(bad);
    free(jpg);
    free(pix);
}

static void folder(const char *dir) {
    DIR *d = opendir(dir);
    CHECK(d != NULL, "%s: cannot open", dir);
    if (!d) return;
    struct dirent *e;
    char path[4096];
    int files = 0;
    while ((e = readdir(d)) && files < 200) {
        if (e->d_name[0] == '.') continue;
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        const char *dot = strrchr(e->d_name, '.');
        if (!dot || (strcasecmp(dot, ".jpg") && strcasecmp(dot, ".jpeg"))) {
            folder(path); /* class folders */
            continue;
        }
        FILE *f = fopen(path, "rb");
        if (!f) continue;
        static unsigned char buf[1 << 22];
        size_t len = fread(buf, 1, sizeof buf, f);
        fclose(f);
        check_windows(buf, len, 3, 1, path);
        files++;
    }
    closedir(d);
}

int main(int argc, char **argv) {
    synthetic();
    corrupt_tail();
    if (argc > 1) folder(argv[1]);
    printf("%d windows checked\n", checked);
    return check_summary();
}
