/* Reference batch normalisation over (B, C, HW) per channel, PyTorch semantics: training normalises
 * with the batch mean and biased variance and folds the unbiased variance into the running stats. */
#include "ops/ops.h"

#include <math.h>

void ref_batchnorm_forward_train(float *out, float *mean, float *rstd, float *running_mean, float *running_var,
                                 const float *in, const float *gamma, const float *beta, int B, int C, int HW,
                                 float momentum, float eps) {
    const int64_t count = (int64_t)B * HW;
    for (int c = 0; c < C; c++) {
        /* two passes in double: the one-pass E[x^2] - E[x]^2 cancels badly when |mean| >> std */
        double sum = 0.0;
        for (int n = 0; n < B; n++) {
            const float *x = in + ((int64_t)n * C + c) * HW;
            for (int i = 0; i < HW; i++) sum += x[i];
        }
        const double m = sum / (double)count;
        double sq = 0.0;
        for (int n = 0; n < B; n++) {
            const float *x = in + ((int64_t)n * C + c) * HW;
            for (int i = 0; i < HW; i++) sq += ((double)x[i] - m) * ((double)x[i] - m);
        }
        const double var = sq / (double)count;
        const double r = 1.0 / sqrt(var + (double)eps);
        mean[c] = (float)m;
        rstd[c] = (float)r;
        for (int n = 0; n < B; n++) {
            const float *x = in + ((int64_t)n * C + c) * HW;
            float *y = out + ((int64_t)n * C + c) * HW;
            for (int i = 0; i < HW; i++) y[i] = (float)(((double)x[i] - m) * r * gamma[c] + beta[c]);
        }
        if (running_mean) running_mean[c] = (float)((1.0 - momentum) * running_mean[c] + momentum * m);
        if (running_var) {
            /* with one value per channel the unbiased variance is undefined (PyTorch refuses);
             * use the biased one (0) rather than poison the running stats with NaN */
            const double unbiased = count > 1 ? sq / (double)(count - 1) : var;
            running_var[c] = (float)((1.0 - momentum) * running_var[c] + momentum * unbiased);
        }
    }
}

void ref_batchnorm_forward_eval(float *out, const float *in, const float *gamma, const float *beta,
                                const float *running_mean, const float *running_var, int B, int C, int HW, float eps) {
    for (int c = 0; c < C; c++) {
        const double m = running_mean[c];
        const double r = 1.0 / sqrt((double)running_var[c] + (double)eps);
        for (int n = 0; n < B; n++) {
            const float *x = in + ((int64_t)n * C + c) * HW;
            float *y = out + ((int64_t)n * C + c) * HW;
            for (int i = 0; i < HW; i++) y[i] = (float)(((double)x[i] - m) * r * gamma[c] + beta[c]);
        }
    }
}

/* With xhat = (x - mean) * rstd and N = B*HW values per channel:
 *   dbeta = sum dout, dgamma = sum dout * xhat,
 *   din   = gamma * rstd / N * (N * dout - dbeta - xhat * dgamma). */
void ref_batchnorm_backward(float *din, float *dgamma, float *dbeta, const float *dout, const float *in,
                            const float *mean, const float *rstd, const float *gamma, int B, int C, int HW) {
    const int64_t count = (int64_t)B * HW;
    for (int c = 0; c < C; c++) {
        const double m = mean[c], r = rstd[c];
        double sum_g = 0.0, sum_gx = 0.0;
        for (int n = 0; n < B; n++) {
            const float *x = in + ((int64_t)n * C + c) * HW;
            const float *g = dout + ((int64_t)n * C + c) * HW;
            for (int i = 0; i < HW; i++) {
                sum_g += g[i];
                sum_gx += g[i] * (((double)x[i] - m) * r);
            }
        }
        if (dbeta) dbeta[c] += (float)sum_g;
        if (dgamma) dgamma[c] += (float)sum_gx;
        if (din) {
            const double k = gamma[c] * r / (double)count;
            for (int n = 0; n < B; n++) {
                const float *x = in + ((int64_t)n * C + c) * HW;
                const float *g = dout + ((int64_t)n * C + c) * HW;
                float *dx = din + ((int64_t)n * C + c) * HW;
                for (int i = 0; i < HW; i++) {
                    double xhat = ((double)x[i] - m) * r;
                    dx[i] += (float)(k * ((double)count * g[i] - sum_g - xhat * sum_gx));
                }
            }
        }
    }
}
