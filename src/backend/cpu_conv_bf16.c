/* cpu conv2d in bf16 (--precision bf16): per image, the input converted once into channel pairs
 * (pairs(C), H, W) (cpu_bf16.h) and vdpbf16ps products over it, fp32 accumulation, on herd's
 * pool. As the fp32 path: images handed out dynamically for out and din (each computed alike
 * whoever takes it); dw/db over a fixed split of the batch into slots whose partials are summed
 * in slot order, so results do not depend on timing. The three products and what each packs:
 *   out (OC, N)  = W (OC, K) * col (K, N)        pairs along K in the order (cp, kh, kw)
 *   dwT (K, OC) += col (K, N) * dout^T (N, OC)   pairs of images: two images' columns read side
 *                                                by side through offset tables, their dout paired
 *   din          = W' * dout's col               stride 1: a convolution of dout with the flipped
 *                                                weights, pairs along OC; else W^T * dout, col2im
 * Where the spatial size N fits the kernel's 8x32 tiles worse than OC (or C) does (N = 49: 49 of
 * 64 lanes of the last column panel used), out and din are computed with the positions as rows
 * (20% faster products at the example CNN's 7x7 layer): their columns read where they lie in the
 * zero-padded channel pairs through offset tables (no im2col), each tile stored transposed
 * straight into out (with bias and ReLU) or added to din. Otherwise the columns are an im2col of
 * the channel pairs (a 32-bit copy). Groups and dilation have no bf16 kernel: fp32 runs such a
 * layer. */
#include <stdatomic.h>
#include <string.h>

#include "cpu_bf16.h"


static int is_pointwise(const conv2d_dims *d) {
    return d->KH == 1 && d->KW == 1 && d->SH == 1 && d->SW == 1 && d->PH == 0 && d->PW == 0;
}

static int64_t ceil_to(int64_t n, int64_t m) { return (n + m - 1) / m * m; }

/* Whether the product with rows M and columns N (the spatial size) runs better as (N, M): the
 * lanes the 8-row, 32-column tiles compute, with 5% in favour of not transposing. */
static int prefers_T(int64_t M, int64_t N) { return ceil_to(N, 8) * ceil_to(M, 32) * 20 < ceil_to(M, 8) * ceil_to(N, 32) * 19; }

/* The input gradient of a stride-1 convolution is itself one (stride 1, each side padded by
 * kernel - 1 - pad): din = the correlation of dout with the flipped weights W' (C, OC*KH*KW),
 * W'[c][oc, kh, kw] = W[oc][c][KH-1-kh][KW-1-kw]. Its columns come straight from dout into
 * pairs as the forward's from the input, and the product lands on din itself: no col2im of a
 * (C*KH*KW, OH*OW) matrix, no padded image to zero and copy back. Needs pad <= kernel - 1. */
static int din_direct(const conv2d_dims *d) {
    return !is_pointwise(d) && d->SH == 1 && d->SW == 1 && d->PH <= d->KH - 1 && d->PW <= d->KW - 1;
}

/* The dims of that convolution, one image: input dout (OC, OH, OW), output din (C, H, W). */
static conv2d_dims din_dims(const conv2d_dims *d) {
    return (conv2d_dims){.B = 1, .C = d->OC, .H = d->OH, .W = d->OW, .OC = d->C, .KH = d->KH, .KW = d->KW, .SH = 1,
                         .SW = 1, .PH = d->KH - 1 - d->PH, .PW = d->KW - 1 - d->PW, .OH = d->H, .OW = d->W, .G = 1,
                         .DH = 1, .DW = 1};
}

typedef struct bf16_sizes {
    int K, N, OC, fwd_T, din_T, direct; /* direct: din_direct; din_T then says whether dinT (H*W, C) */
    int pKc;                            /* pair rows of the forward's columns: pairs(C) * KH * KW */
    size_t col, pad, bp, dtmp, dT, partial, tout, pimg; /* per slot, in this order */
    size_t slot, wp, wtp, wt, tab; /* slot total; shared: W pairs along K, along OC, W^T fp32, offset tables */
} bf16_sizes;

