/* TFRecord reader for tf.train.Example records: open walks every record once (both CRCs,
 * the label, the offset); get() reads one record again and decodes its image. */
#include "herd/data.h"

#include <errno.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "io/crc32c.h"
#include "io/input_file.h"
#include "data/image_decode.h"
#include "io/pb_wire.h"

enum { FEATURE_BYTES = 1, FEATURE_FLOAT = 2, FEATURE_INT64 = 3 };

typedef struct tfr_record {
    uint64_t offset; /* of the data, after the 12-byte header */
    uint64_t len;
    int64_t index; /* within its file, for messages */
    int32_t file;
    int32_t label;
} tfr_record;

typedef struct tfr_impl {
    char **paths;
    int npaths;
    tfr_record *records;
    int64_t n, cap;
    char image_key[128], label_key[128];
    int kind;    /* record 0's image feature: FEATURE_FLOAT (f32 samples) or FEATURE_BYTES (u8) */
    int c, h, w; /* the samples' shape */
    /* n: 1 once a decode of the record's image found every byte of it sound; a window of it then
     * skips a JPEG's rows below the window (image_decode.h). Every read checks the record's CRC,
     * so the bytes skipped are the ones found sound. */
    _Atomic unsigned char *sound;
} tfr_impl;

/* A feature's list message inside a record. */
typedef struct tfr_feature {
    int kind; /* FEATURE_*, 0 when absent */
    const uint8_t *list;
    size_t len;
} tfr_feature;

static uint64_t load_le(const uint8_t *p, int bytes) {
    uint64_t v = 0;
    for (int i = 0; i < bytes; i++) v |= (uint64_t)p[i] << (8 * i);
    return v;
}

/* "<path>: record <k>: " then the problem: every message of this reader starts so. */
#define REC_FAIL(err, st, path, k, fmt, ...) \
    herd_fail(err, st, "%s: record %lld: " fmt, path, (long long)(k), __VA_ARGS__)

/* pb_wire's reader plus where it failed, for messages. */
typedef struct tf_reader {
    pb_reader r;
    const uint8_t *start;
    const char *why;
    size_t at;
} tf_reader;

static void tf_init(tf_reader *t, const uint8_t *buf, size_t len) {
    t->r = pb_reader_of(buf, len);
    t->start = buf, t->why = "", t->at = 0;
}

static int tf_next(tf_reader *t, pb_field *f) {
    const uint8_t *at = t->r.p;
    int r = herdi_pb_next(&t->r, f, &t->why);
    if (r < 0) t->at = (size_t)(at - t->start);
    return r;
}

static herd_status pb_bad(const tf_reader *r, const char *what, const char *path, int64_t k, herd_error *err) {
    return REC_FAIL(err, HERD_EFORMAT, path, k, "bad protobuf in %s at byte %zu: %s", what, r->at, r->why);
}

/* Looks up feature `name` in a serialized Example (Example.features = 1, Features.feature = 1
 * map entries of key = 1, value = 2; Feature: bytes_list = 1, float_list = 2, int64_list = 3). */
