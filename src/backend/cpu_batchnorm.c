/* cpu batch norm: one channel per work item, statistics accumulated in double in a fixed
 * order, so results do not depend on the thread count at all: 8 running sums, element i of
 * each (b, c) row going to sum i mod 8, combined pairwise at the end. One chain of dependent
 * double adds ran at one element per add latency (4 cycles); 8 vectorise and overlap. */
#include <math.h>

#include "cpu_internal.h"

#define BN_LANES 8

static double bn_combine(const double a[BN_LANES]) {
    return ((a[0] + a[1]) + (a[2] + a[3])) + ((a[4] + a[5]) + (a[6] + a[7]));
}

#ifdef HAVE_AVX512_KERNEL
/* AVX-512 bodies of the loops below: the 8 running sums are one register's lanes, each step the
 * same operations in the same order as the scalar code (the _round forms, which the compiler
 * never fuses into an FMA: the portable build has none, so a fused multiply-add would change
 * the bits). The forward's (sum, squared deviations, scale) take a channel's rows (rows of n,
 * stride apart) in one call, a row's last n mod 8 (or 16) elements in masked lanes: element i
 * of a row still goes to sum i mod 8, as the scalar tail adds it. So maps of 2x2 or 4x4
 * (ResNet's last stages) take no scalar loop (forward of 512 channels of 2x2 at batch 32: 0.48
 * -> 0.27 ms). The backward's take one row and return how many elements they did, the
 * caller's scalar loop doing the rest (the masked whole-channel form measured no faster there). */
#define BN_R _MM_FROUND_CUR_DIRECTION

/* lanes [0, 8) of x masked by k, the others zero (AVX-512F has no 8-float masked load) */
static inline TARGET_AVX512 __m256 bn_load8(__mmask8 k, const float *x) {
    return _mm512_castps512_ps256(_mm512_maskz_loadu_ps((__mmask16)k, x));
}

static TARGET_AVX512 void bn_sum_avx512(double a[BN_LANES], const float *x, int rows, size_t stride, int n) {
    __m512d acc = _mm512_loadu_pd(a);
    for (int b = 0; b < rows; b++, x += stride)
        for (int i = 0; i < n; i += BN_LANES) {
            __mmask8 k = (__mmask8)cpu_lanes16(n - i);
            acc = _mm512_mask_add_round_pd(acc, k, acc, _mm512_cvtps_pd(bn_load8(k, x + i)), BN_R);
        }
    _mm512_storeu_pd(a, acc);
}

static TARGET_AVX512 void bn_sq_avx512(double a[BN_LANES], const float *x, int rows, size_t stride, int n, double m) {
    __m512d acc = _mm512_loadu_pd(a), mv = _mm512_set1_pd(m);
    for (int b = 0; b < rows; b++, x += stride)
        for (int i = 0; i < n; i += BN_LANES) {
            __mmask8 k = (__mmask8)cpu_lanes16(n - i);
            __m512d t = _mm512_sub_round_pd(_mm512_cvtps_pd(bn_load8(k, x + i)), mv, BN_R);
            acc = _mm512_mask_add_round_pd(acc, k, acc, _mm512_mul_round_pd(t, t, BN_R), BN_R);
        }
    _mm512_storeu_pd(a, acc);
}

/* The lanes of k where the fused activation act passes the gradient, given its output y: all of
 * k for none, y > 0 for ReLU, 0 < y < 6 for ReLU6 (act_backward_inplace's test; NaN passes none) */
static inline TARGET_AVX512 __mmask16 bn_pass16(__mmask16 k, const float *y, int i, herd_act act) {
    if (!act) return k;
    __m512 v = _mm512_maskz_loadu_ps(k, y + i);
    __mmask16 p = _mm512_mask_cmp_ps_mask(k, v, _mm512_setzero_ps(), _CMP_GT_OQ);
    return act == HERD_ACT_RELU6 ? _mm512_mask_cmp_ps_mask(p, v, _mm512_set1_ps(6.0f), _CMP_LT_OQ) : p;
}

