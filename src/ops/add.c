/* Reference residual add and gradient accumulation (the backward of a fan-out). */
#include "ops/ops.h"

void herdi_ref_add_forward(float *out, const float *a, const float *b, int64_t n) {
    for (int64_t i = 0; i < n; i++) out[i] = a[i] + b[i];
}

void herdi_ref_accumulate(float *din, const float *dout, int64_t n) {
    if (!din) return;
    for (int64_t i = 0; i < n; i++) din[i] += dout[i];
}
