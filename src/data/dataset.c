/* Datasets behind one interface: the in-memory dataset readers build, the stored-to-f32
 * conversion every batch goes through, slices of a dataset (validation splits), normalised
 * views, the check that samples fit a model's input, and batch assembly. */
#include "herd/data.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "data/pixels.h"

/* An in-memory dataset: n samples of xbytes[k] per field and n targets of ybytes, in the stored
 * dtypes. */
typedef struct memory_impl {
    void *x[HERD_MAX_FIELDS], *y;
    size_t xbytes[HERD_MAX_FIELDS], ybytes; /* per sample */
    int n_fields;
} memory_impl;

typedef struct slice_impl {
    herd_dataset *base;
    int64_t begin;
} slice_impl;

static herd_status check_index(const herd_dataset *ds, int64_t i, herd_error *err) {
    if (i < 0 || i >= ds->n)
        return herd_fail(err, HERD_EARG, "%s: sample %lld out of range [0, %lld)", ds->source, (long long)i,
                         (long long)ds->n);
    return HERD_OK;
}

static herd_status memory_get(const herd_dataset *ds, int64_t i, void *x, void *y, herd_error *err) {
    herd_status st = check_index(ds, i, err);
    if (st != HERD_OK) return st;
    const memory_impl *im = ds->impl;
    uint8_t *to = x;
    for (int k = 0; k < im->n_fields; k++) { /* the fields one after the other */
        memcpy(to, (const uint8_t *)im->x[k] + (size_t)i * im->xbytes[k], im->xbytes[k]);
        to += im->xbytes[k];
    }
    memcpy(y, (const uint8_t *)im->y + (size_t)i * im->ybytes, im->ybytes);
    return HERD_OK;
}

static void memory_close(herd_dataset *ds) {
    memory_impl *im = ds->impl;
    if (!im) return;
    for (int k = 0; k < im->n_fields; k++) free(im->x[k]);
    free(im->y);
    free(im);
    ds->impl = NULL;
}

static const herd_dataset_ops memory_ops = {memory_get, memory_close, NULL, NULL};

/* The descriptor of one of t's rows: t without its first dim. */
static herd_tensor row_of(const herd_tensor *t) {
    return herd_tensor_make(t->dtype, t->ndim - 1, t->dims + 1, NULL);
}

herd_status herd_dataset_from_memory(herd_dataset **out, herd_tensor x, herd_tensor y, int num_classes,
                                     const char *source, herd_error *err) {
    return herd_dataset_from_memory_fields(out, &x, 1, y, num_classes, source, err);
}

herd_status herd_dataset_from_memory_fields(herd_dataset **out, const herd_tensor *xs, int n_x, herd_tensor y,
                                            int num_classes, const char *source, herd_error *err) {
    herd_dataset *ds = NULL;
    memory_impl *im = NULL;
    herd_status st;
    const char *src = source ? source : "(memory)";
    *out = NULL;
    char xs_[96], ys[96];
    herd_tensor yr = y.ndim >= 1 ? row_of(&y) : y;
    int64_t n = n_x >= 1 && xs[0].ndim >= 1 ? xs[0].dims[0] : -1;
    size_t ybytes = herd_tensor_bytes(&yr);
    int bad = n_x < 1 || n_x > HERD_MAX_FIELDS || y.ndim < 1 || n < 0 || y.dims[0] != n || num_classes <= 0 ||
              !ybytes || herd_tensor_numel(&y) < 0, bad_field = 0;
    for (int k = 0; !bad && k < n_x; k++) {
        const herd_tensor *x = &xs[k];
        herd_tensor xr = x->ndim >= 1 ? row_of(x) : *x;
        if (x->ndim < 1 || x->dims[0] != n || herd_tensor_numel(&xr) < 1 || !herd_tensor_bytes(&xr) ||
            herd_tensor_numel(x) < 0 || (n > 0 && !herd_tensor_bytes(x)))
            bad = 1, bad_field = k;
    }
    if (bad) {
        const herd_tensor *x = n_x >= 1 && n_x <= HERD_MAX_FIELDS ? &xs[bad_field] : &y;
        st = herd_fail(err, HERD_EARG, "%s: bad dataset: %d field%s, field %d %s %s, y %s %s, %d classes", src, n_x,
                       n_x == 1 ? "" : "s", bad_field + 1, herd_dtype_name(x->dtype),
                       herd_tensor_shape_str(x, xs_, sizeof xs_), herd_dtype_name(y.dtype),
                       herd_tensor_shape_str(&y, ys, sizeof ys), num_classes);
        goto fail;
    }
    for (int k = 0; k < n_x; k++)
        if (n > 0 && !xs[k].data) {
            st = herd_fail(err, HERD_EARG, "%s: dataset of %lld samples without the buffer of field %d", src,
                           (long long)n, k + 1);
            goto fail;
        }
    if (n > 0 && !y.data) {
        st = herd_fail(err, HERD_EARG, "%s: dataset of %lld samples without its target buffer", src, (long long)n);
        goto fail;
    }
    ds = calloc(1, sizeof *ds);
    im = calloc(1, sizeof *im);
    if (!ds || !im) {
        st = herd_fail(err, HERD_ENOMEM, "%s: out of memory for dataset", src);
        goto fail;
    }
    im->n_fields = n_x;
    for (int k = 0; k < n_x; k++) {
        herd_tensor xr = row_of(&xs[k]);
        im->x[k] = xs[k].data;
        im->xbytes[k] = herd_tensor_bytes(&xr);
        if (k) ds->more[k - 1] = xr;
        else ds->x = xr;
    }
    im->y = y.data, im->ybytes = ybytes;
    ds->n_more = n_x - 1;
    ds->ops = &memory_ops;
    ds->n = n;
    ds->y = yr;
    ds->num_classes = num_classes;
    snprintf(ds->source, sizeof ds->source, "%s", src);
    ds->impl = im;
    *out = ds;
    return HERD_OK;
fail:
    for (int k = 0; k < n_x && k < HERD_MAX_FIELDS; k++) free(xs[k].data);
    free(y.data);
    free(im);
    free(ds);
    return st;
}

