/* bf16 products for --precision bf16: packing fp32 into bf16 pair matrices (cpu_bf16.h) and
 * the vdpbf16ps tile kernel, chosen at run time where the CPU has AVX512_BF16. Each step
 * multiplies two bf16 pairs and adds both products to an fp32 lane, twice the multiply-adds
 * per instruction of the fp32 kernel (cpu_gemm.c) and half the bytes per operand. */
#include <stdint.h>
#include <string.h>

#include "cpu_bf16.h"

#ifdef HAVE_AVX512_KERNEL
#include <immintrin.h>

#define TARGET_BF16 __attribute__((target("avx512f,avx512bw,avx512dq,avx512vl,avx512bf16")))


/* 32 floats (n valid, the rest read as 0) rounded to 32 bf16, in order: value i in half i. */
static inline TARGET_BF16 __m512i round32(const float *x, int n) {
    __m512 lo = _mm512_maskz_loadu_ps(cpu_lanes16(n), x);
    __m512 hi = _mm512_maskz_loadu_ps(cpu_lanes16(n - 16 > 0 ? n - 16 : 0), x + 16);
    return (__m512i)_mm512_cvtne2ps_pbh(hi, lo);
}

static TARGET_BF16 void pack_rows(float *dst, int ldd, const float *src, int lds, int rows, int cols) {
    const int P = cpu_bf16_pairs(cols);
    for (int r = 0; r < rows; r++) {
        const float *s = src + (size_t)r * lds;
        float *t = dst + (size_t)r * ldd;
        for (int p = 0; p < P; p += 16) /* 16 pairs = 32 values per step */
            _mm512_mask_storeu_epi32(t + p, cpu_lanes16(P - p), round32(s + 2 * p, cols - 2 * p));
    }
}

/* Up to 16 values of a and of b (mask m) rounded and stored as 16 pairs (a lo, b hi) at t. */
static inline TARGET_BF16 void store_pairs(float *t, __mmask16 m, __m512 va, __m512 vb) {
    /* halves [a0..a15 | b0..b15] -> [a0 b0 a1 b1 ...] */
    const __m512i mix = _mm512_set_epi16(31, 15, 30, 14, 29, 13, 28, 12, 27, 11, 26, 10, 25, 9, 24, 8, 23, 7, 22, 6,
                                         21, 5, 20, 4, 19, 3, 18, 2, 17, 1, 16, 0);
    __m512i h = (__m512i)_mm512_cvtne2ps_pbh(vb, va);
    _mm512_mask_storeu_epi32(t, m, _mm512_permutexvar_epi16(mix, h));
}

/* dst[i] = the pair (a[i], b[i]) (b NULL: 0), i < n; a (b) first masked in place by the ReLU's
 * gradient where keep_a (keep_b) is not NULL: a[i] = keep_a[i] > 0 ? a[i] : 0, bit for bit
 * herdi_cpu_act_mask_inplace. */
static TARGET_BF16 void pack_two(float *dst, float *a, const float *keep_a, float *b, const float *keep_b, size_t n) {
    const __m512 zero = _mm512_setzero_ps();
    for (size_t i = 0; i < n; i += 16) {
        const __mmask16 m = cpu_lanes16(n - i < 16 ? (int)(n - i) : 16);
        __m512 va = _mm512_maskz_loadu_ps(m, a + i), vb = b ? _mm512_maskz_loadu_ps(m, b + i) : zero;
        if (keep_a) {
            va = _mm512_maskz_mov_ps(_mm512_cmp_ps_mask(_mm512_maskz_loadu_ps(m, keep_a + i), zero, _CMP_GT_OQ), va);
            _mm512_mask_storeu_ps(a + i, m, va);
        }
        if (b && keep_b) {
            vb = _mm512_maskz_mov_ps(_mm512_cmp_ps_mask(_mm512_maskz_loadu_ps(m, keep_b + i), zero, _CMP_GT_OQ), vb);
            _mm512_mask_storeu_ps(b + i, m, vb);
        }
        store_pairs(dst + i, m, va, vb);
    }
}

