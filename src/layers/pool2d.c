/* maxpool and avgpool: 2-D pooling over (C,H,W) windows (avg counts padding, as PyTorch's
 * default); two kinds sharing one argument reader and one exporter. */
#include <stdio.h>

#include "layers/layer_common.h"

typedef struct pool_cfg {
    pool2d_dims d; /* B filled per call */
} pool_cfg;
_Static_assert(sizeof(pool_cfg) <= LAYER_CFG_BYTES, "pool config fits a node");
#define CFG(n) ((const pool_cfg *)(n)->cfg)

static herd_status pool_build(layer_build *b) {
    int c, h, w, kh = 0, kw = 0, sh, sw, ph = 0, pw = 0;
    lb_in_chw(b, 0, &c, &h, &w);
    herd_status st;
    if ((st = lb_pair(b, "size", "pool size", 1, 1, 4096, &kh, &kw))) return st;
    sh = kh, sw = kw;
    if ((st = lb_pair(b, "stride", "stride", 0, 1, 4096, &sh, &sw)) || (st = lb_pair(b, "pad", "padding", 0, 0, 4096, &ph, &pw))) return st;
    if (ph * 2 > kh || pw * 2 > kw)
        return lb_fail(b, HERD_ESPEC, NULL, "%s: padding must be at most half the pool size", b->n->name);
    pool_cfg *cfg = (pool_cfg *)b->n->cfg;
    cfg->d = (pool2d_dims){.B = 1, .C = c, .H = h, .W = w, .KH = kh, .KW = kw, .SH = sh, .SW = sw, .PH = ph, .PW = pw};
    if (!pool2d_dims_finish(&cfg->d))
        return lb_fail(b, HERD_ESHAPE, NULL, "%s: a %dx%d pool does not fit the input %dx%dx%d", b->n->name, kh, kw, c,
                       h, w);
    int64_t out[3] = {c, cfg->d.OH, cfg->d.OW};
    lb_set_shape(b, 3, out);
    return HERD_OK;
}

static herd_status maxpool_plan(node *n, layer_plan *p) {
    n->saved[0] = herd_arena_alloc(p->arena, (size_t)p->B * (size_t)n->numel * sizeof(int32_t));
    return n->saved[0] ? HERD_OK : HERD_ENOMEM;
}

static int32_t *argmax_rows(const layer_call *c) { return (int32_t *)c->n->saved[0] + c->row0 * c->n->numel; }

static void maxpool_forward(const layer_call *c) {
    pool2d_dims d = CFG(c->n)->d;
    d.B = c->B;
    c->be->maxpool2d_forward(c->ex, c->out, argmax_rows(c), c->in[0], &d);
}

static void maxpool_backward(const layer_call *c) {
    pool2d_dims d = CFG(c->n)->d;
    d.B = c->B;
    if (c->din[0]) c->be->maxpool2d_backward(c->ex, c->din[0], c->dout, argmax_rows(c), &d);
}

static void avgpool_forward(const layer_call *c) {
    pool2d_dims d = CFG(c->n)->d;
    d.B = c->B;
    c->be->avgpool2d_forward(c->ex, c->out, c->in[0], &d);
}

static void avgpool_backward(const layer_call *c) {
    pool2d_dims d = CFG(c->n)->d;
    d.B = c->B;
    if (c->din[0]) c->be->avgpool2d_backward(c->ex, c->din[0], c->dout, &d);
}

static int64_t pool_flops(const herd_model *m, const node *n) {
    (void)m;
    return n->numel * CFG(n)->d.KH * CFG(n)->d.KW;
}

static void pool_describe(const herd_model *m, const node *n, char *buf, size_t size) {
    (void)m;
    snprintf(buf, size, "%dx%d s%d", CFG(n)->d.KH, CFG(n)->d.KW, CFG(n)->d.SH);
}

static herd_status pool_onnx(onnx_exporter *x, const node *n, const char *op, int avg) {
    const pool2d_dims *p = &CFG(n)->d;
    int64_t k[2] = {p->KH, p->KW}, s[2] = {p->SH, p->SW}, pads[4] = {p->PH, p->PW, p->PH, p->PW};
    const char *in = onnx_in(x, n, 0);
    onnx_xattr a[4] = {{.name = "kernel_shape", .type = 'I', .ints = k, .n_ints = 2},
                      {.name = "strides", .type = 'I', .ints = s, .n_ints = 2},
                      {.name = "pads", .type = 'I', .ints = pads, .n_ints = 4},
                      {.name = "count_include_pad", .type = 'i', .i = 1}};
    onnx_emit(x, op, n->name, onnx_out(x, n), &in, 1, a, avg ? 4 : 3);
    return HERD_OK;
}

static herd_status maxpool_onnx(onnx_exporter *x, const node *n) { return pool_onnx(x, n, "MaxPool", 0); }
static herd_status avgpool_onnx(onnx_exporter *x, const node *n) { return pool_onnx(x, n, "AveragePool", 1); }

static const char *const maxpool_keywords[] = {"maxpool", NULL};
static const char *const avgpool_keywords[] = {"avgpool", NULL};
static const char *const pool_positional[] = {"size", NULL};

const layer_kind layer_maxpool2d = {
    .name = "maxpool2d", .keywords = maxpool_keywords, .positional = pool_positional, .min_inputs = 1,
    .max_inputs = 1, .flags = LAYER_IMAGE_INPUT, .build = pool_build, .plan = maxpool_plan,
    .forward = maxpool_forward, .backward = maxpool_backward, .backward_reads = layer_reads_nothing, .flops = pool_flops, .describe = pool_describe,
    .onnx_export = maxpool_onnx,
};

const layer_kind layer_avgpool2d = {
    .name = "avgpool2d", .keywords = avgpool_keywords, .positional = pool_positional, .min_inputs = 1,
    .max_inputs = 1, .flags = LAYER_IMAGE_INPUT, .build = pool_build, .forward = avgpool_forward,
    .backward = avgpool_backward, .backward_reads = layer_reads_nothing, .flops = pool_flops, .describe = pool_describe, .onnx_export = avgpool_onnx,
};
