/* Separable triangle-filter resampling with PIL's coefficients (libImaging/Resample.c,
 * precompute_coeffs): support 1 scaled by the shrink factor, taps clipped to the image and
 * renormalised. Vertical pass first, one output row at a time (it runs over whole rows, which
 * the compiler vectorises), then the horizontal pass over that row. Sources are f32 planes or
 * decoded u8 pixels (interleaved, read as they are: no float copy of the image). */
#include "data/resample.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

typedef struct taps {
    int *first; /* first source index of output i */
    int *count; /* taps of output i */
    float *w;   /* ksize weights per output */
    int ksize;
    double *scratch; /* ksize */
} taps;

static double triangle(double x) {
    x = fabs(x);
    return x < 1.0 ? 1.0 - x : 0.0;
}

/* PIL's precompute_coeffs for the triangle (bilinear) filter, for outputs [o0, o1) of out_size
 * (entry k is output o0 + k: each output's taps are the same whatever the range). */
static int taps_make(taps *t, int in_size, double in0, double in1, int out_size, int o0, int o1) {
    double scale = (in1 - in0) / out_size, fscale = scale < 1.0 ? 1.0 : scale;
    double support = 1.0 * fscale;
    int n_out = o1 - o0;
    t->ksize = (int)ceil(support) * 2 + 1;
    t->first = malloc((size_t)n_out * sizeof *t->first);
    t->count = malloc((size_t)n_out * sizeof *t->count);
    t->w = herd_malloc_array((size_t)n_out, (size_t)t->ksize * sizeof *t->w);
    t->scratch = herd_malloc_array((size_t)t->ksize, sizeof *t->scratch);
    if (!t->first || !t->count || !t->w || !t->scratch) return 0;
    for (int o = o0; o < o1; o++) {
        double center = in0 + (o + 0.5) * scale, sum = 0;
        int lo = (int)floor(center - support + 0.5), hi = (int)floor(center + support + 0.5);
        if (lo < 0) lo = 0;
        if (hi > in_size) hi = in_size;
        if (hi <= lo) { /* a region outside the image: the nearest edge pixel */
            lo = center < 0 ? 0 : in_size - 1;
            hi = lo + 1;
        }
        double *k = t->scratch;
        int n = hi - lo;
        if (n > t->ksize) n = t->ksize;
        for (int j = 0; j < n; j++) sum += k[j] = triangle((j + lo - center + 0.5) / fscale);
        float *w = t->w + (size_t)(o - o0) * t->ksize;
        for (int j = 0; j < n; j++) w[j] = (float)(sum != 0.0 ? k[j] / sum : 1.0 / n);
        t->first[o - o0] = lo;
        t->count[o - o0] = n;
    }
    return 1;
}

static void taps_free(taps *t) {
    free(t->first);
    free(t->count);
    free(t->w);
    free(t->scratch);
}

/* The horizontal pass of one row of `planes` planes (1 or 3: three independent sums share each
 * weight load and keep the adder busy): K taps per output pixel. Tap k of plane p of source
 * column j is row[(j + k) * ts + p * ps]: ts = 1, ps = the row's plane size for planar rows,
 * ts = 3, ps = 1 for interleaved RGB. Inlined with constant K, ts and ps at each call. */
static inline void horizontal(float *o, size_t o_plane, const float *row, int ts, size_t ps, int planes,
                              const taps *tx, int dw, int K) {
    for (int x = 0; x < dw; x++) {
        const float *wx = tx->w + (size_t)x * tx->ksize, *r = row + (size_t)tx->first[x] * ts;
        if (planes == 3) {
            float v0 = 0, v1 = 0, v2 = 0;
            for (int k = 0; k < K; k++) {
                v0 += wx[k] * r[k * ts];
                v1 += wx[k] * r[ps + k * ts];
                v2 += wx[k] * r[2 * ps + k * ts];
            }
            o[x] = v0, o[o_plane + x] = v1, o[2 * o_plane + x] = v2;
        } else {
            float v = 0;
            for (int k = 0; k < K; k++) v += wx[k] * r[k * ts];
            o[x] = v;
        }
    }
}

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>
#define HAVE_AVX512_RESAMPLE 1

