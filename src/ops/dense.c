/* Reference fully connected layer: out (B,OUT) = in (B,IN) x w^T + b, w is (OUT,IN) as torch.nn.Linear. */
#include "ops/ops.h"

void ref_dense_forward(float *out, const float *in, const float *w, const float *b, int B, int IN, int OUT) {
    for (int n = 0; n < B; n++)
        for (int o = 0; o < OUT; o++) {
            const float *x = in + (int64_t)n * IN, *k = w + (int64_t)o * IN;
            float acc = b ? b[o] : 0.0f;
            for (int i = 0; i < IN; i++) acc += x[i] * k[i];
            out[(int64_t)n * OUT + o] = acc;
        }
}

void ref_dense_backward(float *din, float *dw, float *db, const float *dout, const float *in, const float *w, int B,
                        int IN, int OUT) {
    for (int n = 0; n < B; n++)
        for (int o = 0; o < OUT; o++) {
            float g = dout[(int64_t)n * OUT + o];
            const float *x = in + (int64_t)n * IN, *k = w + (int64_t)o * IN;
            if (db) db[o] += g;
            if (dw)
                for (int i = 0; i < IN; i++) dw[(int64_t)o * IN + i] += g * x[i];
            if (din)
                for (int i = 0; i < IN; i++) din[(int64_t)n * IN + i] += g * k[i];
        }
}
