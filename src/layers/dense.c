/* dense: fully connected, (F) -> (UNITS), or per position (T,F) -> (T,UNITS) as PyTorch's
 * Linear on the last dim; weight (UNITS,F), optional bias; can apply the ReLU that follows it
 * in place. tie=NAME takes an earlier embedding's table (UNITS rows of F) as the weight, GPT-2's
 * tied output projection: one parameter, whose gradient both layers add to (the table's gradient
 * then becomes dense: the projection touches every row). */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "layers/layer_common.h"

typedef struct dense_cfg {
    int in, out, bias;
    int rows; /* positions per sample (1 for a vector) */
    int tie;  /* 1 + the node whose embedding table is the weight (0: a weight of its own) */
    int positions; /* per position: the input's ndim (2: (T,F); 3: (H,W,F) with positions=1); 0: a vector */
} dense_cfg;
_Static_assert(sizeof(dense_cfg) <= LAYER_CFG_BYTES, "dense config fits a node");
#define CFG(n) ((const dense_cfg *)(n)->cfg)

static herd_status dense_build(layer_build *b) {
    int units = 0, bias = 1;
    herd_status st;
    if ((st = herdi_lb_int(b, "units", "number of units", 1, 1, 1 << 24, &units)) || (st = herdi_lb_int(b, "bias", "bias (0 or 1)", 0, 0, 1, &bias))) return st;
    int nd = herdi_lb_in_ndim(b, 0), per_position = 0;
    const int64_t *dims = herdi_lb_in_dims(b, 0);
    if ((st = herdi_lb_int(b, "positions", "positions (0 or 1)", 0, 0, 1, &per_position))) return st;
    int positions = nd == 2 || (nd == 3 && per_position); /* (T,F), or (H,W,F) channels-last when asked */
    if (!herdi_layer_is_vector(nd, dims) && !positions) {
        char s[64];
        return herdi_lb_fail(b, HERD_ESHAPE, NULL, "dense expects a flat input (or (T,F) positions) but gets %s; put "
                       "`flatten` (or `gap`) before it (or `positions=1` for a linear layer on the last axis of "
                       "channels-last (H,W,C))", herdi_lb_shape_str(nd, dims, s, sizeof s));
    }
    dense_cfg *cfg = (dense_cfg *)b->n->cfg;
    cfg->positions = positions ? nd : 0;
    cfg->rows = positions ? (int)(herdi_node_in_numel(b->m, b->n, 0) / dims[nd - 1]) : 1;
    cfg->in = (int)dims[positions ? nd - 1 : 0], cfg->out = units, cfg->bias = bias;
    int64_t out[3] = {dims[0], nd == 3 ? dims[1] : units, units}, wshape[2] = {units, cfg->in};
    if (positions) herdi_lb_set_shape(b, nd, out);
    else herdi_lb_set_shape(b, 1, out + 2);
    const char *tie = herdi_lb_arg(b, "tie");
    if (tie) { /* the weight is an earlier embedding's table: one registry entry, two nodes */
        int k = herdi_model_find(b->m, tie);
        const node *e = k >= 0 && k < b->m->n_nodes ? &b->m->nodes[k] : NULL;
        if (!e || e->kind != &herdi_layer_embedding)
            return herdi_lb_fail(b, HERD_ESPEC, "tie", "tie=%s: no embedding layer of that name before this line", tie);
        const embed_table *t = (const embed_table *)e->cfg;
        if (t->rows != units || t->dim != cfg->in)
            return herdi_lb_fail(b, HERD_ESHAPE, "tie", "tie=%s: its table is %lldx%lld, this layer's weight is %dx%d", tie,
                           (long long)t->rows, (long long)t->dim, units, cfg->in);
        b->n->param[0] = e->param[0];
        b->m->params_reg[e->param[0]].info.sparse = 0; /* the projection's gradient reaches every row */
        cfg->tie = k + 1;
    } else if ((st = herdi_lb_param(b, 0, "weight", 1, 2, wshape))) {
        return st;
    }
    return bias ? herdi_lb_param(b, 1, "bias", 1, 1, out + 2) : HERD_OK;
}

static void dense_init(herd_model *m, node *n, uint64_t seed) {
    if (!CFG(n)->tie) {
        herdi_layer_init_weight(m, n, CFG(n)->in, CFG(n)->out, seed);
        return;
    }
    float *bias = herdi_node_param(m, n, 1); /* the tied table is its embedding's to initialise */
    if (bias) memset(bias, 0, (size_t)CFG(n)->out * sizeof *bias);
}