/* horizontal() for planar rows (ts = 1), 16 outputs at a time wherever their taps lie within 32
 * consecutive floats of the row (every enlargement, as random_resized_crop's, and shrinks by up
 * to ~1.7x), else 8 (shrinks by up to ~3x): two loads, and per tap a permute picking each
 * output's pixel, a load of its weights (wT: tap k's weights of the dw outputs at wT + k * dw), a
 * multiply and an add, in tap order from +0: the scalar loop's sums bit for bit (the library is
 * compiled without floating-point contraction, -std=c11). Blocks whose taps lie farther apart
 * take the scalar loop. Reads no float of a plane's row at or beyond `end`. */
__attribute__((target("avx512f"))) static void horizontal_planar_avx512(float *o, size_t o_plane, const float *row,
                                                                         size_t ps, int planes, const taps *tx,
                                                                         const float *wT, int dw, int K, int end) {
    for (int x = 0, n; x < dw; x += n) {
        int f0 = tx->first[x];
        n = dw - x < 16 ? dw - x : 16;
        if (tx->first[x + n - 1] - f0 + K > 32 && n > 8) n = 8; /* shrinking by up to ~3x: 8 at a time */
        __mmask16 m = n == 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << n) - 1);
        if (tx->first[x + n - 1] - f0 + K > 32) { /* taps too far apart: the scalar loop */
            for (int p = 0; p < planes; p++) {
                for (int i = x; i < x + n; i++) {
                    const float *wx = tx->w + (size_t)i * tx->ksize, *r = row + p * ps + tx->first[i];
                    float v = 0;
                    for (int k = 0; k < K; k++) v += wx[k] * r[k];
                    o[p * o_plane + i] = v;
                }
            }
            continue;
        }
        __m512i idx = _mm512_sub_epi32(_mm512_maskz_loadu_epi32(m, tx->first + x), _mm512_set1_epi32(f0));
        int avail = end - f0; /* floats of the row from f0 on that may be read */
        __mmask16 m0 = avail >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << avail) - 1);
        __mmask16 m1 = avail >= 32 ? (__mmask16)0xFFFF : avail <= 16 ? 0 : (__mmask16)((1u << (avail - 16)) - 1);
        for (int p = 0; p < planes; p++) {
            const float *r = row + p * ps + f0;
            __m512 a = _mm512_maskz_loadu_ps(m0, r), b = _mm512_maskz_loadu_ps(m1, r + 16), v = _mm512_setzero_ps();
            for (int k = 0; k < K; k++) {
                __m512 px = _mm512_permutex2var_ps(a, _mm512_add_epi32(idx, _mm512_set1_epi32(k)), b);
                __m512 wk = _mm512_maskz_loadu_ps(m, wT + (size_t)k * dw + x);
                v = _mm512_add_ps(v, _mm512_mul_ps(wk, px));
            }
            _mm512_mask_storeu_ps(o + p * o_plane + x, m, v);
        }
    }
}

/* The CPU runs AVX-512 and HERD_CPU=avx2 (which keeps herd off its AVX-512 code) is not set. */
static int avx512_resample(void) {
    static int have = -1; /* a race here at worst asks the CPU twice */
    if (have < 0) {
        const char *e = getenv("HERD_CPU");
        have = __builtin_cpu_supports("avx512f") && !(e && !strcmp(e, "avx2")) ? 1 : 0;
    }
    return have;
}
#endif

