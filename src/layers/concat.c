/* concat: joins two or more inputs along the channel axis of (C,H,W) (same H and W) or the
 * feature axis of (F): DenseNet and GoogLeNet blocks, SqueezeNet's fire modules. */
#include <stdio.h>
#include <string.h>

#include "layers/layer_common.h"

static herd_status concat_build(layer_build *b) {
    int c0, h0, w0, total = 0;
    herdi_lb_in_chw(b, 0, &c0, &h0, &w0);
    int image = herdi_lb_in_ndim(b, 0) == 3;
    for (int k = 0; k < b->n->n_in; k++) {
        int c, h, w;
        herdi_lb_in_chw(b, k, &c, &h, &w);
        if ((herdi_lb_in_ndim(b, k) == 3) != image || h != h0 || w != w0) {
            char s0[64], s1[64];
            const node *f = herdi_lb_in_node(b, k);
            return herdi_lb_fail(b, HERD_ESHAPE, "from", "concat: '%s' is %s but the first input is %s (only the channels "
                           "may differ)", f ? f->name : b->m->inputs[-1 - b->n->in[k]].name,
                           herdi_lb_shape_str(herdi_lb_in_ndim(b, k), herdi_lb_in_dims(b, k), s1, sizeof s1),
                           herdi_lb_shape_str(herdi_lb_in_ndim(b, 0), herdi_lb_in_dims(b, 0), s0, sizeof s0));
        }
        total += c;
    }
    int64_t out[3] = {total, h0, w0};
    herdi_lb_set_shape(b, image ? 3 : 1, out);
    return HERD_OK;
}

/* out row b = [in0 row b | in1 row b | ...]: each input's block of a sample is contiguous */
static void concat_forward(const layer_call *c) {
    int64_t at = 0;
    for (int k = 0; k < c->n->n_in; k++) {
        int64_t per = call_in_numel(c, k);
        for (int b = 0; b < c->B; b++)
            memcpy(c->out + (int64_t)b * c->n->numel + at, c->in[k] + (int64_t)b * per, (size_t)per * sizeof(float));
        at += per;
    }
}

static void concat_backward(const layer_call *c) {
    int64_t at = 0;
    for (int k = 0; k < c->n->n_in; k++) {
        int64_t per = call_in_numel(c, k);
        if (c->din[k])
            for (int b = 0; b < c->B; b++)
                herdi_ref_accumulate(c->din[k] + (int64_t)b * per, c->dout + (int64_t)b * c->n->numel + at, per);
        at += per;
    }
}

static void concat_describe(const herd_model *m, const node *n, char *buf, size_t size) {
    size_t len = 0;
    buf[0] = 0;
    for (int k = 0; k < n->n_in && len < size; k++) {
        const char *name = n->in[k] >= 0 ? m->nodes[n->in[k]].name : m->inputs[-1 - n->in[k]].name;
        int w = snprintf(buf + len, size - len, "%s%s", k ? "," : "", name);
        if (w < 0) break;
        len += (size_t)w;
    }
}

static herd_status concat_onnx(onnx_exporter *x, const node *n) {
    const char *ins[HERD_MAX_INPUTS];
    for (int k = 0; k < n->n_in; k++) {
        if (herdi_onnx_in_rank4(x, n, k) != herdi_onnx_in_rank4(x, n, 0))
            return herdi_onnx_fail(x, "concat '%s' joins a flat and an NCHW tensor", n->name);
        ins[k] = herdi_onnx_in(x, n, k);
    }
    onnx_xattr axis = {.name = "axis", .type = 'i', .i = 1};
    herdi_onnx_emit(x, "Concat", n->name, herdi_onnx_out(x, n), ins, n->n_in, &axis, 1);
    herdi_onnx_set_out(x, n, herdi_onnx_out(x, n), herdi_onnx_in_rank4(x, n, 0));
    return HERD_OK;
}

/* Concat along the channels of (N,C,H,W) or the features of (N,F) */
static herd_status concat_onnx_import(onnx_importer *x) {
    int64_t axis = herdi_onnx_attr_int(x, "axis", 0);
    int rank = herdi_onnx_in_ndim(x) + 1;
    if (axis != 1 && axis != 1 - rank) return herdi_onnx_refuse(x, "axis=%lld (herd joins channels or features: axis 1)", (long long)axis);
    return HERD_OK;
}

static const char *const concat_keywords[] = {"concat", NULL};
static const char *const concat_ops[] = {"Concat", NULL};
static const char *const concat_positional[] = {"from", NULL};

const layer_kind herdi_layer_concat = {
    .name = "concat", .keywords = concat_keywords, .positional = concat_positional, .min_inputs = 2,
    .max_inputs = HERD_MAX_INPUTS, .flags = LAYER_TAKES_ACT, .build = concat_build, .forward = concat_forward,
    .backward = concat_backward, .backward_reads = herdi_layer_reads_nothing, .describe = concat_describe, .onnx_export = concat_onnx,
    .onnx_ops = concat_ops, .onnx_import = concat_onnx_import,
};
