/* Convolutions on maps so small that many taps read padding: ResNet-18's last stage at 64x64
 * inputs runs 3x3 convolutions over 2x2 maps, where each output sees its input through 4 of
 * the 9 taps, so im2col multiplies 5/9 of its columns by zeros (a 1x1 map: 8/9). Here each tap
 * t keeps only its (output, input) position pairs that lie inside the map:
 *     out[b, :, p] += W_t (OC, C) * in[b, :, q]   for every pair (p, q) of t,
 * one product per tap and block of output channels, X_t = the pairs' inputs of the whole batch
 * gathered side by side (C, B*n_t). At 2x2 that is 16 of im2col's 36 products per channel pair.
 * Every output is the bias plus, tap after tap, one fixed-order sum over C; the weight gradient
 * of a tap is one fixed-order sum over the batch's pairs; blocks of channels are fixed. So the
 * numbers do not depend on the thread count. The products read W_t where it lies in the weight
 * (its elements KH*KW floats apart, no copy per call), so this path needs a gemm kernel that
 * takes any strides; under OpenBLAS, and with HERD_CONV=gemm, these shapes take im2col. */
#include <string.h>

#include "cpu_internal.h"

#define TAPS_MAX_OUT 16 /* OH*OW */
#define TAPS_MAX_K 49   /* KH*KW */
#define TAPS_BLOCK 32   /* channels (output, or input for din) per product */
_Static_assert(TAPS_BLOCK == 32, "forward_blocks_prepared reads the prepared panels' blocks of 32 output channels");

typedef struct taps {
    int n;                     /* taps with at least one pair */
    int tap[TAPS_MAX_K];       /* the kernel offset kh*KW + kw of each */
    int start[TAPS_MAX_K + 1]; /* tap i's pairs are [start[i], start[i+1]) */
    int p[TAPS_MAX_OUT * TAPS_MAX_K], q[TAPS_MAX_OUT * TAPS_MAX_K]; /* output, input position */
} taps;

/* Fills t when d's shape can take this path (sizes within the arrays, no groups or dilation). */
static int taps_build(const conv2d_dims *d, taps *t) {
    if (conv2d_is_grouped(d) || d->OH * d->OW > TAPS_MAX_OUT || d->KH * d->KW > TAPS_MAX_K) return 0;
    int s = 0;
    t->n = 0;
    for (int kh = 0; kh < d->KH; kh++)
        for (int kw = 0; kw < d->KW; kw++) {
            int s0 = s;
            for (int oh = 0; oh < d->OH; oh++)
                for (int ow = 0; ow < d->OW; ow++) {
                    int ih = oh * d->SH - d->PH + kh, iw = ow * d->SW - d->PW + kw;
                    if (ih < 0 || ih >= d->H || iw < 0 || iw >= d->W) continue;
                    t->p[s] = oh * d->OW + ow;
                    t->q[s] = ih * d->W + iw;
                    s++;
                }
            if (s > s0) {
                t->tap[t->n] = kh * d->KW + kw;
                t->start[t->n++] = s0;
            }
        }
    t->start[t->n] = s;
    return 1;
}

#define TAPS_MIN_POSITIONS 16

/* Taken when the pairs are at most 70% of im2col's products (past 60%: batches of more than 64
 * output positions) and the channels make products worth blocking: under a 3x3 kernel, maps of 1x1 (1/9), 2x2 (44%), 3x3 (60%), 4x4 (69%; the
 * wide ones take Winograd first) and stride 2 from 4x4 onto 2x2 (25 of 36, ResNet-18's
 * layer4.0.conv1 at 64x64). With the weights read in place (no packing), the 69% shapes ran
 * faster here than in im2col: batch 32, one thread, CPU time, forward / dw / din: 256 -> 512
 * at stride 2, 4x4 4.2 / 5.2 / 6.1 -> 3.6 / 3.6 / 3.4 ms; 128 -> 128 4x4 2.0 / 2.4 / 2.2 ->
 * 1.7 / 1.6-1.9 / 1.7-1.9 ms. */
