/* Private to the cpu backend: its op entry points (one file per layer kind) and the
 * parallel-for wrapper that keeps tiny ops off the thread pool. */
#ifndef HERD_CPU_INTERNAL_H
#define HERD_CPU_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "backend.h"

/* AVX-512 code paths (GCC/Clang target attributes, chosen at run time by CPUID). */
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define HAVE_AVX512_KERNEL 1
#define TARGET_AVX512 __attribute__((target("avx512f")))
#include <immintrin.h>

/* The first n lanes of a 16-float vector (all for n >= 16). */
static inline __mmask16 cpu_lanes16(int n) { return n >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << n) - 1); }
/* Lanes 0, 2, ..., 30 of two vectors, for _mm512_permutex2var_ps: the even floats of 32
 * consecutive ones (a stride-2 row, or the even columns of a de-interleave); add 1 for the odd. */
static inline TARGET_AVX512 __m512i cpu_even_lanes(void) {
    return _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
}
/* act(v) for the fusable activations (else v), the bits herdi_cpu_act_apply_inplace gives: ReLU
 * v > 0 ? v : 0 (max takes its second operand when they are equal or one is NaN: -0 and NaN
 * give 0), ReLU6 the act op's clamp, v < 0 ? 0 : v > 6 ? 6 : v (NaN and -0 kept). */
static inline TARGET_AVX512 __m512 cpu_act_vec16(__m512 v, herd_act act) {
    if (act == HERD_ACT_RELU) return _mm512_max_ps(v, _mm512_setzero_ps());
    if (act == HERD_ACT_RELU6) return _mm512_min_ps(_mm512_set1_ps(6.0f), _mm512_max_ps(_mm512_setzero_ps(), v));
    return v;
}
/* r[i] lane j <- r[j] lane i: a 16x16 transpose in registers (the usual unpack/shuffle network). */
static inline TARGET_AVX512 __attribute__((always_inline)) void cpu_transpose16(__m512 r[16]) {
    __m512 t[16];
    for (int i = 0; i < 8; i++) {
        t[2 * i] = _mm512_unpacklo_ps(r[2 * i], r[2 * i + 1]);
        t[2 * i + 1] = _mm512_unpackhi_ps(r[2 * i], r[2 * i + 1]);
    }
    for (int g = 0; g < 16; g += 4) {
        __m512d a = _mm512_castps_pd(t[g]), b = _mm512_castps_pd(t[g + 2]);
        __m512d c = _mm512_castps_pd(t[g + 1]), e = _mm512_castps_pd(t[g + 3]);
        r[g] = _mm512_castpd_ps(_mm512_unpacklo_pd(a, b));
        r[g + 1] = _mm512_castpd_ps(_mm512_unpackhi_pd(a, b));
        r[g + 2] = _mm512_castpd_ps(_mm512_unpacklo_pd(c, e));
        r[g + 3] = _mm512_castpd_ps(_mm512_unpackhi_pd(c, e));
    }
    for (int h = 0; h < 16; h += 8)
        for (int i = 0; i < 4; i++) {
            t[h + i] = _mm512_shuffle_f32x4(r[h + i], r[h + 4 + i], 0x88);
            t[h + 4 + i] = _mm512_shuffle_f32x4(r[h + i], r[h + 4 + i], 0xdd);
        }
    for (int i = 0; i < 8; i++) {
        r[i] = _mm512_shuffle_f32x4(t[i], t[8 + i], 0x88);
        r[8 + i] = _mm512_shuffle_f32x4(t[i], t[8 + i], 0xdd);
    }
}
#endif

/* n floats rounded up to a multiple of 16: keeps every workspace slice on its own cache lines. */
/* Whether the backward of act (a ReLU, or ReLU6) passes the gradient at an output y: the test
 * of herdi_cpu_act_mask_inplace */
static inline int cpu_act_passes(float y, herd_act act) { return act == HERD_ACT_RELU6 ? y > 0.0f && y < 6.0f : y > 0.0f; }
static inline size_t cpu_round16(size_t n) { return (n + 15) & ~(size_t)15; }