/* The products with offsets read their columns where they lie in a zero-padded image of pairs
 * (herdi_cpu_bf16_pad_pairs) of `planes` planes: the input in channel pairs (out, and din from
 * dout's), or two images' inputs side by side (dw): column (plane tap p, position n) at
 * pos[n] + taps[p]. No im2col. */
static size_t padded_planes(const conv2d_dims *d, int planes) {
    return (size_t)planes * (d->H + 2 * (size_t)d->PH) * (d->W + 2 * (size_t)d->PW);
}

static size_t offsets_ints(const conv2d_dims *d, int planes) {
    return (size_t)d->OH * d->OW + (size_t)planes * d->KH * d->KW;
}

static bf16_sizes sizes_of(const conv2d_dims *d) {
    bf16_sizes s;
    s.K = d->C * d->KH * d->KW, s.N = d->OH * d->OW, s.OC = d->OC;
    s.pKc = cpu_bf16_pairs(d->C) * d->KH * d->KW;
    size_t K = (size_t)s.K, N = (size_t)s.N, OC = (size_t)s.OC;
    size_t pK = (size_t)s.pKc, pOC = (size_t)cpu_bf16_pairs(s.OC);
    s.col = is_pointwise(d) ? 0 : cpu_round16(K * N);
    s.pad = is_pointwise(d) ? 0 : cpu_round16(herdi_cpu_conv2d_pad_floats(d));
    s.pimg = cpu_round16(padded_planes(d, d->C)); /* two images (dw); channel pairs need half */
    size_t bp = pK * N;
    if (pOC * N > bp) bp = pOC * N;
    s.bp = cpu_round16(bp);
    s.dtmp = cpu_round16(OC * N); /* two images' dout paired, then transposed */
    s.dT = cpu_round16(N * OC);
    s.partial = cpu_round16(K * OC + OC);
    s.fwd_T = !is_pointwise(d) && prefers_T(s.OC, s.N);
    s.direct = din_direct(d);
    s.din_T = !is_pointwise(d) && (s.direct ? prefers_T(d->C, (int64_t)d->H * d->W) : prefers_T(s.K, s.N));
    s.tout = cpu_round16(N * K * (size_t)(s.din_T && !s.direct)); /* dcolT; the offset products store in place */
    size_t wtp = K * pOC;
    s.tab = cpu_round16(offsets_ints(d, d->C));
    if (s.direct) { /* dout in channel pairs in pimg (padded for dinT), else its columns (pairs(OC)*KH*KW, H*W) in bp */
        size_t pK2 = pOC * d->KH * d->KW, N2 = (size_t)d->H * d->W;
        conv2d_dims d2 = din_dims(d);
        if (cpu_round16(padded_planes(&d2, (int)pOC)) > s.pimg) s.pimg = cpu_round16(padded_planes(&d2, (int)pOC));
        if (cpu_round16(offsets_ints(&d2, (int)pOC)) > s.tab) s.tab = cpu_round16(offsets_ints(&d2, (int)pOC));
        if (pK2 * N2 > bp) s.bp = cpu_round16(pK2 * N2);
        wtp = (size_t)d->C * pK2 * (s.din_T ? 2 : 1); /* W' pairs (C, pK2), then transposed (pK2, C) */
    }
    s.slot = s.col + s.pad + s.bp + s.dtmp + s.dT + s.partial + s.tout + s.pimg;
    s.wp = cpu_round16(OC * pK) * (s.fwd_T ? 2 : 1);   /* then, transposed: (pairs K, OC) */
    s.wtp = cpu_round16(wtp);
    s.wt = cpu_round16(K * OC);
    return s;
}

