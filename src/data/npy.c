/* NumPy .npy reader: features are mapped (mmap), so open costs the same for any size and
 * get() copies one sample (u8 as it is, other dtypes converted to f32); targets (integer class
 * ids, or float values for regression and binary targets) are read and checked at open. */
#include "herd/data.h"
#include "data/mapped_read.h"
#include "io/atomic_file.h"
#include "io/input_file.h"

#include <errno.h>
#include <fcntl.h>
#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#define NPY_MAX_DIMS 8

typedef enum npy_kind { NPY_F4, NPY_F8, NPY_U1, NPY_I1, NPY_I4, NPY_I8 } npy_kind;

typedef struct npy_dtype {
    const char *descr;
    npy_kind kind;
    size_t size;
} npy_dtype;

static const npy_dtype npy_dtypes[] = {
    {"<f4", NPY_F4, 4}, {"<f8", NPY_F8, 8}, {"|u1", NPY_U1, 1}, {"<u1", NPY_U1, 1}, {"|b1", NPY_U1, 1},
    {"|i1", NPY_I1, 1}, {"<i1", NPY_I1, 1}, {"<i4", NPY_I4, 4}, {"<i8", NPY_I8, 8},
};

typedef struct npy_array {
    void *map;
    size_t map_len;
    const uint8_t *data; /* inside map, possibly unaligned: read with memcpy */
    const npy_dtype *dtype;
    int ndim;
    int64_t dims[NPY_MAX_DIMS];
} npy_array;

typedef struct npy_impl {
    npy_array x;
    void *targets;     /* N targets of y_bytes each: i32 class ids or f32 values */
    size_t y_bytes;
    size_t sample; /* elements per sample */
    int ids;       /* integer features as i32 ids (herd_npy_open_ids) */
    int64_t *bag;  /* herd_npy_open_bags: N + 1 offsets, bag i = x[bag[i], bag[i + 1]); else NULL */
} npy_impl;

static void npy_unmap(npy_array *a) {
    if (a->map) munmap(a->map, a->map_len);
    a->map = NULL;
}

typedef struct dict_parser {
    const char *p, *end, *path;
    herd_error *err;
} dict_parser;

static void dict_ws(dict_parser *d) {
    while (d->p < d->end && (*d->p == ' ' || *d->p == '\t' || *d->p == '\n' || *d->p == '\r')) d->p++;
}

static herd_status dict_bad(dict_parser *d, const char *what) {
    return herd_fail(d->err, HERD_EFORMAT, "%s: bad header dict: %s", d->path, what);
}

static herd_status dict_expect(dict_parser *d, char c, const char *what) {
    dict_ws(d);
    if (d->p >= d->end || *d->p != c) return dict_bad(d, what);
    d->p++;
    return HERD_OK;
}

static herd_status dict_string(dict_parser *d, char *out, size_t cap) {
    dict_ws(d);
    if (d->p >= d->end || (*d->p != '\'' && *d->p != '"')) return dict_bad(d, "expected a quoted string");
    char q = *d->p++;
    size_t n = 0;
    while (d->p < d->end && *d->p != q) {
        if (n + 1 >= cap) return dict_bad(d, "string too long");
        out[n++] = *d->p++;
    }
    if (d->p >= d->end) return dict_bad(d, "unterminated string");
    d->p++;
    out[n] = 0;
    return HERD_OK;
}

static herd_status dict_shape(dict_parser *d, npy_array *a) {
    herd_status st = dict_expect(d, '(', "shape is not a tuple");
    if (st != HERD_OK) return st;
    a->ndim = 0;
    for (;;) {
        dict_ws(d);
        if (d->p < d->end && *d->p == ')') break;
        if (a->ndim == NPY_MAX_DIMS) return dict_bad(d, "shape has more than 8 dimensions");
        if (d->p >= d->end || *d->p < '0' || *d->p > '9') return dict_bad(d, "shape holds a non-integer");
        int64_t v = 0;
        while (d->p < d->end && *d->p >= '0' && *d->p <= '9') {
            if (v > (INT64_MAX - 9) / 10) return dict_bad(d, "shape dimension too large");
            v = v * 10 + (*d->p++ - '0');
        }
        a->dims[a->ndim++] = v;
        dict_ws(d);
        if (d->p < d->end && *d->p == ',') {
            d->p++;
            continue;
        }
        if (d->p >= d->end || *d->p != ')') return dict_bad(d, "expected ',' or ')' in shape");
    }
    d->p++;
    return HERD_OK;
}