/* The common tap counts as constants, so the loop unrolls. */
static void horizontal_any(float *o, size_t o_plane, const float *row, int interleaved, size_t ps, int planes,
                           const taps *tx, const float *wT, int dw, int K, int end) {
    if (interleaved) { /* RGB: planes == 3 */
        switch (K) {
        case 2: horizontal(o, o_plane, row, 3, 1, 3, tx, dw, 2); break;
        case 3: horizontal(o, o_plane, row, 3, 1, 3, tx, dw, 3); break;
        case 4: horizontal(o, o_plane, row, 3, 1, 3, tx, dw, 4); break;
        case 5: horizontal(o, o_plane, row, 3, 1, 3, tx, dw, 5); break;
        case 7: horizontal(o, o_plane, row, 3, 1, 3, tx, dw, 7); break;
        default: horizontal(o, o_plane, row, 3, 1, 3, tx, dw, K);
        }
        return;
    }
#ifdef HAVE_AVX512_RESAMPLE
    if (wT) {
        horizontal_planar_avx512(o, o_plane, row, ps, planes, tx, wT, dw, K, end);
        return;
    }
#endif
    (void)wT, (void)end;
    switch (K) {
    case 2: horizontal(o, o_plane, row, 1, ps, planes, tx, dw, 2); break;
    case 3: horizontal(o, o_plane, row, 1, ps, planes, tx, dw, 3); break;
    case 4: horizontal(o, o_plane, row, 1, ps, planes, tx, dw, 4); break;
    case 5: horizontal(o, o_plane, row, 1, ps, planes, tx, dw, 5); break;
    case 7: horizontal(o, o_plane, row, 1, ps, planes, tx, dw, 7); break;
    default: horizontal(o, o_plane, row, 1, ps, planes, tx, dw, K);
    }
}

static inline __attribute__((always_inline)) void round_to_u8(uint8_t *restrict out, const float *restrict v,
                                                               size_t n) {
    for (size_t i = 0; i < n; i++) {
        float t = v[i] + 0.5f;
        t = t > 0.0f ? t : 0.0f;
        out[i] = (uint8_t)(t < 255.0f ? t : 255.0f);
    }
}

#ifdef HAVE_AVX512_RESAMPLE
/* The same rounding 16 values at a time: max with +0 as the second operand (so NaN gives 0, as
 * the test above), min with 255, truncation, narrowing: the scalar loop's bytes. */
__attribute__((target("avx512f"))) static void round_to_u8_avx512(uint8_t *restrict out, const float *restrict v,
                                                                   size_t n) {
    const __m512 half = _mm512_set1_ps(0.5f), top = _mm512_set1_ps(255.0f);
    for (size_t i = 0; i < n; i += 16) {
        __mmask16 m = n - i >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << (n - i)) - 1);
        __m512 t = _mm512_max_ps(_mm512_add_ps(_mm512_maskz_loadu_ps(m, v + i), half), _mm512_setzero_ps());
        _mm512_mask_cvtepi32_storeu_epi8(out + i, m, _mm512_cvttps_epi32(_mm512_min_ps(t, top)));
    }
}
#endif

void herd_round_to_u8(uint8_t *restrict out, const float *restrict v, size_t n) {
#ifdef HAVE_AVX512_RESAMPLE
    if (avx512_resample()) {
        round_to_u8_avx512(out, v, n);
        return;
    }
#endif
    round_to_u8(out, v, n);
}

/* One source: f32 planes (planes x sh x sw) or u8 pixels (sh x sw x planes, interleaved). */
typedef struct source {
    const float *f32;
    const uint8_t *u8;
} source;

/* One destination: f32 planes, or u8 planes rounded to the nearest level (as PIL's resize). */
typedef struct target {
    float *f32;
    uint8_t *u8;
} target;

/* The taps of the window win = {top, left, height, width} of a dw x dh output of the region
 * [x0, x1) x [y0, y1) of an sw x sh source; the horizontal ones padded to K each (zero weights,
 * the window shifted inside the row), so the horizontal pass's inner loop has one trip count. */
