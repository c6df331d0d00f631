/* Reference losses: fused, stable softmax cross-entropy (returns the mean over the batch, keeps the
 * probabilities for backward) and mean squared error. Sums run in double. */
#include "ops/ops.h"

#include <math.h>

float herdi_ref_softmax_xent_forward(float *probs, const float *logits, const int32_t *labels, int64_t N, int64_t K,
                               const int32_t *ignore) {
    double total = 0.0;
    int64_t counted = 0;
    for (int64_t n = 0; n < N; n++) {
        const float *x = logits + n * K;
        float *p = probs + n * K;
        float mx = x[0];
        for (int64_t k = 1; k < K; k++) mx = x[k] > mx ? x[k] : mx;
        double sum = 0.0;
        for (int64_t k = 0; k < K; k++) sum += exp((double)x[k] - mx);
        for (int64_t k = 0; k < K; k++) p[k] = (float)(exp((double)x[k] - mx) / sum);
        int32_t y = labels[n];
        if (ignore && y == *ignore) continue;
        counted++;
        /* -log softmax[label] = log(sum exp(x - mx)) - (x[label] - mx), never log(0) */
        if (y < 0 || y >= K) {
            /* the contract says labels are in range; a bad one poisons the loss instead of reading out of bounds */
            total = NAN;
            continue;
        }
        total += log(sum) - ((double)x[y] - mx);
    }
    return counted > 0 ? (float)(total / counted) : 0.0f;
}

void herdi_ref_softmax_xent_backward(float *dlogits, const float *probs, const int32_t *labels, int64_t N, int64_t K,
                               const int32_t *ignore, float scale) {
    if (!dlogits) return;
    for (int64_t n = 0; n < N; n++) {
        int32_t y = labels[n];
        if (ignore && y == *ignore) continue;
        const float *p = probs + n * K;
        float *g = dlogits + n * K;
        for (int64_t k = 0; k < K; k++) {
            double onehot = k == y ? 1.0 : 0.0; /* an out-of-range label matches no class */
            g[k] += (float)(((double)p[k] - onehot) * scale);
        }
    }
}

float herdi_ref_mse_forward(const float *pred, const float *target, int64_t n) {
    double sum = 0.0;
    for (int64_t i = 0; i < n; i++) {
        double e = (double)pred[i] - target[i];
        sum += e * e;
    }
    return n > 0 ? (float)(sum / (double)n) : 0.0f;
}

void herdi_ref_mse_backward(float *dpred, const float *pred, const float *target, int64_t n, float scale) {
    if (!dpred) return;
    for (int64_t i = 0; i < n; i++) dpred[i] += (float)(2.0 * ((double)pred[i] - target[i]) / (double)n * scale);
}