/* The pool's workers spin ~100 us on an atomic before they sleep (src/core/pool.c), and ops
 * come back to back within a step, so a hand-off costs microseconds, not the ~60 us of a
 * condvar wake-up this threshold was first sized for. Calls estimated above
 * CPU_PARALLEL_MIN_NS single-threaded go to the pool. Callers estimate with the per-unit
 * costs below (measured on the Zen 5 dev VM; only their order of magnitude matters). */
#define CPU_PARALLEL_MIN_NS 20000
/* gemm-bound ops: 64 GFLOP/s per core, the low end of what conv1 (K=9) and dense reach */
#define CPU_NS_PER_MAC(macs) ((macs) / 32)
/* one pass over floats coming from L3: a training step finds activations there, not in L1/L2 */
#define CPU_NS_PER_STREAM_ELEM(n) ((n) / 4)

static inline int cpu_threads(const herd_exec *ex) { return ex ? herd_pool_threads(ex->pool) : 1; }

/* herd_pool_for over [0, n) on ex's pool when the call's estimated single-thread time
 * est_ns is big enough, else inline as thread 0. Every cpu op makes its result independent
 * of which thread runs which range, so this choice never changes the numbers. */
static inline void cpu_for(const herd_exec *ex, int64_t n, int64_t est_ns, herd_range_fn fn, void *ctx) {
    if (n <= 0) return;
    if (!ex || !ex->pool || cpu_threads(ex) == 1 || est_ns < CPU_PARALLEL_MIN_NS)
        fn(ctx, 0, n, 0);
    else
        herd_pool_for(ex->pool, n, fn, ctx);
}

/* Sum of n floats with 8 independent accumulators: vectorisable without fast-math,
 * and the order is fixed, so the result is reproducible. */
static inline float cpu_sum_floats(const float *x, int n) {
    float acc[8] = {0};
    int i = 0;
    for (; i + 8 <= n; i += 8)
        for (int k = 0; k < 8; k++) acc[k] += x[i + k];
    float s = ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]));
    for (; i < n; i++) s += x[i];
    return s;
}

/* Floats of B (K rows of a block of columns) per column block of the AVX-512 gemm, which sweeps
 * each block row tile by row tile: 32 KB, about L1. mobilenet_v2's 16 -> 96 pointwise
 * convolution on 112x112 (K 16, N 12544) ran at 35 GFLOP/s one 32-column panel at a time (all
 * 96 rows of C written at once) and 88 with blocks of 512 columns; at K >= 256 a block is one
 * panel, the order before. */
#define CPU_GEMM_BLOCK_FLOATS 8192

/* What a gemm does to each C element as it stores it: v = the sum (+ C's old value when
 * accumulate) (+ bias[i] of its row i, or bias[j] of its column j with per_col), then with
 * scale v = v * scale + shift (of the row, or the column with per_col: a folded batch norm,
 * conv2d_post), then act(v) (HERD_ACT_NONE, HERD_ACT_RELU or HERD_ACT_RELU6, the bits
 * herdi_cpu_act_apply_inplace gives). The kernels apply it in the tile's registers, so a conv +
 * bias + batch norm + activation writes its output once; the sum + bias is the same addition
 * as a bias written into C first and accumulated on. With transposed (herdi_cpu_gemm_offsets
 * only, no accumulate) element (i, j) goes to C[j*ldc + i]: C is stored (N, M), the tile
 * transposed in registers, so a transposed conv product lands in out (OC, OH*OW) without a
 * pass over outT; the values are the same, only where they are written changes. */
typedef struct cpu_gemm_epilogue {
    const float *bias; /* NULL: none */
    int per_col;
    herd_act act;
    const float *scale, *shift; /* NULL: none */
    int transposed;
} cpu_gemm_epilogue;
/* The post (conv2d_post; NULL: none) of output channel oc on n of its outputs at x, one thread:
 * for the conv paths that finish their outputs after the sums. */
void herdi_cpu_post_plane(float *x, int64_t n, const conv2d_post *post, int oc);
/* C (M, N) = A (M, K) * B (K, N), or C += when accumulate. A(i, p) = A[i*ars + p*acs] with
 * ars or acs equal to 1 (A stored either way round), or any strides where
 * herdi_cpu_gemm_any_strides(); B and C row-major with ldb, ldc.
 * K = 0 gives zeros (or leaves C). Deterministic: each C element is one fixed-order sum. */
