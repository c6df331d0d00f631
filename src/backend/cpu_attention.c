/* Multi-head self-attention on the cpu backend: one task per (sample, head) on the pool, each
 * gathering its head's queries, keys and values into contiguous blocks of its thread's
 * workspace and running the products through herdi_cpu_gemm (S = Q K^T, O = A V; backward
 * dV = A^T dO, dA = dO V^T, dQ = dS K, dK = dS^T Q). The softmax rows run in float with
 * double sums. A task's numbers do not depend on which thread runs it. */
#include <math.h>
#include <string.h>

#include "cpu_internal.h"

typedef struct attn_job {
    const attn_dims *d;
    const herd_exec *ex;
    float *out, *att, *dqkv;
    const float *qkv, *dout, *catt;
    size_t per_thread;
} attn_job;

static size_t per_thread(const attn_dims *d) {
    size_t T = (size_t)d->T, hs = (size_t)(d->C / d->H);
    return 8 * T * hs + T * T;
}

size_t herdi_cpu_attention_workspace(const attn_dims *d, int threads) { return per_thread(d) * (size_t)threads; }

/* one head of sample b: part 0, 1, 2 = q, k, v of every position into dst (T, hs), or
 * transposed (hs, T) */
static void gather(float *dst, const float *qkv, const attn_dims *d, int b, int h, int part, int transpose) {
    int T = d->T, C = d->C, hs = C / d->H;
    for (int t = 0; t < T; t++) {
        const float *src = qkv + ((int64_t)b * T + t) * 3 * C + part * C + h * hs;
        if (transpose)
            for (int i = 0; i < hs; i++) dst[(int64_t)i * T + t] = src[i];
        else
            memcpy(dst + (int64_t)t * hs, src, (size_t)hs * sizeof(float));
    }
}

static void forward_range(void *ctx, int64_t lo, int64_t hi, int thread) {
    const attn_job *j = ctx;
    const attn_dims *d = j->d;
    int T = d->T, C = d->C, H = d->H, hs = C / H;
    float scale = 1.0f / sqrtf((float)hs);
    float *q = j->ex->workspace + (size_t)thread * j->per_thread, *kt = q + (size_t)T * hs, *v = kt + (size_t)T * hs,
          *o = v + (size_t)T * hs;
    for (int64_t task = lo; task < hi; task++) {
        int b = (int)(task / H), h = (int)(task % H);
        float *a = j->att + task * (int64_t)T * T;
        gather(q, j->qkv, d, b, h, 0, 0);
        gather(kt, j->qkv, d, b, h, 1, 1);
        gather(v, j->qkv, d, b, h, 2, 0);
        herdi_cpu_gemm(T, T, hs, q, hs, 1, kt, T, 0, a, T);
        for (int t = 0; t < T; t++) {
            float *row = a + (int64_t)t * T;
            int last = d->causal ? t : T - 1;
            float mx = -INFINITY;
            for (int u = 0; u <= last; u++) {
                row[u] *= scale;
                if (row[u] > mx) mx = row[u];
            }
            double sum = 0;
            for (int u = 0; u <= last; u++) sum += (row[u] = expf(row[u] - mx));
            float inv = (float)(1.0 / sum);
            for (int u = 0; u <= last; u++) row[u] *= inv;
            for (int u = last + 1; u < T; u++) row[u] = 0.0f;
        }
        herdi_cpu_gemm(T, hs, T, a, T, 1, v, hs, 0, o, hs);
        for (int t = 0; t < T; t++)
            memcpy(j->out + ((int64_t)b * T + t) * C + h * hs, o + (int64_t)t * hs, (size_t)hs * sizeof(float));
    }
}

void herdi_cpu_attention_forward(const herd_exec *ex, float *out, float *att, const float *qkv, const attn_dims *d) {
    attn_job j = {.d = d, .ex = ex, .out = out, .att = att, .qkv = qkv, .per_thread = per_thread(d)};
    int64_t macs = 2 * (int64_t)d->T * d->T * d->C;
    cpu_for(ex, (int64_t)d->B * d->H, CPU_NS_PER_MAC((int64_t)d->B * macs), forward_range, &j);
}

static void backward_range(void *ctx, int64_t lo, int64_t hi, int thread) {
    const attn_job *j = ctx;
    const attn_dims *d = j->d;
    int T = d->T, C = d->C, H = d->H, hs = C / H;
    float scale = 1.0f / sqrtf((float)hs);
    size_t th = (size_t)T * hs;
    float *q = j->ex->workspace + (size_t)thread * j->per_thread, *k = q + th, *vt = k + th, *g = vt + th,
          *dq = g + th, *dk = dq + th, *dv = dk + th, *ds = dv + th;
    for (int64_t task = lo; task < hi; task++) {
        int b = (int)(task / H), h = (int)(task % H);
        const float *a = j->catt + task * (int64_t)T * T;
        gather(q, j->qkv, d, b, h, 0, 0);
        gather(k, j->qkv, d, b, h, 1, 0);
        gather(vt, j->qkv, d, b, h, 2, 1);
        for (int t = 0; t < T; t++)
            memcpy(g + (int64_t)t * hs, j->dout + ((int64_t)b * T + t) * C + h * hs, (size_t)hs * sizeof(float));
        herdi_cpu_gemm(T, hs, T, a, 1, T, g, hs, 0, dv, hs);  /* dV = A^T dO */
        herdi_cpu_gemm(T, T, hs, g, hs, 1, vt, T, 0, ds, T);  /* dA = dO V^T */
        for (int t = 0; t < T; t++) {                   /* dS = A (dA - sum A dA) * scale */
            const float *ar = a + (int64_t)t * T;
            float *r = ds + (int64_t)t * T;
            int last = d->causal ? t : T - 1;
            double dot = 0;
            for (int u = 0; u <= last; u++) dot += (double)ar[u] * r[u];
            for (int u = 0; u <= last; u++) r[u] = ar[u] * (r[u] - (float)dot) * scale;
            for (int u = last + 1; u < T; u++) r[u] = 0.0f;
        }
        herdi_cpu_gemm(T, hs, T, ds, T, 1, k, hs, 0, dq, hs); /* dQ = dS K */
        herdi_cpu_gemm(T, hs, T, ds, 1, T, q, hs, 0, dk, hs); /* dK = dS^T Q */
        for (int t = 0; t < T; t++) {
            float *row = j->dqkv + ((int64_t)b * T + t) * 3 * C + h * hs;
            for (int i = 0; i < hs; i++) {
                row[i] += dq[(int64_t)t * hs + i];
                row[C + i] += dk[(int64_t)t * hs + i];
                row[2 * C + i] += dv[(int64_t)t * hs + i];
            }
        }
    }
}

void herdi_cpu_attention_backward(const herd_exec *ex, float *dqkv, const float *dout, const float *qkv, const float *att,
                            const attn_dims *d) {
    if (!dqkv) return;
    attn_job j = {.d = d, .ex = ex, .dqkv = dqkv, .dout = dout, .qkv = qkv, .catt = att, .per_thread = per_thread(d)};
    int64_t macs = 4 * (int64_t)d->T * d->T * d->C;
    cpu_for(ex, (int64_t)d->B * d->H, CPU_NS_PER_MAC((int64_t)d->B * macs), backward_range, &j);
}