int herdi_cpu_conv_taps_applies(const conv2d_dims *d) {
    taps t;
    /* each tap's product reads the whole OC x C weight of that tap: under TAPS_MIN_POSITIONS
     * output positions in the batch (batch-1 inference) those products are a few columns wide
     * and the weights are read KH*KW times for them; im2col's one product reads them once */
    if (d->C < 32 || d->OC < 32 || (int64_t)d->B * d->OH * d->OW < TAPS_MIN_POSITIONS || herdi_cpu_conv_gemm_only() ||
        !herdi_cpu_gemm_any_strides() || !taps_build(d, &t))
        return 0;
    const int64_t S = t.start[t.n], full = (int64_t)d->OH * d->OW * d->KH * d->KW;
    /* past 60%, only with more output positions than one grouped im2col product holds (64): a
     * few images of such maps keep im2col's forms (the narrow one of few images with weights
     * prepared for inference, whose bits a call must give with or without the preparation) */
    return 5 * S <= 3 * full || (10 * S <= 7 * full && (int64_t)d->B * d->OH * d->OW > 64);
}

static int max_pairs(const taps *t) {
    int m = 0;
    for (int i = 0; i < t->n; i++)
        if (t->start[i + 1] - t->start[i] > m) m = t->start[i + 1] - t->start[i];
    return m;
}

/* Floats between two taps' weight gradients: their size plus one cache line, so that the taps'
 * rows never fall in the same L1 set (a power-of-two stride would). */
static size_t tap_stride(size_t rows, size_t cols) { return cpu_round16(rows * cols) + 16; }

/* Per thread: a block's weight gradient for every tap (TAPS_BLOCK, C) a tap, or in forward and
 * din one tap's product (TAPS_BLOCK, B*n), or in the prepared forward the block's outputs
 * (TAPS_BLOCK, B*OH*OW). */
static size_t slot_floats(const conv2d_dims *d, const taps *t) {
    int n = max_pairs(t) > d->OH * d->OW ? max_pairs(t) : d->OH * d->OW;
    size_t dw = t->n * tap_stride(TAPS_BLOCK, d->C), prod = cpu_round16((size_t)TAPS_BLOCK * d->B * n);
    return dw > prod ? dw : prod;
}

/* [inputs gathered (C*B*pairs) | output gradients gathered (OC*B*pairs) | slots] */
size_t herdi_cpu_conv_taps_workspace(const conv2d_dims *d, int threads) {
    taps t;
    if (!taps_build(d, &t)) return 0;
    size_t S = (size_t)t.start[t.n], th = threads < 1 ? 1 : (size_t)threads;
    return cpu_round16((size_t)d->C * d->B * S) + cpu_round16((size_t)d->OC * d->B * S) + th * slot_floats(d, &t);
}

typedef struct taps_job {
    const herd_exec *ex;
    const conv2d_dims *d;
    const taps *t;
    float *out, *din, *dw, *db;
    const float *in, *w, *b, *dout;
    const float *panels; /* forward: w^T prepared for inference (herdi_cpu_conv_taps_forward), or NULL */
    float *xg, *yg, *slots;
    size_t slot;
    const conv2d_post *post; /* forward: a folded batch norm and the activation (NULL: none) */
} taps_job;

/* For image b of a batch of B, each tap i's pairs side by side: dst + ch*B*start_i holds (ch, B*n_i),
 * column b*n_i + k = channel plane c of img at position pos[start_i + k]. */
static void gather_pairs(float *dst, const float *img, int ch, int plane, const int *pos, const taps *t, int B,
                         int64_t b) {
    for (int i = 0; i < t->n; i++) {
        int s = t->start[i], n = t->start[i + 1] - s;
        float *x = dst + (size_t)ch * B * s;
        for (int c = 0; c < ch; c++)
            for (int k = 0; k < n; k++) x[(size_t)c * B * n + b * n + k] = img[(size_t)c * plane + pos[s + k]];
    }
}

