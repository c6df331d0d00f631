/* shuffle: ShuffleNet's channel shuffle of an image (C,H,W) in G groups: the channels seen as a
 * G x C/G matrix, transposed; output channel i*G + g is input channel g*C/G + i (PyTorch's
 * x.view(N, G, C/G, H, W).transpose(1, 2).reshape(N, C, H, W)). */
#include <stdio.h>
#include <string.h>

#include "layers/layer_common.h"

typedef struct shuffle_cfg {
    int64_t G, C, H, W, plane;
} shuffle_cfg;
_Static_assert(sizeof(shuffle_cfg) <= LAYER_CFG_BYTES, "shuffle config fits a node");
#define CFG(n) ((const shuffle_cfg *)(n)->cfg)

static herd_status shuffle_build(layer_build *b) {
    shuffle_cfg *cfg = (shuffle_cfg *)b->n->cfg;
    int c, h, w, g = 0;
    herdi_lb_in_chw(b, 0, &c, &h, &w);
    herd_status st = herdi_lb_int(b, "groups", "number of groups", 1, 1, 65536, &g);
    if (st) return st;
    if (c % g) return herdi_lb_fail(b, HERD_ESHAPE, "groups", "shuffle: groups=%d does not divide the %d channels", g, c);
    cfg->G = g, cfg->C = c, cfg->H = h, cfg->W = w, cfg->plane = (int64_t)h * w;
    herdi_lb_set_shape(b, herdi_lb_in_ndim(b, 0), herdi_lb_in_dims(b, 0));
    return HERD_OK;
}

static void shuffle_forward(const layer_call *c) {
    const shuffle_cfg *cfg = CFG(c->n);
    int64_t per = c->n->numel, cg = cfg->C / cfg->G;
    for (int b = 0; b < c->B; b++)
        for (int64_t g = 0; g < cfg->G; g++)
            for (int64_t i = 0; i < cg; i++)
                memcpy(c->out + b * per + (i * cfg->G + g) * cfg->plane, c->in[0] + b * per + (g * cg + i) * cfg->plane,
                       (size_t)cfg->plane * sizeof(float));
}

static void shuffle_backward(const layer_call *c) {
    const shuffle_cfg *cfg = CFG(c->n);
    if (!c->din[0]) return;
    int64_t per = c->n->numel, cg = cfg->C / cfg->G;
    for (int b = 0; b < c->B; b++)
        for (int64_t g = 0; g < cfg->G; g++)
            for (int64_t i = 0; i < cg; i++)
                herdi_ref_accumulate(c->din[0] + b * per + (g * cg + i) * cfg->plane,
                               c->dout + b * per + (i * cfg->G + g) * cfg->plane, cfg->plane);
}

static void shuffle_describe(const herd_model *m, const node *n, char *buf, size_t size) {
    (void)m;
    snprintf(buf, size, "%lld groups", (long long)CFG(n)->G);
}

/* Reshape to (N, G, C/G, H, W), Transpose (0, 2, 1, 3, 4), Reshape to (N, C, H, W), as PyTorch
 * exports it (the batch as 0: copied) */
static herd_status shuffle_onnx(onnx_exporter *x, const node *n) {
    const shuffle_cfg *cfg = CFG(n);
    if (!herdi_onnx_in_rank4(x, n, 0)) return herdi_onnx_fail(x, "shuffle '%s' reads a flat tensor", n->name);
    int64_t split[5] = {0, cfg->G, cfg->C / cfg->G, cfg->H, cfg->W}, join[4] = {0, cfg->C, cfg->H, cfg->W},
            perm[5] = {0, 2, 1, 3, 4};
    char s1[HERD_NAME_MAX + 16], s2[HERD_NAME_MAX + 16], t1[HERD_NAME_MAX + 16], t2[HERD_NAME_MAX + 16];
    snprintf(s1, sizeof s1, "%s_split_shape", n->name);
    snprintf(s2, sizeof s2, "%s_join_shape", n->name);
    snprintf(t1, sizeof t1, "%s_split", n->name);
    snprintf(t2, sizeof t2, "%s_transpose", n->name);
    const char *a[2] = {herdi_onnx_in(x, n, 0), herdi_onnx_ints(x, s1, split, 5)}, *b[1] = {t1},
               *c[2] = {t2, herdi_onnx_ints(x, s2, join, 4)};
    onnx_xattr p = {.name = "perm", .type = 'I', .ints = perm, .n_ints = 5};
    herdi_onnx_emit(x, "Reshape", t1, t1, a, 2, NULL, 0);
    herdi_onnx_emit(x, "Transpose", t2, t2, b, 1, &p, 1);
    herdi_onnx_emit(x, "Reshape", n->name, herdi_onnx_out(x, n), c, 2, NULL, 0);
    return HERD_OK;
}

static void shuffle_spec(const herd_model *m, const node *n, char *buf, size_t size) {
    (void)m;
    snprintf(buf, size, "shuffle %lld", (long long)CFG(n)->G);
}

static const char *const shuffle_keywords[] = {"shuffle", NULL};
static const char *const shuffle_positional[] = {"groups", NULL};

/* ONNX: the importer's Reshape / Transpose / Reshape pattern */
const layer_kind herdi_layer_shuffle = {
    .name = "shuffle", .keywords = shuffle_keywords, .positional = shuffle_positional, .min_inputs = 1,
    .max_inputs = 1, .flags = LAYER_TAKES_ACT | LAYER_IMAGE_INPUT, .build = shuffle_build, .forward = shuffle_forward,
    .backward = shuffle_backward, .backward_reads = herdi_layer_reads_nothing, .describe = shuffle_describe,
    .onnx_export = shuffle_onnx, .spec = shuffle_spec,
};
