/* cpu conv2d: per-image im2col + single-threaded herdi_cpu_gemm on herd's pool. Images are handed
 * out dynamically (each is computed the same way whoever takes it); dw/db use a fixed split
 * into slots whose partials are summed in slot order, so results are reproducible. Small
 * feature maps (fewer than 32 outputs per channel, as ResNet's last stages) put G images side
 * by side in one product, since a product 4 columns wide runs at a fraction of the kernel's
 * speed; their weight gradient is one product as deep as a chunk of images, split across
 * threads by blocks of dw's columns (no partials to sum: the order is the same whatever the
 * thread count). */
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "cpu_internal.h"

#ifdef HAVE_AVX512_KERNEL
#include <immintrin.h>
#endif

/* 1x1, stride 1, no padding: the image itself is the column matrix. */
static int is_pointwise(const conv2d_dims *d) {
    return d->KH == 1 && d->KW == 1 && d->SH == 1 && d->SW == 1 && d->PH == 0 && d->PW == 0;
}

static size_t col_floats(const conv2d_dims *d) {
    if (is_pointwise(d)) return 0;
    return cpu_round16((size_t)d->C * d->KH * d->KW * (size_t)d->OH * d->OW);
}

/* dout of one image transposed, (OH*OW, OC): see conv_backward_slots. */
static size_t doutT_floats(const conv2d_dims *d) { return cpu_round16((size_t)d->OH * d->OW * d->OC); }

/* A slot's dw partial, transposed (C*KH*KW, OC), then its db partial (OC). */
static size_t partial_floats(const conv2d_dims *d) {
    return cpu_round16((size_t)d->OC * d->C * d->KH * d->KW + (size_t)d->OC);
}

/* One image zero-padded, (C, H+2PH, W+2PW): the AVX-512 im2col/col2im work on it so that
 * every row they move is in bounds and needs no edge logic. */
static size_t padded_floats(const conv2d_dims *d) {
    if (is_pointwise(d)) return 0;
    return cpu_round16((size_t)d->C * (d->H + 2 * (size_t)d->PH) * (d->W + 2 * (size_t)d->PW));
}

/* Images per product for small feature maps (1: none): enough to make the product at least
 * 64 columns wide. Independent of the batch, so a plan for a batch fits any smaller one. */
static int group_images(const conv2d_dims *d) {
    int N = d->OH * d->OW;
    return N >= 32 ? 1 : (64 + N - 1) / N;
}

static int64_t ceil_to(int64_t n, int64_t m) { return (n + m - 1) / m * m; }

/* Whether forward and the din product run transposed, with the spatial size N = OH*OW as
 * the gemm's rows: the kernel's tiles are 8 rows by 32 columns, so out (OC, N) wastes the
 * lanes of a partial last column panel (N = 49: 49 of 64 used; N = 196: 196 of 224), while
 * outT (N, OC) with OC a multiple of 32 wastes only part of one row tile. Same products in
 * the same order either way, so the results are bit-identical; only the AVX-512 kernel
 * (whose tile shape this is about) takes this path. Pointwise convolutions too, forward only
 * (their din product is read in place, never transposed): mobilenet_v2's 7x7 and 14x14 ones
 * ran 10-25% faster in CPU time transposed, the transpose of outT included (960 -> 160 on 7x7
 * 80 -> 103 GFLOP/s, 160 -> 960 75 -> 94, 384 -> 64 on 14x14 85 -> 97); 56x56 (N = 3136) stays. */
static int shape_prefers_T(const conv2d_dims *d) {
    int64_t N = (int64_t)d->OH * d->OW;
    return ceil_to(N, 8) * ceil_to(d->OC, 32) * 20 < ceil_to(d->OC, 8) * ceil_to(N, 32) * 19;
}

static int use_T(const conv2d_dims *d) { return shape_prefers_T(d) && herdi_cpu_avx512_enabled() && group_images(d) == 1; }

/* The transposed din product takes the weights' columns tap-major (colr_to_image_add): stride 1,
 * where the slot's col scratch (C*KH*KW*OH*OW floats) holds the C*H*W of an image. */
static int use_tap_major(const conv2d_dims *d) {
#ifdef HAVE_AVX512_KERNEL
    return use_T(d) && !is_pointwise(d) && d->SH == 1 && d->SW == 1;
#else
    (void)d;
    return 0;
#endif
}

/* colT (OH*OW, C*KH*KW): the transposed din product's output, before it is turned into col. */
static size_t colT_floats(const conv2d_dims *d) { return shape_prefers_T(d) ? col_floats(d) : 0; }

/* Grouped slot: [gcol (K, G*N) | gout (OC, G*N) | col of one image | padded]; gout holds the
 * outputs (forward) or the gathered output gradients (din). */
static size_t group_floats(const conv2d_dims *d) {
    size_t GN = (size_t)group_images(d) * d->OH * d->OW, K = (size_t)d->C * d->KH * d->KW;
    return cpu_round16(K * GN) + cpu_round16((size_t)d->OC * GN) + cpu_round16(K * d->OH * d->OW) + padded_floats(d);
}

/* The grouped weight gradient takes the batch DW_CHUNK_ROWS rows (image, output position) at
 * a time: dw (OC, K) += doutR (OC, R) * colT (R, K). Deep enough that the kernel's tiles
 * amortise loading and storing dw (a few passes over it at most), small enough that colT
 * stays a few MB (ResNet-18's layer4: 512 x 4608 floats). Independent of the thread count,
 * so the summation order is too. */
#define DW_CHUNK_ROWS 512

static int dw_chunk_images(const conv2d_dims *d) {
    int N = d->OH * d->OW, c = DW_CHUNK_ROWS / N;
    return c < 1 ? 1 : c;
}

/* Shared by the slots: [colT (R, K) | doutR (OC, R)] for a chunk of R rows. */
static size_t dw_chunk_floats(const conv2d_dims *d) {
    int c = dw_chunk_images(d) < d->B ? dw_chunk_images(d) : d->B;
    size_t R = (size_t)c * d->OH * d->OW;
    return cpu_round16(R * d->C * d->KH * d->KW) + cpu_round16((size_t)d->OC * R);
}

/* Per slot: [col | padded | doutT | partial | colT]; forward uses col, padded and doutT
 * (as outT (OH*OW, OC) when transposed). */
static size_t slot_floats(const conv2d_dims *d, int backward) {
    (void)backward;
    if (group_images(d) > 1) return group_floats(d);
    return col_floats(d) + padded_floats(d) + doutT_floats(d) + partial_floats(d) + colT_floats(d);
}

/* Where a slot's dw/db partial starts (ungrouped slots). */
static size_t partial_offset(const conv2d_dims *d) { return col_floats(d) + padded_floats(d) + doutT_floats(d); }

/* Stems on images of at most DIRECT_MAX_C channels (3-channel 5x5 or 7x7 convolutions on
 * 224x224 photos): their im2col columns are few and long (75 x 3136 floats for a 5x5 stride-4
 * stem, more than L2), so materialising them cost as much as the product. The direct path reads
 * them where they lie in the zero-padded image instead, through two offset tables (output
 * positions, kernel taps): forward as outT (OH*OW, OC) = cols^T * wT, dw as dwT = cols * doutT.
 * Each element is the same fixed-order sum as the AVX-512 kernel makes of the copied columns
 * (forward in the transposed form, which use_T shows gives the same sums), so the results are
 * bit-identical to im2col + herdi_cpu_gemm; din, where asked, keeps the im2col path. */
#define DIRECT_MAX_C 4
/* ... and only where the columns outgrow L2 (1 MB of floats together with the product's other
 * operands): small ones (a 1-channel 28x28 image: 9 x 784) are cheap to copy and the plain
 * product, 32 output positions a tile, runs faster than the transposed one on few channels. */
#define DIRECT_MIN_COL_FLOATS 65536

static int direct_shape(const conv2d_dims *d) {
    return d->C <= DIRECT_MAX_C && !is_pointwise(d) && group_images(d) == 1 &&
           (size_t)d->C * d->KH * d->KW * d->OH * d->OW >= DIRECT_MIN_COL_FLOATS;
}

static int use_direct(const conv2d_dims *d) { return direct_shape(d) && herdi_cpu_avx512_enabled(); }

static int shape_prefers_T(const conv2d_dims *d);
/* The forward also reads in place the columns of the shapes that run transposed (use_T: 3x3
 * convolutions on 7x7 to 14x14 maps, as the example CNN's conv2 and conv3), the same sums as
 * outT = colT * wT: the example CNN's eval at batch 256 spent 8% of its CPU time in im2col and
 * 6% less in all without it (perf samples, one thread). Not with fewer images than threads:
 * the forward split by columns (batch-1 latency) needs the materialised columns. */
