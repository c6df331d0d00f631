/* maxpool and avgpool: 2-D pooling over (C,H,W) windows (avg counts padding, as PyTorch's
 * default; ceil=1 rounds the output size up as PyTorch's ceil_mode); two kinds sharing one
 * argument reader, one exporter and one importer. */
#include <stdio.h>
#include <string.h>

#include "layers/layer_common.h"

typedef struct pool_cfg {
    pool2d_dims d; /* B filled per call */
} pool_cfg;
_Static_assert(sizeof(pool_cfg) <= LAYER_CFG_BYTES, "pool config fits a node");
#define CFG(n) ((const pool_cfg *)(n)->cfg)

static herd_status pool_build(layer_build *b) {
    int c, h, w, kh = 0, kw = 0, sh, sw, ph = 0, pw = 0, ceil = 0;
    herdi_lb_in_chw(b, 0, &c, &h, &w);
    herd_status st;
    if ((st = herdi_lb_pair(b, "size", "pool size", 1, 1, 4096, &kh, &kw))) return st;
    sh = kh, sw = kw;
    if ((st = herdi_lb_pair(b, "stride", "stride", 0, 1, 4096, &sh, &sw)) || (st = herdi_lb_pair(b, "pad", "padding", 0, 0, 4096, &ph, &pw)) ||
        (st = herdi_lb_int(b, "ceil", "ceil (0 or 1)", 0, 0, 1, &ceil)))
        return st;
    if (ph * 2 > kh || pw * 2 > kw)
        return herdi_lb_fail(b, HERD_ESPEC, NULL, "%s: padding must be at most half the pool size", b->n->name);
    pool_cfg *cfg = (pool_cfg *)b->n->cfg;
    cfg->d = (pool2d_dims){.B = 1, .C = c, .H = h, .W = w, .KH = kh, .KW = kw, .SH = sh, .SW = sw, .PH = ph, .PW = pw,
                           .ceil = ceil};
    if (!herdi_pool2d_dims_finish(&cfg->d))
        return herdi_lb_fail(b, HERD_ESHAPE, NULL, "%s: a %dx%d pool does not fit the input %dx%dx%d", b->n->name, kh, kw, c,
                       h, w);
    int64_t out[3] = {c, cfg->d.OH, cfg->d.OW};
    herdi_lb_set_shape(b, 3, out);
    return HERD_OK;
}

/* cpu's average divides by the whole window: ceil mode's clipped last windows run on ref (max
 * pooling clips them itself) */
static const char *avgpool_unsupported(const node *n, const herd_backend *be) {
    return CFG(n)->d.ceil && strcmp(be->name, "ref") != 0 ? "ceil mode average pooling" : NULL;
}

static herd_status maxpool_plan(node *n, layer_plan *p) {
    n->saved[0] = herd_arena_alloc(p->arena, (size_t)p->B * (size_t)n->numel * sizeof(int32_t));
    return n->saved[0] ? HERD_OK : HERD_ENOMEM;
}

static int32_t *argmax_rows(const layer_call *c) { return (int32_t *)c->n->saved[0] + c->row0 * c->n->numel; }

/* A ReLU before the pool moved after it (LAYER_FUSES_RELU_BEFORE): the maximum, then the ReLU
 * of the maximum, the same bits as the maximum of the ReLU'd window (NaN aside). Backward masks
 * dout by the output first: a window whose maximum is not positive sends nothing back, as the
 * ReLU's backward would have zeroed it at its argmax (whose value is that maximum). */
static void maxpool_forward(const layer_call *c) {
    pool2d_dims d = CFG(c->n)->d;
    d.B = c->B;
    c->be->maxpool2d_forward(c->ex, c->out, argmax_rows(c), c->in[0], &d);
    if (c->n->fused_act) c->be->act_forward(c->ex, c->out, c->out, (int64_t)c->B * c->n->numel, c->n->fused_act, 0);
}

