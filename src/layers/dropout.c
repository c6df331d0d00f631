/* dropout P: inverted dropout in training (mask 0 or 1/(1-P) from the model's dropout stream),
 * identity at inference. */
#include <stdio.h>
#include <string.h>

#include "layers/layer_common.h"

typedef struct dropout_cfg {
    float p;
} dropout_cfg;
#define CFG(n) ((const dropout_cfg *)(n)->cfg)

static herd_status dropout_build(layer_build *b) {
    dropout_cfg *cfg = (dropout_cfg *)b->n->cfg;
    herd_status st = herdi_lb_float(b, "p", "drop probability", 1, 0.0, 0.99, &cfg->p);
    if (st) return st;
    herdi_lb_set_shape(b, herdi_lb_in_ndim(b, 0), herdi_lb_in_dims(b, 0));
    return HERD_OK;
}

static herd_status dropout_plan(node *n, layer_plan *p) {
    n->saved[0] = herd_arena_floats(p->arena, (size_t)p->B * (size_t)n->numel);
    return n->saved[0] ? HERD_OK : HERD_ENOMEM;
}

static float *mask_rows(const layer_call *c) { return (float *)c->n->saved[0] + c->row0 * c->n->numel; }

static void dropout_forward(const layer_call *c) {
    int64_t numel = (int64_t)c->B * c->n->numel;
    if (c->training) herdi_ref_dropout_forward(c->out, mask_rows(c), c->in[0], numel, CFG(c->n)->p, c->rng);
    else memcpy(c->out, c->in[0], (size_t)numel * sizeof(float));
}

static void dropout_backward(const layer_call *c) {
    if (c->din[0]) herdi_ref_dropout_backward(c->din[0], c->dout, mask_rows(c), (int64_t)c->B * c->n->numel);
}

static void dropout_describe(const herd_model *m, const node *n, char *buf, size_t size) {
    (void)m;
    snprintf(buf, size, "p=%g", CFG(n)->p);
}

/* identity at inference: the next layer reads the input */
static herd_status dropout_onnx(onnx_exporter *x, const node *n) {
    herdi_onnx_set_out(x, n, herdi_onnx_in(x, n, 0), herdi_onnx_in_rank4(x, n, 0));
    return HERD_OK;
}

static void dropout_spec(const herd_model *m, const node *n, char *buf, size_t size) {
    (void)m;
    char p[32];
    snprintf(buf, size, "dropout %s", herdi_layer_float_str(CFG(n)->p, p, sizeof p));
}

static const char *const dropout_keywords[] = {"dropout", NULL};
static const char *const dropout_positional[] = {"p", NULL};

const layer_kind herdi_layer_dropout = {
    .name = "dropout", .keywords = dropout_keywords, .positional = dropout_positional, .min_inputs = 1,
    .max_inputs = 1, .build = dropout_build, .plan = dropout_plan, .forward = dropout_forward,
    .backward = dropout_backward, .backward_reads = herdi_layer_reads_nothing, .describe = dropout_describe, .onnx_export = dropout_onnx,
    .spec = dropout_spec,
};