static int direct_T_shape(const conv2d_dims *d) { return !is_pointwise(d) && group_images(d) == 1 && shape_prefers_T(d); }

static int use_direct_forward(const herd_exec *ex, const conv2d_dims *d) {
    return use_direct(d) || (direct_T_shape(d) && d->B >= cpu_threads(ex) && herdi_cpu_avx512_enabled());
}

/* Also the bf16 conv's tables over its channel pairs (cpu_bf16.h). */
void herdi_cpu_conv2d_offsets(int *pos, int *taps, int planes, const conv2d_dims *d) {
    const int Hp = d->H + 2 * d->PH, Wp = d->W + 2 * d->PW;
    for (int oh = 0; oh < d->OH; oh++)
        for (int ow = 0; ow < d->OW; ow++) pos[oh * d->OW + ow] = oh * d->SH * Wp + ow * d->SW;
    for (int c = 0; c < planes; c++)
        for (int kh = 0; kh < d->KH; kh++)
            for (int kw = 0; kw < d->KW; kw++) taps[(c * d->KH + kh) * d->KW + kw] = (c * Hp + kh) * Wp + kw;
}

/* The offset tables in the shared workspace, after wT: pos (OH*OW), then taps (C*KH*KW):
 * column (tap k, position n) of im2col is pad[taps[k] + pos[n]]. */
static int *direct_offsets(float *shared, const conv2d_dims *d) {
    int *pos = (int *)(shared + cpu_round16((size_t)d->OC * d->C * d->KH * d->KW));
    herdi_cpu_conv2d_offsets(pos, pos + d->OH * d->OW, d->C, d);
    return pos;
}

/* The weight gradient reads the columns in the padded image through the offset tables, as the
 * direct forward does (dwT += the columns * doutT, the sums of im2col + herdi_cpu_gemm's AVX-512
 * kernel): every ungrouped shape with columns. No im2col of each image in the backward (the
 * example CNN's three convolutions: 2.9% of a batch-256 step's samples were im2col_padded). */
static int dw_offsets_shape(const conv2d_dims *d) { return !is_pointwise(d) && group_images(d) == 1; }

static int use_dw_offsets(const conv2d_dims *d) { return dw_offsets_shape(d) && herdi_cpu_avx512_enabled(); }

/* After the slots, shared: wT (C*KH*KW, OC), the weights transposed once per forward call (or
 * the backward's tap-major wR), then the offset tables; grouped: the weight gradient's chunk. */
static size_t shared_floats(const conv2d_dims *d) {
    if (group_images(d) > 1) return dw_chunk_floats(d);
    size_t wT = cpu_round16((size_t)d->OC * d->C * d->KH * d->KW);
    if (dw_offsets_shape(d)) return wT + cpu_round16((size_t)d->OH * d->OW + (size_t)d->C * d->KH * d->KW);
    return shape_prefers_T(d) ? wT : 0;
}

/* HERD_CONV: "gemm" (im2col only), "wino2" (Winograd F(2x2) only), else 0 */
static int conv_env(void) {
    static int mode = -1; /* read once; a data race on this int at worst reads the env twice */
    if (mode < 0) {
        const char *e = getenv("HERD_CONV");
        mode = e && strcmp(e, "gemm") == 0 ? 1 : e && strcmp(e, "wino2") == 0 ? 2 : 0;
    }
    return mode;
}

int herdi_cpu_conv_gemm_only(void) { return conv_env() == 1; }
int herdi_cpu_conv_winograd_f2_only(void) { return conv_env() == 2; }

/* The shape takes the tiny-map path (cpu_conv_taps.c) and the caller planned its workspace. */
static int taps_fit(const herd_exec *ex, const conv2d_dims *d) {
    return herdi_cpu_conv_taps_applies(d) && ex && ex->workspace_floats >= herdi_cpu_conv_taps_workspace(d, cpu_threads(ex));
}

/* The shape takes the Winograd path (cpu_winograd.c) and the caller planned its workspace. */
static int winograd_fits(const herd_exec *ex, const conv2d_dims *d) {
    return herdi_cpu_winograd_applies(d) && ex && ex->workspace_floats >= herdi_cpu_winograd_workspace(d);
}

size_t herdi_cpu_conv2d_workspace(const conv2d_dims *d, int threads) {
    size_t t = threads < 1 ? 1 : (size_t)threads;
    size_t fast = herdi_cpu_winograd_applies(d)    ? herdi_cpu_winograd_workspace(d)
                  : herdi_cpu_conv_taps_applies(d) ? herdi_cpu_conv_taps_workspace(d, threads)
                                                   : 0;
    if (!fast) return t * slot_floats(d, 1) + shared_floats(d);
    /* and im2col's need at one image: a call with a smaller batch than planned (the last batch,
     * batch-1 inference) may leave Winograd and the tap path for it */
    size_t one = slot_floats(d, 1) + shared_floats(d);
    return fast > one ? fast : one;
}

const char *herdi_cpu_conv2d_unsupported(const conv2d_dims *d) {
    (void)d;
    return NULL;
}

/* Slots = images handled by one sgemm stream each: as many as the pool has threads,
 * no more than images, and no more than the workspace holds. 0 = workspace too small.
 * Backward with ex->fixed_parts: exactly that many (the pool runs several per thread), so
 * the slots' dw/db partials, and their sum, do not depend on the thread count; a workspace
 * too small for them gives 0 (the reference path) rather than fewer. */
static int conv_slots(const herd_exec *ex, const conv2d_dims *d, int backward) {
    int fixed = backward && ex && ex->fixed_parts > 0;
    int t = fixed ? ex->fixed_parts : cpu_threads(ex);
    if (t > d->B) t = d->B;
    size_t have = ex ? ex->workspace_floats : 0;
    for (; t >= 1; t--) {
        if ((size_t)t * slot_floats(d, backward) + shared_floats(d) <= have) return t;
        if (fixed) break;
    }
    return 0;
}

/* Range [ow0, ow1) of output columns whose input column ow*SW - PW + kw lies inside [0, W). */
static void valid_range(int kw, int SW, int PW, int W, int OW, int *lo, int *hi) {
    int a = PW - kw;
    int ow0 = a > 0 ? (a + SW - 1) / SW : 0;
    int top = W - 1 + PW - kw;
    int ow1 = top >= 0 ? top / SW + 1 : 0;
    if (ow1 > OW) ow1 = OW;
    if (ow1 < ow0) ow1 = ow0;
    *lo = ow0;
    *hi = ow1;
}

/* col (C*KH*KW, OH*OW) from one image (C, H, W), zeros where the window hits padding. */
static void im2col(float *col, const float *in, const conv2d_dims *d) {
    const int H = d->H, W = d->W, OH = d->OH, OW = d->OW, SH = d->SH, SW = d->SW;
    for (int c = 0; c < d->C; c++) {
        const float *plane = in + (size_t)c * H * W;
        for (int kh = 0; kh < d->KH; kh++) {
            for (int kw = 0; kw < d->KW; kw++) {
                float *row = col + ((size_t)(c * d->KH + kh) * d->KW + kw) * OH * OW;
                int ow0, ow1;
                valid_range(kw, SW, d->PW, W, OW, &ow0, &ow1);
                for (int oh = 0; oh < OH; oh++) {
                    float *r = row + (size_t)oh * OW;
                    int ih = oh * SH - d->PH + kh;
                    if (ih < 0 || ih >= H) {
                        memset(r, 0, sizeof(float) * (size_t)OW);
                        continue;
                    }
                    const float *src = plane + (size_t)ih * W;
                    int off = kw - d->PW;
                    for (int ow = 0; ow < ow0; ow++) r[ow] = 0.0f;
                    if (SW == 1) { /* rows are short (7..28): a loop beats a memcpy call */
                        for (int ow = ow0; ow < ow1; ow++) r[ow] = src[ow + off];
                    } else {
                        for (int ow = ow0; ow < ow1; ow++) r[ow] = src[ow * SW + off];
                    }
                    for (int ow = ow1; ow < OW; ow++) r[ow] = 0.0f;
                }
            }
        }
    }
}

/* din (C, H, W) += the columns of col scattered back to where im2col read them. */
static void col2im_add(float *din, const float *col, const conv2d_dims *d) {
    const int H = d->H, W = d->W, OH = d->OH, OW = d->OW, SH = d->SH, SW = d->SW;
    for (int c = 0; c < d->C; c++) {
        float *plane = din + (size_t)c * H * W;
        for (int kh = 0; kh < d->KH; kh++) {
            for (int kw = 0; kw < d->KW; kw++) {
                const float *row = col + ((size_t)(c * d->KH + kh) * d->KW + kw) * OH * OW;
                int ow0, ow1;
                valid_range(kw, SW, d->PW, W, OW, &ow0, &ow1);
                int off = kw - d->PW;
                for (int oh = 0; oh < OH; oh++) {
                    int ih = oh * SH - d->PH + kh;
                    if (ih < 0 || ih >= H) continue;
                    const float *r = row + (size_t)oh * OW;
                    float *dst = plane + (size_t)ih * W;
                    if (SW == 1) {
                        for (int ow = ow0; ow < ow1; ow++) dst[ow + off] += r[ow];
                    } else {
                        for (int ow = ow0; ow < ow1; ow++) dst[ow * SW + off] += r[ow];
                    }
                }
            }
        }
    }
}

