/* The cpu backend's sgemm (and transpose) for the conv layers: an AVX-512 kernel (picked at run time) that
 * runs about 1.9x faster than OpenBLAS on the Haswell kernels this machine is pinned to
 * (OPENBLAS_CORETYPE=Haswell); OpenBLAS otherwise. Both paths are deterministic. */
#include <math.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include <cblas.h>

#include "cpu_internal.h"

#ifdef HAVE_AVX512_KERNEL
#include <immintrin.h>

/* One tile: mr (<= 8) rows by up to 32 columns of C, the whole reduction in registers.
 * A(i, p) = A[i*ars + p*acs] is broadcast, so A may be stored either way round; or, with
 * offsets (ra non-NULL), A(i, p) = A[ra[i] + pa[p]]. B rows are read in place (no packing: at
 * conv sizes the 32-column B panel stays in L1/L2). */
static inline TARGET_AVX512 __attribute__((always_inline)) void tile(const int mr, int K, const float *A,
                                                                      ptrdiff_t ars, ptrdiff_t acs, const int *ra,
                                                                      const int *pa, const float *B, int ldb,
                                                                      float *C, int ldc, __mmask16 m0, __mmask16 m1,
                                                                      int accumulate, const cpu_gemm_epilogue *ep,
                                                                      int i0, int j0) {
    __m512 c0[8], c1[8];
    for (int r = 0; r < mr; r++) c0[r] = c1[r] = _mm512_setzero_ps();
    for (int p = 0; p < K; p++) {
        __m512 b0 = _mm512_maskz_loadu_ps(m0, B + (size_t)p * ldb);
        __m512 b1 = _mm512_maskz_loadu_ps(m1, B + (size_t)p * ldb + 16);
        const float *a = ra ? A + pa[p] : A + p * acs;
        for (int r = 0; r < mr; r++) {
            __m512 av = _mm512_set1_ps(ra ? a[ra[r]] : a[r * ars]);
            c0[r] = _mm512_fmadd_ps(av, b0, c0[r]);
            c1[r] = _mm512_fmadd_ps(av, b1, c1[r]);
        }
    }
    /* the epilogue (cpu_gemm_epilogue) on each row while it is in registers: one store per element */
    const float *bias = ep ? ep->bias : NULL;
    const int per_col = ep && ep->per_col;
    const herd_act act = ep ? ep->act : HERD_ACT_NONE;
    const float *scale = ep ? ep->scale : NULL, *shift = ep ? ep->shift : NULL;
    __m512 bc0 = _mm512_setzero_ps(), bc1 = bc0, sc0 = bc0, sc1 = bc0, tc0 = bc0, tc1 = bc0;
    if (bias && per_col) {
        bc0 = _mm512_maskz_loadu_ps(m0, bias + j0);
        bc1 = _mm512_maskz_loadu_ps(m1, bias + j0 + 16);
    }
    if (scale && per_col) {
        sc0 = _mm512_maskz_loadu_ps(m0, scale + j0), sc1 = _mm512_maskz_loadu_ps(m1, scale + j0 + 16);
        tc0 = _mm512_maskz_loadu_ps(m0, shift + j0), tc1 = _mm512_maskz_loadu_ps(m1, shift + j0 + 16);
    }
    const int transposed = ep && ep->transposed;
    /* unrolled in full, as the loops above are, or the accumulators would be an array in memory */
#pragma GCC unroll 8
    for (int r = 0; r < mr; r++) {
        float *c = C + (size_t)r * ldc;
        if (accumulate && !transposed) {
            c0[r] = _mm512_add_ps(c0[r], _mm512_maskz_loadu_ps(m0, c));
            c1[r] = _mm512_add_ps(c1[r], _mm512_maskz_loadu_ps(m1, c + 16));
        }
        if (bias) {
            __m512 b0 = bc0, b1 = bc1;
            if (!per_col) b0 = b1 = _mm512_set1_ps(bias[i0 + r]);
            c0[r] = _mm512_add_ps(c0[r], b0);
            c1[r] = _mm512_add_ps(c1[r], b1);
        }
        if (scale) { /* a multiply then an add: the batch norm's own two roundings */
            __m512 s0 = sc0, s1 = sc1, t0 = tc0, t1 = tc1;
            if (!per_col) s0 = s1 = _mm512_set1_ps(scale[i0 + r]), t0 = t1 = _mm512_set1_ps(shift[i0 + r]);
            c0[r] = _mm512_add_ps(_mm512_mul_ps(c0[r], s0), t0);
            c1[r] = _mm512_add_ps(_mm512_mul_ps(c1[r], s1), t1);
        }
        if (act != HERD_ACT_NONE) {
            c0[r] = cpu_act_vec16(c0[r], act);
            c1[r] = cpu_act_vec16(c1[r], act);
        }
        if (transposed) continue;
        _mm512_mask_storeu_ps(c, m0, c0[r]);
        _mm512_mask_storeu_ps(c + 16, m1, c1[r]);
    }
    if (transposed) { /* column j of the tile to C[j*ldc .. + mr): rows 0-7 of both halves in one
                         16x16 transpose, column j in lanes 0-7 of v[j], column 16 + j in lanes 8-15 */
        __m512 v[16];
        for (int r = 0; r < 8; r++) {
            v[r] = r < mr ? c0[r] : _mm512_setzero_ps();
            v[8 + r] = r < mr ? c1[r] : _mm512_setzero_ps();
        }
        cpu_transpose16(v);
        const __mmask16 rows = cpu_lanes16(mr);
        for (int j = 0; j < 16; j++) {
            if (m0 >> j & 1) _mm512_mask_storeu_ps(C + (size_t)j * ldc, rows, v[j]);
            if (m1 >> j & 1) _mm512_mask_storeu_ps(C + (size_t)(16 + j) * ldc, rows, _mm512_shuffle_f32x4(v[j], v[j], 0xee));
        }
    }
}