herd_status herd_dataset_get(const herd_dataset *ds, int64_t i, void *x, void *y, herd_error *err) {
    return ds->ops->get(ds, i, x, y, err);
}

int herd_dtype_to_f32_ok(herd_dtype t) { return t == HERD_U8 || t == HERD_F32; }

void herd_samples_to_f32(herd_dtype t, const void *x, size_t n, float *out) {
    HERD_ASSERT(herd_dtype_to_f32_ok(t));
    if (t == HERD_U8) {
        const uint8_t *p = x;
        uintptr_t b0 = (uintptr_t)p, b1 = b0 + n, f0 = (uintptr_t)out, f1 = f0 + n * sizeof *out;
        if (b1 <= f0 || f1 <= b0) { /* apart: straight through */
            herd_pixels_u8_to_f32(out, p, n);
            return;
        }
        /* In place (a sample converted where get() wrote it): chunks from the last, each
         * copied out before its floats are written; the floats of bytes [b, e) cover bytes
         * [4b, 4e), at or after b, so no byte is overwritten before it is read. */
        uint8_t chunk[1024];
        for (size_t end = n; end > 0;) {
            size_t begin = end > sizeof chunk ? end - sizeof chunk : 0, len = end - begin;
            memcpy(chunk, p + begin, len);
            herd_pixels_u8_to_f32(out + begin, chunk, len);
            end = begin;
        }
    } else if (out != x) {
        memmove(out, x, n * sizeof *out); /* a later field of a packed sample may overlap its stored bytes */
    }
}

int herd_dataset_field_count(const herd_dataset *ds) { return 1 + ds->n_more; }

const herd_tensor *herd_dataset_field(const herd_dataset *ds, int k) {
    HERD_ASSERT(k >= 0 && k <= ds->n_more);
    return k ? &ds->more[k - 1] : &ds->x;
}

size_t herd_dataset_sample_bytes(const herd_dataset *ds) {
    size_t n = 0;
    for (int k = 0; k <= ds->n_more; k++) n += herd_tensor_bytes(herd_dataset_field(ds, k));
    return n;
}

int64_t herd_dataset_sample_slots(const herd_dataset *ds) {
    int64_t n = 0;
    for (int k = 0; k <= ds->n_more; k++) n += herd_tensor_numel(herd_dataset_field(ds, k));
    return n;
}

int herd_dataset_fields_ok(const herd_dataset *ds) {
    for (int k = 0; k <= ds->n_more; k++) {
        const herd_tensor *f = herd_dataset_field(ds, k);
        if ((!herd_dtype_to_f32_ok(f->dtype) && f->dtype != HERD_I32) || herd_tensor_numel(f) < 1) return 0;
    }
    return 1;
}

/* One field's n stored values -> 4-byte values: i32 ids copied, u8/f32 as the f32 input. */
static void field_to_slots(herd_dtype t, const void *x, size_t n, float *out) {
    if (t == HERD_I32) {
        if ((const void *)out != x) memmove(out, x, n * 4);
    } else {
        herd_samples_to_f32(t, x, n, out);
    }
}

