/* gap: global average pooling, (C,H,W) -> (C). */
#include <stdio.h>

#include "layers/layer_common.h"

static herd_status gap_build(layer_build *b) {
    int c, h, w;
    herdi_lb_in_chw(b, 0, &c, &h, &w);
    int64_t out[1] = {c};
    herdi_lb_set_shape(b, 1, out);
    return HERD_OK;
}

static int gap_hw(const layer_call *c) { return (int)(call_in_numel(c, 0) / c->n->dims[0]); }

static void gap_forward(const layer_call *c) { herdi_ref_gap_forward(c->out, c->in[0], c->B, (int)c->n->dims[0], gap_hw(c)); }

static void gap_backward(const layer_call *c) {
    if (c->din[0]) herdi_ref_gap_backward(c->din[0], c->dout, c->B, (int)c->n->dims[0], gap_hw(c));
}

static int64_t gap_flops(const herd_model *m, const node *n) { return herdi_node_in_numel(m, n, 0); }

/* herd's gap yields (B, C); ONNX's GlobalAveragePool keeps (N, C, 1, 1), so a Flatten follows,
 * unless a layer that reads images (a squeeze-and-excitation's 1x1 conv) reads it */
static herd_status gap_onnx(onnx_exporter *x, const node *n) {
    if (herdi_onnx_read_as_image(x, n)) {
        const char *in = herdi_onnx_in(x, n, 0);
        herdi_onnx_emit(x, "GlobalAveragePool", n->name, herdi_onnx_out(x, n), &in, 1, NULL, 0);
        herdi_onnx_set_out(x, n, herdi_onnx_out(x, n), 1);
        return HERD_OK;
    }
    char pooled[HERD_NAME_MAX + 8];
    snprintf(pooled, sizeof pooled, "%s_pool", n->name);
    const char *in = herdi_onnx_in(x, n, 0), *p = pooled;
    herdi_onnx_emit(x, "GlobalAveragePool", pooled, pooled, &in, 1, NULL, 0);
    onnx_xattr axis = {.name = "axis", .type = 'i', .i = 1};
    herdi_onnx_emit(x, "Flatten", n->name, herdi_onnx_out(x, n), &p, 1, &axis, 1);
    herdi_onnx_set_out(x, n, herdi_onnx_out(x, n), 0);
    return HERD_OK;
}

static herd_status gap_onnx_import(onnx_importer *x) {
    (void)x;
    return HERD_OK;
}

static const char *const gap_keywords[] = {"gap", NULL};
static const char *const gap_ops[] = {"GlobalAveragePool", NULL};

const layer_kind herdi_layer_gap = {
    .name = "global_avgpool", .keywords = gap_keywords, .min_inputs = 1, .max_inputs = 1,
    .flags = LAYER_IMAGE_INPUT, .build = gap_build, .forward = gap_forward, .backward = gap_backward,
    .backward_reads = herdi_layer_reads_nothing, .flops = gap_flops, .onnx_export = gap_onnx,
    .onnx_ops = gap_ops, .onnx_import = gap_onnx_import,
};
