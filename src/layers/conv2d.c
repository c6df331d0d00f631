/* conv: 2-D convolution, (C,H,W) -> (OC,OH,OW), weight (OC,C/groups,KH,KW), optional bias (OC),
 * groups= (depthwise: groups = C) and dilation=; can apply the ReLU that follows it (fused per
 * image on the cpu backend) and, in an inference plan, the batch norm that follows it. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "layers/layer_common.h"

typedef struct conv_cfg {
    conv2d_dims d; /* B filled per call */
    int bias;
} conv_cfg;
_Static_assert(sizeof(conv_cfg) <= LAYER_CFG_BYTES, "conv config fits a node");
#define CFG(n) ((const conv_cfg *)(n)->cfg)

static herd_status conv_build(layer_build *b) {
    int c, h, w, oc = 0, kh = 0, kw = 0, sh = 1, sw = 1, ph = 0, pw = 0, bias = 1, g = 1, dh = 1, dw = 1;
    herdi_lb_in_chw(b, 0, &c, &h, &w);
    herd_status st;
    if ((st = herdi_lb_int(b, "filters", "number of filters", 1, 1, 65536, &oc)) || (st = herdi_lb_pair(b, "kernel", "kernel size", 1, 1, 4096, &kh, &kw)) ||
        (st = herdi_lb_pair(b, "stride", "stride", 0, 1, 4096, &sh, &sw)))
        return st;
    if ((st = herdi_lb_int(b, "bias", "bias (0 or 1)", 0, 0, 1, &bias)) ||
        (st = herdi_lb_int(b, "groups", "number of groups", 0, 1, 65536, &g)) ||
        (st = herdi_lb_pair(b, "dilation", "dilation", 0, 1, 4096, &dh, &dw)))
        return st;
    const char *pad = herdi_lb_arg(b, "pad");
    if (pad && !strcmp(pad, "same")) {
        if (kh % 2 == 0 || kw % 2 == 0) return herdi_lb_fail(b, HERD_ESPEC, "pad", "pad=same needs an odd kernel size");
        ph = dh * (kh / 2), pw = dw * (kw / 2);
    } else if (pad && strcmp(pad, "valid") != 0 && (st = herdi_lb_pair(b, "pad", "padding", 1, 0, 4096, &ph, &pw))) {
        return st;
    }
    if (c % g || oc % g)
        return herdi_lb_fail(b, HERD_ESHAPE, "groups", "%s: groups=%d must divide the %d input channels and the %d filters",
                       b->n->name, g, c, oc);
    conv_cfg *cfg = (conv_cfg *)b->n->cfg;
    cfg->d = (conv2d_dims){.B = 1, .C = c, .H = h, .W = w, .OC = oc, .KH = kh, .KW = kw,
                           .SH = sh, .SW = sw, .PH = ph, .PW = pw, .G = g, .DH = dh, .DW = dw};
    cfg->bias = bias;
    if (!herdi_conv2d_dims_finish(&cfg->d))
        return herdi_lb_fail(b, HERD_ESHAPE, NULL, "%s: a %dx%d kernel with stride %dx%d, padding %dx%d and dilation %dx%d "
                       "does not fit the input %dx%dx%d", b->n->name, kh, kw, sh, sw, ph, pw, dh, dw, c, h, w);
    int64_t out[3] = {oc, cfg->d.OH, cfg->d.OW}, wshape[4] = {oc, c / g, kh, kw}, bshape[1] = {oc};
    herdi_lb_set_shape(b, 3, out);
    if ((st = herdi_lb_param(b, 0, "weight", 1, 4, wshape))) return st;
    return bias ? herdi_lb_param(b, 1, "bias", 1, 1, bshape) : HERD_OK;
}

static void conv_init(herd_model *m, node *n, uint64_t seed) {
    const conv2d_dims *d = &CFG(n)->d;
    herdi_layer_init_weight(m, n, (int64_t)(d->C / d->G) * d->KH * d->KW, (int64_t)(d->OC / d->G) * d->KH * d->KW, seed);
}

static const char *conv_unsupported(const node *n, const herd_backend *be) {
    return be->conv2d_unsupported ? be->conv2d_unsupported(&CFG(n)->d) : NULL;
}

static herd_status conv_plan(node *n, layer_plan *p) {
    conv2d_dims d = CFG(n)->d;
    d.B = p->call_B;
    d.inference = p->inference;
    size_t ws = n->be->conv2d_workspace ? n->be->conv2d_workspace(&d, p->threads) : 0;
    if (ws > p->workspace_floats) p->workspace_floats = ws;
    size_t prep = p->inference && n->be->conv2d_prepared ? n->be->conv2d_prepared(&d) : 0;
    if (prep && !(n->prep = herd_arena_floats(p->arena, prep))) return HERD_ENOMEM;
    n->prep_floats = prep;
    return HERD_OK;
}

