/* scale: multiplies each channel of an image (C,H,W), or each value of a vector (F), by a
 * learned factor: y[c] = x[c] * weight[c], as ConvNeXt's layer scale (weight (C,1,1) for an
 * image, as PyTorch stores it; (F) for a vector). init=V sets the factors' start (default 1;
 * ConvNeXt starts at 1e-6). ONNX: Mul by the weight. */
#include <stdio.h>
#include <string.h>

#include "layers/layer_common.h"

typedef struct scale_cfg {
    int64_t C, plane;
    float init;
} scale_cfg;
_Static_assert(sizeof(scale_cfg) <= LAYER_CFG_BYTES, "scale config fits a node");
#define CFG(n) ((const scale_cfg *)(n)->cfg)

static herd_status scale_build(layer_build *b) {
    scale_cfg *cfg = (scale_cfg *)b->n->cfg;
    cfg->init = 1.0f;
    herd_status st = herdi_lb_float(b, "init", "initial factor", 0, -1e30, 1e30, &cfg->init);
    if (st) return st;
    int nd = herdi_lb_in_ndim(b, 0);
    const int64_t *d = herdi_lb_in_dims(b, 0);
    if (nd != 1 && nd != 3) {
        char s[64];
        return herdi_lb_fail(b, HERD_ESHAPE, NULL, "scale reads an image (C,H,W) or a vector, not %s",
                             herdi_lb_shape_str(nd, d, s, sizeof s));
    }
    cfg->C = d[0], cfg->plane = nd == 3 ? d[1] * d[2] : 1;
    herdi_lb_set_shape(b, nd, d);
    int64_t w[3] = {d[0], 1, 1};
    return herdi_lb_param(b, 0, "weight", 1, nd == 3 ? 3 : 1, w);
}

static void scale_init(herd_model *m, node *n, uint64_t seed) {
    (void)seed;
    float *w = herdi_node_param(m, n, 0);
    for (int64_t c = 0; c < CFG(n)->C; c++) w[c] = CFG(n)->init;
}

static void scale_forward(const layer_call *c) {
    const scale_cfg *cfg = CFG(c->n);
    const float *w = c->w[0];
    for (int64_t r = 0; r < (int64_t)c->B * cfg->C; r++) {
        float f = w[r % cfg->C];
        const float *x = c->in[0] + r * cfg->plane;
        float *y = c->out + r * cfg->plane;
        for (int64_t i = 0; i < cfg->plane; i++) y[i] = x[i] * f;
    }
}

/* d x = dout * weight; d weight[c] = the sum over the batch and the plane of dout * x (each
 * plane's sum in double, the planes added in batch order) */
static void scale_backward(const layer_call *c) {
    const scale_cfg *cfg = CFG(c->n);
    const float *w = c->w[0];
    for (int64_t r = 0; r < (int64_t)c->B * cfg->C; r++) {
        int64_t ch = r % cfg->C;
        const float *g = c->dout + r * cfg->plane, *x = c->in[0] + r * cfg->plane;
        if (c->din[0])
            for (int64_t i = 0; i < cfg->plane; i++) c->din[0][r * cfg->plane + i] += g[i] * w[ch];
        if (c->dw[0]) {
            double s = 0;
            for (int64_t i = 0; i < cfg->plane; i++) s += (double)g[i] * x[i];
            c->dw[0][ch] += (float)s;
        }
    }
}

static int64_t scale_flops(const herd_model *m, const node *n) {
    (void)m;
    return n->numel;
}

static void scale_describe(const herd_model *m, const node *n, char *buf, size_t size) {
    (void)m;
    snprintf(buf, size, "%lld factors", (long long)CFG(n)->C);
}

static void scale_spec(const herd_model *m, const node *n, char *buf, size_t size) {
    (void)m;
    char v[32];
    if (CFG(n)->init != 1.0f) snprintf(buf, size, "scale init=%s", herdi_layer_float_str(CFG(n)->init, v, sizeof v));
    else snprintf(buf, size, "scale");
}

/* Mul by the weight ((C,1,1) broadcasts over an (N,C,H,W) image, (F) over (N,F)); a vector that
 * ONNX holds as (N,F,1,1) is flattened first */
static herd_status scale_onnx(onnx_exporter *x, const node *n) {
    const char *in = herdi_onnx_in(x, n, 0);
    char flat[HERD_NAME_MAX + 8];
    if (n->ndim == 1 && herdi_onnx_in_rank4(x, n, 0)) {
        snprintf(flat, sizeof flat, "%s_flat", n->name);
        onnx_xattr axis = {.name = "axis", .type = 'i', .i = 1};
        herdi_onnx_emit(x, "Flatten", flat, flat, &in, 1, &axis, 1);
        in = flat;
    }
    const char *ins[2] = {in, herdi_onnx_param(x, n, 0)};
    herdi_onnx_emit(x, "Mul", n->name, herdi_onnx_out(x, n), ins, 2, NULL, 0);
    return HERD_OK;
}

/* Mul of a layer's output by a per-channel initializer: (C,1,1) for (N,C,H,W), (F) or (1,F)
 * for (N,F) (the importer's Mul pattern sends it here) */
static herd_status scale_onnx_import(onnx_importer *x) {
    int64_t d[8];
    int k = herdi_onnx_const_dims(x, 0, d) >= 0 ? 0 : 1, nd = herdi_onnx_const_dims(x, k, d);
    int in_nd = herdi_onnx_in_ndim(x);
    const int64_t *in = herdi_onnx_in_dims(x);
    int ok = in_nd == 3 ? nd == 3 && d[0] == in[0] && d[1] == 1 && d[2] == 1
                        : (nd == 1 && d[0] == in[0]) || (nd == 2 && d[0] == 1 && d[1] == in[0]);
    if (!ok) {
        char a[64], b[64];
        return herdi_onnx_refuse(x, "multiplies %s by a constant %s: herd multiplies by one factor per channel "
                                 "((C,1,1) for an image, (F) for a vector)", herdi_lb_shape_str(in_nd, in, a, sizeof a),
                                 herdi_lb_shape_str(nd, d, b, sizeof b));
    }
    return herdi_onnx_weight(x, k, 0, 0);
}

static const char *const scale_keywords[] = {"scale", NULL};

const layer_kind herdi_layer_scale = {
    .name = "scale", .keywords = scale_keywords, .min_inputs = 1, .max_inputs = 1, .flags = LAYER_TAKES_ACT,
    .build = scale_build, .init = scale_init, .forward = scale_forward, .backward = scale_backward,
    .backward_reads = herdi_layer_reads_input, .flops = scale_flops, .describe = scale_describe,
    .onnx_export = scale_onnx, .onnx_import = scale_onnx_import, .spec = scale_spec,
};