void herdi_cpu_gemm(int M, int N, int K, const float *A, ptrdiff_t ars, ptrdiff_t acs, const float *B, int ldb,
              int accumulate, float *C, int ldc);
/* herdi_cpu_gemm then the epilogue ep (NULL: none) on each element as it is stored. */
void herdi_cpu_gemm_ep(int M, int N, int K, const float *A, ptrdiff_t ars, ptrdiff_t acs, const float *B, int ldb,
                 int accumulate, const cpu_gemm_epilogue *ep, float *C, int ldc);
/* herdi_cpu_gemm_ep with A(i, p) = A[ra[i] + pa[p]]: an image's im2col columns read where they lie in
 * the zero-padded image (cpu_conv2d.c's direct path). Each C element is the same fixed-order
 * sum as herdi_cpu_gemm's AVX-512 kernel makes of the materialised columns (fmaf steps elsewhere). */
void herdi_cpu_gemm_offsets(int M, int N, int K, const float *A, const int *ra, const int *pa, const float *B, int ldb,
                      int accumulate, const cpu_gemm_epilogue *ep, float *C, int ldc);
/* dst (cols, rows) = src (rows, cols)^T; AVX-512 16x16 blocks when herdi_cpu_gemm uses that kernel. */
void herdi_cpu_transpose(float *dst, const float *src, int rows, int cols);
/* the same with the rows of dst ldd floats apart and those of src lds apart (a block of a matrix) */
void herdi_cpu_transpose_ld(float *dst, size_t ldd, const float *src, size_t lds, int rows, int cols);
/* dst[c*ldd + r] += src[r*lds + c] for r < rows, c < cols: a transposed block added in place (one
 * add per element, so the sums are those of an element-by-element loop), 16x16 blocks as above. */
void herdi_cpu_transpose_add(float *dst, size_t ldd, const float *src, size_t lds, int rows, int cols);
/* Which kernel herdi_cpu_gemm uses: "avx512", "avx2" or "openblas". herdi_cpu_gemm_select(0) forces OpenBLAS
 * (tests use it to cover both paths); herdi_cpu_gemm_select(1) restores the run-time choice: AVX-512
 * where the CPU has it, else AVX2/FMA, else OpenBLAS; HERD_CPU=avx2 skips AVX-512. */
const char *herdi_cpu_gemm_kernel(void);
/* 1 when herdi_cpu_gemm's kernel takes A at any strides (the AVX-512 and AVX2 kernels broadcast
 * each element from where it lies; OpenBLAS needs one of them 1). */
int herdi_cpu_gemm_any_strides(void);
/* 1 when the AVX-512 paths are in use (same switch as herdi_cpu_gemm's kernel). */
int herdi_cpu_avx512_enabled(void);
void herdi_cpu_gemm_select(int allow_avx512);
enum { CPU_GEMM_OPENBLAS = 0, CPU_GEMM_AVX512 = 1, CPU_GEMM_AVX2 = 2 };
/* Forces one CPU_GEMM_* kernel (tests); 0 (and no change) if this CPU cannot run it. */
int herdi_cpu_gemm_use(int kernel);
/* NULL, or one line when HERD_CPU holds something other than avx512 or avx2. */
const char *herdi_cpu_env_error(void);
/* the AVX2/FMA kernel (cpu_gemm_avx2.c), herdi_cpu_gemm_ep's contract */
void herdi_cpu_gemm_avx2(int M, int N, int K, const float *A, ptrdiff_t ars, ptrdiff_t acs, const float *B, int ldb,
                   int accumulate, const cpu_gemm_epilogue *ep, float *C, int ldc);

/* The table's conv entries (cpu_conv_grouped.c): groups or dilation there, else cpu_conv2d_* */
size_t herdi_cpu_conv_workspace(const conv2d_dims *d, int threads);
void herdi_cpu_conv_forward(const herd_exec *ex, float *out, const float *in, const float *w, const float *b,
                      const conv2d_dims *d);
void herdi_cpu_conv_forward_act(const herd_exec *ex, float *out, const float *in, const float *w, const float *b,
                          const conv2d_dims *d, const conv2d_post *post);