static void maxpool_backward(const layer_call *c) {
    pool2d_dims d = CFG(c->n)->d;
    d.B = c->B;
    if (!c->din[0]) return;
    if (c->n->fused_act) c->be->act_backward_inplace(c->ex, c->dout, c->out, (int64_t)c->B * c->n->numel, c->n->fused_act);
    if (!c->din_set) {
        c->be->maxpool2d_backward(c->ex, c->din[0], c->dout, argmax_rows(c), &d);
    } else if (c->be->maxpool2d_backward_set) {
        c->be->maxpool2d_backward_set(c->ex, c->din[0], c->dout, argmax_rows(c), c->out, c->din_act, &d);
    } else { /* what maxpool2d_backward_set stands for */
        memset(c->din[0], 0, (size_t)c->B * (size_t)call_in_numel(c, 0) * sizeof(float));
        c->be->maxpool2d_backward(c->ex, c->din[0], c->dout, argmax_rows(c), &d);
        if (c->din_act) c->be->act_backward_inplace(c->ex, c->din[0], c->in[0], (int64_t)c->B * call_in_numel(c, 0), c->din_act);
    }
}

/* windows that do not overlap give each input element at most one term */
static int maxpool_sets_grad(const node *n) { return CFG(n)->d.SH >= CFG(n)->d.KH && CFG(n)->d.SW >= CFG(n)->d.KW; }

/* The output: for the pool's own ReLU (fused_act), and where it may write its input's gradient
 * for din_act's mask (a quarter of the input for 2x2 windows, kept little longer than the next
 * layer's backward keeps it anyway) */
static int maxpool_backward_reads(const node *n) { return n->fused_act || maxpool_sets_grad(n) ? LAYER_READS_OUTPUT : 0; }

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
    snprintf(buf, size, "%dx%d s%d%s", CFG(n)->d.KH, CFG(n)->d.KW, CFG(n)->d.SH, CFG(n)->d.ceil ? " ceil" : "");
}

static void pool_spec(const herd_model *m, const node *n, char *buf, size_t size) {
    (void)m;
    const pool2d_dims *d = &CFG(n)->d;
    int len = d->KH == d->KW ? snprintf(buf, size, "%s %d", n->kind->keywords[0], d->KH)
                             : snprintf(buf, size, "%s %dx%d", n->kind->keywords[0], d->KH, d->KW);
    if ((d->SH != d->KH || d->SW != d->KW) && len > 0 && (size_t)len < size)
        len += d->SH == d->SW ? snprintf(buf + len, size - (size_t)len, " stride=%d", d->SH)
                              : snprintf(buf + len, size - (size_t)len, " stride=%dx%d", d->SH, d->SW);
    if ((d->PH || d->PW) && len > 0 && (size_t)len < size)
        len += d->PH == d->PW ? snprintf(buf + len, size - (size_t)len, " pad=%d", d->PH)
                              : snprintf(buf + len, size - (size_t)len, " pad=%dx%d", d->PH, d->PW);
    if (d->ceil && len > 0 && (size_t)len < size) snprintf(buf + len, size - (size_t)len, " ceil=1");
}

static herd_status pool_onnx(onnx_exporter *x, const node *n, const char *op, int avg) {
    const pool2d_dims *p = &CFG(n)->d;
    int64_t k[2] = {p->KH, p->KW}, s[2] = {p->SH, p->SW}, pads[4] = {p->PH, p->PW, p->PH, p->PW};
    const char *in = herdi_onnx_in(x, n, 0);
    onnx_xattr a[5] = {{.name = "kernel_shape", .type = 'I', .ints = k, .n_ints = 2},
                      {.name = "strides", .type = 'I', .ints = s, .n_ints = 2},
                      {.name = "pads", .type = 'I', .ints = pads, .n_ints = 4},
                      {.name = "ceil_mode", .type = 'i', .i = 1},
                      {.name = "count_include_pad", .type = 'i', .i = 1}};
    int na = 3;
    if (p->ceil) a[na++] = a[3];
    if (avg) a[na++] = a[4];
    herdi_onnx_emit(x, op, n->name, herdi_onnx_out(x, n), &in, 1, a, na);
    return HERD_OK;
}

/* MaxPool / AveragePool: explicit symmetric pads or auto_pad (plus a Pad before an AveragePool), ceil_mode;
 * an average pool with padding counts it (count_include_pad=1, PyTorch's default) */
