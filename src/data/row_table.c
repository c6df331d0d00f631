/* The growing row table behind the CSV and SQL readers (row_table.h): doubling growth with
 * overflow checks, and strict parsing of feature and label text. */
#include "data/row_table.h"

#include "data/category.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void herdi_row_table_init(row_table *t, int features) {
    memset(t, 0, sizeof *t);
    t->features = features;
    t->max_label = -1;
}


herd_status herdi_row_table_columns(row_table *t, const categories *c, const char *const *names, int ncols,
                              int label_at, int target_f32, int **role, const char *where, herd_error *err) {
    if (!(*role = herd_malloc_array((size_t)ncols, sizeof **role)))
        return herd_fail(err, HERD_ENOMEM, "%s: out of memory for %d columns", where, ncols);
    int features = herdi_categories_columns(c, names, ncols, label_at, *role, where, err);
    if (features < 0) return HERD_EFORMAT;
    herdi_row_table_init(t, features);
    t->n_cat = c->ids;
    t->n_cat_fields = c->n;
    for (int k = 0; k < c->n; k++) t->cat_len[k] = c->len[k];
    t->y_f32 = target_f32;
    return HERD_OK;
}

int32_t *herdi_row_table_cats(row_table *t) { return t->cat + (size_t)(t->n - 1) * (size_t)t->n_cat; }

float *herdi_row_table_push(row_table *t, int32_t label) {
    if (t->n == t->cap) {
        int64_t cap = t->cap ? t->cap * 2 : 256;
        size_t xbytes;
        if (!herd_mul_size((size_t)cap, (size_t)t->features, &xbytes) || !herd_mul_size(xbytes, sizeof(float), &xbytes))
            return NULL;
        float *x = realloc(t->x, xbytes ? xbytes : 1);
        if (!x) return NULL;
        t->x = x;
        if (t->n_cat) {
            int32_t *c = herd_malloc_array((size_t)cap * (size_t)t->n_cat, sizeof *c);
            if (!c) return NULL;
            if (t->n) memcpy(c, t->cat, (size_t)t->n * (size_t)t->n_cat * sizeof *c);
            free(t->cat);
            t->cat = c;
        }
        int32_t *y = herd_malloc_array((size_t)cap, sizeof *y);
        if (!y) return NULL;
        if (t->n) memcpy(y, t->y, (size_t)t->n * sizeof *y);
        free(t->y);
        t->y = y;
        t->cap = cap;
    }
    t->y[t->n] = label;
    if (label > t->max_label) t->max_label = label;
    return t->x + (size_t)t->n++ * (size_t)t->features;
}

herd_status herdi_row_table_finish(row_table *t, herd_dataset **out, const char *source, const char *note, herd_error *err) {
    *out = NULL;
    if (t->n == 0) {
        herdi_row_table_free(t);
        return herd_fail(err, HERD_EFORMAT, "%s: no data rows", source);
    }
    int classes = t->max_label + 1 < 2 ? 2 : t->max_label + 1, nf = 0;
    int64_t xd[2] = {t->n, t->features};
    herd_tensor fields[HERD_MAX_FIELDS + 1];
    if (t->features) fields[nf++] = herd_tensor_make(HERD_F32, 2, xd, t->x);
    else free(t->x);
    t->x = NULL;
    int ok = 1;
    for (int k = 0, at = 0; k < t->n_cat_fields; at += t->cat_len[k++]) { /* column k's ids, as its own field */
        size_t len = (size_t)t->cat_len[k];
        int64_t cd[2] = {t->n, (int64_t)len};
        int32_t *col = herd_malloc_array((size_t)t->n * len, sizeof *col);
        ok &= col != NULL;
        for (int64_t i = 0; col && i < t->n; i++)
            memcpy(col + (size_t)i * len, t->cat + (size_t)i * (size_t)t->n_cat + (size_t)at, len * sizeof *col);
        fields[nf++] = herd_tensor_make(HERD_I32, 2, cd, col);
    }
    herd_status st;
    if (!ok || nf > HERD_MAX_FIELDS) {
        for (int k = 0; k < nf; k++) free(fields[k].data);
        free(t->y);
        st = ok ? herd_fail(err, HERD_EARG, "%s: more than %d fields", source, HERD_MAX_FIELDS)
                : herd_fail(err, HERD_ENOMEM, "%s: out of memory", source);
    } else {
        /* f32 targets: the bits stored in y are the floats (same size) */
        st = herd_dataset_from_memory_fields(out, fields, nf, herd_tensor_make(t->y_f32 ? HERD_F32 : HERD_I32, 1, &t->n, t->y),
                                             classes, source, err);
    }
    t->y = NULL; /* owned by the dataset now, or freed by it on failure */
    if (!st && note) snprintf((*out)->note, sizeof (*out)->note, "%s", note);
    if (!st && t->y_f32) (*out)->num_classes = 0; /* values, not classes (as every reader of f32 targets) */
    herdi_row_table_free(t);
    return st;
}

void herdi_row_table_free(row_table *t) {
    free(t->x);
    free(t->y);
    free(t->cat);
    row_table kept = *t;
    herdi_row_table_init(t, kept.features);
    t->n_cat = kept.n_cat, t->n_cat_fields = kept.n_cat_fields, t->y_f32 = kept.y_f32;
    memcpy(t->cat_len, kept.cat_len, sizeof t->cat_len);
}

static int only_blanks(const char *s) {
    while (*s == ' ' || *s == '\t') s++;
    return *s == 0;
}

int herdi_row_parse_feature(const char *s, float *out) {
    char *end;
    while (*s == ' ' || *s == '\t') s++;
    if (!*s) return 0;
    errno = 0;
    double v = strtod(s, &end);
    if (end == s || !only_blanks(end) || !isfinite(v) || fabs(v) > 3.4028234663852886e38) return 0;
    *out = (float)v;
    return 1;
}

int herdi_row_table_target(row_table *t, const char *s) {
    int32_t v;
    if (t->y_f32) {
        float f;
        if (!herdi_row_parse_feature(s, &f)) return 0;
        memcpy(&v, &f, sizeof v);
    } else {
        if (!herdi_row_parse_label(s, &v)) return 0;
        if (v > t->max_label) t->max_label = v;
    }
    t->y[t->n - 1] = v;
    return 1;
}

const char *herdi_row_target_what(const row_table *t) { return t->y_f32 ? "a finite number" : "a class id (an integer >= 0)"; }

int herdi_row_parse_label(const char *s, int32_t *out) {
    char *end;
    while (*s == ' ' || *s == '\t') s++;
    if (*s < '0' || *s > '9') return 0; /* no sign, no blank: a class id */
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno || !only_blanks(end) || v >= INT32_MAX) return 0;
    *out = (int32_t)v;
    return 1;
}