static inline TARGET_AVX512 __attribute__((always_inline)) void
gemm_tiles(int M, int N, int K, const float *A, ptrdiff_t ars, ptrdiff_t acs, const int *ra, const int *pa,
           const float *B, int ldb, int accumulate, const cpu_gemm_epilogue *ep, float *C, int ldc) {
    /* ceil(M / 8) row tiles of as equal a height as can be (49 rows: 7 x 7, not 6 x 8 + 1):
     * a tile of 1-3 rows has too few accumulators to hide the FMA latency and runs at a
     * quarter of the speed, so one thin remainder tile cost as much as four rows */
    const int tiles = (M + 7) / 8, base = M / tiles, extra = M % tiles;
    /* Blocks of columns whose B rows (K x jb) stay in L1, each swept row tile by row tile: C
     * is then written 8 rows at a time along jb columns, not all M rows 32 columns at a time
     * (M write streams, each on its own page: a 96-row output of 12544 columns ran at half
     * the speed it reaches in cache). The order of the tiles changes no sum. */
    int jb = CPU_GEMM_BLOCK_FLOATS / (K > 0 ? K : 1) / 32 * 32;
    if (jb < 32) jb = 32;
    for (int jb0 = 0; jb0 < N; jb0 += jb) {
        const int jb1 = N - jb0 < jb ? N : jb0 + jb;
        for (int t = 0, i = 0; t < tiles; t++) {
            int mr = base + (t < extra);
            const float *a = ra ? A : A + i * ars;
            const int *rt = ra ? ra + i : NULL;
            for (int j0 = jb0; j0 < jb1; j0 += 32) {
                int nr = N - j0 < 32 ? N - j0 : 32;
                __mmask16 m0 = cpu_lanes16(nr), m1 = nr <= 16 ? (__mmask16)0 : cpu_lanes16(nr - 16);
                const float *b = B + j0;
                float *ct = ep && ep->transposed ? C + (size_t)j0 * ldc + i : C + j0 + (size_t)i * ldc;
                switch (mr) { /* constant row counts so each tile keeps its accumulators in registers */
                case 8: tile(8, K, a, ars, acs, rt, pa, b, ldb, ct, ldc, m0, m1, accumulate, ep, i, j0); break;
                case 7: tile(7, K, a, ars, acs, rt, pa, b, ldb, ct, ldc, m0, m1, accumulate, ep, i, j0); break;
                case 6: tile(6, K, a, ars, acs, rt, pa, b, ldb, ct, ldc, m0, m1, accumulate, ep, i, j0); break;
                case 5: tile(5, K, a, ars, acs, rt, pa, b, ldb, ct, ldc, m0, m1, accumulate, ep, i, j0); break;
                case 4: tile(4, K, a, ars, acs, rt, pa, b, ldb, ct, ldc, m0, m1, accumulate, ep, i, j0); break;
                case 3: tile(3, K, a, ars, acs, rt, pa, b, ldb, ct, ldc, m0, m1, accumulate, ep, i, j0); break;
                case 2: tile(2, K, a, ars, acs, rt, pa, b, ldb, ct, ldc, m0, m1, accumulate, ep, i, j0); break;
                case 1: tile(1, K, a, ars, acs, rt, pa, b, ldb, ct, ldc, m0, m1, accumulate, ep, i, j0); break;
                default: break;
                }
            }
            i += mr;
        }
    }
}