static herd_status example_feature(const uint8_t *buf, size_t len, const char *name, tfr_feature *out,
                                   const char *path, int64_t k, herd_error *err) {
    tf_reader ex, fs, en, ft;
    pb_field f, g, h;
    size_t name_len = strlen(name);
    int r;
    memset(out, 0, sizeof *out);
    tf_init(&ex, buf, len);
    while ((r = tf_next(&ex, &f)) == 1) {
        if (f.number != 1) continue;
        if (f.wire != PB_LEN)
            return REC_FAIL(err, HERD_EFORMAT, path, k, "bad protobuf: Example.features has wire type %d", f.wire);
        tf_init(&fs, f.data, f.len);
        while ((r = tf_next(&fs, &g)) == 1) {
            if (g.number != 1) continue;
            if (g.wire != PB_LEN)
                return REC_FAIL(err, HERD_EFORMAT, path, k, "bad protobuf: Features.feature has wire type %d", g.wire);
            const uint8_t *key = NULL, *value = NULL;
            size_t key_len = 0, value_len = 0;
            tf_init(&en, g.data, g.len);
            while ((r = tf_next(&en, &h)) == 1) {
                if (h.wire != PB_LEN) continue;
                if (h.number == 1) key = h.data, key_len = h.len;
                if (h.number == 2) value = h.data, value_len = h.len;
            }
            if (r < 0) return pb_bad(&en, "a feature map entry", path, k, err);
            if (!key || key_len != name_len || memcmp(key, name, name_len) != 0) continue;
            memset(out, 0, sizeof *out); /* a later duplicate key wins, as in protobuf maps */
            tf_init(&ft, value, value_len);
            while ((r = tf_next(&ft, &h)) == 1)
                if (h.number >= 1 && h.number <= 3 && h.wire == PB_LEN)
                    out->kind = (int)h.number, out->list = h.data, out->len = h.len;
            if (r < 0) return pb_bad(&ft, "a Feature", path, k, err);
        }
        if (r < 0) return pb_bad(&fs, "Features", path, k, err);
    }
    if (r < 0) return pb_bad(&ex, "Example", path, k, err);
    return HERD_OK;
}

/* Values of an int64_list (packed or not): the first up to cap into v, all counted. */
static herd_status int64_values(const tfr_feature *ft, int64_t *v, size_t cap, size_t *count, const char *path,
                                int64_t k, herd_error *err) {
    tf_reader r;
    pb_field f;
    int got;
    *count = 0;
    tf_init(&r, ft->list, ft->len);
    while ((got = tf_next(&r, &f)) == 1) {
        if (f.number != 1) continue;
        if (f.wire == PB_VARINT) {
            if (*count < cap) v[*count] = (int64_t)f.u;
            ++*count;
        } else if (f.wire == PB_LEN) {
            pb_reader packed = pb_reader_of(f.data, f.len);
            while (packed.p < packed.end) {
                uint64_t x;
                if (!herdi_pb_read_varint(&packed, &x))
                    return REC_FAIL(err, HERD_EFORMAT, path, k, "bad protobuf: %s", "truncated packed int64 value");
                if (*count < cap) v[*count] = (int64_t)x;
                ++*count;
            }
        }
    }
    if (got < 0) return pb_bad(&r, "an Int64List", path, k, err);
    return HERD_OK;
}

/* Values of a float_list (packed or not) into v when v is not NULL; *count counts all. */
static herd_status float_values(const tfr_feature *ft, float *v, size_t cap, size_t *count, const char *path,
                                int64_t k, herd_error *err) {
    tf_reader r;
    pb_field f;
    int got;
    *count = 0;
    tf_init(&r, ft->list, ft->len);
    while ((got = tf_next(&r, &f)) == 1) {
        if (f.number != 1) continue;
        if (f.wire == PB_FIXED32) {
            if (v && *count < cap) v[*count] = herdi_pb_as_float(&f);
            ++*count;
        } else if (f.wire == PB_LEN) {
            if (f.len % 4)
                return REC_FAIL(err, HERD_EFORMAT, path, k, "bad protobuf: packed floats of %zu bytes", f.len);
            for (size_t i = 0; i < f.len; i += 4, ++*count)
                if (v && *count < cap) {
                    pb_field one = {.number = 1, .wire = PB_FIXED32, .u = load_le(f.data + i, 4)};
                    v[*count] = herdi_pb_as_float(&one);
                }
        }
    }
    if (got < 0) return pb_bad(&r, "a FloatList", path, k, err);
    return HERD_OK;
}

