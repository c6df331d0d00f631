/* slice: channels [start, end) of an image (C,H,W), or features [start, end) of a vector: the
 * halves ShuffleNetV2's units split their input into (x.chunk(2, dim=1), Slice in ONNX). */
#include <stdio.h>
#include <string.h>

#include "layers/layer_common.h"

typedef struct slice_cfg {
    int64_t start, end, plane; /* plane: H*W of an image, 1 of a vector */
} slice_cfg;
_Static_assert(sizeof(slice_cfg) <= LAYER_CFG_BYTES, "slice config fits a node");
#define CFG(n) ((const slice_cfg *)(n)->cfg)

static herd_status slice_build(layer_build *b) {
    slice_cfg *cfg = (slice_cfg *)b->n->cfg;
    int c, h, w, start = 0, end = 0;
    herdi_lb_in_chw(b, 0, &c, &h, &w);
    herd_status st;
    if ((st = herdi_lb_int(b, "start", "first channel", 1, 0, c - 1, &start)) ||
        (st = herdi_lb_int(b, "end", "channel after the last", 1, 1, c, &end)))
        return st;
    if (end <= start) return herdi_lb_fail(b, HERD_ESPEC, "end", "slice: end=%d must be above start=%d", end, start);
    int image = herdi_lb_in_ndim(b, 0) == 3;
    cfg->start = start, cfg->end = end, cfg->plane = image ? (int64_t)h * w : 1;
    int64_t out[3] = {end - start, h, w};
    herdi_lb_set_shape(b, image ? 3 : 1, out);
    return HERD_OK;
}

/* each sample's slice is one contiguous block of its input */
static void slice_forward(const layer_call *c) {
    const slice_cfg *cfg = CFG(c->n);
    int64_t per = call_in_numel(c, 0), n = c->n->numel, at = cfg->start * cfg->plane;
    for (int b = 0; b < c->B; b++)
        memcpy(c->out + (int64_t)b * n, c->in[0] + (int64_t)b * per + at, (size_t)n * sizeof(float));
}

static void slice_backward(const layer_call *c) {
    const slice_cfg *cfg = CFG(c->n);
    if (!c->din[0]) return;
    int64_t per = call_in_numel(c, 0), n = c->n->numel, at = cfg->start * cfg->plane;
    for (int b = 0; b < c->B; b++) herdi_ref_accumulate(c->din[0] + (int64_t)b * per + at, c->dout + (int64_t)b * n, n);
}

static void slice_describe(const herd_model *m, const node *n, char *buf, size_t size) {
    (void)m;
    snprintf(buf, size, "[%lld, %lld)", (long long)CFG(n)->start, (long long)CFG(n)->end);
}

/* Slice(x, [start], [end], [1]) */
static herd_status slice_onnx(onnx_exporter *x, const node *n) {
    char names[3][HERD_NAME_MAX + 16];
    static const char *const suffix[3] = {"starts", "ends", "axes"};
    int64_t v[3] = {CFG(n)->start, CFG(n)->end, 1};
    const char *in[4] = {herdi_onnx_in(x, n, 0)};
    for (int k = 0; k < 3; k++) {
        snprintf(names[k], sizeof names[k], "%s_%s", n->name, suffix[k]);
        in[k + 1] = herdi_onnx_ints(x, names[k], &v[k], 1);
    }
    herdi_onnx_emit(x, "Slice", n->name, herdi_onnx_out(x, n), in, 4, NULL, 0);
    herdi_onnx_set_out(x, n, herdi_onnx_out(x, n), herdi_onnx_in_rank4(x, n, 0));
    return HERD_OK;
}

static void slice_spec(const herd_model *m, const node *n, char *buf, size_t size) {
    (void)m;
    snprintf(buf, size, "slice %lld %lld", (long long)CFG(n)->start, (long long)CFG(n)->end);
}

static const char *const slice_keywords[] = {"slice", NULL};
static const char *const slice_positional[] = {"start", "end", NULL};

/* ONNX Slice is the importer's pattern (its bounds may come from shape subgraphs) */
const layer_kind herdi_layer_slice = {
    .name = "slice", .keywords = slice_keywords, .positional = slice_positional, .min_inputs = 1, .max_inputs = 1,
    .flags = LAYER_TAKES_ACT, .build = slice_build, .forward = slice_forward, .backward = slice_backward,
    .backward_reads = herdi_layer_reads_nothing, .describe = slice_describe, .onnx_export = slice_onnx, .spec = slice_spec,
};
