/* dot: dot products between vectors. Its inputs are (D) vectors or (N, D) stacks of N vectors,
 * all of the same D; with V vectors in all (in input order) the output holds the V(V-1)/2
 * products of pairs i < j in row order ((0,1), (0,2), ..., (1,2), ...). Two (D) inputs give the
 * (1) score of matrix factorisation or a two-tower model; several give DLRM's pairwise
 * interaction (its torch.bmm(Z, Z^T) upper triangle without the diagonal). */
#include <stdio.h>

#include "layers/layer_common.h"

#define MAX_DOT_INPUTS 16
typedef struct dot_cfg {
    int64_t dim;
    int vectors;                /* V */
    int count[MAX_DOT_INPUTS];  /* vectors of each input */
} dot_cfg;
_Static_assert(sizeof(dot_cfg) <= LAYER_CFG_BYTES, "dot config fits a node");
#define CFG(n) ((const dot_cfg *)(n)->cfg)

static herd_status dot_build(layer_build *b) {
    dot_cfg *cfg = (dot_cfg *)b->n->cfg;
    cfg->vectors = 0;
    cfg->dim = 0;
    if (b->n->n_in > MAX_DOT_INPUTS)
        return lb_fail(b, HERD_ESPEC, NULL, "dot takes at most %d inputs (stack more vectors into one (N,D) input)",
                       MAX_DOT_INPUTS);
    for (int k = 0; k < b->n->n_in; k++) {
        int nd = lb_in_ndim(b, k);
        const int64_t *d = lb_in_dims(b, k);
        char s[64];
        if (nd != 1 && nd != 2)
            return lb_fail(b, HERD_ESHAPE, NULL, "dot: input %d is %s; inputs are (D) vectors or (N,D) stacks", k + 1,
                           lb_shape_str(nd, d, s, sizeof s));
        int64_t dim = d[nd - 1];
        if (cfg->dim && dim != cfg->dim)
            return lb_fail(b, HERD_ESHAPE, NULL, "dot: input %d has vectors of %lld values, input 1 of %lld", k + 1,
                           (long long)dim, (long long)cfg->dim);
        cfg->dim = dim;
        cfg->count[k] = nd == 2 ? (int)d[0] : 1;
        cfg->vectors += cfg->count[k];
    }
    if (cfg->vectors < 2) return lb_fail(b, HERD_ESHAPE, NULL, "dot: needs at least two vectors, has %d", cfg->vectors);
    int64_t out[1] = {(int64_t)cfg->vectors * (cfg->vectors - 1) / 2};
    lb_set_shape(b, 1, out);
    return HERD_OK;
}

/* The start of vector v of sample b among the call's inputs (or their gradients). */
static const float *vec(const dot_cfg *cfg, const float *const *base, int64_t b, int v) {
    int k = 0;
    while (v >= cfg->count[k]) v -= cfg->count[k++];
    return base[k] ? base[k] + (b * cfg->count[k] + v) * cfg->dim : NULL;
}

/* out (B, P): out[b, p(i,j)] = sum_d x_i[d] x_j[d], summed in d order */
static void dot_forward(const layer_call *c) {
    const dot_cfg *cfg = CFG(c->n);
    for (int64_t b = 0; b < c->B; b++) {
        float *o = c->out + b * c->n->numel;
        for (int i = 0; i < cfg->vectors; i++)
            for (int j = i + 1; j < cfg->vectors; j++) {
                const float *x = vec(cfg, c->in, b, i), *y = vec(cfg, c->in, b, j);
                float s = 0.0f;
                for (int64_t d = 0; d < cfg->dim; d++) s += x[d] * y[d];
                *o++ = s;
            }
    }
}

/* dx_i += g_ij x_j, dx_j += g_ij x_i */
static void dot_backward(const layer_call *c) {
    const dot_cfg *cfg = CFG(c->n);
    for (int64_t b = 0; b < c->B; b++) {
        const float *g = c->dout + b * c->n->numel;
        for (int i = 0; i < cfg->vectors; i++)
            for (int j = i + 1; j < cfg->vectors; j++, g++) {
                const float *x = vec(cfg, c->in, b, i), *y = vec(cfg, c->in, b, j);
                float *dx = (float *)vec(cfg, (const float *const *)c->din, b, i);
                float *dy = (float *)vec(cfg, (const float *const *)c->din, b, j);
                for (int64_t d = 0; d < cfg->dim; d++) {
                    if (dx) dx[d] += *g * y[d];
                    if (dy) dy[d] += *g * x[d];
                }
            }
    }
}

static int64_t dot_flops(const herd_model *m, const node *n) {
    (void)m;
    return 2 * n->numel * CFG(n)->dim;
}

static void dot_describe(const herd_model *m, const node *n, char *buf, size_t size) {
    (void)m;
    snprintf(buf, size, "%d vectors of %lld", CFG(n)->vectors, (long long)CFG(n)->dim);
}

/* ONNX could say it (Mul and ReduceSum over axis 1, whose axes are an input from opset 13 on);
 * herd's exporter does not write that yet */
static herd_status dot_onnx(onnx_exporter *x, const node *n) {
    return onnx_fail(x, "layer '%s': dot has no ONNX export yet", n->name);
}

static const char *const dot_keywords[] = {"dot", NULL};
static const char *const dot_positional[] = {"from", NULL};

const layer_kind layer_dot = {
    .name = "dot", .keywords = dot_keywords, .positional = dot_positional, .min_inputs = 1,
    .max_inputs = MAX_DOT_INPUTS, .build = dot_build, .forward = dot_forward, .backward = dot_backward,
    .backward_reads = layer_reads_input, .flops = dot_flops, .describe = dot_describe, .onnx_export = dot_onnx,
};
