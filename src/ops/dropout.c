/* Reference inverted dropout: kept elements are scaled by 1/(1-p) at training time so
 * inference needs no rescaling; the mask is saved and reused by backward. */
#include "ops/ops.h"

void herdi_ref_dropout_forward(float *out, float *mask, const float *in, int64_t n, float p, herd_rng *rng) {
    /* p >= 1 drops everything; 1/(1-p) would be infinite, and 0 * inf is NaN */
    const float keep_scale = p < 1.0f ? 1.0f / (1.0f - p) : 0.0f;
    for (int64_t i = 0; i < n; i++) {
        /* one draw per element whatever p is, so the rng stream advances by n on every call
         * and runs stay reproducible when p changes; u in [0,1) makes p = 0 keep everything */
        float u = herd_rng_uniform(rng);
        mask[i] = u >= p ? keep_scale : 0.0f;
        out[i] = in[i] * mask[i];
    }
}

void herdi_ref_dropout_backward(float *din, const float *dout, const float *mask, int64_t n) {
    if (!din) return;
    for (int64_t i = 0; i < n; i++) din[i] += dout[i] * mask[i];
}
