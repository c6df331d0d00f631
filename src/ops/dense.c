/* Reference fully connected layer: out (B,OUT) = in (B,IN) @ w^T + b, w is (OUT,IN) as in PyTorch's Linear.
 * Dot products are summed in double so this stays the oracle for the BLAS path. */
#include "ops/ops.h"

void herdi_ref_dense_forward(float *out, const float *in, const float *w, const float *b, int B, int IN, int OUT) {
    for (int n = 0; n < B; n++) {
        const float *x = in + (int64_t)n * IN;
        for (int o = 0; o < OUT; o++) {
            const float *w_o = w + (int64_t)o * IN;
            double acc = b ? b[o] : 0.0;
            for (int i = 0; i < IN; i++) acc += (double)x[i] * w_o[i];
            out[(int64_t)n * OUT + o] = (float)acc;
        }
    }
}

void herdi_ref_dense_backward(float *din, float *dw, float *db, const float *dout, const float *in, const float *w, int B,
                        int IN, int OUT) {
    if (din) {
        for (int n = 0; n < B; n++) {
            const float *g = dout + (int64_t)n * OUT;
            for (int i = 0; i < IN; i++) {
                double acc = 0.0;
                for (int o = 0; o < OUT; o++) acc += (double)g[o] * w[(int64_t)o * IN + i];
                din[(int64_t)n * IN + i] += (float)acc;
            }
        }
    }
    if (dw) {
        for (int o = 0; o < OUT; o++) {
            for (int i = 0; i < IN; i++) {
                double acc = 0.0;
                for (int n = 0; n < B; n++) acc += (double)dout[(int64_t)n * OUT + o] * in[(int64_t)n * IN + i];
                dw[(int64_t)o * IN + i] += (float)acc;
            }
        }
    }
    if (db) {
        for (int o = 0; o < OUT; o++) {
            double acc = 0.0;
            for (int n = 0; n < B; n++) acc += dout[(int64_t)n * OUT + o];
            db[o] += (float)acc;
        }
    }
}
