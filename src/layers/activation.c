/* relu, leaky_relu [ALPHA], sigmoid, tanh, gelu (exact erf form), gelu_tanh (its tanh form), relu6, hardsigmoid,
 * hardswish, silu: elementwise activations, one kind chosen by the keyword. A ReLU right after a conv or dense layer that nothing else
 * reads is fused into it by the planner (it then never runs on its own). */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "layers/layer_common.h"

typedef struct act_cfg {
    herd_act act;
    float alpha;
} act_cfg;
#define CFG(n) ((const act_cfg *)(n)->cfg)

static const char *const act_keywords[] = {"relu",  "leaky_relu", "sigmoid",   "tanh", "gelu", "relu6",
                                           "hardsigmoid", "hardswish", "silu", "gelu_tanh", NULL};
static const herd_act act_of_keyword[] = {HERD_ACT_RELU,  HERD_ACT_LEAKY_RELU,  HERD_ACT_SIGMOID,
                                          HERD_ACT_TANH,  HERD_ACT_GELU,        HERD_ACT_RELU6,
                                          HERD_ACT_HARDSIGMOID, HERD_ACT_HARDSWISH, HERD_ACT_SILU, HERD_ACT_GELU_TANH};
/* by herd_act */
static const char *const act_names[] = {"none", "relu", "leaky_relu", "sigmoid", "tanh", "gelu",
                                        "relu6", "hardsigmoid", "hardswish", "silu", "gelu_tanh"};
_Static_assert(sizeof act_names / sizeof act_names[0] == HERD_ACT_GELU_TANH + 1, "a name for every activation");

static herd_status act_build(layer_build *b) {
    act_cfg *cfg = (act_cfg *)b->n->cfg;
    cfg->alpha = 0.01f;
    for (int k = 0; act_keywords[k]; k++)
        if (!strcmp(b->keyword, act_keywords[k])) cfg->act = act_of_keyword[k];
    if (cfg->act == HERD_ACT_LEAKY_RELU) {
        herd_status st = herdi_lb_float(b, "alpha", "negative slope", 0, 0, 1e6, &cfg->alpha);
        if (st) return st;
    }
    /* a ReLU-family activation after conv/dense asks for He init of that layer */
    node *p = herdi_lb_in_node(b, 0);
    if (p && cfg->act != HERD_ACT_SIGMOID && cfg->act != HERD_ACT_TANH && cfg->act != HERD_ACT_HARDSIGMOID)
        p->he_init = 1;
    herdi_lb_set_shape(b, herdi_lb_in_ndim(b, 0), herdi_lb_in_dims(b, 0));
    return HERD_OK;
}

static void act_forward(const layer_call *c) {
    c->be->act_forward(c->ex, c->out, c->in[0], (int64_t)c->B * c->n->numel, CFG(c->n)->act, CFG(c->n)->alpha);
}

static void act_decode(const layer_call *c, float *cache) {
    (void)cache;
    c->be->act_forward(c->ex, c->out, c->in[0], c->n->dims[c->n->ndim - 1], CFG(c->n)->act, CFG(c->n)->alpha);
}

static void act_backward(const layer_call *c) {
    if (c->din[0])
        c->be->act_backward(c->ex, c->din[0], c->dout, c->in[0], c->out, (int64_t)c->B * c->n->numel, CFG(c->n)->act,
                            CFG(c->n)->alpha);
}

/* relu, relu6, sigmoid and tanh take their slope from the output, the others from the input */
static int act_backward_reads(const node *n) {
    herd_act a = CFG(n)->act;
    return a == HERD_ACT_RELU || a == HERD_ACT_RELU6 || a == HERD_ACT_SIGMOID || a == HERD_ACT_TANH
               ? LAYER_READS_OUTPUT
               : LAYER_READS_INPUT;
}

static int64_t act_flops(const herd_model *m, const node *n) {
    (void)m;
    return n->numel;
}

static void act_describe(const herd_model *m, const node *n, char *buf, size_t size) {
    (void)m;
    snprintf(buf, size, "%s", act_names[CFG(n)->act]);
}