static TARGET_AVX512 int bn_grad_avx512(double g[BN_LANES], double gx[BN_LANES], const float *dout, const float *x,
                                        const float *y, herd_act act, int n, float m, float rs) {
    __m512d ag = _mm512_loadu_pd(g), agx = _mm512_loadu_pd(gx);
    __m512 mv = _mm512_set1_ps(m), rv = _mm512_set1_ps(rs);
    int i = 0;
    for (; i + BN_LANES <= n; i += BN_LANES) {
        __m512d d = _mm512_cvtps_pd(bn_load8((__mmask8)bn_pass16(0xFF, y, i, act), dout + i));
        __m512 xh = _mm512_mul_round_ps(_mm512_sub_round_ps(_mm512_castps256_ps512(_mm256_loadu_ps(x + i)), mv, BN_R),
                                        rv, BN_R); /* lanes 0..7; the upper ones are never read */
        ag = _mm512_add_round_pd(ag, d, BN_R);
        agx = _mm512_add_round_pd(agx, _mm512_mul_round_pd(d, _mm512_cvtps_pd(_mm512_castps512_ps256(xh)), BN_R), BN_R);
    }
    _mm512_storeu_pd(g, ag);
    _mm512_storeu_pd(gx, agx);
    return i;
}

/* y[i] = act(x[i] * scale + shift) */
static TARGET_AVX512 void bn_scale_avx512(float *y, const float *x, int rows, size_t stride, int n, float scale,
                                          float shift, herd_act act) {
    __m512 s = _mm512_set1_ps(scale), t = _mm512_set1_ps(shift);
    for (int b = 0; b < rows; b++, x += stride, y += stride)
        for (int i = 0; i < n; i += 16) {
            __mmask16 k = cpu_lanes16(n - i);
            __m512 v = _mm512_add_round_ps(_mm512_mul_round_ps(_mm512_maskz_loadu_ps(k, x + i), s, BN_R), t, BN_R);
            _mm512_mask_storeu_ps(y + i, k, cpu_act_vec16(v, act));
        }
}

/* dx[i] += k * (g[i] - mg - (x[i] - m) * rs * mgx), g[i] masked by the fused activation; set: dx[i]
 * = 0 + that, masked by din_act's test on x */
static TARGET_AVX512 int bn_dx_avx512(float *dx, const float *g, const float *x, const float *y, herd_act act, int set,
                                      herd_act din_act, int n, float k, float mg, float m, float rs, float mgx) {
    __m512 kv = _mm512_set1_ps(k), mgv = _mm512_set1_ps(mg), mv = _mm512_set1_ps(m), rv = _mm512_set1_ps(rs),
           mgxv = _mm512_set1_ps(mgx);
    int i = 0;
    for (; i + 16 <= n; i += 16) {
        __m512 xh = _mm512_mul_round_ps(_mm512_sub_round_ps(_mm512_loadu_ps(x + i), mv, BN_R), rv, BN_R);
        __m512 in = _mm512_sub_round_ps(_mm512_sub_round_ps(_mm512_maskz_loadu_ps(bn_pass16(0xFFFF, y, i, act), g + i), mgv, BN_R),
                                        _mm512_mul_round_ps(xh, mgxv, BN_R), BN_R);
        __m512 r = _mm512_add_round_ps(set ? _mm512_setzero_ps() : _mm512_loadu_ps(dx + i),
                                       _mm512_mul_round_ps(kv, in, BN_R), BN_R);
        _mm512_storeu_ps(dx + i, set ? _mm512_maskz_mov_ps(bn_pass16(0xFFFF, x, i, din_act), r) : r);
    }
    return i;
}
#define BN_VECTOR(call) (herdi_cpu_avx512_enabled() ? ((call), 1) : 0)
#define BN_ROW_VECTOR(call) (herdi_cpu_avx512_enabled() ? (call) : 0)
#else
#define BN_VECTOR(call) 0
#define BN_ROW_VECTOR(call) 0
#endif