/* The first value of a bytes_list. */
static herd_status first_bytes(const tfr_feature *ft, const uint8_t **data, size_t *len, const char *name,
                               const char *path, int64_t k, herd_error *err) {
    tf_reader r;
    pb_field f;
    int got;
    tf_init(&r, ft->list, ft->len);
    while ((got = tf_next(&r, &f)) == 1)
        if (f.number == 1 && f.wire == PB_LEN) {
            *data = f.data, *len = f.len;
            return HERD_OK;
        }
    if (got < 0) return pb_bad(&r, "a BytesList", path, k, err);
    return REC_FAIL(err, HERD_EFORMAT, path, k, "feature '%s' is an empty bytes_list", name);
}

/* An int64 feature's first value, or dflt when the feature is absent. */
static herd_status optional_int(const uint8_t *buf, size_t len, const char *name, int64_t dflt, int64_t *v,
                                const char *path, int64_t k, herd_error *err) {
    tfr_feature ft;
    size_t count;
    herd_status st = example_feature(buf, len, name, &ft, path, k, err);
    *v = dflt;
    if (st != HERD_OK || ft.kind == 0) return st;
    if (ft.kind != FEATURE_INT64)
        return REC_FAIL(err, HERD_EFORMAT, path, k, "feature '%s' is not an int64_list", name);
    if ((st = int64_values(&ft, v, 1, &count, path, k, err)) != HERD_OK) return st;
    if (count == 0) *v = dflt;
    return HERD_OK;
}

/* A raw uint8 image in HWC order (TensorFlow's layout), its shape from the height/width/
 * channels features, else the dataset's. */
static herd_status raw_image(const uint8_t *buf, size_t len, const uint8_t *bytes, size_t nbytes, int c, int h, int w,
                             herd_image *img, const char *path, int64_t k, herd_error *err) {
    int64_t H, W, C;
    herd_status st;
    if ((st = optional_int(buf, len, "height", h, &H, path, k, err)) != HERD_OK ||
        (st = optional_int(buf, len, "width", w, &W, path, k, err)) != HERD_OK ||
        (st = optional_int(buf, len, "channels", c, &C, path, k, err)) != HERD_OK)
        return st;
    if (H <= 0 || W <= 0 || (C != 1 && C != 3) || H > INT32_MAX || W > INT32_MAX)
        return REC_FAIL(err, HERD_EFORMAT, path, k, "raw image of %lldx%lldx%lld (height x width x channels 1 or 3)",
                        (long long)H, (long long)W, (long long)C);
    if ((uint64_t)H * (uint64_t)W > nbytes || (uint64_t)H * (uint64_t)W * (uint64_t)C != nbytes)
        return REC_FAIL(err, HERD_EFORMAT, path, k, "raw image of %zu bytes is not %lldx%lldx%lld", nbytes,
                        (long long)H, (long long)W, (long long)C);
    img->pix = (uint8_t *)bytes; /* borrowed: not freed */
    img->h = (int)H, img->w = (int)W, img->c = (int)C;
    return HERD_OK;
}

static const char *feature_kind_name(int kind) {
    return kind == FEATURE_FLOAT ? "a float_list" : kind == FEATURE_BYTES ? "a bytes_list" : "an int64_list";
}

/* Decodes the image feature of one record into x: c*h*w floats or bytes (im->kind); with win, an
 * encoded image only as far as the window win of it needs (herd_image_decode_window_to_u8). */