#ifdef HAVE_AVX512_KERNEL
/* im2col from the zero-padded image P, column stride 1 or 2: each output row is OW floats of
 * P (contiguous, or every other one), moved 16 at a time with masked loads/stores (3x faster
 * than the scalar loops, which spend their time on edge logic for 7..28-float rows). */
static TARGET_AVX512 void im2col_padded(float *col, const float *P, const conv2d_dims *d) {
    const int Hp = d->H + 2 * d->PH, Wp = d->W + 2 * d->PW, OH = d->OH, OW = d->OW, SW = d->SW;
    const __m512i even = cpu_even_lanes();
    float *r = col;
    for (int c = 0; c < d->C; c++)
        for (int kh = 0; kh < d->KH; kh++)
            for (int kw = 0; kw < d->KW; kw++) {
                const float *base = P + ((size_t)c * Hp + kh) * Wp + kw;
                for (int oh = 0; oh < OH; oh++, r += OW) {
                    const float *src = base + (size_t)oh * d->SH * Wp;
                    for (int o = 0; o < OW; o += 16) {
                        __mmask16 m = cpu_lanes16(OW - o);
                        __m512 v;
                        if (SW == 1) {
                            v = _mm512_maskz_loadu_ps(m, src + o);
                        } else {
                            int span = 2 * (OW - o < 16 ? OW - o : 16) - 1; /* floats read */
                            __m512 a0 = _mm512_maskz_loadu_ps(cpu_lanes16(span), src + 2 * o);
                            __m512 a1 = _mm512_maskz_loadu_ps(cpu_lanes16(span - 16 > 0 ? span - 16 : 0), src + 2 * o + 16);
                            v = _mm512_permutex2var_ps(a0, even, a1);
                        }
                        _mm512_mask_storeu_ps(r + o, m, v);
                    }
                }
            }
}

/* col2im_padded for stride-1 rows of at most 16 padded columns (small feature maps): a padded
 * row stays in a register while the KW rows of col that land on it are added, each loaded at
 * lane offset kw; stored once. Each element receives its terms in the same (kh, kw) order as
 * below (for a given kh the row fixes oh), so the sums are bit-identical; the general loop's
 * masked read-modify-write of overlapping 2..7-float spans stalls on store forwarding. */
static TARGET_AVX512 void col2im_padded_short(float *P, const float *col, const conv2d_dims *d) {
    const int Hp = d->H + 2 * d->PH, Wp = d->W + 2 * d->PW, OH = d->OH, OW = d->OW, KH = d->KH, KW = d->KW;
    const __mmask16 row = cpu_lanes16(Wp);
    for (int c = 0; c < d->C; c++)
        for (int kh = 0; kh < KH; kh++)
            for (int oh = 0; oh < OH; oh++) {
                float *dst = P + ((size_t)c * Hp + kh + (size_t)oh * d->SH) * Wp;
                __m512 v = _mm512_maskz_loadu_ps(row, dst);
                const float *r = col + ((size_t)(c * KH + kh) * KW * OH + oh) * OW;
                for (int kw = 0; kw < KW; kw++, r += (size_t)OH * OW) {
                    __mmask16 m = (__mmask16)(cpu_lanes16(OW) << kw); /* lanes [kw, kw + OW): r[lane - kw] */
                    __m512 g = _mm512_maskz_expandloadu_ps(m, r);
                    v = _mm512_mask_add_ps(v, m, v, g);
                }
                _mm512_mask_storeu_ps(dst, row, v);
            }
}

/* P (zeroed by the caller) += the columns of col at the places im2col_padded read them. */
static TARGET_AVX512 void col2im_padded(float *P, const float *col, const conv2d_dims *d) {
    const int Hp = d->H + 2 * d->PH, Wp = d->W + 2 * d->PW, OH = d->OH, OW = d->OW, SW = d->SW;
    if (SW == 1 && Wp <= 16) {
        col2im_padded_short(P, col, d);
        return;
    }
    /* stride 2: outputs 0..7 to even lanes of the first vector, 8..15 of the second */
    const __m512i lo = _mm512_setr_epi32(0, 16, 1, 16, 2, 16, 3, 16, 4, 16, 5, 16, 6, 16, 7, 16);
    const __m512i hi = _mm512_add_epi32(lo, _mm512_setr_epi32(8, 0, 8, 0, 8, 0, 8, 0, 8, 0, 8, 0, 8, 0, 8, 0));
    const float *r = col;
    for (int c = 0; c < d->C; c++)
        for (int kh = 0; kh < d->KH; kh++)
            for (int kw = 0; kw < d->KW; kw++) {
                float *base = P + ((size_t)c * Hp + kh) * Wp + kw;
                for (int oh = 0; oh < OH; oh++, r += OW) {
                    float *dst = base + (size_t)oh * d->SH * Wp;
                    for (int o = 0; o < OW; o += 16) {
                        __mmask16 m = cpu_lanes16(OW - o);
                        __m512 g = _mm512_maskz_loadu_ps(m, r + o);
                        if (SW == 1) {
                            _mm512_mask_storeu_ps(dst + o, m, _mm512_add_ps(_mm512_maskz_loadu_ps(m, dst + o), g));
                        } else { /* lane 16 of the index picks a zero: odd columns get +0 */
                            int span = 2 * (OW - o < 16 ? OW - o : 16) - 1;
                            __mmask16 m0 = cpu_lanes16(span), m1 = cpu_lanes16(span - 16 > 0 ? span - 16 : 0);
                            __m512 z = _mm512_setzero_ps();
                            float *t = dst + 2 * o;
                            _mm512_mask_storeu_ps(t, m0, _mm512_add_ps(_mm512_maskz_loadu_ps(m0, t),
                                                                       _mm512_permutex2var_ps(g, lo, z)));
                            _mm512_mask_storeu_ps(t + 16, m1, _mm512_add_ps(_mm512_maskz_loadu_ps(m1, t + 16),
                                                                            _mm512_permutex2var_ps(g, hi, z)));
                        }
                    }
                }
            }
}
/* din (one image, C x H x W) += col2im of colR (OH*OW, KH*KW*C): the transposed din product with
 * each position's columns ordered tap-major (the weights' columns permuted, conv_backward), so
 * that the C values one tap gives one input position are contiguous. Each input position sums
 * its taps in registers, 16 channels at a time, starting from 0 in ascending (kh, kw) order: the
 * order col2im_padded adds them into the zeroed padded image, so the sums are bit-identical to
 * transposing colR to col and calling col_to_image_add, without that transpose, the padded
 * image, its zeroing and the read-modify-writes. The sums land channels-last in hwc (H*W, C),
 * then din += hwc^T (herdi_cpu_transpose_add: one add per element, as the transpose into a
 * scratch and the loop adding it did, without the scratch's round trip). Stride 1. */
static TARGET_AVX512 void colr_to_image_add(float *din, float *hwc, const float *colR, const conv2d_dims *d) {
    const int H = d->H, W = d->W, OH = d->OH, OW = d->OW, C = d->C, KW = d->KW;
    const size_t K = (size_t)C * d->KH * KW;
    for (int ih = 0; ih < H; ih++) {
        /* taps kh whose output row oh = ih + PH - kh lies in [0, OH) */
        int kh0 = ih + d->PH - (OH - 1) > 0 ? ih + d->PH - (OH - 1) : 0, kh1 = ih + d->PH < d->KH - 1 ? ih + d->PH : d->KH - 1;
        for (int iw = 0; iw < W; iw++) {
            int kw0 = iw + d->PW - (OW - 1) > 0 ? iw + d->PW - (OW - 1) : 0, kw1 = iw + d->PW < KW - 1 ? iw + d->PW : KW - 1;
            float *t = hwc + ((size_t)ih * W + iw) * C;
            for (int c = 0; c < C; c += 16) {
                __mmask16 m = cpu_lanes16(C - c);
                __m512 acc = _mm512_setzero_ps();
                for (int kh = kh0; kh <= kh1; kh++)
                    for (int kw = kw0; kw <= kw1; kw++) { /* output position (ih + PH - kh, iw + PW - kw) */
                        size_t n = (size_t)(ih + d->PH - kh) * OW + (size_t)(iw + d->PW - kw);
                        acc = _mm512_add_ps(acc, _mm512_maskz_loadu_ps(m, colR + n * K + (size_t)(kh * KW + kw) * C + c));
                    }
                _mm512_mask_storeu_ps(t + c, m, acc);
            }
        }
    }
    herdi_cpu_transpose_add(din, (size_t)H * W, hwc, (size_t)C, H * W, C);
}
#endif

