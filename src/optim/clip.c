/* Global L2-norm gradient clipping, as torch.nn.utils.clip_grad_norm_(norm_type=2). */
#include <math.h>

#include "optim/optim.h"

double herd_grad_sq_sum(const float *grads, int64_t n) {
    /* Eight independent partial sums: the order is fixed (deterministic across
     * runs) and the compiler can keep them in vector registers. */
    double acc[8] = {0};
    int64_t i = 0;
    for (; i + 8 <= n; i += 8)
        for (int j = 0; j < 8; j++) acc[j] += (double)grads[i + j] * (double)grads[i + j];
    for (; i < n; i++) acc[0] += (double)grads[i] * (double)grads[i];
    return ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7]));
}

void herd_clip_scale(float *grads, int64_t n, double norm, float max_norm) {
    if (!(max_norm > 0.0f)) return;
    /* torch multiplies by min(coef, 1); scaling only when coef < 1 is the same
     * result without touching the buffer. A NaN norm leaves grads alone (the
     * caller sees the NaN in the return value). */
    double coef = (double)max_norm / (norm + 1e-6);
    if (coef < 1.0) {
        float c = (float)coef;
        for (int64_t i = 0; i < n; i++) grads[i] *= c;
    }
}

double herd_clip_grad_norm(float *grads, int64_t n, float max_norm) {
    double norm = sqrt(herd_grad_sq_sum(grads, n));
    herd_clip_scale(grads, n, norm, max_norm);
    return norm;
}
