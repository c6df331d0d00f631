/* What every layer kind file includes: the model's internals, the kinds of the table, and
 * the few helpers kinds share (weight init, per-call shapes). */
#ifndef HERD_LAYER_COMMON_H
#define HERD_LAYER_COMMON_H

#include "model/model_internal.h"

/* Slot 0 of n from seed: He-normal when a ReLU-family activation follows (n->he_init), else
 * Glorot-uniform, one RNG stream per registry tensor; slot 1 (bias) zero. */
void herdi_layer_init_weight(herd_model *m, node *n, int64_t fan_in, int64_t fan_out, uint64_t seed);

/* backward_reads entries shared by kinds */
int herdi_layer_reads_nothing(const node *n);
int herdi_layer_reads_input(const node *n);
int herdi_layer_reads_output(const node *n);
/* conv and dense: their input, and their output when they apply a fused ReLU */
int herdi_layer_reads_input_and_fused_output(const node *n);
int herdi_layer_reads_fused_output(const node *n); /* the output when the node applies a fused ReLU */
/* The activation mask n's backward applies to its gradient: its fused_act, or none when the
 * gradient's writer applied it (node.grad_set) */
herd_act herdi_layer_backward_act(const node *n);

static inline int64_t call_in_numel(const layer_call *c, int k) {
    int64_t v = 1;
    for (int d = 0; d < c->in_ndim[k]; d++) v *= c->in_dims[k][d];
    return v;
}

/* ---- embedding tables (src/layers/embedding.c), shared by embedding and embedding_bag ---- */
typedef struct embed_table {
    int64_t rows, dim;
    int64_t ids;  /* ids per sample (the input's length) */
    int pad;      /* padding id (no gradient; embedding_bag skips it), -1 = none */
    int mode;     /* embedding_bag: 1 sum, 2 mean; 0 for embedding */
    float std;    /* init: N(0, std^2) (default 1, as PyTorch) */
} embed_table;
_Static_assert(sizeof(embed_table) <= LAYER_CFG_BYTES, "embedding config fits a node");
/* rows, dim, pad= and the (rows, dim) table with a row-sparse gradient in slot 0; the input must
 * be an i32 model input */
herd_status herdi_layer_table_build(layer_build *b, embed_table *t);
void herdi_layer_table_init(herd_model *m, node *n, uint64_t seed);
void herdi_layer_table_init_rows(herd_model *m, const node *n, uint64_t seed, int64_t lo, int64_t hi, float *dst);
/* every id of the call within [0, rows) */
herd_status herdi_layer_table_check(const layer_call *c, herd_error *err);
void herdi_layer_table_spec(const node *n, char *buf, size_t size);

#define HERD_LAYER_KINDS(X) \
    X(conv2d) X(maxpool2d) X(avgpool2d) X(gap) X(dense) X(flatten) X(dropout) X(batchnorm) X(activation) \
    X(softmax) X(add) X(concat) X(layernorm) X(reshape) X(attention) X(posemb) X(mul) X(slice) X(shuffle) \
    X(embedding) X(embedding_bag) X(dot) X(permute) X(scale)

#define HERD_LAYER_DECLARE(k) extern const layer_kind herdi_layer_##k;
HERD_LAYER_KINDS(HERD_LAYER_DECLARE)
#undef HERD_LAYER_DECLARE

#endif