#ifdef HAVE_AVX512_KERNEL
/* pad_image, 16 floats at a time: each padded row one masked load (the image's lanes, zeros
 * around them) and one store, instead of three libc calls on rows of 7..28 floats. */
static TARGET_AVX512 void pad_image_avx512(float *P, const float *in, const conv2d_dims *d) {
    const int Hp = d->H + 2 * d->PH, Wp = d->W + 2 * d->PW, W = d->W;
    for (int c = 0; c < d->C; c++)
        for (int r = 0; r < Hp; r++) {
            float *row = P + ((size_t)c * Hp + r) * Wp;
            const int h = r - d->PH, inside = h >= 0 && h < d->H;
            /* the row's float x is the image's x - PW: lanes [PW - o, PW + W - o) of the chunk at o */
            const float *src = inside ? in + ((size_t)c * d->H + h) * W : NULL;
            for (int o = 0; o < Wp; o += 16) {
                int lo = d->PW - o, hi = d->PW + W - o;
                lo = lo < 0 ? 0 : lo > 16 ? 16 : lo;
                hi = hi < 0 ? 0 : hi > 16 ? 16 : hi;
                __mmask16 m = inside ? (__mmask16)(cpu_lanes16(hi) & ~cpu_lanes16(lo)) : 0;
                __m512 v = _mm512_maskz_loadu_ps(m, m ? src + o - d->PW : row);
                _mm512_mask_storeu_ps(row + o, cpu_lanes16(Wp - o), v);
            }
        }
}
#endif

/* P = the image zero-padded by (PH, PW). */
static void pad_image(float *P, const float *in, const conv2d_dims *d) {
#ifdef HAVE_AVX512_KERNEL
    if (herdi_cpu_avx512_enabled()) {
        pad_image_avx512(P, in, d);
        return;
    }
#endif
    const int Hp = d->H + 2 * d->PH, Wp = d->W + 2 * d->PW;
    for (int c = 0; c < d->C; c++) { /* zeros only where the image does not land: one pass */
        float *plane = P + (size_t)c * Hp * Wp;
        memset(plane, 0, sizeof(float) * (size_t)d->PH * Wp);
        for (int h = 0; h < d->H; h++) {
            float *row = plane + (size_t)(h + d->PH) * Wp;
            memset(row, 0, sizeof(float) * (size_t)d->PW);
            memcpy(row + d->PW, in + ((size_t)c * d->H + h) * d->W, sizeof(float) * (size_t)d->W);
            memset(row + d->PW + d->W, 0, sizeof(float) * (size_t)d->PW);
        }
        memset(plane + (size_t)(d->H + d->PH) * Wp, 0, sizeof(float) * (size_t)d->PH * Wp);
    }
}

/* The vector paths take column strides 1 and 2; others use the scalar loops. */
static int use_padded(const conv2d_dims *d) {
#ifdef HAVE_AVX512_KERNEL
    return (d->SW == 1 || d->SW == 2) && herdi_cpu_avx512_enabled();
#else
    (void)d;
    return 0;
#endif
}

/* col = im2col(image); pad is the slot's padded-image scratch. */
static void image_to_col(float *col, float *pad, const float *in, const conv2d_dims *d) {
#ifdef HAVE_AVX512_KERNEL
    if (use_padded(d)) {
        pad_image(pad, in, d);
        im2col_padded(col, pad, d);
        return;
    }
#endif
    (void)pad;
    im2col(col, in, d);
}

/* din (one image) += col2im(col). */
static void col_to_image_add(float *din, float *pad, const float *col, const conv2d_dims *d) {
#ifdef HAVE_AVX512_KERNEL
    if (use_padded(d)) {
        const int Hp = d->H + 2 * d->PH, Wp = d->W + 2 * d->PW;
        memset(pad, 0, sizeof(float) * (size_t)d->C * Hp * Wp);
        col2im_padded(pad, col, d);
        for (int c = 0; c < d->C; c++)
            for (int h = 0; h < d->H; h++) {
                const float *s = pad + ((size_t)c * Hp + h + d->PH) * Wp + d->PW;
                float *t = din + ((size_t)c * d->H + h) * d->W;
                for (int w = 0; w < d->W; w++) t[w] += s[w];
            }
        return;
    }
#endif
    (void)pad;
    col2im_add(din, col, d);
}

typedef struct conv_job {
    const herd_exec *ex;
    const conv2d_dims *d;
    int slots;
    atomic_int next_image; /* dynamic hand-out: the two vCPUs of the dev VM run at unequal speeds */
    herd_act act;          /* forward: the ReLU/ReLU6 the gemm applies as it stores (HERD_ACT_NONE: none) */
    const float *scale, *shift; /* forward: a folded batch norm the gemm applies before act (conv2d_post), or NULL */
    float *mask_dout;      /* backward: dout to mask in place by the fused activation's output first, or NULL */
    const float *relu_out; /* ... that output, and the activation (act) */
    int skip_din;          /* backward: leave din to a second pass (it must wait for every mask) */
    float *out, *din, *dw, *db;
    const float *in, *w, *b, *dout;
    float *wT; /* forward, transposed form: w^T in the shared workspace; else NULL */
    const float *panels; /* forward, narrow form: w^T in prepared panels (prepared_panels) */
    float *wR; /* din, tap-major form (use_tap_major): w's columns as (kh, kw, c), in the shared workspace */
    const int *pos, *taps; /* the direct path's offset tables (direct_offsets); else NULL */
    const float *cols;   /* forward split by columns: the image's columns, its output (outT when transposed) */
    float *outb, *outT;
    int b0, b1;          /* grouped backward: the chunk of images whose dw/db is being added */
    float *colT, *doutR; /* ... its rows (image, position): colT (R, K), doutR (OC, R) */
} conv_job;

/* ---- small feature maps: G images per product ---- */

typedef struct group_slot {
    float *gcol, *gout, *col, *pad;
} group_slot;

static group_slot group_slot_at(const herd_exec *ex, const conv2d_dims *d, int64_t s) {
    size_t GN = (size_t)group_images(d) * d->OH * d->OW, K = (size_t)d->C * d->KH * d->KW;
    group_slot g;
    g.gcol = ex->workspace + (size_t)s * slot_floats(d, 1);
    g.gout = g.gcol + cpu_round16(K * GN);
    g.col = g.gout + cpu_round16((size_t)d->OC * GN);
    g.pad = g.col + cpu_round16(K * d->OH * d->OW);
    return g;
}

/* gcol (K, n*N): the columns of images [b, b + n) side by side. */
static void group_to_cols(const group_slot *g, const float *in, int b, int n, const conv2d_dims *d) {
    const int K = d->C * d->KH * d->KW, N = d->OH * d->OW;
    for (int i = 0; i < n; i++) {
        const float *inb = in + (size_t)(b + i) * d->C * d->H * d->W;
        const float *cols = inb;
        if (!is_pointwise(d)) {
            image_to_col(g->col, g->pad, inb, d);
            cols = g->col;
        }
        for (int k = 0; k < K; k++) memcpy(g->gcol + (size_t)k * n * N + (size_t)i * N, cols + (size_t)k * N, sizeof(float) * N);
    }
}

static void conv_forward_groups(void *ctx, int64_t s0, int64_t s1, int thread) {
    (void)thread;
    (void)s1;
    conv_job *j = ctx;
    const conv2d_dims *d = j->d;
    const int K = d->C * d->KH * d->KW, N = d->OH * d->OW, G = group_images(d), OC = d->OC;
    group_slot g = group_slot_at(j->ex, d, s0);
    for (;;) {
        int b = G * atomic_fetch_add_explicit(&j->next_image, 1, memory_order_relaxed);
        if (b >= d->B) break;
        int n = d->B - b < G ? d->B - b : G, GN = n * N;
        group_to_cols(&g, j->in, b, n, d);
        const cpu_gemm_epilogue ep = {.bias = j->b, .act = j->act, .scale = j->scale, .shift = j->shift};
        herdi_cpu_gemm_ep(OC, GN, K, j->w, K, 1, g.gcol, GN, 0, &ep, g.gout, GN);
        for (int i = 0; i < n; i++) {
            float *outb = j->out + (size_t)(b + i) * OC * N;
            for (int oc = 0; oc < OC; oc++) memcpy(outb + (size_t)oc * N, g.gout + (size_t)oc * GN + (size_t)i * N, sizeof(float) * N);
        }
    }
}