static herd_status pool_onnx_import(onnx_importer *x) {
    int avg = !strcmp(herdi_onnx_op(x), "AveragePool");
    int64_t k[2], s[2], p[4] = {0, 0, 0, 0}, dil[2];
    if (herdi_onnx_attr_ints(x, "kernel_shape", k, 2) != 2) return herdi_onnx_refuse(x, "needs a 2-D kernel_shape");
    int ns = herdi_onnx_attr_ints(x, "strides", s, 2), np = herdi_onnx_attr_ints(x, "pads", p, 4),
        nd = herdi_onnx_attr_ints(x, "dilations", dil, 2);
    if (ns >= 0 && ns != 2) return herdi_onnx_refuse(x, "strides must have 2 values");
    if (ns < 0) s[0] = s[1] = 1; /* ONNX's default stride is 1, herd's the pool size */
    if (np >= 0 && np != 4) return herdi_onnx_refuse(x, "pads must have 4 values");
    if (p[0] != p[2] || p[1] != p[3]) return herdi_onnx_refuse(x, "asymmetric pads");
    if (nd >= 0 && (nd != 2 || dil[0] != 1 || dil[1] != 1)) return herdi_onnx_refuse(x, "dilations other than 1");
    if (herdi_onnx_attr_int(x, "storage_order", 0) != 0) return herdi_onnx_refuse(x, "storage_order=1 (column-major indices)");
    int xh = 0, xw = 0;
    if (avg) herdi_onnx_in_pad(x, &xh, &xw);
    const int64_t one[2] = {1, 1};
    herd_status st = herdi_onnx_auto_pad(x, k, s, one, xh, xw, np >= 0, p);
    if (st) return st;
    if (avg && (p[0] || p[1]) && herdi_onnx_attr_int(x, "count_include_pad", 0) != 1)
        return herdi_onnx_refuse(x, "padding with count_include_pad=0 (herd counts the padding)");
    if (2 * (p[0] + xh) > k[0] || 2 * (p[1] + xw) > k[1])
        return herdi_onnx_refuse(x, "padding %lldx%lld is more than half the %lldx%lld window", (long long)(p[0] + xh),
                           (long long)(p[1] + xw), (long long)k[0], (long long)k[1]);
    herdi_onnx_arg(x, "size", "%lldx%lld", (long long)k[0], (long long)k[1]);
    herdi_onnx_arg(x, "stride", "%lldx%lld", (long long)s[0], (long long)s[1]);
    herdi_onnx_arg(x, "pad", "%lldx%lld", (long long)(p[0] + xh), (long long)(p[1] + xw));
    if (herdi_onnx_attr_int(x, "ceil_mode", 0)) herdi_onnx_arg(x, "ceil", "1");
    return HERD_OK;
}

static herd_status maxpool_onnx(onnx_exporter *x, const node *n) { return pool_onnx(x, n, "MaxPool", 0); }
static herd_status avgpool_onnx(onnx_exporter *x, const node *n) { return pool_onnx(x, n, "AveragePool", 1); }

static const char *const maxpool_keywords[] = {"maxpool", NULL};
static const char *const avgpool_keywords[] = {"avgpool", NULL};
static const char *const pool_positional[] = {"size", NULL};
static const char *const maxpool_ops[] = {"MaxPool", NULL};
static const char *const avgpool_ops[] = {"AveragePool", NULL};

const layer_kind herdi_layer_maxpool2d = {
    .name = "maxpool2d", .keywords = maxpool_keywords, .positional = pool_positional, .min_inputs = 1,
    .max_inputs = 1, .flags = LAYER_IMAGE_INPUT | LAYER_FUSES_RELU_BEFORE, .build = pool_build, .plan = maxpool_plan,
    .forward = maxpool_forward, .backward = maxpool_backward, .backward_reads = maxpool_backward_reads,
    .sets_grad = maxpool_sets_grad, .flops = pool_flops, .describe = pool_describe,
    .onnx_export = maxpool_onnx,
    .onnx_ops = maxpool_ops, .onnx_import = pool_onnx_import, .spec = pool_spec,
};

const layer_kind herdi_layer_avgpool2d = {
    .name = "avgpool2d", .keywords = avgpool_keywords, .positional = pool_positional, .min_inputs = 1,
    .max_inputs = 1, .flags = LAYER_IMAGE_INPUT, .build = pool_build, .forward = avgpool_forward,
    .backward = avgpool_backward, .backward_reads = herdi_layer_reads_nothing, .flops = pool_flops, .describe = pool_describe, .onnx_export = avgpool_onnx,
    .unsupported = avgpool_unsupported, .onnx_ops = avgpool_ops, .onnx_import = pool_onnx_import, .spec = pool_spec,
};
