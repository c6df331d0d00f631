/* Reference batch normalisation over (B, C, HW) per channel, PyTorch semantics: training normalises
 * with the batch mean and biased variance and folds the unbiased variance into the running stats.
 * The _sync forms take the statistics of a batch spread over several ranks (SyncBatchNorm): the
 * same per-channel arithmetic, with each sum over the batch completed across the ranks. */
#include "ops/ops.h"

#include <math.h>

static const float *plane(const float *base, int C, int HW, int n, int c) { return base + ((int64_t)n * C + c) * HW; }

static double channel_sum(const float *in, int B, int C, int HW, int c) {
    double sum = 0.0;
    for (int n = 0; n < B; n++) {
        const float *x = plane(in, C, HW, n, c);
        for (int i = 0; i < HW; i++) sum += x[i];
    }
    return sum;
}

/* sum of (x - m)^2: the second of two passes (the one-pass E[x^2] - E[x]^2 cancels badly when
 * |mean| >> std) */
static double channel_sqdev(const float *in, int B, int C, int HW, int c, double m) {
    double sq = 0.0;
    for (int n = 0; n < B; n++) {
        const float *x = plane(in, C, HW, n, c);
        for (int i = 0; i < HW; i++) sq += ((double)x[i] - m) * ((double)x[i] - m);
    }
    return sq;
}

/* Normalises channel c with mean m and sum of squared deviations sq over count values; saves
 * mean and rstd, updates the running statistics. */
static void channel_normalize(float *out, float *mean, float *rstd, float *running_mean, float *running_var,
                              const float *in, const float *gamma, const float *beta, int B, int C, int HW, int c,
                              double m, double sq, int64_t count, float momentum, float eps) {
    const double var = sq / (double)count;
    const double r = 1.0 / sqrt(var + (double)eps);
    mean[c] = (float)m;
    rstd[c] = (float)r;
    for (int n = 0; n < B; n++) {
        const float *x = plane(in, C, HW, n, c);
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

void herdi_ref_batchnorm_forward_train(float *out, float *mean, float *rstd, float *running_mean, float *running_var,
                                 const float *in, const float *gamma, const float *beta, int B, int C, int HW,
                                 float momentum, float eps) {
    const int64_t count = (int64_t)B * HW;
    for (int c = 0; c < C; c++) {
        const double m = channel_sum(in, B, C, HW, c) / (double)count;
        channel_normalize(out, mean, rstd, running_mean, running_var, in, gamma, beta, B, C, HW, c, m,
                          channel_sqdev(in, B, C, HW, c, m), count, momentum, eps);
    }
}

void herdi_ref_batchnorm_forward_train_sync(float *out, float *mean, float *rstd, float *running_mean, float *running_var,
                                      const float *in, const float *gamma, const float *beta, int B, int C, int HW,
                                      float momentum, float eps, ref_sum_fn sum, void *user, double *scratch) {
    double *s = scratch; /* C channel sums, then the count; then C sums of squared deviations */
    for (int c = 0; c < C; c++) s[c] = channel_sum(in, B, C, HW, c);
    s[C] = (double)B * HW;
    sum(user, s, C + 1);
    const int64_t count = (int64_t)s[C];
    for (int c = 0; c < C; c++) s[c] /= (double)count; /* the global means */
    double *sq = s + C + 1;
    for (int c = 0; c < C; c++) sq[c] = channel_sqdev(in, B, C, HW, c, s[c]);
    sum(user, sq, C);
    for (int c = 0; c < C; c++)
        channel_normalize(out, mean, rstd, running_mean, running_var, in, gamma, beta, B, C, HW, c, s[c], sq[c],
                          count, momentum, eps);
}

void herdi_ref_batchnorm_forward_eval(float *out, const float *in, const float *gamma, const float *beta,
                                const float *running_mean, const float *running_var, int B, int C, int HW, float eps) {
    for (int c = 0; c < C; c++) {
        const double m = running_mean[c];
        const double r = 1.0 / sqrt((double)running_var[c] + (double)eps);
        for (int n = 0; n < B; n++) {
            const float *x = plane(in, C, HW, n, c);
            float *y = out + ((int64_t)n * C + c) * HW;
            for (int i = 0; i < HW; i++) y[i] = (float)(((double)x[i] - m) * r * gamma[c] + beta[c]);
        }
    }
}

/* sum dout and sum dout * xhat of channel c */
static void channel_grad_sums(const float *dout, const float *in, int B, int C, int HW, int c, double m, double r,
                              double *sum_g, double *sum_gx) {
    double sg = 0.0, sgx = 0.0;
    for (int n = 0; n < B; n++) {
        const float *x = plane(in, C, HW, n, c);
        const float *g = plane(dout, C, HW, n, c);
        for (int i = 0; i < HW; i++) {
            sg += g[i];
            sgx += g[i] * (((double)x[i] - m) * r);
        }
    }
    *sum_g = sg, *sum_gx = sgx;
}

static void channel_din(float *din, const float *dout, const float *in, int B, int C, int HW, int c, double m,
                        double r, double gamma, int64_t count, double sum_g, double sum_gx) {
    const double k = gamma * r / (double)count;
    for (int n = 0; n < B; n++) {
        const float *x = plane(in, C, HW, n, c);
        const float *g = plane(dout, C, HW, n, c);
        float *dx = din + ((int64_t)n * C + c) * HW;
        for (int i = 0; i < HW; i++) {
            double xhat = ((double)x[i] - m) * r;
            dx[i] += (float)(k * ((double)count * g[i] - sum_g - xhat * sum_gx));
        }
    }
}

/* With xhat = (x - mean) * rstd and N = B*HW values per channel:
 *   dbeta = sum dout, dgamma = sum dout * xhat,
 *   din   = gamma * rstd / N * (N * dout - dbeta - xhat * dgamma). */
void herdi_ref_batchnorm_backward(float *din, float *dgamma, float *dbeta, const float *dout, const float *in,
                            const float *mean, const float *rstd, const float *gamma, int B, int C, int HW) {
    const int64_t count = (int64_t)B * HW;
    for (int c = 0; c < C; c++) {
        double sum_g, sum_gx;
        channel_grad_sums(dout, in, B, C, HW, c, mean[c], rstd[c], &sum_g, &sum_gx);
        if (dbeta) dbeta[c] += (float)sum_g;
        if (dgamma) dgamma[c] += (float)sum_gx;
        if (din) channel_din(din, dout, in, B, C, HW, c, mean[c], rstd[c], gamma[c], count, sum_g, sum_gx);
    }
}

/* dgamma and dbeta get this rank's sums (data parallel adds the ranks' parameter gradients);
 * din the whole batch's, N its count. */
void herdi_ref_batchnorm_backward_sync(float *din, float *dgamma, float *dbeta, const float *dout, const float *in,
                                 const float *mean, const float *rstd, const float *gamma, int B, int C, int HW,
                                 ref_sum_fn sum, void *user, double *scratch) {
    double *s = scratch; /* C sums of dout, C of dout * xhat, the count */
    for (int c = 0; c < C; c++) {
        channel_grad_sums(dout, in, B, C, HW, c, mean[c], rstd[c], &s[c], &s[C + c]);
        if (dbeta) dbeta[c] += (float)s[c];
        if (dgamma) dgamma[c] += (float)s[C + c];
    }
    s[2 * C] = (double)B * HW;
    sum(user, s, 2 * C + 1);
    const int64_t count = (int64_t)s[2 * C];
    for (int c = 0; c < C && din; c++) channel_din(din, dout, in, B, C, HW, c, mean[c], rstd[c], gamma[c], count, s[c], s[C + c]);
}