void herdi_cpu_conv_backward(const herd_exec *ex, float *din, float *dw, float *db, const float *dout, const float *in,
                       const float *w, const conv2d_dims *d);
void herdi_cpu_conv_backward_act(const herd_exec *ex, float *din, float *dw, float *db, float *dout, const float *out,
                           const float *in, const float *w, const conv2d_dims *d, herd_act act);
/* the sgemm path (cpu_conv2d.c): convolutions without groups or dilation */
size_t herdi_cpu_conv2d_workspace(const conv2d_dims *d, int threads);
/* floats of weights kept prepared for inference (herd_exec.prep): the backend's conv2d_prepared */
size_t herdi_cpu_conv_prepared(const conv2d_dims *d);
size_t herdi_cpu_conv2d_prepared(const conv2d_dims *d);
const char *herdi_cpu_conv2d_unsupported(const conv2d_dims *d);
void herdi_cpu_conv2d_forward(const herd_exec *ex, float *out, const float *in, const float *w, const float *b,
                        const conv2d_dims *d);
void herdi_cpu_conv2d_forward_act(const herd_exec *ex, float *out, const float *in, const float *w, const float *b,
                            const conv2d_dims *d, const conv2d_post *post);
/* 1 when HERD_CONV=gemm keeps every plain convolution on im2col + sgemm (cpu_conv2d.c). */
int herdi_cpu_conv_gemm_only(void);
/* HERD_CONV=wino2: Winograd takes F(2x2) tiles on every shape (cpu_winograd.c) */
int herdi_cpu_conv_winograd_f2_only(void);
/* Depthwise 3x3, stride 1 or 2 (cpu_dwconv.c, AVX-512): the forward of such a grouped conv, the
 * same bits as cpu_conv_grouped.c's kernel; cpu_conv_grouped.c hands the shapes that fit to it. */
int herdi_cpu_dwconv_fits(const conv2d_dims *d);
void herdi_cpu_dwconv_forward(const herd_exec *ex, float *out, const float *in, const float *w, const float *b,
                              const conv2d_dims *d, const conv2d_post *post);
/* Tiny maps (cpu_conv_taps.c): convolutions whose in-bounds (output, input) pairs are at most
 * 60% of im2col's products, one product per tap; cpu_conv2d_* hand such shapes to it. */
int herdi_cpu_conv_taps_applies(const conv2d_dims *d);
size_t herdi_cpu_conv_taps_workspace(const conv2d_dims *d, int threads);
/* panels: NULL, or w^T prepared for inference in blocks of 32 output channels, block oc0 (K, nb)
 * at panels + oc0*K (cpu_conv2d.c's prepared_panels); the products then read them in place of w */
void herdi_cpu_conv_taps_forward(const herd_exec *ex, float *out, const float *in, const float *w, const float *b,
                           const conv2d_dims *d, const conv2d_post *post, const float *panels);
void herdi_cpu_conv_taps_backward(const herd_exec *ex, float *din, float *dw, float *db, const float *dout,
                            const float *in, const float *w, const conv2d_dims *d);
/* Winograd F(2x2, 3x3) and F(4x4, 3x3) (cpu_winograd.c): 3x3 convolutions with stride 1 and padding 1 and
 * enough channels; cpu_conv2d_* hand such shapes to it. Same accumulate rules as conv2d. */
int herdi_cpu_winograd_applies(const conv2d_dims *d);
size_t herdi_cpu_winograd_workspace(const conv2d_dims *d);
/* floats of transformed kernels an inference-only model keeps for d (d->B the planned batch;
 * 0: transformed per call), and the transform itself into U */
size_t herdi_cpu_winograd_prepared(const conv2d_dims *d);
void herdi_cpu_winograd_kernels(const herd_exec *ex, float *U, const float *w, const conv2d_dims *d);
/* U: the kernels herdi_cpu_winograd_kernels made (prepared), or NULL to transform them here */
void herdi_cpu_winograd_forward(const herd_exec *ex, float *out, const float *in, const float *w, const float *b,
                          const conv2d_dims *d, const conv2d_post *post, const float *U);
void herdi_cpu_winograd_backward(const herd_exec *ex, float *din, float *dw, float *db, const float *dout, const float *in,
                           const float *w, const conv2d_dims *d);