/* Grouped backward, phase 1 for the chunk [b0, b1): each image's dout masked (fused ReLU), its
 * rows of doutR and colT written. Images are handed out dynamically; each is written alike. */
static void conv_dw_gather(void *ctx, int64_t s0, int64_t s1, int thread) {
    (void)thread;
    (void)s1;
    conv_job *j = ctx;
    const conv2d_dims *d = j->d;
    const int K = d->C * d->KH * d->KW, N = d->OH * d->OW, OC = d->OC;
    const size_t R = (size_t)(j->b1 - j->b0) * N;
    group_slot g = group_slot_at(j->ex, d, s0);
    for (;;) {
        int b = j->b0 + atomic_fetch_add_explicit(&j->next_image, 1, memory_order_relaxed);
        if (b >= j->b1) break;
        if (j->mask_dout)
            herdi_cpu_act_mask_inplace(j->mask_dout + (size_t)b * OC * N, j->relu_out + (size_t)b * OC * N, (int64_t)OC * N,
                                 j->act);
        if (!j->dw) continue;
        const size_t r0 = (size_t)(b - j->b0) * N;
        const float *doutb = j->dout + (size_t)b * OC * N, *inb = j->in + (size_t)b * d->C * d->H * d->W;
        for (int oc = 0; oc < OC; oc++) memcpy(j->doutR + oc * R + r0, doutb + (size_t)oc * N, sizeof(float) * N);
        const float *cols = inb;
        if (!is_pointwise(d)) {
            image_to_col(g.col, g.pad, inb, d);
            cols = g.col;
        }
        herdi_cpu_transpose(j->colT + r0 * K, cols, K, N);
    }
}

/* Columns of dw per block of phase 2: 4 of the kernel's 32-column panels. */
#define DW_BLOCK_COLS 128

static int dw_blocks(const conv_job *j) {
    int K = j->d->C * j->d->KH * j->d->KW;
    return j->dw ? (K + DW_BLOCK_COLS - 1) / DW_BLOCK_COLS : 0;
}

/* Phase 2: dw[:, k0:k1) += doutR * colT[:, k0:k1), one product as deep as the chunk per block of
 * columns, blocks handed out dynamically; the item after the blocks adds db image by image. */
static void conv_dw_blocks(void *ctx, int64_t s0, int64_t s1, int thread) {
    (void)thread;
    (void)s0;
    (void)s1;
    conv_job *j = ctx;
    const conv2d_dims *d = j->d;
    const int K = d->C * d->KH * d->KW, N = d->OH * d->OW, OC = d->OC, R = (j->b1 - j->b0) * N;
    const int blocks = dw_blocks(j);
    for (;;) {
        int i = atomic_fetch_add_explicit(&j->next_image, 1, memory_order_relaxed);
        if (i < blocks) {
            int k0 = i * DW_BLOCK_COLS, kb = K - k0 < DW_BLOCK_COLS ? K - k0 : DW_BLOCK_COLS;
            herdi_cpu_gemm(OC, kb, R, j->doutR, R, 1, j->colT + k0, K, 1, j->dw + k0, K);
        } else if (i == blocks && j->db) {
            for (int oc = 0; oc < OC; oc++) {
                float acc = j->db[oc];
                for (int b = j->b0; b < j->b1; b++) acc += cpu_sum_floats(j->dout + ((size_t)b * OC + oc) * N, N);
                j->db[oc] = acc;
            }
        } else {
            break;
        }
    }
}

/* din group by group, handed out dynamically (dout already masked). */
static void conv_din_groups(void *ctx, int64_t s0, int64_t s1, int thread) {
    (void)thread;
    (void)s1;
    conv_job *j = ctx;
    const conv2d_dims *d = j->d;
    const int K = d->C * d->KH * d->KW, N = d->OH * d->OW, OC = d->OC, G = group_images(d);
    group_slot g = group_slot_at(j->ex, d, s0);
    for (;;) {
        int b = G * atomic_fetch_add_explicit(&j->next_image, 1, memory_order_relaxed);
        if (b >= d->B) break;
        int n = d->B - b < G ? d->B - b : G, GN = n * N;
        for (int i = 0; i < n; i++) {
            const float *doutb = j->dout + (size_t)(b + i) * OC * N;
            for (int oc = 0; oc < OC; oc++) memcpy(g.gout + (size_t)oc * GN + (size_t)i * N, doutb + (size_t)oc * N, sizeof(float) * N);
        }
        herdi_cpu_gemm(K, GN, OC, j->w, 1, K, g.gout, GN, 0, g.gcol, GN); /* w read transposed */
        for (int i = 0; i < n; i++) {
            float *dinb = j->din + (size_t)(b + i) * d->C * d->H * d->W;
            for (int k = 0; k < K; k++) memcpy(g.col + (size_t)k * N, g.gcol + (size_t)k * GN + (size_t)i * N, sizeof(float) * N);
            if (is_pointwise(d)) {
                for (int64_t e = 0; e < (int64_t)K * N; e++) dinb[e] += g.col[e];
            } else {
                col_to_image_add(dinb, g.pad, g.col, d);
            }
        }
    }
}

/* Small feature maps: chunk by chunk, phase 1 (gather, masks) then phase 2 (dw, db); then din. */
static void conv_backward_grouped(conv_job *j) {
    const conv2d_dims *d = j->d;
    const int K = d->C * d->KH * d->KW, N = d->OH * d->OW, OC = d->OC, chunk = dw_chunk_images(d);
    const int rmax = (chunk < d->B ? chunk : d->B) * N;
    float *shared = j->ex->workspace + (size_t)j->slots * slot_floats(d, 1);
    j->colT = shared;
    j->doutR = shared + cpu_round16((size_t)rmax * K);
    for (int b0 = 0; b0 < d->B && (j->dw || j->db || j->mask_dout); b0 += chunk) {
        j->b0 = b0;
        j->b1 = d->B - b0 < chunk ? d->B : b0 + chunk;
        int64_t R = (int64_t)(j->b1 - j->b0) * N;
        if (j->dw || j->mask_dout) {
            atomic_store(&j->next_image, 0);
            cpu_for(j->ex, j->slots, CPU_NS_PER_STREAM_ELEM(2 * R * (K + OC)), conv_dw_gather, j);
        }
        if (j->dw || j->db) {
            atomic_store(&j->next_image, 0);
            cpu_for(j->ex, j->slots, CPU_NS_PER_MAC(R * K * OC), conv_dw_blocks, j);
        }
    }
    if (j->din) {
        atomic_store(&j->next_image, 0);
        cpu_for(j->ex, j->slots, CPU_NS_PER_MAC((int64_t)d->B * N * K * OC), conv_din_groups, j);
    }
}

static void conv_forward_slots(void *ctx, int64_t s0, int64_t s1, int thread) {
    (void)thread;
    (void)s1;
    conv_job *j = ctx;
    const conv2d_dims *d = j->d;
    const int K = d->C * d->KH * d->KW, N = d->OH * d->OW;
    const int pointwise = is_pointwise(d);
    float *col = j->ex->workspace + (size_t)s0 * slot_floats(d, 0);
    for (;;) {
        int b = atomic_fetch_add_explicit(&j->next_image, 1, memory_order_relaxed);
        if (b >= d->B) break;
        const float *inb = j->in + (size_t)b * d->C * d->H * d->W;
        float *outb = j->out + (size_t)b * d->OC * N;
        float *pad = col + col_floats(d), *outT = pad + padded_floats(d);
        /* bias and activation in the gemm's store (per column of the transposed forms) */
        const cpu_gemm_epilogue ep = {.bias = j->b, .per_col = j->wT != NULL, .act = j->act, .scale = j->scale,
                                      .shift = j->shift};
        if (j->pos) { /* out = (act(the padded image's columns^T * wT + bias))^T, stored transposed by the kernel */
            const cpu_gemm_epilogue ept = {.bias = j->b, .per_col = 1, .act = j->act, .scale = j->scale,
                                           .shift = j->shift, .transposed = 1};
            pad_image(pad, inb, d);
            herdi_cpu_gemm_offsets(N, d->OC, K, pad, j->pos, j->taps, j->wT, d->OC, 0, &ept, outb, N);
        } else {
            const float *cols = inb;
            if (!pointwise) {
                image_to_col(col, pad, inb, d);
                cols = col;
            }
            if (j->wT) { /* outT (N, OC) = act(colT * wT + bias); then out = outT^T */
                herdi_cpu_gemm_ep(N, d->OC, K, cols, 1, N, j->wT, d->OC, 0, &ep, outT, d->OC);
                herdi_cpu_transpose(outb, outT, N, d->OC);
            } else {
                herdi_cpu_gemm_ep(d->OC, N, K, j->w, K, 1, cols, N, 0, &ep, outb, N);
            }
        }
    }
}

