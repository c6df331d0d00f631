/* TFRecord reader: CRC-32C known answers, the protobuf decoder's bounds, Examples with raw,
 * PNG, JPEG and float features (packed and not), shards and the --data conventions; and each
 * kind of bad file with a one-line error naming the file and the record. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "sample_check.h"
#include "herd/data.h"
#include "image_files.h"
#include "tfrecord_write.h"

static char dir[64], path[256];

static FILE *create(const char *name) {
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "wb");
    if (!f) exit(2);
    return f;
}

/* A record whose image is raw HWC bytes; with_shape adds height/width/channels. */
static void raw_example(pbuf *ex, const uint8_t *pix, int h, int w, int c, int64_t label, int with_shape, int packed) {
    static pbuf feats;
    feats.n = 0;
    ex_bytes(&feats, "image", pix, (size_t)h * w * c);
    ex_int64(&feats, "label", label, packed);
    if (with_shape) {
        ex_int64(&feats, "height", h, 0);
        ex_int64(&feats, "width", w, 1);
        ex_int64(&feats, "channels", c, 0);
    }
    ex_finish(ex, &feats);
}

static herd_status open_one(herd_dataset **ds, const char *file, int c, int h, int w, const char *image,
                            const char *label, herd_error *err) {
    char p[256];
    snprintf(p, sizeof p, "%s/%s", dir, file);
    const char *paths[1] = {p};
    herd_image_options o = {.c = c, .h = h, .w = w, .image_key = image, .label_key = label};
    return herd_tfrecord_open(ds, paths, 1, &o, err);
}

/* Opening must fail (or, at_get, get(at_get - 1) must) with one line naming file and want. */
static void expect_error(const char *file, int c, int h, int w, int at_get, const char *want) {
    herd_dataset *ds = NULL;
    herd_error err = {0};
    char p[256];
    snprintf(p, sizeof p, "%s/%s: ", dir, file);
    herd_status st = open_one(&ds, file, c, h, w, NULL, NULL, &err);
    if (at_get) {
        CHECK(st == HERD_OK, "%s should open: %s", file, err.msg);
        if (st == HERD_OK) {
            float x[64];
            int32_t y;
            st = get_f32(ds, at_get - 1, x, &y, &err);
        }
    }
    CHECK(st != HERD_OK, "%s accepted (%s)", file, want);
    CHECK(strncmp(err.msg, p, strlen(p)) == 0 && strstr(err.msg, want) && !strchr(err.msg, '\n'),
          "message '%s' should start '%s' and say '%s'", err.msg, p, want);
    herd_dataset_close(ds);
}

static void test_crc(void) {
    CHECK(herd_crc32c(0, "123456789", 9) == 0xE3069283u, "crc32c(123456789) = %08x", herd_crc32c(0, "123456789", 9));
    CHECK(herd_crc32c(herd_crc32c(0, "1234", 4), "56789", 5) == 0xE3069283u, "crc32c continues");
    CHECK(herd_crc32c(0, "", 0) == 0, "crc32c of nothing");
    uint8_t zeros[32] = {0};
    CHECK(herd_crc32c(0, zeros, 32) == 0x8A9136AAu, "crc32c of 32 zero bytes (RFC 3720)");

    /* the protobuf wire decoder itself is tested in test_pb_wire.c */
}

