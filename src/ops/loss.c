/* Reference losses: fused, stable softmax cross-entropy (log-sum-exp with the max
 * subtracted) and mean squared error. */
#include <math.h>

#include "ops/ops.h"

float ref_softmax_xent_forward(float *probs, const float *logits, const int32_t *labels, int B, int K) {
    double total = 0;
    for (int b = 0; b < B; b++) {
        const float *x = logits + (int64_t)b * K;
        float *p = probs + (int64_t)b * K;
        float mx = x[0];
        for (int k = 1; k < K; k++)
            if (x[k] > mx) mx = x[k];
        double sum = 0;
        for (int k = 0; k < K; k++) sum += exp((double)x[k] - mx);
        for (int k = 0; k < K; k++) p[k] = (float)(exp((double)x[k] - mx) / sum);
        total += log(sum) + mx - x[labels[b]];
    }
    return (float)(total / B);
}

void ref_softmax_xent_backward(float *dlogits, const float *probs, const int32_t *labels, int B, int K, float scale) {
    for (int b = 0; b < B; b++)
        for (int k = 0; k < K; k++)
            dlogits[(int64_t)b * K + k] += (probs[(int64_t)b * K + k] - (k == labels[b] ? 1.0f : 0.0f)) * scale;
}

float ref_mse_forward(const float *pred, const float *target, int64_t n) {
    double acc = 0;
    for (int64_t i = 0; i < n; i++) acc += ((double)pred[i] - target[i]) * ((double)pred[i] - target[i]);
    return (float)(acc / n);
}

void ref_mse_backward(float *dpred, const float *pred, const float *target, int64_t n, float scale) {
    float k = 2.0f * scale / (float)n;
    for (int64_t i = 0; i < n; i++) dpred[i] += k * (pred[i] - target[i]);
}
