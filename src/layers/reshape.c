/* reshape DIMS: the same values in another per-sample shape ("16x10": 16 positions of 10
 * values; one dim may be -1, taken from the rest), e.g. per-position logits (T,K) for the
 * cross-entropy loss. A view of its input (no compute, no copy). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "layers/layer_common.h"

typedef struct reshape_cfg {
    int ndim;
    int64_t dims[4];
} reshape_cfg;
_Static_assert(sizeof(reshape_cfg) <= LAYER_CFG_BYTES, "reshape config fits a node");

static herd_status reshape_build(layer_build *b) {
    reshape_cfg *c = (reshape_cfg *)b->n->cfg;
    const char *s = herdi_lb_arg(b, "shape");
    if (!s) return herdi_lb_fail(b, HERD_ESPEC, NULL, "reshape: expected the shape (e.g. reshape 16x10)");
    int64_t numel = herdi_node_in_numel(b->m, b->n, 0), known = 1;
    int free_dim = -1;
    c->ndim = 0;
    for (const char *p = s; *p;) {
        char *end;
        long v = strtol(p, &end, 10);
        if (end == p || c->ndim == 4 || (v < 1 && v != -1) || v > (1L << 30) || (v == -1 && free_dim >= 0) ||
            (*end && *end != 'x'))
            return herdi_lb_fail(b, HERD_ESPEC, "shape", "reshape: bad shape '%s' (1 to 4 dims like 16x10, one may be -1)", s);
        if (v == -1) free_dim = c->ndim;
        else known *= v;
        c->dims[c->ndim++] = v;
        p = *end ? end + 1 : end;
        if (*end && !*p) return herdi_lb_fail(b, HERD_ESPEC, "shape", "reshape: bad shape '%s'", s);
    }
    if (free_dim >= 0 && known > 0 && numel % known == 0) c->dims[free_dim] = numel / known, known = numel;
    if (c->ndim == 0 || known != numel) {
        char in[64];
        return herdi_lb_fail(b, HERD_ESHAPE, "shape", "reshape: %s has %lld values, which shape '%s' does not hold",
                       herdi_lb_shape_str(herdi_lb_in_ndim(b, 0), herdi_lb_in_dims(b, 0), in, sizeof in), (long long)numel, s);
    }
    herdi_lb_set_shape(b, c->ndim, c->dims);
    return HERD_OK;
}

/* Reshape to (N, dims...), the batch as 0 (copied) */
static herd_status reshape_onnx(onnx_exporter *x, const node *n) {
    const reshape_cfg *c = (const reshape_cfg *)n->cfg;
    int64_t shape[5] = {0};
    memcpy(shape + 1, c->dims, (size_t)c->ndim * sizeof *shape);
    char name[HERD_NAME_MAX + 8];
    snprintf(name, sizeof name, "%s_shape", n->name);
    const char *in[2] = {herdi_onnx_in(x, n, 0), herdi_onnx_ints(x, name, shape, c->ndim + 1)};
    herdi_onnx_emit(x, "Reshape", n->name, herdi_onnx_out(x, n), in, 2, NULL, 0);
    return HERD_OK;
}

static void reshape_spec(const herd_model *m, const node *n, char *buf, size_t size) {
    (void)m;
    const reshape_cfg *c = (const reshape_cfg *)n->cfg;
    size_t len = (size_t)snprintf(buf, size, "reshape ");
    for (int d = 0; d < c->ndim && len < size; d++)
        len += (size_t)snprintf(buf + len, size - len, "%s%lld", d ? "x" : "", (long long)c->dims[d]);
}

static void reshape_describe(const herd_model *m, const node *n, char *buf, size_t size) {
    (void)m;
    const reshape_cfg *c = (const reshape_cfg *)n->cfg;
    herdi_lb_shape_str(c->ndim, c->dims, buf, size);
}

static const char *const reshape_keywords[] = {"reshape", NULL};
static const char *const reshape_positional[] = {"shape", NULL};

const layer_kind herdi_layer_reshape = {
    .name = "reshape", .keywords = reshape_keywords, .positional = reshape_positional, .min_inputs = 1,
    .max_inputs = 1, .flags = LAYER_VIEW, .build = reshape_build, .describe = reshape_describe,
    .onnx_export = reshape_onnx, .spec = reshape_spec,
};