/* Forward: xg holds, per tap i, (C, B*n_i) (gather_pairs at the input positions). Backward: xg
 * holds per tap (B*n_i, C), the same numbers transposed (the weight gradient's right-hand side).
 * Split by images. */
static void gather_inputs(void *ctx, int64_t b0, int64_t b1, int thread) {
    (void)thread;
    const taps_job *j = ctx;
    const conv2d_dims *d = j->d;
    const taps *t = j->t;
    const int C = d->C, HW = d->H * d->W, B = d->B;
    for (int64_t b = b0; b < b1; b++) {
        const float *inb = j->in + (size_t)b * C * HW;
        if (!j->dout) {
            gather_pairs(j->xg, inb, C, HW, t->q, t, B, b);
            continue;
        }
        for (int i = 0; i < t->n; i++) {
            int s = t->start[i], n = t->start[i + 1] - s;
            float *x = j->xg + (size_t)C * B * s;
            for (int k = 0; k < n; k++)
                for (int c = 0; c < C; c++) x[(size_t)(b * n + k) * C + c] = inb[(size_t)c * HW + t->q[s + k]];
        }
    }
}

/* yg per tap i: (OC, B*n_i), dout at the pairs' output positions. Split by images. */
static void gather_douts(void *ctx, int64_t b0, int64_t b1, int thread) {
    (void)thread;
    const taps_job *j = ctx;
    const conv2d_dims *d = j->d;
    const int N = d->OH * d->OW;
    for (int64_t b = b0; b < b1; b++)
        gather_pairs(j->yg, j->dout + (size_t)b * d->OC * N, d->OC, N, j->t->p, j->t, d->B, b);
}

static void forward_blocks(void *ctx, int64_t k0, int64_t k1, int thread) {
    const taps_job *j = ctx;
    const conv2d_dims *d = j->d;
    const taps *t = j->t;
    const int C = d->C, OC = d->OC, N = d->OH * d->OW, B = d->B, KK = d->KH * d->KW;
    float *T = j->slots + (size_t)thread * j->slot;
    for (int64_t blk = k0; blk < k1; blk++) {
        int oc0 = (int)blk * TAPS_BLOCK, m = OC - oc0 < TAPS_BLOCK ? OC - oc0 : TAPS_BLOCK;
        /* W_t rows (m, C): w[oc0 + r, c, tap], C*KK and KK apart */
        for (int b = 0; b < B; b++)
            for (int r = 0; r < m; r++) {
                float *o = j->out + ((size_t)b * OC + oc0 + r) * N, v = j->b ? j->b[oc0 + r] : 0.0f;
                for (int x = 0; x < N; x++) o[x] = v;
            }
        for (int i = 0; i < t->n; i++) {
            int s = t->start[i], n = t->start[i + 1] - s, cols = B * n;
            herdi_cpu_gemm(m, cols, C, j->w + (size_t)oc0 * C * KK + t->tap[i], C * KK, KK, j->xg + (size_t)C * B * s, cols, 0, T, cols);
            for (int r = 0; r < m; r++)
                for (int b = 0; b < B; b++) {
                    float *o = j->out + ((size_t)b * OC + oc0 + r) * N;
                    const float *v = T + (size_t)r * cols + (size_t)b * n;
                    for (int k = 0; k < n; k++) o[t->p[s + k]] += v[k];
                }
        }
        for (int b = 0; j->post && b < B; b++)
            for (int r = 0; r < m; r++) herdi_cpu_post_plane(j->out + ((size_t)b * OC + oc0 + r) * N, N, j->post, oc0 + r);
    }
}

/* Forward with the weights prepared for inference: for each block of m output channels and each
 * pair (p, q) of each tap, Y_p (B, m) += in[:, :, q] (B, C) * W_t^T (C, m), A read in place (the
 * images C*H*W apart, the channels H*W apart: no gather), W_t^T from the panels (row c*KK + tap
 * of block oc0's (K, m)), Y (B, N, m) in this thread's slot. Each output is the bias plus, tap
 * after tap, the same fixed-order sum over C as forward_blocks adds (a tap has at most one pair
 * per output position): the same numbers, without forward_blocks' element-wise scatter of each
 * tap's product (a fifth of the time of ResNet-18's 2x2-map convs at 64x64). */
