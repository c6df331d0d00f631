/* Reference element-wise activations and softmax over the last dimension. */
#include <math.h>

#include "ops/ops.h"

void ref_act_forward(float *out, const float *in, int64_t n, herd_act act, float alpha) {
    for (int64_t i = 0; i < n; i++) {
        float x = in[i];
        switch (act) {
        case HERD_ACT_NONE: out[i] = x; break;
        case HERD_ACT_RELU: out[i] = x > 0 ? x : 0; break;
        case HERD_ACT_LEAKY_RELU: out[i] = x > 0 ? x : alpha * x; break;
        case HERD_ACT_SIGMOID: out[i] = 1.0f / (1.0f + expf(-x)); break;
        case HERD_ACT_TANH: out[i] = tanhf(x); break;
        case HERD_ACT_GELU: out[i] = 0.5f * x * (1.0f + erff(x * 0.70710678118654752f)); break;
        }
    }
}

void ref_act_backward(float *din, const float *dout, const float *in, const float *out, int64_t n, herd_act act,
                      float alpha) {
    for (int64_t i = 0; i < n; i++) {
        float x = in[i], y = out[i], d;
        switch (act) {
        case HERD_ACT_RELU: d = x > 0 ? 1.0f : 0.0f; break;
        case HERD_ACT_LEAKY_RELU: d = x > 0 ? 1.0f : alpha; break;
        case HERD_ACT_SIGMOID: d = y * (1.0f - y); break;
        case HERD_ACT_TANH: d = 1.0f - y * y; break;
        case HERD_ACT_GELU: /* d/dx x*Phi(x) = Phi(x) + x*phi(x) */
            d = 0.5f * (1.0f + erff(x * 0.70710678118654752f)) + x * 0.39894228040143268f * expf(-0.5f * x * x);
            break;
        default: d = 1.0f; break;
        }
        din[i] += dout[i] * d;
    }
}

void ref_softmax_forward(float *out, const float *in, int B, int K) {
    for (int b = 0; b < B; b++) {
        const float *x = in + (int64_t)b * K;
        float *y = out + (int64_t)b * K;
        float mx = x[0];
        for (int k = 1; k < K; k++)
            if (x[k] > mx) mx = x[k];
        double sum = 0;
        for (int k = 0; k < K; k++) sum += (y[k] = expf(x[k] - mx));
        for (int k = 0; k < K; k++) y[k] = (float)(y[k] / sum);
    }
}

void ref_softmax_backward(float *din, const float *dout, const float *out, int B, int K) {
    for (int b = 0; b < B; b++) {
        const float *g = dout + (int64_t)b * K, *y = out + (int64_t)b * K;
        double dot = 0;
        for (int k = 0; k < K; k++) dot += (double)g[k] * y[k];
        for (int k = 0; k < K; k++) din[(int64_t)b * K + k] += y[k] * (float)(g[k] - dot);
    }
}