static TARGET_BF16 void pack_row_pairs(float *dst, int ldd, const float *src, int lds, int rows, int cols) {
    for (int p = 0; 2 * p < rows; p++) {
        const float *a = src + (size_t)2 * p * lds, *b = a + lds;
        const int has_b = 2 * p + 1 < rows;
        float *t = dst + (size_t)p * ldd;
        for (int c = 0; c < cols; c += 16) {
            __mmask16 m = cpu_lanes16(cols - c);
            __m512 va = _mm512_maskz_loadu_ps(m, a + c);
            __m512 vb = has_b ? _mm512_maskz_loadu_ps(m, b + c) : _mm512_setzero_ps();
            store_pairs(t + c, m, va, vb);
        }
    }
}

/* One tap (c, kh, kw) of a convolution with column stride 1, as im2col reads it from the image
 * itself: output row oh reads image row oh*SH - PH + kh (none: zeros), from column kw - PW on. */
typedef struct tap_reader {
    const float *plane; /* image channel c, or NULL for the zero tap past the last */
    int row0, col0;     /* image row of output row 0, column of output column 0 */
} tap_reader;

static tap_reader tap_at(const float *in, int k, const conv2d_dims *d) {
    const int taps = d->KH * d->KW;
    if (k >= d->C * taps) return (tap_reader){NULL, 0, 0};
    const int c = k / taps, kh = k % taps / d->KW, kw = k % d->KW;
    return (tap_reader){in + (size_t)c * d->H * d->W, kh - d->PH, kw - d->PW};
}

/* The lanes of output columns [o, o + 16) (of m) that fall inside the image. */
static inline __mmask16 tap_lanes(const tap_reader *t, int o, __mmask16 m, const conv2d_dims *d) {
    const int iw = o + t->col0, lo = -iw > 0 ? -iw : 0, hi = d->W - iw < 16 ? d->W - iw : 16;
    return hi > lo ? (__mmask16)(m & cpu_lanes16(hi) & ~cpu_lanes16(lo)) : 0;
}

/* v with lanes [shift, shift + 16) taking output columns [o, o + 16) of row oh: those of
 * `lanes` (shifted) read from the image, the rest of that span 0 where the row is padding. */
static inline TARGET_BF16 __m512 tap_load_at(__m512 v, const tap_reader *t, int oh, int o, __mmask16 lanes, int shift,
                                             const conv2d_dims *d) {
    const int ih = oh * d->SH + t->row0;
    if (!t->plane || ih < 0 || ih >= d->H) return v; /* v's lanes there are 0 already */
    /* lane 0's address may lie before the row (or the image): masked-off lanes are not read */
    return _mm512_mask_loadu_ps(v, (__mmask16)(lanes << shift),
                                (const float *)((uintptr_t)(t->plane + (size_t)ih * d->W) +
                                                (intptr_t)(o + t->col0 - shift) * (intptr_t)sizeof(float)));
}

/* im2col of one image given in channel pairs (pairs(C), H, W), column stride 1: a 32-bit copy,
 * row (cp, kh, kw) of dst (OH*OW pair elements) = tap (kh, kw) of channel pair cp, read from the
 * paired image itself (the padding as masked-off lanes), with no padded copy. Output rows of at
 * most 8 columns go 16 / OW to a vector (a 7x7 map: 14 of 16 lanes, not 7). */