static herd_status dense_plan(node *n, layer_plan *p) {
    const dense_cfg *cfg = CFG(n);
    size_t ws = n->be->dense_workspace ? n->be->dense_workspace(p->B * cfg->rows, cfg->in, cfg->out, p->threads) : 0;
    if (ws > p->workspace_floats) p->workspace_floats = ws;
    return HERD_OK;
}

/* The exec a forward runs with: per position (T,F), the training kernels even in inference, so
 * that one position decoded alone (dense_decode) sums as the whole sequence's forward does and
 * generation from the key-value cache gives the tokens of full recomputation. */
static const herd_exec *dense_exec(const layer_call *c, herd_exec *tmp) {
    if (CFG(c->n)->rows == 1 || !c->ex->inference) return c->ex;
    *tmp = *c->ex;
    tmp->inference = 0;
    return tmp;
}

static void dense_forward(const layer_call *c) {
    const dense_cfg *cfg = CFG(c->n);
    herd_exec tmp;
    c->be->dense_forward(dense_exec(c, &tmp), c->out, c->in[0], c->w[0], c->w[1], c->B * cfg->rows, cfg->in, cfg->out);
    if (c->n->fused_act) c->be->act_forward(c->ex, c->out, c->out, (int64_t)c->B * c->n->numel, c->n->fused_act, 0);
}

/* one position: one row through the same kernel */
static void dense_decode(const layer_call *c, float *cache) {
    (void)cache;
    const dense_cfg *cfg = CFG(c->n);
    herd_exec tmp;
    c->be->dense_forward(dense_exec(c, &tmp), c->out, c->in[0], c->w[0], c->w[1], 1, cfg->in, cfg->out);
    if (c->n->fused_act) c->be->act_forward(c->ex, c->out, c->out, cfg->out, c->n->fused_act, 0);
}

static void dense_backward(const layer_call *c) {
    const dense_cfg *cfg = CFG(c->n);
    const herd_act act = herdi_layer_backward_act(c->n);
    if (act) c->be->act_backward_inplace(c->ex, c->dout, c->out, (int64_t)c->B * c->n->numel, act);
    c->be->dense_backward(c->ex, c->din[0], c->dw[0], c->dw[1], c->dout, c->in[0], c->w[0], c->B * cfg->rows, cfg->in,
                          cfg->out);
}

static int64_t dense_flops(const herd_model *m, const node *n) {
    (void)m;
    return 2 * (int64_t)CFG(n)->rows * CFG(n)->in * CFG(n)->out + (CFG(n)->bias ? n->numel : 0);
}

static void dense_describe(const herd_model *m, const node *n, char *buf, size_t size) {
    if (CFG(n)->tie) snprintf(buf, size, "%d tied to %s", CFG(n)->out, m->nodes[CFG(n)->tie - 1].name);
    else snprintf(buf, size, "%d", CFG(n)->out);
}

/* per position, (N,T,F): MatMul by the weight transposed (a Transpose of the initializer itself,
 * so a tied table stays the one tensor its Gather reads), plus the bias */
static herd_status dense_onnx_positions(onnx_exporter *x, const node *n) {
    char wt[HERD_NAME_MAX + 8], mm[HERD_NAME_MAX + 8];
    snprintf(wt, sizeof wt, "%s_wT", n->name);
    snprintf(mm, sizeof mm, "%s_matmul", n->name);
    const char *w = herdi_onnx_param(x, n, 0), *bias = herdi_onnx_param(x, n, 1), *out = herdi_onnx_out(x, n);
    static const int64_t swap[2] = {1, 0};
    onnx_xattr perm = {.name = "perm", .type = 'I', .ints = swap, .n_ints = 2};
    herdi_onnx_emit(x, "Transpose", wt, wt, &w, 1, &perm, 1);
    const char *a[2] = {herdi_onnx_in(x, n, 0), wt}, *b[2] = {mm, bias};
    herdi_onnx_emit(x, "MatMul", bias ? mm : n->name, bias ? mm : out, a, 2, NULL, 0);
    if (bias) herdi_onnx_emit(x, "Add", n->name, out, b, 2, NULL, 0);
    return HERD_OK;
}

