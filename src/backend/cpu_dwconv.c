/* cpu depthwise 3x3 convolution forward (the mobile models' depthwise layers: groups = input
 * channels = output channels, 3x3 kernel, stride 1 or 2, no dilation), AVX-512.
 *
 * cpu_conv_grouped.c's direct kernel handles any grouped shape, loading every tap of every
 * row under a mask computed per plane; on the small maps of mobilenet_v2 (14x14, 7x7, and the
 * stride-2 layers) that bookkeeping cost 3-8x ONNX Runtime's time per layer. Here each plane
 * is taken in strips of DW_STRIP output rows: the strip's input rows are copied into a
 * zero-bordered scratch on the stack (pitch a multiple of 16, the padding and the columns
 * past the row already zero), so every tap is a plain unaligned load; each output vector of 16
 * columns is bias + the 9 taps in (kh, kw) order, one FMA each (stride 2: two loads and the
 * even lanes), then the folded batch norm (a multiply then an add) and ReLU/ReLU6, and one
 * store (masked at the row's end). That is the order and the rounding of the grouped kernel's
 * AVX-512 form, a zero tap adding exactly zero in both, so the outputs keep their bits.
 * Maps at most 7 wide at stride 1 take two output rows a vector (dw_pairs), the same FMAs per lane.
 * One unit of work = one (image, channel) plane: at batch 1 the threads split the channels,
 * at batch 32 the planes of all images. */
#include "cpu_internal.h"

#include <string.h>

#ifdef HAVE_AVX512_KERNEL
#include <immintrin.h>

/* output rows a strip (independent FMA chains per 16 columns); widest output row taken; floats
 * of the stack scratch holding a band of input rows */
#define DW_STRIP 4
#define DW_MAX_OW 256
#define DW_BAND_FLOATS 16384

typedef struct dw_job {
    const conv2d_dims *d;
    float *out;
    const float *in, *w, *b;
    const conv2d_post *post;
} dw_job;

int herdi_cpu_dwconv_fits(const conv2d_dims *d) {
    return d->G == d->C && d->OC == d->C && d->KH == 3 && d->KW == 3 && d->DH <= 1 && d->DW <= 1 &&
           d->SH == d->SW && (d->SW == 1 || d->SW == 2) && d->PH <= 2 && d->PW <= 2 && d->OW <= DW_MAX_OW &&
           herdi_cpu_avx512_enabled();
}

/* Scratch row layout: stride 1, the padded row (column x = input column x - PW, zeros around);
 * stride 2, its even columns then, `half` floats on, its odd ones, so that output column o's
 * taps kw = 0, 1, 2 (padded columns 2o, 2o+1, 2o+2) are E[o], O[o], E[o+1]: plain loads. */
static inline int dw_tap_offset(int S, int kw, int half) { return S == 1 ? kw : kw == 1 ? half : kw / 2; }

/* One strip: output rows [0, R) of the band in scratch P (band row r*S + kh feeds output row r
 * at tap row kh), NCH chunks of 16 columns, stored at o (row pitch OW). */
static inline TARGET_AVX512 __attribute__((always_inline)) void dw_strip(
    const int S, const int R, const float *P, int pitch, int half, int nch, const __m512 *wv, __m512 bias, __m512 sc,
    __m512 sh, int scaled, herd_act act, float *o, int OW, __mmask16 last) {
    for (int ch = 0; ch < nch; ch++) {
        __m512 acc[DW_STRIP];
        for (int r = 0; r < R; r++) acc[r] = bias;
        for (int kh = 0; kh < 3; kh++)
            for (int kw = 0; kw < 3; kw++)
                for (int r = 0; r < R; r++) {
                    const float *p = P + (size_t)(r * S + kh) * pitch + ch * 16 + dw_tap_offset(S, kw, half);
                    acc[r] = _mm512_fmadd_ps(wv[kh * 3 + kw], _mm512_loadu_ps(p), acc[r]);
                }
        const __mmask16 m = ch == nch - 1 ? last : (__mmask16)0xFFFF;
        for (int r = 0; r < R; r++) {
            __m512 v = acc[r];
            if (scaled) v = _mm512_add_ps(_mm512_mul_ps(v, sc), sh); /* the batch norm's multiply then add */
            _mm512_mask_storeu_ps(o + (size_t)r * OW + ch * 16, m, cpu_act_vec16(v, act));
        }
    }
}

