/* Softmax cross-entropy over the output's last dim: one i32 class per sample (output (K)) or
 * per position (output (T,K), targets (T)); positions labelled ignore=N are skipped and the
 * mean is over the positions counted (PyTorch's CrossEntropyLoss with ignore_index). Fused
 * and stable: the probabilities are kept for backward; sums run in double. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model/loss.h"

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

static float forward(const loss_call *c) {
    const int32_t *labels = c->target;
    int64_t n = (int64_t)c->B * c->P, K = c->K, counted = 0;
    double total = 0.0;
    for (int64_t i = 0; i < n; i++) {
        const float *x = c->out + i * K;
        float *p = c->scratch + i * K;
        float mx = x[0];
        for (int64_t k = 1; k < K; k++) mx = x[k] > mx ? x[k] : mx;
        double sum = 0.0;
        for (int64_t k = 0; k < K; k++) sum += exp((double)x[k] - mx);
        for (int64_t k = 0; k < K; k++) p[k] = (float)(exp((double)x[k] - mx) / sum);
        int32_t y = labels[i];
        if (skipped(c->cfg, y)) continue;
        counted++;
        /* -log softmax[label] = log(sum exp(x - mx)) - (x[label] - mx), never log(0) */
        if (y < 0 || y >= K) {
            total = NAN; /* callers check targets first; a bad one poisons the loss, never reads out of bounds */
            continue;
        }
        total += log(sum) - ((double)x[y] - mx);
    }
    return counted > 0 ? (float)(total / counted) : 0.0f;
}

static void backward(const loss_call *c, float *dout, float scale) {
    if (!dout) return;
    int64_t counted = units(c);
    if (counted == 0) return;
    const int32_t *labels = c->target;
    int64_t n = (int64_t)c->B * c->P, K = c->K;
    float s = scale / (float)counted;
    for (int64_t i = 0; i < n; i++) {
        int32_t y = labels[i];
        if (skipped(c->cfg, y)) continue;
        const float *p = c->scratch + i * K;
        float *g = dout + i * K;
        for (int64_t k = 0; k < K; k++) {
            double onehot = k == y ? 1.0 : 0.0; /* an out-of-range label matches no class */
            g[k] += (float)(((double)p[k] - onehot) * s);
        }
    }
}

/* class probabilities: the softmax over each position's K logits */
static void predict(const loss_call *c, float *pred) {
    for (int64_t i = 0; i < (int64_t)c->B * c->P; i++) {
        const float *x = c->out + i * c->K;
        float *p = pred + i * c->K, mx = x[0];
        for (int64_t k = 1; k < c->K; k++) mx = x[k] > mx ? x[k] : mx;
        double sum = 0.0;
        for (int64_t k = 0; k < c->K; k++) sum += exp((double)x[k] - mx);
        for (int64_t k = 0; k < c->K; k++) p[k] = (float)(exp((double)x[k] - mx) / sum);
    }
}

static void spec(const model_loss *cfg, char *buf, size_t size) {
    if (cfg->ignore) snprintf(buf, size, " ignore=%d", (int)cfg->ignore_index);
    else buf[0] = 0;
}

static const char *const keys[] = {"ignore", NULL};

const loss_kind loss_xent = {
    .name = "xent",
    .keys = keys,
    .metrics = HERD_METRIC_ACCURACY,
    .configure = configure,
    .check = check,
    .default_target = default_target,
    .bad_target = loss_bad_class,
    .units = units,
    .forward = forward,
    .backward = backward,
    .predict = predict,
    .measure = metric_classes,
    .spec = spec,
};