/* The header is a Python dict literal: {'descr': '<f4', 'fortran_order': False, 'shape': (3, 4), } */
static herd_status npy_parse_dict(const char *path, const char *text, size_t len, npy_array *a, herd_error *err) {
    dict_parser d = {text, text + len, path, err};
    char key[32], descr[32] = "";
    int seen = 0, fortran = 0;
    herd_status st = dict_expect(&d, '{', "does not start with '{'");
    if (st != HERD_OK) return st;
    for (;;) {
        dict_ws(&d);
        if (d.p < d.end && *d.p == '}') break;
        if ((st = dict_string(&d, key, sizeof key)) != HERD_OK) return st;
        if ((st = dict_expect(&d, ':', "expected ':' after a key")) != HERD_OK) return st;
        if (strcmp(key, "descr") == 0) {
            st = dict_string(&d, descr, sizeof descr);
            seen |= 1;
        } else if (strcmp(key, "fortran_order") == 0) {
            dict_ws(&d);
            if ((size_t)(d.end - d.p) >= 4 && memcmp(d.p, "True", 4) == 0)
                fortran = 1, d.p += 4;
            else if ((size_t)(d.end - d.p) >= 5 && memcmp(d.p, "False", 5) == 0)
                d.p += 5;
            else
                return dict_bad(&d, "fortran_order is neither True nor False");
            seen |= 2;
        } else if (strcmp(key, "shape") == 0) {
            st = dict_shape(&d, a);
            seen |= 4;
        } else {
            return herd_fail(err, HERD_EFORMAT, "%s: bad header dict: unknown key '%s'", path, key);
        }
        if (st != HERD_OK) return st;
        dict_ws(&d);
        if (d.p < d.end && *d.p == ',') {
            d.p++;
            continue;
        }
        if (d.p >= d.end || *d.p != '}') return dict_bad(&d, "expected ',' or '}'");
    }
    d.p++;
    dict_ws(&d);
    if (d.p != d.end) return dict_bad(&d, "text after the closing '}'");
    if (seen != 7) return dict_bad(&d, "needs descr, fortran_order and shape");
    if (fortran)
        return herd_fail(err, HERD_EUNSUPPORTED, "%s: fortran_order True is not supported (save a C-order array)",
                         path);
    if (descr[0] == '>')
        return herd_fail(err, HERD_EUNSUPPORTED, "%s: dtype '%s' big-endian is not supported", path, descr);
    a->dtype = NULL;
    for (size_t i = 0; i < sizeof npy_dtypes / sizeof npy_dtypes[0]; i++)
        if (strcmp(descr, npy_dtypes[i].descr) == 0) a->dtype = &npy_dtypes[i];
    if (!a->dtype)
        return herd_fail(err, HERD_EUNSUPPORTED,
                         "%s: dtype '%s' is not supported (<f4 <f8 |u1 |i1 <i4 <i8 are)", path, descr);
    return HERD_OK;
}

static void shape_text(const npy_array *a, char *buf, size_t cap) {
    size_t k = (size_t)snprintf(buf, cap, "(");
    for (int i = 0; i < a->ndim && k < cap; i++)
        k += (size_t)snprintf(buf + k, cap - k, i ? ", %lld" : "%lld", (long long)a->dims[i]);
    if (k < cap) snprintf(buf + k, cap - k, ")");
}

