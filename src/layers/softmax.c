/* softmax: over the features of (F); for models that output probabilities with loss mse. */
#include "layers/layer_common.h"

static herd_status softmax_build(layer_build *b) {
    if (!herdi_layer_is_vector(herdi_lb_in_ndim(b, 0), herdi_lb_in_dims(b, 0))) {
        char s[64];
        return herdi_lb_fail(b, HERD_ESHAPE, NULL, "softmax expects a flat input but gets %s",
                       herdi_lb_shape_str(herdi_lb_in_ndim(b, 0), herdi_lb_in_dims(b, 0), s, sizeof s));
    }
    int64_t out[1] = {herdi_lb_in_dims(b, 0)[0]};
    herdi_lb_set_shape(b, 1, out);
    return HERD_OK;
}

static void softmax_forward(const layer_call *c) { herdi_ref_softmax_forward(c->out, c->in[0], c->B, (int)c->n->numel); }

static void softmax_backward(const layer_call *c) {
    if (c->din[0]) herdi_ref_softmax_backward(c->din[0], c->dout, c->out, c->B, (int)c->n->numel);
}

static int64_t softmax_flops(const herd_model *m, const node *n) {
    (void)m;
    return 3 * n->numel;
}

static herd_status softmax_onnx(onnx_exporter *x, const node *n) {
    const char *in = herdi_onnx_in(x, n, 0);
    onnx_xattr axis = {.name = "axis", .type = 'i', .i = 1};
    herdi_onnx_emit(x, "Softmax", n->name, herdi_onnx_out(x, n), &in, 1, &axis, 1);
    return HERD_OK;
}

static herd_status softmax_onnx_import(onnx_importer *x) {
    int64_t axis = herdi_onnx_attr_int(x, "axis", -1);
    if (herdi_onnx_in_ndim(x) != 1 || (axis != 1 && axis != -1))
        return herdi_onnx_refuse(x, "only over the features of an (N, K) tensor (axis 1 or -1)");
    return HERD_OK;
}

static const char *const softmax_keywords[] = {"softmax", NULL};
static const char *const softmax_ops[] = {"Softmax", NULL};

const layer_kind herdi_layer_softmax = {
    .name = "softmax", .keywords = softmax_keywords, .min_inputs = 1, .max_inputs = 1, .build = softmax_build,
    .forward = softmax_forward, .backward = softmax_backward, .backward_reads = herdi_layer_reads_output, .flops = softmax_flops, .onnx_export = softmax_onnx,
    .onnx_ops = softmax_ops, .onnx_import = softmax_onnx_import,
};
