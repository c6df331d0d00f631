/* Reference batch normalisation over (B, C, HW) per channel, with PyTorch's semantics:
 * biased batch variance to normalise, unbiased variance in the running estimate. */
#include <math.h>

#include "ops/ops.h"

void ref_batchnorm_forward_train(float *out, float *mean, float *rstd, float *running_mean, float *running_var,
                                 const float *in, const float *gamma, const float *beta, int B, int C, int HW,
                                 float momentum, float eps) {
    int64_t count = (int64_t)B * HW;
    for (int c = 0; c < C; c++) {
        double sum = 0, sq = 0;
        for (int n = 0; n < B; n++) {
            const float *x = in + ((int64_t)n * C + c) * HW;
            for (int i = 0; i < HW; i++) sum += x[i];
        }
        double mu = sum / count;
        for (int n = 0; n < B; n++) {
            const float *x = in + ((int64_t)n * C + c) * HW;
            for (int i = 0; i < HW; i++) sq += (x[i] - mu) * (x[i] - mu);
        }
        double var = sq / count;
        float rs = (float)(1.0 / sqrt(var + eps));
        mean[c] = (float)mu;
        rstd[c] = rs;
        double unbiased = count > 1 ? sq / (count - 1) : var;
        running_mean[c] = (1 - momentum) * running_mean[c] + momentum * (float)mu;
        running_var[c] = (1 - momentum) * running_var[c] + momentum * (float)unbiased;
        for (int n = 0; n < B; n++) {
            const float *x = in + ((int64_t)n * C + c) * HW;
            float *y = out + ((int64_t)n * C + c) * HW;
            for (int i = 0; i < HW; i++) y[i] = (x[i] - (float)mu) * rs * gamma[c] + beta[c];
        }
    }
}

void ref_batchnorm_forward_eval(float *out, const float *in, const float *gamma, const float *beta,
                                const float *running_mean, const float *running_var, int B, int C, int HW, float eps) {
    for (int c = 0; c < C; c++) {
        float rs = 1.0f / sqrtf(running_var[c] + eps);
        for (int n = 0; n < B; n++) {
            const float *x = in + ((int64_t)n * C + c) * HW;
            float *y = out + ((int64_t)n * C + c) * HW;
            for (int i = 0; i < HW; i++) y[i] = (x[i] - running_mean[c]) * rs * gamma[c] + beta[c];
        }
    }
}

void ref_batchnorm_backward(float *din, float *dgamma, float *dbeta, const float *dout, const float *in,
                            const float *mean, const float *rstd, const float *gamma, int B, int C, int HW) {
    int64_t count = (int64_t)B * HW;
    for (int c = 0; c < C; c++) {
        /* with xhat = (x - mean) * rstd: dbeta = sum(g), dgamma = sum(g * xhat),
         * dx = gamma * rstd / N * (N g - sum(g) - xhat * sum(g * xhat)) */
        double sg = 0, sgx = 0;
        for (int n = 0; n < B; n++) {
            const float *x = in + ((int64_t)n * C + c) * HW, *g = dout + ((int64_t)n * C + c) * HW;
            for (int i = 0; i < HW; i++) {
                sg += g[i];
                sgx += (double)g[i] * (x[i] - mean[c]) * rstd[c];
            }
        }
        if (dbeta) dbeta[c] += (float)sg;
        if (dgamma) dgamma[c] += (float)sgx;
        if (!din) continue;
        double k = (double)gamma[c] * rstd[c] / count;
        for (int n = 0; n < B; n++) {
            const float *x = in + ((int64_t)n * C + c) * HW, *g = dout + ((int64_t)n * C + c) * HW;
            float *dx = din + ((int64_t)n * C + c) * HW;
            for (int i = 0; i < HW; i++) {
                double xhat = (x[i] - mean[c]) * (double)rstd[c];
                dx[i] += (float)(k * ((double)count * g[i] - sg - xhat * sgx));
            }
        }
    }
}