static TARGET_AVX512 void gemm_avx512(int M, int N, int K, const float *A, ptrdiff_t ars, ptrdiff_t acs,
                                      const float *B, int ldb, int accumulate, const cpu_gemm_epilogue *ep, float *C,
                                      int ldc) {
    gemm_tiles(M, N, K, A, ars, acs, NULL, NULL, B, ldb, accumulate, ep, C, ldc);
}

static TARGET_AVX512 void gemm_offsets_avx512(int M, int N, int K, const float *A, const int *ra, const int *pa,
                                              const float *B, int ldb, int accumulate, const cpu_gemm_epilogue *ep,
                                              float *C, int ldc) {
    gemm_tiles(M, N, K, A, 0, 0, ra, pa, B, ldb, accumulate, ep, C, ldc);
}

/* One 16x16 block (rows x cols of it valid) of dst = src^T via cpu_transpose16's network: lanes
 * outside the block are masked, never touched. */
static TARGET_AVX512 void transpose_block(float *dst, size_t ldd, const float *src, size_t lds, int rows, int cols) {
    __m512 r[16];
    __mmask16 cm = cpu_lanes16(cols), rm = cpu_lanes16(rows);
    for (int i = 0; i < 16; i++) r[i] = i < rows ? _mm512_maskz_loadu_ps(cm, src + i * lds) : _mm512_setzero_ps();
    cpu_transpose16(r);
    for (int j = 0; j < cols; j++) _mm512_mask_storeu_ps(dst + j * ldd, rm, r[j]);
}

static TARGET_AVX512 void transpose_avx512(float *dst, size_t ldd, const float *src, size_t lds, int rows, int cols) {
    for (int r0 = 0; r0 < rows; r0 += 16)
        for (int c0 = 0; c0 < cols; c0 += 16)
            transpose_block(dst + (size_t)c0 * ldd + r0, ldd, src + (size_t)r0 * lds + c0, lds,
                            rows - r0 < 16 ? rows - r0 : 16, cols - c0 < 16 ? cols - c0 : 16);
}
#endif

/* Which kernel: -1 = not decided yet, else a CPU_GEMM_* value; set from CPUID (plus OS support,
 * which GCC and Clang check) and HERD_CPU. */
static atomic_int use_avx512 = -1;

const char *herdi_cpu_env_error(void) {
    const char *e = getenv("HERD_CPU");
    if (!e || !*e || !strcmp(e, "avx512") || !strcmp(e, "avx2")) return NULL;
    return "HERD_CPU must be avx512 or avx2 (or unset: the best this CPU runs)";
}

int herdi_cpu_gemm_use(int kernel) {
    int ok = kernel == CPU_GEMM_OPENBLAS;
#ifdef HAVE_AVX512_KERNEL
    __builtin_cpu_init();
    if (kernel == CPU_GEMM_AVX512) ok = __builtin_cpu_supports("avx512f");
    if (kernel == CPU_GEMM_AVX2) ok = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
#endif
    if (ok) atomic_store(&use_avx512, kernel);
    return ok;
}

void herdi_cpu_gemm_select(int allow_avx512) {
    const char *e = getenv("HERD_CPU");
    int avx2_only = e && !strcmp(e, "avx2");
    if (!allow_avx512 || ((avx2_only || !herdi_cpu_gemm_use(CPU_GEMM_AVX512)) && !herdi_cpu_gemm_use(CPU_GEMM_AVX2)))
        herdi_cpu_gemm_use(CPU_GEMM_OPENBLAS);
}

int herdi_cpu_avx512_enabled(void) {
    int v = atomic_load_explicit(&use_avx512, memory_order_relaxed);
    if (v < 0) {
        herdi_cpu_gemm_select(1);
        v = atomic_load(&use_avx512);
    }
    return v == CPU_GEMM_AVX512;
}

int herdi_cpu_gemm_any_strides(void) {
    if (atomic_load(&use_avx512) < 0) herdi_cpu_gemm_select(1);
    return atomic_load(&use_avx512) != CPU_GEMM_OPENBLAS;
}

