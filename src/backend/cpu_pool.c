/* cpu max/avg pooling: one (b, c) plane per work item, a branch-light path for the
 * common 2x2 stride-2 unpadded window, AVX-512 rows for other windows with column stride 1 or 2
 * (ResNet's 3x3/2 pad 1); planes are disjoint so any split is exact. */
#include <math.h>
#include <string.h>

#include "cpu_internal.h"

#ifdef HAVE_AVX512_KERNEL
#include <immintrin.h>
#endif

typedef struct pool_job {
    const pool2d_dims *d;
    float *out, *din;
    int32_t *argmax;
    const int32_t *argmax_in;
    const float *in, *dout;
    const float *maxima; /* maxpool backward set: the forward's output, act's mask tested on it */
    herd_act act;
    int set;
} pool_job;

/* v replaces best when larger, or when it is the window's first NaN: NaN propagates as in
 * PyTorch, and the first one is kept, as ref does. Bitwise, not short-circuit, and used
 * through ?: below, so the compiler emits selects: the outcome is a coin flip on real data
 * and branches on it mispredicted half the time (~3 ns per output). */
static inline int takes_over(float v, float best) { return (v > best) | ((v != v) & (best == best)); }

/* Input rows (or columns) [*lo, *hi) under output o's window, clipped to [0, n). */
static inline void window(int o, int stride, int pad, int k, int n, int *lo, int *hi) {
    *lo = o * stride - pad;
    *hi = *lo + k;
    if (*lo < 0) *lo = 0;
    if (*hi > n) *hi = n;
}

/* every window whole: ceil mode's last one may be clipped, and takes the general loop */
static int is_2x2s2(const pool2d_dims *d) {
    return d->KH == 2 && d->KW == 2 && d->SH == 2 && d->SW == 2 && d->PH == 0 && d->PW == 0 && !d->ceil;
}

#ifdef HAVE_AVX512_KERNEL
/* 2x2 stride-2 max pooling of one plane, 16 outputs at a time: the two input rows are
 * split into even and odd columns and the four candidates compared in the scalar path's
 * order with the same NaN rule, so values and argmax match it exactly. Rows of fewer than 16
 * outputs (the example CNN's 7x7 and 3x3 pools) fill fewer lanes, and still take half the time
 * of 16 windows gathered across rows and planes (4 gathers of 16 floats each, slow on Zen: perf
 * samples of the example CNN's eval at batch 256 fell from 10.8% to 7.2% in pooling). */
static TARGET_AVX512 void maxpool_2x2_plane(float *y, int32_t *am, const float *x, int W, int OH, int OW) {
    const __m512i even = cpu_even_lanes();
    const __m512i odd = _mm512_add_epi32(even, _mm512_set1_epi32(1));
    for (int oh = 0; oh < OH; oh++) {
        const float *r0 = x + (size_t)(2 * oh) * W, *r1 = r0 + W;
        for (int ow = 0; ow < OW; ow += 16) {
            int n = OW - ow < 16 ? OW - ow : 16, lo = 2 * n < 16 ? 2 * n : 16, hi = 2 * n - lo;
            __mmask16 mlo = (__mmask16)((1u << lo) - 1), mhi = (__mmask16)((1u << hi) - 1);
            __mmask16 mout = (__mmask16)((1u << n) - 1);
            __m512 a0 = _mm512_maskz_loadu_ps(mlo, r0 + 2 * ow), a1 = _mm512_maskz_loadu_ps(mhi, r0 + 2 * ow + 16);
            __m512 b0 = _mm512_maskz_loadu_ps(mlo, r1 + 2 * ow), b1 = _mm512_maskz_loadu_ps(mhi, r1 + 2 * ow + 16);
            __m512 cand[3] = {_mm512_permutex2var_ps(a0, odd, a1), _mm512_permutex2var_ps(b0, even, b1),
                              _mm512_permutex2var_ps(b0, odd, b1)};
            __m512i idx = _mm512_add_epi32(even, _mm512_set1_epi32(2 * oh * W + 2 * ow));
            const int step[3] = {1, W, W + 1};
            __m512 best = _mm512_permutex2var_ps(a0, even, a1);
            __m512i at = idx;
            for (int k = 0; k < 3; k++) {
                __m512 v = cand[k];
                __mmask16 v_nan = _mm512_cmp_ps_mask(v, v, _CMP_UNORD_Q);
                __mmask16 best_nan = _mm512_cmp_ps_mask(best, best, _CMP_UNORD_Q);
                __mmask16 take = _mm512_cmp_ps_mask(v, best, _CMP_GT_OQ) | (v_nan & ~best_nan);
                best = _mm512_mask_mov_ps(best, take, v);
                at = _mm512_mask_mov_epi32(at, take, _mm512_add_epi32(idx, _mm512_set1_epi32(step[k])));
            }
            _mm512_mask_storeu_ps(y + (size_t)oh * OW + ow, mout, best);
            _mm512_mask_storeu_epi32(am + (size_t)oh * OW + ow, mout, at);
        }
    }
}
#endif