static herd_status npy_map(const char *path, npy_array *a, herd_error *err) {
    struct stat sb;
    herd_status st;
    memset(a, 0, sizeof *a);
    int fd;
    if ((st = herdi_input_open(path, &fd, &sb, err))) return st;
    if (sb.st_size < 10) {
        close(fd);
        return herd_fail(err, HERD_EFORMAT, "%s: %lld bytes is too short for a .npy header", path,
                         (long long)sb.st_size);
    }
    a->map_len = (size_t)sb.st_size;
    a->map = mmap(NULL, a->map_len, PROT_READ, MAP_PRIVATE, fd, 0);
    close(fd);
    if (a->map == MAP_FAILED) {
        a->map = NULL;
        return herd_fail(err, HERD_EIO, "%s: cannot map: %s", path, strerror(errno));
    }
    const uint8_t *b = a->map;
    if (memcmp(b, "\x93NUMPY", 6) != 0) {
        st = herd_fail(err, HERD_EFORMAT, "%s: bad magic (expected \\x93NUMPY)", path);
        goto fail;
    }
    size_t hdr_at, hdr_len;
    if (b[6] == 1) {
        hdr_at = 10;
        hdr_len = (size_t)b[8] | (size_t)b[9] << 8;
    } else if (b[6] == 2 || b[6] == 3) {
        if (a->map_len < 12) {
            st = herd_fail(err, HERD_EFORMAT, "%s: truncated version %d header", path, b[6]);
            goto fail;
        }
        hdr_at = 12;
        hdr_len = (size_t)b[8] | (size_t)b[9] << 8 | (size_t)b[10] << 16 | (size_t)b[11] << 24;
    } else {
        st = herd_fail(err, HERD_EUNSUPPORTED, "%s: format version %d.%d is not supported (1.0, 2.0, 3.0 are)", path,
                       b[6], b[7]);
        goto fail;
    }
    if (hdr_len > a->map_len - hdr_at) {
        st = herd_fail(err, HERD_EFORMAT, "%s: header of %zu bytes runs past the end of the file", path, hdr_len);
        goto fail;
    }
    if ((st = npy_parse_dict(path, (const char *)b + hdr_at, hdr_len, a, err)) != HERD_OK) goto fail;
    size_t count = 1, bytes;
    for (int i = 0; i < a->ndim; i++)
        if (!herd_mul_size(count, (size_t)a->dims[i], &count)) count = (size_t)-1;
    char shape[160];
    shape_text(a, shape, sizeof shape);
    size_t have = a->map_len - hdr_at - hdr_len;
    int too_big = count == (size_t)-1 || !herd_mul_size(count, a->dtype->size, &bytes);
    if (too_big || bytes != have) { /* an overflowing product is reported as such, never as its wrapped value */
        st = herd_fail(err, HERD_EFORMAT, "%s: shape %s of %s needs %s%zu bytes of data, the file has %zu", path,
                       shape, a->dtype->descr, too_big ? "more than " : "", too_big ? SIZE_MAX : bytes, have);
        goto fail;
    }
    a->data = b + hdr_at + hdr_len;
    return HERD_OK;
fail:
    npy_unmap(a);
    return st;
}

static double npy_value(const npy_array *a, size_t k) {
    const uint8_t *p = a->data + k * a->dtype->size;
    switch (a->dtype->kind) {
    case NPY_F4: {
        float v;
        memcpy(&v, p, 4);
        return v;
    }
    case NPY_F8: {
        double v;
        memcpy(&v, p, 8);
        return v;
    }
    case NPY_U1: return *p;
    case NPY_I1: return (int8_t)*p;
    case NPY_I4: {
        int32_t v;
        memcpy(&v, p, 4);
        return v;
    }
    case NPY_I8: {
        int64_t v;
        memcpy(&v, p, 8);
        return (double)v;
    }
    }
    return 0;
}

