/* Reference pooling over NCHW: max pool (with argmax for backward), average pool with
 * count_include_pad = true, and global average pool; PyTorch semantics, floor output size or
 * ceil_mode. */
#include "ops/ops.h"

#include <math.h>
#include <stdint.h>

static int64_t mul_or_zero(int64_t a, int64_t b) {
    if (a <= 0 || b <= 0 || a > INT64_MAX / b) return 0;
    return a * b;
}

int herdi_pool2d_dims_finish(pool2d_dims *d) {
    if (d->B <= 0 || d->C <= 0 || d->H <= 0 || d->W <= 0 || d->KH <= 0 || d->KW <= 0) return 0;
    if (d->SH <= 0 || d->SW <= 0 || d->PH < 0 || d->PW < 0) return 0;
    /* PyTorch's rule: padding at most half the kernel, so no window is all padding
     * (a max over padding only would have no argmax). */
    if (2 * (int64_t)d->PH > d->KH || 2 * (int64_t)d->PW > d->KW) return 0;
    int64_t hp = (int64_t)d->H + 2 * (int64_t)d->PH, wp = (int64_t)d->W + 2 * (int64_t)d->PW;
    if (hp > INT32_MAX || wp > INT32_MAX) return 0;
    if (d->KH > hp || d->KW > wp) return 0;
    /* argmax stores h*W+w in int32 */
    if ((int64_t)d->H * d->W > INT32_MAX) return 0;
    int64_t oh = (hp - d->KH) / d->SH + 1, ow = (wp - d->KW) / d->SW + 1;
    if (d->ceil) { /* PyTorch: round up, but the last window must start inside the input or its left padding */
        oh = (hp - d->KH + d->SH - 1) / d->SH + 1, ow = (wp - d->KW + d->SW - 1) / d->SW + 1;
        if ((oh - 1) * d->SH >= (int64_t)d->H + d->PH) oh--;
        if ((ow - 1) * d->SW >= (int64_t)d->W + d->PW) ow--;
    }
    if (!mul_or_zero(mul_or_zero(mul_or_zero(d->B, d->C), d->H), d->W)) return 0;
    if (!mul_or_zero(mul_or_zero(mul_or_zero(d->B, d->C), oh), ow)) return 0;
    d->OH = (int)oh;
    d->OW = (int)ow;
    return 1;
}

static int imax(int a, int b) { return a > b ? a : b; }
static int imin(int a, int b) { return a < b ? a : b; }

void herdi_ref_maxpool2d_forward(float *out, int32_t *argmax, const float *in, const pool2d_dims *d) {
    const int H = d->H, W = d->W, OH = d->OH, OW = d->OW;
    const int64_t planes = (int64_t)d->B * d->C;
    for (int64_t p = 0; p < planes; p++) {
        const float *in_p = in + p * H * W;
        float *out_p = out + p * OH * OW;
        int32_t *arg_p = argmax + p * OH * OW;
        for (int oh = 0; oh < OH; oh++) {
            /* clipping the window to the input is what makes padding never win */
            int h0 = oh * d->SH - d->PH, h1 = imin(h0 + d->KH, H);
            h0 = imax(h0, 0);
            for (int ow = 0; ow < OW; ow++) {
                int w0 = ow * d->SW - d->PW, w1 = imin(w0 + d->KW, W);
                w0 = imax(w0, 0);
                int best = h0 * W + w0;
                float best_v = in_p[best];
                for (int h = h0; h < h1; h++) {
                    for (int w = w0; w < w1; w++) {
                        float v = in_p[h * W + w];
                        /* strict > keeps the first of equal values; a NaN wins (as in PyTorch) so it propagates */
                        if (v > best_v || (isnan(v) && !isnan(best_v))) {
                            best_v = v;
                            best = h * W + w;
                        }
                    }
                }
                out_p[oh * OW + ow] = best_v;
                arg_p[oh * OW + ow] = best;
            }
        }
    }
}

void herdi_ref_maxpool2d_backward(float *din, const float *dout, const int32_t *argmax, const pool2d_dims *d) {
    if (!din) return;
    const int64_t in_plane = (int64_t)d->H * d->W, out_plane = (int64_t)d->OH * d->OW;
    const int64_t planes = (int64_t)d->B * d->C;
    for (int64_t p = 0; p < planes; p++) {
        for (int64_t o = 0; o < out_plane; o++) din[p * in_plane + argmax[p * out_plane + o]] += dout[p * out_plane + o];
    }
}

/* ceil_mode: the part of window (oh, ow) inside the padded input (the kernel area otherwise) */
static double window_area(const pool2d_dims *d, int oh, int ow) {
    int h0 = oh * d->SH - d->PH, w0 = ow * d->SW - d->PW;
    return (double)(imin(h0 + d->KH, d->H + d->PH) - h0) * (imin(w0 + d->KW, d->W + d->PW) - w0);
}