/* gelu(x) = x * (1 + erf(x / sqrt 2)) * 0.5, the graph PyTorch exports for F.gelu */
static void gelu_onnx(onnx_exporter *x, const node *n, const char *in, const char *out) {
    const char *sqrt2 = herdi_onnx_scalar(x, "herd_gelu_sqrt2", 1.41421356237309505f);
    const char *one = herdi_onnx_scalar(x, "herd_gelu_one", 1.0f), *half = herdi_onnx_scalar(x, "herd_gelu_half", 0.5f);
    char t_div[HERD_NAME_MAX + 8], t_erf[HERD_NAME_MAX + 8], t_add[HERD_NAME_MAX + 8], t_mul[HERD_NAME_MAX + 8];
    snprintf(t_div, sizeof t_div, "%s_div", n->name);
    snprintf(t_erf, sizeof t_erf, "%s_erf", n->name);
    snprintf(t_add, sizeof t_add, "%s_add", n->name);
    snprintf(t_mul, sizeof t_mul, "%s_mul", n->name);
    const char *a[2] = {in, sqrt2}, *b[1] = {t_div}, *c[2] = {t_erf, one}, *d[2] = {in, t_add}, *e[2] = {t_mul, half};
    herdi_onnx_emit(x, "Div", t_div, t_div, a, 2, NULL, 0);
    herdi_onnx_emit(x, "Erf", t_erf, t_erf, b, 1, NULL, 0);
    herdi_onnx_emit(x, "Add", t_add, t_add, c, 2, NULL, 0);
    herdi_onnx_emit(x, "Mul", t_mul, t_mul, d, 2, NULL, 0);
    herdi_onnx_emit(x, "Mul", n->name, out, e, 2, NULL, 0);
}

/* gelu_tanh(x) = x * (1 + tanh(sqrt(2/pi) * (x + 0.044715 x^3))) * 0.5 (opset 13 has no Gelu) */
static void gelu_tanh_onnx(onnx_exporter *x, const node *n, const char *in, const char *out) {
    const char *k = herdi_onnx_scalar(x, "herd_gelu_tanh_k", 0.79788456080286535588f),
               *c = herdi_onnx_scalar(x, "herd_gelu_tanh_c", 0.044715f), *one = herdi_onnx_scalar(x, "herd_gelu_one", 1.0f),
               *half = herdi_onnx_scalar(x, "herd_gelu_half", 0.5f);
    static const char *const step[] = {"sq", "cube", "cc", "inner", "scaled", "tanh", "plus1", "prod"};
    char t[8][HERD_NAME_MAX + 8];
    for (int i = 0; i < 8; i++) snprintf(t[i], sizeof t[i], "%s_%s", n->name, step[i]);
    const char *a[][2] = {{in, in}, {t[0], in}, {t[1], c}, {in, t[2]}, {t[3], k}, {t[4], NULL}, {t[5], one}, {in, t[6]}};
    static const char *const op[] = {"Mul", "Mul", "Mul", "Add", "Mul", "Tanh", "Add", "Mul"};
    for (int i = 0; i < 8; i++) herdi_onnx_emit(x, op[i], t[i], t[i], a[i], i == 5 ? 1 : 2, NULL, 0);
    const char *e[2] = {t[7], half};
    herdi_onnx_emit(x, "Mul", n->name, out, e, 2, NULL, 0);
}

/* hardsigmoid as ONNX HardSigmoid with PyTorch's constants */
static void hardsigmoid_onnx(onnx_exporter *x, const char *name, const char *in, const char *out) {
    onnx_xattr a[2] = {{.name = "alpha", .type = 'f', .f = 1.0f / 6.0f}, {.name = "beta", .type = 'f', .f = 0.5f}};
    herdi_onnx_emit(x, "HardSigmoid", name, out, &in, 1, a, 2);
}

/* x * gate(x), as PyTorch exports SiLU (Sigmoid, Mul) and Hardswish (HardSigmoid, Mul) at opset 13 */
static void gated_onnx(onnx_exporter *x, const node *n, const char *in, const char *out, int hard) {
    char t[HERD_NAME_MAX + 8];
    snprintf(t, sizeof t, "%s_gate", n->name);
    if (hard) hardsigmoid_onnx(x, t, in, t);
    else herdi_onnx_emit(x, "Sigmoid", t, t, &in, 1, NULL, 0);
    const char *m[2] = {in, t};
    herdi_onnx_emit(x, "Mul", n->name, out, m, 2, NULL, 0);
}

static herd_status act_onnx(onnx_exporter *x, const node *n) {
    const char *in = herdi_onnx_in(x, n, 0), *out = herdi_onnx_out(x, n);
    switch (CFG(n)->act) {
    case HERD_ACT_RELU6: {
        const char *c[3] = {in, herdi_onnx_scalar(x, "herd_clip_zero", 0.0f), herdi_onnx_scalar(x, "herd_clip_six", 6.0f)};
        herdi_onnx_emit(x, "Clip", n->name, out, c, 3, NULL, 0);
        break;
    }
    case HERD_ACT_HARDSIGMOID: hardsigmoid_onnx(x, n->name, in, out); break;
    case HERD_ACT_HARDSWISH: gated_onnx(x, n, in, out, 1); break;
    case HERD_ACT_SILU: gated_onnx(x, n, in, out, 0); break;
    case HERD_ACT_RELU: herdi_onnx_emit(x, "Relu", n->name, out, &in, 1, NULL, 0); break;
    case HERD_ACT_SIGMOID: herdi_onnx_emit(x, "Sigmoid", n->name, out, &in, 1, NULL, 0); break;
    case HERD_ACT_TANH: herdi_onnx_emit(x, "Tanh", n->name, out, &in, 1, NULL, 0); break;
    case HERD_ACT_GELU: gelu_onnx(x, n, in, out); break;
    case HERD_ACT_GELU_TANH: gelu_tanh_onnx(x, n, in, out); break;
    case HERD_ACT_LEAKY_RELU: {
        onnx_xattr a = {.name = "alpha", .type = 'f', .f = CFG(n)->alpha};
        herdi_onnx_emit(x, "LeakyRelu", n->name, out, &in, 1, &a, 1);
        break;
    }
    case HERD_ACT_NONE: herdi_onnx_set_out(x, n, in, herdi_onnx_in_rank4(x, n, 0)); break;
    }
    return HERD_OK;
}