static TARGET_BF16 void pack_image_pairs(float *dst, const float *pin, const conv2d_dims *d) {
    conv2d_dims dp = *d;
    dp.C = cpu_bf16_pairs(d->C);
    const int K = dp.C * d->KH * d->KW, OH = d->OH, OW = d->OW, N = OH * OW, R = OW <= 8 ? 16 / OW : 1;
    for (int p = 0; p < K; p++) {
        const tap_reader a = tap_at(pin, p, &dp);
        for (int o = 0; o < OW; o += 16) {
            const __mmask16 m = cpu_lanes16(OW - o), la = tap_lanes(&a, o, m, &dp);
            float *t = dst + (size_t)p * N + o;
            for (int oh = 0; oh < OH; oh += R, t += (size_t)R * OW) {
                const int rows = OH - oh < R ? OH - oh : R;
                __m512 v = _mm512_setzero_ps();
                for (int r = 0; r < rows; r++) v = tap_load_at(v, &a, oh + r, o, la, r * OW, &dp);
                _mm512_mask_storeu_ps(t, R > 1 ? cpu_lanes16(rows * OW) : m, v);
            }
        }
    }
}

/* The tile's rows 0..mr-1 (c0: columns 0-15, c1: 16-31 of those m0, m1 mark) stored as columns
 * of Ct: column j of the tile to Ct[j*ldc .. + mr), + ep->bias[j0 + j] (NULL: none), then the
 * ReLU when ep->relu, added to Ct when accumulate. 8x8 blocks transposed in registers. */
static inline TARGET_BF16 __attribute__((always_inline)) void store_transposed(const int mr, const __m512 *c0,
                                                                                const __m512 *c1, float *Ct, int ldc,
                                                                                __mmask16 m0, __mmask16 m1,
                                                                                int accumulate,
                                                                                const cpu_bf16_epilogue *ep, int j0) {
    const unsigned cols = (unsigned)m0 | (unsigned)m1 << 16;
    const __mmask8 rows = (__mmask8)((1u << mr) - 1);
    for (int q = 0; q < 4; q++) { /* columns 8q .. 8q+7 */
        if (!((cols >> (8 * q)) & 0xff)) break;
        __m256 r[8], t[8];
        for (int i = 0; i < 8; i++) {
            __m512 v = i < mr ? (q < 2 ? c0[i] : c1[i]) : _mm512_setzero_ps();
            r[i] = q % 2 ? _mm512_extractf32x8_ps(v, 1) : _mm512_castps512_ps256(v);
        }
        for (int i = 0; i < 8; i += 2) {
            t[i] = _mm256_unpacklo_ps(r[i], r[i + 1]);
            t[i + 1] = _mm256_unpackhi_ps(r[i], r[i + 1]);
        }
        for (int i = 0; i < 8; i += 4) {
            r[i] = _mm256_shuffle_ps(t[i], t[i + 2], 0x44);
            r[i + 1] = _mm256_shuffle_ps(t[i], t[i + 2], 0xee);
            r[i + 2] = _mm256_shuffle_ps(t[i + 1], t[i + 3], 0x44);
            r[i + 3] = _mm256_shuffle_ps(t[i + 1], t[i + 3], 0xee);
        }
        for (int i = 0; i < 4; i++) {
            t[i] = _mm256_permute2f128_ps(r[i], r[i + 4], 0x20);
            t[i + 4] = _mm256_permute2f128_ps(r[i], r[i + 4], 0x31);
        }
        for (int i = 0; i < 8; i++) { /* t[i]: column 8q + i, rows 0..7 */
            const int j = 8 * q + i;
            if (!((cols >> j) & 1)) break;
            float *c = Ct + (size_t)j * ldc;
            __m256 v = t[i];
            if (accumulate) v = _mm256_add_ps(v, _mm256_maskz_loadu_ps(rows, c));
            if (ep->bias) v = _mm256_add_ps(v, _mm256_set1_ps(ep->bias[j0 + j]));
            if (ep->relu) v = _mm256_max_ps(v, _mm256_setzero_ps());
            _mm256_mask_storeu_ps(c, rows, v);
        }
    }
}