static herd_status decode_sample(const tfr_impl *im, const uint8_t *buf, size_t len, const int *win, void *x,
                                 const char *path, int64_t k, int *sound, herd_error *err) {
    tfr_feature ft;
    herd_status st = example_feature(buf, len, im->image_key, &ft, path, k, err);
    if (st != HERD_OK) return st;
    int c = im->c, h = im->h, w = im->w;
    size_t want = (size_t)c * (size_t)h * (size_t)w, count;
    if (ft.kind && ft.kind != FEATURE_INT64 && ft.kind != im->kind)
        return REC_FAIL(err, HERD_EFORMAT, path, k, "feature '%s' is %s but record 0's is %s (samples share one dtype)",
                        im->image_key, feature_kind_name(ft.kind), feature_kind_name(im->kind));
    switch (ft.kind) {
    case FEATURE_FLOAT:
        if ((st = float_values(&ft, NULL, 0, &count, path, k, err)) != HERD_OK) return st;
        if (count != want)
            return REC_FAIL(err, HERD_EFORMAT, path, k, "feature '%s' has %zu floats, the input %dx%dx%d needs %zu",
                            im->image_key, count, c, h, w, want);
        return float_values(&ft, x, want, &count, path, k, err);
    case FEATURE_BYTES: {
        const uint8_t *bytes;
        size_t nbytes;
        herd_image img;
        if ((st = first_bytes(&ft, &bytes, &nbytes, im->image_key, path, k, err)) != HERD_OK) return st;
        if (c != 1 && c != 3)
            return REC_FAIL(err, HERD_EARG, path, k, "images become 1 or 3 channels, the input has %d", c);
        if (herd_image_is_encoded(bytes, nbytes)) {
            char what[600];
            snprintf(what, sizeof what, "%.500s: record %lld", path, (long long)k);
            if (win) return herd_image_decode_window_to_u8(bytes, nbytes, what, c, h, w, win, sound, x, err);
            *sound = 1;
            return herd_image_decode_to_u8(bytes, nbytes, what, c, h, w, x, err);
        }
        if ((st = raw_image(buf, len, bytes, nbytes, c, h, w, &img, path, k, err)) != HERD_OK) return st;
        return herd_image_to_u8(&img, c, h, w, x, err);
    }
    case 0: return REC_FAIL(err, HERD_EFORMAT, path, k, "missing feature '%s'", im->image_key);
    default:
        return REC_FAIL(err, HERD_EFORMAT, path, k, "feature '%s' is an int64_list (expected bytes or floats)",
                        im->image_key);
    }
}

/* Reads record data at offset and checks its CRC; *buf grows as needed (cap in *cap). */
static herd_status read_record(int fd, const tfr_record *rec, uint8_t **buf, size_t *cap, const char *path,
                               herd_error *err) {
    if (rec->len + 4 > *cap) {
        uint8_t *g = realloc(*buf, (size_t)rec->len + 4);
        if (!g) return REC_FAIL(err, HERD_ENOMEM, path, rec->index, "out of memory for %llu bytes",
                                (unsigned long long)rec->len);
        *buf = g, *cap = (size_t)rec->len + 4;
    }
    ssize_t got = pread(fd, *buf, (size_t)rec->len + 4, (off_t)rec->offset);
    if (got != (ssize_t)(rec->len + 4))
        return REC_FAIL(err, HERD_EIO, path, rec->index, "short read: %s", got < 0 ? strerror(errno) : "file changed?");
    uint32_t stored = (uint32_t)load_le(*buf + rec->len, 4);
    if (herd_crc32c_mask(herd_crc32c(0, *buf, (size_t)rec->len)) != stored)
        return REC_FAIL(err, HERD_EFORMAT, path, rec->index, "data CRC mismatch (stored %08x)", stored);
    return HERD_OK;
}

/* Sample i whole (win NULL) or the window win of it. */
static herd_status tfr_read(const herd_dataset *ds, int64_t i, const int *win, void *x, void *y, herd_error *err) {
    const tfr_impl *im = ds->impl;
    if (i < 0 || i >= ds->n)
        return herd_fail(err, HERD_EARG, "%s: sample %lld out of range [0, %lld)", ds->source, (long long)i,
                         (long long)ds->n);
    const tfr_record *rec = &im->records[i];
    const char *path = im->paths[rec->file];
    int fd = open(path, O_RDONLY);
    if (fd < 0) return herd_fail(err, HERD_EIO, "%s: cannot open: %s", path, strerror(errno));
    uint8_t *buf = NULL;
    size_t cap = 0;
    herd_status st = read_record(fd, rec, &buf, &cap, path, err);
    close(fd);
    int sound = atomic_load_explicit(&im->sound[i], memory_order_relaxed);
    if (st == HERD_OK) st = decode_sample(im, buf, (size_t)rec->len, win, x, path, rec->index, &sound, err);
    free(buf);
    if (st == HERD_OK && sound) atomic_store_explicit(&im->sound[i], 1, memory_order_relaxed);
    memcpy(y, &rec->label, sizeof rec->label);
    return st;
}