static void forward_blocks_prepared(void *ctx, int64_t k0, int64_t k1, int thread) {
    const taps_job *j = ctx;
    const conv2d_dims *d = j->d;
    const taps *t = j->t;
    const int C = d->C, OC = d->OC, N = d->OH * d->OW, HW = d->H * d->W, B = d->B, KK = d->KH * d->KW;
    float *Y = j->slots + (size_t)thread * j->slot;
    for (int64_t blk = k0; blk < k1; blk++) {
        int oc0 = (int)blk * TAPS_BLOCK, m = OC - oc0 < TAPS_BLOCK ? OC - oc0 : TAPS_BLOCK;
        const float *panel = j->panels + (size_t)oc0 * C * KK;
        for (int64_t x = 0; x < (int64_t)B * N; x++)
            for (int r = 0; r < m; r++) Y[x * m + r] = j->b ? j->b[oc0 + r] : 0.0f;
        for (int i = 0; i < t->n; i++)
            for (int s = t->start[i]; s < t->start[i + 1]; s++)
                herdi_cpu_gemm(B, m, C, j->in + t->q[s], (ptrdiff_t)C * HW, HW, panel + (size_t)t->tap[i] * m, KK * m,
                               1, Y + (size_t)t->p[s] * m, N * m);
        for (int b = 0; b < B; b++) {
            float *o = j->out + ((size_t)b * OC + oc0) * N;
            herdi_cpu_transpose_ld(o, (size_t)N, Y + (size_t)b * N * m, (size_t)m, N, m);
            for (int r = 0; j->post && r < m; r++) herdi_cpu_post_plane(o + (size_t)r * N, N, j->post, oc0 + r);
        }
    }
}

/* dw/db for a block of output channels: dW_t (m, C) = yg_t rows (m, B*n) * xg_t (B*n, C) for
 * every tap into the pack area, then added to dw row by row with each pair's taps side by side. */
static void weight_blocks(void *ctx, int64_t k0, int64_t k1, int thread) {
    const taps_job *j = ctx;
    const conv2d_dims *d = j->d;
    const taps *t = j->t;
    const int C = d->C, OC = d->OC, N = d->OH * d->OW, B = d->B, KK = d->KH * d->KW;
    float *T = j->slots + (size_t)thread * j->slot; /* (m, C) a tap */
    for (int64_t blk = k0; blk < k1; blk++) {
        int oc0 = (int)blk * TAPS_BLOCK, m = OC - oc0 < TAPS_BLOCK ? OC - oc0 : TAPS_BLOCK;
        for (int i = 0; i < t->n && j->dw; i++) {
            int s = t->start[i], rows = B * (t->start[i + 1] - s);
            herdi_cpu_gemm(m, C, rows, j->yg + (size_t)OC * B * s + (size_t)oc0 * rows, rows, 1, j->xg + (size_t)C * B * s,
                     C, 0, T + i * tap_stride(m, C), C);
        }
        for (int r = 0; r < m && j->dw; r++) {
            if (t->n == KK) { /* every tap, in order (2x2 maps): row r of each tap side by side, transposed */
                herdi_cpu_transpose_add(j->dw + (size_t)(oc0 + r) * C * KK, KK, T + (size_t)r * C, tap_stride(m, C), KK, C);
                continue;
            }
            for (int c = 0; c < C; c++) {
                float *dw = j->dw + ((size_t)(oc0 + r) * C + c) * KK;
                for (int i = 0; i < t->n; i++) dw[t->tap[i]] += T[i * tap_stride(m, C) + (size_t)r * C + c];
            }
        }
        for (int r = 0; r < m && j->db; r++) {
            float acc = 0.0f;
            for (int b = 0; b < B; b++) acc += cpu_sum_floats(j->dout + ((size_t)b * OC + oc0 + r) * N, N);
            j->db[oc0 + r] += acc;
        }
    }
}

