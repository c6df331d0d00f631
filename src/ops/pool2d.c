/* Reference pooling: max (with argmax for backward), average (count_include_pad, as
 * PyTorch's default) and global average. */
#include <float.h>
#include <limits.h>

#include "ops/ops.h"

int pool2d_dims_finish(pool2d_dims *d) {
    if (d->B < 1 || d->C < 1 || d->H < 1 || d->W < 1 || d->KH < 1 || d->KW < 1 || d->SH < 1 || d->SW < 1 ||
        d->PH < 0 || d->PW < 0)
        return 0;
    int64_t hp = (int64_t)d->H + 2 * (int64_t)d->PH, wp = (int64_t)d->W + 2 * (int64_t)d->PW;
    if (hp < d->KH || wp < d->KW || hp > INT_MAX || wp > INT_MAX) return 0;
    d->OH = (int)((hp - d->KH) / d->SH + 1);
    d->OW = (int)((wp - d->KW) / d->SW + 1);
    return (int64_t)d->B * d->C * d->H * d->W < ((int64_t)1 << 40);
}

void ref_maxpool2d_forward(float *out, int32_t *argmax, const float *in, const pool2d_dims *d) {
    for (int64_t p = 0; p < (int64_t)d->B * d->C; p++) {
        const float *x = in + p * d->H * d->W;
        for (int oh = 0; oh < d->OH; oh++)
            for (int ow = 0; ow < d->OW; ow++) {
                float best = -FLT_MAX;
                int32_t at = -1;
                for (int kh = 0; kh < d->KH; kh++) {
                    int ih = oh * d->SH - d->PH + kh;
                    if (ih < 0 || ih >= d->H) continue;
                    for (int kw = 0; kw < d->KW; kw++) {
                        int iw = ow * d->SW - d->PW + kw;
                        if (iw < 0 || iw >= d->W) continue;
                        float v = x[ih * d->W + iw];
                        if (at < 0 || v > best || v != v) { /* NaN propagates, as in PyTorch */
                            best = v;
                            at = ih * d->W + iw;
                            if (v != v) goto found;
                        }
                    }
                }
            found:
                out[(p * d->OH + oh) * d->OW + ow] = best;
                argmax[(p * d->OH + oh) * d->OW + ow] = at;
            }
    }
}

void ref_maxpool2d_backward(float *din, const float *dout, const int32_t *argmax, const pool2d_dims *d) {
    int64_t per = (int64_t)d->OH * d->OW;
    for (int64_t p = 0; p < (int64_t)d->B * d->C; p++)
        for (int64_t i = 0; i < per; i++)
            if (argmax[p * per + i] >= 0) din[p * d->H * d->W + argmax[p * per + i]] += dout[p * per + i];
}

void ref_avgpool2d_forward(float *out, const float *in, const pool2d_dims *d) {
    float scale = 1.0f / (float)(d->KH * d->KW);
    for (int64_t p = 0; p < (int64_t)d->B * d->C; p++) {
        const float *x = in + p * d->H * d->W;
        for (int oh = 0; oh < d->OH; oh++)
            for (int ow = 0; ow < d->OW; ow++) {
                float acc = 0;
                for (int kh = 0; kh < d->KH; kh++) {
                    int ih = oh * d->SH - d->PH + kh;
                    if (ih < 0 || ih >= d->H) continue;
                    for (int kw = 0; kw < d->KW; kw++) {
                        int iw = ow * d->SW - d->PW + kw;
                        if (iw >= 0 && iw < d->W) acc += x[ih * d->W + iw];
                    }
                }
                out[(p * d->OH + oh) * d->OW + ow] = acc * scale;
            }
    }
}

void ref_avgpool2d_backward(float *din, const float *dout, const pool2d_dims *d) {
    float scale = 1.0f / (float)(d->KH * d->KW);
    for (int64_t p = 0; p < (int64_t)d->B * d->C; p++) {
        float *dx = din + p * d->H * d->W;
        for (int oh = 0; oh < d->OH; oh++)
            for (int ow = 0; ow < d->OW; ow++) {
                float g = dout[(p * d->OH + oh) * d->OW + ow] * scale;
                for (int kh = 0; kh < d->KH; kh++) {
                    int ih = oh * d->SH - d->PH + kh;
                    if (ih < 0 || ih >= d->H) continue;
                    for (int kw = 0; kw < d->KW; kw++) {
                        int iw = ow * d->SW - d->PW + kw;
                        if (iw >= 0 && iw < d->W) dx[ih * d->W + iw] += g;
                    }
                }
            }
    }
}

void ref_gap_forward(float *out, const float *in, int B, int C, int HW) {
    for (int64_t p = 0; p < (int64_t)B * C; p++) {
        double acc = 0;
        for (int i = 0; i < HW; i++) acc += in[p * HW + i];
        out[p] = (float)(acc / HW);
    }
}

void ref_gap_backward(float *din, const float *dout, int B, int C, int HW) {
    for (int64_t p = 0; p < (int64_t)B * C; p++) {
        float g = dout[p] / (float)HW;
        for (int i = 0; i < HW; i++) din[p * HW + i] += g;
    }
}
