/* cpu dense: sgemm on row blocks, one block per pool thread, so every output element
 * (including dw, reduced over the batch inside one sgemm) is computed by exactly one thread.
 * With ex->fixed_parts the blocks are that many whatever the thread count: the same sgemm
 * calls, whose edge kernels may sum in another order for another block shape, so the same bits.
 * Inference at a few rows takes dot products over the weight rows in place instead (below). */
#include <cblas.h>

#include "cpu_internal.h"

/* Inference (ex->inference) at up to DENSE_DOT_ROWS rows, AVX-512: out[b, o] = bias[o] + the dot
 * product of weight row o and input row b, the weight read once, in place, each thread a block
 * of output features. OpenBLAS's sgemm copies the whole weight into its packed panels on every
 * call, which at batch 1 is the call (mobilenet_v2's 1280 -> 1000 classifier: 5 MB each image).
 * Each dot product sums in 16 lanes along the row, then the lanes in a fixed tree, then adds the
 * bias: another order than the sgemm's (within float rounding of it), the same on any thread
 * count, so the training path, whose bits are fixed, keeps the sgemm. */
#define DENSE_DOT_ROWS 4
#define DENSE_DOT_BLOCK 16 /* output features a hand-out */

#ifdef HAVE_AVX512_KERNEL
/* rows [o0, o1) of out for the B <= DENSE_DOT_ROWS input rows, 4 features at a time (one alone at the end) */
static TARGET_AVX512 void dense_dot(float *out, const float *in, const float *w, const float *bias, int B, int IN,
                                   int OUT, int o0, int o1) {
    for (int o = o0; o < o1;) {
        const int nf = o1 - o >= 4 ? 4 : 1;
        __m512 acc[4][DENSE_DOT_ROWS];
        for (int f = 0; f < nf; f++)
            for (int b = 0; b < B; b++) acc[f][b] = _mm512_setzero_ps();
        for (int i = 0; i < IN; i += 16) {
            const __mmask16 m = cpu_lanes16(IN - i);
            __m512 x[DENSE_DOT_ROWS];
            for (int b = 0; b < B; b++) x[b] = _mm512_maskz_loadu_ps(m, in + (size_t)b * IN + i);
            for (int f = 0; f < nf; f++) {
                const __m512 wv = _mm512_maskz_loadu_ps(m, w + (size_t)(o + f) * IN + i);
                for (int b = 0; b < B; b++) acc[f][b] = _mm512_fmadd_ps(wv, x[b], acc[f][b]);
            }
        }
        for (int f = 0; f < nf; f++)
            for (int b = 0; b < B; b++) {
                float v = _mm512_reduce_add_ps(acc[f][b]);
                out[(size_t)b * OUT + o + f] = bias ? v + bias[o + f] : v;
            }
        o += nf;
    }
}

typedef struct dot_job {
    float *out;
    const float *in, *w, *b;
    int B, IN, OUT;
} dot_job;

static void dense_dot_blocks(void *ctx, int64_t k0, int64_t k1, int thread) {
    (void)thread;
    const dot_job *j = ctx;
    int o0 = (int)k0 * DENSE_DOT_BLOCK, o1 = (int)k1 * DENSE_DOT_BLOCK;
    dense_dot(j->out, j->in, j->w, j->b, j->B, j->IN, j->OUT, o0, o1 < j->OUT ? o1 : j->OUT);
}
#endif

/* 1 when the call took the dot-product path */
static int dense_forward_dot(const herd_exec *ex, float *out, const float *in, const float *w, const float *b, int B,
                             int IN, int OUT) {
#ifdef HAVE_AVX512_KERNEL
    if (!ex || !ex->inference || B > DENSE_DOT_ROWS || !herdi_cpu_avx512_enabled()) return 0;
    dot_job j = {.out = out, .in = in, .w = w, .b = b, .B = B, .IN = IN, .OUT = OUT};
    /* bound by reading the weight, not by the multiply-adds */
    cpu_for(ex, (OUT + DENSE_DOT_BLOCK - 1) / DENSE_DOT_BLOCK, CPU_NS_PER_STREAM_ELEM((int64_t)IN * OUT),
            dense_dot_blocks, &j);
    return 1;
#else
    (void)ex, (void)out, (void)in, (void)w, (void)b, (void)B, (void)IN, (void)OUT;
    return 0;
#endif
}

