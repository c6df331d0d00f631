/* layernorm: normalises each row over the last dimension C of the sample, as PyTorch's
 * nn.LayerNorm(C): (F) over F, (T,C) per position; weight and bias (C). Forward keeps each
 * row's mean and 1/std for backward (llm.c's layernorm_forward/backward). */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "layers/layer_common.h"

typedef struct ln_cfg {
    float eps;
    int64_t C, rows; /* per sample: rows of C */
} ln_cfg;
_Static_assert(sizeof(ln_cfg) <= LAYER_CFG_BYTES, "layernorm config fits a node");
#define CFG(n) ((const ln_cfg *)(n)->cfg)

static herd_status ln_build(layer_build *b) {
    ln_cfg *cfg = (ln_cfg *)b->n->cfg;
    cfg->eps = 1e-5f;
    herd_status st = herdi_lb_float(b, "eps", "eps", 0, 1e-12, 1, &cfg->eps);
    if (st) return st;
    int nd = herdi_lb_in_ndim(b, 0);
    const int64_t *d = herdi_lb_in_dims(b, 0);
    cfg->C = herdi_layer_is_vector(nd, d) ? d[0] : d[nd - 1];
    cfg->rows = herdi_node_in_numel(b->m, b->n, 0) / cfg->C;
    herdi_lb_set_shape(b, nd, d);
    int64_t C[1] = {cfg->C};
    if ((st = herdi_lb_param(b, 0, "weight", 1, 1, C))) return st;
    return herdi_lb_param(b, 1, "bias", 1, 1, C);
}

static void ln_init(herd_model *m, node *n, uint64_t seed) {
    (void)seed;
    float *w = herdi_node_param(m, n, 0), *bias = herdi_node_param(m, n, 1);
    for (int64_t c = 0; c < CFG(n)->C; c++) w[c] = 1.0f, bias[c] = 0.0f;
}

static herd_status ln_plan(node *n, layer_plan *p) {
    size_t count = (size_t)p->B * (size_t)CFG(n)->rows;
    n->saved[0] = herd_arena_floats(p->arena, count);
    n->saved[1] = herd_arena_floats(p->arena, count);
    return n->saved[0] && n->saved[1] ? HERD_OK : HERD_ENOMEM;
}

/* out, in (R,C); mean, rstd (R) */
static void ln_forward_ref(float *out, float *mean, float *rstd, const float *in, const float *w, const float *bias,
                           int64_t R, int64_t C, float eps) {
    for (int64_t r = 0; r < R; r++) {
        const float *x = in + r * C;
        float m = 0.0f, v = 0.0f;
        for (int64_t i = 0; i < C; i++) m += x[i];
        m /= (float)C;
        for (int64_t i = 0; i < C; i++) v += (x[i] - m) * (x[i] - m);
        v /= (float)C;
        float s = 1.0f / sqrtf(v + eps);
        float *y = out + r * C;
        for (int64_t i = 0; i < C; i++) y[i] = (x[i] - m) * s * w[i] + bias[i];
        mean[r] = m, rstd[r] = s;
    }
}

/* accumulates into din (may be NULL), dw, db */
static void ln_backward_ref(float *din, float *dw, float *db, const float *dout, const float *in, const float *mean,
                            const float *rstd, const float *w, int64_t R, int64_t C) {
    for (int64_t r = 0; r < R; r++) {
        const float *x = in + r * C, *g = dout + r * C;
        float m = mean[r], s = rstd[r], dnorm_mean = 0.0f, dnorm_norm_mean = 0.0f;
        for (int64_t i = 0; i < C; i++) {
            float norm = (x[i] - m) * s, dnorm = w[i] * g[i];
            dnorm_mean += dnorm;
            dnorm_norm_mean += dnorm * norm;
        }
        dnorm_mean /= (float)C;
        dnorm_norm_mean /= (float)C;
        for (int64_t i = 0; i < C; i++) {
            float norm = (x[i] - m) * s;
            if (db) db[i] += g[i];
            if (dw) dw[i] += norm * g[i];
            if (din) din[r * C + i] += (w[i] * g[i] - dnorm_mean - norm * dnorm_norm_mean) * s;
        }
    }
}

static float *saved_rows(const layer_call *c, int k) { return (float *)c->n->saved[k] + c->row0 * CFG(c->n)->rows; }

