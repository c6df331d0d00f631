/* posemb [std=0.02]: a learned position embedding added to a (T, C) input, GPT-2's wpe: out[t]
 * = in[t] + weight[t], weight (T, C) initialised N(0, std^2). PyTorch: x + wpe.weight[:T]. */
#include <stdio.h>

#include "layers/layer_common.h"

typedef struct posemb_cfg {
    float std;
} posemb_cfg;
_Static_assert(sizeof(posemb_cfg) <= LAYER_CFG_BYTES, "posemb config fits a node");
#define CFG(n) ((const posemb_cfg *)(n)->cfg)

static herd_status posemb_build(layer_build *b) {
    posemb_cfg *cfg = (posemb_cfg *)b->n->cfg;
    cfg->std = 0.02f;
    herd_status st = herdi_lb_float(b, "std", "initial standard deviation", 0, 0, 100, &cfg->std);
    if (st) return st;
    int nd = herdi_lb_in_ndim(b, 0);
    const int64_t *d = herdi_lb_in_dims(b, 0);
    if (nd != 2) {
        char s[64];
        return herdi_lb_fail(b, HERD_ESHAPE, NULL, "posemb adds a position embedding to (T, C) positions, not %s",
                       herdi_lb_shape_str(nd, d, s, sizeof s));
    }
    herdi_lb_set_shape(b, nd, d);
    return herdi_lb_param(b, 0, "weight", 1, 2, d);
}

static void posemb_init(herd_model *m, node *n, uint64_t seed) {
    float *w = herdi_node_param(m, n, 0);
    herd_rng r;
    herd_rng_init(&r, seed, 1000 + (uint64_t)n->param[0]); /* one stream per tensor */
    herd_rng_normals(&r, w, n->numel, CFG(n)->std, NULL);
}

static void posemb_forward(const layer_call *c) {
    int64_t per = c->n->numel;
    for (int b = 0; b < c->B; b++)
        for (int64_t i = 0; i < per; i++) c->out[b * per + i] = c->in[0][b * per + i] + c->w[0][i];
}

static void posemb_backward(const layer_call *c) {
    int64_t per = c->n->numel;
    for (int b = 0; b < c->B; b++) {
        const float *g = c->dout + b * per;
        if (c->din[0])
            for (int64_t i = 0; i < per; i++) c->din[0][b * per + i] += g[i];
        if (c->dw[0])
            for (int64_t i = 0; i < per; i++) c->dw[0][i] += g[i];
    }
}

/* one position: in + weight[pos] */
static void posemb_decode(const layer_call *c, float *cache) {
    (void)cache;
    int64_t C = c->n->dims[1];
    const float *w = c->w[0] + c->row0 * C;
    for (int64_t i = 0; i < C; i++) c->out[i] = c->in[0][i] + w[i];
}

static int64_t posemb_flops(const herd_model *m, const node *n) {
    (void)m;
    return n->numel;
}

/* Add of the (T, C) weight, broadcast over the batch */
static herd_status posemb_onnx(onnx_exporter *x, const node *n) {
    const char *in[2] = {herdi_onnx_in(x, n, 0), herdi_onnx_param(x, n, 0)};
    herdi_onnx_emit(x, "Add", n->name, herdi_onnx_out(x, n), in, 2, NULL, 0);
    return HERD_OK;
}

static void posemb_spec(const herd_model *m, const node *n, char *buf, size_t size) {
    (void)m;
    char s[32];
    if (CFG(n)->std != 0.02f) snprintf(buf, size, "posemb std=%s", herdi_layer_float_str(CFG(n)->std, s, sizeof s));
    else snprintf(buf, size, "posemb");
}

static const char *const posemb_keywords[] = {"posemb", NULL};

const layer_kind herdi_layer_posemb = {
    .name = "posemb", .keywords = posemb_keywords, .min_inputs = 1, .max_inputs = 1, .build = posemb_build,
    .init = posemb_init, .forward = posemb_forward, .backward = posemb_backward, .backward_reads = herdi_layer_reads_nothing,
    .flops = posemb_flops, .onnx_export = posemb_onnx, .spec = posemb_spec, .decode = posemb_decode,
};
