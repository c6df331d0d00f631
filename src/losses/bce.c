/* Binary cross-entropy with logits (PyTorch's BCEWithLogitsLoss): the sigmoid is applied
 * inside, in the stable form max(x, 0) - x t + log(1 + exp(-|x|)), mean over every output
 * value; targets are f32 in [0, 1] of the output's shape, or i32 0/1 labels for an output of
 * one value (clicks). Sums run in double. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "model/loss.h"

static int check(model_loss *cfg, int ndim, const int64_t *dims, const herd_tensor *y, char *msg, size_t size) {
    int64_t n = 1;
    for (int d = 0; d < ndim; d++) n *= dims[d];
    if (y->dtype == HERD_I32 && n == 1 && herd_tensor_numel(y) == 1) {
        cfg->classes = 1;
        return 1;
    }
    if (herdi_loss_values_fit(ndim, dims, y)) {
        cfg->classes = 0;
        return 1;
    }
    snprintf(msg, size, "the bce loss takes f32 targets in [0, 1] of the output's shape (or an i32 0/1 label for "
             "an output of one value)");
    return 0;
}

static void default_target(model_loss *cfg, int ndim, const int64_t *dims) {
    cfg->classes = 0;
    cfg->target = herd_tensor_make(HERD_F32, ndim, dims, NULL);
}

static int bad_target(const loss_call *c, char *msg, size_t size) {
    int64_t n = loss_values(c), per = c->P * c->K;
    for (int64_t i = 0; i < n; i++) {
        if (c->cfg->classes) {
            int32_t y = ((const int32_t *)c->target)[i];
            if (y == 0 || y == 1) continue;
            snprintf(msg, size, "label %d of sample %lld is not 0 or 1", (int)y, (long long)(i / per));
        } else {
            float y = ((const float *)c->target)[i];
            if (y >= 0.0f && y <= 1.0f) continue;
            snprintf(msg, size, "target %g of sample %lld is outside [0, 1]", (double)y, (long long)(i / per));
        }
        return (int)(i / per);
    }
    return -1;
}

static int64_t units(const loss_call *c) { return c->B; }

/* the targets as floats: the caller's, or 0/1 labels converted into scratch */
static const float *targets(const loss_call *c) {
    if (!c->cfg->classes) return c->target;
    const int32_t *y = c->target;
    for (int64_t i = 0; i < loss_values(c); i++) c->scratch[i] = y[i] == 1 ? 1.0f : 0.0f;
    return c->scratch;
}

static float forward(const loss_call *c) {
    const float *t = targets(c);
    int64_t n = loss_values(c);
    double total = 0;
    for (int64_t i = 0; i < n; i++) {
        double x = c->out[i];
        total += (x > 0 ? x : 0) - x * t[i] + log1p(exp(-fabs(x)));
    }
    return n > 0 ? (float)(total / (double)n) : 0.0f;
}

static void backward(const loss_call *c, float *dout, float scale) {
    if (!dout) return;
    const float *t = c->cfg->classes ? c->scratch : c->target;
    int64_t n = loss_values(c);
    for (int64_t i = 0; i < n; i++) {
        double p = 1.0 / (1.0 + exp(-(double)c->out[i]));
        dout[i] += (float)((p - t[i]) / (double)n * scale);
    }
}

static float sigmoid(float x) { return (float)(1.0 / (1.0 + exp(-(double)x))); }

/* the probability of each output being 1 */
static void predict(const loss_call *c, float *pred) {
    for (int64_t i = 0; i < loss_values(c); i++) pred[i] = sigmoid(c->out[i]);
}

static void measure(const loss_call *c, herd_metrics *acc) {
    const float *t = c->cfg->classes ? c->scratch : c->target;
    herdi_metric_binary(c->out, t, loss_values(c), acc);
    herdi_metric_sq_err(c->out, t, loss_values(c), sigmoid, acc);
}

static void spec(const model_loss *cfg, char *buf, size_t size) {
    (void)cfg, (void)size;
    buf[0] = 0;
}

const loss_kind herdi_loss_bce = {
    .name = "bce",
    .metrics = HERD_METRIC_ACCURACY | HERD_METRIC_AUC | HERD_METRIC_RMSE,
    .value_metrics = HERD_METRIC_ACCURACY | HERD_METRIC_AUC | HERD_METRIC_RMSE,
    .check = check,
    .default_target = default_target,
    .bad_target = bad_target,
    .units = units,
    .forward = forward,
    .backward = backward,
    .predict = predict,
    .measure = measure,
    .spec = spec,
};
