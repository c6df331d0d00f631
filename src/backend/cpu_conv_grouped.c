/* cpu conv2d with groups or dilation (depthwise and grouped convolutions of the mobile
 * models, dilated ones), and the conv entries of the cpu backend's table: a convolution
 * without either goes to the sgemm path of cpu_conv2d.c unchanged, one with them comes here.
 * Direct loops, one output plane, input plane or weight block per unit of work: a
 * depthwise 3x3 has 9 multiply-adds per output, too few for im2col + sgemm to pay. Each
 * unit writes only its own elements and sums in a fixed order, so results do not depend on
 * the threads. No workspace. The forward of column stride 1 or 2 has an AVX-512 form (16
 * outputs of a row in one register through every tap, bias and the fused ReLU/ReLU6 applied
 * before the one store; the edges are masked loads) when the cpu backend uses AVX-512. */
#include "cpu_internal.h"

#ifdef HAVE_AVX512_KERNEL
#include <immintrin.h>
#endif

typedef struct convg_job {
    const conv2d_dims *d;
    float *out, *din, *dw, *db;
    const float *in, *w, *b, *dout;
    herd_act act; /* forward: the fused ReLU/ReLU6 (HERD_ACT_NONE: none) */
    const float *scale, *shift; /* forward: a folded batch norm applied before act (conv2d_post), or NULL */
} convg_job;

/* Output positions [*lo, *hi) of one row whose tap k (dilated by dil) lands inside [0, n):
 * i = o*s - p + k*dil. */
static void tap_range(int k, int s, int p, int dil, int n, int O, int *lo, int *hi) {
    int a = p - k * dil, top = n - 1 + p - k * dil;
    int o0 = a > 0 ? (a + s - 1) / s : 0, o1 = top >= 0 ? top / s + 1 : 0;
    if (o1 > O) o1 = O;
    if (o1 < o0) o1 = o0;
    *lo = o0, *hi = o1;
}

/* One output row: o[ow] += w * row[ow*SW] for ow in [ow0, ow1) (row already offset by the tap). */
static inline void row_axpy(float *restrict o, const float *restrict row, float w, int ow0, int ow1, int SW) {
    if (SW == 1)
        for (int ow = ow0; ow < ow1; ow++) o[ow] += w * row[ow];
    else if (SW == 2)
        for (int ow = ow0; ow < ow1; ow++) o[ow] += w * row[2 * (int64_t)ow];
    else
        for (int ow = ow0; ow < ow1; ow++) o[ow] += w * row[(int64_t)ow * SW];
}

/* unit u = (image n, output channel oc): out plane = bias + sum over the group's channels and
 * taps, in that order for every output; row by row, so that the row being summed stays in L1
 * while every tap of every channel is added to it (a depthwise 3x3 on a 112x112 map: 9 passes
 * over one 448-byte row, not over the whole 49 KB plane) */
static void convg_forward_units(void *ctx, int64_t u0, int64_t u1, int thread) {
    (void)thread;
    const convg_job *j = ctx;
    const conv2d_dims *d = j->d;
    const int G = d->G, Cg = d->C / G, OCg = d->OC / G, H = d->H, W = d->W, OH = d->OH, OW = d->OW;
    const int KH = d->KH, KW = d->KW, SW = d->SW;
    for (int64_t u = u0; u < u1; u++) {
        int n = (int)(u / d->OC), oc = (int)(u % d->OC);
        const float *inp = j->in + ((int64_t)n * d->C + (int64_t)(oc / OCg) * Cg) * H * W;
        const float *wp = j->w + (int64_t)oc * Cg * KH * KW;
        float bias = j->b ? j->b[oc] : 0.0f;
        for (int oh = 0; oh < OH; oh++) {
            float *o = j->out + u * OH * OW + (int64_t)oh * OW;
            for (int i = 0; i < OW; i++) o[i] = bias;
            for (int c = 0; c < Cg; c++)
                for (int kh = 0; kh < KH; kh++) {
                    int ih = oh * d->SH - d->PH + kh * d->DH;
                    if (ih < 0 || ih >= H) continue;
                    const float *row = inp + ((int64_t)c * H + ih) * W;
                    for (int kw = 0; kw < KW; kw++) {
                        int ow0, ow1;
                        tap_range(kw, SW, d->PW, d->DW, W, OW, &ow0, &ow1);
                        row_axpy(o, row - d->PW + kw * d->DW, wp[(c * KH + kh) * KW + kw], ow0, ow1, SW);
                    }
                }
            const conv2d_post post = {.scale = j->scale, .shift = j->shift, .act = j->act};
            herdi_cpu_post_plane(o, OW, &post, oc);
        }
    }
}