/* mr (<= 8) rows by up to 32 columns of C, the whole reduction in registers (as cpu_gemm.c's
 * tile): a pair of A broadcast (A(i, p) at A[i*ars + p*acs], or with offsets (ra non-NULL) at
 * A[ra[i] + pa[p]]), a row of 32 pairs of B read in place. */
static inline TARGET_BF16 __attribute__((always_inline)) void tile(const int mr, int P, const float *A, ptrdiff_t ars,
                                                                    ptrdiff_t acs, const int *ra, const int *pa,
                                                                    const float *B, int ldb, float *C, int ldc,
                                                                    __mmask16 m0, __mmask16 m1, int accumulate,
                                                                    const cpu_bf16_epilogue *ep, int j0) {
    __m512 c0[8], c1[8];
    for (int r = 0; r < mr; r++) c0[r] = c1[r] = _mm512_setzero_ps();
    for (int p = 0; p < P; p++) {
        __m512bh b0 = (__m512bh)_mm512_maskz_loadu_epi32(m0, B + (size_t)p * ldb);
        __m512bh b1 = (__m512bh)_mm512_maskz_loadu_epi32(m1, B + (size_t)p * ldb + 16);
        const float *a = ra ? A + pa[p] : A + p * acs;
        for (int r = 0; r < mr; r++) {
            __m512bh av = (__m512bh)_mm512_set1_ps(ra ? a[ra[r]] : a[r * ars]); /* bits moved, not converted */
            c0[r] = _mm512_dpbf16_ps(c0[r], av, b0);
            c1[r] = _mm512_dpbf16_ps(c1[r], av, b1);
        }
    }
    if (ep) { /* stored transposed: C (N, M) */
        store_transposed(mr, c0, c1, C, ldc, m0, m1, accumulate, ep, j0);
        return;
    }
    for (int r = 0; r < mr; r++) {
        float *c = C + (size_t)r * ldc;
        if (accumulate) {
            c0[r] = _mm512_add_ps(c0[r], _mm512_maskz_loadu_ps(m0, c));
            c1[r] = _mm512_add_ps(c1[r], _mm512_maskz_loadu_ps(m1, c + 16));
        }
        _mm512_mask_storeu_ps(c, m0, c0[r]);
        _mm512_mask_storeu_ps(c + 16, m1, c1[r]);
    }
}

static inline TARGET_BF16 __attribute__((always_inline)) void gemm_tiles(int M, int N, int P, const float *A,
                                                                          ptrdiff_t ars, ptrdiff_t acs, const int *ra,
                                                                          const int *pa, const float *B, int ldb,
                                                                          int accumulate,
                                                                          const cpu_bf16_epilogue *ep, float *C,
                                                                          int ldc) {
    for (int j0 = 0; j0 < N; j0 += 32) {
        int nr = N - j0 < 32 ? N - j0 : 32;
        __mmask16 m0 = cpu_lanes16(nr), m1 = cpu_lanes16(nr - 16 > 0 ? nr - 16 : 0);
        /* rows in tiles of as equal a height as can be (see cpu_gemm.c) */
        int tiles = (M + 7) / 8, base = M / tiles, extra = M % tiles;
        for (int t = 0, i = 0; t < tiles; t++) {
            int mr = base + (t < extra);
            const float *a = ra ? A : A + i * ars;
            const int *rt = ra ? ra + i : NULL;
            const float *b = B + j0;
            float *ct = ep ? C + (size_t)j0 * ldc + i : C + (size_t)i * ldc + j0;
            switch (mr) {
            case 8: tile(8, P, a, ars, acs, rt, pa, b, ldb, ct, ldc, m0, m1, accumulate, ep, j0); break;
            case 7: tile(7, P, a, ars, acs, rt, pa, b, ldb, ct, ldc, m0, m1, accumulate, ep, j0); break;
            case 6: tile(6, P, a, ars, acs, rt, pa, b, ldb, ct, ldc, m0, m1, accumulate, ep, j0); break;
            case 5: tile(5, P, a, ars, acs, rt, pa, b, ldb, ct, ldc, m0, m1, accumulate, ep, j0); break;
            case 4: tile(4, P, a, ars, acs, rt, pa, b, ldb, ct, ldc, m0, m1, accumulate, ep, j0); break;
            case 3: tile(3, P, a, ars, acs, rt, pa, b, ldb, ct, ldc, m0, m1, accumulate, ep, j0); break;
            case 2: tile(2, P, a, ars, acs, rt, pa, b, ldb, ct, ldc, m0, m1, accumulate, ep, j0); break;
            case 1: tile(1, P, a, ars, acs, rt, pa, b, ldb, ct, ldc, m0, m1, accumulate, ep, j0); break;
            default: break;
            }
            i += mr;
        }
    }
}

