/* Mean squared error over every output value: against f32 targets of the output's shape
 * (ratings, regression), or against the one-hot targets of i32 class labels. */
#include <stdio.h>
#include <string.h>

#include "model/loss.h"
#include "ops/ops.h"

static int check(model_loss *cfg, int ndim, const int64_t *dims, const herd_tensor *y, char *msg, size_t size) {
    if (y->dtype == HERD_I32 && y->ndim == 0 && ndim == 1) {
        cfg->classes = 1;
        return 1;
    }
    if (herdi_loss_values_fit(ndim, dims, y)) {
        cfg->classes = 0;
        return 1;
    }
    snprintf(msg, size, "the mse loss takes f32 targets of the output's shape (or an i32 class label for a vector "
             "output)");
    return 0;
}

static void default_target(model_loss *cfg, int ndim, const int64_t *dims) {
    cfg->classes = ndim == 1;
    cfg->target = ndim == 1 ? herd_tensor_make(HERD_I32, 0, NULL, NULL) : herd_tensor_make(HERD_F32, ndim, dims, NULL);
}

static int bad_target(const loss_call *c, char *msg, size_t size) {
    return c->cfg->classes ? herdi_loss_bad_class(c, msg, size) : -1;
}

static int64_t units(const loss_call *c) { return c->B; }

/* f32 targets: the caller's; class labels: one-hot rows made in scratch */
static const float *targets(const loss_call *c) {
    if (!c->cfg->classes) return c->target;
    const int32_t *y = c->target;
    memset(c->scratch, 0, (size_t)loss_values(c) * sizeof(float));
    for (int b = 0; b < c->B; b++)
        if (y[b] >= 0 && y[b] < c->K) c->scratch[(int64_t)b * c->K + y[b]] = 1.0f;
    return c->scratch;
}

static float forward(const loss_call *c) { return herdi_ref_mse_forward(c->out, targets(c), loss_values(c)); }

static void backward(const loss_call *c, float *dout, float scale) {
    herdi_ref_mse_backward(dout, c->out, c->cfg->classes ? c->scratch : c->target, loss_values(c), scale);
}

/* the values themselves */
static void predict(const loss_call *c, float *pred) {
    memcpy(pred, c->out, (size_t)loss_values(c) * sizeof(float));
}

static void measure(const loss_call *c, herd_metrics *acc) {
    if (c->cfg->classes) herdi_metric_classes(c, acc);
    else herdi_metric_sq_err(c->out, c->target, loss_values(c), NULL, acc);
}

static void spec(const model_loss *cfg, char *buf, size_t size) {
    (void)cfg, (void)size;
    buf[0] = 0;
}

const loss_kind herdi_loss_mse = {
    .name = "mse",
    .metrics = HERD_METRIC_ACCURACY,
    .value_metrics = HERD_METRIC_RMSE,
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