static int plan(taps *tx, taps *ty, int *K, int sw, int sh, double x0, double y0, double x1, double y1, int dw, int dh,
                const int win[4]) {
    if (!taps_make(tx, sw, x0, x1, dw, win[1], win[1] + win[3]) || !taps_make(ty, sh, y0, y1, dh, win[0], win[0] + win[2]))
        return 0;
    /* the most taps any output has (ksize leaves room for one more than a triangle covers: an
     * upscale has 2 taps, not 3); a padding tap adds 0 * pixel = +-0 to a sum begun at +0,
     * which is never -0, so the sums are the same bits whatever K is (finite pixels) */
    *K = 1;
    for (int x = 0; x < win[3]; x++)
        if (tx->count[x] > *K) *K = tx->count[x];
    for (int x = 0; x < win[3]; x++) {
        float *w = tx->w + (size_t)x * tx->ksize;
        int f = tx->first[x], n = tx->count[x], shift = f + *K > sw ? f + *K - sw : 0;
        for (int k = n - 1; k >= 0; k--) w[k + shift] = w[k];
        for (int k = 0; k < shift; k++) w[k] = 0;
        for (int k = n + shift; k < *K; k++) w[k] = 0;
        tx->first[x] = f - shift;
    }
    return 1;
}

herd_status herd_resample_reach(int sw, int sh, double x0, double y0, double x1, double y1, int dw, int dh,
                                const int win[4], int reach[4], herd_error *err) {
    taps tx = {0}, ty = {0};
    int K;
    herd_status st = HERD_OK;
    if (!plan(&tx, &ty, &K, sw, sh, x0, y0, x1, y1, dw, dh, win)) {
        st = herd_fail(err, HERD_ENOMEM, "resample: out of memory for %gx%g to %dx%d", x1 - x0, y1 - y0, dw, dh);
    } else { /* first[] never decreases along an axis */
        int bottom = 0;
        for (int y = 0; y < win[2]; y++)
            if (ty.first[y] + ty.count[y] > bottom) bottom = ty.first[y] + ty.count[y];
        reach[0] = ty.first[0], reach[1] = tx.first[0];
        reach[2] = bottom - reach[0], reach[3] = tx.first[win[3] - 1] + K - reach[1];
    }
    taps_free(&tx);
    taps_free(&ty);
    return st;
}

/* The vertical pass of one output row: row[x] = sum over taps k of wy[k] * (tap k's source row)[x]
 * for x in [lo, hi), in tap order, from f32 rows (f) or u8 ones (u), `stride` values apart. The
 * loops run across x, which the compiler vectorises; built twice, for the baseline and for
 * AVX-512 (chosen as the horizontal pass is): the same multiplies and adds per value either way. */
static inline __attribute__((always_inline)) void vertical_body(float *restrict row, const float *f,
                                                                const uint8_t *u, size_t stride, const float *wy,
                                                                int count, size_t lo, size_t hi) {
    if (u) {
        for (size_t x = lo; x < hi; x++) row[x] = wy[0] * u[x];
        for (int k = 1; k < count; k++) {
            const uint8_t *s = u + (size_t)k * stride;
            float wk = wy[k];
            for (size_t x = lo; x < hi; x++) row[x] += wk * s[x];
        }
    } else {
        for (size_t x = lo; x < hi; x++) row[x] = wy[0] * f[x];
        for (int k = 1; k < count; k++) {
            const float *s = f + (size_t)k * stride;
            float wk = wy[k];
            for (size_t x = lo; x < hi; x++) row[x] += wk * s[x];
        }
    }
}

#ifdef HAVE_AVX512_RESAMPLE
__attribute__((target("avx512f"))) static void vertical_avx512(float *restrict row, const float *f,
                                                              const uint8_t *u, size_t stride, const float *wy,
                                                              int count, size_t lo, size_t hi) {
    vertical_body(row, f, u, stride, wy, count, lo, hi);
}

/* RGB values [3 lo, 3 hi) of row into three planes of stride ps (plane p at out + p * ps), 16
 * pixels at a time: value j of plane p, row[3 j + p], picked from three loads by two permutes. */
