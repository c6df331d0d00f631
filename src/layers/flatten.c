/* flatten: (C,H,W) -> (C*H*W) in C*H*W order; a view of its input (no compute, no copy). */
#include "layers/layer_common.h"

static herd_status flatten_build(layer_build *b) {
    int64_t flat = herdi_node_in_numel(b->m, b->n, 0);
    if (flat > INT32_MAX) {
        char s[64];
        return herdi_lb_fail(b, HERD_ESHAPE, NULL, "flatten: %s is more than 2^31-1 values",
                       herdi_lb_shape_str(herdi_lb_in_ndim(b, 0), herdi_lb_in_dims(b, 0), s, sizeof s));
    }
    int64_t out[1] = {flat};
    herdi_lb_set_shape(b, 1, out);
    return HERD_OK;
}

static herd_status flatten_onnx(onnx_exporter *x, const node *n) {
    const char *in = herdi_onnx_in(x, n, 0);
    onnx_xattr axis = {.name = "axis", .type = 'i', .i = 1};
    herdi_onnx_emit(x, "Flatten", n->name, herdi_onnx_out(x, n), &in, 1, &axis, 1);
    herdi_onnx_set_out(x, n, herdi_onnx_out(x, n), 0);
    return HERD_OK;
}

/* Flatten (axis 1, or the negative axis naming the same one: -rank) of an image; of a vector it
 * is an identity (herd's vectors are flat already). Any other axis makes rows that are not the
 * samples: axis 0 one row of the whole batch, axis 2 and on several rows of each sample. */
static herd_status flatten_onnx_import(onnx_importer *x) {
    int64_t axis = herdi_onnx_attr_int(x, "axis", 1), rank = 1 + herdi_onnx_in_ndim(x);
    if (axis < -rank || axis > rank)
        return herdi_onnx_refuse(x, "axis=%lld is outside [-%lld, %lld] for a rank-%lld input", (long long)axis,
                           (long long)rank, (long long)rank, (long long)rank);
    int64_t a = axis < 0 ? axis + rank : axis;
    if (a == 0) return herdi_onnx_refuse(x, "axis=%lld puts the whole batch in one row (herd's rows are the samples: axis 1)", (long long)axis);
    if (a != 1)
        return herdi_onnx_refuse(x, "axis=%lld makes several rows of each sample (herd's rows are the samples: axis 1)",
                           (long long)axis);
    if (herdi_onnx_in_ndim(x) == 1) herdi_onnx_pass_through(x);
    return HERD_OK;
}

static const char *const flatten_keywords[] = {"flatten", NULL};
static const char *const flatten_ops[] = {"Flatten", NULL};

const layer_kind herdi_layer_flatten = {
    .name = "flatten", .keywords = flatten_keywords, .min_inputs = 1, .max_inputs = 1, .flags = LAYER_VIEW,
    .build = flatten_build, .onnx_export = flatten_onnx, .onnx_ops = flatten_ops, .onnx_import = flatten_onnx_import,
};
