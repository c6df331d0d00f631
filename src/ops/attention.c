/* Reference multi-head self-attention: plain loops in the order of the definition, sums in
 * double; the oracle the cpu backend's attention is tested against. */
#include <math.h>

#include "ops/ops.h"

void herdi_ref_attention_forward(float *out, float *att, const float *qkv, const attn_dims *d) {
    int T = d->T, C = d->C, H = d->H, hs = C / H;
    double scale = 1.0 / sqrt((double)hs);
    for (int b = 0; b < d->B; b++)
        for (int h = 0; h < H; h++)
            for (int t = 0; t < T; t++) {
                const float *q = qkv + ((int64_t)b * T + t) * 3 * C + h * hs;
                float *a = att + (((int64_t)b * H + h) * T + t) * T;
                int last = d->causal ? t : T - 1; /* keys this query sees */
                double mx = -INFINITY;
                for (int u = 0; u <= last; u++) {
                    const float *k = qkv + ((int64_t)b * T + u) * 3 * C + C + h * hs;
                    double s = 0;
                    for (int i = 0; i < hs; i++) s += (double)q[i] * k[i];
                    a[u] = (float)(s * scale);
                    if (a[u] > mx) mx = a[u];
                }
                double sum = 0;
                for (int u = 0; u <= last; u++) sum += exp(a[u] - mx);
                for (int u = 0; u < T; u++) a[u] = u <= last ? (float)(exp(a[u] - mx) / sum) : 0.0f;
                float *o = out + ((int64_t)b * T + t) * C + h * hs;
                for (int i = 0; i < hs; i++) {
                    double s = 0;
                    for (int u = 0; u <= last; u++) s += (double)a[u] * qkv[((int64_t)b * T + u) * 3 * C + 2 * C + h * hs + i];
                    o[i] = (float)s;
                }
            }
}

void herdi_ref_attention_backward(float *dqkv, const float *dout, const float *qkv, const float *att, const attn_dims *d) {
    int T = d->T, C = d->C, H = d->H, hs = C / H;
    double scale = 1.0 / sqrt((double)hs);
    for (int b = 0; b < d->B; b++)
        for (int h = 0; h < H; h++)
            for (int t = 0; t < T; t++) {
                const float *a = att + (((int64_t)b * H + h) * T + t) * T;
                const float *g = dout + ((int64_t)b * T + t) * C + h * hs;
                const float *q = qkv + ((int64_t)b * T + t) * 3 * C + h * hs;
                float *dq = dqkv + ((int64_t)b * T + t) * 3 * C + h * hs;
                int last = d->causal ? t : T - 1;
                /* d att[u] = g . v_u, then through the softmax: d s[u] = att[u] (d att[u] - sum att d att) */
                double datt[4096], dot = 0; /* T <= 4096 (the layer checks) */
                for (int u = 0; u <= last; u++) {
                    const float *v = qkv + ((int64_t)b * T + u) * 3 * C + 2 * C + h * hs;
                    double s = 0;
                    for (int i = 0; i < hs; i++) s += (double)g[i] * v[i];
                    datt[u] = s;
                    dot += a[u] * s;
                }
                for (int u = 0; u <= last; u++) {
                    const float *k = qkv + ((int64_t)b * T + u) * 3 * C + C + h * hs;
                    float *dk = dqkv + ((int64_t)b * T + u) * 3 * C + C + h * hs;
                    float *dv = dqkv + ((int64_t)b * T + u) * 3 * C + 2 * C + h * hs;
                    double ds = a[u] * (datt[u] - dot) * scale;
                    for (int i = 0; i < hs; i++) {
                        dq[i] += (float)(ds * k[i]);
                        dk[i] += (float)(ds * q[i]);
                        dv[i] += (float)((double)a[u] * g[i]);
                    }
                }
            }
}