/* a[i mod 8] += x[i] over each of rows rows */
static void bn_sum_rows(double a[BN_LANES], const float *x, int rows, size_t stride, int n) {
    if (BN_VECTOR(bn_sum_avx512(a, x, rows, stride, n))) return;
    for (int b = 0; b < rows; b++, x += stride) {
        int i = 0;
        for (; i + BN_LANES <= n; i += BN_LANES)
            for (int k = 0; k < BN_LANES; k++) a[k] += x[i + k];
        for (; i < n; i++) a[i % BN_LANES] += x[i];
    }
}

/* a[i mod 8] += (x[i] - m)^2 over each row */
static void bn_sq_rows(double a[BN_LANES], const float *x, int rows, size_t stride, int n, double m) {
    if (BN_VECTOR(bn_sq_avx512(a, x, rows, stride, n, m))) return;
    for (int b = 0; b < rows; b++, x += stride) {
        int i = 0;
        for (; i + BN_LANES <= n; i += BN_LANES)
            for (int k = 0; k < BN_LANES; k++) {
                double t = x[i + k] - m;
                a[k] += t * t;
            }
        for (; i < n; i++) {
            double t = x[i] - m;
            a[i % BN_LANES] += t * t;
        }
    }
}

/* 1 where the activation act passes a gradient back given its output y (act_backward_inplace's
 * test; always for none) */
static inline int bn_pass(const float *y, int i, herd_act act) {
    return !act || (y[i] > 0.0f && (act != HERD_ACT_RELU6 || y[i] < 6.0f));
}

/* dout[i] as the fused activation act passes it back given its output y: the gradient or +0 */
static inline float bn_passed(const float *dout, const float *y, herd_act act, int i) {
    float gi = dout[i];
    return bn_pass(y, i, act) ? gi : 0.0f;
}

/* g[i mod 8] += dout[i]; gx[i mod 8] += dout[i] * xhat[i], xhat = (x - m) * rs in float; dout
 * masked by the fused activation act (output y) */
static void bn_grad_row(double g[BN_LANES], double gx[BN_LANES], const float *dout, const float *x, const float *y,
                        herd_act act, int n, float m, float rs) {
    int i = BN_ROW_VECTOR(bn_grad_avx512(g, gx, dout, x, y, act, n, m, rs));
    for (; i + BN_LANES <= n; i += BN_LANES)
        for (int k = 0; k < BN_LANES; k++) {
            float d = bn_passed(dout, y, act, i + k);
            g[k] += d;
            gx[k] += (double)d * ((x[i + k] - m) * rs);
        }
    for (; i < n; i++) {
        float d = bn_passed(dout, y, act, i);
        g[i % BN_LANES] += d;
        gx[i % BN_LANES] += (double)d * ((x[i] - m) * rs);
    }
}

typedef struct bn_job {
    float *out, *din, *mean, *rstd, *running_mean, *running_var, *dgamma, *dbeta;
    const float *in, *gamma, *beta, *dout, *mean_in, *rstd_in, *rmean_in, *rvar_in;
    const float *act_out; /* backward: the output of the fused activation act */
    herd_act act;         /* the ReLU or ReLU6 applied to the output (HERD_ACT_NONE: none) */
    int din_set;          /* backward: din written, not added to (bn_backward_fusion) */
    herd_act din_act;
    int B, C, HW;
    float momentum, eps;
    double *sums; /* batch sums (ex->batch_sum): per channel, completed over the ranks between phases */
    double count; /* values per channel over the whole batch */
} bn_job;

/* The phases of one channel's forward, the same arithmetic whether they run back to back (the
 * batch is this process's) or with each sum completed over the ranks in between. */