/* get() proper, reading the mapped file: npy_get runs it under the SIGBUS guard. */
static herd_status npy_get_mapped(const herd_dataset *ds, int64_t i, void *xv, void *y, herd_error *err) {
    const npy_impl *im = ds->impl;
    size_t base = (size_t)i * im->sample;
    if (im->bag) { /* the bag's ids, then HERD_NO_ID in the slots it leaves */
        int32_t *x = xv;
        int64_t n = im->bag[i + 1] - im->bag[i];
        for (int64_t k = 0; k < n; k++) {
            double v = npy_value(&im->x, (size_t)(im->bag[i] + k));
            if (v < 0 || v > INT32_MAX)
                return herd_fail(err, HERD_EFORMAT, "%s: bag %lld: id %.0f at position %lld is negative or does not fit "
                                 "int32", ds->source, (long long)i, v, (long long)(im->bag[i] + k));
            x[k] = (int32_t)v;
        }
        for (size_t k = (size_t)n; k < im->sample; k++) x[k] = HERD_NO_ID;
    } else if (im->ids) { /* int32 ids; wider integers must fit */
        int32_t *x = xv;
        for (size_t k = 0; k < im->sample; k++) {
            double v = npy_value(&im->x, base + k);
            if (v < INT32_MIN || v > INT32_MAX)
                return herd_fail(err, HERD_EFORMAT, "%s: sample %lld: id %.0f does not fit int32", ds->source,
                                 (long long)i, v);
            x[k] = (int32_t)v;
        }
    } else if (im->x.dtype->kind == NPY_U1 || im->x.dtype->kind == NPY_F4) { /* the stored dtype itself */
        memcpy(xv, im->x.data + base * im->x.dtype->size, im->sample * im->x.dtype->size);
    } else {
        float *x = xv;
        for (size_t k = 0; k < im->sample; k++) x[k] = (float)npy_value(&im->x, base + k);
    }
    memcpy(y, (const char *)im->targets + (size_t)i * im->y_bytes, im->y_bytes);
    return HERD_OK;
}

static herd_status npy_get(const herd_dataset *ds, int64_t i, void *x, void *y, herd_error *err) {
    if (i < 0 || i >= ds->n)
        return herd_fail(err, HERD_EARG, "%s: sample %lld out of range [0, %lld)", ds->source, (long long)i,
                         (long long)ds->n);
    return herdi_mapped_get_guarded(ds->source, npy_get_mapped, ds, i, x, y, err);
}

static void npy_close(herd_dataset *ds) {
    npy_impl *im = ds->impl;
    if (!im) return;
    npy_unmap(&im->x);
    free(im->targets);
    free(im->bag);
    free(im);
    ds->impl = NULL;
}

static const herd_dataset_ops npy_ops = {npy_get, npy_close, NULL, NULL};

herd_status herd_npy_open(herd_dataset **out, const char *x_path, const char *y_path, herd_error *err) {
    return herd_npy_open_ids(out, x_path, y_path, 0, err);
}

/* The offsets of offsets_path (1-D integers, nn.EmbeddingBag's: bag i is ids[off[i], off[i+1]), the
 * last to the end of the n ids) into im->bag (N + 1 of them); *longest = the longest bag. Offsets
 * that do not start at 0, decrease, leave a bag empty or pass the end are errors naming the row. */
