/* Datasets behind one interface: the in-memory 8-bit and float datasets readers build,
 * slices of a dataset (validation splits), normalised views, and batch assembly. */
#include "herd/data.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* An in-memory dataset: n samples of c*h*w values, 8-bit (scaled to [0,1] by get) or float. */
typedef struct memory_impl {
    void *data;      /* n * sample values, NCHW */
    int32_t *labels; /* n */
    size_t sample;   /* values per sample */
    int is_u8;
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

static herd_status memory_get(const herd_dataset *ds, int64_t i, float *x, int32_t *y, herd_error *err) {
    herd_status st = check_index(ds, i, err);
    if (st != HERD_OK) return st;
    const memory_impl *im = ds->impl;
    if (im->is_u8) {
        const uint8_t *src = (const uint8_t *)im->data + (size_t)i * im->sample;
        /* Dividing (not multiplying by 1/255) keeps 255 at exactly 1.0f. */
        for (size_t k = 0; k < im->sample; k++) x[k] = (float)src[k] / 255.0f;
    } else {
        memcpy(x, (const float *)im->data + (size_t)i * im->sample, im->sample * sizeof *x);
    }
    *y = im->labels[i];
    return HERD_OK;
}

static void memory_close(herd_dataset *ds) {
    memory_impl *im = ds->impl;
    if (!im) return;
    free(im->data);
    free(im->labels);
    free(im);
    ds->impl = NULL;
}

static const herd_dataset_ops memory_ops = {memory_get, memory_close};

static void set_source(herd_dataset *ds, const char *source) {
    snprintf(ds->source, sizeof ds->source, "%s", source ? source : "(memory)");
}

/* Takes ownership of data and labels, also on failure. */
static herd_status memory_dataset(herd_dataset **out, void *data, int is_u8, int32_t *labels, int64_t n, int c, int h,
                                  int w, int num_classes, const char *source, herd_error *err) {
    herd_dataset *ds = NULL;
    memory_impl *im = NULL;
    herd_status st;
    *out = NULL;
    size_t sample = 0, total = 0;
    if (n < 0 || c <= 0 || h <= 0 || w <= 0 || num_classes <= 0 || !herd_mul_size((size_t)c, (size_t)h, &sample) ||
        !herd_mul_size(sample, (size_t)w, &sample) || !herd_mul_size(sample, (size_t)n, &total)) {
        st = herd_fail(err, HERD_EARG, "%s: bad dataset shape n=%lld c=%d h=%d w=%d classes=%d",
                       source ? source : "(memory)", (long long)n, c, h, w, num_classes);
        goto fail;
    }
    if (n > 0 && (!data || !labels)) {
        st = herd_fail(err, HERD_EARG, "%s: dataset of %lld samples without %s or label buffer",
                       source ? source : "(memory)", (long long)n, is_u8 ? "image" : "feature");
        goto fail;
    }
    ds = calloc(1, sizeof *ds);
    im = calloc(1, sizeof *im);
    if (!ds || !im) {
        st = herd_fail(err, HERD_ENOMEM, "%s: out of memory for dataset", source ? source : "(memory)");
        goto fail;
    }
    *im = (memory_impl){data, labels, sample, is_u8};
    ds->ops = &memory_ops;
    ds->n = n;
    ds->c = c;
    ds->h = h;
    ds->w = w;
    ds->num_classes = num_classes;
    set_source(ds, source);
    ds->impl = im;
    *out = ds;
    return HERD_OK;
fail:
    free(data);
    free(labels);
    free(im);
    free(ds);
    return st;
}

herd_status herd_dataset_from_u8(herd_dataset **out, uint8_t *images, int32_t *labels, int64_t n, int c, int h, int w,
                                 int num_classes, const char *source, herd_error *err) {
    return memory_dataset(out, images, 1, labels, n, c, h, w, num_classes, source, err);
}

herd_status herd_dataset_from_f32(herd_dataset **out, float *x, int32_t *labels, int64_t n, int c, int h, int w,
                                  int num_classes, const char *source, herd_error *err) {
    return memory_dataset(out, x, 0, labels, n, c, h, w, num_classes, source, err);
}

static herd_status slice_get(const herd_dataset *ds, int64_t i, float *x, int32_t *y, herd_error *err) {
    herd_status st = check_index(ds, i, err);
    if (st != HERD_OK) return st;
    const slice_impl *sl = ds->impl;
    return sl->base->ops->get(sl->base, sl->begin + i, x, y, err);
}

static void slice_close(herd_dataset *ds) {
    free(ds->impl);
    ds->impl = NULL;
}

static const herd_dataset_ops slice_ops = {slice_get, slice_close};

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
    double *norm; /* c means, then c stds */
} norm_impl;

static herd_status norm_get(const herd_dataset *ds, int64_t i, float *x, int32_t *y, herd_error *err) {
    const norm_impl *nm = ds->impl;
    herd_status st = nm->base->ops->get(nm->base, i, x, y, err);
    if (st == HERD_OK) herd_normalize_samples(x, 1, ds->c, (int64_t)ds->h * ds->w, nm->norm, nm->norm + ds->c);
    return st;
}

static void norm_close(herd_dataset *ds) {
    norm_impl *nm = ds->impl;
    if (!nm) return;
    free(nm->norm);
    free(nm);
    ds->impl = NULL;
}

static const herd_dataset_ops norm_ops = {norm_get, norm_close};

herd_status herd_dataset_normalize(herd_dataset **out, herd_dataset *base, const double *mean, const double *std,
                                   herd_error *err) {
    herd_dataset *ds = calloc(1, sizeof *ds);
    norm_impl *nm = calloc(1, sizeof *nm);
    *out = NULL;
    if (!ds || !nm || !(nm->norm = herd_malloc_array(2 * (size_t)base->c, sizeof(double)))) {
        free(nm);
        free(ds);
        return herd_fail(err, HERD_ENOMEM, "%s: out of memory for a normalised view", base->source);
    }
    nm->base = base;
    memcpy(nm->norm, mean, (size_t)base->c * sizeof(double));
    memcpy(nm->norm + base->c, std, (size_t)base->c * sizeof(double));
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

herd_status herd_dataset_batch(const herd_dataset *ds, const int64_t *idx, int B, float *x, int32_t *y,
                               herd_error *err) {
    if (B < 0) return herd_fail(err, HERD_EARG, "%s: negative batch size %d", ds->source, B);
    size_t sample = (size_t)ds->c * (size_t)ds->h * (size_t)ds->w;
    for (int b = 0; b < B; b++) {
        herd_status st = ds->ops->get(ds, idx[b], x + (size_t)b * sample, y + b, err);
        if (st != HERD_OK) return st;
    }
    return HERD_OK;
}
