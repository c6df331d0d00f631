/* Reference 2-D convolution (NCHW input, OIHW weight, zero padding, stride), forward and backward.
 * Every output and every gradient element is one dot product summed in double, so this is the oracle. */
#include "ops/ops.h"

#include <stdint.h>

/* Product of positive sizes, 0 when it would pass INT64_MAX (so callers can index with int64_t). */
static int64_t mul_or_zero(int64_t a, int64_t b) {
    if (a <= 0 || b <= 0 || a > INT64_MAX / b) return 0;
    return a * b;
}

int herdi_conv2d_dims_finish(conv2d_dims *d) {
    if (d->G == 0) d->G = 1;
    if (d->DH == 0) d->DH = 1;
    if (d->DW == 0) d->DW = 1;
    if (d->B <= 0 || d->C <= 0 || d->H <= 0 || d->W <= 0 || d->OC <= 0 || d->KH <= 0 || d->KW <= 0) return 0;
    if (d->SH <= 0 || d->SW <= 0 || d->PH < 0 || d->PW < 0 || d->G < 0 || d->DH < 0 || d->DW < 0) return 0;
    if (d->C % d->G || d->OC % d->G) return 0;
    /* padded extents and the dilated kernel in int64 so neither can overflow int */
    int64_t hp = (int64_t)d->H + 2 * (int64_t)d->PH, wp = (int64_t)d->W + 2 * (int64_t)d->PW;
    int64_t kh = (int64_t)d->DH * (d->KH - 1) + 1, kw = (int64_t)d->DW * (d->KW - 1) + 1;
    if (hp > INT32_MAX || wp > INT32_MAX) return 0;
    if (kh > hp || kw > wp) return 0;
    int64_t oh = (hp - kh) / d->SH + 1, ow = (wp - kw) / d->SW + 1;
    /* every tensor's element count must be indexable */
    if (!mul_or_zero(mul_or_zero(mul_or_zero(d->B, d->C), d->H), d->W)) return 0;
    if (!mul_or_zero(mul_or_zero(mul_or_zero(d->B, d->OC), oh), ow)) return 0;
    if (!mul_or_zero(mul_or_zero(mul_or_zero(d->OC, d->C / d->G), d->KH), d->KW)) return 0;
    d->OH = (int)oh;
    d->OW = (int)ow;
    return 1;
}

/* Kernel taps k in [*k0, *k1) that land inside [0, n) for output position o:
 * i = o*s - p + k*dil, so 0 <= i < n  <=>  p - o*s <= k*dil < n + p - o*s. */
static void valid_taps(int o, int s, int p, int dil, int n, int K, int *k0, int *k1) {
    int lo = p - o * s, hi = n + p - o * s;
    int a = lo > 0 ? (lo + dil - 1) / dil : 0, b = hi > 0 ? (hi + dil - 1) / dil : 0;
    *k0 = a;
    *k1 = b < K ? b : K;
}

void herdi_ref_conv2d_forward(float *out, const float *in, const float *w, const float *b, const conv2d_dims *d) {
    const int C = d->C, H = d->H, W = d->W, OC = d->OC, KH = d->KH, KW = d->KW, OH = d->OH, OW = d->OW;
    const int G = d->G > 1 ? d->G : 1, DH = d->DH > 1 ? d->DH : 1, DW = d->DW > 1 ? d->DW : 1;
    const int Cg = C / G, OCg = OC / G;
    for (int n = 0; n < d->B; n++) {
        for (int oc = 0; oc < OC; oc++) {
            const float *in_n = in + ((int64_t)n * C + (int64_t)(oc / OCg) * Cg) * H * W; /* the group's channels */
            const float *w_oc = w + (int64_t)oc * Cg * KH * KW;
            float *out_p = out + ((int64_t)n * OC + oc) * OH * OW;
            for (int oh = 0; oh < OH; oh++) {
                int kh0, kh1;
                valid_taps(oh, d->SH, d->PH, DH, H, KH, &kh0, &kh1);
                int ih0 = oh * d->SH - d->PH;
                for (int ow = 0; ow < OW; ow++) {
                    int kw0, kw1;
                    valid_taps(ow, d->SW, d->PW, DW, W, KW, &kw0, &kw1);
                    int iw0 = ow * d->SW - d->PW;
                    double acc = b ? b[oc] : 0.0;
                    for (int c = 0; c < Cg; c++) {
                        const float *in_c = in_n + (int64_t)c * H * W;
                        const float *w_c = w_oc + (int64_t)c * KH * KW;
                        for (int kh = kh0; kh < kh1; kh++) {
                            const float *in_row = in_c + (int64_t)(ih0 + kh * DH) * W;
                            const float *w_row = w_c + kh * KW;
                            for (int kw = kw0; kw < kw1; kw++) acc += (double)in_row[iw0 + kw * DW] * w_row[kw];
                        }
                    }
                    out_p[oh * OW + ow] = (float)acc;
                }
            }
        }
    }
}