static double bn_channel_sum(const bn_job *j, int64_t c) {
    const size_t CHW = (size_t)j->C * j->HW;
    double a[BN_LANES] = {0};
    bn_sum_rows(a, j->in + (size_t)c * j->HW, j->B, CHW, j->HW);
    return bn_combine(a);
}

static double bn_channel_sqdev(const bn_job *j, int64_t c, double m) {
    const size_t CHW = (size_t)j->C * j->HW;
    double q[BN_LANES] = {0};
    bn_sq_rows(q, j->in + (size_t)c * j->HW, j->B, CHW, j->HW, m);
    return bn_combine(q);
}

/* mean m and sum of squared deviations ss over j->count values */
static void bn_channel_normalize(const bn_job *j, int64_t c, double m, double ss) {
    const size_t CHW = (size_t)j->C * j->HW;
    const double n = j->count, var = ss / n;
    float rs = (float)(1.0 / sqrt(var + j->eps));
    float g = j->gamma ? j->gamma[c] : 1.0f, be = j->beta ? j->beta[c] : 0.0f;
    float mf = (float)m, scale = g * rs, shift = be - mf * scale;
    const float *x = j->in + (size_t)c * j->HW;
    float *y = j->out + (size_t)c * j->HW;
    if (!BN_VECTOR(bn_scale_avx512(y, x, j->B, CHW, j->HW, scale, shift, j->act)))
        for (int b = 0; b < j->B; b++) {
            for (int i = 0; i < j->HW; i++) y[b * CHW + i] = x[b * CHW + i] * scale + shift;
            if (j->act) herdi_cpu_act_apply_inplace(y + b * CHW, j->HW, j->act);
        }
    if (j->mean) j->mean[c] = mf;
    if (j->rstd) j->rstd[c] = rs;
    if (j->running_mean) j->running_mean[c] = (1.0f - j->momentum) * j->running_mean[c] + j->momentum * mf;
    if (j->running_var) {
        double unbiased = n > 1 ? ss / (n - 1) : var;
        j->running_var[c] = (1.0f - j->momentum) * j->running_var[c] + j->momentum * (float)unbiased;
    }
}

static void bn_train_channels(void *ctx, int64_t c0, int64_t c1, int thread) {
    (void)thread;
    const bn_job *j = ctx;
    for (int64_t c = c0; c < c1; c++) {
        double m = bn_channel_sum(j, c) / j->count;
        bn_channel_normalize(j, c, m, bn_channel_sqdev(j, c, m));
    }
}

/* the synced phases: sums[c] = channel sums, then sums[C + 1 + c] = squared deviations from the
 * whole batch's mean sums[c] / count, then the normalisation */
static void bn_sum_channels(void *ctx, int64_t c0, int64_t c1, int thread) {
    (void)thread;
    const bn_job *j = ctx;
    for (int64_t c = c0; c < c1; c++) j->sums[c] = bn_channel_sum(j, c);
}

static void bn_sqdev_channels(void *ctx, int64_t c0, int64_t c1, int thread) {
    (void)thread;
    const bn_job *j = ctx;
    for (int64_t c = c0; c < c1; c++) j->sums[j->C + 1 + c] = bn_channel_sqdev(j, c, j->sums[c] / j->count);
}

static void bn_normalize_channels(void *ctx, int64_t c0, int64_t c1, int thread) {
    (void)thread;
    const bn_job *j = ctx;
    for (int64_t c = c0; c < c1; c++) bn_channel_normalize(j, c, j->sums[c] / j->count, j->sums[j->C + 1 + c]);
}