#ifdef HAVE_AVX512_KERNEL
/* Lanes [lo, hi) of 16 set. */
static inline __mmask16 lane_range(int lo, int hi) {
    if (lo < 0) lo = 0;
    if (hi > 16) hi = 16;
    return hi <= lo ? (__mmask16)0 : (__mmask16)(((1u << (hi - lo)) - 1) << lo);
}

/* Max pooling of one plane with any window, column stride 1 or 2 and padding (3x3 stride 2
 * pad 1: ResNet's stem), 16 outputs of a row at a time. Each window position (h, kw) is one
 * candidate vector: 16 (or 32, even lanes kept) consecutive input columns, masked to the
 * columns inside the image. Candidates are visited in the general loop's order (h, then w),
 * a lane's first valid one is taken whatever its value, and later ones by the same NaN rule,
 * so values and argmax match the general loop exactly, clipped (ceil mode) windows included. */
static TARGET_AVX512 void maxpool_rows_plane(float *y, int32_t *am, const float *x, const pool2d_dims *d) {
    const int H = d->H, W = d->W, OH = d->OH, OW = d->OW, SW = d->SW;
    const __m512i even = cpu_even_lanes();
    const __m512i lane = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
    const __m512i col_step = _mm512_mullo_epi32(lane, _mm512_set1_epi32(SW));
    for (int oh = 0; oh < OH; oh++) {
        int h0, h1;
        window(oh, d->SH, d->PH, d->KH, H, &h0, &h1);
        for (int ow0 = 0; ow0 < OW; ow0 += 16) {
            const int n = OW - ow0 < 16 ? OW - ow0 : 16;
            __m512 best = _mm512_set1_ps(-INFINITY);
            __m512i at = _mm512_set1_epi32(-1);
            __mmask16 have = 0;
            for (int h = h0; h < h1; h++) {
                const float *row = x + (size_t)h * W;
                for (int kw = 0; kw < d->KW; kw++) {
                    const int c0 = ow0 * SW - d->PW + kw; /* input column of lane 0 */
                    /* lanes whose column c0 + SW * l lies in [0, W) (and l < n) */
                    const int lo = c0 < 0 ? (-c0 + SW - 1) / SW : 0;
                    const int hi = W - c0 <= 0 ? 0 : (W - c0 + SW - 1) / SW;
                    const __mmask16 valid = lane_range(lo, hi < n ? hi : n);
                    if (!valid) continue;
                    __m512 v;
                    if (SW == 1) {
                        v = _mm512_maskz_loadu_ps(valid, row + c0);
                    } else { /* columns c0 + j, j in [0, 32), loaded where inside the row */
                        __mmask16 m0 = lane_range(-c0, W - c0), m1 = lane_range(-c0 - 16, W - c0 - 16);
                        __m512 a0 = _mm512_maskz_loadu_ps(m0, row + c0), a1 = _mm512_maskz_loadu_ps(m1, row + c0 + 16);
                        v = _mm512_permutex2var_ps(a0, even, a1);
                    }
                    __mmask16 v_nan = _mm512_cmp_ps_mask(v, v, _CMP_UNORD_Q);
                    __mmask16 best_nan = _mm512_cmp_ps_mask(best, best, _CMP_UNORD_Q);
                    __mmask16 take = valid & (~have | _mm512_cmp_ps_mask(v, best, _CMP_GT_OQ) | (v_nan & ~best_nan));
                    best = _mm512_mask_mov_ps(best, take, v);
                    at = _mm512_mask_mov_epi32(at, take, _mm512_add_epi32(_mm512_set1_epi32(h * W + c0), col_step));
                    have |= take;
                }
            }
            const __mmask16 mout = lane_range(0, n);
            _mm512_mask_storeu_ps(y + (size_t)oh * OW + ow0, mout, best);
            _mm512_mask_storeu_epi32(am + (size_t)oh * OW + ow0, mout, at);
        }
    }
}
#endif

/* Rows wide enough to fill most lanes, any window, column stride 1 or 2. */
static int use_vector_rows(const pool2d_dims *d) {
#ifdef HAVE_AVX512_KERNEL
    return !is_2x2s2(d) && (d->SW == 1 || d->SW == 2) && d->OW >= 8 && herdi_cpu_avx512_enabled();
#else
    (void)d;
    return 0;
#endif
}

