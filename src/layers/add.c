/* add: the elementwise sum of two or more inputs of the same shape (residual connections); it
 * applies the ReLU after it in place when the fusion pass gives it (ResNet's block ends). */
#include <stdio.h>
#include <string.h>

#include "layers/layer_common.h"

static herd_status add_build(layer_build *b) {
    char s0[64], s1[64];
    for (int k = 1; k < b->n->n_in; k++) {
        int nd = herdi_lb_in_ndim(b, k);
        if (nd != herdi_lb_in_ndim(b, 0) || memcmp(herdi_lb_in_dims(b, k), herdi_lb_in_dims(b, 0), (size_t)nd * sizeof(int64_t))) {
            const node *f = herdi_lb_in_node(b, k);
            return herdi_lb_fail(b, HERD_ESHAPE, "from", "add: the input is %s but '%s' is %s",
                           herdi_lb_shape_str(herdi_lb_in_ndim(b, 0), herdi_lb_in_dims(b, 0), s0, sizeof s0),
                           f ? f->name : b->m->inputs[-1 - b->n->in[k]].name,
                           herdi_lb_shape_str(nd, herdi_lb_in_dims(b, k), s1, sizeof s1));
        }
    }
    herdi_lb_set_shape(b, herdi_lb_in_ndim(b, 0), herdi_lb_in_dims(b, 0));
    return HERD_OK;
}

static void add_forward(const layer_call *c) {
    int64_t n = (int64_t)c->B * c->n->numel;
    if (c->n->n_in == 2 && c->be->add_act_forward) {
        c->be->add_act_forward(c->ex, c->out, c->in[0], c->in[1], n, c->n->fused_act);
        return;
    }
    herdi_ref_add_forward(c->out, c->in[0], c->in[1], n);
    for (int k = 2; k < c->n->n_in; k++) herdi_ref_accumulate(c->out, c->in[k], n);
    if (c->n->fused_act) c->be->act_forward(c->ex, c->out, c->out, n, c->n->fused_act, 0);
}

static void add_decode(const layer_call *c, float *cache) {
    (void)cache;
    int64_t n = c->n->dims[c->n->ndim - 1];
    herdi_ref_add_forward(c->out, c->in[0], c->in[1], n);
    for (int k = 2; k < c->n->n_in; k++) herdi_ref_accumulate(c->out, c->in[k], n);
    if (c->n->fused_act) c->be->act_forward(c->ex, c->out, c->out, n, c->n->fused_act, 0);
}

static void add_backward(const layer_call *c) {
    const herd_act act = herdi_layer_backward_act(c->n);
    if (act) c->be->act_backward_inplace(c->ex, c->dout, c->out, (int64_t)c->B * c->n->numel, act);
    for (int k = 0; k < c->n->n_in; k++)
        if (c->din[k]) herdi_ref_accumulate(c->din[k], c->dout, (int64_t)c->B * c->n->numel);
}

static int64_t add_flops(const herd_model *m, const node *n) {
    (void)m;
    return n->numel * (n->n_in - 1);
}

static void add_describe(const herd_model *m, const node *n, char *buf, size_t size) {
    size_t len = 0;
    buf[0] = 0;
    for (int k = 1; k < n->n_in && len < size; k++) {
        const char *name = n->in[k] >= 0 ? m->nodes[n->in[k]].name : m->inputs[-1 - n->in[k]].name;
        int w = snprintf(buf + len, size - len, "%s+ %s", k > 1 ? " " : "", name);
        if (w < 0) break;
        len += (size_t)w;
    }
}

static herd_status add_onnx(onnx_exporter *x, const node *n) {
    int rank4 = herdi_onnx_in_rank4(x, n, 0);
    const char *acc = herdi_onnx_in(x, n, 0);
    char part[2][HERD_NAME_MAX + 16]; /* partial sums of an add of more than two inputs */
    for (int k = 1; k < n->n_in; k++) {
        if (herdi_onnx_in_rank4(x, n, k) != rank4)
            return herdi_onnx_fail(x, "add '%s' sums a flat and an NCHW tensor", n->name);
        const char *ins[2] = {acc, herdi_onnx_in(x, n, k)};
        int last = k == n->n_in - 1;
        char *p = part[k & 1];
        snprintf(p, sizeof part[0], "%s_sum%d", n->name, k);
        herdi_onnx_emit(x, "Add", last ? n->name : p, last ? herdi_onnx_out(x, n) : p, ins, 2, NULL, 0);
        acc = p;
    }
    return HERD_OK;
}

/* Add of two layer outputs of one shape (a constant operand, a bias or part of GELU, is the
 * importer's pattern; chains of Adds it joins into one N-ary add) */
static herd_status add_onnx_import(onnx_importer *x) {
    (void)x;
    return HERD_OK;
}

static const char *const add_keywords[] = {"add", NULL};
static const char *const add_ops[] = {"Add", NULL};
/* `add NAME` adds NAME to the line before; `add A,B,...` adds those (the spec parser reads `from`) */
static const char *const add_positional[] = {"from", NULL};

const layer_kind herdi_layer_add = {
    .name = "add", .keywords = add_keywords, .positional = add_positional, .min_inputs = 2, .max_inputs = HERD_MAX_INPUTS,
    .flags = LAYER_FUSES_RELU | LAYER_TAKES_ACT, .build = add_build, .forward = add_forward, .backward = add_backward,
    .backward_reads = herdi_layer_reads_fused_output, .flops = add_flops, .describe = add_describe, .onnx_export = add_onnx,
    .onnx_ops = add_ops, .onnx_import = add_onnx_import,
    .decode = add_decode,
};