void herd_dataset_to_f32(const herd_dataset *ds, const void *x, int64_t count, float *out) {
    if (ds->ops->to_f32) {
        ds->ops->to_f32(ds, x, count, out);
        return;
    }
    if (!ds->n_more) {
        field_to_slots(ds->x.dtype, x, (size_t)count * (size_t)herd_tensor_numel(&ds->x), out);
        return;
    }
    /* From the last sample and field back: a value's 4-byte slot lies at or after its stored
     * bytes (no dtype is wider than 4), so in place (out == x) nothing is overwritten unread. */
    size_t sbytes = herd_dataset_sample_bytes(ds), slots = (size_t)herd_dataset_sample_slots(ds);
    for (int64_t s = count - 1; s >= 0; s--) {
        size_t boff = sbytes, soff = slots;
        for (int k = ds->n_more; k >= 0; k--) {
            const herd_tensor *f = herd_dataset_field(ds, k);
            size_t n = (size_t)herd_tensor_numel(f);
            boff -= herd_tensor_bytes(f), soff -= n;
            field_to_slots(f->dtype, (const uint8_t *)x + (size_t)s * sbytes + boff, n, out + (size_t)s * slots + soff);
        }
    }
}

void herd_dataset_channels(const herd_dataset *ds, int64_t *channels, int64_t *plane) {
    int64_t n = herd_tensor_numel(&ds->x);
    *channels = ds->x.ndim >= 1 ? ds->x.dims[0] : 1;
    *plane = *channels > 0 ? n / *channels : 0;
}

herd_status herd_data_check_input(const herd_tensor *x, const char *source, int c, int h, int w, herd_error *err) {
    int64_t model[3] = {c, h, w};
    herd_tensor in = herd_tensor_make(HERD_F32, 3, model, NULL);
    int fits = herd_tensor_numel(x) == herd_tensor_numel(&in) &&
               (x->ndim != 3 || (x->dims[0] == c && x->dims[1] == h && x->dims[2] == w));
    if (fits && herd_dtype_to_f32_ok(x->dtype)) return HERD_OK;
    char xs[96], ms[96];
    herd_tensor_shape_str(x, xs, sizeof xs);
    herd_tensor_shape_str(&in, ms, sizeof ms);
    if (fits)
        return herd_fail(err, HERD_ESHAPE, "%s: samples are %s of %s, which the model's f32 input %s cannot take",
                         source, xs, herd_dtype_name(x->dtype), ms);
    return herd_fail(err, HERD_ESHAPE, "%s: samples are %s but the model's input is %s", source, xs, ms);
}

static herd_status slice_get(const herd_dataset *ds, int64_t i, void *x, void *y, herd_error *err) {
    herd_status st = check_index(ds, i, err);
    if (st != HERD_OK) return st;
    const slice_impl *sl = ds->impl;
    return sl->base->ops->get(sl->base, sl->begin + i, x, y, err);
}

static herd_status slice_get_window(const herd_dataset *ds, int64_t i, const int win[4], void *x, void *y,
                                    herd_error *err) {
    herd_status st = check_index(ds, i, err);
    if (st != HERD_OK) return st;
    const slice_impl *sl = ds->impl;
    const herd_dataset *b = sl->base;
    return b->ops->get_window ? b->ops->get_window(b, sl->begin + i, win, x, y, err)
                              : b->ops->get(b, sl->begin + i, x, y, err);
}

static void slice_to_f32(const herd_dataset *ds, const void *x, int64_t count, float *out) {
    const slice_impl *sl = ds->impl;
    herd_dataset_to_f32(sl->base, x, count, out);
}

static void slice_close(herd_dataset *ds) {
    free(ds->impl);
    ds->impl = NULL;
}

static const herd_dataset_ops slice_ops = {slice_get, slice_close, slice_to_f32, slice_get_window};

herd_status herd_dataset_slice(herd_dataset **out, herd_dataset *base, int64_t begin, int64_t end, herd_error *err) {
    herd_dataset *ds = NULL;
    slice_impl *sl = NULL;
    herd_status st;
    *out = NULL;
    if (!base || begin < 0 || end < begin || end > base->n) {
        st = herd_fail(err, HERD_EARG, "%s: slice [%lld, %lld) outside [0, %lld)", base ? base->source : "(null)",
                       (long long)begin, (long long)end, base ? (long long)base->n : 0LL);
        goto fail;
    }
    ds = calloc(1, sizeof *ds);
    sl = calloc(1, sizeof *sl);
    if (!ds || !sl) {
        st = herd_fail(err, HERD_ENOMEM, "%s: out of memory for slice", base->source);
        goto fail;
    }
    sl->base = base;
    sl->begin = begin;
    *ds = *base;
    ds->ops = &slice_ops;
    ds->n = end - begin;
    snprintf(ds->source, sizeof ds->source, "%.480s[%lld:%lld]", base->source, (long long)begin, (long long)end);
    ds->impl = sl;
    *out = ds;
    return HERD_OK;
fail:
    free(sl);
    free(ds);
    return st;
}

