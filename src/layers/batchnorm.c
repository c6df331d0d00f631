/* batchnorm: per-channel batch normalisation over (C,H,W) or (F); weight, bias, running_mean,
 * running_var as PyTorch's BatchNorm1d/2d (momentum weighs the new value). sync=1: in training,
 * the statistics of the whole batch over the data-parallel ranks (SyncBatchNorm), through the
 * model's batch sum; with none (one process) the batch's own, as sync=0. */
#include <stdio.h>

#include "layers/layer_common.h"

typedef struct bn_cfg {
    float eps, momentum;
    int C, HW;
    int sync;
} bn_cfg;
#define CFG(n) ((const bn_cfg *)(n)->cfg)

static herd_status bn_build(layer_build *b) {
    bn_cfg *cfg = (bn_cfg *)b->n->cfg;
    cfg->eps = 1e-5f, cfg->momentum = 0.1f;
    herd_status st;
    if ((st = herdi_lb_float(b, "eps", "eps", 0, 1e-12, 1, &cfg->eps)) || (st = herdi_lb_float(b, "momentum", "momentum", 0, 0, 1, &cfg->momentum)) ||
        (st = herdi_lb_int(b, "sync", "sync", 0, 0, 1, &cfg->sync)))
        return st;
    int c, h, w;
    herdi_lb_in_chw(b, 0, &c, &h, &w);
    cfg->C = c, cfg->HW = h * w;
    herdi_lb_set_shape(b, herdi_lb_in_ndim(b, 0), herdi_lb_in_dims(b, 0));
    int64_t C[1] = {c};
    if ((st = herdi_lb_param(b, 0, "weight", 1, 1, C)) || (st = herdi_lb_param(b, 1, "bias", 1, 1, C)) ||
        (st = herdi_lb_param(b, 2, "running_mean", 0, 1, C)))
        return st;
    return herdi_lb_param(b, 3, "running_var", 0, 1, C);
}

static void bn_init(herd_model *m, node *n, uint64_t seed) {
    (void)seed;
    float *g = herdi_node_param(m, n, 0), *beta = herdi_node_param(m, n, 1), *mean = herdi_node_param(m, n, 2),
          *var = herdi_node_param(m, n, 3);
    for (int c = 0; c < CFG(n)->C; c++) g[c] = 1.0f, beta[c] = 0.0f, mean[c] = 0.0f, var[c] = 1.0f;
}

static herd_status bn_plan(node *n, layer_plan *p) {
    size_t C = (size_t)CFG(n)->C;
    n->saved[0] = herd_arena_floats(p->arena, C);
    /* rstd; sync: then the 2C + 2 doubles of the sums over the ranks (bn_sums) */
    n->saved[1] = herd_arena_floats(p->arena, CFG(n)->sync ? (C + 1) / 2 * 2 + (2 * C + 2) * 2 : C);
    return n->saved[0] && n->saved[1] ? HERD_OK : HERD_ENOMEM;
}

static double *bn_sums(const node *n) {
    return (double *)((float *)n->saved[1] + ((size_t)CFG(n)->C + 1) / 2 * 2);
}

/* The exec a call runs with: the model's batch sum for sync=1 (SyncBatchNorm over the ranks,
 * in the node's scratch), none otherwise: the batch is this process's. */
static herd_exec bn_exec(const layer_call *c) {
    herd_exec ex = *c->ex;
    if (!CFG(c->n)->sync) ex.batch_sum = NULL;
    ex.batch_scratch = ex.batch_sum ? bn_sums(c->n) : NULL;
    return ex;
}

static void bn_forward(const layer_call *c) {
    const bn_cfg *cfg = CFG(c->n);
    herd_exec ex = bn_exec(c);
    if (c->training)
        c->be->batchnorm_forward_train(&ex, c->out, c->n->saved[0], c->n->saved[1], c->w[2], c->w[3], c->in[0],
                                       c->w[0], c->w[1], c->B, cfg->C, cfg->HW, cfg->momentum, cfg->eps, c->n->fused_act);
    else
        c->be->batchnorm_forward_eval(&ex, c->out, c->in[0], c->w[0], c->w[1], c->w[2], c->w[3], c->B, cfg->C,
                                      cfg->HW, cfg->eps, c->n->fused_act);
}

static void bn_backward(const layer_call *c) {
    const bn_cfg *cfg = CFG(c->n);
    herd_exec ex = bn_exec(c);
    const bn_backward_fusion f = {.out = c->out, .act = herdi_layer_backward_act(c->n), .din_set = c->din_set,
                                  .din_act = c->din_act};
    c->be->batchnorm_backward(&ex, c->din[0], c->dw[0], c->dw[1], c->dout, c->in[0], c->n->saved[0], c->n->saved[1],
                              c->w[0], c->B, cfg->C, cfg->HW, &f);
}