__attribute__((target("avx512f"))) static void deinterleave3(float *restrict out, const float *restrict row, size_t ps,
                                                              int lo, int hi) {
    __m512i first[3], second[3];
    for (int p = 0; p < 3; p++) {
        int i1[16], i2[16];
        for (int j = 0; j < 16; j++) {
            int at = 3 * j + p;
            i1[j] = at < 32 ? at : 0;
            i2[j] = at < 32 ? j : 16 + at - 32;
        }
        first[p] = _mm512_loadu_si512(i1), second[p] = _mm512_loadu_si512(i2);
    }
    for (int x = lo; x < hi; x += 16) {
        int n = hi - x < 16 ? hi - x : 16, v = 3 * n; /* values left */
        const float *r = row + 3 * (size_t)x;
        __m512 a = _mm512_maskz_loadu_ps(v >= 16 ? 0xFFFF : (__mmask16)((1u << v) - 1), r);
        __m512 b = _mm512_maskz_loadu_ps(v >= 32 ? 0xFFFF : v <= 16 ? 0 : (__mmask16)((1u << (v - 16)) - 1), r + 16);
        __m512 c = _mm512_maskz_loadu_ps(v >= 48 ? 0xFFFF : v <= 32 ? 0 : (__mmask16)((1u << (v - 32)) - 1), r + 32);
        __mmask16 m = n == 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << n) - 1);
        for (int p = 0; p < 3; p++)
            _mm512_mask_storeu_ps(out + p * ps + x, m,
                                  _mm512_permutex2var_ps(_mm512_permutex2var_ps(a, first[p], b), second[p], c));
    }
}
#endif

static void vertical(float *restrict row, const float *f, const uint8_t *u, size_t stride, const float *wy, int count,
                     size_t lo, size_t hi) {
#ifdef HAVE_AVX512_RESAMPLE
    if (avx512_resample()) {
        vertical_avx512(row, f, u, stride, wy, count, lo, hi);
        return;
    }
#endif
    vertical_body(row, f, u, stride, wy, count, lo, hi);
}

/* Outputs win of dw x dh (dst holds all of them; the rest is left as it is) from src, which
 * holds the source's rows and columns from (sy0, sx0) on, stride src_w pixels. */