static herd_status dense_onnx(onnx_exporter *x, const node *n) {
    if (CFG(n)->rows > 1 || CFG(n)->positions == 3 || CFG(n)->tie) return dense_onnx_positions(x, n);
    const char *in = herdi_onnx_in(x, n, 0);
    char flat[HERD_NAME_MAX + 8];
    if (herdi_onnx_in_rank4(x, n, 0)) { /* a dense layer straight after a 1x1 feature map */
        snprintf(flat, sizeof flat, "%s_flat", n->name);
        onnx_xattr axis = {.name = "axis", .type = 'i', .i = 1};
        herdi_onnx_emit(x, "Flatten", flat, flat, &in, 1, &axis, 1);
        in = flat;
    }
    const char *ins[3] = {in, herdi_onnx_param(x, n, 0), herdi_onnx_param(x, n, 1)};
    onnx_xattr a[3] = {{.name = "alpha", .type = 'f', .f = 1.0f},
                      {.name = "beta", .type = 'f', .f = 1.0f},
                      {.name = "transB", .type = 'i', .i = 1}};
    herdi_onnx_emit(x, "Gemm", n->name, herdi_onnx_out(x, n), ins, ins[2] ? 3 : 2, a, 3);
    herdi_onnx_set_out(x, n, herdi_onnx_out(x, n), 0);
    return HERD_OK;
}

/* Gemm of a vector: weight [out, in] (transB=1, as herd and PyTorch write it) or [in, out];
 * alpha and beta are folded into the weight and the bias (alpha * W, beta * C: the same
 * function; herd then trains those products); the bias C is [out], [1, out] or one value */
static herd_status dense_onnx_import(onnx_importer *x) {
    int64_t w[8], b[8];
    int trans = herdi_onnx_attr_int(x, "transB", 0) == 0, nb = herdi_onnx_const_dims(x, 2, b), bias = nb >= 0;
    float alpha = herdi_onnx_attr_float(x, "alpha", 1), beta = herdi_onnx_attr_float(x, "beta", 1);
    if (herdi_onnx_attr_int(x, "transA", 0) != 0)
        return herdi_onnx_refuse(x, "transA=1 (A transposed puts the batch on A's second axis; herd's samples are rows)");
    if (!isfinite(alpha) || !isfinite(beta)) return herdi_onnx_refuse(x, "alpha %g, beta %g (finite values)", alpha, beta);
    if (herdi_onnx_const_dims(x, 1, w) != 2) return herdi_onnx_refuse(x, "the weight must be a 2-D initializer");
    if (nb == 2 && b[0] != 1)
        return herdi_onnx_refuse(x, "a bias C of %lld rows (one per sample; herd's bias is one row for every sample)",
                           (long long)b[0]);
    if (herdi_onnx_in_ndim(x) != 1 && !herdi_layer_is_vector(herdi_onnx_in_ndim(x), herdi_onnx_in_dims(x)))
        return herdi_onnx_refuse(x, "reads an NCHW tensor; flatten it first");
    herdi_onnx_arg(x, "units", "%lld", (long long)w[trans ? 1 : 0]);
    if (!bias) herdi_onnx_arg(x, "bias", "0");
    herd_status st = herdi_onnx_weight_as(x, 1, 0, trans, alpha, 0);
    return st || !bias ? st : herdi_onnx_weight_as(x, 2, 1, 0, beta, 1);
}

static void dense_spec(const herd_model *m, const node *n, char *buf, size_t size) {
    int k = snprintf(buf, size, "dense %d%s%s", CFG(n)->out, CFG(n)->bias ? "" : " bias=0",
                     CFG(n)->positions == 3 ? " positions=1" : "");
    if (CFG(n)->tie && k > 0 && (size_t)k < size) snprintf(buf + k, size - (size_t)k, " tie=%s", m->nodes[CFG(n)->tie - 1].name);
}

static const char *const dense_keywords[] = {"dense", NULL};
static const char *const dense_ops[] = {"Gemm", NULL};
static const char *const dense_positional[] = {"units", NULL};

const layer_kind herdi_layer_dense = {
    .name = "dense", .keywords = dense_keywords, .positional = dense_positional, .min_inputs = 1, .max_inputs = 1,
    .flags = LAYER_FUSES_RELU | LAYER_TAKES_ACT, .build = dense_build, .init = dense_init, .plan = dense_plan,
    .forward = dense_forward, .backward = dense_backward, .backward_reads = herdi_layer_reads_input_and_fused_output, .flops = dense_flops, .describe = dense_describe,
    .onnx_export = dense_onnx,
    .onnx_ops = dense_ops, .onnx_import = dense_onnx_import, .spec = dense_spec, .decode = dense_decode,
};