const char *herdi_cpu_gemm_kernel(void) {
    if (atomic_load(&use_avx512) < 0) herdi_cpu_gemm_select(1);
    int v = atomic_load(&use_avx512);
    return v == CPU_GEMM_AVX512 ? "avx512" : v == CPU_GEMM_AVX2 ? "avx2" : "openblas";
}

void herdi_cpu_transpose(float *dst, const float *src, int rows, int cols) {
    herdi_cpu_transpose_ld(dst, (size_t)rows, src, (size_t)cols, rows, cols);
}

void herdi_cpu_transpose_ld(float *dst, size_t ldd, const float *src, size_t lds, int rows, int cols) {
#ifdef HAVE_AVX512_KERNEL
    if (atomic_load_explicit(&use_avx512, memory_order_relaxed) == CPU_GEMM_AVX512) {
        transpose_avx512(dst, ldd, src, lds, rows, cols);
        return;
    }
#endif
    /* bands of 16 source columns keep the destination rows being written in L1 */
    for (int c0 = 0; c0 < cols; c0 += 16) {
        int c1 = c0 + 16 < cols ? c0 + 16 : cols;
        for (int r = 0; r < rows; r++) {
            const float *s = src + (size_t)r * lds;
            for (int c = c0; c < c1; c++) dst[(size_t)c * ldd + r] = s[c];
        }
    }
}

#ifdef HAVE_AVX512_KERNEL
static TARGET_AVX512 void transpose_add_avx512(float *dst, size_t ldd, const float *src, size_t lds, int rows,
                                               int cols) {
    float t[16 * 16];
    for (int r0 = 0; r0 < rows; r0 += 16)
        for (int c0 = 0; c0 < cols; c0 += 16) {
            int rr = rows - r0 < 16 ? rows - r0 : 16, cc = cols - c0 < 16 ? cols - c0 : 16;
            if (ldd == (size_t)rr) { /* the block is cc*rr floats in a row of dst (r0 = 0): added 16 at a time,
                                        not row by row, whose overlapping masked stores stall the next row's load */
                transpose_block(t, ldd, src + c0, lds, rr, cc);
                float *d = dst + (size_t)c0 * ldd;
                for (int k = 0; k < cc * rr; k += 16) {
                    __mmask16 m = cpu_lanes16(cc * rr - k);
                    _mm512_mask_storeu_ps(d + k, m, _mm512_add_ps(_mm512_maskz_loadu_ps(m, d + k), _mm512_maskz_loadu_ps(m, t + k)));
                }
                continue;
            }
            transpose_block(t, 16, src + (size_t)r0 * lds + c0, lds, rr, cc);
            __mmask16 m = cpu_lanes16(rr);
            for (int j = 0; j < cc; j++) {
                float *d = dst + (size_t)(c0 + j) * ldd + r0;
                _mm512_mask_storeu_ps(d, m, _mm512_add_ps(_mm512_maskz_loadu_ps(m, d), _mm512_maskz_loadu_ps(m, t + 16 * j)));
            }
        }
}
#endif

void herdi_cpu_transpose_add(float *dst, size_t ldd, const float *src, size_t lds, int rows, int cols) {
#ifdef HAVE_AVX512_KERNEL
    if (atomic_load_explicit(&use_avx512, memory_order_relaxed) == CPU_GEMM_AVX512) {
        transpose_add_avx512(dst, ldd, src, lds, rows, cols);
        return;
    }
#endif
    for (int r = 0; r < rows; r++)
        for (int c = 0; c < cols; c++) dst[(size_t)c * ldd + r] += src[(size_t)r * lds + c];
}

/* The epilogue off the vector kernels, after C holds the sums (+ C when accumulate): the bias
 * added where the caller did not write it into C first, then the activation. */
static void ep_after(int M, int N, const cpu_gemm_epilogue *ep, int bias_done, float *C, int ldc) {
    for (int i = 0; i < M; i++) {
        float *c = C + (size_t)i * ldc;
        if (ep->bias && !bias_done)
            for (int j = 0; j < N; j++) c[j] += ep->per_col ? ep->bias[j] : ep->bias[i];
        if (ep->scale)
            for (int j = 0; j < N; j++) c[j] = c[j] * ep->scale[ep->per_col ? j : i] + ep->shift[ep->per_col ? j : i];
        if (ep->act) herdi_cpu_act_apply_inplace(c, N, ep->act);
    }
}

