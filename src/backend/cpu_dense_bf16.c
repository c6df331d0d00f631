/* cpu dense in bf16 (--precision bf16): operands packed into bf16 pairs once per call, then
 * vdpbf16ps products split by row blocks over herd's pool (each output element one fixed-order
 * sum, whoever computes it, so the thread count never changes the numbers):
 *   out (B, OUT)  = in (B, IN) * W^T (IN, OUT)      pairs along IN
 *   din (B, IN)  += dout (B, OUT) * W (OUT, IN)     pairs along OUT
 *   dw (OUT, IN) += dout^T (OUT, B) * in (B, IN)    pairs along B
 * Bias and its gradient stay fp32. */
#include "cpu_bf16.h"


/* [A pairs | B pairs | fp32 scratch]: the largest any of the three products needs. */
size_t herdi_cpu_dense_bf16_workspace(int B, int IN, int OUT, int threads) {
    (void)threads;
    size_t b = (size_t)B, in = (size_t)IN, out = (size_t)OUT;
    size_t pB = (size_t)cpu_bf16_pairs(B), pIN = (size_t)cpu_bf16_pairs(IN), pOUT = (size_t)cpu_bf16_pairs(OUT);
    size_t fwd = cpu_round16(b * pIN) + cpu_round16(pIN * out) + cpu_round16(out * pIN);
    size_t dx = cpu_round16(b * pOUT) + cpu_round16(pOUT * in);
    size_t dw = cpu_round16(out * pB) + cpu_round16(pB * in);
    size_t m = fwd > dx ? fwd : dx;
    return m > dw ? m : dw;
}

typedef struct gemm_job {
    int M, N, P, slots, accumulate;
    ptrdiff_t ars, acs;
    const float *A, *Bm;
    float *C;
} gemm_job;

static void gemm_rows(void *ctx, int64_t s0, int64_t s1, int thread) {
    (void)thread;
    const gemm_job *g = ctx;
    for (int64_t s = s0; s < s1; s++) {
        int r0 = (int)((int64_t)g->M * s / g->slots), r1 = (int)((int64_t)g->M * (s + 1) / g->slots);
        herdi_cpu_gemm_bf16(r1 - r0, g->N, g->P, g->A + r0 * g->ars, g->ars, g->acs, g->Bm, g->N, g->accumulate,
                      g->C + (size_t)r0 * g->N, g->N);
    }
}

/* C (M, N) [+]= A (M, P) * Bm (P, N), A(i, p) at A[i*ars + p*acs], Bm row-major; row blocks
 * of at least 8 per thread. */
static void gemm_parallel(const herd_exec *ex, int M, int N, int P, const float *A, ptrdiff_t ars, ptrdiff_t acs,
                          const float *Bm, int accumulate, float *C) {
    int slots = cpu_threads(ex), most = (M + 7) / 8;
    if (slots > most) slots = most;
    gemm_job g = {.M = M, .N = N, .P = P, .slots = slots, .accumulate = accumulate, .ars = ars, .acs = acs, .A = A,
                  .Bm = Bm, .C = C};
    cpu_for(ex, slots, CPU_NS_PER_MAC((int64_t)M * N * P), gemm_rows, &g);
}

void herdi_cpu_dense_bf16_forward(const herd_exec *ex, float *out, const float *in, const float *w, const float *b, int B,
                            int IN, int OUT) {
    const int pIN = cpu_bf16_pairs(IN);
    float *a = ex->workspace, *wt = a + cpu_round16((size_t)B * pIN), *wr = wt + cpu_round16((size_t)pIN * OUT);
    herdi_cpu_bf16_pack_rows(a, pIN, in, IN, B, IN);
    herdi_cpu_bf16_pack_rows(wr, pIN, w, IN, OUT, IN);
    herdi_cpu_transpose(wt, wr, OUT, pIN);
    if (b)
        for (int r = 0; r < B; r++)
            for (int o = 0; o < OUT; o++) out[(size_t)r * OUT + o] = b[o];
    gemm_parallel(ex, B, OUT, pIN, a, pIN, 1, wt, b != NULL, out);
}

void herdi_cpu_dense_bf16_backward(const herd_exec *ex, float *din, float *dw, float *db, const float *dout,
                             const float *in, const float *w, int B, int IN, int OUT) {
    if (din) {
        const int pOUT = cpu_bf16_pairs(OUT);
        float *a = ex->workspace, *wp = a + cpu_round16((size_t)B * pOUT);
        herdi_cpu_bf16_pack_rows(a, pOUT, dout, OUT, B, OUT);
        herdi_cpu_bf16_pack_row_pairs(wp, IN, w, IN, OUT, IN);
        gemm_parallel(ex, B, IN, pOUT, a, pOUT, 1, wp, 1, din);
    }
    if (dw) {
        const int pB = cpu_bf16_pairs(B);
        float *a = ex->workspace, *ip = a + cpu_round16((size_t)OUT * pB);
        herdi_cpu_bf16_pack_row_pairs(a, OUT, dout, OUT, B, OUT); /* (pB, OUT): dout^T read in place */
        herdi_cpu_bf16_pack_row_pairs(ip, IN, in, IN, B, IN);
        gemm_parallel(ex, OUT, IN, pB, a, 1, OUT, ip, 1, dw);
    }
    if (db)
        for (int r = 0; r < B; r++) {
            const float *g = dout + (size_t)r * OUT;
            for (int o = 0; o < OUT; o++) db[o] += g[o];
        }
}