/* Relu, LeakyRelu, Sigmoid, Tanh, HardSwish; Clip to [0, 6] (relu6) or [0, none] (relu);
 * HardSigmoid with PyTorch's alpha 1/6 and beta 1/2 (GELU, SiLU and Hardswish written as
 * several nodes are patterns of the importer) */
static herd_status act_onnx_import(onnx_importer *x) {
    static const char *const ops[] = {"Relu", "LeakyRelu", "Sigmoid", "Tanh", "HardSwish", "HardSigmoid"},
                             *kws[] = {"relu", "leaky_relu", "sigmoid", "tanh", "hardswish", "hardsigmoid"};
    for (int k = 0; k < 6; k++)
        if (!strcmp(herdi_onnx_op(x), ops[k])) herdi_onnx_keyword(x, kws[k]);
    if (!strcmp(herdi_onnx_op(x), "LeakyRelu")) {
        char a[32];
        herdi_onnx_arg(x, "alpha", "%s", herdi_layer_float_str(herdi_onnx_attr_float(x, "alpha", 0.01f), a, sizeof a));
    }
    if (!strcmp(herdi_onnx_op(x), "HardSigmoid")) {
        float a = herdi_onnx_attr_float(x, "alpha", 0.2f), b = herdi_onnx_attr_float(x, "beta", 0.5f);
        if (fabsf(a - 1.0f / 6.0f) > 1e-6f || b != 0.5f)
            return herdi_onnx_refuse(x, "alpha=%g beta=%g (herd's hardsigmoid is PyTorch's: alpha 1/6, beta 0.5)", (double)a,
                               (double)b);
    }
    if (!strcmp(herdi_onnx_op(x), "Clip")) {
        /* bounds from inputs 1 and 2 (opset 11 on) or the min/max attributes (before) */
        double lo = herdi_onnx_attr_float(x, "min", -INFINITY), hi = herdi_onnx_attr_float(x, "max", INFINITY);
        int has_lo, has_hi;
        herd_status st = herdi_onnx_const_scalar(x, 1, "min", &lo, &has_lo);
        if (!st) st = herdi_onnx_const_scalar(x, 2, "max", &hi, &has_hi);
        if (st) return st;
        if (lo == 0 && hi == 6) herdi_onnx_keyword(x, "relu6");
        else if (lo == 0 && hi == INFINITY) herdi_onnx_keyword(x, "relu");
        else return herdi_onnx_refuse(x, "min=%g max=%g (herd clips to [0, 6] as relu6, or [0, none] as relu)", lo, hi);
    }
    return HERD_OK;
}

static void act_spec(const herd_model *m, const node *n, char *buf, size_t size) {
    (void)m;
    char a[32];
    if (CFG(n)->act == HERD_ACT_LEAKY_RELU && CFG(n)->alpha != 0.01f)
        snprintf(buf, size, "leaky_relu alpha=%s", herdi_layer_float_str(CFG(n)->alpha, a, sizeof a));
    else
        snprintf(buf, size, "%s", act_names[CFG(n)->act]);
}

static const char *const act_positional[] = {"alpha", NULL};
static const char *const act_ops[] = {"Relu", "LeakyRelu", "Sigmoid", "Tanh", "HardSwish", "HardSigmoid", "Clip", NULL};

const layer_kind herdi_layer_activation = {
    .name = "activation", .keywords = act_keywords, .positional = act_positional, .min_inputs = 1, .max_inputs = 1,
    .flags = LAYER_ACTIVATION, .build = act_build, .forward = act_forward, .backward = act_backward, .backward_reads = act_backward_reads, .flops = act_flops,
    .describe = act_describe, .onnx_export = act_onnx,
    .onnx_ops = act_ops, .onnx_import = act_onnx_import, .spec = act_spec, .decode = act_decode,
};

/* The activations a planner may fuse: this kind with act == relu or relu6. */
herd_act herdi_layer_fusable_act(const node *n) {
    if (n->kind != &herdi_layer_activation) return HERD_ACT_NONE;
    return CFG(n)->act == HERD_ACT_RELU || CFG(n)->act == HERD_ACT_RELU6 ? CFG(n)->act : HERD_ACT_NONE;
}