/* ep_after on the one element *c of row i, column j */
static void ep_after_at(int i, int j, const cpu_gemm_epilogue *ep, float *c) {
    const int k = ep->per_col ? j : i;
    if (ep->bias) *c += ep->bias[k];
    if (ep->scale) *c = *c * ep->scale[k] + ep->shift[k];
    if (ep->act) herdi_cpu_act_apply_inplace(c, 1, ep->act);
}

/* C = the bias (each row, or each column), for a product to accumulate on */
static void ep_fill_bias(int M, int N, const cpu_gemm_epilogue *ep, float *C, int ldc) {
    for (int i = 0; i < M; i++)
        for (int j = 0; j < N; j++) C[(size_t)i * ldc + j] = ep->per_col ? ep->bias[j] : ep->bias[i];
}

void herdi_cpu_gemm_offsets(int M, int N, int K, const float *A, const int *ra, const int *pa, const float *B, int ldb,
                      int accumulate, const cpu_gemm_epilogue *ep, float *C, int ldc) {
#ifdef HAVE_AVX512_KERNEL
    if (M > 0 && N > 0 && herdi_cpu_avx512_enabled()) {
        gemm_offsets_avx512(M, N, K, A, ra, pa, B, ldb, accumulate, ep, C, ldc);
        return;
    }
#endif
    /* the same sums in the same order as the kernel, for callers off the AVX-512 path (tests) */
    const int transposed = ep && ep->transposed;
    for (int i = 0; i < M; i++)
        for (int j = 0; j < N; j++) {
            float acc = 0.0f;
            for (int p = 0; p < K; p++) acc = fmaf(A[ra[i] + pa[p]], B[(size_t)p * ldb + j], acc);
            if (transposed) { /* one element at a time through the same epilogue */
                C[(size_t)j * ldc + i] = acc;
                ep_after_at(i, j, ep, C + (size_t)j * ldc + i);
            } else {
                C[(size_t)i * ldc + j] = accumulate ? acc + C[(size_t)i * ldc + j] : acc;
            }
        }
    if (ep && !transposed && M > 0) ep_after(M, N, ep, 0, C, ldc);
}

void herdi_cpu_gemm(int M, int N, int K, const float *A, ptrdiff_t ars, ptrdiff_t acs, const float *B, int ldb,
              int accumulate, float *C, int ldc) {
    herdi_cpu_gemm_ep(M, N, K, A, ars, acs, B, ldb, accumulate, NULL, C, ldc);
}

void herdi_cpu_gemm_ep(int M, int N, int K, const float *A, ptrdiff_t ars, ptrdiff_t acs, const float *B, int ldb,
                 int accumulate, const cpu_gemm_epilogue *ep, float *C, int ldc) {
    if (M <= 0 || N <= 0) return;
    if (ep && !ep->bias && !ep->act && !ep->scale) ep = NULL;
    int fast = atomic_load_explicit(&use_avx512, memory_order_relaxed);
    if (fast < 0) {
        herdi_cpu_gemm_select(1);
        fast = atomic_load(&use_avx512);
    }
#ifdef HAVE_AVX512_KERNEL
    if (fast == CPU_GEMM_AVX512) {
        gemm_avx512(M, N, K, A, ars, acs, B, ldb, accumulate, ep, C, ldc);
        return;
    }
    if (fast == CPU_GEMM_AVX2) {
        herdi_cpu_gemm_avx2(M, N, K, A, ars, acs, B, ldb, accumulate, ep, C, ldc);
        return;
    }
#endif
    /* OpenBLAS: the bias written into C first and accumulated on (as the callers did before the
     * kernels took it), unless C's own values are accumulated on; the activation after */
    int bias_done = ep && ep->bias && !accumulate;
    if (bias_done) {
        ep_fill_bias(M, N, ep, C, ldc);
        accumulate = 1;
    }
    /* OpenBLAS wants one of the two strides to be 1, and refuses (computing nothing) a leading
     * dimension below the row length even where only one row is read: a single-row A read
     * transposed (M = 1, ars = acs = 1: conv din of a 1x1 kernel on one channel) gets lda = K,
     * a single-column one (K = 1) lda = M */
    if (acs == 1 && (ars != 1 || M == 1 || K == 1))
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, M, N, K, 1.0f, A, ars >= K ? (int)ars : K, B, ldb,
                    accumulate ? 1.0f : 0.0f, C, ldc);
    else
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, M, N, K, 1.0f, A, acs >= M ? (int)acs : M, B, ldb,
                    accumulate ? 1.0f : 0.0f, C, ldc);
    if (ep) ep_after(M, N, ep, bias_done, C, ldc);
}