static int use_vector_2x2(const pool2d_dims *d) {
#ifdef HAVE_AVX512_KERNEL
    return is_2x2s2(d) && herdi_cpu_avx512_enabled();
#else
    (void)d;
    return 0;
#endif
}

static void maxpool_forward_planes(void *ctx, int64_t p0, int64_t p1, int thread) {
    (void)thread;
    const pool_job *j = ctx;
    const pool2d_dims *d = j->d;
    const int H = d->H, W = d->W, OH = d->OH, OW = d->OW;
    for (int64_t p = p0; p < p1; p++) {
        const float *x = j->in + (size_t)p * H * W;
        float *y = j->out + (size_t)p * OH * OW;
        int32_t *am = j->argmax + (size_t)p * OH * OW;
#ifdef HAVE_AVX512_KERNEL
        if (use_vector_2x2(d)) {
            maxpool_2x2_plane(y, am, x, W, OH, OW);
            continue;
        }
        if (use_vector_rows(d)) {
            maxpool_rows_plane(y, am, x, d);
            continue;
        }
#endif
        if (is_2x2s2(d)) {
            for (int oh = 0; oh < OH; oh++) {
                const float *r0 = x + (size_t)(2 * oh) * W, *r1 = r0 + W;
                int base = 2 * oh * W;
                for (int ow = 0; ow < OW; ow++) {
                    /* same visiting order as the general loop: ties keep the first */
                    float best = r0[2 * ow];
                    int idx = base + 2 * ow, t;
                    float v = r0[2 * ow + 1];
                    t = takes_over(v, best);
                    best = t ? v : best;
                    idx = t ? base + 2 * ow + 1 : idx;
                    v = r1[2 * ow];
                    t = takes_over(v, best);
                    best = t ? v : best;
                    idx = t ? base + W + 2 * ow : idx;
                    v = r1[2 * ow + 1];
                    t = takes_over(v, best);
                    best = t ? v : best;
                    idx = t ? base + W + 2 * ow + 1 : idx;
                    y[oh * OW + ow] = best;
                    am[oh * OW + ow] = idx;
                }
            }
            continue;
        }
        for (int oh = 0; oh < OH; oh++) {
            int h0, h1;
            window(oh, d->SH, d->PH, d->KH, H, &h0, &h1);
            for (int ow = 0; ow < OW; ow++) {
                int w0, w1;
                window(ow, d->SW, d->PW, d->KW, W, &w0, &w1);
                float best = -INFINITY;
                int idx = -1;
                for (int h = h0; h < h1; h++)
                    for (int w = w0; w < w1; w++) {
                        float v = x[h * W + w];
                        if (idx < 0 || takes_over(v, best)) best = v, idx = h * W + w;
                    }
                y[oh * OW + ow] = best;
                am[oh * OW + ow] = idx;
            }
        }
    }
}

void herdi_cpu_maxpool2d_forward(const herd_exec *ex, float *out, int32_t *argmax, const float *in, const pool2d_dims *d) {
    pool_job j = {.d = d, .out = out, .argmax = argmax, .in = in};
    int64_t planes = (int64_t)d->B * d->C;
    int64_t reads = planes * d->OH * d->OW * d->KH * d->KW;
    /* the scalar loops cost ~3x a streaming pass per element, the AVX-512 2x2 path ~1x
     * (bench_backend: pool1 at batch 32, 0.24 vs 0.10 ms) */
    cpu_for(ex, planes, (use_vector_2x2(d) || use_vector_rows(d) ? 1 : 3) * CPU_NS_PER_STREAM_ELEM(reads),
            maxpool_forward_planes, &j);
}

static void maxpool_backward_planes(void *ctx, int64_t p0, int64_t p1, int thread) {
    (void)thread;
    const pool_job *j = ctx;
    const pool2d_dims *d = j->d;
    const size_t HW = (size_t)d->H * d->W, OHW = (size_t)d->OH * d->OW;
    for (int64_t p = p0; p < p1; p++) {
        float *dx = j->din + (size_t)p * HW;
        const float *g = j->dout + (size_t)p * OHW;
        const int32_t *am = j->argmax_in + (size_t)p * OHW;
        /* scalar on purpose: an AVX-512 gather/add/scatter measured 4x slower on Zen 5 */
        if (!j->set) {
            for (size_t i = 0; i < OHW; i++)
                if (am[i] >= 0) dx[am[i]] += g[i];
            continue;
        }
        /* the plane zeroed while in cache, then each window's one term added to that zero
         * (0 + -0 is +0, as the zeroed buffer's +=), masked as act_backward_inplace would */
        const float *y = j->maxima + (size_t)p * OHW; /* = the input at am[i] */
        memset(dx, 0, HW * sizeof *dx);
        for (size_t i = 0; i < OHW; i++)
            if (am[i] >= 0) dx[am[i]] = !j->act || cpu_act_passes(y[i], j->act) ? 0.0f + g[i] : 0.0f;
    }
}