static TARGET_BF16 void gemm_bf16(int M, int N, int P, const float *A, ptrdiff_t ars, ptrdiff_t acs, const float *B,
                                  int ldb, int accumulate, float *C, int ldc) {
    gemm_tiles(M, N, P, A, ars, acs, NULL, NULL, B, ldb, accumulate, NULL, C, ldc);
}

static TARGET_BF16 void gemm_bf16_offsets(int M, int N, int P, const float *A, const int *ra, const int *pa,
                                          const float *B, int ldb, int accumulate, const cpu_bf16_epilogue *ep,
                                          float *Ct, int ldc) {
    gemm_tiles(M, N, P, A, 0, 0, ra, pa, B, ldb, accumulate, ep, Ct, ldc);
}

static TARGET_BF16 void pad_pairs(float *dst, const float *a, const float *b, size_t step, int planes, int bplanes,
                                  const conv2d_dims *d) {
    const int Hp = d->H + 2 * d->PH, Wp = d->W + 2 * d->PW, W = d->W;
    /* each padded row in one pass, 16 pairs a store, the zeros around the image included (a pair
     * of zeros is the bits 0, as the memset of the whole plane this replaces wrote first) */
    for (int p = 0; p < planes; p++) {
        const float *pa = a + (size_t)p * step, *pb = p < bplanes ? b + (size_t)p * step : NULL;
        for (int r = 0; r < Hp; r++) {
            float *row = dst + ((size_t)p * Hp + r) * Wp;
            const int h = r - d->PH, inside = h >= 0 && h < d->H;
            for (int o = 0; o < Wp; o += 16) { /* the row's float x is the image's x - PW */
                int lo = d->PW - o, hi = d->PW + W - o;
                lo = lo < 0 ? 0 : lo > 16 ? 16 : lo;
                hi = hi < 0 ? 0 : hi > 16 ? 16 : hi;
                const __mmask16 m = inside ? (__mmask16)(cpu_lanes16(hi) & ~cpu_lanes16(lo)) : 0;
                const ptrdiff_t at = (ptrdiff_t)h * W + o - d->PW;
                __m512 va = m ? _mm512_maskz_loadu_ps(m, pa + at) : _mm512_setzero_ps();
                __m512 vb = m && pb ? _mm512_maskz_loadu_ps(m, pb + at) : _mm512_setzero_ps();
                store_pairs(row + o, cpu_lanes16(Wp - o), va, vb);
            }
        }
    }
}
#endif

const char *herdi_cpu_bf16_unavailable(void) {
    if (herdi_cpu_env_error()) return herdi_cpu_env_error();
#ifdef HAVE_AVX512_KERNEL
    __builtin_cpu_init();
    if (!__builtin_cpu_supports("avx512bf16") || !__builtin_cpu_supports("avx512bw") ||
        !__builtin_cpu_supports("avx512dq") || !__builtin_cpu_supports("avx512vl"))
        return "precision bf16: this CPU has no AVX512_BF16 instructions (vdpbf16ps); use fp32";
    if (!herdi_cpu_avx512_enabled()) return "precision bf16: needs the AVX-512 kernels, which HERD_CPU=avx2 turns off";
    return NULL;
#else
    return "precision bf16: herd was built without the x86-64 AVX-512 kernels; use fp32";
#endif
}

