/* embedding_bag ROWS DIM mode=sum|mean [pad=K]: a table (ROWS, DIM) reduced over a bag of ids,
 * as PyTorch's nn.EmbeddingBag(ROWS, DIM, mode, padding_idx=K, sparse=True) on fixed-length
 * bags: ids (L) -> (DIM), the sum or mean of the rows of the bag's ids other than the pad id (so
 * bags of any length up to L are padded with K; an empty bag gives zeros, as PyTorch's).
 * The gradient is row-sparse, as embedding's (src/layers/embedding.c holds the table helpers). */
#include <stdio.h>
#include <string.h>

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

/* The factor each row of a bag takes in its gradient: 1, or 1/count of its non-pad ids for mean. */
static float bag_scale(const embed_table *t, const int32_t *ids) {
    int64_t count = 0;
    for (int64_t j = 0; j < t->ids; j++) count += ids[j] != t->pad;
    return t->mode == 2 && count ? 1.0f / (float)count : 1.0f;
}

/* out (B, D): per bag, sum over its non-pad ids of weight[id], then divided by their count for
 * mean (PyTorch sums, then divides) */
static void bag_forward(const layer_call *c) {
    const embed_table *t = CFG(c->n);
    for (int b = 0; b < c->B; b++) {
        const int32_t *ids = (const int32_t *)c->in[0] + (int64_t)b * t->ids;
        float *o = c->out + (int64_t)b * t->dim;
        memset(o, 0, (size_t)t->dim * sizeof *o);
        for (int64_t j = 0; j < t->ids; j++) {
            if (ids[j] == t->pad) continue;
            const float *w = c->w[0] + (int64_t)ids[j] * t->dim;
            for (int64_t d = 0; d < t->dim; d++) o[d] += w[d];
        }
        if (t->mode == 2) {
            int64_t count = 0;
            for (int64_t j = 0; j < t->ids; j++) count += ids[j] != t->pad;
            for (int64_t d = 0; count && d < t->dim; d++) o[d] /= (float)count;
        }
    }
}

/* each non-pad id of a bag gets the bag's output gradient (over the count for mean) */
static void bag_backward(const layer_call *c) {
    const embed_table *t = CFG(c->n);
    for (int b = 0; b < c->B; b++) {
        const int32_t *ids = (const int32_t *)c->in[0] + (int64_t)b * t->ids;
        const float *g = c->dout + (int64_t)b * t->dim;
        float s = bag_scale(t, ids);
        for (int64_t j = 0; j < t->ids; j++) {
            if (ids[j] == t->pad) continue;
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

static const char *const bag_keywords[] = {"embedding_bag", NULL};
static const char *const bag_positional[] = {"rows", "dim", NULL};

const layer_kind layer_embedding_bag = {
    .name = "embedding_bag", .keywords = bag_keywords, .prefix = "bag", .positional = bag_positional,
    .min_inputs = 1, .max_inputs = 1, .flags = LAYER_READS_IDS, .build = bag_build, .check = layer_table_check,
    .init = layer_table_init, .forward = bag_forward, .backward = bag_backward, .backward_reads = layer_reads_input,
    .flops = bag_flops, .describe = bag_describe, .onnx_export = layer_table_onnx, .spec = bag_spec,
};
