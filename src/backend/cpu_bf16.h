/* Private to the cpu backend's bf16 path (--precision bf16): matrices of bf16 pairs and the
 * vdpbf16ps product over them. A "pair matrix" stores two bf16 values of consecutive reduction
 * indices in each 32-bit element (lo half = the even index), in float-sized slots of the
 * planned workspace, so it is moved by the float transposes bit for bit. Products accumulate
 * in fp32; master weights, gradients, loss and optimizer stay fp32 (the caller's buffers). */
#ifndef HERD_CPU_BF16_H
#define HERD_CPU_BF16_H

#include "cpu_internal.h"

/* NULL when this CPU (and HERD_CPU) allows the bf16 kernels, else why not: one line. */
const char *herdi_cpu_bf16_unavailable(void);

/* Pair count of a reduction of n values: n rounded up to even, halved. */
static inline int cpu_bf16_pairs(int n) { return (n + 1) / 2; }

/* dst (rows, pairs(cols)) = each row of src (rows, cols; row stride lds) rounded to bf16
 * (nearest even), consecutive values paired; an odd last value is paired with 0. */
void herdi_cpu_bf16_pack_rows(float *dst, int ldd, const float *src, int lds, int rows, int cols);
/* dst[i] = the pair (a[i], b[i]) (b NULL: 0), i < n; a (b) first masked in place by the ReLU's
 * gradient where keep_a (keep_b) is not NULL, a[i] = keep_a[i] > 0 ? a[i] : 0 (bit for bit
 * herdi_cpu_act_mask_inplace): two images' output gradients paired for the weight gradient. */
void herdi_cpu_bf16_pack_two(float *dst, float *a, const float *keep_a, float *b, const float *keep_b, size_t n);
/* dst (pairs(rows), cols) = rows 2p and 2p+1 of src (rows, cols; stride lds) rounded to bf16
 * and interleaved column by column; an odd last row is paired with 0. */
void herdi_cpu_bf16_pack_row_pairs(float *dst, int ldd, const float *src, int lds, int rows, int cols);
/* A convolution's input in channel pairs: pin (pairs(C), H, W) = pack_row_pairs of the image's
 * (C, H*W) rows, element (cp, h, w) pairing channels 2cp and 2cp+1 (an odd last with 0). Its
 * im2col is the pair matrix of the reduction in the order (cp, kh, kw), moved as 32-bit values:
 * the bf16 conv's forward and input-gradient columns, and its weights paired the same way
 * (cpu_conv_bf16.c). */
/* dst (pairs(C)*KH*KW, OH*OW) = that im2col of one image in channel pairs, read from pin itself
 * (no padded copy); column stride 1 only (cpu_bf16_image_pairs_fit). */
void herdi_cpu_bf16_pack_image_pairs(float *dst, const float *pin, const conv2d_dims *d);
static inline int cpu_bf16_image_pairs_fit(const conv2d_dims *d) { return d->SW == 1; }
/* C (M, N) = A (M, P) * B (P, N), or C += when accumulate: A and B pair matrices, A(i, p) at
 * A[i*ars + p*acs] (stored either way round, as herdi_cpu_gemm's A: a pair matrix made along the
 * other dimension needs no transpose), B row-major with row stride ldb; each C element one
 * fixed-order fp32 sum of P vdpbf16ps steps, so results do not depend on threads or on A's
 * layout. P = 0 gives zeros (or leaves C). */
void herdi_cpu_gemm_bf16(int M, int N, int P, const float *A, ptrdiff_t ars, ptrdiff_t acs, const float *B, int ldb,
                   int accumulate, float *C, int ldc);

/* What herdi_cpu_gemm_bf16_offsets does with a result element C(i, j) as it stores it: + bias[j]
 * (NULL: nothing), then max(0, .) when relu. */