/* Output columns per block of a forward split by columns: a multiple of the kernel's 32-column
 * panels, 64 or as many as keep the block's K rows of columns near L1 (herdi_cpu_gemm sweeps such a
 * block row tile by row tile, writing few rows at a time), with at least 4 blocks a thread for
 * the dynamic hand-out. Any split gives the same sums. */
static int split_cols(const conv2d_dims *d, int threads) {
    const int K = d->C * d->KH * d->KW, N = d->OH * d->OW;
    int c = CPU_GEMM_BLOCK_FLOATS / K / 64 * 64, most = N / (4 * threads) / 64 * 64;
    if (c > most) c = most;
    return c < 64 ? 64 : c;
}

/* Blocks of columns [n0, n1) of one image's product, handed out dynamically: out[:, n0:n1) =
 * act(bias + w * cols[:, n0:n1)) (outT rows n0..n1 when transposed). Every element is the same
 * fixed-order sum as in conv_forward_slots, whoever computes it. */
static void conv_forward_split_blocks(void *ctx, int64_t s0, int64_t s1, int thread) {
    (void)thread;
    (void)s0;
    (void)s1;
    conv_job *j = ctx;
    const conv2d_dims *d = j->d;
    const int K = d->C * d->KH * d->KW, N = d->OH * d->OW, OC = d->OC;
    const int cols = split_cols(d, cpu_threads(j->ex));
    for (;;) {
        int n0 = cols * atomic_fetch_add_explicit(&j->next_image, 1, memory_order_relaxed);
        if (n0 >= N) break;
        int nb = N - n0 < cols ? N - n0 : cols;
        const cpu_gemm_epilogue ep = {.bias = j->b, .per_col = j->wT != NULL, .act = j->act, .scale = j->scale,
                                      .shift = j->shift, .transposed = j->pos != NULL};
        if (j->pos) /* direct: j->cols is the padded image; out's columns n0.. stored transposed by the kernel */
            herdi_cpu_gemm_offsets(nb, OC, K, j->cols, j->pos + n0, j->taps, j->wT, OC, 0, &ep, j->outb + n0, N);
        else if (j->wT)
            herdi_cpu_gemm_ep(nb, OC, K, j->cols + n0, 1, N, j->wT, OC, 0, &ep, j->outT + (size_t)n0 * OC, OC);
        else
            herdi_cpu_gemm_ep(OC, nb, K, j->w, K, 1, j->cols + n0, N, 0, &ep, j->outb + n0, N);
        if (j->wT && !j->pos) /* this block's rows of outT into out's columns */
            herdi_cpu_transpose_ld(j->outb + n0, (size_t)N, j->outT + (size_t)n0 * OC, (size_t)OC, nb, OC);
    }
}

/* Fewer images than threads (batch 1 inference): image by image, the columns made by the
 * calling thread (slot 0's scratch; the direct path's padded image), the product split across
 * the pool by blocks of columns, each thread transposing its block of a transposed product;
 * the same numbers as conv_forward_slots with the AVX-512 kernel, whose every element is one
 * sum over K whatever the width of the product (OpenBLAS's is not: its edge kernels sum the
 * last columns in another order, so that path keeps one image per thread). */
static void conv_forward_split(conv_job *j) {
    const conv2d_dims *d = j->d;
    const int K = d->C * d->KH * d->KW, N = d->OH * d->OW;
    float *col = j->ex->workspace;
    for (int b = 0; b < d->B; b++) {
        const float *inb = j->in + (size_t)b * d->C * d->H * d->W;
        j->outb = j->out + (size_t)b * d->OC * N;
        j->cols = inb;
        if (j->pos) { /* direct: the products read the padded image in place */
            pad_image(col + col_floats(d), inb, d);
            j->cols = col + col_floats(d);
        } else if (!is_pointwise(d)) {
            image_to_col(col, col + col_floats(d), inb, d);
            j->cols = col;
        }
        j->outT = col + col_floats(d) + padded_floats(d);
        atomic_store(&j->next_image, 0);
        cpu_for(j->ex, cpu_threads(j->ex), CPU_NS_PER_MAC((int64_t)d->OC * N * K), conv_forward_split_blocks, j);
    }
}

/* ---- weights prepared once (inference-only models, herd_exec.prep) ----
 * [wT in panels | Winograd's transformed kernels], each section there when the shape can use it
 * (the sizes depend on the shape alone, so a call of any batch finds them at the same places);
 * the bits of *ex->prep_tag say which are filled. A call finds the same numbers there as it
 * would make itself, so its results are bit-identical to rearranging per call. */
enum { PREP_WT = 1, PREP_WINO = 2 };

/* ---- few images on small maps (batch-1 inference): one product split by output channels ----
 * The forms above give each thread whole images, or blocks of 64 output positions of one image:
 * with fewer images than threads on a map of at most a few hundred positions that leaves
 * threads idle (a 7x7 map is one block; a grouped product is one thread's), and the plain
 * product (OC, N) wastes most lanes of its 32-column tiles on N = 4 or 16 positions. Here the
 * images' columns are one matrix (K, B*N) and outT (B*N, OC) = cols^T * wT + bias, the threads
 * taking blocks of 32 output channels, each block's columns of wT prepared once as one panel
 * (K, 32) in a row (a thread streams its panels from memory front to back: read in place, the 32
 * columns of wT were 128 bytes of every one of its K rows, 2 KB apart at 512 channels); each
 * block of outT is then transposed into out by the thread that made it. One image's columns are
 * read where they lie in its padded image through offset tables prepared with the panels, as
 * the direct path reads them (no im2col on the calling thread while the others wait: 13% of the
 * example CNN's batch-1 time). Each element is the same fixed-order sum over K as in every other
 * form, so the results are bit-identical to them. Taken for at most one group of images (all of
 * them side by side in a grouped slot; one image otherwise). */
#define NARROW_MAX_POSITIONS 256

static int narrow_shape(const conv2d_dims *d) {
    return (int64_t)d->OH * d->OW <= NARROW_MAX_POSITIONS && !direct_shape(d);
}

/* wT's panels, then (not pointwise) the offset tables of the padded image (direct_offsets) */
static size_t prep_narrow_floats(const conv2d_dims *d) {
    if (!narrow_shape(d)) return 0;
    const size_t K = (size_t)d->C * d->KH * d->KW;
    return cpu_round16((size_t)d->OC * K) + (is_pointwise(d) ? 0 : cpu_round16((size_t)d->OH * d->OW + K));
}

size_t herdi_cpu_conv2d_prepared(const conv2d_dims *d) {
    if (!herdi_cpu_avx512_enabled() || herdi_cpu_conv_gemm_only()) return 0;
    return prep_narrow_floats(d) + herdi_cpu_winograd_prepared(d);
}

/* w^T in panels from the prepared weights (made the first time), or NULL when this call has none:
 * the block of output channels [oc0, oc0 + nb) (nb = 32, fewer in the last) is (K, nb) at
 * panels + oc0 * K, rows nb floats apart; after them the padded image's offset tables. */
static const float *prepared_panels(const herd_exec *ex, const float *w, const conv2d_dims *d) {
    if (!ex || !ex->prep_tag || !prep_narrow_floats(d) || ex->prep_floats < prep_narrow_floats(d)) return NULL;
    const int K = d->C * d->KH * d->KW;
    if (!(*ex->prep_tag & PREP_WT)) {
        for (int oc0 = 0; oc0 < d->OC; oc0 += 32)
            herdi_cpu_transpose(ex->prep + (size_t)oc0 * K, w + (size_t)oc0 * K, d->OC - oc0 < 32 ? d->OC - oc0 : 32, K);
        if (!is_pointwise(d)) direct_offsets(ex->prep, d);
        *ex->prep_tag |= PREP_WT;
    }
    return ex->prep;
}

/* Winograd's transformed kernels from the prepared weights (made the first time), or NULL. */
static const float *prepared_wino(const herd_exec *ex, const float *w, const conv2d_dims *d) {
    size_t u = herdi_cpu_winograd_prepared(d);
    if (!ex || !ex->prep_tag || !u || ex->prep_floats < prep_narrow_floats(d) + u) return NULL;
    float *U = ex->prep + prep_narrow_floats(d);
    if (!(*ex->prep_tag & PREP_WINO)) {
        herdi_cpu_winograd_kernels(ex, U, w, d);
        *ex->prep_tag |= PREP_WINO;
    }
    return U;
}

/* Row parts of each block of 32 output channels (narrow form): with few blocks for the threads,
 * not a multiple of their count (3 blocks of a 96-channel output on 2 threads leave one idle a
 * third of the call), each block's rows are split into parts, so that there are at least 4 units
 * a thread and a multiple of the thread count, each part at least 16 rows (a part re-reads its
 * block's panel of weights). A part's elements are the same sums as the whole block's. */
