/* mul: the elementwise product of two inputs of one shape, or of an image (C,H,W) and a
 * per-channel gate (C) / (C,1,1) broadcast over H and W: the squeeze-and-excitation gate of
 * MobileNetV3 and EfficientNet (x * sigmoid(fc(gap(x)))). */
#include <stdio.h>
#include <string.h>

#include "layers/layer_common.h"

typedef struct mul_cfg {
    int gate;       /* input holding the per-channel gate (0 or 1), -1: same shapes */
    int64_t C, HW;  /* broadcast: the image's channels and plane size */
} mul_cfg;
_Static_assert(sizeof(mul_cfg) <= LAYER_CFG_BYTES, "mul config fits a node");
#define CFG(n) ((const mul_cfg *)(n)->cfg)

static herd_status mul_build(layer_build *b) {
    mul_cfg *cfg = (mul_cfg *)b->n->cfg;
    int na = herdi_lb_in_ndim(b, 0), nb = herdi_lb_in_ndim(b, 1);
    const int64_t *da = herdi_lb_in_dims(b, 0), *db = herdi_lb_in_dims(b, 1);
    cfg->gate = -1;
    if (na == nb && !memcmp(da, db, (size_t)na * sizeof *da)) {
        herdi_lb_set_shape(b, na, da);
        return HERD_OK;
    }
    for (int g = 0; g < 2; g++) {
        int ni = g ? na : nb, ng = g ? nb : na;
        const int64_t *di = g ? da : db, *dg = g ? db : da;
        if (ni == 3 && herdi_layer_is_vector(ng, dg) && dg[0] == di[0]) {
            cfg->gate = g, cfg->C = di[0], cfg->HW = di[1] * di[2];
            herdi_lb_set_shape(b, ni, di);
            return HERD_OK;
        }
    }
    char s0[64], s1[64];
    const node *f = herdi_lb_in_node(b, 1);
    return herdi_lb_fail(b, HERD_ESHAPE, "from", "mul: the input is %s but '%s' is %s (mul takes one shape, or an image "
                   "and one value per channel)", herdi_lb_shape_str(na, da, s0, sizeof s0),
                   f ? f->name : b->m->inputs[-1 - b->n->in[1]].name, herdi_lb_shape_str(nb, db, s1, sizeof s1));
}

static void mul_forward(const layer_call *c) {
    const mul_cfg *cfg = CFG(c->n);
    int64_t n = (int64_t)c->B * c->n->numel;
    if (cfg->gate < 0) {
        for (int64_t i = 0; i < n; i++) c->out[i] = c->in[0][i] * c->in[1][i];
        return;
    }
    const float *x = c->in[1 - cfg->gate], *g = c->in[cfg->gate];
    for (int64_t p = 0; p < (int64_t)c->B * cfg->C; p++)
        for (int64_t i = 0; i < cfg->HW; i++) c->out[p * cfg->HW + i] = x[p * cfg->HW + i] * g[p];
}

/* d x = dout * gate; d gate = sum over the plane of dout * x (kept in double) */
static void mul_backward(const layer_call *c) {
    const mul_cfg *cfg = CFG(c->n);
    int64_t n = (int64_t)c->B * c->n->numel;
    if (cfg->gate < 0) {
        for (int k = 0; k < 2; k++)
            if (c->din[k])
                for (int64_t i = 0; i < n; i++) c->din[k][i] += c->dout[i] * c->in[1 - k][i];
        return;
    }
    int xi = 1 - cfg->gate;
    const float *x = c->in[xi], *g = c->in[cfg->gate];
    for (int64_t p = 0; p < (int64_t)c->B * cfg->C; p++) {
        const float *d = c->dout + p * cfg->HW, *xp = x + p * cfg->HW;
        if (c->din[xi])
            for (int64_t i = 0; i < cfg->HW; i++) c->din[xi][p * cfg->HW + i] += d[i] * g[p];
        if (c->din[cfg->gate]) {
            double s = 0;
            for (int64_t i = 0; i < cfg->HW; i++) s += (double)d[i] * xp[i];
            c->din[cfg->gate][p] += (float)s;
        }
    }
}

static int64_t mul_flops(const herd_model *m, const node *n) {
    (void)m;
    return n->numel;
}

static void mul_describe(const herd_model *m, const node *n, char *buf, size_t size) {
    const char *a = n->in[0] >= 0 ? m->nodes[n->in[0]].name : m->inputs[-1 - n->in[0]].name;
    const char *b = n->in[1] >= 0 ? m->nodes[n->in[1]].name : m->inputs[-1 - n->in[1]].name;
    snprintf(buf, size, "%s * %s%s", a, b, CFG(n)->gate >= 0 ? " (per channel)" : "");
}

/* Mul; a per-channel gate must be (N,C,1,1) in ONNX, so that broadcasting pairs it with C */
static herd_status mul_onnx(onnx_exporter *x, const node *n) {
    const char *in[2] = {herdi_onnx_in(x, n, 0), herdi_onnx_in(x, n, 1)};
    if (herdi_onnx_in_rank4(x, n, 0) != herdi_onnx_in_rank4(x, n, 1))
        return herdi_onnx_fail(x, "mul '%s' multiplies a flat and an NCHW tensor (ONNX would broadcast it along W)",
                         n->name);
    herdi_onnx_emit(x, "Mul", n->name, herdi_onnx_out(x, n), in, 2, NULL, 0);
    return HERD_OK;
}

/* Mul of two layer outputs (the importer's Mul pattern checks their ONNX ranks agree) */
static herd_status mul_onnx_import(onnx_importer *x) {
    (void)x;
    return HERD_OK;
}

static const char *const mul_keywords[] = {"mul", NULL};
/* `mul NAME` multiplies the line before by NAME; `mul A,B` those two */
static const char *const mul_positional[] = {"from", NULL};

const layer_kind herdi_layer_mul = {
    .name = "mul", .keywords = mul_keywords, .positional = mul_positional, .min_inputs = 2, .max_inputs = 2,
    .flags = LAYER_TAKES_ACT, .build = mul_build, .forward = mul_forward, .backward = mul_backward,
    .backward_reads = herdi_layer_reads_input, .flops = mul_flops, .describe = mul_describe, .onnx_export = mul_onnx,
    .onnx_import = mul_onnx_import,
};