/* din for a block of input channels: din_t (m, B*n) = W_t^T rows (m, OC) * yg_t (OC, B*n),
 * added at the pairs' input positions, tap after tap. */
static void input_blocks(void *ctx, int64_t k0, int64_t k1, int thread) {
    const taps_job *j = ctx;
    const conv2d_dims *d = j->d;
    const taps *t = j->t;
    const int C = d->C, OC = d->OC, HW = d->H * d->W, B = d->B, KK = d->KH * d->KW;
    float *T = j->slots + (size_t)thread * j->slot;
    for (int64_t blk = k0; blk < k1; blk++) {
        int c0 = (int)blk * TAPS_BLOCK, m = C - c0 < TAPS_BLOCK ? C - c0 : TAPS_BLOCK;
        /* W_t^T rows (m, OC): w[oc, c0 + r, tap], KK and C*KK apart */
        for (int i = 0; i < t->n; i++) {
            int s = t->start[i], n = t->start[i + 1] - s, cols = B * n;
            herdi_cpu_gemm(m, cols, OC, j->w + (size_t)c0 * KK + t->tap[i], KK, (size_t)C * KK, j->yg + (size_t)OC * B * s, cols, 0, T, cols);
            for (int r = 0; r < m; r++)
                for (int b = 0; b < B; b++) {
                    float *x = j->din + ((size_t)b * C + c0 + r) * HW;
                    const float *v = T + (size_t)r * cols + (size_t)b * n;
                    for (int k = 0; k < n; k++) x[t->q[s + k]] += v[k];
                }
        }
    }
}

static taps_job job_for(const herd_exec *ex, const conv2d_dims *d, const taps *t) {
    size_t S = (size_t)t->start[t->n];
    taps_job j = {.ex = ex, .d = d, .t = t, .xg = ex->workspace};
    j.yg = j.xg + cpu_round16((size_t)d->C * d->B * S);
    j.slots = j.yg + cpu_round16((size_t)d->OC * d->B * S);
    j.slot = slot_floats(d, t);
    return j;
}

static int64_t blocks(int ch) { return (ch + TAPS_BLOCK - 1) / TAPS_BLOCK; }

void herdi_cpu_conv_taps_forward(const herd_exec *ex, float *out, const float *in, const float *w, const float *b,
                           const conv2d_dims *d, const conv2d_post *post, const float *panels) {
    taps t;
    taps_build(d, &t);
    taps_job j = job_for(ex, d, &t);
    j.out = out, j.in = in, j.w = w, j.b = b, j.post = post, j.panels = panels;
    int64_t S = t.start[t.n];
    if (!panels) cpu_for(ex, d->B, CPU_NS_PER_STREAM_ELEM((int64_t)d->B * d->C * S), gather_inputs, &j);
    cpu_for(ex, blocks(d->OC), CPU_NS_PER_MAC((int64_t)d->B * S * d->C * d->OC), panels ? forward_blocks_prepared : forward_blocks,
            &j);
}

void herdi_cpu_conv_taps_backward(const herd_exec *ex, float *din, float *dw, float *db, const float *dout,
                            const float *in, const float *w, const conv2d_dims *d) {
    taps t;
    taps_build(d, &t);
    taps_job j = job_for(ex, d, &t);
    j.din = din, j.dw = dw, j.db = db, j.dout = dout, j.in = in, j.w = w;
    int64_t S = t.start[t.n], macs = (int64_t)d->B * S * d->C * d->OC;
    cpu_for(ex, d->B, CPU_NS_PER_STREAM_ELEM((int64_t)d->B * d->OC * S), gather_douts, &j);
    if (dw) cpu_for(ex, d->B, CPU_NS_PER_STREAM_ELEM((int64_t)d->B * d->C * S), gather_inputs, &j);
    if (dw || db) cpu_for(ex, blocks(d->OC), CPU_NS_PER_MAC(macs), weight_blocks, &j);
    if (din) cpu_for(ex, blocks(d->C), CPU_NS_PER_MAC(macs), input_blocks, &j);
}