#ifdef HAVE_AVX512_KERNEL
/* Bits [lo, hi) of a 32-bit lane mask (none when hi <= lo). */
static inline uint32_t lane_bits(int lo, int hi) {
    if (lo < 0) lo = 0;
    if (hi > 32) hi = 32;
    if (hi <= lo) return 0;
    return (uint32_t)((((uint64_t)1 << hi) - 1) & ~(((uint64_t)1 << lo) - 1));
}

/* Kernels wider than this take the scalar loops (the load masks of a column block are kept
 * per tap: KW x 8). */
#define CONVG_MAX_KW 8

/* One tile of convg_forward_units_avx512: rows [oh0, oh0 + rb) (rb <= RB) by NCH chunks of 16
 * outputs from column o0, one accumulator each (RB * NCH <= 8 independent FMA chains hide the
 * FMA latency); every lane sums bias + the taps in the same (c, kh, kw) order. mask[kw * NCH +
 * ch]: the input columns of chunk ch at tap kw that lie inside the row (32 bits for stride 2:
 * 31 consecutive floats, the even lanes kept). Masked lanes are never touched. */
static inline TARGET_AVX512 __attribute__((always_inline)) void convg_tile(
    const int RB, const int NCH, const int SW, const convg_job *j, const float *inp, const float *wp, __m512 bias,
    __m512 sc, __m512 sh, float *outp, int oh0, int rb, int o0, const uint32_t *mask, __mmask16 last) {
    const conv2d_dims *d = j->d;
    const int Cg = d->C / d->G, H = d->H, W = d->W, OW = d->OW, KH = d->KH, KW = d->KW;
    const __m512i even = cpu_even_lanes();
    __m512 acc[RB][NCH];
    for (int r = 0; r < RB; r++)
        for (int ch = 0; ch < NCH; ch++) acc[r][ch] = bias;
    for (int c = 0; c < Cg; c++)
        for (int kh = 0; kh < KH; kh++) {
            const float *rowp[RB];
            for (int r = 0; r < RB; r++) {
                int ih = (oh0 + r) * d->SH - d->PH + kh * d->DH;
                rowp[r] = r < rb && ih >= 0 && ih < H ? inp + ((int64_t)c * H + ih) * W + o0 * SW - d->PW : NULL;
            }
            for (int kw = 0; kw < KW; kw++) {
                const __m512 wv = _mm512_set1_ps(wp[(c * KH + kh) * KW + kw]);
                const int off = kw * d->DW;
                for (int r = 0; r < RB; r++) {
                    if (!rowp[r]) continue;
                    for (int ch = 0; ch < NCH; ch++) {
                        const float *p = rowp[r] + off + ch * 16 * SW;
                        uint32_t m = mask[kw * NCH + ch];
                        __m512 x;
                        if (SW == 1) {
                            x = _mm512_maskz_loadu_ps((__mmask16)m, p);
                        } else {
                            __m512 a0 = _mm512_maskz_loadu_ps((__mmask16)m, p);
                            __m512 a1 = _mm512_maskz_loadu_ps((__mmask16)(m >> 16), p + 16);
                            x = _mm512_permutex2var_ps(a0, even, a1);
                        }
                        acc[r][ch] = _mm512_fmadd_ps(wv, x, acc[r][ch]);
                    }
                }
            }
        }
    for (int r = 0; r < RB; r++) {
        if (r >= rb) break;
        float *o = outp + (int64_t)(oh0 + r) * OW + o0;
        for (int ch = 0; ch < NCH; ch++) {
            __m512 v = acc[r][ch];
            if (j->scale) v = _mm512_add_ps(_mm512_mul_ps(v, sc), sh); /* the batch norm's multiply then add */
            v = cpu_act_vec16(v, j->act); /* as herdi_cpu_act_apply_inplace */
            _mm512_mask_storeu_ps(o + ch * 16, ch == NCH - 1 ? last : (__mmask16)0xFFFF, v);
        }
    }
}

