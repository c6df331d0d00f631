/* Reference 2-D convolution (cross-correlation, as PyTorch): direct loops, the oracle
 * for the fast paths. in (B,C,H,W), w (OC,C,KH,KW), out (B,OC,OH,OW). */
#include <limits.h>

#include "ops/ops.h"

int conv2d_dims_finish(conv2d_dims *d) {
    if (d->B < 1 || d->C < 1 || d->H < 1 || d->W < 1 || d->OC < 1 || d->KH < 1 || d->KW < 1 || d->SH < 1 ||
        d->SW < 1 || d->PH < 0 || d->PW < 0)
        return 0;
    int64_t hp = (int64_t)d->H + 2 * (int64_t)d->PH, wp = (int64_t)d->W + 2 * (int64_t)d->PW;
    if (hp < d->KH || wp < d->KW || hp > INT_MAX || wp > INT_MAX) return 0;
    d->OH = (int)((hp - d->KH) / d->SH + 1);
    d->OW = (int)((wp - d->KW) / d->SW + 1);
    int64_t out = (int64_t)d->B * d->OC * d->OH * d->OW, in = (int64_t)d->B * d->C * d->H * d->W;
    return out < ((int64_t)1 << 40) && in < ((int64_t)1 << 40);
}

void ref_conv2d_forward(float *out, const float *in, const float *w, const float *b, const conv2d_dims *d) {
    for (int n = 0; n < d->B; n++)
        for (int oc = 0; oc < d->OC; oc++) {
            float *o = out + ((int64_t)n * d->OC + oc) * d->OH * d->OW;
            for (int oh = 0; oh < d->OH; oh++)
                for (int ow = 0; ow < d->OW; ow++) {
                    float acc = b ? b[oc] : 0.0f;
                    for (int c = 0; c < d->C; c++) {
                        const float *x = in + ((int64_t)n * d->C + c) * d->H * d->W;
                        const float *k = w + ((int64_t)oc * d->C + c) * d->KH * d->KW;
                        for (int kh = 0; kh < d->KH; kh++) {
                            int ih = oh * d->SH - d->PH + kh;
                            if (ih < 0 || ih >= d->H) continue;
                            for (int kw = 0; kw < d->KW; kw++) {
                                int iw = ow * d->SW - d->PW + kw;
                                if (iw < 0 || iw >= d->W) continue;
                                acc += x[ih * d->W + iw] * k[kh * d->KW + kw];
                            }
                        }
                    }
                    o[oh * d->OW + ow] = acc;
                }
        }
}

void ref_conv2d_backward(float *din, float *dw, float *db, const float *dout, const float *in, const float *w,
                         const conv2d_dims *d) {
    for (int n = 0; n < d->B; n++)
        for (int oc = 0; oc < d->OC; oc++) {
            const float *g = dout + ((int64_t)n * d->OC + oc) * d->OH * d->OW;
            for (int oh = 0; oh < d->OH; oh++)
                for (int ow = 0; ow < d->OW; ow++) {
                    float go = g[oh * d->OW + ow];
                    if (db) db[oc] += go;
                    for (int c = 0; c < d->C; c++) {
                        int64_t plane = ((int64_t)n * d->C + c) * d->H * d->W;
                        int64_t kbase = ((int64_t)oc * d->C + c) * d->KH * d->KW;
                        for (int kh = 0; kh < d->KH; kh++) {
                            int ih = oh * d->SH - d->PH + kh;
                            if (ih < 0 || ih >= d->H) continue;
                            for (int kw = 0; kw < d->KW; kw++) {
                                int iw = ow * d->SW - d->PW + kw;
                                if (iw < 0 || iw >= d->W) continue;
                                int64_t xi = plane + ih * d->W + iw, ki = kbase + kh * d->KW + kw;
                                if (dw) dw[ki] += go * in[xi];
                                if (din) din[xi] += go * w[ki];
                            }
                        }
                    }
                }
        }
}
