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
    const char *mode = herdi_lb_arg(b, "mode");
    if (!mode || !strcmp(mode, "mean")) t->mode = 2;
    else if (!strcmp(mode, "sum")) t->mode = 1;
    else return herdi_lb_fail(b, HERD_ESPEC, "mode", "embedding_bag: mode '%s' (expected sum or mean)", mode);
    herd_status st = herdi_layer_table_build(b, t);
    if (st) return st;
    int64_t out[1] = {t->dim};
    herdi_lb_set_shape(b, 1, out);
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

/* bags are independent: split over the pool's threads when there are enough rows to read and they
 * are far away (a row a few hundred ns away in a large table), the same values for any split */
static void bag_forward(const layer_call *c) {
    const embed_table *t = CFG(c->n);
    herd_pool *pool = c->ex ? c->ex->pool : NULL;
    if (pool && herd_table_split(herd_pool_threads(pool), t->rows * t->dim * (int64_t)sizeof(float),
                                 (int64_t)c->B * t->ids * t->dim, 65536))
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
            float *r = herdi_layer_sparse_row(c->sg[0], ids[j]);
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
    herdi_layer_table_spec(n, buf, size);
}

/* ONNX (opset 13): a bag's slots that hold an id, neither HERD_NO_ID (-1: the unused end of a bag
 * read from cat=COL:L, NPY offsets or the like) nor the pad id, as a 0/1 mask (N, L); Gather of
 * the rows of the ids clamped at 0 (ONNX's Gather would read -1 as the last row), (N, L, D),
 * times the mask, ReduceSum over the bag; mean divides by the mask's count, at least 1 (an empty
 * bag: zeros, as PyTorch's) */
static herd_status bag_onnx(onnx_exporter *x, const node *n) {
    const embed_table *t = CFG(n);
    enum { ZERO, NEG, CLAMPED, ROWS, PAD, IS_PAD, DROP, KEEP, KEPTF, AXIS2, KEPTU, MASKED, AXIS1, SUM, COUNT, COUNT1, NM };
    char nm[NM][HERD_NAME_MAX + 16];
    static const char *const suffix[NM] = {"zero", "no_id", "clamped", "rows", "pad", "is_pad", "drop", "keep",
                                           "keptf", "axis2", "keptu", "masked", "axis1", "sum", "count", "count1"};
    for (int k = 0; k < NM; k++) snprintf(nm[k], sizeof nm[k], "%s.%s", n->name, suffix[k]);
    const char *table = herdi_onnx_param(x, n, 0), *ids = herdi_onnx_in(x, n, 0), *out = herdi_onnx_out(x, n);
    const int32_t zero = 0, pad = t->pad;
    herdi_onnx_constant_i32(x, nm[ZERO], 0, NULL, &zero, 1);
    const char *lt[2] = {ids, nm[ZERO]}, *g[2] = {table, nm[CLAMPED]};
    herdi_onnx_emit(x, "Less", nm[NEG], nm[NEG], lt, 2, NULL, 0);
    herdi_onnx_emit(x, "Max", nm[CLAMPED], nm[CLAMPED], lt, 2, NULL, 0);
    onnx_xattr axis0 = {.name = "axis", .type = 'i', .i = 0};
    herdi_onnx_emit(x, "Gather", nm[ROWS], nm[ROWS], g, 2, &axis0, 1);
    const char *drop = nm[NEG];
    if (t->pad >= 0) {
        herdi_onnx_constant_i32(x, nm[PAD], 0, NULL, &pad, 1);
        const char *eq[2] = {ids, nm[PAD]}, *either[2] = {nm[NEG], nm[IS_PAD]};
        herdi_onnx_emit(x, "Equal", nm[IS_PAD], nm[IS_PAD], eq, 2, NULL, 0);
        herdi_onnx_emit(x, "Or", nm[DROP], nm[DROP], either, 2, NULL, 0);
        drop = nm[DROP];
    }
    herdi_onnx_emit(x, "Not", nm[KEEP], nm[KEEP], &drop, 1, NULL, 0);
    onnx_xattr to = {.name = "to", .type = 'i', .i = 1}; /* FLOAT */
    const char *keep = nm[KEEP];
    herdi_onnx_emit(x, "Cast", nm[KEPTF], nm[KEPTF], &keep, 1, &to, 1);
    static const int64_t two[1] = {2}, one[1] = {1};
    herdi_onnx_ints(x, nm[AXIS2], two, 1);
    herdi_onnx_ints(x, nm[AXIS1], one, 1);
    const char *u[2] = {nm[KEPTF], nm[AXIS2]}, *mul[2] = {nm[ROWS], nm[KEPTU]}, *sum[2] = {nm[MASKED], nm[AXIS1]};
    herdi_onnx_emit(x, "Unsqueeze", nm[KEPTU], nm[KEPTU], u, 2, NULL, 0);
    herdi_onnx_emit(x, "Mul", nm[MASKED], nm[MASKED], mul, 2, NULL, 0);
    onnx_xattr flat = {.name = "keepdims", .type = 'i', .i = 0};
    int sum_out = t->mode == 1;
    herdi_onnx_emit(x, "ReduceSum", sum_out ? n->name : nm[SUM], sum_out ? out : nm[SUM], sum, 2, &flat, 1);
    if (!sum_out) {
        const char *cnt[2] = {nm[KEPTF], nm[AXIS1]}, *mx[2] = {nm[COUNT], herdi_onnx_scalar(x, "herd_one", 1.0f)},
                   *div[2] = {nm[SUM], nm[COUNT1]};
        onnx_xattr kept_dims = {.name = "keepdims", .type = 'i', .i = 1};
        herdi_onnx_emit(x, "ReduceSum", nm[COUNT], nm[COUNT], cnt, 2, &kept_dims, 1);
        herdi_onnx_emit(x, "Max", nm[COUNT1], nm[COUNT1], mx, 2, NULL, 0);
        herdi_onnx_emit(x, "Div", n->name, out, div, 2, NULL, 0);
    }
    herdi_onnx_set_out(x, n, out, 0);
    return HERD_OK;
}

static const char *const bag_keywords[] = {"embedding_bag", NULL};
static const char *const bag_positional[] = {"rows", "dim", NULL};

const layer_kind herdi_layer_embedding_bag = {
    .name = "embedding_bag", .keywords = bag_keywords, .prefix = "bag", .positional = bag_positional,
    .min_inputs = 1, .max_inputs = 1, .flags = LAYER_READS_IDS, .build = bag_build, .check = herdi_layer_table_check,
    .init = herdi_layer_table_init, .init_rows = herdi_layer_table_init_rows, .forward = bag_forward, .backward = bag_backward,
    .backward_reads = herdi_layer_reads_input, .flops = bag_flops, .describe = bag_describe, .onnx_export = bag_onnx, .spec = bag_spec,
};
