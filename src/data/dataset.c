/* Datasets behind one interface: the in-memory dataset readers build, the stored-to-f32
 * conversion every batch goes through, slices of a dataset (validation splits), normalised
 * views, the check that samples fit a model's input, and batch assembly. */
#include "herd/data.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* An in-memory dataset: n samples of xbytes and n targets of ybytes, in the stored dtypes. */
typedef struct memory_impl {
    void *x, *y;
    size_t xbytes, ybytes; /* per sample */
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
    memcpy(x, (const uint8_t *)im->x + (size_t)i * im->xbytes, im->xbytes);
    memcpy(y, (const uint8_t *)im->y + (size_t)i * im->ybytes, im->ybytes);
    return HERD_OK;
}

static void memory_close(herd_dataset *ds) {
    memory_impl *im = ds->impl;
    if (!im) return;
    free(im->x);
    free(im->y);
    free(im);
    ds->impl = NULL;
}

static const herd_dataset_ops memory_ops = {memory_get, memory_close, NULL};

/* The descriptor of one of t's rows: t without its first dim. */
static herd_tensor row_of(const herd_tensor *t) {
    return herd_tensor_make(t->dtype, t->ndim - 1, t->dims + 1, NULL);
}

herd_status herd_dataset_from_memory(herd_dataset **out, herd_tensor x, herd_tensor y, int num_classes,
                                     const char *source, herd_error *err) {
    herd_dataset *ds = NULL;
    memory_impl *im = NULL;
    herd_status st;
    const char *src = source ? source : "(memory)";
    *out = NULL;
    char xs[96], ys[96];
    herd_tensor xr = x.ndim >= 1 ? row_of(&x) : x, yr = y.ndim >= 1 ? row_of(&y) : y;
    int64_t n = x.ndim >= 1 ? x.dims[0] : -1, xn = herd_tensor_numel(&xr);
    size_t xbytes = herd_tensor_bytes(&xr), ybytes = herd_tensor_bytes(&yr);
    if (x.ndim < 1 || y.ndim < 1 || n < 0 || y.dims[0] != n || num_classes <= 0 || xn < 1 || !xbytes || !ybytes ||
        herd_tensor_numel(&x) < 0 || herd_tensor_numel(&y) < 0 || (n > 0 && !herd_tensor_bytes(&x))) {
        st = herd_fail(err, HERD_EARG, "%s: bad dataset: x %s %s, y %s %s, %d classes", src,
                       herd_dtype_name(x.dtype), herd_tensor_shape_str(&x, xs, sizeof xs), herd_dtype_name(y.dtype),
                       herd_tensor_shape_str(&y, ys, sizeof ys), num_classes);
        goto fail;
    }
    if (n > 0 && (!x.data || !y.data)) {
        st = herd_fail(err, HERD_EARG, "%s: dataset of %lld samples without its %s buffer", src, (long long)n,
                       x.data ? "target" : "sample");
        goto fail;
    }
    ds = calloc(1, sizeof *ds);
    im = calloc(1, sizeof *im);
    if (!ds || !im) {
        st = herd_fail(err, HERD_ENOMEM, "%s: out of memory for dataset", src);
        goto fail;
    }
    *im = (memory_impl){x.data, y.data, xbytes, ybytes};
    ds->ops = &memory_ops;
    ds->n = n;
    ds->x = xr;
    ds->y = yr;
    ds->num_classes = num_classes;
    snprintf(ds->source, sizeof ds->source, "%s", src);
    ds->impl = im;
    *out = ds;
    return HERD_OK;
fail:
    free(x.data);
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
        /* Dividing (not multiplying by 1/255) keeps 255 at exactly 1.0f. Chunks from the last:
         * each is copied out before its floats are written, and the floats of bytes [b, e)
         * cover bytes [4b, 4e), at or after b, so in place (out == x) no byte is overwritten
         * before it is read; the copy also lets the compiler vectorise the loop. */
        const uint8_t *p = x;
        uint8_t chunk[256];
        for (size_t end = n; end > 0;) {
            size_t begin = end > sizeof chunk ? end - sizeof chunk : 0, len = end - begin;
            memcpy(chunk, p + begin, len);
            float *o = out + begin;
            for (size_t k = 0; k < len; k++) o[k] = (float)chunk[k] / 255.0f;
            end = begin;
        }
    } else if (out != x) {
        memcpy(out, x, n * sizeof *out);
    }
}

void herd_dataset_to_f32(const herd_dataset *ds, const void *x, int64_t count, float *out) {
    if (ds->ops->to_f32) ds->ops->to_f32(ds, x, count, out);
    else herd_samples_to_f32(ds->x.dtype, x, (size_t)count * (size_t)herd_tensor_numel(&ds->x), out);
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

static void slice_to_f32(const herd_dataset *ds, const void *x, int64_t count, float *out) {
    const slice_impl *sl = ds->impl;
    herd_dataset_to_f32(sl->base, x, count, out);
}

static void slice_close(herd_dataset *ds) {
    free(ds->impl);
    ds->impl = NULL;
}

static const herd_dataset_ops slice_ops = {slice_get, slice_close, slice_to_f32};

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

static const herd_dataset_ops norm_ops = {norm_get, norm_close, norm_to_f32};

herd_status herd_dataset_normalize(herd_dataset **out, herd_dataset *base, int channels, const double *mean,
                                   const double *std, herd_error *err) {
    *out = NULL;
    int64_t numel = herd_tensor_numel(&base->x);
    char xs[96];
    if (channels < 1 || numel < 1 || numel % channels != 0)
        return herd_fail(err, HERD_ESHAPE, "%s: samples of %s do not split into %d channels to normalise",
                         base->source, herd_tensor_shape_str(&base->x, xs, sizeof xs), channels);
    if (!herd_dtype_to_f32_ok(base->x.dtype))
        return herd_fail(err, HERD_ESHAPE, "%s: %s samples cannot be normalised", base->source,
                         herd_dtype_name(base->x.dtype));
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
    if (!herd_dtype_to_f32_ok(ds->x.dtype))
        return herd_fail(err, HERD_ESHAPE, "%s: %s samples cannot become the model's f32 input", ds->source,
                         herd_dtype_name(ds->x.dtype));
    size_t sample = (size_t)herd_tensor_numel(&ds->x), ybytes = herd_tensor_bytes(&ds->y);
    for (int b = 0; b < B; b++) {
        float *xb = x + (size_t)b * sample; /* the stored sample fits: no dtype is wider than f32 here */
        herd_status st = ds->ops->get(ds, idx[b], xb, (uint8_t *)y + (size_t)b * ybytes, err);
        if (st != HERD_OK) return st;
        herd_dataset_to_f32(ds, xb, 1, xb);
    }
    return HERD_OK;
}
