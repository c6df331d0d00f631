/* What every layer kind file includes: the model's internals, the kinds of the table, and
 * the few helpers kinds share (weight init, per-call shapes). */
#ifndef HERD_LAYER_COMMON_H
#define HERD_LAYER_COMMON_H

#include "model/model_internal.h"

/* Slot 0 of n from seed: He-normal when a ReLU-family activation follows (n->he_init), else
 * Glorot-uniform, one RNG stream per registry tensor; slot 1 (bias) zero. */
void layer_init_weight(herd_model *m, node *n, int64_t fan_in, int64_t fan_out, uint64_t seed);

/* backward_reads entries shared by kinds */
int layer_reads_nothing(const node *n);
int layer_reads_input(const node *n);
int layer_reads_output(const node *n);
/* conv and dense: their input, and their output when they apply a fused ReLU */
int layer_reads_input_and_fused_output(const node *n);
int layer_reads_fused_output(const node *n); /* the output when the node applies a fused ReLU */

static inline int64_t call_in_numel(const layer_call *c, int k) {
    int64_t v = 1;
    for (int d = 0; d < c->in_ndim[k]; d++) v *= c->in_dims[k][d];
    return v;
}

#define HERD_LAYER_KINDS(X) \
    X(conv2d) X(maxpool2d) X(avgpool2d) X(gap) X(dense) X(flatten) X(dropout) X(batchnorm) X(activation) \
    X(softmax) X(add) X(concat) X(layernorm) X(reshape) X(attention) X(posemb) X(mul) X(slice) X(shuffle)

#define HERD_LAYER_DECLARE(k) extern const layer_kind layer_##k;
HERD_LAYER_KINDS(HERD_LAYER_DECLARE)
#undef HERD_LAYER_DECLARE

#endif