/* Rows of a tile for NCH chunks: 8 accumulators in all. */
#define CONVG_ROWS(nch) ((nch) >= 5 ? 1 : 8 / (nch))

static inline TARGET_AVX512 __attribute__((always_inline)) void convg_block(
    const int NCH, const int SW, const convg_job *j, const float *inp, const float *wp, __m512 bias, __m512 sc,
    __m512 sh, float *outp, int o0, const uint32_t *mask, __mmask16 last) {
    for (int oh = 0; oh < j->d->OH; oh += CONVG_ROWS(NCH)) {
        int rb = j->d->OH - oh < CONVG_ROWS(NCH) ? j->d->OH - oh : CONVG_ROWS(NCH);
        convg_tile(CONVG_ROWS(NCH), NCH, SW, j, inp, wp, bias, sc, sh, outp, oh, rb, o0, mask, last);
    }
}

/* The forward of convg_forward_units with AVX-512: each output plane in column blocks of up to
 * 8 chunks of 16, each block in tiles of rows (convg_tile). Column stride 1 or 2, KW <=
 * CONVG_MAX_KW. */
static TARGET_AVX512 void convg_forward_units_avx512(void *ctx, int64_t u0, int64_t u1, int thread) {
    (void)thread;
    const convg_job *j = ctx;
    const conv2d_dims *d = j->d;
    const int Cg = d->C / d->G, OCg = d->OC / d->G, H = d->H, W = d->W, OW = d->OW, KH = d->KH, KW = d->KW;
    const int SW = d->SW;
    uint32_t mask[CONVG_MAX_KW * 8];
    for (int64_t u = u0; u < u1; u++) {
        int n = (int)(u / d->OC), oc = (int)(u % d->OC);
        const float *inp = j->in + ((int64_t)n * d->C + (int64_t)(oc / OCg) * Cg) * H * W;
        const float *wp = j->w + (int64_t)oc * Cg * KH * KW;
        const __m512 bias = _mm512_set1_ps(j->b ? j->b[oc] : 0.0f);
        const __m512 sc = _mm512_set1_ps(j->scale ? j->scale[oc] : 1.0f), sh = _mm512_set1_ps(j->scale ? j->shift[oc] : 0.0f);
        float *outp = j->out + u * d->OH * OW;
        for (int o0 = 0; o0 < OW; o0 += 128) {
            const int nch = (OW - o0 < 128 ? OW - o0 + 15 : 128) / 16, nl = OW - o0 - 16 * (nch - 1);
            for (int kw = 0; kw < KW; kw++)
                for (int ch = 0; ch < nch; ch++) { /* the chunk's outputs read columns at + SW * [0, lanes) */
                    int at = (o0 + 16 * ch) * SW - d->PW + kw * d->DW, lanes = ch == nch - 1 ? nl : 16;
                    int span = SW * (lanes - 1) + 1;
                    mask[kw * nch + ch] = lane_bits(-at, W - at < span ? W - at : span);
                }
            const __mmask16 last = (__mmask16)lane_bits(0, nl);
#define CONVG_CASE(k)                                                                                              \
    case k:                                                                                                        \
        if (SW == 1) convg_block(k, 1, j, inp, wp, bias, sc, sh, outp, o0, mask, last);                            \
        else convg_block(k, 2, j, inp, wp, bias, sc, sh, outp, o0, mask, last);                                    \
        break;
            switch (nch) {
                CONVG_CASE(1) CONVG_CASE(2) CONVG_CASE(3) CONVG_CASE(4)
                CONVG_CASE(5) CONVG_CASE(6) CONVG_CASE(7) CONVG_CASE(8)
            default: break;
            }
#undef CONVG_CASE
        }
    }
}
#endif