/* every element of the input's gradient gets its one term (written, not added, where the model
 * plans the batch norm as that gradient's only writer) */
static int bn_sets_grad(const node *n) {
    (void)n;
    return 1;
}

static int64_t bn_flops(const herd_model *m, const node *n) {
    (void)m;
    return 2 * n->numel;
}

static herd_status bn_onnx(onnx_exporter *x, const node *n) {
    const char *in[5] = {herdi_onnx_in(x, n, 0), herdi_onnx_param(x, n, 0), herdi_onnx_param(x, n, 1), herdi_onnx_param(x, n, 2),
                         herdi_onnx_param(x, n, 3)};
    onnx_xattr a[2] = {{.name = "epsilon", .type = 'f', .f = CFG(n)->eps},
                      /* ONNX weighs the running value, PyTorch the new one */
                      {.name = "momentum", .type = 'f', .f = 1.0f - CFG(n)->momentum}};
    herdi_onnx_emit(x, "BatchNormalization", n->name, herdi_onnx_out(x, n), in, 5, a, 2);
    return HERD_OK;
}

/* BatchNormalization for inference: scale, bias, mean, var into the four slots */
static herd_status bn_onnx_import(onnx_importer *x) {
    if (herdi_onnx_attr_int(x, "training_mode", 0) != 0) return herdi_onnx_refuse(x, "training_mode=1");
    float eps = herdi_onnx_attr_float(x, "epsilon", 1e-5f), mom = herdi_onnx_attr_float(x, "momentum", 0.9f);
    if (!(eps >= 1e-12f && eps <= 1) || !(mom >= 0 && mom <= 1))
        return herdi_onnx_refuse(x, "epsilon %g or momentum %g out of range", eps, mom);
    char e[32];
    herdi_onnx_arg(x, "eps", "%s", herdi_layer_float_str(eps, e, sizeof e));
    herdi_onnx_arg(x, "momentum", "%g", 1.0 - mom); /* ONNX weighs the running value; 0.9f gives back 0.1 */
    herd_status st = HERD_OK;
    for (int k = 0; k < 4 && !st; k++) st = herdi_onnx_weight(x, k + 1, k, 0);
    return st;
}

static void bn_spec(const herd_model *m, const node *n, char *buf, size_t size) {
    (void)m;
    char e[32], mo[32];
    int len = snprintf(buf, size, "batchnorm");
    if (CFG(n)->eps != 1e-5f && len > 0 && (size_t)len < size)
        len += snprintf(buf + len, size - (size_t)len, " eps=%s", herdi_layer_float_str(CFG(n)->eps, e, sizeof e));
    if (CFG(n)->momentum != 0.1f && len > 0 && (size_t)len < size)
        len += snprintf(buf + len, size - (size_t)len, " momentum=%s", herdi_layer_float_str(CFG(n)->momentum, mo, sizeof mo));
    if (CFG(n)->sync && len > 0 && (size_t)len < size) snprintf(buf + len, size - (size_t)len, " sync=1");
}

static int bn_batch_sync(const node *n) { return CFG(n)->sync; }

/* The eval forward as a per-channel affine where the backend computes it as one (cpu) */
static int bn_eval_affine(const node *n, const layer_call *c, float *scale, float *shift) {
    if (!n->be || !n->be->batchnorm_eval_affine) return 0;
    if (c) n->be->batchnorm_eval_affine(scale, shift, c->w[0], c->w[1], c->w[2], c->w[3], CFG(n)->C, CFG(n)->eps);
    return 1;
}

static const char *const bn_keywords[] = {"batchnorm", NULL};
static const char *const bn_ops[] = {"BatchNormalization", NULL};

const layer_kind herdi_layer_batchnorm = {
    .name = "batchnorm", .keywords = bn_keywords, .prefix = "bn", .min_inputs = 1, .max_inputs = 1,
    .flags = LAYER_FUSES_RELU | LAYER_FUSES_RELU6 | LAYER_TAKES_ACT | LAYER_BATCH_STATS, .build = bn_build, .init = bn_init,
    .plan = bn_plan, .forward = bn_forward, .backward = bn_backward, .backward_reads = herdi_layer_reads_input_and_fused_output, .flops = bn_flops, .onnx_export = bn_onnx,
    .onnx_ops = bn_ops, .onnx_import = bn_onnx_import, .spec = bn_spec, .batch_sync = bn_batch_sync,
    .eval_affine = bn_eval_affine, .sets_grad = bn_sets_grad,
};