/* Maps at most 7 wide at stride 1 (mobilenet_v2's 7x7 layers, where a vector a row leaves 9 of 16
 * lanes idle): the scratch rows are the padded rows themselves, pitch = OW + 2 floats, so one load
 * at row y, column kw holds row y's taps in lanes [0, OW) and row y+1's in [pitch, pitch + OW):
 * one vector computes two output rows, the same FMAs in the same order per lane as dw_strip. R
 * pairs of rows [0, rows) of the strip (rows = 2R, or 2R - 1 at the end), the lanes of each
 * pair gathered (perm) into the two output rows, which lie next to each other at o. */
static inline TARGET_AVX512 __attribute__((always_inline)) void dw_pairs(
    const int R, const float *P, int pitch, const __m512 *wv, __m512 bias, __m512 sc, __m512 sh, int scaled,
    herd_act act, float *o, int OW, int rows, __m512i perm) {
    __m512 acc[DW_STRIP];
    for (int r = 0; r < R; r++) acc[r] = bias;
    for (int kh = 0; kh < 3; kh++)
        for (int kw = 0; kw < 3; kw++)
            for (int r = 0; r < R; r++)
                acc[r] = _mm512_fmadd_ps(wv[kh * 3 + kw], _mm512_loadu_ps(P + (size_t)(2 * r + kh) * pitch + kw), acc[r]);
    for (int r = 0; r < R; r++) {
        __m512 v = acc[r];
        if (scaled) v = _mm512_add_ps(_mm512_mul_ps(v, sc), sh); /* the batch norm's multiply then add */
        const int n = (rows - 2 * r < 2 ? rows - 2 * r : 2) * OW;
        _mm512_mask_storeu_ps(o + (size_t)2 * r * OW, (__mmask16)((1u << n) - 1),
                              _mm512_permutexvar_ps(perm, cpu_act_vec16(v, act)));
    }
}

/* The 16 lanes of a load at column q0 of a row of W floats that lie inside it. */
static inline __mmask16 dw_lanes(int q0, int W) {
    int lo = q0 < 0 ? -q0 : 0, hi = W - q0 < 16 ? W - q0 : 16;
    return hi <= lo ? 0 : (__mmask16)(((1u << hi) - 1) & ~((1u << lo) - 1));
}

/* Input row ih of plane ip (W floats) into scratch row dst in its layout (read from the input
 * under masks, so that nothing just stored is reloaded); zeros outside the image. */
static inline TARGET_AVX512 void dw_copy_row(float *dst, const float *ip, int ih, const conv2d_dims *d, int half) {
    const int W = d->W, PW = d->PW;
    if (ih < 0 || ih >= d->H) {
        memset(dst, 0, sizeof(float) * (size_t)(d->SW == 1 ? PW + W : 2 * half));
        return;
    }
    const float *src = ip + (size_t)ih * W;
    if (d->SW == 1) {
        for (int x = 0; x < W; x += 16) {
            const __mmask16 m = dw_lanes(x, W);
            _mm512_mask_storeu_ps(dst + PW + x, m, _mm512_maskz_loadu_ps(m, src + x));
        }
        return;
    }
    const __m512i even = cpu_even_lanes(), odd = _mm512_add_epi32(even, _mm512_set1_epi32(1));
    for (int i = 0; 2 * i - PW < W; i += 16) { /* padded columns 2i.. are input columns 2i - PW.. */
        const int q0 = 2 * i - PW;
        const __m512 a = _mm512_maskz_loadu_ps(dw_lanes(q0, W), src + q0);
        const __m512 b = _mm512_maskz_loadu_ps(dw_lanes(q0 + 16, W), src + q0 + 16);
        _mm512_storeu_ps(dst + i, _mm512_permutex2var_ps(a, even, b));
        _mm512_storeu_ps(dst + half + i, _mm512_permutex2var_ps(a, odd, b));
    }
}