size_t herdi_cpu_conv_bf16_workspace(const conv2d_dims *d, int threads) {
    bf16_sizes s = sizes_of(d);
    return (size_t)(threads < 1 ? 1 : threads) * s.slot + s.wp + s.wtp + s.wt + s.tab;
}

/* Products shallower than this stay fp32: packing costs as much as the product saves (a first
 * layer on one channel, C*KH*KW = 9: 0.43 ms bf16 vs 0.38 ms fp32 forward, 1.0 vs 0.42 ms dw
 * at batch 32 on one Zen 5 core). */
#define BF16_MIN_DEPTH 32

const char *herdi_cpu_conv_bf16_unsupported(const conv2d_dims *d) {
    if (d->G > 1) return "no bf16 kernel for grouped convolutions; fp32";
    if (d->DH > 1 || d->DW > 1) return "no bf16 kernel for dilated convolutions; fp32";
    if (d->C * d->KH * d->KW < BF16_MIN_DEPTH) return "input channels x kernel < 32, too shallow for bf16 to pay; fp32";
    return NULL;
}

typedef struct conv_bf16_job {
    const herd_exec *ex;
    const conv2d_dims *d;
    bf16_sizes s;
    int slots, relu;
    atomic_int next_image;
    float *out, *din, *dw, *db, *mask_dout;
    const float *in, *w, *b, *dout, *relu_out;
    float *wp, *wtp; /* shared: W (OC, pairs K), W^T (K, pairs OC) */
    const int *pos, *taps; /* the transposed product's offset tables (herdi_cpu_conv2d_offsets) */
} conv_bf16_job;

static float *slot_at(const conv_bf16_job *j, int64_t s) { return j->ex->workspace + (size_t)s * j->s.slot; }

/* The slot's regions after col and pad. */
static float *slot_bp(const conv_bf16_job *j, float *slot) { return slot + j->s.col + j->s.pad; }
static float *slot_tout(const conv_bf16_job *j, float *slot) {
    return slot_bp(j, slot) + j->s.bp + j->s.dtmp + j->s.dT + j->s.partial;
}
static float *slot_pimg(const conv_bf16_job *j, float *slot) { return slot_tout(j, slot) + j->s.tout; }

/* The shared offset tables, after the weights: filled for d and its planes once per phase. */
static void set_offsets(conv_bf16_job *j, const conv2d_dims *d, int planes) {
    int *pos = (int *)(j->ex->workspace + (size_t)j->slots * j->s.slot + j->s.wp + j->s.wtp + j->s.wt);
    herdi_cpu_conv2d_offsets(pos, pos + d->OH * d->OW, planes, d);
    j->pos = pos, j->taps = pos + d->OH * d->OW;
}

/* The pair matrix (pairs(C)*KH*KW, OH*OW) of image src (C, H, W) under d: src in channel pairs
 * into the slot's pimg, which a 1x1 stride-1 conv reads as it is; else its im2col, 32-bit, into
 * bp (from pimg itself at column stride 1, else by cpu_conv2d.c's im2col of it, padded in pad). */
static const float *image_pairs(const conv_bf16_job *j, float *slot, const float *src, const conv2d_dims *d) {
    const int HW = d->H * d->W;
    float *pimg = slot_pimg(j, slot), *bp = slot_bp(j, slot);
    herdi_cpu_bf16_pack_row_pairs(pimg, HW, src, HW, d->C, HW);
    if (is_pointwise(d)) return pimg;
    if (cpu_bf16_image_pairs_fit(d)) {
        herdi_cpu_bf16_pack_image_pairs(bp, pimg, d);
    } else {
        conv2d_dims dp = *d;
        dp.C = cpu_bf16_pairs(d->C);
        herdi_cpu_conv2d_image_to_col(bp, slot + j->s.col, pimg, &dp);
    }
    return bp;
}