/* din: each input pixel gathers from the outputs whose window covers it, so the sum stays in double
 * (a scatter would round once per contribution). */
static void conv2d_backward_input(float *din, const float *dout, const float *w, const conv2d_dims *d) {
    const int C = d->C, H = d->H, W = d->W, OC = d->OC, KH = d->KH, KW = d->KW, OH = d->OH, OW = d->OW;
    const int G = d->G > 1 ? d->G : 1, DH = d->DH > 1 ? d->DH : 1, DW = d->DW > 1 ? d->DW : 1;
    const int Cg = C / G, OCg = OC / G;
    for (int n = 0; n < d->B; n++) {
        const float *dout_n = dout + (int64_t)n * OC * OH * OW;
        for (int c = 0; c < C; c++) {
            float *din_c = din + ((int64_t)n * C + c) * H * W;
            const int oc0 = c / Cg * OCg, cl = c % Cg; /* the group's outputs; c's index in the group */
            for (int ih = 0; ih < H; ih++) {
                for (int iw = 0; iw < W; iw++) {
                    double acc = 0.0;
                    for (int kh = 0; kh < KH; kh++) {
                        int th = ih + d->PH - kh * DH; /* = oh * SH when tap kh of output row oh hits ih */
                        if (th < 0 || th % d->SH != 0 || th / d->SH >= OH) continue;
                        int oh = th / d->SH;
                        for (int kw = 0; kw < KW; kw++) {
                            int tw = iw + d->PW - kw * DW;
                            if (tw < 0 || tw % d->SW != 0 || tw / d->SW >= OW) continue;
                            int ow = tw / d->SW;
                            for (int oc = oc0; oc < oc0 + OCg; oc++) {
                                acc += (double)dout_n[((int64_t)oc * OH + oh) * OW + ow] *
                                       w[(((int64_t)oc * Cg + cl) * KH + kh) * KW + kw];
                            }
                        }
                    }
                    din_c[ih * W + iw] += (float)acc;
                }
            }
        }
    }
}

/* dw[oc,c,kh,kw] = sum over batch and output positions whose tap (kh,kw) lands inside the input. */
static void conv2d_backward_weight(float *dw, const float *dout, const float *in, const conv2d_dims *d) {
    const int C = d->C, H = d->H, W = d->W, OC = d->OC, KH = d->KH, KW = d->KW, OH = d->OH, OW = d->OW;
    const int G = d->G > 1 ? d->G : 1, DH = d->DH > 1 ? d->DH : 1, DW = d->DW > 1 ? d->DW : 1;
    const int Cg = C / G, OCg = OC / G;
    for (int oc = 0; oc < OC; oc++) {
        for (int c = 0; c < Cg; c++) {
            const int ci = oc / OCg * Cg + c; /* the input channel */
            for (int kh = 0; kh < KH; kh++) {
                for (int kw = 0; kw < KW; kw++) {
                    double acc = 0.0;
                    for (int n = 0; n < d->B; n++) {
                        const float *dout_p = dout + ((int64_t)n * OC + oc) * OH * OW;
                        const float *in_c = in + ((int64_t)n * C + ci) * H * W;
                        for (int oh = 0; oh < OH; oh++) {
                            int ih = oh * d->SH - d->PH + kh * DH;
                            if (ih < 0 || ih >= H) continue;
                            for (int ow = 0; ow < OW; ow++) {
                                int iw = ow * d->SW - d->PW + kw * DW;
                                if (iw < 0 || iw >= W) continue;
                                acc += (double)dout_p[oh * OW + ow] * in_c[ih * W + iw];
                            }
                        }
                    }
                    dw[(((int64_t)oc * Cg + c) * KH + kh) * KW + kw] += (float)acc;
                }
            }
        }
    }
}

void herdi_ref_conv2d_backward(float *din, float *dw, float *db, const float *dout, const float *in, const float *w,
                         const conv2d_dims *d) {
    const int64_t plane = (int64_t)d->OH * d->OW;
    if (db) {
        for (int oc = 0; oc < d->OC; oc++) {
            double acc = 0.0;
            for (int n = 0; n < d->B; n++) {
                const float *dout_p = dout + ((int64_t)n * d->OC + oc) * plane;
                for (int64_t i = 0; i < plane; i++) acc += dout_p[i];
            }
            db[oc] += (float)acc;
        }
    }
    if (dw) conv2d_backward_weight(dw, dout, in, d);
    if (din) conv2d_backward_input(din, dout, w, d);
}