static herd_status tfr_get(const herd_dataset *ds, int64_t i, void *x, void *y, herd_error *err) {
    return tfr_read(ds, i, NULL, x, y, err);
}

static herd_status tfr_get_window(const herd_dataset *ds, int64_t i, const int win[4], void *x, void *y,
                                  herd_error *err) {
    return tfr_read(ds, i, win, x, y, err);
}

static void tfr_free(tfr_impl *im) {
    if (!im) return;
    for (int i = 0; i < im->npaths; i++) free(im->paths[i]);
    free(im->paths);
    free(im->records);
    free(im->sound);
    free(im);
}

static void tfr_close(herd_dataset *ds) {
    tfr_free(ds->impl);
    ds->impl = NULL;
}

static const herd_dataset_ops tfr_ops = {tfr_get, tfr_close, NULL, tfr_get_window};

static tfr_record *push_record(tfr_impl *im) {
    if (im->n == im->cap) {
        int64_t cap = im->cap ? 2 * im->cap : 256;
        tfr_record *g = herd_malloc_array((size_t)cap, sizeof *g);
        if (!g) return NULL;
        if (im->n) memcpy(g, im->records, (size_t)im->n * sizeof *g);
        free(im->records);
        im->records = g, im->cap = cap;
    }
    return &im->records[im->n++];
}

/* Walks one file: framing and CRCs, then each Example's label (and that its image is there). */
static herd_status index_file(tfr_impl *im, int file, int32_t *max_label, uint8_t **buf, size_t *cap,
                              herd_error *err) {
    const char *path = im->paths[file];
    struct stat sb;
    int fd;
    herd_status st = herdi_input_open(path, &fd, &sb, err);
    if (st) return st;
    uint64_t size = (uint64_t)sb.st_size, at = 0;
    for (int64_t k = 0; at < size; k++) {
        uint8_t hdr[12];
        if (size - at < 12) {
            st = REC_FAIL(err, HERD_EFORMAT, path, k, "truncated header (%llu of 12 bytes)",
                          (unsigned long long)(size - at));
            goto done;
        }
        if (pread(fd, hdr, 12, (off_t)at) != 12) {
            st = REC_FAIL(err, HERD_EIO, path, k, "short read: %s", "file changed?");
            goto done;
        }
        uint64_t len = load_le(hdr, 8);
        if (herd_crc32c_mask(herd_crc32c(0, hdr, 8)) != (uint32_t)load_le(hdr + 8, 4)) {
            st = REC_FAIL(err, HERD_EFORMAT, path, k, "length CRC mismatch (length field %llu)",
                          (unsigned long long)len);
            goto done;
        }
        if (len > size - at - 12 || size - at - 12 - len < 4) {
            st = REC_FAIL(err, HERD_EFORMAT, path, k, "truncated: %llu data bytes + 4 CRC bytes, %llu left in the file",
                          (unsigned long long)len, (unsigned long long)(size - at - 12));
            goto done;
        }
        tfr_record *rec = push_record(im);
        if (!rec) {
            st = REC_FAIL(err, HERD_ENOMEM, path, k, "out of memory for the index of %lld records", (long long)im->n);
            goto done;
        }
        *rec = (tfr_record){at + 12, len, k, file, 0};
        if ((st = read_record(fd, rec, buf, cap, path, err)) != HERD_OK) goto done;
        tfr_feature ft;
        if ((st = example_feature(*buf, (size_t)len, im->label_key, &ft, path, k, err)) != HERD_OK) goto done;
        int64_t label;
        size_t count;
        if (ft.kind == 0) {
            st = REC_FAIL(err, HERD_EFORMAT, path, k, "missing feature '%s'", im->label_key);
            goto done;
        }
        if (ft.kind != FEATURE_INT64 || (st = int64_values(&ft, &label, 1, &count, path, k, err)) != HERD_OK ||
            count != 1 || label < 0 || label >= INT32_MAX) {
            if (st == HERD_OK)
                st = REC_FAIL(err, HERD_EFORMAT, path, k, "feature '%s' is not one int64 class id >= 0", im->label_key);
            goto done;
        }
        if ((st = example_feature(*buf, (size_t)len, im->image_key, &ft, path, k, err)) != HERD_OK) goto done;
        if (ft.kind == 0) {
            st = REC_FAIL(err, HERD_EFORMAT, path, k, "missing feature '%s'", im->image_key);
            goto done;
        }
        rec->label = (int32_t)label;
        if (label > *max_label) *max_label = (int32_t)label;
        at += 12 + len + 4;
    }
done:
    close(fd);
    return st;
}