static void forward_images(void *ctx, int64_t s0, int64_t s1, int thread) {
    (void)s1, (void)thread;
    conv_bf16_job *j = ctx;
    const conv2d_dims *d = j->d;
    const int N = j->s.N, OC = j->s.OC, pK = j->s.pKc;
    float *slot = slot_at(j, s0);
    for (;;) {
        int b = atomic_fetch_add_explicit(&j->next_image, 1, memory_order_relaxed);
        if (b >= d->B) break;
        float *outb = j->out + (size_t)b * OC * N;
        const float *inb = j->in + (size_t)b * d->C * d->H * d->W;
        if (j->s.fwd_T) { /* out = (colT (N, pK), read in the padded pairs, * W^T (pK, OC))^T + bias, ReLU'd */
            const int HW = d->H * d->W;
            herdi_cpu_bf16_pad_pairs(slot_pimg(j, slot), inb, inb + HW, 2 * (size_t)HW, cpu_bf16_pairs(d->C), d->C / 2, d);
            const cpu_bf16_epilogue ep = {.bias = j->b, .relu = j->relu};
            herdi_cpu_gemm_bf16_offsets(N, OC, pK, slot_pimg(j, slot), j->pos, j->taps,
                                        j->wp + cpu_round16((size_t)OC * pK), OC, 0, &ep, outb, N);
            continue;
        }
        const float *bp = image_pairs(j, slot, inb, d);
        if (j->b)
            for (int oc = 0; oc < OC; oc++)
                for (int i = 0; i < N; i++) outb[(size_t)oc * N + i] = j->b[oc];
        herdi_cpu_gemm_bf16(OC, N, pK, j->wp, pK, 1, bp, N, j->b != NULL, outb, N);
        if (j->relu) herdi_cpu_act_forward(NULL, outb, outb, (int64_t)OC * N, HERD_ACT_RELU, 0);
    }
}

/* Slots as many as threads, no more than images, no more than the workspace holds (0: too small). */
static int bf16_slots(const herd_exec *ex, const conv2d_dims *d, const bf16_sizes *s) {
    int t = cpu_threads(ex);
    if (t > d->B) t = d->B;
    size_t have = ex ? ex->workspace_floats : 0;
    for (; t >= 1; t--)
        if ((size_t)t * s->slot + s->wp + s->wtp + s->wt + s->tab <= have) return t;
    return 0;
}

static void conv_forward(const herd_exec *ex, float *out, const float *in, const float *w, const float *b,
                         const conv2d_dims *d, int relu) {
    conv_bf16_job j = {.ex = ex, .d = d, .s = sizes_of(d), .relu = relu, .out = out, .in = in, .w = w, .b = b};
    j.slots = bf16_slots(ex, d, &j.s);
    HERD_ASSERT(j.slots > 0); /* the model plans herdi_cpu_conv_bf16_workspace */
    j.wp = ex->workspace + (size_t)j.slots * j.s.slot;
    const int T = d->KH * d->KW, pK = j.s.pKc;
    for (int oc = 0; oc < j.s.OC; oc++) /* W (OC, pairs(C)*KH*KW), channels paired as the columns */
        herdi_cpu_bf16_pack_row_pairs(j.wp + (size_t)oc * pK, T, w + (size_t)oc * j.s.K, T, d->C, T);
    if (j.s.fwd_T) {
        herdi_cpu_transpose(j.wp + cpu_round16((size_t)j.s.OC * pK), j.wp, j.s.OC, pK);
        set_offsets(&j, d, cpu_bf16_pairs(d->C));
    }
    atomic_init(&j.next_image, 0);
    int64_t macs = (int64_t)d->B * j.s.OC * j.s.N * j.s.K;
    cpu_for(ex, j.slots, CPU_NS_PER_MAC(macs) / 2, forward_images, &j);
}

void herdi_cpu_conv_bf16_forward(const herd_exec *ex, float *out, const float *in, const float *w, const float *b,
                           const conv2d_dims *d) {
    conv_forward(ex, out, in, w, b, d, 0);
}