/* unit u = (image n, input channel c): din plane += the taps of the group's outputs, scattered */
static void convg_din_units(void *ctx, int64_t u0, int64_t u1, int thread) {
    (void)thread;
    const convg_job *j = ctx;
    const conv2d_dims *d = j->d;
    const int G = d->G, Cg = d->C / G, OCg = d->OC / G, H = d->H, W = d->W, OH = d->OH, OW = d->OW;
    const int KH = d->KH, KW = d->KW, SW = d->SW;
    for (int64_t u = u0; u < u1; u++) {
        int n = (int)(u / d->C), c = (int)(u % d->C), oc0 = c / Cg * OCg, cl = c % Cg;
        float *dp = j->din + u * H * W;
        for (int oc = oc0; oc < oc0 + OCg; oc++) {
            const float *g = j->dout + ((int64_t)n * d->OC + oc) * OH * OW;
            const float *wp = j->w + ((int64_t)oc * Cg + cl) * KH * KW;
            for (int kh = 0; kh < KH; kh++) {
                int oh0, oh1;
                tap_range(kh, d->SH, d->PH, d->DH, H, OH, &oh0, &oh1);
                for (int kw = 0; kw < KW; kw++) {
                    int ow0, ow1;
                    tap_range(kw, SW, d->PW, d->DW, W, OW, &ow0, &ow1);
                    const float wv = wp[kh * KW + kw];
                    for (int oh = oh0; oh < oh1; oh++) {
                        float *row = dp + (int64_t)(oh * d->SH - d->PH + kh * d->DH) * W - d->PW + kw * d->DW;
                        const float *grow = g + (int64_t)oh * OW;
                        if (SW == 1)
                            for (int ow = ow0; ow < ow1; ow++) row[ow] += wv * grow[ow];
                        else
                            for (int ow = ow0; ow < ow1; ow++) row[(int64_t)ow * SW] += wv * grow[ow];
                    }
                }
            }
        }
    }
}

/* unit = output channel oc: its weights (Cg, KH, KW) and bias, each one sum over the batch in
 * image order, kept in double */
static void convg_dw_units(void *ctx, int64_t u0, int64_t u1, int thread) {
    (void)thread;
    const convg_job *j = ctx;
    const conv2d_dims *d = j->d;
    const int G = d->G, Cg = d->C / G, OCg = d->OC / G, H = d->H, W = d->W, OH = d->OH, OW = d->OW;
    const int KH = d->KH, KW = d->KW, SW = d->SW;
    for (int64_t oc = u0; oc < u1; oc++) {
        if (j->db) {
            double acc = 0.0;
            for (int n = 0; n < d->B; n++) {
                const float *g = j->dout + ((int64_t)n * d->OC + oc) * OH * OW;
                for (int i = 0; i < OH * OW; i++) acc += g[i];
            }
            j->db[oc] += (float)acc;
        }
        if (!j->dw) continue;
        const int ci0 = (int)(oc / OCg) * Cg;
        for (int c = 0; c < Cg; c++)
            for (int kh = 0; kh < KH; kh++) {
                int oh0, oh1;
                tap_range(kh, d->SH, d->PH, d->DH, H, OH, &oh0, &oh1);
                for (int kw = 0; kw < KW; kw++) {
                    int ow0, ow1;
                    tap_range(kw, SW, d->PW, d->DW, W, OW, &ow0, &ow1);
                    double acc = 0.0;
                    for (int n = 0; n < d->B; n++) {
                        const float *g = j->dout + ((int64_t)n * d->OC + oc) * OH * OW;
                        const float *inp = j->in + ((int64_t)n * d->C + ci0 + c) * H * W;
                        for (int oh = oh0; oh < oh1; oh++) {
                            const float *row = inp + (int64_t)(oh * d->SH - d->PH + kh * d->DH) * W - d->PW + kw * d->DW;
                            const float *grow = g + (int64_t)oh * OW;
                            float s = 0.0f;
                            for (int ow = ow0; ow < ow1; ow++) s += grow[ow] * row[(int64_t)ow * SW];
                            acc += s;
                        }
                    }
                    j->dw[((oc * Cg + c) * KH + kh) * KW + kw] += (float)acc;
                }
            }
    }
}

