/* The cpu backend's sgemm kernel for x86-64 CPUs without AVX-512 (AVX2 + FMA), chosen at run
 * time by cpu_gemm.c, or forced with HERD_CPU=avx2: the AVX-512 kernel's scheme (the whole
 * reduction of a tile in registers, A broadcast in either storage order, B read in place) on
 * 8-float vectors, 6 rows by 16 columns: 12 accumulators of the 16 ymm registers. Deterministic:
 * each C element is one fixed-order sum. */
#include "cpu_internal.h"

#ifdef HAVE_AVX512_KERNEL
#include <immintrin.h>

#define TARGET_AVX2 __attribute__((target("avx2,fma")))

/* lanes [0, n) of 8 set (maskload/maskstore read the sign bit) */
static inline TARGET_AVX2 __m256i lanes8(int n) {
    const __m256i idx = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    return _mm256_cmpgt_epi32(_mm256_set1_epi32(n < 0 ? 0 : n > 8 ? 8 : n), idx);
}

static inline TARGET_AVX2 __attribute__((always_inline)) void tile(const int mr, int K, const float *A, ptrdiff_t ars,
                                                                    ptrdiff_t acs, const float *B, int ldb, float *C,
                                                                    int ldc, __m256i m0, __m256i m1, int accumulate,
                                                                    const cpu_gemm_epilogue *ep, int i0, int j0) {
    __m256 c0[6], c1[6];
    for (int r = 0; r < mr; r++) c0[r] = c1[r] = _mm256_setzero_ps();
    for (int p = 0; p < K; p++) {
        __m256 b0 = _mm256_maskload_ps(B + (size_t)p * ldb, m0);
        __m256 b1 = _mm256_maskload_ps(B + (size_t)p * ldb + 8, m1);
        const float *a = A + p * acs;
        for (int r = 0; r < mr; r++) {
            __m256 av = _mm256_broadcast_ss(a + r * ars);
            c0[r] = _mm256_fmadd_ps(av, b0, c0[r]);
            c1[r] = _mm256_fmadd_ps(av, b1, c1[r]);
        }
    }
    /* the epilogue as cpu_gemm.c's kernel applies it (cpu_gemm_epilogue): the same operations */
    const float *bias = ep ? ep->bias : NULL;
    const int per_col = ep && ep->per_col;
    const herd_act act = ep ? ep->act : HERD_ACT_NONE;
    const __m256 zero = _mm256_setzero_ps(), six = _mm256_set1_ps(6.0f);
    const float *scale = ep ? ep->scale : NULL, *shift = ep ? ep->shift : NULL;
    __m256 bc0 = zero, bc1 = zero, sc0 = zero, sc1 = zero, tc0 = zero, tc1 = zero;
    if (bias && per_col) {
        bc0 = _mm256_maskload_ps(bias + j0, m0);
        bc1 = _mm256_maskload_ps(bias + j0 + 8, m1);
    }
    if (scale && per_col) {
        sc0 = _mm256_maskload_ps(scale + j0, m0), sc1 = _mm256_maskload_ps(scale + j0 + 8, m1);
        tc0 = _mm256_maskload_ps(shift + j0, m0), tc1 = _mm256_maskload_ps(shift + j0 + 8, m1);
    }
#pragma GCC unroll 6
    for (int r = 0; r < mr; r++) { /* unrolled in full: the accumulators stay in registers */
        float *c = C + (size_t)r * ldc;
        if (accumulate) {
            c0[r] = _mm256_add_ps(c0[r], _mm256_maskload_ps(c, m0));
            c1[r] = _mm256_add_ps(c1[r], _mm256_maskload_ps(c + 8, m1));
        }
        if (bias) {
            __m256 b0 = bc0, b1 = bc1;
            if (!per_col) b0 = b1 = _mm256_set1_ps(bias[i0 + r]);
            c0[r] = _mm256_add_ps(c0[r], b0);
            c1[r] = _mm256_add_ps(c1[r], b1);
        }
        if (scale) {
            __m256 s0 = sc0, s1 = sc1, t0 = tc0, t1 = tc1;
            if (!per_col) s0 = s1 = _mm256_set1_ps(scale[i0 + r]), t0 = t1 = _mm256_set1_ps(shift[i0 + r]);
            c0[r] = _mm256_add_ps(_mm256_mul_ps(c0[r], s0), t0);
            c1[r] = _mm256_add_ps(_mm256_mul_ps(c1[r], s1), t1);
        }
        if (act == HERD_ACT_RELU) { /* v > 0 ? v : 0, and the clamp v < 0 ? 0 : v > 6 ? 6 : v */
            c0[r] = _mm256_max_ps(c0[r], zero);
            c1[r] = _mm256_max_ps(c1[r], zero);
        } else if (act == HERD_ACT_RELU6) {
            c0[r] = _mm256_min_ps(six, _mm256_max_ps(zero, c0[r]));
            c1[r] = _mm256_min_ps(six, _mm256_max_ps(zero, c1[r]));
        }
        _mm256_maskstore_ps(c, m0, c0[r]);
        _mm256_maskstore_ps(c + 8, m1, c1[r]);
    }
}

TARGET_AVX2 void herdi_cpu_gemm_avx2(int M, int N, int K, const float *A, ptrdiff_t ars, ptrdiff_t acs, const float *B,
                               int ldb, int accumulate, const cpu_gemm_epilogue *ep, float *C, int ldc) {
    for (int j0 = 0; j0 < N; j0 += 16) {
        __m256i m0 = lanes8(N - j0), m1 = lanes8(N - j0 - 8);
        const float *b = B + j0;
        float *c = C + j0;
        /* ceil(M / 6) row tiles of as equal a height as can be (see cpu_gemm.c) */
        int tiles = (M + 5) / 6, base = M / tiles, extra = M % tiles;
        for (int t = 0, i = 0; t < tiles; t++) {
            int mr = base + (t < extra);
            const float *a = A + i * ars;
            float *ct = c + (size_t)i * ldc;
            switch (mr) {
            case 6: tile(6, K, a, ars, acs, b, ldb, ct, ldc, m0, m1, accumulate, ep, i, j0); break;
            case 5: tile(5, K, a, ars, acs, b, ldb, ct, ldc, m0, m1, accumulate, ep, i, j0); break;
            case 4: tile(4, K, a, ars, acs, b, ldb, ct, ldc, m0, m1, accumulate, ep, i, j0); break;
            case 3: tile(3, K, a, ars, acs, b, ldb, ct, ldc, m0, m1, accumulate, ep, i, j0); break;
            case 2: tile(2, K, a, ars, acs, b, ldb, ct, ldc, m0, m1, accumulate, ep, i, j0); break;
            case 1: tile(1, K, a, ars, acs, b, ldb, ct, ldc, m0, m1, accumulate, ep, i, j0); break;
            default: break;
            }
            i += mr;
        }
    }
}
#endif
