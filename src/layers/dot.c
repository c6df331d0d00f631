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
    unsigned stacked;           /* bit k: input k is an (N, D) stack, not a (D) vector */
} dot_cfg;
_Static_assert(sizeof(dot_cfg) <= LAYER_CFG_BYTES, "dot config fits a node");
#define CFG(n) ((const dot_cfg *)(n)->cfg)

static herd_status dot_build(layer_build *b) {
    dot_cfg *cfg = (dot_cfg *)b->n->cfg;
    cfg->vectors = 0;
    cfg->dim = 0;
    cfg->stacked = 0;
    if (b->n->n_in > MAX_DOT_INPUTS)
        return herdi_lb_fail(b, HERD_ESPEC, NULL, "dot takes at most %d inputs (stack more vectors into one (N,D) input)",
                       MAX_DOT_INPUTS);
    for (int k = 0; k < b->n->n_in; k++) {
        int nd = herdi_lb_in_ndim(b, k);
        const int64_t *d = herdi_lb_in_dims(b, k);
        char s[64];
        if (nd != 1 && nd != 2)
            return herdi_lb_fail(b, HERD_ESHAPE, NULL, "dot: input %d is %s; inputs are (D) vectors or (N,D) stacks", k + 1,
                           herdi_lb_shape_str(nd, d, s, sizeof s));
        int64_t dim = d[nd - 1];
        if (cfg->dim && dim != cfg->dim)
            return herdi_lb_fail(b, HERD_ESHAPE, NULL, "dot: input %d has vectors of %lld values, input 1 of %lld", k + 1,
                           (long long)dim, (long long)cfg->dim);
        cfg->dim = dim;
        cfg->count[k] = nd == 2 ? (int)d[0] : 1;
        if (nd == 2) cfg->stacked |= 1u << k;
        cfg->vectors += cfg->count[k];
    }
    if (cfg->vectors < 2) return herdi_lb_fail(b, HERD_ESHAPE, NULL, "dot: needs at least two vectors, has %d", cfg->vectors);
    int64_t out[1] = {(int64_t)cfg->vectors * (cfg->vectors - 1) / 2};
    herdi_lb_set_shape(b, 1, out);
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

/* ONNX (opset 13): the vectors stacked into Z (N, V, D) (a (D) input Unsqueezed to (N, 1, D)),
 * MatMul(Z, Transpose(Z)) (N, V, V) Reshaped to (N, V*V), and Gather of the pairs i < j in row
 * order: torch.bmm(Z, Z^T)'s upper triangle, as DLRM takes it (two vectors: their score) */
static herd_status dot_onnx(onnx_exporter *x, const node *n) {
    const dot_cfg *cfg = CFG(n);
    char nm[6][HERD_NAME_MAX + 16], parts[MAX_DOT_INPUTS][HERD_NAME_MAX + 16];
    static const char *const suffix[6] = {"axis1", "z", "zt", "zz", "flat_shape", "flat"};
    for (int k = 0; k < 6; k++) snprintf(nm[k], sizeof nm[k], "%s.%s", n->name, suffix[k]);
    const int64_t one[1] = {1};
    herdi_onnx_ints(x, nm[0], one, 1);
    const char *stack[MAX_DOT_INPUTS];
    for (int k = 0; k < n->n_in; k++) {
        stack[k] = herdi_onnx_in(x, n, k);
        if (!(cfg->stacked & (1u << k))) { /* a (D) vector: (N, D) -> (N, 1, D) */
            snprintf(parts[k], sizeof parts[k], "%s.in%d", n->name, k);
            const char *u[2] = {stack[k], nm[0]};
            herdi_onnx_emit(x, "Unsqueeze", parts[k], parts[k], u, 2, NULL, 0);
            stack[k] = parts[k];
        }
    }
    onnx_xattr axis1 = {.name = "axis", .type = 'i', .i = 1};
    herdi_onnx_emit(x, "Concat", nm[1], nm[1], stack, n->n_in, &axis1, 1);
    static const int64_t perm[3] = {0, 2, 1};
    onnx_xattr tr = {.name = "perm", .type = 'I', .ints = perm, .n_ints = 3};
    const char *z = nm[1];
    herdi_onnx_emit(x, "Transpose", nm[2], nm[2], &z, 1, &tr, 1);
    const char *mm[2] = {nm[1], nm[2]};
    herdi_onnx_emit(x, "MatMul", nm[3], nm[3], mm, 2, NULL, 0);
    const int64_t shape[2] = {0, (int64_t)cfg->vectors * cfg->vectors}; /* 0: keep N */
    herdi_onnx_ints(x, nm[4], shape, 2);
    const char *rs[2] = {nm[3], nm[4]};
    herdi_onnx_emit(x, "Reshape", nm[5], nm[5], rs, 2, NULL, 0);
    int64_t pairs[MAX_DOT_INPUTS * 64], p = 0;
    if ((int64_t)cfg->vectors * (cfg->vectors - 1) / 2 > (int64_t)(sizeof pairs / sizeof pairs[0]))
        return herdi_onnx_fail(x, "layer '%s': dot of %d vectors is too many to export", n->name, cfg->vectors);
    for (int i = 0; i < cfg->vectors; i++)
        for (int j = i + 1; j < cfg->vectors; j++) pairs[p++] = (int64_t)i * cfg->vectors + j;
    char idx[HERD_NAME_MAX + 16];
    snprintf(idx, sizeof idx, "%s.pairs", n->name);
    herdi_onnx_ints(x, idx, pairs, (int)p);
    const char *g[2] = {nm[5], idx};
    herdi_onnx_emit(x, "Gather", n->name, herdi_onnx_out(x, n), g, 2, &axis1, 1);
    herdi_onnx_set_out(x, n, herdi_onnx_out(x, n), 0);
    return HERD_OK;
}

static const char *const dot_keywords[] = {"dot", NULL};
static const char *const dot_positional[] = {"from", NULL};

const layer_kind herdi_layer_dot = {
    .name = "dot", .keywords = dot_keywords, .positional = dot_positional, .min_inputs = 1,
    .max_inputs = MAX_DOT_INPUTS, .build = dot_build, .forward = dot_forward, .backward = dot_backward,
    .backward_reads = herdi_layer_reads_input, .flops = dot_flops, .describe = dot_describe, .onnx_export = dot_onnx,
};