void herdi_ref_avgpool2d_forward(float *out, const float *in, const pool2d_dims *d) {
    const int H = d->H, W = d->W, OH = d->OH, OW = d->OW;
    /* count_include_pad: with floor sizing every window lies inside the padded input, so the divisor is the kernel area */
    const double inv_area = 1.0 / ((double)d->KH * d->KW);
    const int64_t planes = (int64_t)d->B * d->C;
    for (int64_t p = 0; p < planes; p++) {
        const float *in_p = in + p * H * W;
        float *out_p = out + p * OH * OW;
        for (int oh = 0; oh < OH; oh++) {
            int h0 = oh * d->SH - d->PH, h1 = imin(h0 + d->KH, H);
            h0 = imax(h0, 0);
            for (int ow = 0; ow < OW; ow++) {
                int w0 = ow * d->SW - d->PW, w1 = imin(w0 + d->KW, W);
                w0 = imax(w0, 0);
                double acc = 0.0;
                for (int h = h0; h < h1; h++) {
                    for (int w = w0; w < w1; w++) acc += in_p[h * W + w];
                }
                out_p[oh * OW + ow] = (float)(acc * (d->ceil ? 1.0 / window_area(d, oh, ow) : inv_area));
            }
        }
    }
}

/* Output positions o in [*o0, *o1) whose window [o*s - p, o*s - p + k) contains input index i. */
static void covering_windows(int i, int s, int p, int k, int n_out, int *o0, int *o1) {
    int t = i + p - k; /* window o contains i  <=>  t < o*s <= i + p */
    *o0 = t < 0 ? 0 : t / s + 1;
    *o1 = imin((i + p) / s + 1, n_out);
}

void herdi_ref_avgpool2d_backward(float *din, const float *dout, const pool2d_dims *d) {
    if (!din) return;
    const int H = d->H, W = d->W, OH = d->OH, OW = d->OW;
    const double inv_area = 1.0 / ((double)d->KH * d->KW);
    const int64_t planes = (int64_t)d->B * d->C;
    for (int64_t p = 0; p < planes; p++) {
        float *din_p = din + p * H * W;
        const float *dout_p = dout + p * OH * OW;
        /* gather per input pixel so overlapping windows are summed once, in double */
        for (int h = 0; h < H; h++) {
            int oh0, oh1;
            covering_windows(h, d->SH, d->PH, d->KH, OH, &oh0, &oh1);
            for (int w = 0; w < W; w++) {
                int ow0, ow1;
                covering_windows(w, d->SW, d->PW, d->KW, OW, &ow0, &ow1);
                double acc = 0.0;
                if (d->ceil) {
                    for (int oh = oh0; oh < oh1; oh++)
                        for (int ow = ow0; ow < ow1; ow++) acc += dout_p[oh * OW + ow] / window_area(d, oh, ow);
                    din_p[h * W + w] += (float)acc;
                    continue;
                }
                for (int oh = oh0; oh < oh1; oh++) {
                    for (int ow = ow0; ow < ow1; ow++) acc += dout_p[oh * OW + ow];
                }
                din_p[h * W + w] += (float)(acc * inv_area);
            }
        }
    }
}

/* Each plane's mean is one sum in double, element by element in order; 8 planes at a time so
 * that 8 such chains of dependent adds overlap (one plane at a time waited on each add: ~70 us
 * for mobilenet_v2's 1280 planes of 7x7 at batch 1). The same sums, so the same bits. */
void herdi_ref_gap_forward(float *out, const float *in, int B, int C, int HW) {
    const int64_t P = (int64_t)B * C;
    int64_t p = 0;
    for (; p + 8 <= P; p += 8) {
        const float *in_p = in + p * HW;
        double acc[8] = {0};
        for (int i = 0; i < HW; i++)
            for (int k = 0; k < 8; k++) acc[k] += in_p[(int64_t)k * HW + i];
        for (int k = 0; k < 8; k++) out[p + k] = (float)(acc[k] / HW);
    }
    for (; p < P; p++) {
        const float *in_p = in + p * HW;
        double acc = 0.0;
        for (int i = 0; i < HW; i++) acc += in_p[i];
        out[p] = (float)(acc / HW);
    }
}

void herdi_ref_gap_backward(float *din, const float *dout, int B, int C, int HW) {
    if (!din) return;
    for (int64_t p = 0; p < (int64_t)B * C; p++) {
        float g = (float)((double)dout[p] / HW);
        float *din_p = din + p * HW;
        for (int i = 0; i < HW; i++) din_p[i] += g;
    }
}
