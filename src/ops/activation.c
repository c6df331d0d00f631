/* Reference elementwise activations (relu, leaky relu, sigmoid, tanh, exact gelu, tanh gelu, relu6,
 * hardsigmoid, hardswish, silu) and a
 * numerically stable softmax over the last dimension. */
#include "ops/ops.h"

#include <math.h>

static double sigmoid(double x) {
    /* exp of a non-positive argument only, so neither branch overflows */
    if (x >= 0.0) return 1.0 / (1.0 + exp(-x));
    double e = exp(x);
    return e / (1.0 + e);
}

static double clamp(double x, double lo, double hi) { return x < lo ? lo : x > hi ? hi : x; }

static double act_value(double x, herd_act act, double alpha) {
    switch (act) {
    case HERD_ACT_RELU6: return clamp(x, 0.0, 6.0);
    case HERD_ACT_HARDSIGMOID: return clamp(x + 3.0, 0.0, 6.0) / 6.0;
    case HERD_ACT_HARDSWISH: return x * clamp(x + 3.0, 0.0, 6.0) / 6.0;
    case HERD_ACT_SILU: return x * sigmoid(x);
    case HERD_ACT_RELU: return x > 0.0 ? x : 0.0;
    case HERD_ACT_LEAKY_RELU: return x > 0.0 ? x : alpha * x;
    case HERD_ACT_SIGMOID: return sigmoid(x);
    case HERD_ACT_TANH: return tanh(x);
    case HERD_ACT_GELU: return 0.5 * x * (1.0 + erf(x * 0.70710678118654752440));
    case HERD_ACT_GELU_TANH: return 0.5 * x * (1.0 + tanh(0.79788456080286535588 * (x + 0.044715 * x * x * x)));
    case HERD_ACT_NONE: break;
    }
    return x;
}

/* d act / d x at x, given y = act(x) where the derivative is cheaper from y. */
static double act_slope(double x, double y, herd_act act, double alpha) {
    switch (act) {
    /* PyTorch's: hardtanh_backward passes where min < x < max; hardsigmoid's where -3 < x < 3;
     * hardswish's is 0 below -3, x/3 + 1/2 up to 3 (inclusive), 1 above */
    case HERD_ACT_RELU6: return y > 0.0 && y < 6.0 ? 1.0 : 0.0; /* 0 < out < 6 exactly where 0 < in < 6 */
    case HERD_ACT_HARDSIGMOID: return x > -3.0 && x < 3.0 ? 1.0 / 6.0 : 0.0;
    case HERD_ACT_HARDSWISH: return x < -3.0 ? 0.0 : x <= 3.0 ? x / 3.0 + 0.5 : 1.0;
    case HERD_ACT_SILU: {
        double s = sigmoid(x);
        return s * (1.0 + x * (1.0 - s));
    }
    /* at exactly 0 the slope is 0 for relu and alpha for leaky relu, as in PyTorch */
    case HERD_ACT_RELU: return y > 0.0 ? 1.0 : 0.0; /* out > 0 exactly where in > 0 */
    case HERD_ACT_LEAKY_RELU: return x > 0.0 ? 1.0 : alpha;
    case HERD_ACT_SIGMOID: return y * (1.0 - y);
    case HERD_ACT_TANH: return 1.0 - y * y;
    case HERD_ACT_GELU: {
        /* d/dx x*Phi(x) = Phi(x) + x*phi(x) */
        double cdf = 0.5 * (1.0 + erf(x * 0.70710678118654752440));
        double pdf = exp(-0.5 * x * x) * 0.39894228040143267794;
        return cdf + x * pdf;
    }
    case HERD_ACT_GELU_TANH: {
        double th = tanh(0.79788456080286535588 * (x + 0.044715 * x * x * x));
        return 0.5 * (1.0 + th) + 0.5 * x * (1.0 - th * th) * 0.79788456080286535588 * (1.0 + 3.0 * 0.044715 * x * x);
    }
    case HERD_ACT_NONE: break;
    }
    return 1.0;
}

void herdi_ref_act_forward(float *out, const float *in, int64_t n, herd_act act, float alpha) {
    for (int64_t i = 0; i < n; i++) out[i] = (float)act_value(in[i], act, alpha);
}

void herdi_ref_act_backward(float *din, const float *dout, const float *in, const float *out, int64_t n, herd_act act,
                      float alpha) {
    if (!din) return;
    for (int64_t i = 0; i < n; i++) din[i] += (float)(dout[i] * act_slope(in[i], out[i], act, alpha));
}

void herdi_ref_softmax_forward(float *out, const float *in, int B, int K) {
    for (int n = 0; n < B; n++) {
        const float *x = in + (int64_t)n * K;
        float *y = out + (int64_t)n * K;
        /* subtracting the max keeps every exp in (0, 1] */
        float mx = x[0];
        for (int k = 1; k < K; k++) mx = x[k] > mx ? x[k] : mx;
        double sum = 0.0;
        for (int k = 0; k < K; k++) sum += exp((double)x[k] - mx);
        for (int k = 0; k < K; k++) y[k] = (float)(exp((double)x[k] - mx) / sum);
    }
}

/* din_k += y_k * (dout_k - sum_j dout_j y_j) */
void herdi_ref_softmax_backward(float *din, const float *dout, const float *out, int B, int K) {
    if (!din) return;
    for (int n = 0; n < B; n++) {
        const float *g = dout + (int64_t)n * K;
        const float *y = out + (int64_t)n * K;
        double dot = 0.0;
        for (int k = 0; k < K; k++) dot += (double)g[k] * y[k];
        for (int k = 0; k < K; k++) din[(int64_t)n * K + k] += (float)(y[k] * (g[k] - dot));
    }
}