static void conv_forward(const layer_call *c) {
    conv2d_dims d = CFG(c->n)->d;
    d.B = c->B;
    d.inference = c->ex && c->ex->inference;
    const conv2d_post post = {.scale = c->scale, .shift = c->shift, .act = c->n->fused_act};
    if ((post.act || post.scale) && c->be->conv2d_forward_act) {
        c->be->conv2d_forward_act(c->ex, c->out, c->in[0], c->w[0], c->w[1], &d, &post);
        return;
    }
    c->be->conv2d_forward(c->ex, c->out, c->in[0], c->w[0], c->w[1], &d);
    if (post.scale) { /* a folded batch norm: its multiply then add, as conv2d_post */
        const int64_t N = (int64_t)d.OH * d.OW;
        for (int64_t p = 0; p < (int64_t)c->B * d.OC; p++) {
            float *x = c->out + p * N;
            const float s = post.scale[p % d.OC], t = post.shift[p % d.OC];
            for (int64_t i = 0; i < N; i++) x[i] = x[i] * s + t;
        }
    }
    if (post.act) c->be->act_forward(c->ex, c->out, c->out, (int64_t)c->B * c->n->numel, post.act, 0);
}

static void conv_backward(const layer_call *c) {
    conv2d_dims d = CFG(c->n)->d;
    d.B = c->B;
    const herd_act act = herdi_layer_backward_act(c->n);
    if (act && c->be->conv2d_backward_act) {
        c->be->conv2d_backward_act(c->ex, c->din[0], c->dw[0], c->dw[1], c->dout, c->out, c->in[0], c->w[0], &d, act);
        return;
    }
    if (act) c->be->act_backward_inplace(c->ex, c->dout, c->out, (int64_t)c->B * c->n->numel, act);
    c->be->conv2d_backward(c->ex, c->din[0], c->dw[0], c->dw[1], c->dout, c->in[0], c->w[0], &d);
}

static int64_t conv_flops(const herd_model *m, const node *n) {
    (void)m;
    const conv_cfg *cfg = CFG(n);
    return 2 * n->numel * (cfg->d.C / cfg->d.G) * cfg->d.KH * cfg->d.KW + (cfg->bias ? n->numel : 0);
}

static void conv_describe(const herd_model *m, const node *n, char *buf, size_t size) {
    (void)m;
    const conv2d_dims *d = &CFG(n)->d;
    int len = snprintf(buf, size, "%d %dx%d s%d p%d", d->OC, d->KH, d->KW, d->SH, d->PH);
    if (d->G > 1 && len > 0 && (size_t)len < size) len += snprintf(buf + len, size - (size_t)len, " g%d", d->G);
    if ((d->DH > 1 || d->DW > 1) && len > 0 && (size_t)len < size) snprintf(buf + len, size - (size_t)len, " d%d", d->DH);
}

static herd_status conv_onnx(onnx_exporter *x, const node *n) {
    const conv2d_dims *c = &CFG(n)->d;
    int64_t k[2] = {c->KH, c->KW}, s[2] = {c->SH, c->SW}, pads[4] = {c->PH, c->PW, c->PH, c->PW}, dil[2] = {c->DH, c->DW};
    const char *in[3] = {herdi_onnx_in(x, n, 0), herdi_onnx_param(x, n, 0), herdi_onnx_param(x, n, 1)};
    onnx_xattr a[5] = {{.name = "kernel_shape", .type = 'I', .ints = k, .n_ints = 2},
                      {.name = "strides", .type = 'I', .ints = s, .n_ints = 2},
                      {.name = "pads", .type = 'I', .ints = pads, .n_ints = 4},
                      {.name = "dilations", .type = 'I', .ints = dil, .n_ints = 2},
                      {.name = "group", .type = 'i', .i = c->G}};
    herdi_onnx_emit(x, "Conv", n->name, herdi_onnx_out(x, n), in, in[2] ? 3 : 2, a, 5);
    return HERD_OK;
}

/* Conv: weight (and bias) from initializers, explicit symmetric pads (or auto_pad VALID or SAME)
 * plus a Pad before it, group and dilations */
