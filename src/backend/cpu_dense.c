/* cpu dense: sgemm on row blocks, one block per pool thread, so every output element
 * (including dw, reduced over the batch inside one sgemm) is computed by exactly one thread.
 * With ex->fixed_parts the blocks are that many whatever the thread count: the same sgemm
 * calls, whose edge kernels may sum in another order for another block shape, so the same bits. */
#include <cblas.h>

#include "cpu_internal.h"

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