static int64_t convg_macs(const conv2d_dims *d) {
    return (int64_t)d->B * d->OC * d->OH * d->OW * (d->C / d->G) * d->KH * d->KW;
}

static void convg_forward(const herd_exec *ex, float *out, const float *in, const float *w, const float *b,
                          const conv2d_dims *d, const conv2d_post *post) {
    if (herdi_cpu_dwconv_fits(d)) { /* depthwise 3x3: cpu_dwconv.c, the same sums */
        herdi_cpu_dwconv_forward(ex, out, in, w, b, d, post);
        return;
    }
    convg_job j = {.d = d, .out = out, .in = in, .w = w, .b = b, .act = post ? post->act : HERD_ACT_NONE,
                   .scale = post ? post->scale : NULL, .shift = post ? post->shift : NULL};
    herd_range_fn fn = convg_forward_units;
#ifdef HAVE_AVX512_KERNEL
    if ((d->SW == 1 || d->SW == 2) && d->KW <= CONVG_MAX_KW && herdi_cpu_avx512_enabled()) fn = convg_forward_units_avx512;
#endif
    /* direct loops run at a fraction of the gemm's rate: 4 times its per-MAC cost */
    cpu_for(ex, (int64_t)d->B * d->OC, 4 * CPU_NS_PER_MAC(convg_macs(d)), fn, &j);
}

static void convg_backward(const herd_exec *ex, float *din, float *dw, float *db, const float *dout, const float *in,
                           const float *w, const conv2d_dims *d) {
    convg_job j = {.d = d, .din = din, .dw = dw, .db = db, .dout = dout, .in = in, .w = w};
    if (dw || db) cpu_for(ex, d->OC, 4 * CPU_NS_PER_MAC(convg_macs(d)), convg_dw_units, &j);
    if (din) cpu_for(ex, (int64_t)d->B * d->C, 4 * CPU_NS_PER_MAC(convg_macs(d)), convg_din_units, &j);
}

/* ---- the backend's conv entries ---- */

size_t herdi_cpu_conv_workspace(const conv2d_dims *d, int threads) {
    return conv2d_is_grouped(d) ? 0 : herdi_cpu_conv2d_workspace(d, threads);
}

size_t herdi_cpu_conv_prepared(const conv2d_dims *d) { return conv2d_is_grouped(d) ? 0 : herdi_cpu_conv2d_prepared(d); }

void herdi_cpu_conv_forward(const herd_exec *ex, float *out, const float *in, const float *w, const float *b,
                      const conv2d_dims *d) {
    if (conv2d_is_grouped(d)) convg_forward(ex, out, in, w, b, d, NULL);
    else herdi_cpu_conv2d_forward(ex, out, in, w, b, d);
}

void herdi_cpu_conv_forward_act(const herd_exec *ex, float *out, const float *in, const float *w, const float *b,
                          const conv2d_dims *d, const conv2d_post *post) {
    if (conv2d_is_grouped(d)) convg_forward(ex, out, in, w, b, d, post);
    else herdi_cpu_conv2d_forward_act(ex, out, in, w, b, d, post);
}

void herdi_cpu_conv_backward(const herd_exec *ex, float *din, float *dw, float *db, const float *dout, const float *in,
                       const float *w, const conv2d_dims *d) {
    if (conv2d_is_grouped(d)) convg_backward(ex, din, dw, db, dout, in, w, d);
    else herdi_cpu_conv2d_backward(ex, din, dw, db, dout, in, w, d);
}

void herdi_cpu_conv_backward_act(const herd_exec *ex, float *din, float *dw, float *db, float *dout, const float *out,
                           const float *in, const float *w, const conv2d_dims *d, herd_act act) {
    if (!conv2d_is_grouped(d)) {
        herdi_cpu_conv2d_backward_act(ex, din, dw, db, dout, out, in, w, d, act);
        return;
    }
    herdi_cpu_act_backward_inplace(ex, dout, out, (int64_t)d->B * d->OC * d->OH * d->OW, act);
    convg_backward(ex, din, dw, db, dout, in, w, d);
}
