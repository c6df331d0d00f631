/* embedding_bag ROWS DIM mode=sum|mean [pad=K]: a table (ROWS, DIM) reduced over a bag of ids,
 * as PyTorch's nn.EmbeddingBag(ROWS, DIM, mode, padding_idx=K, sparse=True) on fixed-length
 * bags: ids (L) -> (DIM), the sum or mean of the rows of the bag's ids other than the pad id (so
 * bags of any length up to L are padded with K; an empty bag gives zeros, as PyTorch's). Slots
 * holding HERD_NO_ID (the unused end of a bag read from a cat=COL:L column) are skipped as the pad
 * id is: a bag of n ids in L slots is nn.EmbeddingBag(ids, offsets)'s bag of those n ids.
 * The gradient is row-sparse, as embedding's (src/layers/embedding.c holds the table helpers). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/prefetch.h"
#include "herd/data.h"
#include "layers/layer_common.h"

#define CFG(n) ((const embed_table *)(n)->cfg)

static herd_status bag_build(layer_build *b) {
    embed_table *t = (embed_table *)b->n->cfg;
    const char *mode = lb_arg(b, "mode");
    if (!mode || !strcmp(mode, "mean")) t->mode = 2;
    else if (!strcmp(mode, "sum")) t->mode = 1;
    else return lb_fail(b, HERD_ESPEC, "mode", "embedding_bag: mode '%s' (expected sum or mean)", mode);
    herd_status st = layer_table_build(b, t);
    if (st) return st;
    int64_t out[1] = {t->dim};
    lb_set_shape(b, 1, out);
    return HERD_OK;
}

/* An id the bag sums: neither the pad id nor an unused slot. */
static int bag_holds(const embed_table *t, int32_t id) { return id != t->pad && id != HERD_NO_ID; }

static int64_t bag_count(const embed_table *t, const int32_t *ids) {
    int64_t count = 0;
    for (int64_t j = 0; j < t->ids; j++) count += bag_holds(t, ids[j]);
    return count;
}

/* The factor each row of a bag takes in its gradient: 1, or 1/count of its ids for mean. */
static float bag_scale(const embed_table *t, const int32_t *ids) {
    int64_t count = bag_count(t, ids);
    return t->mode == 2 && count ? 1.0f / (float)count : 1.0f;
}

/* out rows [b0, b1): per bag, sum over its ids of weight[id], then divided by their count for mean
 * (PyTorch sums, then divides) */
static void bag_forward_rows(void *ctx, int64_t b0, int64_t b1, int thread) {
    (void)thread;
    const layer_call *c = ctx;
    const embed_table *t = CFG(c->n);
    for (int64_t b = b0; b < b1; b++) {
        const int32_t *ids = (const int32_t *)c->in[0] + b * t->ids;
        float *o = c->out + b * t->dim;
        memset(o, 0, (size_t)t->dim * sizeof *o);
        for (int64_t j = 0; b + 1 < b1 && j < t->ids; j++) { /* the next bag's rows, spread over the table */
            int32_t id = ids[t->ids + j];
            if (id >= 0) herd_prefetch(c->w[0] + (int64_t)id * t->dim, (size_t)t->dim * sizeof(float), 0);
        }
        for (int64_t j = 0; j < t->ids; j++) {
            if (!bag_holds(t, ids[j])) continue;
            const float *w = c->w[0] + (int64_t)ids[j] * t->dim;
            for (int64_t d = 0; d < t->dim; d++) o[d] += w[d];
        }
        if (t->mode == 2) {
            int64_t count = bag_count(t, ids);
            for (int64_t d = 0; count && d < t->dim; d++) o[d] /= (float)count;
        }
    }
}

/* bags are independent: split over the pool's threads when there are enough rows to read (a row a
 * few hundred ns away in a large table), the same values for any split */
static void bag_forward(const layer_call *c) {
    const embed_table *t = CFG(c->n);
    herd_pool *pool = c->ex ? c->ex->pool : NULL;
    if (pool && herd_pool_threads(pool) > 1 && (int64_t)c->B * t->ids * t->dim >= 65536)
        herd_pool_for(pool, c->B, bag_forward_rows, (void *)c);
    else
        bag_forward_rows((void *)c, 0, c->B, 0);
}

/* each non-pad id of a bag gets the bag's output gradient (over the count for mean) */
static void bag_backward(const layer_call *c) {
    const embed_table *t = CFG(c->n);
    for (int b = 0; b < c->B; b++) {
        const int32_t *ids = (const int32_t *)c->in[0] + (int64_t)b * t->ids;
        const float *g = c->dout + (int64_t)b * t->dim;
        float s = bag_scale(t, ids);
        for (int64_t j = 0; j < t->ids; j++) {
            if (!bag_holds(t, ids[j])) continue;
            float *r = layer_sparse_row(c->sg[0], ids[j]);
            for (int64_t d = 0; d < t->dim; d++) r[d] = g[d] * s;
        }
    }
}

static int64_t bag_flops(const herd_model *m, const node *n) {
    (void)m;
    return CFG(n)->ids * CFG(n)->dim;
}

static void bag_describe(const herd_model *m, const node *n, char *buf, size_t size) {
    (void)m;
    const embed_table *t = CFG(n);
    snprintf(buf, size, "%lld x %lld %s of %lld", (long long)t->rows, (long long)t->dim, t->mode == 2 ? "mean" : "sum",
             (long long)t->ids);
}