/* Record 0's image feature kind (into im->kind) and, without a model shape (want_shape), its
 * shape: a float_list of F gives (F) samples, an encoded image its own size, raw bytes the
 * height/width/channels features; unless need_shape refuses images without a model shape. */
static herd_status first_sample(tfr_impl *im, const uint8_t *buf, size_t len, int want_shape, int need_shape, int *c,
                                int *h, int *w, herd_error *err) {
    const char *path = im->paths[0];
    tfr_feature ft;
    size_t count;
    herd_status st = example_feature(buf, len, im->image_key, &ft, path, 0, err);
    if (st != HERD_OK) return st;
    im->kind = ft.kind;
    if (!want_shape && (ft.kind == FEATURE_FLOAT || ft.kind == FEATURE_BYTES)) return HERD_OK;
    if (ft.kind == FEATURE_FLOAT) {
        if ((st = float_values(&ft, NULL, 0, &count, path, 0, err)) != HERD_OK) return st;
        if (count == 0 || count > INT32_MAX)
            return REC_FAIL(err, HERD_EFORMAT, path, 0, "feature '%s' holds %zu floats", im->image_key, count);
        *c = (int)count, *h = 1, *w = 1;
        return HERD_OK;
    }
    if (ft.kind != FEATURE_BYTES)
        return REC_FAIL(err, HERD_EFORMAT, path, 0, "feature '%s' is not bytes or floats", im->image_key);
    if (need_shape)
        return REC_FAIL(err, HERD_EARG, path, 0, "images without a sample shape to decode them to%s", "");
    const uint8_t *bytes;
    herd_image img;
    if ((st = first_bytes(&ft, &bytes, &count, im->image_key, path, 0, err)) != HERD_OK) return st;
    if (herd_image_is_encoded(bytes, count)) {
        char what[600];
        snprintf(what, sizeof what, "%.500s: record 0", path);
        if ((st = herd_image_decode(bytes, count, what, &img, err)) != HERD_OK) return st;
        herd_image_free(&img);
    } else {
        int64_t H, W;
        if ((st = optional_int(buf, len, "height", 0, &H, path, 0, err)) != HERD_OK ||
            (st = optional_int(buf, len, "width", 0, &W, path, 0, err)) != HERD_OK)
            return st;
        if (H <= 0 || W <= 0)
            return REC_FAIL(err, HERD_EFORMAT, path, 0,
                            "raw image bytes without height/width features (and no model input shape)%s", "");
        if ((st = raw_image(buf, len, bytes, count, 1, (int)H, (int)W, &img, path, 0, err)) != HERD_OK) return st;
    }
    *c = img.c, *h = img.h, *w = img.w;
    return HERD_OK;
}