static int64_t narrow_ns(const conv2d_dims *d) {
    return CPU_NS_PER_MAC((int64_t)d->B * d->OH * d->OW * d->C * d->KH * d->KW * d->OC);
}

static int narrow_parts(const conv2d_dims *d, int threads) {
    const int blocks = (d->OC + 31) / 32, R = d->B * d->OH * d->OW;
    if (threads < 2 || blocks >= 4 * threads || blocks % threads == 0 || narrow_ns(d) < CPU_PARALLEL_MIN_NS)
        return 1; /* enough blocks, an even share, or cpu_for runs it inline */
    int parts = (4 * threads + blocks - 1) / blocks;
    while ((blocks * parts) % threads) parts++;
    return parts > R / 16 ? (R / 16 > 1 ? R / 16 : 1) : parts;
}

/* One unit a hand-out: rows [r0, r1) of a block of 32 output channels,
 * outT[r0:r1, oc0:oc0+32) = act(cols^T * wT[:, block] + bias), transposed into out. */
static void conv_forward_narrow_blocks(void *ctx, int64_t s0, int64_t s1, int thread) {
    (void)thread;
    (void)s0;
    (void)s1;
    conv_job *j = ctx;
    const conv2d_dims *d = j->d;
    const int K = d->C * d->KH * d->KW, R = d->B * d->OH * d->OW, OC = d->OC, N = d->OH * d->OW;
    const int parts = narrow_parts(d, cpu_threads(j->ex));
    for (;;) {
        int u = atomic_fetch_add_explicit(&j->next_image, 1, memory_order_relaxed), oc0 = 32 * (u / parts);
        if (oc0 >= OC) break;
        const int r0 = (int)((int64_t)R * (u % parts) / parts), r1 = (int)((int64_t)R * (u % parts + 1) / parts);
        const int nb = OC - oc0 < 32 ? OC - oc0 : 32;
        const cpu_gemm_epilogue ep = {.bias = j->b ? j->b + oc0 : NULL, .per_col = 1, .act = j->act,
                                      .scale = j->scale ? j->scale + oc0 : NULL, .shift = j->scale ? j->shift + oc0 : NULL};
        float *blk = j->outT + (size_t)oc0 * R; /* (R, nb): this block's columns of outT */
        if (j->pos) /* one image, read in place: j->cols is the padded image */
            herdi_cpu_gemm_offsets(r1 - r0, nb, K, j->cols, j->pos + r0, j->taps, j->panels + (size_t)oc0 * K, nb, 0, &ep,
                                   blk + (size_t)r0 * nb, nb);
        else
            herdi_cpu_gemm_ep(r1 - r0, nb, K, j->cols + r0, 1, R, j->panels + (size_t)oc0 * K, nb, 0, &ep,
                              blk + (size_t)r0 * nb, nb);
        for (int b = r0 / N; b < d->B && b * N < r1; b++) { /* the images these rows belong to */
            const int lo = r0 > b * N ? r0 : b * N, hi = r1 < (b + 1) * N ? r1 : (b + 1) * N;
            herdi_cpu_transpose_ld(j->out + ((size_t)b * OC + oc0) * N + (lo - b * N), (size_t)N, blk + (size_t)lo * nb,
                                   (size_t)nb, hi - lo, nb);
        }
    }
}

static int use_narrow(const conv2d_dims *d, const float *panels) {
    return panels && narrow_shape(d) && d->B <= group_images(d) && (int64_t)d->B * d->OH * d->OW <= NARROW_MAX_POSITIONS;
}

static void conv_forward_narrow(conv_job *j) {
    const conv2d_dims *d = j->d;
    const int K = d->C * d->KH * d->KW, N = d->OH * d->OW, OC = d->OC;
    const int grouped = group_images(d) > 1;
    group_slot g = {0};
    if (grouped) g = group_slot_at(j->ex, d, 0);
    float *pad = grouped ? g.pad : j->ex->workspace + col_floats(d); /* slot 0's */
    j->outT = grouped ? g.gout : pad + padded_floats(d);
    if (is_pointwise(d) && d->B == 1) { /* the image is its columns */
        j->cols = j->in;
    } else if (d->B == 1) { /* the padded image, its columns read in place through the prepared offsets */
        pad_image(pad, j->in, d);
        j->cols = pad;
        j->pos = (const int *)(j->panels + cpu_round16((size_t)OC * K));
        j->taps = j->pos + N;
    } else { /* the images side by side in slot 0's gcol */
        group_to_cols(&g, j->in, 0, d->B, d);
        j->cols = g.gcol;
    }
    atomic_store(&j->next_image, 0);
    cpu_for(j->ex, (int64_t)(OC + 31) / 32 * narrow_parts(d, cpu_threads(j->ex)), narrow_ns(d), conv_forward_narrow_blocks, j);
}

static void conv_forward(const herd_exec *ex, float *out, const float *in, const float *w, const float *b,
                         const conv2d_dims *d, const conv2d_post *post) {
    if (winograd_fits(ex, d)) {
        herdi_cpu_winograd_forward(ex, out, in, w, b, d, post, prepared_wino(ex, w, d));
        return;
    }
    if (taps_fit(ex, d)) {
        herdi_cpu_conv_taps_forward(ex, out, in, w, b, d, post, prepared_panels(ex, w, d));
        return;
    }
    int slots = conv_slots(ex, d, 0);
    if (slots == 0) { /* caller planned too little workspace: stay correct, just slow */
        herdi_ref_conv2d_forward(out, in, w, b, d);
        const int64_t N = (int64_t)d->OH * d->OW;
        for (int64_t p = 0; post && p < (int64_t)d->B * d->OC; p++) herdi_cpu_post_plane(out + p * N, N, post, (int)(p % d->OC));
        return;
    }
    conv_job j = {.ex = ex, .d = d, .slots = slots, .act = post ? post->act : HERD_ACT_NONE, .out = out, .in = in,
                  .w = w, .b = b, .scale = post ? post->scale : NULL, .shift = post ? post->shift : NULL};
    const float *panels = prepared_panels(ex, w, d);
    if (use_narrow(d, panels)) {
        j.panels = panels;
        conv_forward_narrow(&j);
        return;
    }
    const int direct = use_direct_forward(ex, d);
    if (use_T(d) || direct) { /* once per call, before the images: every slot reads it */
        j.wT = ex->workspace + (size_t)slots * slot_floats(d, 1);
        herdi_cpu_transpose(j.wT, w, d->OC, d->C * d->KH * d->KW);
    }
    if (direct) {
        j.pos = direct_offsets(j.wT, d);
        j.taps = j.pos + d->OH * d->OW;
    }
    atomic_init(&j.next_image, 0);
    int64_t work = (int64_t)d->B * d->OC * d->OH * d->OW * d->C * d->KH * d->KW;
    if (d->B < cpu_threads(ex) && group_images(d) == 1 && herdi_cpu_avx512_enabled() &&
        CPU_NS_PER_MAC(work) >= CPU_PARALLEL_MIN_NS) {
        conv_forward_split(&j);
        return;
    }
    cpu_for(ex, slots, CPU_NS_PER_MAC(work), group_images(d) > 1 ? conv_forward_groups : conv_forward_slots, &j);
}

void herdi_cpu_conv2d_forward(const herd_exec *ex, float *out, const float *in, const float *w, const float *b,
                        const conv2d_dims *d) {
    conv_forward(ex, out, in, w, b, d, NULL);
}

void herdi_cpu_conv2d_forward_act(const herd_exec *ex, float *out, const float *in, const float *w, const float *b,
                            const conv2d_dims *d, const conv2d_post *post) {
    conv_forward(ex, out, in, w, b, d, post);
}

/* Two phases in one pool call: dw/db over a fixed split of the batch into slots (the
 * summation order must not depend on timing), then din image by image, handed out
 * dynamically so the thread that finished its slot first takes more.
 * dw is computed transposed, dwT (K, OC) += col (K, N) * doutT (N, OC), because that is the
 * product herdi_cpu_gemm's kernel runs fast (both B and C contiguous along their rows); the
 * transposes of dout (OC*N floats) and of the partial cost far less than the product. */