/* ReLU fused per image; ReLU6, or a folded batch norm and its activation, as a pass after the convolution */
void herdi_cpu_conv_bf16_forward_act(const herd_exec *ex, float *out, const float *in, const float *w, const float *b,
                               const conv2d_dims *d, const conv2d_post *post) {
    const herd_act act = post ? post->act : HERD_ACT_NONE;
    if (post && post->scale) {
        conv_forward(ex, out, in, w, b, d, 0);
        const int64_t N = (int64_t)d->OH * d->OW;
        for (int64_t p = 0; p < (int64_t)d->B * d->OC; p++) herdi_cpu_post_plane(out + p * N, N, post, (int)(p % d->OC));
        return;
    }
    conv_forward(ex, out, in, w, b, d, act == HERD_ACT_RELU);
    if (act == HERD_ACT_RELU6) herdi_cpu_act_forward(ex, out, out, (int64_t)d->B * d->OC * d->OH * d->OW, act, 0);
}

/* Phase 1, a fixed split of the batch: dout masked by the fused ReLU, then the slot's dwT and
 * db partials (its first images overwrite them). dwT (K, OC) += col (K, N) * dout^T (N, OC) over
 * two images at once, paired: the columns read through offset tables in the two inputs side by
 * side, padded (no im2col), dout of both paired and transposed; an odd last image pairs with 0. */
static void backward_weights(void *ctx, int64_t s0, int64_t s1, int thread) {
    (void)thread;
    conv_bf16_job *j = ctx;
    const conv2d_dims *d = j->d;
    const int K = j->s.K, N = j->s.N, OC = j->s.OC, C = d->C, HW = d->H * d->W;
    const size_t on = (size_t)OC * N;
    for (int64_t s = s0; s < s1; s++) {
        float *slot = slot_at(j, s), *dtmp = slot_bp(j, slot) + j->s.bp, *dT = dtmp + j->s.dtmp;
        float *pw = dT + j->s.dT, *pb = pw + (size_t)K * OC;
        int b0 = (int)((int64_t)d->B * s / j->slots), b1 = (int)((int64_t)d->B * (s + 1) / j->slots);
        for (int b = b0; b < b1; b += 2) {
            const int two = b + 1 < b1;
            if (j->dw) {
                float *ga = (float *)j->dout + b * on, *gb = two ? ga + on : NULL; /* written only if masked */
                const float *ka = j->mask_dout ? j->relu_out + b * on : NULL, *kb = two && ka ? ka + on : NULL;
                herdi_cpu_bf16_pack_two(dtmp, ga, ka, gb, kb, on);
                herdi_cpu_transpose(dT, dtmp, OC, N);
                const float *ia = j->in + (size_t)b * C * HW;
                herdi_cpu_bf16_pad_pairs(slot_pimg(j, slot), ia, ia + (size_t)C * HW, HW, C, two ? C : 0, d);
                herdi_cpu_gemm_bf16_offsets(K, OC, N, slot_pimg(j, slot), j->taps, j->pos, dT, OC, b > b0, NULL, pw, OC);
            } else if (j->mask_dout) {
                herdi_cpu_act_backward_inplace(NULL, j->mask_dout + b * on, j->relu_out + b * on, (int64_t)on * (1 + two),
                                         HERD_ACT_RELU);
            }
            for (int i = b; i < b + 1 + two && j->db; i++)
                for (int oc = 0; oc < OC; oc++) {
                    float v = cpu_sum_floats(j->dout + i * on + (size_t)oc * N, N);
                    pb[oc] = i > b0 ? pb[oc] + v : v;
                }
        }
    }
}