int main(void) {
    snprintf(dir, sizeof dir, "/tmp/herd_tfr_XXXXXX");
    if (!mkdtemp(dir)) return 2;
    test_crc();
    herd_error err = {0};
    herd_dataset *ds = NULL;
    static pbuf ex, feats;

    /* raw HWC bytes: 2x2 RGB and labels 0..2 */
    uint8_t rgb[3][12];
    for (int r = 0; r < 3; r++)
        for (int k = 0; k < 12; k++) rgb[r][k] = (uint8_t)(20 * r + k);
    FILE *f = create("raw.tfrecord");
    for (int r = 0; r < 3; r++) {
        raw_example(&ex, rgb[r], 2, 2, 3, r, 1, r % 2);
        tfr_write(f, ex.b, ex.n);
    }
    fclose(f);
    herd_status st = open_one(&ds, "raw.tfrecord", 0, 0, 0, NULL, NULL, &err);
    CHECK(st == HERD_OK && ds->n == 3 && sample_is(ds, HERD_U8, "3x2x2") && ds->num_classes == 3,
          "raw with shape features: %s %s", err.msg, sample_desc(ds));
    if (st == HERD_OK) {
        float x[12];
        int32_t y;
        CHECK(get_f32(ds, 2, x, &y, &err) == HERD_OK && y == 2, "get raw: %s", err.msg);
        /* HWC bytes come out NCHW: channel 1 of pixel (0,1) is byte (0*2+1)*3+1 */
        CHECK(x[1 * 4 + 1] == rgb[2][4] / 255.0f && x[0] == rgb[2][0] / 255.0f, "raw HWC -> CHW: %g", x[5]);
    }
    herd_dataset_close(ds);
    st = open_one(&ds, "raw.tfrecord", 1, 2, 2, NULL, NULL, &err);
    if (st == HERD_OK) {
        float x[4];
        int32_t y;
        CHECK(get_f32(ds, 0, x, &y, &err) == HERD_OK, "raw to gray: %s", err.msg);
        /* luma rounded to the nearest 8-bit level (u8 samples, as PIL's convert('L')) */
        float luma = floorf(0.299f * rgb[0][0] + 0.587f * rgb[0][1] + 0.114f * rgb[0][2] + 0.5f) / 255.0f;
        CHECK(x[0] == luma, "RGB -> gray: %.9g, expected %.9g", x[0], luma);
        CHECK(sample_is(ds, HERD_U8, "1x2x2"), "raw into a 1x2x2 model: samples %s", sample_desc(ds));
    }
    CHECK(st == HERD_OK, "raw into a 1x2x2 model: %s", err.msg);
    herd_dataset_close(ds);

    /* float features, packed and unpacked, under other names */
    f = create("floats.tfrecord");
    float v[2][3] = {{1, -2, 3.5f}, {4, 5, 6}};
    for (int r = 0; r < 2; r++) {
        feats.n = 0;
        ex_floats(&feats, "feat", v[r], 3, r);
        ex_int64(&feats, "cls", 4 * r, 0);
        ex_finish(&ex, &feats);
        tfr_write(f, ex.b, ex.n);
    }
    fclose(f);
    st = open_one(&ds, "floats.tfrecord", 0, 0, 0, "feat", "cls", &err);
    CHECK(st == HERD_OK && sample_is(ds, HERD_F32, "3") && ds->num_classes == 5, "floats: %s %s", err.msg,
          sample_desc(ds));
    if (st == HERD_OK) {
        float x[3];
        int32_t y;
        for (int r = 0; r < 2; r++)
            CHECK(get_f32(ds, r, x, &y, &err) == HERD_OK && x[0] == v[r][0] && x[2] == v[r][2] && y == 4 * r,
                  "float record %d: %s", r, err.msg);
    }
    herd_dataset_close(ds);
    st = open_one(&ds, "floats.tfrecord", 3, 1, 1, "feat", "cls", &err); /* floats in a model's input shape */
    CHECK(st == HERD_OK && sample_is(ds, HERD_F32, "3x1x1"), "floats, model 3x1x1: %s %s", err.msg, sample_desc(ds));
    herd_dataset_close(ds);
    expect_error("floats.tfrecord", 1, 2, 2, 0, "missing feature 'label'");
    /* record 0 decides the dtype: a float record among images is named */
    f = create("mixed.tfrecord");
    raw_example(&ex, rgb[0], 2, 2, 3, 0, 1, 0);
    tfr_write(f, ex.b, ex.n);
    feats.n = 0;
    ex_floats(&feats, "image", v[0], 3, 0);
    ex_int64(&feats, "label", 1, 0);
    ex_finish(&ex, &feats);
    tfr_write(f, ex.b, ex.n);
    fclose(f);
    st = open_one(&ds, "mixed.tfrecord", 0, 0, 0, NULL, NULL, &err);
    CHECK(st == HERD_OK && sample_is(ds, HERD_U8, "3x2x2"), "mixed: %s", err.msg);
    if (st == HERD_OK) {
        float x[12];
        int32_t y;
        st = get_f32(ds, 1, x, &y, &err);
        CHECK(st == HERD_EFORMAT && strstr(err.msg, "mixed.tfrecord: record 1: feature 'image' is a float_list but "
                                                    "record 0's is a bytes_list"),
              "a float record after an image: %s", err.msg);
    }
    herd_dataset_close(ds);

    /* PNG (RGB) and JPEG (gray) encoded images */
    uint8_t pix[4 * 4 * 3], gray[16];
    for (int i = 0; i < 48; i++) pix[i] = (uint8_t)(i * 5);
    for (int i = 0; i < 16; i++) gray[i] = (uint8_t)(i < 8 ? 30 : 220);
    unsigned char *png = NULL, *jpg = NULL;
    size_t png_len = 0, jpg_len = 0;
    CHECK(test_png(pix, 4, 4, 3, &png, &png_len) && test_jpeg(gray, 4, 4, 1, 95, &jpg, &jpg_len), "encode");
    f = create("enc.tfrecord");
    feats.n = 0;
    ex_bytes(&feats, "image", png, png_len);
    ex_int64(&feats, "label", 1, 0);
    ex_finish(&ex, &feats);
    tfr_write(f, ex.b, ex.n);
    feats.n = 0;
    ex_int64(&feats, "label", 0, 1);
    ex_bytes(&feats, "image", jpg, jpg_len);
    ex_finish(&ex, &feats);
    tfr_write(f, ex.b, ex.n);
    fclose(f);
    st = open_one(&ds, "enc.tfrecord", 0, 0, 0, NULL, NULL, &err);
    CHECK(st == HERD_OK && sample_is(ds, HERD_U8, "3x4x4"), "shape from the first PNG: %s %s", err.msg,
          sample_desc(ds));
    if (st == HERD_OK) {
        float x[48];
        int32_t y;
        CHECK(get_f32(ds, 0, x, &y, &err) == HERD_OK && y == 1, "png get: %s", err.msg);
        int same = 1;
        for (int c = 0; c < 3; c++)
            for (int i = 0; i < 16; i++) same &= x[c * 16 + i] == pix[i * 3 + c] / 255.0f;
        CHECK(same, "PNG decoded exactly at its own size");
        CHECK(get_f32(ds, 1, x, &y, &err) == HERD_OK && y == 0, "jpeg get: %s", err.msg);
        CHECK(x[0] < 0.25f && x[15] > 0.75f && x[0 + 16] == x[0], "gray JPEG replicated to RGB: %g %g", x[0], x[15]);
    }
    herd_dataset_close(ds);
    st = open_one(&ds, "enc.tfrecord", 1, 2, 2, NULL, NULL, &err);
    if (st == HERD_OK) {
        float x[4];
        int32_t y;
        CHECK(get_f32(ds, 1, x, &y, &err) == HERD_OK, "jpeg scaled: %s", err.msg);
        CHECK(x[0] < 0.25f && x[3] > 0.75f, "4x4 -> 2x2 keeps the halves: %g %g", x[0], x[3]);
    }
    herd_dataset_close(ds);

    /* get_window (random_resized_crop's partial decoding): an RGB JPEG photo of 90x70 as a
     * 3x32x40 sample; each window's pixels as get() makes them, and nothing written outside */
    enum { PW = 90, PH = 70, SC = 3, SH2 = 32, SW2 = 40 };
    static uint8_t photo[PW * PH * 3];
    for (int i = 0; i < PW * PH * 3; i++) photo[i] = (uint8_t)((i / 3 % PW) * 2 + (i / 3 / PW) * 3 + (i % 3) * 40 + i % 7);
    unsigned char *pj = NULL;
    size_t pj_len = 0;
    CHECK(test_jpeg(photo, PW, PH, 3, 90, &pj, &pj_len), "encode the photo");
    f = create("photo.tfrecord");
    feats.n = 0;
    ex_bytes(&feats, "image", pj, pj_len);
    ex_int64(&feats, "label", 2, 0);
    ex_finish(&ex, &feats);
    tfr_write(f, ex.b, ex.n);
    fclose(f);
    free(pj);
    st = open_one(&ds, "photo.tfrecord", SC, SH2, SW2, NULL, NULL, &err);
    CHECK(st == HERD_OK && ds->ops->get_window, "photo.tfrecord: %s", err.msg);
    if (st == HERD_OK && ds->ops->get_window) {
        static uint8_t whole[SC * SH2 * SW2], part[SC * SH2 * SW2];
        int32_t y;
        /* get() finds the record sound, so the windows below skip its rows under them */
        CHECK(ds->ops->get(ds, 0, whole, &y, &err) == HERD_OK, "photo get: %s", err.msg);
        const int wins[4][4] = {{0, 0, 8, 8}, {5, 7, 20, 13}, {24, 30, 8, 10}, {0, 0, SH2, SW2}};
        for (int k = 0; k < 4; k++) {
            const int *wn = wins[k];
            memset(part, 0xA5, sizeof part);
            CHECK(ds->ops->get_window(ds, 0, wn, part, &y, &err) == HERD_OK && y == 2, "window %d: %s", k, err.msg);
            int same = 1, untouched = 1;
            for (int c = 0; c < SC; c++)
                for (int r = 0; r < SH2; r++)
                    for (int q = 0; q < SW2; q++) {
                        size_t o = ((size_t)c * SH2 + r) * SW2 + q;
                        if (r >= wn[0] && r < wn[0] + wn[2] && q >= wn[1] && q < wn[1] + wn[3]) same &= part[o] == whole[o];
                        else untouched &= part[o] == 0xA5;
                    }
            CHECK(same && untouched, "window %d of the JPEG record: same pixels %d, outside untouched %d", k, same,
                  untouched);
        }
    }
    herd_dataset_close(ds);

    /* --data: a glob and a comma list of shards; train-* finds test-* */
    char spec[600];
    f = create("train-0.tfrecord");
    raw_example(&ex, rgb[0], 2, 2, 3, 1, 1, 0);
    tfr_write(f, ex.b, ex.n);
    fclose(f);
    f = create("train-1.tfrecord");
    raw_example(&ex, rgb[1], 2, 2, 3, 0, 1, 0);
    tfr_write(f, ex.b, ex.n);
    tfr_write(f, ex.b, ex.n);
    fclose(f);
    herd_dataset *tr = NULL, *te = NULL;
    snprintf(spec, sizeof spec, "%s/train-*.tfrecord", dir);
    st = herd_data_open(spec, &tr, &te, &err);
    CHECK(st == HERD_OK && tr && tr->n == 3 && !te && strstr(tr->source, "(+1 more)"), "glob of shards: %s", err.msg);
    herd_dataset_close(tr);
    f = create("test-0.tfrecord");
    tfr_write(f, ex.b, ex.n);
    fclose(f);
    st = herd_data_open(spec, &tr, &te, &err);
    CHECK(st == HERD_OK && tr && te && te->n == 1, "glob finds test-*: %s", err.msg);
    herd_dataset_close(tr);
    herd_dataset_close(te);
    snprintf(spec, sizeof spec, "%s/train-1.tfrecord,%s/raw.tfrecord", dir, dir);
    st = herd_data_open(spec, &tr, NULL, &err);
    CHECK(st == HERD_OK && tr && tr->n == 5, "comma list: %s", err.msg);
    herd_dataset_close(tr);
    snprintf(spec, sizeof spec, "%s/floats.tfrecord?image=feat&label=cls", dir);
    st = herd_data_open(spec, &tr, NULL, &err);
    CHECK(st == HERD_OK && sample_is(tr, HERD_F32, "3"), "?image=&label=: %s", err.msg);
    herd_dataset_close(tr);
    snprintf(spec, sizeof spec, "%s/none-*.tfrecord", dir);
    st = herd_data_open(spec, &tr, NULL, &err);
    CHECK(st == HERD_EIO && strstr(err.msg, "none-*.tfrecord: cannot open"), "glob matching nothing: %s", err.msg);

    /* damaged framing: each a copy of raw.tfrecord (records of equal length) with one defect */
    FILE *in = fopen((snprintf(path, sizeof path, "%s/raw.tfrecord", dir), path), "rb");
    static uint8_t good[4096];
    size_t n = fread(good, 1, sizeof good, in);
    fclose(in);
    size_t rec = n / 3; /* bytes per record */
    static uint8_t bad[4096];
    memcpy(bad, good, n);
    bad[rec + 2] ^= 1; /* record 1's length */
    f = create("lencrc.tfrecord");
    fwrite(bad, 1, n, f);
    fclose(f);
    expect_error("lencrc.tfrecord", 0, 0, 0, 0, "record 1: length CRC mismatch");
    memcpy(bad, good, n);
    bad[2 * rec + 20] ^= 0x40; /* record 2's data */
    f = create("datacrc.tfrecord");
    fwrite(bad, 1, n, f);
    fclose(f);
    expect_error("datacrc.tfrecord", 0, 0, 0, 0, "record 2: data CRC mismatch");
    f = create("cut.tfrecord");
    fwrite(good, 1, n - 3, f);
    fclose(f);
    expect_error("cut.tfrecord", 0, 0, 0, 0, "record 2: truncated");
    f = create("cuthdr.tfrecord");
    fwrite(good, 1, rec + 5, f);
    fclose(f);
    expect_error("cuthdr.tfrecord", 0, 0, 0, 0, "record 1: truncated header (5 of 12 bytes)");
    f = create("empty.tfrecord");
    fclose(f);
    expect_error("empty.tfrecord", 0, 0, 0, 0, "no records");

    /* damaged Examples inside sound framing */
    f = create("pb.tfrecord");
    raw_example(&ex, rgb[0], 2, 2, 3, 0, 1, 0);
    tfr_write(f, ex.b, ex.n);
    const uint8_t junk[] = {0x0A, 0x10, 0x0A, 0x03};
    tfr_write(f, junk, sizeof junk);
    fclose(f);
    expect_error("pb.tfrecord", 0, 0, 0, 0, "record 1: bad protobuf in Example at byte 0: length-delimited field runs past");
    f = create("noimage.tfrecord");
    feats.n = 0;
    ex_int64(&feats, "label", 1, 0);
    ex_finish(&ex, &feats);
    tfr_write(f, ex.b, ex.n);
    fclose(f);
    expect_error("noimage.tfrecord", 1, 2, 2, 0, "record 0: missing feature 'image'");
    f = create("neglabel.tfrecord");
    raw_example(&ex, rgb[0], 2, 2, 3, -3, 0, 0);
    tfr_write(f, ex.b, ex.n);
    fclose(f);
    expect_error("neglabel.tfrecord", 3, 2, 2, 0, "record 0: feature 'label' is not one int64 class id >= 0");
    f = create("rawsize.tfrecord");
    raw_example(&ex, rgb[0], 2, 2, 3, 0, 0, 0);
    tfr_write(f, ex.b, ex.n);
    raw_example(&ex, rgb[0], 1, 2, 3, 0, 0, 0); /* 6 bytes where the model needs 12 */
    tfr_write(f, ex.b, ex.n);
    fclose(f);
    expect_error("rawsize.tfrecord", 3, 2, 2, 2, "record 1: raw image of 6 bytes is not 2x2x3");
    expect_error("rawsize.tfrecord", 0, 0, 0, 0, "record 0: raw image bytes without height/width");
    f = create("badpng.tfrecord");
    feats.n = 0;
    png[png_len - 20] ^= 0xFF; /* inside IDAT */
    ex_bytes(&feats, "image", png, png_len);
    ex_int64(&feats, "label", 1, 0);
    ex_finish(&ex, &feats);
    tfr_write(f, ex.b, ex.n);
    tfr_write(f, ex.b, ex.n);
    fclose(f);
    expect_error("badpng.tfrecord", 3, 4, 4, 2, "record 1: bad PNG");
    f = create("badfloats.tfrecord");
    feats.n = 0;
    ex_floats(&feats, "image", v[0], 3, 1);
    ex_int64(&feats, "label", 1, 0);
    ex_finish(&ex, &feats);
    tfr_write(f, ex.b, ex.n);
    fclose(f);
    expect_error("badfloats.tfrecord", 1, 2, 2, 1, "record 0: feature 'image' has 3 floats, the input 1x2x2 needs 4");
    free(png);
    free(jpg);

    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", dir);
    return check_summary();
}