static herd_status read_offsets(const char *offsets_path, int64_t n, npy_impl *im, int64_t *count, int64_t *longest,
                                herd_error *err) {
    npy_array o;
    herd_status st = npy_map(offsets_path, &o, err);
    if (st) return st;
    if (o.ndim != 1 || o.dtype->kind == NPY_F4 || o.dtype->kind == NPY_F8 || o.dims[0] < 1) {
        npy_unmap(&o);
        return herd_fail(err, HERD_EFORMAT, "%s: offsets are a 1-D array of integers, one a bag (at least one)",
                         offsets_path);
    }
    *count = o.dims[0];
    if (!(im->bag = herd_malloc_array((size_t)*count + 1, sizeof *im->bag))) {
        npy_unmap(&o);
        return herd_fail(err, HERD_ENOMEM, "%s: out of memory for %lld offsets", offsets_path, (long long)*count);
    }
    *longest = 0;
    for (int64_t i = 0; i <= *count && !st; i++) {
        double v = i < *count ? npy_value(&o, (size_t)i) : (double)n;
        im->bag[i] = (int64_t)v;
        if (i == 0 && v != 0)
            st = herd_fail(err, HERD_EFORMAT, "%s: row 0: the first offset is %.0f, not 0", offsets_path, v);
        else if (i && v < (double)im->bag[i - 1])
            st = herd_fail(err, HERD_EFORMAT, "%s: row %lld: offset %.0f is below the one before (%lld): offsets may not "
                           "decrease", offsets_path, (long long)i, v, (long long)im->bag[i - 1]);
        else if (i && v > (double)n)
            st = herd_fail(err, HERD_EFORMAT, "%s: row %lld: offset %.0f is past the %lld ids", offsets_path, (long long)i,
                           v, (long long)n);
        else if (i && v == (double)im->bag[i - 1])
            st = herd_fail(err, HERD_EFORMAT, "%s: row %lld: bag %lld is empty (%s)", offsets_path,
                           (long long)(i < *count ? i : i - 1), (long long)(i - 1),
                           i < *count ? "its offset equals the next one" : "the last offset is the number of ids");
        else if (i && im->bag[i] - im->bag[i - 1] > *longest)
            *longest = im->bag[i] - im->bag[i - 1];
    }
    npy_unmap(&o);
    return st;
}

herd_status herd_npy_open_ids(herd_dataset **out, const char *x_path, const char *y_path, int ids, herd_error *err) {
    return herd_npy_open_bags(out, x_path, NULL, y_path, ids, 0, err);
}