static herd_status conv_onnx_import(onnx_importer *x) {
    int64_t w[8], k[2], s[2] = {1, 1}, p[4] = {0, 0, 0, 0}, dil[2] = {1, 1}, b[8], g = herdi_onnx_attr_int(x, "group", 1);
    if (herdi_onnx_const_dims(x, 1, w) != 4)
        return herdi_onnx_refuse(x, "the weight must be a 4-D initializer [out, in/group, kh, kw]");
    int c = herdi_onnx_in_ndim(x) >= 1 ? (int)herdi_onnx_in_dims(x)[0] : 0;
    if (g < 1 || g > 65536 || c % g || w[0] % g)
        return herdi_onnx_refuse(x, "group=%lld does not divide the %d input channels and the %lld filters", (long long)g, c,
                           (long long)w[0]);
    int nk = herdi_onnx_attr_ints(x, "kernel_shape", k, 2), ns = herdi_onnx_attr_ints(x, "strides", s, 2),
        np = herdi_onnx_attr_ints(x, "pads", p, 4), nd = herdi_onnx_attr_ints(x, "dilations", dil, 2);

    if (nk >= 0 && (nk != 2 || k[0] != w[2] || k[1] != w[3]))
        return herdi_onnx_refuse(x, "kernel_shape does not match the weight's %lldx%lld", (long long)w[2], (long long)w[3]);
    if (ns >= 0 && ns != 2) return herdi_onnx_refuse(x, "strides must have 2 values");
    if (np >= 0 && np != 4) return herdi_onnx_refuse(x, "pads must have 4 values");
    if (p[0] != p[2] || p[1] != p[3]) return herdi_onnx_refuse(x, "asymmetric pads");
    if (nd >= 0 && (nd != 2 || dil[0] < 1 || dil[1] < 1 || dil[0] > 4096 || dil[1] > 4096))
        return herdi_onnx_refuse(x, "dilations must be 2 values from 1 to 4096");
    int xh, xw;
    herdi_onnx_in_pad(x, &xh, &xw);
    herd_status st = herdi_onnx_auto_pad(x, w + 2, s, dil, xh, xw, np >= 0, p);
    if (st) return st;
    int bias = herdi_onnx_const_dims(x, 2, b) >= 0;
    herdi_onnx_arg(x, "filters", "%lld", (long long)w[0]);
    herdi_onnx_arg(x, "kernel", "%lldx%lld", (long long)w[2], (long long)w[3]);
    herdi_onnx_arg(x, "stride", "%lldx%lld", (long long)s[0], (long long)s[1]);
    herdi_onnx_arg(x, "pad", "%lldx%lld", (long long)(p[0] + xh), (long long)(p[1] + xw));
    if (!bias) herdi_onnx_arg(x, "bias", "0");
    if (g != 1) herdi_onnx_arg(x, "groups", "%lld", (long long)g);
    if (dil[0] != 1 || dil[1] != 1) herdi_onnx_arg(x, "dilation", "%lldx%lld", (long long)dil[0], (long long)dil[1]);
    st = herdi_onnx_weight(x, 1, 0, 0);
    return st || !bias ? st : herdi_onnx_weight(x, 2, 1, 0);
}

static void conv_spec(const herd_model *m, const node *n, char *buf, size_t size) {
    (void)m;
    const conv2d_dims *d = &CFG(n)->d;
    int len = d->KH == d->KW ? snprintf(buf, size, "conv %d %d", d->OC, d->KH)
                             : snprintf(buf, size, "conv %d %dx%d", d->OC, d->KH, d->KW);
    if ((d->SH != 1 || d->SW != 1) && len > 0 && (size_t)len < size)
        len += d->SH == d->SW ? snprintf(buf + len, size - (size_t)len, " stride=%d", d->SH)
                              : snprintf(buf + len, size - (size_t)len, " stride=%dx%d", d->SH, d->SW);
    if ((d->PH || d->PW) && len > 0 && (size_t)len < size)
        len += d->PH == d->PW ? snprintf(buf + len, size - (size_t)len, " pad=%d", d->PH)
                              : snprintf(buf + len, size - (size_t)len, " pad=%dx%d", d->PH, d->PW);
    if (d->G > 1 && len > 0 && (size_t)len < size) len += snprintf(buf + len, size - (size_t)len, " groups=%d", d->G);
    if ((d->DH > 1 || d->DW > 1) && len > 0 && (size_t)len < size)
        len += d->DH == d->DW ? snprintf(buf + len, size - (size_t)len, " dilation=%d", d->DH)
                              : snprintf(buf + len, size - (size_t)len, " dilation=%dx%d", d->DH, d->DW);
    if (!CFG(n)->bias && len > 0 && (size_t)len < size) snprintf(buf + len, size - (size_t)len, " bias=0");
}

static const char *const conv_keywords[] = {"conv", NULL};
static const char *const conv_ops[] = {"Conv", NULL};
static const char *const conv_positional[] = {"filters", "kernel", NULL};

const layer_kind herdi_layer_conv2d = {
    .name = "conv2d", .keywords = conv_keywords, .positional = conv_positional, .min_inputs = 1, .max_inputs = 1,
    .flags = LAYER_FUSES_RELU | LAYER_FUSES_RELU6 | LAYER_FUSES_AFFINE | LAYER_TAKES_ACT | LAYER_IMAGE_INPUT, .unsupported = conv_unsupported, .build = conv_build, .init = conv_init,
    .plan = conv_plan, .forward = conv_forward, .backward = conv_backward, .backward_reads = herdi_layer_reads_input_and_fused_output, .flops = conv_flops,
    .describe = conv_describe, .onnx_export = conv_onnx,
    .onnx_ops = conv_ops, .onnx_import = conv_onnx_import, .spec = conv_spec,
};
