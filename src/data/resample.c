/* Separable triangle-filter resampling with PIL's coefficients (libImaging/Resample.c,
 * precompute_coeffs): support 1 scaled by the shrink factor, taps clipped to the image and
 * renormalised. Vertical pass first, one output row at a time (it runs over whole rows, which
 * the compiler vectorises), then the horizontal pass over that row. */
#include "data/resample.h"

#include <math.h>
#include <stdlib.h>

typedef struct taps {
    int *first; /* first source index of output i */
    int *count; /* taps of output i */
    float *w;   /* ksize weights per output */
    int ksize;
    double *scratch; /* ksize */
} taps;

static double triangle(double x) {
    x = fabs(x);
    return x < 1.0 ? 1.0 - x : 0.0;
}

/* PIL's precompute_coeffs for the triangle (bilinear) filter. */
static int taps_make(taps *t, int in_size, double in0, double in1, int out_size) {
    double scale = (in1 - in0) / out_size, fscale = scale < 1.0 ? 1.0 : scale;
    double support = 1.0 * fscale;
    t->ksize = (int)ceil(support) * 2 + 1;
    t->first = malloc((size_t)out_size * sizeof *t->first);
    t->count = malloc((size_t)out_size * sizeof *t->count);
    t->w = herd_malloc_array((size_t)out_size, (size_t)t->ksize * sizeof *t->w);
    t->scratch = herd_malloc_array((size_t)t->ksize, sizeof *t->scratch);
    if (!t->first || !t->count || !t->w || !t->scratch) return 0;
    for (int o = 0; o < out_size; o++) {
        double center = in0 + (o + 0.5) * scale, sum = 0;
        int lo = (int)floor(center - support + 0.5), hi = (int)floor(center + support + 0.5);
        if (lo < 0) lo = 0;
        if (hi > in_size) hi = in_size;
        if (hi <= lo) { /* a region outside the image: the nearest edge pixel */
            lo = center < 0 ? 0 : in_size - 1;
            hi = lo + 1;
        }
        double *k = t->scratch;
        int n = hi - lo;
        if (n > t->ksize) n = t->ksize;
        for (int j = 0; j < n; j++) sum += k[j] = triangle((j + lo - center + 0.5) / fscale);
        float *w = t->w + (size_t)o * t->ksize;
        for (int j = 0; j < n; j++) w[j] = (float)(sum != 0.0 ? k[j] / sum : 1.0 / n);
        t->first[o] = lo;
        t->count[o] = n;
    }
    return 1;
}

static void taps_free(taps *t) {
    free(t->first);
    free(t->count);
    free(t->w);
    free(t->scratch);
}

/* The horizontal pass of one row of `planes` planes (1 or 3: three independent sums share each
 * weight load and keep the adder busy): K taps per output pixel. */
static inline void horizontal(float *o, size_t o_plane, const float *row, size_t row_plane, int planes,
                              const taps *tx, int dw, int K) {
    for (int x = 0; x < dw; x++) {
        const float *wx = tx->w + (size_t)x * tx->ksize, *r = row + tx->first[x];
        if (planes == 3) {
            float v0 = 0, v1 = 0, v2 = 0;
            for (int k = 0; k < K; k++) {
                v0 += wx[k] * r[k];
                v1 += wx[k] * r[row_plane + k];
                v2 += wx[k] * r[2 * row_plane + k];
            }
            o[x] = v0, o[o_plane + x] = v1, o[2 * o_plane + x] = v2;
        } else {
            float v = 0;
            for (int k = 0; k < K; k++) v += wx[k] * r[k];
            o[x] = v;
        }
    }
}

herd_status herd_resample(float *dst, int dw, int dh, const float *src, int sw, int sh, int planes, double x0,
                          double y0, double x1, double y1, herd_error *err) {
    taps tx = {0}, ty = {0};
    float *rows = NULL;
    herd_status st = HERD_OK;
    if (!taps_make(&tx, sw, x0, x1, dw) || !taps_make(&ty, sh, y0, y1, dh) ||
        !(rows = herd_malloc_array((size_t)sw, (size_t)planes * sizeof *rows))) {
        st = herd_fail(err, HERD_ENOMEM, "resample: out of memory for %gx%g to %dx%d", x1 - x0, y1 - y0, dw, dh);
        goto done;
    }
    /* fixed-length taps for the horizontal pass (zero weights pad, the window shifted inside
     * the row), so its inner loop has one trip count */
    int K = tx.ksize < sw ? tx.ksize : sw;
    for (int x = 0; x < dw; x++) {
        float *w = tx.w + (size_t)x * tx.ksize;
        int f = tx.first[x], n = tx.count[x], shift = f + K > sw ? f + K - sw : 0;
        for (int k = n - 1; k >= 0; k--) w[k + shift] = w[k];
        for (int k = 0; k < shift; k++) w[k] = 0;
        for (int k = n + shift; k < K; k++) w[k] = 0;
        tx.first[x] = f - shift;
    }
    int xlo = tx.first[0], xhi = tx.first[dw - 1] + K; /* the columns the output reads */
    for (int y = 0; y < dh; y++) {
        const float *wy = ty.w + (size_t)y * ty.ksize;
        for (int p = 0; p < planes; p++) { /* vertical: whole rows, vectorised */
            const float *s0 = src + ((size_t)p * sh + ty.first[y]) * sw;
            float *row = rows + (size_t)p * sw;
            for (int x = xlo; x < xhi; x++) row[x] = wy[0] * s0[x];
            for (int k = 1; k < ty.count[y]; k++) {
                const float *s = s0 + (size_t)k * sw;
                float wk = wy[k];
                for (int x = xlo; x < xhi; x++) row[x] += wk * s[x];
            }
        }
        size_t op = (size_t)dh * dw;
        for (int p = 0; p < planes; p += planes == 3 ? 3 : 1) {
            int n = planes == 3 ? 3 : 1;
            const float *row = rows + (size_t)p * sw;
            float *o = dst + (size_t)p * op + (size_t)y * dw;
            switch (K) { /* the common tap counts as constants, so the loop unrolls */
            case 3: horizontal(o, op, row, (size_t)sw, n, &tx, dw, 3); break;
            case 5: horizontal(o, op, row, (size_t)sw, n, &tx, dw, 5); break;
            case 7: horizontal(o, op, row, (size_t)sw, n, &tx, dw, 7); break;
            default: horizontal(o, op, row, (size_t)sw, n, &tx, dw, K);
            }
        }
    }
done:
    taps_free(&tx);
    taps_free(&ty);
    free(rows);
    return st;
}