/* dw[oc][k] += partial_0[k][oc] + partial_1[k][oc] + ... in slot order (db likewise). */
static void reduce_rows(void *ctx, int64_t r0, int64_t r1, int thread) {
    (void)thread;
    const conv_bf16_job *j = ctx;
    const int K = j->s.K, OC = j->s.OC;
    const float *part0 = j->ex->workspace + j->s.col + j->s.pad + j->s.bp + j->s.dtmp + j->s.dT;
    /* 16 output channels at a time: a partial's row k gives them one cache line, and their 16 dw
     * lines stay in L1 across consecutive k (a transpose by blocks; each sum in slot order) */
    for (int64_t o0 = r0; o0 < r1 && j->dw; o0 += 16) {
        const int64_t o1 = o0 + 16 < r1 ? o0 + 16 : r1;
        for (int k = 0; k < K; k++)
            for (int64_t oc = o0; oc < o1; oc++) {
                float acc = j->dw[(size_t)oc * K + k];
                for (int s = 0; s < j->slots; s++) acc += part0[s * j->s.slot + (size_t)k * OC + (size_t)oc];
                j->dw[(size_t)oc * K + k] = acc;
            }
    }
    for (int64_t oc = r0; oc < r1; oc++) {
        if (j->db) {
            float acc = j->db[oc];
            for (int s = 0; s < j->slots; s++) acc += part0[s * j->s.slot + (size_t)OC * K + (size_t)oc];
            j->db[oc] = acc;
        }
    }
}

/* Phase 2, images handed out dynamically: din += col2im(W^T * dout). */
static void backward_input(void *ctx, int64_t s0, int64_t s1, int thread) {
    (void)s1, (void)thread;
    conv_bf16_job *j = ctx;
    const conv2d_dims *d = j->d;
    const int K = j->s.K, N = j->s.N, OC = j->s.OC, pOC = cpu_bf16_pairs(OC);
    float *slot = slot_at(j, s0), *bp = slot_bp(j, slot), *tout = slot_tout(j, slot);
    for (;;) {
        int b = atomic_fetch_add_explicit(&j->next_image, 1, memory_order_relaxed);
        if (b >= d->B) break;
        float *dinb = j->din + (size_t)b * d->C * d->H * d->W;
        if (j->s.direct) { /* din += W' * dout's columns, or dinT (H*W, C) = columns^T * W'^T added transposed */
            const conv2d_dims d2 = din_dims(d);
            const int C = d->C, N2 = d->H * d->W, pK2 = cpu_bf16_pairs(OC) * d->KH * d->KW;
            const float *doutb = j->dout + (size_t)b * OC * N;
            if (j->s.din_T) { /* the columns read in dout's padded pairs */
                herdi_cpu_bf16_pad_pairs(slot_pimg(j, slot), doutb, doutb + N, 2 * (size_t)N, cpu_bf16_pairs(OC), OC / 2, &d2);
                const cpu_bf16_epilogue ep = {0};
                herdi_cpu_gemm_bf16_offsets(N2, C, pK2, slot_pimg(j, slot), j->pos, j->taps,
                                            j->wtp + cpu_round16((size_t)C * pK2), C, 1, &ep, dinb, N2);
            } else {
                image_pairs(j, slot, doutb, &d2);
                herdi_cpu_gemm_bf16(C, N2, pK2, j->wtp, pK2, 1, bp, N2, 1, dinb, N2);
            }
            continue;
        }
        herdi_cpu_bf16_pack_row_pairs(bp, N, j->dout + (size_t)b * OC * N, N, OC, N);
        if (j->s.din_T) { /* dcolT (N, K) = doutT (N, pOC), dout read in place, * W (pOC, K); dcol = dcolT^T */
            herdi_cpu_gemm_bf16(N, K, pOC, bp, 1, N, j->wtp, K, 0, tout, K);
            herdi_cpu_transpose(slot, tout, N, K);
            herdi_cpu_conv2d_col_to_image_add(dinb, slot + j->s.col, slot, d);
        } else if (is_pointwise(d)) {
            herdi_cpu_gemm_bf16(K, N, pOC, j->wtp, pOC, 1, bp, N, 1, dinb, N);
        } else {
            herdi_cpu_gemm_bf16(K, N, pOC, j->wtp, pOC, 1, bp, N, 0, slot, N);
            herdi_cpu_conv2d_col_to_image_add(dinb, slot + j->s.col, slot, d);
        }
    }
}