herd_status herd_npy_open_bags(herd_dataset **out, const char *x_path, const char *offsets_path, const char *y_path,
                               int ids, int64_t len, herd_error *err) {
    npy_impl *im = NULL;
    npy_array y = {0};
    herd_dataset *ds = NULL;
    herd_status st;
    *out = NULL;
    im = calloc(1, sizeof *im);
    ds = calloc(1, sizeof *ds);
    if (!im || !ds) {
        st = herd_fail(err, HERD_ENOMEM, "%s: out of memory", x_path);
        goto fail;
    }
    if ((st = npy_map(x_path, &im->x, err)) != HERD_OK) goto fail;
    const npy_array *x = &im->x;
    /* the sample's dims: (N,) -> (1), (N,F) -> (F), (N,H,W) -> (1,H,W), (N,C,H,W) -> (C,H,W) */
    int64_t d[3] = {1, 1, 1};
    int sdim = x->ndim == 1 ? 1 : x->ndim == 3 ? 3 : x->ndim - 1;
    switch (x->ndim) {
    case 1: break;
    case 2: d[0] = x->dims[1]; break;
    case 3: d[1] = x->dims[1], d[2] = x->dims[2]; break;
    case 4: d[0] = x->dims[1], d[1] = x->dims[2], d[2] = x->dims[3]; break;
    default:
        st = herd_fail(err, HERD_EFORMAT, "%s: features of %d dimensions (expected (N,), (N,F), (N,H,W) or (N,C,H,W))",
                       x_path, x->ndim);
        goto fail;
    }
    if (x->dims[0] == 0) {
        st = herd_fail(err, HERD_EFORMAT, "%s: no samples (N = 0)", x_path);
        goto fail;
    }
    for (int k = 0; k < 3; k++)
        if (d[k] <= 0 || d[k] > INT32_MAX) {
            st = herd_fail(err, HERD_EFORMAT, "%s: sample dimension %lld is empty or too large", x_path,
                           (long long)d[k]);
            goto fail;
        }
    im->sample = (size_t)(d[0] * d[1]) * (size_t)d[2]; /* bounded by the mapped size */
    im->ids = ids || offsets_path;
    int64_t n_samples = x->dims[0];
    if (offsets_path) { /* the flat ids of every bag, and their offsets: samples of len ids */
        int64_t longest = 0;
        if (x->ndim != 1) {
            st = herd_fail(err, HERD_EFORMAT, "%s: with offsets= the ids are one flat 1-D array (all bags one after the "
                           "other), not %d-D", x_path, x->ndim);
            goto fail;
        }
        if ((st = read_offsets(offsets_path, x->dims[0], im, &n_samples, &longest, err))) goto fail;
        if (len && longest > len) {
            for (int64_t i = 0; i < n_samples; i++)
                if (im->bag[i + 1] - im->bag[i] > len) {
                    st = herd_fail(err, HERD_EFORMAT, "%s: row %lld: bag %lld holds %lld ids, more than len=%lld", offsets_path,
                                   (long long)i, (long long)i, (long long)(im->bag[i + 1] - im->bag[i]), (long long)len);
                    goto fail;
                }
        }
        d[0] = len ? len : longest;
        if (d[0] > (1 << 24)) {
            st = herd_fail(err, HERD_EFORMAT, "%s: bags of %lld ids are too long", offsets_path, (long long)d[0]);
            goto fail;
        }
        im->sample = (size_t)d[0];
        sdim = 1;
    }
    if (im->ids && (x->dtype->kind == NPY_F4 || x->dtype->kind == NPY_F8)) {
        st = herd_fail(err, HERD_EFORMAT, "%s: x=i32 reads integer features as ids, but these are floats", x_path);
        goto fail;
    }
    if (!y_path) { /* unlabelled (herd predict): one zero class id a sample, which nothing reads */
        im->y_bytes = 4;
        im->targets = calloc((size_t)n_samples, 4);
        if (!im->targets) {
            st = herd_fail(err, HERD_ENOMEM, "%s: out of memory", x_path);
            goto fail;
        }
        ds->ops = &npy_ops;
        ds->n = n_samples;
        ds->x = herd_tensor_make(im->ids ? HERD_I32 : x->dtype->kind == NPY_U1 ? HERD_U8 : HERD_F32, sdim, d, NULL);
        ds->y = herd_tensor_make(HERD_I32, 0, NULL, NULL);
        snprintf(ds->source, sizeof ds->source, "%s", x_path);
        ds->impl = im;
        *out = ds;
        return HERD_OK;
    }
    if ((st = npy_map(y_path, &y, err)) != HERD_OK) goto fail;
    char shape[160];
    shape_text(&y, shape, sizeof shape);
    /* integers: class ids, one per sample ((N,) or (N,1), >= 0) or per position ((N,T...), where
     * negative ids are left for the loss's ignore index); floats: f32 targets ((N,) or (N,1) one
     * value, (N,K...) of the sample's shape) */
    int is_float = y.dtype->kind == NPY_F4 || y.dtype->kind == NPY_F8;
    int per_sample = y.ndim == 1 || (y.ndim == 2 && y.dims[1] == 1);
    if (y.ndim < 1 || y.ndim > 5) {
        st = herd_fail(err, HERD_EFORMAT, "%s: targets of shape %s (expected (N,) or (N, ...) with up to 4 more dims)",
                       y_path, shape);
        goto fail;
    }
    if (y.dims[0] != n_samples) {
        st = herd_fail(err, HERD_EFORMAT, "%s: %lld labels for %lld samples in %s", y_path, (long long)y.dims[0],
                       (long long)n_samples, offsets_path ? offsets_path : x_path);
        goto fail;
    }
    int64_t per = 1;
    for (int k = 1; k < y.ndim; k++) per *= y.dims[k];
    if (per < 1 || per > (1 << 24)) {
        st = herd_fail(err, HERD_EFORMAT, "%s: targets of shape %s are empty or too large", y_path, shape);
        goto fail;
    }
    im->y_bytes = (size_t)per * 4;
    im->targets = herd_malloc_array((size_t)y.dims[0], im->y_bytes);
    if (!im->targets) {
        st = herd_fail(err, HERD_ENOMEM, "%s: out of memory for %lld targets", y_path, (long long)y.dims[0]);
        goto fail;
    }
    int64_t max_label = 1;
    for (int64_t i = 0; i < y.dims[0] * per; i++) {
        double v = npy_value(&y, (size_t)i);
        if (is_float) {
            if (!isfinite(v) || fabs(v) > FLT_MAX) {
                st = herd_fail(err, HERD_EFORMAT, "%s: target %g of sample %lld is not a finite float", y_path, v,
                               (long long)(i / per));
                goto fail;
            }
            ((float *)im->targets)[i] = (float)v;
            continue;
        }
        if (v >= INT32_MAX || v < (per_sample ? 0 : INT32_MIN)) {
            st = herd_fail(err, HERD_EFORMAT, "%s: label %lld of sample %lld is not a class id (an integer >= 0)",
                           y_path, (long long)v, (long long)(i / per));
            goto fail;
        }
        ((int32_t *)im->targets)[i] = (int32_t)v;
        if (v > max_label) max_label = (int64_t)v;
    }
    npy_unmap(&y);
    ds->ops = &npy_ops;
    ds->n = n_samples;
    ds->x = herd_tensor_make(im->ids ? HERD_I32 : x->dtype->kind == NPY_U1 ? HERD_U8 : HERD_F32, sdim, d, NULL);
    ds->y = herd_tensor_make(is_float ? HERD_F32 : HERD_I32, per_sample ? 0 : y.ndim - 1, y.dims + 1, NULL);
    ds->num_classes = is_float ? 0 : (int)max_label + 1;
    snprintf(ds->source, sizeof ds->source, "%s", x_path);
    ds->impl = im;
    *out = ds;
    return HERD_OK;
fail:
    npy_unmap(&y);
    if (im) {
        npy_unmap(&im->x);
        free(im->targets);
        free(im->bag);
    }
    free(im);
    free(ds);
    return st;
}

