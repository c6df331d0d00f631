/* Softmax cross-entropy over the output's last dim: one i32 class per sample (output (K)) or
 * per position (output (T,K), targets (T)); positions labelled ignore=N are skipped and the
 * mean is over the positions counted (PyTorch's CrossEntropyLoss with ignore_index). Fused
 * and stable: the probabilities are kept for backward; sums run in double. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model/loss.h"
#include "ops/ops.h"

static int skipped(const model_loss *cfg, int32_t y) { return cfg->ignore && y == cfg->ignore_index; }

static int configure(model_loss *cfg, const char *key, const char *value, char *msg, size_t size) {
    (void)key;
    char *end;
    long v = strtol(value, &end, 10);
    if (!*value || *end || v < INT32_MIN || v > INT32_MAX) {
        snprintf(msg, size, "loss xent: ignore=%s is not an integer", value);
        return 0;
    }
    cfg->ignore = 1, cfg->ignore_index = (int32_t)v;
    return 1;
}

static int check(model_loss *cfg, int ndim, const int64_t *dims, const herd_tensor *y, char *msg, size_t size) {
    int ok = y->dtype == HERD_I32;
    if (ndim == 1) ok = ok && (y->ndim == 0 || (y->ndim == 1 && y->dims[0] == 1));
    else ok = ok && y->ndim == ndim - 1 && !memcmp(y->dims, dims, (size_t)(ndim - 1) * sizeof *dims);
    if (!ok) {
        snprintf(msg, size, "the cross-entropy loss takes an i32 class label %s", ndim == 1 ? "per sample" :
                 "per position (the output's dims but the last)");
        return 0;
    }
    cfg->classes = 1;
    return 1;
}

static void default_target(model_loss *cfg, int ndim, const int64_t *dims) {
    cfg->classes = 1;
    cfg->target = herd_tensor_make(HERD_I32, ndim - 1, dims, NULL);
}

static int64_t units(const loss_call *c) {
    const int32_t *y = c->target;
    int64_t n = (int64_t)c->B * c->P, counted = n;
    if (c->cfg->ignore)
        for (int64_t i = 0; i < n; i++) counted -= skipped(c->cfg, y[i]);
    return counted;
}

static const int32_t *ignored(const loss_call *c) { return c->cfg->ignore ? &c->cfg->ignore_index : NULL; }

static float forward(const loss_call *c) {
    return herdi_ref_softmax_xent_forward(c->scratch, c->out, c->target, (int64_t)c->B * c->P, c->K, ignored(c));
}

static void backward(const loss_call *c, float *dout, float scale) {
    int64_t counted = units(c);
    if (counted > 0)
        herdi_ref_softmax_xent_backward(dout, c->scratch, c->target, (int64_t)c->B * c->P, c->K, ignored(c),
                                  scale / (float)counted);
}

/* class probabilities: the softmax over each position's K logits */
static void predict(const loss_call *c, float *pred) { herdi_ref_softmax_forward(pred, c->out, c->B * (int)c->P, (int)c->K); }

static void spec(const model_loss *cfg, char *buf, size_t size) {
    if (cfg->ignore) snprintf(buf, size, " ignore=%d", (int)cfg->ignore_index);
    else buf[0] = 0;
}

static const char *const keys[] = {"ignore", NULL};

const loss_kind herdi_loss_xent = {
    .name = "xent",
    .keys = keys,
    .metrics = HERD_METRIC_ACCURACY,
    .configure = configure,
    .check = check,
    .default_target = default_target,
    .bad_target = herdi_loss_bad_class,
    .units = units,
    .forward = forward,
    .backward = backward,
    .predict = predict,
    .measure = herdi_metric_classes,
    .spec = spec,
};