void herd_normalize_samples(float *x, int64_t n, int c, int64_t plane, const double *mean, const double *std) {
    for (int64_t b = 0; b < n; b++)
        for (int k = 0; k < c; k++) {
            float *p = x + (b * c + k) * plane;
            const float shift = (float)mean[k], scale = std[k] > 0 ? (float)(1.0 / std[k]) : 1.0f;
            for (int64_t i = 0; i < plane; i++) p[i] = (p[i] - shift) * scale;
        }
}

typedef struct norm_impl {
    herd_dataset *base;
    int channels;
    int64_t plane;
    double *norm; /* channels means, then channels stds */
} norm_impl;

static herd_status norm_get(const herd_dataset *ds, int64_t i, void *x, void *y, herd_error *err) {
    const norm_impl *nm = ds->impl;
    return nm->base->ops->get(nm->base, i, x, y, err);
}

static void norm_to_f32(const herd_dataset *ds, const void *x, int64_t count, float *out) {
    const norm_impl *nm = ds->impl;
    herd_dataset_to_f32(nm->base, x, count, out);
    herd_normalize_samples(out, count, nm->channels, nm->plane, nm->norm, nm->norm + nm->channels);
}

static void norm_close(herd_dataset *ds) {
    norm_impl *nm = ds->impl;
    if (!nm) return;
    free(nm->norm);
    free(nm);
    ds->impl = NULL;
}

static const herd_dataset_ops norm_ops = {norm_get, norm_close, norm_to_f32, NULL};

herd_status herd_dataset_normalize(herd_dataset **out, herd_dataset *base, int channels, const double *mean,
                                   const double *std, herd_error *err) {
    *out = NULL;
    int64_t numel = herd_tensor_numel(&base->x);
    char xs[96];
    if (channels < 1 || numel < 1 || numel % channels != 0)
        return herd_fail(err, HERD_ESHAPE, "%s: samples of %s do not split into %d channels to normalise",
                         base->source, herd_tensor_shape_str(&base->x, xs, sizeof xs), channels);
    if (!herd_dtype_to_f32_ok(base->x.dtype) || base->n_more)
        return herd_fail(err, HERD_ESHAPE, "%s: %s samples%s cannot be normalised", base->source,
                         herd_dtype_name(base->x.dtype), base->n_more ? " of several fields" : "");
    herd_dataset *ds = calloc(1, sizeof *ds);
    norm_impl *nm = calloc(1, sizeof *nm);
    if (!ds || !nm || !(nm->norm = herd_malloc_array(2 * (size_t)channels, sizeof(double)))) {
        free(nm);
        free(ds);
        return herd_fail(err, HERD_ENOMEM, "%s: out of memory for a normalised view", base->source);
    }
    nm->base = base;
    nm->channels = channels;
    nm->plane = numel / channels;
    memcpy(nm->norm, mean, (size_t)channels * sizeof(double));
    memcpy(nm->norm + channels, std, (size_t)channels * sizeof(double));
    *ds = *base;
    ds->ops = &norm_ops;
    ds->impl = nm;
    *out = ds;
    return HERD_OK;
}

void herd_dataset_close(herd_dataset *ds) {
    if (!ds) return;
    if (ds->ops && ds->ops->close) ds->ops->close(ds);
    free(ds);
}

herd_status herd_dataset_batch(const herd_dataset *ds, const int64_t *idx, int B, float *x, void *y,
                               herd_error *err) {
    if (B < 0) return herd_fail(err, HERD_EARG, "%s: negative batch size %d", ds->source, B);
    if (!herd_dataset_fields_ok(ds))
        return herd_fail(err, HERD_ESHAPE, "%s: %s samples cannot become the model's input", ds->source,
                         herd_dtype_name(ds->x.dtype));
    size_t sample = (size_t)herd_dataset_sample_slots(ds), ybytes = herd_tensor_bytes(&ds->y);
    for (int b = 0; b < B; b++) {
        float *xb = x + (size_t)b * sample; /* the stored sample fits: no dtype is wider than 4 bytes here */
        herd_status st = ds->ops->get(ds, idx[b], xb, (uint8_t *)y + (size_t)b * ybytes, err);
        if (st != HERD_OK) return st;
        herd_dataset_to_f32(ds, xb, 1, xb);
    }
    return HERD_OK;
}