static void maxpool_backward(const herd_exec *ex, pool_job *j) {
    if (!j->din) return;
    int64_t planes = (int64_t)j->d->B * j->d->C;
    /* the scattered += touches din's cache lines, so din's size sets the cost */
    cpu_for(ex, planes, CPU_NS_PER_STREAM_ELEM(planes * j->d->H * j->d->W), maxpool_backward_planes, j);
}

void herdi_cpu_maxpool2d_backward(const herd_exec *ex, float *din, const float *dout, const int32_t *argmax,
                            const pool2d_dims *d) {
    pool_job j = {.d = d, .din = din, .argmax_in = argmax, .dout = dout};
    maxpool_backward(ex, &j);
}

void herdi_cpu_maxpool2d_backward_set(const herd_exec *ex, float *din, const float *dout, const int32_t *argmax,
                                      const float *out, herd_act act, const pool2d_dims *d) {
    pool_job j = {.d = d, .din = din, .argmax_in = argmax, .dout = dout, .maxima = out, .act = act, .set = 1};
    maxpool_backward(ex, &j);
}

/* count_include_pad: the divisor is always KH*KW (a floor-mode window never reaches
 * past the padded border, so PyTorch's clipped window size equals it). */
static void avgpool_forward_planes(void *ctx, int64_t p0, int64_t p1, int thread) {
    (void)thread;
    const pool_job *j = ctx;
    const pool2d_dims *d = j->d;
    const int H = d->H, W = d->W, OH = d->OH, OW = d->OW;
    const float scale = 1.0f / (float)(d->KH * d->KW);
    for (int64_t p = p0; p < p1; p++) {
        const float *x = j->in + (size_t)p * H * W;
        float *y = j->out + (size_t)p * OH * OW;
        for (int oh = 0; oh < OH; oh++) {
            int h0, h1;
            window(oh, d->SH, d->PH, d->KH, H, &h0, &h1);
            for (int ow = 0; ow < OW; ow++) {
                int w0, w1;
                window(ow, d->SW, d->PW, d->KW, W, &w0, &w1);
                float s = 0.0f;
                for (int h = h0; h < h1; h++)
                    for (int w = w0; w < w1; w++) s += x[h * W + w];
                y[oh * OW + ow] = s * scale;
            }
        }
    }
}

void herdi_cpu_avgpool2d_forward(const herd_exec *ex, float *out, const float *in, const pool2d_dims *d) {
    pool_job j = {.d = d, .out = out, .in = in};
    int64_t planes = (int64_t)d->B * d->C;
    int64_t reads = planes * d->OH * d->OW * d->KH * d->KW;
    cpu_for(ex, planes, CPU_NS_PER_STREAM_ELEM(reads), avgpool_forward_planes, &j);
}

static void avgpool_backward_planes(void *ctx, int64_t p0, int64_t p1, int thread) {
    (void)thread;
    const pool_job *j = ctx;
    const pool2d_dims *d = j->d;
    const int H = d->H, W = d->W, OH = d->OH, OW = d->OW;
    const float scale = 1.0f / (float)(d->KH * d->KW);
    for (int64_t p = p0; p < p1; p++) {
        float *dx = j->din + (size_t)p * H * W;
        const float *g = j->dout + (size_t)p * OH * OW;
        for (int oh = 0; oh < OH; oh++) {
            int h0, h1;
            window(oh, d->SH, d->PH, d->KH, H, &h0, &h1);
            for (int ow = 0; ow < OW; ow++) {
                int w0, w1;
                window(ow, d->SW, d->PW, d->KW, W, &w0, &w1);
                float v = g[oh * OW + ow] * scale;
                for (int h = h0; h < h1; h++)
                    for (int w = w0; w < w1; w++) dx[h * W + w] += v;
            }
        }
    }
}

void herdi_cpu_avgpool2d_backward(const herd_exec *ex, float *din, const float *dout, const pool2d_dims *d) {
    if (!din) return;
    pool_job j = {.d = d, .din = din, .dout = dout};
    int64_t planes = (int64_t)d->B * d->C;
    int64_t writes = planes * d->OH * d->OW * d->KH * d->KW;
    cpu_for(ex, planes, CPU_NS_PER_STREAM_ELEM(writes), avgpool_backward_planes, &j);
}