herd_status herd_npy_write_f32(const char *path, const float *data, int ndim, const int64_t *dims, herd_error *err) {
    if (ndim < 1 || ndim > 8) return herd_fail(err, HERD_EARG, "%s: %d dimensions (1..8)", path, ndim);
    char shape[256] = "";
    size_t len = 0, count = 1;
    for (int d = 0; d < ndim; d++) {
        if (dims[d] < 0 || !herd_mul_size(count, (size_t)dims[d], &count))
            return herd_fail(err, HERD_EARG, "%s: array shape out of range", path);
        len += (size_t)snprintf(shape + len, sizeof shape - len, "%lld,%s", (long long)dims[d],
                                ndim > 1 && d < ndim - 1 ? " " : "");
    }
    if (ndim > 1) shape[len - 1] = 0; /* "(2, 3)" but "(5,)" */
    char header[384];
    int n = snprintf(header + 10, sizeof header - 10, "{'descr': '<f4', 'fortran_order': False, 'shape': (%s), }",
                     shape);
    size_t total = 10 + (size_t)n + 1, padded = (total + 63) / 64 * 64; /* the data starts 64-aligned */
    memcpy(header, "\x93NUMPY\x01\x00", 8);
    header[8] = (char)((padded - 10) & 0xff), header[9] = (char)((padded - 10) >> 8);
    memset(header + 10 + n, ' ', padded - 10 - (size_t)n - 1);
    header[padded - 1] = '\n';
    size_t bytes;
    if (!herd_mul_size(count, sizeof(float), &bytes)) return herd_fail(err, HERD_EARG, "%s: array too large", path);
    /* little-endian on every host herd builds on (x86-64, aarch64) */
    const void *chunks[2] = {header, data};
    size_t lens[2] = {padded, bytes};
    return herdi_io_write_file_atomic(path, chunks, lens, 2, NULL, err);
}