herd_status herd_tfrecord_open(herd_dataset **out, const char *const *paths, int npaths,
                               const herd_image_options *opt, herd_error *err) {
    tfr_impl *im = calloc(1, sizeof *im);
    herd_dataset *ds = calloc(1, sizeof *ds);
    uint8_t *buf = NULL;
    size_t cap = 0;
    herd_status st;
    *out = NULL;
    if (!im || !ds || npaths <= 0 || !(im->paths = herd_calloc_array((size_t)npaths, sizeof *im->paths))) {
        st = npaths <= 0 ? herd_fail(err, HERD_EARG, "TFRecord: no files given")
                         : herd_fail(err, HERD_ENOMEM, "%s: out of memory", paths[0]);
        goto fail;
    }
    snprintf(im->image_key, sizeof im->image_key, "%s", opt && opt->image_key ? opt->image_key : "image");
    snprintf(im->label_key, sizeof im->label_key, "%s", opt && opt->label_key ? opt->label_key : "label");
    for (int i = 0; i < npaths; i++, im->npaths++)
        if (!(im->paths[i] = strdup(paths[i]))) {
            st = herd_fail(err, HERD_ENOMEM, "%s: out of memory", paths[i]);
            goto fail;
        }
    int32_t max_label = 1;
    for (int i = 0; i < npaths; i++)
        if ((st = index_file(im, i, &max_label, &buf, &cap, err)) != HERD_OK) goto fail;
    if (im->n == 0) {
        st = herd_fail(err, HERD_EFORMAT, "%s: no records", paths[0]);
        goto fail;
    }
    if (!(im->sound = herd_malloc_array((size_t)im->n, sizeof *im->sound))) {
        st = herd_fail(err, HERD_ENOMEM, "%s: out of memory for %lld records", paths[0], (long long)im->n);
        goto fail;
    }
    for (int64_t i = 0; i < im->n; i++) atomic_init(&im->sound[i], 0);
    int c = opt ? opt->c : 0, h = opt ? opt->h : 0, w = opt ? opt->w : 0;
    int model_shape = c > 0 && h > 0 && w > 0;
    int fd = open(im->paths[0], O_RDONLY);
    st = fd < 0 ? herd_fail(err, HERD_EIO, "%s: cannot open: %s", im->paths[0], strerror(errno))
                : read_record(fd, &im->records[0], &buf, &cap, im->paths[0], err);
    if (fd >= 0) close(fd);
    if (st == HERD_OK) st = first_sample(im, buf, (size_t)im->records[0].len, !model_shape, opt && opt->need_shape, &c, &h,
                                            &w, err);
    if (st != HERD_OK) goto fail;
    free(buf);
    im->c = c, im->h = h, im->w = w;
    ds->ops = &tfr_ops;
    ds->n = im->n;
    if (im->kind == FEATURE_BYTES) /* images: u8 (C,H,W) */
        ds->x = herd_tensor_make(HERD_U8, 3, (int64_t[]){c, h, w}, NULL);
    else if (model_shape) /* floats in the model's input shape */
        ds->x = herd_tensor_make(HERD_F32, 3, (int64_t[]){c, h, w}, NULL);
    else /* a row of features */
        ds->x = herd_tensor_make(HERD_F32, 1, (int64_t[]){c}, NULL);
    ds->y = herd_tensor_make(HERD_I32, 0, NULL, NULL);
    ds->num_classes = max_label + 1;
    if (npaths == 1)
        snprintf(ds->source, sizeof ds->source, "%s", paths[0]);
    else
        snprintf(ds->source, sizeof ds->source, "%.480s (+%d more)", paths[0], npaths - 1);
    ds->impl = im;
    *out = ds;
    return HERD_OK;
fail:
    free(buf);
    tfr_free(im);
    free(ds);
    return st;
}