/* Callers reach these only through a backend that herdi_cpu_bf16_unavailable() allowed. */
void herdi_cpu_bf16_pack_rows(float *dst, int ldd, const float *src, int lds, int rows, int cols) {
#ifdef HAVE_AVX512_KERNEL
    pack_rows(dst, ldd, src, lds, rows, cols);
#else
    (void)dst, (void)ldd, (void)src, (void)lds, (void)rows, (void)cols;
    HERD_ASSERT(!"bf16 kernels called without AVX512_BF16");
#endif
}

void herdi_cpu_bf16_pack_two(float *dst, float *a, const float *keep_a, float *b, const float *keep_b, size_t n) {
#ifdef HAVE_AVX512_KERNEL
    pack_two(dst, a, keep_a, b, keep_b, n);
#else
    (void)dst, (void)a, (void)keep_a, (void)b, (void)keep_b, (void)n;
    HERD_ASSERT(!"bf16 kernels called without AVX512_BF16");
#endif
}

void herdi_cpu_bf16_pack_row_pairs(float *dst, int ldd, const float *src, int lds, int rows, int cols) {
#ifdef HAVE_AVX512_KERNEL
    pack_row_pairs(dst, ldd, src, lds, rows, cols);
#else
    (void)dst, (void)ldd, (void)src, (void)lds, (void)rows, (void)cols;
    HERD_ASSERT(!"bf16 kernels called without AVX512_BF16");
#endif
}

void herdi_cpu_bf16_pack_image_pairs(float *dst, const float *pin, const conv2d_dims *d) {
#ifdef HAVE_AVX512_KERNEL
    pack_image_pairs(dst, pin, d);
#else
    (void)dst, (void)pin, (void)d;
    HERD_ASSERT(!"bf16 kernels called without AVX512_BF16");
#endif
}

void herdi_cpu_bf16_pad_pairs(float *dst, const float *a, const float *b, size_t step, int planes, int bplanes,
                              const conv2d_dims *d) {
#ifdef HAVE_AVX512_KERNEL
    pad_pairs(dst, a, b, step, planes, bplanes, d);
#else
    (void)dst, (void)a, (void)b, (void)step, (void)planes, (void)bplanes, (void)d;
    HERD_ASSERT(!"bf16 kernels called without AVX512_BF16");
#endif
}

void herdi_cpu_gemm_bf16_offsets(int M, int N, int P, const float *A, const int *ra, const int *pa, const float *B,
                                 int ldb, int accumulate, const cpu_bf16_epilogue *ep, float *Ct, int ldc) {
    if (M <= 0 || N <= 0) return;
#ifdef HAVE_AVX512_KERNEL
    gemm_bf16_offsets(M, N, P, A, ra, pa, B, ldb, accumulate, ep, Ct, ldc);
#else
    (void)A, (void)ra, (void)pa, (void)B, (void)ldb, (void)accumulate, (void)ep, (void)Ct, (void)ldc, (void)P;
    HERD_ASSERT(!"bf16 kernels called without AVX512_BF16");
#endif
}

void herdi_cpu_gemm_bf16(int M, int N, int P, const float *A, ptrdiff_t ars, ptrdiff_t acs, const float *B, int ldb,
                   int accumulate, float *C, int ldc) {
    if (M <= 0 || N <= 0) return;
#ifdef HAVE_AVX512_KERNEL
    gemm_bf16(M, N, P, A, ars, acs, B, ldb, accumulate, C, ldc);
#else
    (void)A, (void)ars, (void)acs, (void)B, (void)ldb, (void)accumulate, (void)C, (void)ldc, (void)P;
    HERD_ASSERT(!"bf16 kernels called without AVX512_BF16");
#endif
}