void herdi_cpu_batchnorm_forward_train(const herd_exec *ex, float *out, float *mean, float *rstd, float *running_mean,
                                 float *running_var, const float *in, const float *gamma, const float *beta, int B,
                                 int C, int HW, float momentum, float eps, herd_act act) {
    bn_job j = {.out = out, .mean = mean, .rstd = rstd, .running_mean = running_mean, .running_var = running_var,
                .in = in, .gamma = gamma, .beta = beta, .B = B, .C = C, .HW = HW, .momentum = momentum, .eps = eps, .act = act,
                .sums = ex->batch_scratch, .count = (double)B * HW};
    const int64_t ns = CPU_NS_PER_STREAM_ELEM((int64_t)B * C * HW);
    if (!ex->batch_sum) {
        cpu_for(ex, C, 4 * ns, bn_train_channels, &j);
        return;
    }
    /* SyncBatchNorm: each sum over the batch completed over the ranks (the count with the sums) */
    cpu_for(ex, C, ns, bn_sum_channels, &j);
    j.sums[C] = j.count;
    ex->batch_sum(ex->batch_sum_user, j.sums, C + 1);
    j.count = j.sums[C];
    cpu_for(ex, C, ns, bn_sqdev_channels, &j);
    ex->batch_sum(ex->batch_sum_user, j.sums + C + 1, C);
    cpu_for(ex, C, 2 * ns, bn_normalize_channels, &j);
}

/* Channel c of the eval forward as y = x * scale + shift. */
static void bn_eval_affine_channel(const float *gamma, const float *beta, const float *mean, const float *var, int64_t c,
                                   float eps, float *scale, float *shift) {
    float rs = 1.0f / sqrtf(var[c] + eps);
    float g = gamma ? gamma[c] : 1.0f, be = beta ? beta[c] : 0.0f;
    *scale = g * rs, *shift = be - mean[c] * *scale;
}

void herdi_cpu_batchnorm_eval_affine(float *scale, float *shift, const float *gamma, const float *beta,
                                     const float *running_mean, const float *running_var, int C, float eps) {
    for (int c = 0; c < C; c++)
        bn_eval_affine_channel(gamma, beta, running_mean, running_var, c, eps, &scale[c], &shift[c]);
}

static void bn_eval_channels(void *ctx, int64_t c0, int64_t c1, int thread) {
    (void)thread;
    const bn_job *j = ctx;
    const size_t CHW = (size_t)j->C * j->HW;
    for (int64_t c = c0; c < c1; c++) {
        float scale, shift;
        bn_eval_affine_channel(j->gamma, j->beta, j->rmean_in, j->rvar_in, c, j->eps, &scale, &shift);
        for (int b = 0; b < j->B; b++) {
            const float *x = j->in + b * CHW + (size_t)c * j->HW;
            float *y = j->out + b * CHW + (size_t)c * j->HW;
            for (int i = 0; i < j->HW; i++) y[i] = x[i] * scale + shift;
            if (j->act) herdi_cpu_act_apply_inplace(y, j->HW, j->act);
        }
    }
}

void herdi_cpu_batchnorm_forward_eval(const herd_exec *ex, float *out, const float *in, const float *gamma,
                                const float *beta, const float *running_mean, const float *running_var, int B, int C,
                                int HW, float eps, herd_act act) {
    bn_job j = {.out = out, .in = in, .gamma = gamma, .beta = beta, .rmean_in = running_mean,
                .rvar_in = running_var, .B = B, .C = C, .HW = HW, .eps = eps, .act = act};
    cpu_for(ex, C, CPU_NS_PER_STREAM_ELEM((int64_t)B * C * HW), bn_eval_channels, &j);
}

/* The two sums of channel c's backward: sum dout and sum dout * xhat (xhat in float). */
static void bn_grad_sums(const bn_job *j, int64_t c, double *sg, double *sgx) {
    const size_t CHW = (size_t)j->C * j->HW;
    double ag[BN_LANES] = {0}, agx[BN_LANES] = {0};
    for (int b = 0; b < j->B; b++) {
        const size_t at = b * CHW + (size_t)c * j->HW;
        bn_grad_row(ag, agx, j->dout + at, j->in + at, j->act ? j->act_out + at : NULL, j->act, j->HW, j->mean_in[c],
                    j->rstd_in[c]);
    }
    *sg = bn_combine(ag), *sgx = bn_combine(agx);
}

