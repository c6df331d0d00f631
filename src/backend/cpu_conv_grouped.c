/* cpu conv2d with groups or dilation (depthwise and grouped convolutions of the mobile
 * models, dilated ones), and the conv entries of the cpu backend's table: a convolution
 * without either goes to the sgemm path of cpu_conv2d.c unchanged, one with them comes here.
 * Direct loops, one output plane, input plane or weight block per unit of work: a
 * depthwise 3x3 has 9 multiply-adds per output, too few for im2col + sgemm to pay. Each
 * unit writes only its own elements and sums in a fixed order, so results do not depend on
 * the threads. No workspace. */
#include "cpu_internal.h"

typedef struct convg_job {
    const conv2d_dims *d;
    float *out, *din, *dw, *db;
    const float *in, *w, *b, *dout;
    int relu;
} convg_job;

/* Output positions [*lo, *hi) of one row whose tap k (dilated by dil) lands inside [0, n):
 * i = o*s - p + k*dil. */
static void tap_range(int k, int s, int p, int dil, int n, int O, int *lo, int *hi) {
    int a = p - k * dil, top = n - 1 + p - k * dil;
    int o0 = a > 0 ? (a + s - 1) / s : 0, o1 = top >= 0 ? top / s + 1 : 0;
    if (o1 > O) o1 = O;
    if (o1 < o0) o1 = o0;
    *lo = o0, *hi = o1;
}

/* One output row: o[ow] += w * row[ow*SW] for ow in [ow0, ow1) (row already offset by the tap). */
static inline void row_axpy(float *restrict o, const float *restrict row, float w, int ow0, int ow1, int SW) {
    if (SW == 1)
        for (int ow = ow0; ow < ow1; ow++) o[ow] += w * row[ow];
    else if (SW == 2)
        for (int ow = ow0; ow < ow1; ow++) o[ow] += w * row[2 * (int64_t)ow];
    else
        for (int ow = ow0; ow < ow1; ow++) o[ow] += w * row[(int64_t)ow * SW];
}

/* unit u = (image n, output channel oc): out plane = bias + sum over the group's channels and
 * taps, in that order for every output; row by row, so that the row being summed stays in L1
 * while every tap of every channel is added to it (a depthwise 3x3 on a 112x112 map: 9 passes
 * over one 448-byte row, not over the whole 49 KB plane) */
static void convg_forward_units(void *ctx, int64_t u0, int64_t u1, int thread) {
    (void)thread;
    const convg_job *j = ctx;
    const conv2d_dims *d = j->d;
    const int G = d->G, Cg = d->C / G, OCg = d->OC / G, H = d->H, W = d->W, OH = d->OH, OW = d->OW;
    const int KH = d->KH, KW = d->KW, SW = d->SW;
    for (int64_t u = u0; u < u1; u++) {
        int n = (int)(u / d->OC), oc = (int)(u % d->OC);
        const float *inp = j->in + ((int64_t)n * d->C + (int64_t)(oc / OCg) * Cg) * H * W;
        const float *wp = j->w + (int64_t)oc * Cg * KH * KW;
        float bias = j->b ? j->b[oc] : 0.0f;
        for (int oh = 0; oh < OH; oh++) {
            float *o = j->out + u * OH * OW + (int64_t)oh * OW;
            for (int i = 0; i < OW; i++) o[i] = bias;
            for (int c = 0; c < Cg; c++)
                for (int kh = 0; kh < KH; kh++) {
                    int ih = oh * d->SH - d->PH + kh * d->DH;
                    if (ih < 0 || ih >= H) continue;
                    const float *row = inp + ((int64_t)c * H + ih) * W;
                    for (int kw = 0; kw < KW; kw++) {
                        int ow0, ow1;
                        tap_range(kw, SW, d->PW, d->DW, W, OW, &ow0, &ow1);
                        row_axpy(o, row - d->PW + kw * d->DW, wp[(c * KH + kh) * KW + kw], ow0, ow1, SW);
                    }
                }
            if (j->relu)
                for (int i = 0; i < OW; i++) o[i] = o[i] > 0.0f ? o[i] : 0.0f;
        }
    }
}

/* unit u = (image n, input channel c): din plane += the taps of the group's outputs, scattered */
static void convg_din_units(void *ctx, int64_t u0, int64_t u1, int thread) {
    (void)thread;
    const convg_job *j = ctx;
    const conv2d_dims *d = j->d;
    const int G = d->G, Cg = d->C / G, OCg = d->OC / G, H = d->H, W = d->W, OH = d->OH, OW = d->OW;
    const int KH = d->KH, KW = d->KW, SW = d->SW;
    for (int64_t u = u0; u < u1; u++) {
        int n = (int)(u / d->C), c = (int)(u % d->C), oc0 = c / Cg * OCg, cl = c % Cg;
        float *dp = j->din + u * H * W;
        for (int oc = oc0; oc < oc0 + OCg; oc++) {
            const float *g = j->dout + ((int64_t)n * d->OC + oc) * OH * OW;
            const float *wp = j->w + ((int64_t)oc * Cg + cl) * KH * KW;
            for (int kh = 0; kh < KH; kh++) {
                int oh0, oh1;
                tap_range(kh, d->SH, d->PH, d->DH, H, OH, &oh0, &oh1);
                for (int kw = 0; kw < KW; kw++) {
                    int ow0, ow1;
                    tap_range(kw, SW, d->PW, d->DW, W, OW, &ow0, &ow1);
                    const float wv = wp[kh * KW + kw];
                    for (int oh = oh0; oh < oh1; oh++) {
                        float *row = dp + (int64_t)(oh * d->SH - d->PH + kh * d->DH) * W - d->PW + kw * d->DW;
                        const float *grow = g + (int64_t)oh * OW;
                        if (SW == 1)
                            for (int ow = ow0; ow < ow1; ow++) row[ow] += wv * grow[ow];
                        else
                            for (int ow = ow0; ow < ow1; ow++) row[(int64_t)ow * SW] += wv * grow[ow];
                    }
                }
            }
        }
    }
}

