/* Dataset statistics as a map-reduce (herd stats, --normalize auto): the records are cut into a
 * fixed set of blocks whatever the number of callers; each caller sums its blocks, the blocks
 * are gathered by a sum (every block is non-zero on one caller only, and x + 0 is exact) and
 * combined in block order, so every caller gets bit-identical numbers for any world size. */
#include "herd/data.h"

#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#define STATS_BLOCKS 64

void herd_data_stats_free(herd_data_stats *s) {
    free(s->mean);
    free(s->std);
    free(s->min);
    free(s->max);
    free(s->class_count);
    memset(s, 0, sizeof *s);
}

/* Whether the targets are class labels (counted per class). */
static int class_labels(const herd_dataset *ds) { return ds->y.dtype == HERD_I32 && ds->y.ndim == 0; }

/* One block's partial: sums[C], squares[C], min[C], max[C], class counts[K] (K = 0 when the
 * targets are not class labels). ybuf holds one target. */
static herd_status map_block(const herd_dataset *ds, int64_t begin, int64_t end, double *part, float *x, void *ybuf,
                             herd_error *err) {
    int64_t C, plane;
    herd_dataset_channels(ds, &C, &plane);
    int K = class_labels(ds) ? ds->num_classes : 0;
    double *sum = part, *sq = part + C, *mn = part + 2 * C, *mx = part + 3 * C, *cls = part + 4 * C;
    for (int c = 0; c < C; c++) mn[c] = INFINITY, mx[c] = -INFINITY;
    for (int64_t i = begin; i < end; i++) {
        herd_status st = herd_dataset_batch(ds, &i, 1, x, ybuf, err); /* the model's f32 input */
        if (st != HERD_OK) return st;
        if (K) {
            int32_t y = *(const int32_t *)ybuf;
            if (y < 0 || y >= K) return herd_fail(err, HERD_EFORMAT, "%s: sample %lld: label %d outside [0, %d)",
                                                  ds->source, (long long)i, (int)y, K);
            cls[y] += 1;
        }
        for (int c = 0; c < C; c++) {
            const float *p = x + (size_t)c * plane;
            double s = 0, q = 0;
            for (int64_t k = 0; k < plane; k++) {
                s += p[k], q += (double)p[k] * p[k];
                if (p[k] < mn[c]) mn[c] = p[k];
                if (p[k] > mx[c]) mx[c] = p[k];
            }
            if (!isfinite(s) || !isfinite(q)) /* a float's square is finite in double: a NaN or Inf is there */
                return herd_fail(err, HERD_EFORMAT, "%s: sample %lld: channel %d holds a non-finite value (NaN/Inf)",
                                 ds->source, (long long)i, c);
            sum[c] += s, sq[c] += q;
        }
    }
    return HERD_OK;
}

herd_status herd_data_stats_compute(herd_data_stats *out, const herd_dataset *ds, int part, int parts, herd_sum_fn sum,
                                    void *sum_ctx, herd_error *err) {
    memset(out, 0, sizeof *out);
    if (parts < 1 || part < 0 || part >= parts || (parts > 1 && !sum))
        return herd_fail(err, HERD_EARG, "stats: part %d of %d", part, parts);
    if (ds->n < 1) return herd_fail(err, HERD_EFORMAT, "%s: the dataset is empty", ds->source);
    if (ds->n_more || !herd_dtype_to_f32_ok(ds->x.dtype))
        return herd_fail(err, HERD_EARG, "%s: stats read one u8/f32 field; the samples have %d field%s, the first %s",
                         ds->source, 1 + ds->n_more, ds->n_more ? "s" : "", herd_dtype_name(ds->x.dtype));
    int64_t C64, plane;
    herd_dataset_channels(ds, &C64, &plane);
    if (C64 < 1 || C64 > INT_MAX / 8) return herd_fail(err, HERD_EARG, "%s: too many channels for stats", ds->source);
    int C = (int)C64, K = class_labels(ds) ? ds->num_classes : 0;
    int64_t nb = ds->n < STATS_BLOCKS ? ds->n : STATS_BLOCKS;
    size_t stride = 4 * (size_t)C + (size_t)K, total = (size_t)nb * stride;
    if (total > INT_MAX / 2) return herd_fail(err, HERD_EARG, "%s: too many channels for stats", ds->source);
    double *blocks = herd_calloc_array(total, sizeof *blocks);
    float *x = herd_malloc_array((size_t)C * (size_t)plane, sizeof *x);
    out->mean = calloc((size_t)C, sizeof *out->mean);
    out->std = calloc((size_t)C, sizeof *out->std);
    out->min = calloc((size_t)C, sizeof *out->min);
    out->max = calloc((size_t)C, sizeof *out->max);
    out->class_count = calloc((size_t)K + 1, sizeof *out->class_count);
    void *ybuf = malloc(herd_tensor_bytes(&ds->y) + 1);
    herd_status st = HERD_OK;
    if (!blocks || !x || !ybuf || !out->mean || !out->std || !out->min || !out->max || !out->class_count) {
        st = herd_fail(err, HERD_ENOMEM, "%s: out of memory for stats", ds->source);
        goto done;
    }
    for (int64_t b = nb * part / parts; b < nb * (part + 1) / parts && !st; b++)
        st = map_block(ds, ds->n * b / nb, ds->n * (b + 1) / nb, blocks + (size_t)b * stride, x, ybuf, err);
    /* one failing caller must not leave the others waiting in the sum: they all take part, then fail */
    double failed = st != HERD_OK;
    if (parts > 1) {
        herd_error sum_err = {0};
        herd_status s2 = sum(sum_ctx, &failed, 1, &sum_err);
        if (!s2 && !failed) s2 = sum(sum_ctx, blocks, (int)total, &sum_err);
        if (s2 && !st) st = s2, *err = sum_err;
        if (!st && failed) st = herd_fail(err, HERD_EIO, "%s: stats failed on another rank", ds->source);
    }
    if (st) goto done;
    double *sums = calloc(2 * (size_t)C, sizeof *sums);
    if (!sums) {
        st = herd_fail(err, HERD_ENOMEM, "%s: out of memory for stats", ds->source);
        goto done;
    }
    for (int c = 0; c < C; c++) out->min[c] = INFINITY, out->max[c] = -INFINITY;
    for (int64_t b = 0; b < nb; b++) { /* fixed order: the same arithmetic for any number of parts */
        const double *p = blocks + (size_t)b * stride;
        for (int c = 0; c < C; c++) {
            sums[c] += p[c], sums[C + c] += p[C + c];
            if (p[2 * C + c] < out->min[c]) out->min[c] = p[2 * C + c];
            if (p[3 * C + c] > out->max[c]) out->max[c] = p[3 * C + c];
        }
        for (int k = 0; k < K; k++) out->class_count[k] += (int64_t)p[4 * C + k];
    }
    double per_channel = (double)ds->n * (double)plane;
    for (int c = 0; c < C; c++) {
        out->mean[c] = sums[c] / per_channel;
        double var = sums[C + c] / per_channel - out->mean[c] * out->mean[c];
        out->std[c] = var > 0 ? sqrt(var) : 0;
    }
    free(sums);
    out->channels = C, out->num_classes = K, out->count = ds->n;
done:
    free(blocks);
    free(x);
    free(ybuf);
    if (st) herd_data_stats_free(out);
    return st;
}