/* din += gamma*rstd * (dout - sg/n - xhat * sgx/n), sg and sgx the sums over the whole batch of n */
static void bn_channel_din(const bn_job *j, int64_t c, double sg, double sgx) {
    const size_t CHW = (size_t)j->C * j->HW;
    const float m = j->mean_in[c], rs = j->rstd_in[c];
    float gm = j->gamma ? j->gamma[c] : 1.0f;
    float k = gm * rs, mg = (float)(sg / j->count), mgx = (float)(sgx / j->count);
    for (int b = 0; b < j->B; b++) {
        const size_t at = b * CHW + (size_t)c * j->HW;
        const float *x = j->in + at, *g = j->dout + at, *y = j->act ? j->act_out + at : NULL;
        float *dx = j->din + at;
        int i = BN_ROW_VECTOR(bn_dx_avx512(dx, g, x, y, j->act, j->din_set, j->din_act, j->HW, k, mg, m, rs, mgx));
        for (; i < j->HW; i++) {
            float v = k * (bn_passed(g, y, j->act, i) - mg - (x[i] - m) * rs * mgx);
            if (!j->din_set) dx[i] += v;
            else dx[i] = bn_pass(x, i, j->din_act) ? 0.0f + v : 0.0f;
        }
    }
}

/* dbeta += sum dout; dgamma += sum dout*xhat (this process's rows); then din. */
static void bn_backward_channels(void *ctx, int64_t c0, int64_t c1, int thread) {
    (void)thread;
    const bn_job *j = ctx;
    for (int64_t c = c0; c < c1; c++) {
        double sg, sgx;
        bn_grad_sums(j, c, &sg, &sgx);
        if (j->dbeta) j->dbeta[c] += (float)sg;
        if (j->dgamma) j->dgamma[c] += (float)sgx;
        if (j->sums) j->sums[c] = sg, j->sums[j->C + c] = sgx; /* synced: din once the ranks' sums are in */
        else if (j->din) bn_channel_din(j, c, sg, sgx);
    }
}

static void bn_din_channels(void *ctx, int64_t c0, int64_t c1, int thread) {
    (void)thread;
    const bn_job *j = ctx;
    for (int64_t c = c0; c < c1; c++) bn_channel_din(j, c, j->sums[c], j->sums[j->C + c]);
}

void herdi_cpu_batchnorm_backward(const herd_exec *ex, float *din, float *dgamma, float *dbeta, float *dout,
                            const float *in, const float *mean, const float *rstd, const float *gamma, int B, int C,
                            int HW, const bn_backward_fusion *f) {
    const bn_backward_fusion none = {0};
    if (!f) f = &none;
    bn_job j = {.din = din, .dgamma = dgamma, .dbeta = dbeta, .dout = dout, .in = in, .mean_in = mean,
                .rstd_in = rstd, .gamma = gamma, .act_out = f->out, .act = f->act, .din_set = f->din_set,
                .din_act = f->din_act, .B = B, .C = C, .HW = HW, .count = (double)B * HW,
                .sums = ex->batch_sum ? ex->batch_scratch : NULL};
    const int64_t ns = CPU_NS_PER_STREAM_ELEM((int64_t)B * C * HW);
    cpu_for(ex, C, (j.sums ? 2 : 5) * ns, bn_backward_channels, &j);
    if (!j.sums) return;
    /* SyncBatchNorm: the two sums of din over the whole batch (dgamma and dbeta stay this rank's:
     * data parallel sums them with the other gradients) */
    j.sums[2 * C] = j.count;
    ex->batch_sum(ex->batch_sum_user, j.sums, 2 * C + 1);
    j.count = j.sums[2 * C];
    if (din) cpu_for(ex, C, 3 * ns, bn_din_channels, &j);
}