typedef struct cpu_bf16_epilogue {
    const float *bias;
    int relu;
} cpu_bf16_epilogue;
/* Ct (N, M) = (A (M, P) * B (P, N))^T, Ct(j, i) at Ct[j*ldc + i], or Ct += when accumulate, then
 * ep (NULL: C (M, N) stored as herdi_cpu_gemm_bf16 stores it); A(i, p) = A[ra[i] + pa[p]]: the columns of a convolution read where they lie in its input
 * in channel pairs, zero-padded (herdi_cpu_bf16_pad_pairs), as cpu_conv2d.c's direct path reads
 * fp32 ones; the product with the positions as rows (the kernel's 8-row tiles fit a 7x7 or 14x14
 * map better than its 32-column ones), stored straight into the (channels, positions) output. */
void herdi_cpu_gemm_bf16_offsets(int M, int N, int P, const float *A, const int *ra, const int *pa, const float *B,
                                 int ldb, int accumulate, const cpu_bf16_epilogue *ep, float *Ct, int ldc);
/* dst (planes, H + 2PH, W + 2PW), zero-padded: plane p pairs the (H, W) planes a + p*step and,
 * for p < bplanes, b + p*step (else 0). An image in channel pairs: a = in, b = in + H*W, step
 * 2*H*W, pairs(C) planes, C / 2 with a partner; two images side by side: a, b the images, step
 * H*W, C planes. */
void herdi_cpu_bf16_pad_pairs(float *dst, const float *a, const float *b, size_t step, int planes, int bplanes,
                              const conv2d_dims *d);

/* The bf16 conv (cpu_conv_bf16.c): groups and dilation are not supported (fp32 fallback). */
size_t herdi_cpu_conv_bf16_workspace(const conv2d_dims *d, int threads);
const char *herdi_cpu_conv_bf16_unsupported(const conv2d_dims *d);
void herdi_cpu_conv_bf16_forward(const herd_exec *ex, float *out, const float *in, const float *w, const float *b,
                           const conv2d_dims *d);
void herdi_cpu_conv_bf16_forward_act(const herd_exec *ex, float *out, const float *in, const float *w, const float *b,
                               const conv2d_dims *d, const conv2d_post *post);
void herdi_cpu_conv_bf16_backward(const herd_exec *ex, float *din, float *dw, float *db, const float *dout,
                            const float *in, const float *w, const conv2d_dims *d);
void herdi_cpu_conv_bf16_backward_act(const herd_exec *ex, float *din, float *dw, float *db, float *dout,
                                const float *out, const float *in, const float *w, const conv2d_dims *d, herd_act act);

/* The bf16 dense (cpu_dense_bf16.c). */
size_t herdi_cpu_dense_bf16_workspace(int B, int IN, int OUT, int threads);
void herdi_cpu_dense_bf16_forward(const herd_exec *ex, float *out, const float *in, const float *w, const float *b, int B,
                            int IN, int OUT);
void herdi_cpu_dense_bf16_backward(const herd_exec *ex, float *din, float *dw, float *db, const float *dout,
                             const float *in, const float *w, int B, int IN, int OUT);

/* cpu_conv2d.c's im2col and its inverse for one image, exported for the bf16 conv: col
 * (C*KH*KW, OH*OW); pad is scratch of herdi_cpu_conv2d_pad_floats(d) floats. */
size_t herdi_cpu_conv2d_pad_floats(const conv2d_dims *d);
void herdi_cpu_conv2d_image_to_col(float *col, float *pad, const float *in, const conv2d_dims *d);
/* Offsets into a zero-padded image of planes planes ((H+2PH) x (W+2PW) each): pos (OH*OW) and taps
 * (planes*KH*KW); column (tap k, position n) of im2col is at taps[k] + pos[n]. */
void herdi_cpu_conv2d_offsets(int *pos, int *taps, int planes, const conv2d_dims *d);
void herdi_cpu_conv2d_col_to_image_add(float *din, float *pad, const float *col, const conv2d_dims *d);

#endif