static void conv_backward(const herd_exec *ex, float *din, float *dw, float *db, const float *dout, float *mask_dout,
                          const float *relu_out, const float *in, const float *w, const conv2d_dims *d) {
    if (!din && !dw && !db) return;
    conv_bf16_job j = {.ex = ex, .d = d, .s = sizes_of(d), .din = din, .dw = dw, .db = db, .dout = dout,
                       .mask_dout = mask_dout, .relu_out = relu_out, .in = in, .w = w};
    j.slots = bf16_slots(ex, d, &j.s);
    HERD_ASSERT(j.slots > 0);
    const int K = j.s.K, N = j.s.N, OC = j.s.OC;
    int64_t macs = (int64_t)d->B * OC * N * K;
    if (dw) set_offsets(&j, d, d->C);
    if (dw || db || mask_dout) cpu_for(ex, j.slots, CPU_NS_PER_MAC(macs) / 2, backward_weights, &j);
    if (dw || db) cpu_for(ex, OC, CPU_NS_PER_STREAM_ELEM(((int64_t)K + 1) * OC * j.slots), reduce_rows, &j);
    if (din) {
        float *wt = ex->workspace + (size_t)j.slots * j.s.slot + j.s.wp;
        j.wtp = wt + j.s.wt;
        if (j.s.direct) { /* W' (C, OC*KH*KW) flipped, in pairs; transposed too for dinT */
            const int C = d->C, T = d->KH * d->KW, K2 = OC * T, pK2 = cpu_bf16_pairs(OC) * T;
            for (int c = 0; c < C; c++)
                for (int oc = 0; oc < OC; oc++)
                    for (int t = 0; t < T; t++) wt[(size_t)c * K2 + (size_t)oc * T + t] = w[((size_t)oc * C + c) * T + T - 1 - t];
            for (int c = 0; c < C; c++) /* output channels paired as dout's columns */
                herdi_cpu_bf16_pack_row_pairs(j.wtp + (size_t)c * pK2, T, wt + (size_t)c * K2, T, OC, T);
            if (j.s.din_T) {
                herdi_cpu_transpose(j.wtp + cpu_round16((size_t)C * pK2), j.wtp, C, pK2);
                const conv2d_dims d2 = din_dims(d);
                set_offsets(&j, &d2, cpu_bf16_pairs(OC));
            }
        } else if (j.s.din_T) { /* W pairs along OC, (pOC, K) */
            herdi_cpu_bf16_pack_row_pairs(j.wtp, K, w, K, OC, K);
        } else {
            herdi_cpu_transpose(wt, w, OC, K);
            herdi_cpu_bf16_pack_rows(j.wtp, cpu_bf16_pairs(OC), wt, OC, K, OC);
        }
        atomic_init(&j.next_image, 0);
        cpu_for(ex, j.slots, CPU_NS_PER_MAC(macs) / 2, backward_input, &j);
    }
}

void herdi_cpu_conv_bf16_backward(const herd_exec *ex, float *din, float *dw, float *db, const float *dout,
                            const float *in, const float *w, const conv2d_dims *d) {
    conv_backward(ex, din, dw, db, dout, NULL, NULL, in, w, d);
}

/* ReLU masked per image; ReLU6 masked in a pass before */
void herdi_cpu_conv_bf16_backward_act(const herd_exec *ex, float *din, float *dw, float *db, float *dout,
                                const float *out, const float *in, const float *w, const conv2d_dims *d, herd_act act) {
    if (act == HERD_ACT_RELU) {
        conv_backward(ex, din, dw, db, dout, dout, out, in, w, d);
        return;
    }
    herdi_cpu_act_backward_inplace(ex, dout, out, (int64_t)d->B * d->OC * d->OH * d->OW, act);
    conv_backward(ex, din, dw, db, dout, NULL, NULL, in, w, d);
}