/* one row */
static void ln_decode(const layer_call *c, float *cache) {
    (void)cache;
    float mean, rstd;
    ln_forward_ref(c->out, &mean, &rstd, c->in[0], c->w[0], c->w[1], 1, CFG(c->n)->C, CFG(c->n)->eps);
}

static void ln_forward(const layer_call *c) {
    const ln_cfg *cfg = CFG(c->n);
    ln_forward_ref(c->out, saved_rows(c, 0), saved_rows(c, 1), c->in[0], c->w[0], c->w[1], c->B * cfg->rows, cfg->C,
                   cfg->eps);
}

static void ln_backward(const layer_call *c) {
    const ln_cfg *cfg = CFG(c->n);
    ln_backward_ref(c->din[0], c->dw[0], c->dw[1], c->dout, c->in[0], saved_rows(c, 0), saved_rows(c, 1), c->w[0],
                    c->B * cfg->rows, cfg->C);
}

static int64_t ln_flops(const herd_model *m, const node *n) {
    (void)m;
    return 8 * n->numel;
}

static void ln_describe(const herd_model *m, const node *n, char *buf, size_t size) {
    (void)m;
    snprintf(buf, size, "over %lld", (long long)CFG(n)->C);
}

/* ONNX LayerNormalization (opset 17) over the last axis */
static herd_status ln_onnx(onnx_exporter *x, const node *n) {
    const char *in[3] = {herdi_onnx_in(x, n, 0), herdi_onnx_param(x, n, 0), herdi_onnx_param(x, n, 1)};
    onnx_xattr a[2] = {{.name = "axis", .type = 'i', .i = -1}, {.name = "epsilon", .type = 'f', .f = CFG(n)->eps}};
    herdi_onnx_require_opset(x, 17);
    herdi_onnx_emit(x, "LayerNormalization", n->name, herdi_onnx_out(x, n), in, 3, a, 2);
    return HERD_OK;
}

/* LayerNormalization over the last axis, scale and bias (absent: zero) into slots 0 and 1 */
static herd_status ln_onnx_import(onnx_importer *x) {
    int nd = herdi_onnx_in_ndim(x);
    int64_t axis = herdi_onnx_attr_int(x, "axis", -1), s[8];
    if (axis != -1 && axis != nd) return herdi_onnx_refuse(x, "axis=%lld (herd normalises the last axis)", (long long)axis);
    if (nd == 3 && herdi_layer_is_vector(nd, herdi_onnx_in_dims(x)))
        return herdi_onnx_refuse(x, "a C x 1 x 1 input (herd would normalise over C, ONNX over the last axis)");
    if (herdi_onnx_attr_int(x, "stash_type", 1) != 1) return herdi_onnx_refuse(x, "stash_type other than float");
    char e[32];
    herdi_onnx_arg(x, "eps", "%s", herdi_layer_float_str(herdi_onnx_attr_float(x, "epsilon", 1e-5f), e, sizeof e));
    herd_status st = herdi_onnx_weight(x, 1, 0, 0);
    return st || herdi_onnx_const_dims(x, 2, s) < 0 ? st : herdi_onnx_weight(x, 2, 1, 0);
}

static void ln_spec(const herd_model *m, const node *n, char *buf, size_t size) {
    (void)m;
    char e[32];
    if (CFG(n)->eps != 1e-5f) snprintf(buf, size, "layernorm eps=%s", herdi_layer_float_str(CFG(n)->eps, e, sizeof e));
    else snprintf(buf, size, "layernorm");
}

static const char *const ln_keywords[] = {"layernorm", NULL};
static const char *const ln_ops[] = {"LayerNormalization", NULL};

const layer_kind herdi_layer_layernorm = {
    .name = "layernorm", .keywords = ln_keywords, .prefix = "ln", .min_inputs = 1, .max_inputs = 1,
    .flags = LAYER_TAKES_ACT, .build = ln_build, .init = ln_init, .plan = ln_plan, .forward = ln_forward,
    .backward = ln_backward, .backward_reads = herdi_layer_reads_input, .flops = ln_flops, .describe = ln_describe, .onnx_export = ln_onnx,
    .onnx_ops = ln_ops, .onnx_import = ln_onnx_import, .spec = ln_spec, .decode = ln_decode,
};