static void bag_spec(const herd_model *m, const node *n, char *buf, size_t size) {
    (void)m;
    layer_table_spec(n, buf, size);
}

/* ONNX (opset 13): Gather of the rows (N, L, D) of the table, its pad row masked to zero (herd never
 * reads it), ReduceMean over the bag (axes still an attribute in 13), times L for the sum; mean
 * with a pad id divides that sum by the count of non-pad ids, at least 1 (an empty bag: zeros) */
static herd_status bag_onnx(onnx_exporter *x, const node *n) {
    const embed_table *t = CFG(n);
    char nm[12][HERD_NAME_MAX + 16];
    static const char *const suffix[12] = {"rowmask", "table", "rows", "mean", "len", "sum", "pad", "is_pad", "kept",
                                           "keptf", "count_mean", "count"};
    for (int k = 0; k < 12; k++) snprintf(nm[k], sizeof nm[k], "%s.%s", n->name, suffix[k]);
    const char *table = onnx_param(x, n, 0), *ids = onnx_in(x, n, 0), *out = onnx_out(x, n);
    if (t->pad >= 0) {
        float *mask = malloc((size_t)t->rows * sizeof *mask);
        if (!mask) return onnx_fail(x, "layer '%s': out of memory", n->name);
        for (int64_t r = 0; r < t->rows; r++) mask[r] = r == t->pad ? 0.0f : 1.0f;
        int64_t md[2] = {t->rows, 1};
        onnx_constant(x, nm[0], 2, md, mask, t->rows);
        free(mask);
        const char *in[2] = {table, nm[0]};
        onnx_emit(x, "Mul", nm[1], nm[1], in, 2, NULL, 0);
        table = nm[1];
    }
    onnx_xattr axis0 = {.name = "axis", .type = 'i', .i = 0};
    const char *g[2] = {table, ids};
    onnx_emit(x, "Gather", nm[2], nm[2], g, 2, &axis0, 1);
    static const int64_t bag_axis[1] = {1};
    onnx_xattr red[2] = {{.name = "axes", .type = 'I', .ints = bag_axis, .n_ints = 1}, {.name = "keepdims", .type = 'i', .i = 0}};
    int plain_mean = t->mode == 2 && t->pad < 0;
    const char *rows = nm[2];
    onnx_emit(x, "ReduceMean", plain_mean ? n->name : nm[3], plain_mean ? out : nm[3], &rows, 1, red, 2);
    if (!plain_mean) {
        float len = (float)t->ids;
        onnx_constant(x, nm[4], 0, NULL, &len, 1);
        const char *mul[2] = {nm[3], nm[4]};
        int sum_out = t->mode == 1;
        onnx_emit(x, "Mul", sum_out ? n->name : nm[5], sum_out ? out : nm[5], mul, 2, NULL, 0);
        if (!sum_out) { /* mean over the non-pad ids */
            int32_t pad = t->pad;
            onnx_constant_i32(x, nm[6], 0, NULL, &pad, 1);
            const char *eq[2] = {ids, nm[6]}, *is_pad = nm[7], *kept = nm[8], *keptf = nm[9];
            onnx_emit(x, "Equal", nm[7], nm[7], eq, 2, NULL, 0);
            onnx_emit(x, "Not", nm[8], nm[8], &is_pad, 1, NULL, 0);
            onnx_xattr to = {.name = "to", .type = 'i', .i = 1}; /* FLOAT */
            onnx_emit(x, "Cast", nm[9], nm[9], &kept, 1, &to, 1);
            onnx_xattr keep[2] = {red[0], {.name = "keepdims", .type = 'i', .i = 1}};
            onnx_emit(x, "ReduceMean", nm[10], nm[10], &keptf, 1, keep, 2);
            const char *cm[2] = {nm[10], nm[4]}, *mx[2] = {nm[11], onnx_scalar(x, "herd_one", 1.0f)};
            onnx_emit(x, "Mul", nm[11], nm[11], cm, 2, NULL, 0);
            char at_least_one[HERD_NAME_MAX + 16];
            snprintf(at_least_one, sizeof at_least_one, "%s.count1", n->name);
            onnx_emit(x, "Max", at_least_one, at_least_one, mx, 2, NULL, 0);
            const char *div[2] = {nm[5], at_least_one};
            onnx_emit(x, "Div", n->name, out, div, 2, NULL, 0);
        }
    }
    onnx_set_out(x, n, out, 0);
    return HERD_OK;
}

static const char *const bag_keywords[] = {"embedding_bag", NULL};
static const char *const bag_positional[] = {"rows", "dim", NULL};

const layer_kind layer_embedding_bag = {
    .name = "embedding_bag", .keywords = bag_keywords, .prefix = "bag", .positional = bag_positional,
    .min_inputs = 1, .max_inputs = 1, .flags = LAYER_READS_IDS, .build = bag_build, .check = layer_table_check,
    .init = layer_table_init, .forward = bag_forward, .backward = bag_backward, .backward_reads = layer_reads_input,
    .flops = bag_flops, .describe = bag_describe, .onnx_export = bag_onnx, .spec = bag_spec,
};