static herd_status resample(target dst, int dw, int dh, const int win[4], source src, int sw, int sh, int sx0, int sy0,
                            int src_w, int planes, double x0, double y0, double x1, double y1, herd_error *err) {
    taps tx = {0}, ty = {0};
    float *rows = NULL, *orow = NULL, *wT = NULL, *prow = NULL;
    herd_status st = HERD_OK;
    int K;
    if (!plan(&tx, &ty, &K, sw, sh, x0, y0, x1, y1, dw, dh, win) ||
        !(rows = herd_malloc_array((size_t)sw, (size_t)planes * sizeof *rows)) ||
        (dst.u8 && !(orow = herd_malloc_array((size_t)dw, (size_t)planes * sizeof *orow)))) {
        st = herd_fail(err, HERD_ENOMEM, "resample: out of memory for %gx%g to %dx%d", x1 - x0, y1 - y0, dw, dh);
        goto done;
    }
    for (int x = 0; x < win[3]; x++) tx.first[x] -= sx0; /* columns of the part src holds */
    for (int y = 0; y < win[2]; y++) ty.first[y] -= sy0;
    int ow = win[3];
    int xlo = tx.first[0], xhi = tx.first[ow - 1] + K; /* the columns the output reads */
    int interleaved = src.u8 && planes == 3;
#ifdef HAVE_AVX512_RESAMPLE
    /* the vector horizontal pass (planar rows; interleaved ones are split into planes first)
     * reads each tap's weights across outputs */
    if (avx512_resample() && (wT = herd_malloc_array((size_t)K * ow, sizeof *wT)) &&
        (!interleaved || (prow = herd_malloc_array((size_t)sw, 3 * sizeof *prow)))) {
        for (int x = 0; x < ow; x++)
            for (int k = 0; k < K; k++) wT[(size_t)k * ow + x] = tx.w[(size_t)x * tx.ksize + k];
    } else {
        free(wT);
        wT = NULL;
    }
#endif
    size_t op = (size_t)dh * dw;
    for (int y = 0; y < win[2]; y++) {
        const float *wy = ty.w + (size_t)y * ty.ksize;
        if (src.u8) { /* vertical: whole interleaved rows (planes values a pixel) */
            const uint8_t *s0 = src.u8 + (size_t)ty.first[y] * src_w * planes;
            vertical(rows, NULL, s0, (size_t)src_w * planes, wy, ty.count[y], (size_t)xlo * planes, (size_t)xhi * planes);
        } else {
            for (int p = 0; p < planes; p++) /* vertical: whole rows of each plane */
                vertical(rows + (size_t)p * sw, src.f32 + ((size_t)p * sh + ty.first[y]) * src_w, NULL, (size_t)src_w,
                         wy, ty.count[y], (size_t)xlo, (size_t)xhi);
        }
        /* horizontal: into the output row (f32), or a row of floats then rounded (u8) */
        size_t at = (size_t)(win[0] + y) * dw + win[1];
        float *o = dst.u8 ? orow : dst.f32 + at;
        size_t o_plane = dst.u8 ? (size_t)dw : op;
#ifdef HAVE_AVX512_RESAMPLE
        if (interleaved && prow) {
            deinterleave3(prow, rows, (size_t)sw, xlo, xhi);
            horizontal_any(o, o_plane, prow, 0, (size_t)sw, 3, &tx, wT, ow, K, xhi);
        } else
#endif
        if (interleaved) {
            horizontal_any(o, o_plane, rows, 1, 1, 3, &tx, NULL, ow, K, xhi * 3);
        } else {
            for (int p = 0; p < planes; p += planes == 3 ? 3 : 1) {
                int n = planes == 3 ? 3 : 1;
                horizontal_any(o + (size_t)p * o_plane, o_plane, rows + (size_t)p * sw, 0, (size_t)sw, n, &tx, wT, ow, K, xhi);
            }
        }
        if (dst.u8)
            for (int p = 0; p < planes; p++)
                herd_round_to_u8(dst.u8 + (size_t)p * op + at, orow + (size_t)p * dw, (size_t)ow);
    }
done:
    taps_free(&tx);
    taps_free(&ty);
    free(rows);
    free(orow);
    free(wT);
    free(prow);
    return st;
}

herd_status herd_resample(float *dst, int dw, int dh, const float *src, int sw, int sh, int planes, double x0,
                          double y0, double x1, double y1, herd_error *err) {
    const int all[4] = {0, 0, dh, dw};
    return resample((target){dst, NULL}, dw, dh, all, (source){src, NULL}, sw, sh, 0, 0, sw, planes, x0, y0, x1, y1,
                    err);
}

herd_status herd_resample_u8_part(uint8_t *dst, int dw, int dh, const int win[4], const uint8_t *src, int sw, int sh,
                                  const int part[4], int channels, double x0, double y0, double x1, double y1,
                                  herd_error *err) {
    return resample((target){NULL, dst}, dw, dh, win, (source){NULL, src}, sw, sh, part[1], part[0], part[3], channels,
                    x0, y0, x1, y1, err);
}

herd_status herd_resample_u8(uint8_t *dst, int dw, int dh, const uint8_t *src, int sw, int sh, int channels,
                             double x0, double y0, double x1, double y1, herd_error *err) {
    const int all[4] = {0, 0, dh, dw}, whole[4] = {0, 0, sh, sw};
    return herd_resample_u8_part(dst, dw, dh, all, src, sw, sh, whole, channels, x0, y0, x1, y1, err);
}