/* unit = output channel oc: its weights (Cg, KH, KW) and bias, each one sum over the batch in
 * image order, kept in double */
static void convg_dw_units(void *ctx, int64_t u0, int64_t u1, int thread) {
    (void)thread;
    const convg_job *j = ctx;
    const conv2d_dims *d = j->d;
    const int G = d->G, Cg = d->C / G, OCg = d->OC / G, H = d->H, W = d->W, OH = d->OH, OW = d->OW;
    const int KH = d->KH, KW = d->KW, SW = d->SW;
    for (int64_t oc = u0; oc < u1; oc++) {
        if (j->db) {
            double acc = 0.0;
            for (int n = 0; n < d->B; n++) {
                const float *g = j->dout + ((int64_t)n * d->OC + oc) * OH * OW;
                for (int i = 0; i < OH * OW; i++) acc += g[i];
            }
            j->db[oc] += (float)acc;
        }
        if (!j->dw) continue;
        const int ci0 = (int)(oc / OCg) * Cg;
        for (int c = 0; c < Cg; c++)
            for (int kh = 0; kh < KH; kh++) {
                int oh0, oh1;
                tap_range(kh, d->SH, d->PH, d->DH, H, OH, &oh0, &oh1);
                for (int kw = 0; kw < KW; kw++) {
                    int ow0, ow1;
                    tap_range(kw, SW, d->PW, d->DW, W, OW, &ow0, &ow1);
                    double acc = 0.0;
                    for (int n = 0; n < d->B; n++) {
                        const float *g = j->dout + ((int64_t)n * d->OC + oc) * OH * OW;
                        const float *inp = j->in + ((int64_t)n * d->C + ci0 + c) * H * W;
                        for (int oh = oh0; oh < oh1; oh++) {
                            const float *row = inp + (int64_t)(oh * d->SH - d->PH + kh * d->DH) * W - d->PW + kw * d->DW;
                            const float *grow = g + (int64_t)oh * OW;
                            float s = 0.0f;
                            for (int ow = ow0; ow < ow1; ow++) s += grow[ow] * row[(int64_t)ow * SW];
                            acc += s;
                        }
                    }
                    j->dw[((oc * Cg + c) * KH + kh) * KW + kw] += (float)acc;
                }
            }
    }
}

static int64_t convg_macs(const conv2d_dims *d) {
    return (int64_t)d->B * d->OC * d->OH * d->OW * (d->C / d->G) * d->KH * d->KW;
}

static void convg_forward(const herd_exec *ex, float *out, const float *in, const float *w, const float *b,
                          const conv2d_dims *d, int relu) {
    convg_job j = {.d = d, .out = out, .in = in, .w = w, .b = b, .relu = relu};
    /* direct loops run at a fraction of the gemm's rate: 4 times its per-MAC cost */
    cpu_for(ex, (int64_t)d->B * d->OC, 4 * CPU_NS_PER_MAC(convg_macs(d)), convg_forward_units, &j);
}

static void convg_backward(const herd_exec *ex, float *din, float *dw, float *db, const float *dout, const float *in,
                           const float *w, const conv2d_dims *d) {
    convg_job j = {.d = d, .din = din, .dw = dw, .db = db, .dout = dout, .in = in, .w = w};
    if (dw || db) cpu_for(ex, d->OC, 4 * CPU_NS_PER_MAC(convg_macs(d)), convg_dw_units, &j);
    if (din) cpu_for(ex, (int64_t)d->B * d->C, 4 * CPU_NS_PER_MAC(convg_macs(d)), convg_din_units, &j);
}

/* ---- the backend's conv entries ---- */

size_t cpu_conv_workspace(const conv2d_dims *d, int threads) {
    return conv2d_is_grouped(d) ? 0 : cpu_conv2d_workspace(d, threads);
}

void cpu_conv_forward(const herd_exec *ex, float *out, const float *in, const float *w, const float *b,
                      const conv2d_dims *d) {
    if (conv2d_is_grouped(d)) convg_forward(ex, out, in, w, b, d, 0);
    else cpu_conv2d_forward(ex, out, in, w, b, d);
}

void cpu_conv_forward_relu(const herd_exec *ex, float *out, const float *in, const float *w, const float *b,
                           const conv2d_dims *d) {
    if (conv2d_is_grouped(d)) convg_forward(ex, out, in, w, b, d, 1);
    else cpu_conv2d_forward_relu(ex, out, in, w, b, d);
}

void cpu_conv_backward(const herd_exec *ex, float *din, float *dw, float *db, const float *dout, const float *in,
                       const float *w, const conv2d_dims *d) {
    if (conv2d_is_grouped(d)) convg_backward(ex, din, dw, db, dout, in, w, d);
    else cpu_conv2d_backward(ex, din, dw, db, dout, in, w, d);
}

void cpu_conv_backward_relu(const herd_exec *ex, float *din, float *dw, float *db, float *dout, const float *out,
                            const float *in, const float *w, const conv2d_dims *d) {
    if (!conv2d_is_grouped(d)) {
        cpu_conv2d_backward_relu(ex, din, dw, db, dout, out, in, w, d);
        return;
    }
    cpu_relu_backward_inplace(ex, dout, out, (int64_t)d->B * d->OC * d->OH * d->OW);
    convg_backward(ex, din, dw, db, dout, in, w, d);
}