void herdi_cpu_act_backward_inplace(const herd_exec *ex, float *g, const float *out, int64_t n, herd_act act);
void herdi_cpu_conv2d_backward_act(const herd_exec *ex, float *din, float *dw, float *db, float *dout, const float *out,
                             const float *in, const float *w, const conv2d_dims *d, herd_act act);
void herdi_cpu_conv2d_backward(const herd_exec *ex, float *din, float *dw, float *db, const float *dout, const float *in,
                         const float *w, const conv2d_dims *d);
/* GELU over x[0..n) (tanh_form: GPT-2's tanh approximation, else the exact erf form), vectorized
 * (cpu_gelu.c); backward adds g * gelu'(x) into dx */
void herdi_cpu_gelu_forward(float *y, const float *x, int64_t n, int tanh_form);
void herdi_cpu_gelu_backward(float *dx, const float *g, const float *x, int64_t n, int tanh_form);
void herdi_cpu_dense_forward(const herd_exec *ex, float *out, const float *in, const float *w, const float *b, int B, int IN,
                       int OUT);
void herdi_cpu_dense_backward(const herd_exec *ex, float *din, float *dw, float *db, const float *dout, const float *in,
                        const float *w, int B, int IN, int OUT);
void herdi_cpu_maxpool2d_forward(const herd_exec *ex, float *out, int32_t *argmax, const float *in, const pool2d_dims *d);
void herdi_cpu_maxpool2d_backward(const herd_exec *ex, float *din, const float *dout, const int32_t *argmax,
                            const pool2d_dims *d);
void herdi_cpu_maxpool2d_backward_set(const herd_exec *ex, float *din, const float *dout, const int32_t *argmax,
                                      const float *out, herd_act act, const pool2d_dims *d);
void herdi_cpu_avgpool2d_forward(const herd_exec *ex, float *out, const float *in, const pool2d_dims *d);
void herdi_cpu_avgpool2d_backward(const herd_exec *ex, float *din, const float *dout, const pool2d_dims *d);
void herdi_cpu_batchnorm_forward_train(const herd_exec *ex, float *out, float *mean, float *rstd, float *running_mean,
                                 float *running_var, const float *in, const float *gamma, const float *beta, int B,
                                 int C, int HW, float momentum, float eps, herd_act act);
void herdi_cpu_batchnorm_forward_eval(const herd_exec *ex, float *out, const float *in, const float *gamma,
                                const float *beta, const float *running_mean, const float *running_var, int B, int C,
                                int HW, float eps, herd_act act);
void herdi_cpu_batchnorm_eval_affine(float *scale, float *shift, const float *gamma, const float *beta,
                                const float *running_mean, const float *running_var, int C, float eps);
void herdi_cpu_batchnorm_backward(const herd_exec *ex, float *din, float *dgamma, float *dbeta, float *dout,
                            const float *in, const float *mean, const float *rstd, const float *gamma, int B, int C,
                            int HW, const bn_backward_fusion *f);
void herdi_cpu_act_forward(const herd_exec *ex, float *out, const float *in, int64_t n, herd_act act, float alpha);
void herdi_cpu_act_backward(const herd_exec *ex, float *din, const float *dout, const float *in, const float *out,
                      int64_t n, herd_act act, float alpha);
/* x = act(x) for the fusable activations (HERD_ACT_RELU, HERD_ACT_RELU6), one thread, as
 * herdi_cpu_act_forward computes them; g = the in-place backward of act given its output out
 * (see act_backward_inplace in backend.h). */
void herdi_cpu_act_apply_inplace(float *x, int64_t n, herd_act act);
/* the backend's add_act_forward: contiguous ranges per thread */
void herdi_cpu_add_act_forward(const herd_exec *ex, float *out, const float *a, const float *b, int64_t n, herd_act act);
void herdi_cpu_act_mask_inplace(float *g, const float *out, int64_t n, herd_act act);

size_t herdi_cpu_attention_workspace(const attn_dims *d, int threads);
void herdi_cpu_attention_forward(const herd_exec *ex, float *out, float *att, const float *qkv, const attn_dims *d);
void herdi_cpu_attention_backward(const herd_exec *ex, float *dqkv, const float *dout, const float *qkv, const float *att,
                            const attn_dims *d);

#endif
