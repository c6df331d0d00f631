/* Reference inverted dropout: kept values are scaled by 1/(1-p) at training time so
 * evaluation is the identity. The mask is saved for backward. */
#include "ops/ops.h"

void ref_dropout_forward(float *out, float *mask, const float *in, int64_t n, float p, herd_rng *rng) {
    float keep = 1.0f / (1.0f - p);
    for (int64_t i = 0; i < n; i++) {
        mask[i] = p > 0 && herd_rng_uniform(rng) < p ? 0.0f : keep;
        out[i] = in[i] * mask[i];
    }
}

void ref_dropout_backward(float *din, const float *dout, const float *mask, int64_t n) {
    for (int64_t i = 0; i < n; i++) din[i] += dout[i] * mask[i];
}