typedef struct dense_job {
    int slots, B, IN, OUT;
    float *out, *din, *dw, *db;
    const float *in, *w, *b, *dout;
} dense_job;

static void block(int n, int slots, int64_t s, int *lo, int *hi) {
    *lo = (int)((int64_t)n * s / slots);
    *hi = (int)((int64_t)n * (s + 1) / slots);
}

/* Row blocks: one per thread (or the fixed parts), at most one per row of the longer side. */
static int dense_slots(const herd_exec *ex, int B, int OUT) {
    int longest = OUT >= B ? OUT : B, parts = ex && ex->fixed_parts > 0 ? ex->fixed_parts : cpu_threads(ex);
    return parts < longest ? parts : longest;
}

/* Split over output features rather than the batch when there are more of them: each
 * thread then streams only its own rows of w, which dominates at small batch. */
static void dense_forward_slots(void *ctx, int64_t s0, int64_t s1, int thread) {
    (void)thread;
    const dense_job *j = ctx;
    const int by_out = j->OUT >= j->B;
    for (int64_t s = s0; s < s1; s++) {
        int lo, hi;
        block(by_out ? j->OUT : j->B, j->slots, s, &lo, &hi);
        if (hi <= lo) continue;
        int b0 = by_out ? 0 : lo, b1 = by_out ? j->B : hi, o0 = by_out ? lo : 0, o1 = by_out ? hi : j->OUT;
        float beta = 0.0f;
        if (j->b) {
            for (int bb = b0; bb < b1; bb++) {
                float *o = j->out + (size_t)bb * j->OUT;
                for (int k = o0; k < o1; k++) o[k] = j->b[k];
            }
            beta = 1.0f;
        }
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, b1 - b0, o1 - o0, j->IN, 1.0f,
                    j->in + (size_t)b0 * j->IN, j->IN, j->w + (size_t)o0 * j->IN, j->IN, beta,
                    j->out + (size_t)b0 * j->OUT + o0, j->OUT);
    }
}

void herdi_cpu_dense_forward(const herd_exec *ex, float *out, const float *in, const float *w, const float *b, int B, int IN,
                       int OUT) {
    if (dense_forward_dot(ex, out, in, w, b, B, IN, OUT)) return;
    int slots = dense_slots(ex, B, OUT);
    dense_job j = {.slots = slots, .B = B, .IN = IN, .OUT = OUT, .out = out, .in = in, .w = w, .b = b};
    cpu_for(ex, slots, CPU_NS_PER_MAC((int64_t)B * IN * OUT), dense_forward_slots, &j);
}

static void dense_backward_slots(void *ctx, int64_t s0, int64_t s1, int thread) {
    (void)thread;
    const dense_job *j = ctx;
    const int B = j->B, IN = j->IN, OUT = j->OUT;
    for (int64_t s = s0; s < s1; s++) {
        int b0, b1, o0, o1;
        block(B, j->slots, s, &b0, &b1);
        block(OUT, j->slots, s, &o0, &o1);
        /* din rows [b0, b1) += dout rows * w */
        if (j->din && b1 > b0)
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, b1 - b0, IN, OUT, 1.0f, j->dout + (size_t)b0 * OUT,
                        OUT, j->w, IN, 1.0f, j->din + (size_t)b0 * IN, IN);
        /* dw rows [o0, o1) += dout[:, o0:o1]^T * in */
        if (j->dw && o1 > o0)
            cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, o1 - o0, IN, B, 1.0f, j->dout + o0, OUT, j->in, IN,
                        1.0f, j->dw + (size_t)o0 * IN, IN);
        if (j->db && o1 > o0)
            for (int bb = 0; bb < B; bb++) {
                const float *g = j->dout + (size_t)bb * OUT;
                for (int o = o0; o < o1; o++) j->db[o] += g[o];
            }
    }
}

void herdi_cpu_dense_backward(const herd_exec *ex, float *din, float *dw, float *db, const float *dout, const float *in,
                        const float *w, int B, int IN, int OUT) {
    int slots = dense_slots(ex, B, OUT);
    dense_job j = {.slots = slots, .B = B, .IN = IN, .OUT = OUT, .din = din, .dw = dw, .db = db, .dout = dout,
                   .in = in, .w = w};
    cpu_for(ex, slots, CPU_NS_PER_MAC((int64_t)2 * B * IN * OUT), dense_backward_slots, &j);
}