static void conv_backward_slots(void *ctx, int64_t s0, int64_t s1, int thread) {
    (void)thread;
    conv_job *j = ctx;
    const conv2d_dims *d = j->d;
    const int K = d->C * d->KH * d->KW, N = d->OH * d->OW, OC = d->OC;
    const int pointwise = is_pointwise(d);
    for (int64_t s = s0; s < s1 && (j->dw || j->db || j->mask_dout); s++) {
        float *col = j->ex->workspace + (size_t)s * slot_floats(d, 1);
        float *doutT = col + col_floats(d) + padded_floats(d);
        float *pw = doutT + doutT_floats(d), *pb = pw + (size_t)OC * K;
        int b0 = (int)((int64_t)d->B * s / j->slots), b1 = (int)((int64_t)d->B * (s + 1) / j->slots);
        for (int b = b0; b < b1; b++) {
            const float *inb = j->in + (size_t)b * d->C * d->H * d->W;
            const float *doutb = j->dout + (size_t)b * OC * N;
            int fresh = b == b0; /* a slot's first image overwrites its partial */
            if (j->mask_dout)
                herdi_cpu_act_mask_inplace(j->mask_dout + (size_t)b * OC * N, j->relu_out + (size_t)b * OC * N,
                                     (int64_t)OC * N, j->act);
            if (j->dw && j->pos) { /* dwT (K, OC) += the padded image's columns * doutT */
                pad_image(col + col_floats(d), inb, d);
                herdi_cpu_transpose(doutT, doutb, OC, N);
                herdi_cpu_gemm_offsets(K, OC, N, col + col_floats(d), j->taps, j->pos, doutT, OC, !fresh, NULL, pw, OC);
            } else if (j->dw) {
                const float *cols = inb;
                if (!pointwise) {
                    image_to_col(col, col + col_floats(d), inb, d);
                    cols = col;
                }
                herdi_cpu_transpose(doutT, doutb, OC, N);
                herdi_cpu_gemm(K, OC, N, cols, N, 1, doutT, OC, !fresh, pw, OC);
            }
            if (j->db)
                for (int oc = 0; oc < OC; oc++) {
                    float v = cpu_sum_floats(doutb + (size_t)oc * N, N);
                    pb[oc] = fresh ? v : pb[oc] + v;
                }
        }
    }
    if (!j->din || j->skip_din) return;
    float *col = j->ex->workspace + (size_t)s0 * slot_floats(d, 1);
    for (;;) {
        int b = atomic_fetch_add_explicit(&j->next_image, 1, memory_order_relaxed);
        if (b >= d->B) break;
        const float *doutb = j->dout + (size_t)b * OC * N;
        float *dinb = j->din + (size_t)b * d->C * d->H * d->W;
        if (pointwise) {
            herdi_cpu_gemm(K, N, OC, j->w, 1, K, doutb, N, 1, dinb, N); /* w read transposed */
#ifdef HAVE_AVX512_KERNEL
        } else if (j->wR) { /* colR (N, K) = doutb^T * wR: tap-major columns, added without a transpose */
            float *colR = col + col_floats(d) + padded_floats(d) + doutT_floats(d) + partial_floats(d);
            herdi_cpu_gemm(N, K, OC, doutb, 1, N, j->wR, K, 0, colR, K);
            colr_to_image_add(dinb, col + col_floats(d), colR, d);
#endif
        } else if (use_T(d)) { /* colT (N, K) = doutb^T * w, read in place; then col = colT^T */
            float *colT = col + col_floats(d) + padded_floats(d) + doutT_floats(d) + partial_floats(d);
            herdi_cpu_gemm(N, K, OC, doutb, 1, N, j->w, K, 0, colT, K);
            herdi_cpu_transpose(col, colT, N, K);
            col_to_image_add(dinb, col + col_floats(d), col, d);
        } else {
            herdi_cpu_gemm(K, N, OC, j->w, 1, K, doutb, N, 0, col, N);
            col_to_image_add(dinb, col + col_floats(d), col, d);
        }
    }
}

/* dw[oc][k] += partial_0[k][oc] + partial_1[k][oc] + ... in slot order (db likewise),
 * whatever thread runs which rows. */
static void conv_reduce_rows(void *ctx, int64_t r0, int64_t r1, int thread) {
    (void)thread;
    const conv_job *j = ctx;
    const conv2d_dims *d = j->d;
    const int K = d->C * d->KH * d->KW, OC = d->OC;
    const size_t stride = slot_floats(d, 1);
    const float *part0 = j->ex->workspace + partial_offset(d);
    for (int64_t oc = r0; oc < r1; oc++) {
        if (j->dw)
            for (int k = 0; k < K; k++) {
                float acc = j->dw[(size_t)oc * K + k];
                for (int s = 0; s < j->slots; s++) acc += part0[s * stride + (size_t)k * OC + (size_t)oc];
                j->dw[(size_t)oc * K + k] = acc;
            }
        if (j->db) {
            float acc = j->db[oc];
            for (int s = 0; s < j->slots; s++) acc += part0[s * stride + (size_t)OC * K + (size_t)oc];
            j->db[oc] = acc;
        }
    }
}

static void conv_backward(const herd_exec *ex, float *din, float *dw, float *db, const float *dout,
                          float *mask_dout, const float *relu_out, herd_act act, const float *in, const float *w,
                          const conv2d_dims *d) {
    if (!din && !dw && !db) return;
    if (winograd_fits(ex, d)) {
        if (mask_dout) herdi_cpu_act_backward_inplace(ex, mask_dout, relu_out, (int64_t)d->B * d->OC * d->OH * d->OW, act);
        herdi_cpu_winograd_backward(ex, din, dw, db, dout, in, w, d);
        return;
    }
    if (taps_fit(ex, d)) {
        if (mask_dout) herdi_cpu_act_backward_inplace(ex, mask_dout, relu_out, (int64_t)d->B * d->OC * d->OH * d->OW, act);
        herdi_cpu_conv_taps_backward(ex, din, dw, db, dout, in, w, d);
        return;
    }
    int slots = conv_slots(ex, d, 1);
    if (slots == 0) {
        if (mask_dout) herdi_cpu_act_mask_inplace(mask_dout, relu_out, (int64_t)d->B * d->OC * d->OH * d->OW, act);
        herdi_ref_conv2d_backward(din, dw, db, dout, in, w, d);
        return;
    }
    conv_job j = {.ex = ex, .d = d, .slots = slots, .din = din, .dw = dw, .db = db, .dout = dout, .in = in, .w = w,
                  .mask_dout = mask_dout, .relu_out = relu_out, .act = act, .skip_din = mask_dout != NULL};
    atomic_init(&j.next_image, 0);
    if (group_images(d) > 1) {
        conv_backward_grouped(&j);
        return;
    }
    if (dw && use_dw_offsets(d)) {
        j.pos = direct_offsets(ex->workspace + (size_t)slots * slot_floats(d, 1), d);
        j.taps = j.pos + d->OH * d->OW;
    }
    if (din && use_tap_major(d)) { /* once per call, before the images; the shared area is free here */
        const int C = d->C, T = d->KH * d->KW, K = C * T;
        j.wR = ex->workspace + (size_t)slots * slot_floats(d, 1);
        for (int oc = 0; oc < d->OC; oc++)
            for (int c = 0; c < C; c++)
                for (int t = 0; t < T; t++) j.wR[(size_t)oc * K + (size_t)t * C + c] = w[(size_t)oc * K + (size_t)c * T + t];
    }
    int64_t work = (int64_t)d->B * d->OC * d->OH * d->OW * d->C * d->KH * d->KW;
    cpu_for(ex, slots, CPU_NS_PER_MAC(work), conv_backward_slots, &j);
    if (mask_dout && din) { /* every image is masked now: din alone */
        conv_job k = {.ex = ex, .d = d, .slots = slots, .din = din, .dout = dout, .w = w, .wR = j.wR};
        atomic_init(&k.next_image, 0);
        cpu_for(ex, slots, CPU_NS_PER_MAC(work) / 2, conv_backward_slots, &k);
    }
    if (dw || db) {
        int64_t n = ((int64_t)d->C * d->KH * d->KW + 1) * d->OC * slots;
        cpu_for(ex, d->OC, CPU_NS_PER_STREAM_ELEM(n), conv_reduce_rows, &j);
    }
}

void herdi_cpu_conv2d_backward(const herd_exec *ex, float *din, float *dw, float *db, const float *dout, const float *in,
                         const float *w, const conv2d_dims *d) {
    conv_backward(ex, din, dw, db, dout, NULL, NULL, HERD_ACT_NONE, in, w, d);
}

void herdi_cpu_conv2d_backward_act(const herd_exec *ex, float *din, float *dw, float *db, float *dout, const float *out,
                             const float *in, const float *w, const conv2d_dims *d, herd_act act) {
    conv_backward(ex, din, dw, db, dout, dout, out, act, in, w, d);
}

/* Exported for the bf16 conv (cpu_bf16.h), which packs these fp32 columns into bf16 pairs. */
size_t herdi_cpu_conv2d_pad_floats(const conv2d_dims *d) { return padded_floats(d); }

void herdi_cpu_conv2d_image_to_col(float *col, float *pad, const float *in, const conv2d_dims *d) {
    image_to_col(col, pad, in, d);
}

void herdi_cpu_conv2d_col_to_image_add(float *din, float *pad, const float *col, const conv2d_dims *d) {
    col_to_image_add(din, pad, col, d);
}