static TARGET_AVX512 void dw_units(void *ctx, int64_t u0, int64_t u1, int thread) {
    (void)thread;
    const dw_job *j = ctx;
    const conv2d_dims *d = j->d;
    const int C = d->C, H = d->H, W = d->W, OH = d->OH, OW = d->OW, S = d->SW;
    const int nch = (OW + 15) / 16, pairs = S == 1 && 2 * OW + 2 <= 16; /* dw_pairs */
    /* a chunk's loads reach 16 * nch + 1 (stride 1: column 16 * (nch - 1) + 2 + 15) */
    const int half = 16 * nch + 16, pitch = pairs ? OW + 2 : S == 1 ? 16 * nch + 16 : 2 * half;
    /* output rows whose input rows the scratch holds (pairs: a load reaches 2 rows + 17 floats past its row) */
    int band = pairs ? DW_BAND_FLOATS / pitch - 8 : (DW_BAND_FLOATS / pitch - 3) / S + 1;
    if (band > OH) band = OH;
    __m512i perm = _mm512_setzero_si512(); /* dw_pairs: lanes [0, OW) and [pitch, pitch + OW) side by side */
    if (pairs) {
        int idx[16] = {0};
        for (int i = 0; i < OW; i++) idx[i] = i, idx[OW + i] = pitch + i;
        perm = _mm512_loadu_si512(idx);
    }
    float P[DW_BAND_FLOATS] __attribute__((aligned(64)));
    size_t zero = (size_t)((band - 1) * S + 3) * pitch;
    if (pairs) zero += 2 * (size_t)pitch + 16; /* the lanes a last single row's vector reads past the band */
    memset(P, 0, sizeof(float) * zero);
    const __mmask16 last = (__mmask16)((1u << (OW - 16 * (nch - 1))) - 1);
    const conv2d_post *post = j->post;
    const herd_act act = post ? post->act : HERD_ACT_NONE;
    const int scaled = post && post->scale;
    for (int64_t u = u0; u < u1; u++) {
        const int c = (int)(u % C);
        const float *ip = j->in + u * H * W;
        float *op = j->out + u * OH * OW;
        __m512 wv[9];
        for (int k = 0; k < 9; k++) wv[k] = _mm512_set1_ps(j->w[(size_t)c * 9 + k]);
        const __m512 bias = _mm512_set1_ps(j->b ? j->b[c] : 0.0f);
        const __m512 sc = _mm512_set1_ps(scaled ? post->scale[c] : 1.0f), sh = _mm512_set1_ps(scaled ? post->shift[c] : 0.0f);
        for (int b0 = 0; b0 < OH; b0 += band) {
            const int nb = OH - b0 < band ? OH - b0 : band;
            for (int r = 0; r < (nb - 1) * S + 3; r++) dw_copy_row(P + (size_t)r * pitch, ip, b0 * S - d->PH + r, d, half);
            for (int s0 = 0; pairs && s0 < nb; s0 += 2 * DW_STRIP) {
                const int R = nb - s0 < 2 * DW_STRIP ? nb - s0 : 2 * DW_STRIP, Rp = (R + 1) / 2;
                const float *Ps = P + (size_t)s0 * pitch;
                float *o = op + (size_t)(b0 + s0) * OW;
#define DW_PAIRS(r)                                                                                                    \
    if (Rp == r) {                                                                                                     \
        dw_pairs(r, Ps, pitch, wv, bias, sc, sh, scaled, act, o, OW, R, perm);                                         \
        continue;                                                                                                      \
    }
                DW_PAIRS(4) DW_PAIRS(3) DW_PAIRS(2) DW_PAIRS(1)
#undef DW_PAIRS
            }
            for (int s0 = 0; !pairs && s0 < nb; s0 += DW_STRIP) {
                const int R = nb - s0 < DW_STRIP ? nb - s0 : DW_STRIP;
                const float *Ps = P + (size_t)s0 * S * pitch;
                float *o = op + (size_t)(b0 + s0) * OW;
#define DW_CASE(s, r)                                                                                                  \
    if (S == s && R == r) {                                                                                            \
        dw_strip(s, r, Ps, pitch, half, nch, wv, bias, sc, sh, scaled, act, o, OW, last);                              \
        continue;                                                                                                      \
    }
                DW_CASE(1, 4) DW_CASE(1, 3) DW_CASE(1, 2) DW_CASE(1, 1)
                DW_CASE(2, 4) DW_CASE(2, 3) DW_CASE(2, 2) DW_CASE(2, 1)
#undef DW_CASE
            }
        }
    }
}

void herdi_cpu_dwconv_forward(const herd_exec *ex, float *out, const float *in, const float *w, const float *b,
                              const conv2d_dims *d, const conv2d_post *post) {
    dw_job j = {.d = d, .out = out, .in = in, .w = w, .b = b, .post = post};
    /* a few times the gemm's cost per MAC (loads and stores per 9 MACs), plus ~100 ns a plane for its
     * set-up and band copies: a 7x7 plane takes ~130 ns, which the MACs alone put at 30 (mobilenet_v2's
     * 576 channels 14x14 -> 7x7 ran on one thread while the other waited) */
    const int64_t planes = (int64_t)d->B * d->C;
    cpu_for(ex, planes, 2 * CPU_NS_PER_MAC(planes * d->OH * d->OW * 9) + 100 * planes, dw_units, &j);
}
#else
int herdi_cpu_dwconv_fits(const conv2d_dims *d) {
    (void)d;
    return 0;
}

void herdi_cpu_dwconv_forward(const herd_exec *ex, float *out, const float *in, const float *w, const float *b,
                              const conv2d_dims *d, const conv2d_post *post) {
    (void)ex, (void)out, (void)in, (void)w, (void)b, (void)d, (void)post;
}
#endif
