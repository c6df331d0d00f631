/* The cpu backend against the ref backend: every table op on random shapes (batch 1, odd
 * sizes, non-square, stride 2, padding, 1x1), forward and accumulating backward (grad buffers
 * pre-filled with non-zero values; NULL din/dw/db), on pools of 1, 2 and 3 threads, with the
 * AVX-512 and the portable paths, plus bit-identical reruns at a fixed thread count.
 *
 * Tolerance: |cpu - ref| <= 1e-5 * sqrt(K) * (1 + |ref|), K = the length of the reduction
 * behind the element: conv out C*KH*KW, conv din OC*KH*KW, conv dw/db B*OH*OW, dense out IN,
 * dense din OUT, dense dw/db B, batch norm B*HW, avgpool KH*KW, elementwise ops 1. With data
 * in [-1, 1], two summation orders of a K-term float32 sum differ by about
 * eps * sqrt(K) * rms(partial sums) ~ 6e-8 * K / 3, under the bound for K < ~250000, while
 * an indexing bug shows up as an O(1) error. */
#include <stdlib.h>
#include <string.h>

#include "backend/backend.h"
#include "backend/cpu_internal.h"
#include "check.h"

static herd_rng rng;

static float *randv(size_t n) {
    float *p = malloc((n ? n : 1) * sizeof(float));
    for (size_t i = 0; i < n; i++) p[i] = 2.0f * herd_rng_uniform(&rng) - 1.0f;
    return p;
}

static float *copyv(const float *a, size_t n) {
    float *p = malloc((n ? n : 1) * sizeof(float));
    memcpy(p, a, n * sizeof(float));
    return p;
}

static float *nanv(size_t n) {
    float *p = malloc((n ? n : 1) * sizeof(float));
    for (size_t i = 0; i < n; i++) p[i] = NAN;
    return p;
}

static int irand(int lo, int hi) { return lo + (int)herd_rng_below(&rng, (uint32_t)(hi - lo + 1)); }

static double worst_ratio; /* largest |cpu - ref| / bound seen, printed at the end */
static char worst_what[160];

/* |got - want| <= 1e-5 * sqrt(reduction_len) * (scale + |want|): rounding grows with the length
 * of the sums and with the size of their terms, so scale is the size of the operands' products
 * (1 for values in [-1, 1]; 4 where the weights were scaled by 4). */
static void compare_scaled(const char *what, const char *shape, const float *got, const float *want, size_t n,
                           double reduction_len, double scale) {
    double tol = 1e-5 * sqrt(reduction_len < 1 ? 1 : reduction_len);
    size_t bad = 0, first = 0;
    for (size_t i = 0; i < n; i++) {
        if (isnan(got[i]) && isnan(want[i])) continue; /* NaN in, NaN out, in both */
        double d = fabs((double)got[i] - want[i]), bound = tol * (scale + fabs(want[i]));
        if (d / bound > worst_ratio) {
            worst_ratio = d / bound;
            snprintf(worst_what, sizeof worst_what, "%s [%s]", what, shape);
        }
        if (!(d <= bound)) {
            if (!bad) first = i;
            bad++;
        }
    }
    CHECK(bad == 0, "%s [%s]: %zu of %zu differ, first at %zu: got %.9g expected %.9g (tol %g*(%g+|ref|))", what,
          shape, bad, n, first, bad ? got[first] : 0.0, bad ? want[first] : 0.0, tol, scale);
}

static void compare(const char *what, const char *shape, const float *got, const float *want, size_t n,
                    double reduction_len) {
    compare_scaled(what, shape, got, want, n, reduction_len, 1.0);
}

static void same_bits(const char *what, const char *shape, const float *a, const float *b, size_t n) {
    CHECK(memcmp(a, b, n * sizeof(float)) == 0, "%s [%s]: two runs with the same thread count differ", what, shape);
}

static herd_pool *pools[4];
static const int thread_counts[] = {1, 2, 3};
#define N_TC 3

/* Workspace of exactly the size the backend asked for, with a guard tail that must survive. */
typedef struct ws {
    float *p;
    size_t n;
} ws;

static herd_exec make_exec(int threads, size_t floats, ws *w) {
    w->n = floats;
    w->p = malloc((floats + 16) * sizeof(float));
    for (int i = 0; i < 16; i++) w->p[floats + i] = 12345.0f;
    herd_exec ex = {.pool = pools[threads], .workspace = w->p, .workspace_floats = floats};
    return ex;
}

static void free_ws(ws *w, const char *shape) {
    int ok = 1;
    for (int i = 0; i < 16; i++) ok &= w->p[w->n + i] == 12345.0f;
    CHECK(ok, "[%s]: wrote past the workspace it asked for", shape);
    free(w->p);
}

/* ---------------- conv2d ---------------- */
static void conv_case(conv2d_dims d, int with_bias) {
    const herd_backend *ref = &herd_backend_ref, *cpu = &herd_backend_cpu;
    if (!herdi_conv2d_dims_finish(&d)) return;
    CHECK(cpu->conv2d_unsupported(&d) == NULL, "cpu must support every conv");
    char shape[160];
    snprintf(shape, sizeof shape, "conv B%d C%d %dx%d OC%d k%dx%d s%d,%d p%d,%d g%d d%d,%d%s%s", d.B, d.C, d.H, d.W, d.OC,
             d.KH, d.KW, d.SH, d.SW, d.PH, d.PW, d.G, d.DH, d.DW, with_bias ? " bias" : "", d.inference ? " inference" : "");
    size_t nin = (size_t)d.B * d.C * d.H * d.W, nout = (size_t)d.B * d.OC * d.OH * d.OW;
    size_t nw = (size_t)d.OC * (d.C / d.G) * d.KH * d.KW;
    double kf = (double)(d.C / d.G) * d.KH * d.KW, kw_len = (double)d.B * d.OH * d.OW,
           kd = (double)(d.OC / d.G) * d.KH * d.KW;
    float *in = randv(nin), *w = randv(nw), *b = with_bias ? randv(d.OC) : NULL, *dout = randv(nout);
    float *din0 = randv(nin), *dw0 = randv(nw), *db0 = randv(d.OC);

    float *out_r = nanv(nout), *din_r = copyv(din0, nin), *dw_r = copyv(dw0, nw), *db_r = copyv(db0, d.OC);
    herd_exec none = {0};
    ref->conv2d_forward(&none, out_r, in, w, b, &d);
    ref->conv2d_backward(&none, din_r, dw_r, db_r, dout, in, w, &d);
    /* params-only backward (din NULL), as for a first layer */
    float *dw_r2 = copyv(dw0, nw), *db_r2 = copyv(db0, d.OC);
    ref->conv2d_backward(&none, NULL, dw_r2, db_r2, dout, in, w, &d);

    /* out and din never depend on the thread count; dw and db do not either on small maps (fewer
     * than 32 outputs per channel), whose weight gradient is split by its columns, not by images */
    float *out1 = nanv(nout), *din1 = nanv(nin), *dw1 = nanv(nw), *db1 = nanv(d.OC);
    const int split_by_columns = d.OH * d.OW < 32;
    for (int t = 0; t < N_TC; t++) {
        int T = thread_counts[t];
        ws wsp;
        herd_exec ex = make_exec(T, cpu->conv2d_workspace(&d, T), &wsp);
        float *out[2], *din[2], *dw[2], *db[2];
        for (int run = 0; run < 2; run++) {
            out[run] = nanv(nout);
            din[run] = copyv(din0, nin);
            dw[run] = copyv(dw0, nw);
            db[run] = copyv(db0, d.OC);
            cpu->conv2d_forward(&ex, out[run], in, w, b, &d);
            cpu->conv2d_backward(&ex, din[run], dw[run], db[run], dout, in, w, &d);
        }
        compare("conv out", shape, out[0], out_r, nout, kf);
        compare("conv din", shape, din[0], din_r, nin, kd);
        compare("conv dw", shape, dw[0], dw_r, nw, kw_len);
        compare("conv db", shape, db[0], db_r, d.OC, kw_len);
        same_bits("conv out", shape, out[0], out[1], nout);
        same_bits("conv din", shape, din[0], din[1], nin);
        same_bits("conv dw", shape, dw[0], dw[1], nw);
        same_bits("conv db", shape, db[0], db[1], d.OC);
        if (t == 0) {
            memcpy(out1, out[0], nout * sizeof(float)), memcpy(din1, din[0], nin * sizeof(float));
            memcpy(dw1, dw[0], nw * sizeof(float)), memcpy(db1, db[0], d.OC * sizeof(float));
        } else {
            CHECK(!memcmp(out1, out[0], nout * sizeof(float)), "conv out [%s]: %d threads differ from 1", shape, T);
            CHECK(!memcmp(din1, din[0], nin * sizeof(float)), "conv din [%s]: %d threads differ from 1", shape, T);
            CHECK(!split_by_columns ||
                      (!memcmp(dw1, dw[0], nw * sizeof(float)) && !memcmp(db1, db[0], d.OC * sizeof(float))),
                  "conv dw/db [%s] (small maps): %d threads differ from 1", shape, T);
        }

        float *dw2 = copyv(dw0, nw), *db2 = copyv(db0, d.OC);
        cpu->conv2d_backward(&ex, NULL, dw2, db2, dout, in, w, &d);
        compare("conv dw (din NULL)", shape, dw2, dw_r2, nw, kw_len);
        compare("conv db (din NULL)", shape, db2, db_r2, d.OC, kw_len);
        /* din only: dw/db NULL must leave the rest alone */
        float *din3 = copyv(din0, nin);
        cpu->conv2d_backward(&ex, din3, NULL, NULL, dout, in, w, &d);
        compare("conv din (dw, db NULL)", shape, din3, din_r, nin, kd);
        /* the fused ReLU and ReLU6 with weights and bias scaled by 4 (pre-activations beyond 6; the
         * outputs' and input gradients' rounding 4 times that of the unscaled sums):
         * the forward with the activation applied, the backward masking dout in place by that
         * output, against ref's conv, act op and in-place mask */
        for (int k = 0; k < 2; k++) {
            herd_act act = k ? HERD_ACT_RELU6 : HERD_ACT_RELU;
            const char *what[2][5] = {{"conv+relu out", "conv+relu mask", "conv+relu din", "conv+relu dw", "conv+relu db"},
                                      {"conv+relu6 out", "conv+relu6 mask", "conv+relu6 din", "conv+relu6 dw",
                                       "conv+relu6 db"}};
            float *w4 = copyv(w, nw), *b4 = b ? copyv(b, d.OC) : NULL, *pre = nanv(nout);
            for (size_t i = 0; i < nw; i++) w4[i] *= 4.0f;
            for (int i = 0; b4 && i < d.OC; i++) b4[i] *= 4.0f;
            float *oa_r = nanv(nout), *oa = nanv(nout), *ga_r = copyv(dout, nout), *ga = copyv(dout, nout);
            float *dia_r = copyv(din0, nin), *dwa_r = copyv(dw0, nw), *dba_r = copyv(db0, d.OC);
            float *dia = copyv(din0, nin), *dwa = copyv(dw0, nw), *dba = copyv(db0, d.OC);
            ref->conv2d_forward(&none, pre, in, w4, b4, &d);
            ref->act_forward(&none, oa_r, pre, (int64_t)nout, act, 0);
            cpu->conv2d_forward_act(&ex, oa, in, w4, b4, &d, &(conv2d_post){.act = act});
            compare_scaled(what[k][0], shape, oa, oa_r, nout, kf, 4.0); /* sums of w*4 * x */
            ref->act_backward_inplace(&none, ga_r, oa_r, (int64_t)nout, act);
            ref->conv2d_backward(&none, dia_r, dwa_r, dba_r, ga_r, in, w4, &d);
            cpu->conv2d_backward_act(&ex, dia, dwa, dba, ga, oa_r, in, w4, &d, act);
            same_bits(what[k][1], shape, ga, ga_r, nout);
            compare_scaled(what[k][2], shape, dia, dia_r, nin, kd, 4.0); /* sums of w*4 * dout */
            compare(what[k][3], shape, dwa, dwa_r, nw, kw_len);
            compare(what[k][4], shape, dba, dba_r, d.OC, kw_len);
            free(w4), free(b4), free(pre), free(oa_r), free(oa), free(ga_r), free(ga);
            free(dia_r), free(dwa_r), free(dba_r), free(dia), free(dwa), free(dba);
        }
        /* a batch norm folded in (an inference plan), then no activation, ReLU or ReLU6: the bits of
         * this conv, the cpu batch norm's eval pass and the act op run one after the other */
        {
            float *gm = randv(d.OC), *bt = randv(d.OC), *mu = randv(d.OC), *var = randv(d.OC);
            float *sc = nanv(d.OC), *sh = nanv(d.OC), *bn = nanv(nout);
            for (int c = 0; c < d.OC; c++) var[c] = var[c] * var[c] + 0.01f, gm[c] *= 4.0f; /* beyond ReLU6's 6 */
            cpu->batchnorm_eval_affine(sc, sh, gm, bt, mu, var, d.OC, 1e-5f);
            cpu->batchnorm_forward_eval(&ex, bn, out[0], gm, bt, mu, var, d.B, d.OC, d.OH * d.OW, 1e-5f, HERD_ACT_NONE);
            for (int k = 0; k < 3; k++) {
                const herd_act act = k == 0 ? HERD_ACT_NONE : k == 1 ? HERD_ACT_RELU : HERD_ACT_RELU6;
                float *want = copyv(bn, nout), *got = nanv(nout);
                if (act) cpu->act_forward(&ex, want, want, (int64_t)nout, act, 0);
                cpu->conv2d_forward_act(&ex, got, in, w, b, &d, &(conv2d_post){.scale = sc, .shift = sh, .act = act});
                CHECK(!memcmp(got, want, nout * sizeof(float)),
                      "conv + folded batch norm (act %d) [%s], %d threads: not the bits of conv, batch norm, act apart",
                      (int)act, shape, T);
                free(want), free(got);
            }
            free(gm), free(bt), free(mu), free(var), free(sc), free(sh), free(bn);
        }
        free_ws(&wsp, shape);
        for (int run = 0; run < 2; run++) free(out[run]), free(din[run]), free(dw[run]), free(db[run]);
        free(dw2), free(db2), free(din3);
    }
    /* workspace planned for 1 thread, pool of 3: the op must use only what it was given */
    {
        ws wsp;
        herd_exec ex = make_exec(1, cpu->conv2d_workspace(&d, 1), &wsp);
        ex.pool = pools[3];
        float *o = nanv(nout), *di = copyv(din0, nin), *dwx = copyv(dw0, nw), *dbx = copyv(db0, d.OC);
        cpu->conv2d_forward(&ex, o, in, w, b, &d);
        cpu->conv2d_backward(&ex, di, dwx, dbx, dout, in, w, &d);
        compare("conv out (1-thread workspace, 3 threads)", shape, o, out_r, nout, kf);
        compare("conv din (1-thread workspace, 3 threads)", shape, di, din_r, nin, kd);
        compare("conv dw (1-thread workspace, 3 threads)", shape, dwx, dw_r, nw, kw_len);
        compare("conv db (1-thread workspace, 3 threads)", shape, dbx, db_r, d.OC, kw_len);
        free_ws(&wsp, shape);
        free(o), free(di), free(dwx), free(dbx);
    }
    /* too small a workspace must still give the right answer */
    {
        herd_exec ex = {.pool = pools[2], .workspace = NULL, .workspace_floats = 0};
        float *o = nanv(nout), *di = copyv(din0, nin);
        cpu->conv2d_forward(&ex, o, in, w, b, &d);
        cpu->conv2d_backward(&ex, di, NULL, NULL, dout, in, w, &d);
        compare("conv out (no workspace)", shape, o, out_r, nout, kf);
        compare("conv din (no workspace)", shape, di, din_r, nin, kd);
        free(o), free(di);
    }
    free(in), free(w), free(b), free(dout), free(din0), free(dw0), free(db0);
    free(out_r), free(din_r), free(dw_r), free(db_r), free(dw_r2), free(db_r2);
    free(out1), free(din1), free(dw1), free(db1);
}

/* The direct path of tiny-channel stems (cpu_conv2d.c) must give the bits im2col + herdi_cpu_gemm's
 * AVX-512 kernel gave before it: forward (bias rows first, then the product accumulated onto
 * them) and, on one thread (one slot), dw = dw0 + the per-image products accumulated in order. */
static void test_conv_direct_bits(void) {
    if (!herdi_cpu_avx512_enabled()) return;
    const herd_backend *cpu = &herd_backend_cpu;
    conv2d_dims d = {.B = 3, .C = 3, .H = 60, .W = 300, .OC = 24, .KH = 5, .KW = 5, .SH = 4, .SW = 4, .PH = 2, .PW = 2};
    CHECK(herdi_conv2d_dims_finish(&d), "direct stem shape");
    const int K = d.C * d.KH * d.KW, N = d.OH * d.OW, OC = d.OC;
    size_t nin = (size_t)d.B * d.C * d.H * d.W, nout = (size_t)d.B * OC * N, nw = (size_t)OC * K;
    float *in = randv(nin), *w = randv(nw), *b = randv(OC), *dout = randv(nout), *dw0 = randv(nw);
    float *col = calloc((size_t)K * N, sizeof(float)), *doutT = malloc((size_t)N * OC * sizeof(float));
    float *want = malloc(nout * sizeof(float)), *pw = malloc((size_t)K * OC * sizeof(float));
    for (int i = 0; i < d.B; i++) {
        for (int c = 0; c < d.C; c++) /* im2col, zeros where the window hits padding */
            for (int kh = 0; kh < d.KH; kh++)
                for (int kw = 0; kw < d.KW; kw++)
                    for (int n = 0; n < N; n++) {
                        int ih = n / d.OW * d.SH - d.PH + kh, iw = n % d.OW * d.SW - d.PW + kw;
                        int inside = ih >= 0 && ih < d.H && iw >= 0 && iw < d.W;
                        col[(size_t)((c * d.KH + kh) * d.KW + kw) * N + n] =
                            inside ? in[(((size_t)i * d.C + c) * d.H + ih) * d.W + iw] : 0.0f;
                    }
        float *o = want + (size_t)i * OC * N;
        for (int oc = 0; oc < OC; oc++)
            for (int n = 0; n < N; n++) o[(size_t)oc * N + n] = b[oc];
        herdi_cpu_gemm(OC, N, K, w, K, 1, col, N, 1, o, N);
        herdi_cpu_transpose(doutT, dout + (size_t)i * OC * N, OC, N);
        herdi_cpu_gemm(K, OC, N, col, N, 1, doutT, OC, i > 0, pw, OC);
    }
    float *dw_want = copyv(dw0, nw);
    for (int oc = 0; oc < OC; oc++)
        for (int k = 0; k < K; k++) dw_want[(size_t)oc * K + k] += pw[(size_t)k * OC + oc];
    ws wsp;
    herd_exec ex = make_exec(1, cpu->conv2d_workspace(&d, 1), &wsp);
    float *out = nanv(nout), *dw = copyv(dw0, nw), *db = randv(OC);
    cpu->conv2d_forward(&ex, out, in, w, b, &d);
    cpu->conv2d_backward(&ex, NULL, dw, db, dout, in, w, &d);
    CHECK(!memcmp(out, want, nout * sizeof(float)), "direct stem: out differs from im2col + herdi_cpu_gemm's bits");
    CHECK(!memcmp(dw, dw_want, nw * sizeof(float)), "direct stem: dw differs from im2col + herdi_cpu_gemm's bits");
    free_ws(&wsp, "direct stem");
    free(in), free(w), free(b), free(dout), free(dw0), free(col), free(doutT), free(want), free(pw), free(dw_want);
    free(out), free(dw), free(db);
}

/* Depthwise 3x3 (cpu_dwconv.c) must give the bits of the grouped kernel's AVX-512 form: each
 * output bias + the 9 taps in (kh, kw) order, one fused multiply-add each (a tap in the padding
 * adds w * 0), then the folded batch norm's multiply and add, then the activation; strides 1 and
 * 2, padding 0-2, odd sizes, rows wider than one vector, planes taller than one band of scratch
 * rows, 1-3 threads, with and without bias and folded batch norm. */
static void test_dwconv_bits(void) {
    if (!herdi_cpu_avx512_enabled()) return;
    const herd_backend *cpu = &herd_backend_cpu;
    const conv2d_dims shapes[] = {
        {.B = 2, .C = 5, .H = 7, .W = 7, .KH = 3, .KW = 3, .SH = 1, .SW = 1, .PH = 1, .PW = 1},
        {.B = 1, .C = 3, .H = 14, .W = 14, .KH = 3, .KW = 3, .SH = 2, .SW = 2, .PH = 1, .PW = 1},
        {.B = 3, .C = 2, .H = 13, .W = 35, .KH = 3, .KW = 3, .SH = 2, .SW = 2, .PH = 1, .PW = 1},
        {.B = 1, .C = 4, .H = 9, .W = 33, .KH = 3, .KW = 3, .SH = 1, .SW = 1, .PH = 0, .PW = 0},
        {.B = 2, .C = 3, .H = 11, .W = 18, .KH = 3, .KW = 3, .SH = 1, .SW = 1, .PH = 2, .PW = 2},
        {.B = 1, .C = 2, .H = 10, .W = 21, .KH = 3, .KW = 3, .SH = 2, .SW = 2, .PH = 0, .PW = 2},
        {.B = 1, .C = 3, .H = 400, .W = 20, .KH = 3, .KW = 3, .SH = 1, .SW = 1, .PH = 1, .PW = 1},  /* bands */
        {.B = 1, .C = 2, .H = 61, .W = 257, .KH = 3, .KW = 3, .SH = 2, .SW = 2, .PH = 1, .PW = 1}, /* bands */
        {.B = 1, .C = 2, .H = 5, .W = 1, .KH = 3, .KW = 3, .SH = 1, .SW = 1, .PH = 1, .PW = 1},
        /* at most 7 wide at stride 1: two rows a vector (an odd row count, pads 0 and 2, bands) */
        {.B = 2, .C = 3, .H = 13, .W = 5, .KH = 3, .KW = 3, .SH = 1, .SW = 1, .PH = 2, .PW = 2},
        {.B = 1, .C = 2, .H = 8, .W = 8, .KH = 3, .KW = 3, .SH = 1, .SW = 1, .PH = 0, .PW = 0},
        {.B = 1, .C = 2, .H = 3000, .W = 4, .KH = 3, .KW = 3, .SH = 1, .SW = 1, .PH = 1, .PW = 1}, /* bands */
    };
    for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++) {
        conv2d_dims d = shapes[i];
        d.OC = d.G = d.C;
        CHECK(herdi_conv2d_dims_finish(&d), "dwconv shape %zu", i);
        CHECK(herdi_cpu_dwconv_fits(&d), "dwconv shape %zu is not taken by cpu_dwconv.c", i);
        const int N = d.OH * d.OW;
        size_t nin = (size_t)d.B * d.C * d.H * d.W, nout = (size_t)d.B * d.C * N;
        float *in = randv(nin), *w = randv((size_t)d.C * 9), *b = randv(d.C), *sc = randv(d.C), *sh = randv(d.C);
        for (int v = 0; v < 6; v++) {
            const float *bias = v % 2 ? b : NULL;
            const conv2d_post post = {.scale = v >= 2 ? sc : NULL, .shift = v >= 2 ? sh : NULL,
                                      .act = v < 2 ? HERD_ACT_NONE : v < 4 ? HERD_ACT_RELU6 : HERD_ACT_RELU};
            float *want = malloc(nout * sizeof(float));
            for (int n = 0; n < d.B; n++)
                for (int c = 0; c < d.C; c++)
                    for (int p = 0; p < N; p++) {
                        const int oh = p / d.OW, ow = p % d.OW;
                        float acc = bias ? bias[c] : 0.0f;
                        for (int kh = 0; kh < 3; kh++)
                            for (int kw = 0; kw < 3; kw++) {
                                int ih = oh * d.SH - d.PH + kh, iw = ow * d.SW - d.PW + kw;
                                float x = ih >= 0 && ih < d.H && iw >= 0 && iw < d.W
                                              ? in[(((size_t)n * d.C + c) * d.H + ih) * d.W + iw]
                                              : 0.0f;
                                acc = fmaf(w[c * 9 + kh * 3 + kw], x, acc);
                            }
                        if (post.scale) acc = acc * sc[c] + sh[c];
                        if (post.act == HERD_ACT_RELU6) { /* as cpu_act_vec16: min(6, max(0, v)) */
                            acc = 0.0f > acc ? 0.0f : acc;
                            acc = 6.0f < acc ? 6.0f : acc;
                        }
                        if (post.act == HERD_ACT_RELU) acc = acc > 0.0f ? acc : 0.0f;
                        want[((size_t)n * d.C + c) * N + p] = acc;
                    }
            for (int t = 0; t < N_TC; t++) {
                ws wsp;
                herd_exec ex = make_exec(thread_counts[t], cpu->conv2d_workspace(&d, thread_counts[t]), &wsp);
                float *out = nanv(nout);
                cpu->conv2d_forward_act(&ex, out, in, w, bias, &d, &post);
                CHECK(!memcmp(out, want, nout * sizeof(float)),
                      "dwconv shape %zu (%dx%d s%d p%d) variant %d, %d threads: not the grouped kernel's bits", i, d.H,
                      d.W, d.SW, d.PW, v, thread_counts[t]);
                free_ws(&wsp, "dwconv");
                free(out);
            }
            free(want);
        }
        free(in), free(w), free(b), free(sc), free(sh);
    }
}

/* Weights prepared once for inference (herd_exec.prep, cpu_conv2d.c): the narrow batch-1 form
 * (one product split by output channels: 1x1, 2x2, 4x4, 7x7, 14x14 maps, pointwise, output
 * channels not a multiple of 32, a group of images; with few blocks for the threads, by rows too,
 * parts crossing from one image to the next), the transposed form, Winograd reading prepared
 * kernels and the tiny-map form reading the panels (cpu_conv_taps.c) must give the bits of the
 * same call without prep, on 1-3 threads, with the
 * fused activations; the first call fills the prep and the next reads it; a reset tag after new
 * weights gives the new weights' results. Planned for the batch of the call (d.B) as a model does.
 * Every form is checked against the reference op within the tolerance of its sum's length. */
static void test_conv_prepared_bits(void) {
    const herd_backend *ref = &herd_backend_ref, *cpu = &herd_backend_cpu;
    conv2d_dims shapes[] = {
        {.B = 1, .C = 64, .H = 2, .W = 2, .OC = 70, .KH = 3, .KW = 3, .SH = 1, .SW = 1, .PH = 1, .PW = 1},
        {.B = 3, .C = 33, .H = 4, .W = 4, .OC = 40, .KH = 3, .KW = 3, .SH = 1, .SW = 1, .PH = 1, .PW = 1},
        {.B = 1, .C = 40, .H = 1, .W = 1, .OC = 35, .KH = 3, .KW = 3, .SH = 1, .SW = 1, .PH = 1, .PW = 1},
        {.B = 1, .C = 24, .H = 8, .W = 8, .OC = 96, .KH = 3, .KW = 3, .SH = 2, .SW = 2, .PH = 1, .PW = 1},
        {.B = 1, .C = 50, .H = 7, .W = 7, .OC = 100, .KH = 1, .KW = 1, .SH = 1, .SW = 1, .PH = 0, .PW = 0},
        {.B = 1, .C = 20, .H = 14, .W = 14, .OC = 33, .KH = 3, .KW = 3, .SH = 1, .SW = 1, .PH = 1, .PW = 1},
        {.B = 2, .C = 17, .H = 14, .W = 14, .OC = 64, .KH = 1, .KW = 1, .SH = 1, .SW = 1, .PH = 0, .PW = 0},
        /* few blocks of 32 output channels for the threads: rows split into parts, across images */
        {.B = 3, .C = 23, .H = 5, .W = 5, .OC = 40, .KH = 1, .KW = 1, .SH = 1, .SW = 1, .PH = 0, .PW = 0},
        {.B = 1, .C = 576, .H = 14, .W = 14, .OC = 96, .KH = 1, .KW = 1, .SH = 1, .SW = 1, .PH = 0, .PW = 0},
        {.B = 1, .C = 64, .H = 8, .W = 8, .OC = 64, .KH = 3, .KW = 3, .SH = 1, .SW = 1, .PH = 1, .PW = 1},
        {.B = 1, .C = 64, .H = 14, .W = 13, .OC = 72, .KH = 3, .KW = 3, .SH = 1, .SW = 1, .PH = 1, .PW = 1},
        /* the tiny-map form (cpu_conv_taps.c) over several images: 2x2, 1x1, 4x4, stride 2 onto 2x2 */
        {.B = 8, .C = 64, .H = 2, .W = 2, .OC = 70, .KH = 3, .KW = 3, .SH = 1, .SW = 1, .PH = 1, .PW = 1},
        {.B = 20, .C = 32, .H = 1, .W = 1, .OC = 40, .KH = 3, .KW = 3, .SH = 1, .SW = 1, .PH = 1, .PW = 1},
        {.B = 6, .C = 48, .H = 4, .W = 4, .OC = 64, .KH = 3, .KW = 3, .SH = 1, .SW = 1, .PH = 1, .PW = 1},
        {.B = 17, .C = 33, .H = 4, .W = 4, .OC = 36, .KH = 3, .KW = 3, .SH = 2, .SW = 2, .PH = 1, .PW = 1},
        {.B = 1, .C = 8, .H = 30, .W = 30, .OC = 16, .KH = 3, .KW = 3, .SH = 1, .SW = 1, .PH = 1, .PW = 1},
    };
    for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++) {
        conv2d_dims d = shapes[i];
        d.inference = 1; /* as an inference-only model's calls (Winograd under 16 tiles: the direct forms) */
        CHECK(herdi_conv2d_dims_finish(&d), "prepared shape %zu", i);
        const size_t n_shapes = sizeof shapes / sizeof shapes[0]; /* the tiny-map ones: the 4 before the last */
        CHECK(i + 5 < n_shapes || i + 1 == n_shapes || herdi_cpu_conv_taps_applies(&d) || !herdi_cpu_avx512_enabled(),
              "prepared shape %zu: takes the tiny-map form", i);
        char shape[96];
        snprintf(shape, sizeof shape, "prepared conv B%d C%d %dx%d OC%d k%d s%d", d.B, d.C, d.H, d.W, d.OC, d.KH, d.SH);
        size_t nin = (size_t)d.B * d.C * d.H * d.W, nout = (size_t)d.B * d.OC * d.OH * d.OW;
        size_t nw = (size_t)d.OC * d.C * d.KH * d.KW, np = cpu->conv2d_prepared(&d);
        CHECK(np > 0 || !herdi_cpu_avx512_enabled() || i == sizeof shapes / sizeof shapes[0] - 1,
              "[%s]: the cpu backend keeps prepared weights for this shape", shape);
        float *in = randv(nin), *w = randv(nw), *b = randv(d.OC), *w2 = randv(nw), *want = nanv(nout);
        float *prep = malloc((np + 16) * sizeof(float));
        for (int k = 0; k < 16; k++) prep[np + k] = 12345.0f;
        herd_exec none = {0};
        for (int t = 0; t < N_TC; t++) {
            int T = thread_counts[t], tag = 0;
            ws wsp;
            herd_exec plain = make_exec(T, cpu->conv2d_workspace(&d, T), &wsp), ex = plain;
            ex.prep = prep, ex.prep_floats = np, ex.prep_tag = &tag;
            for (int k = 0; k < 3; k++) {
                herd_act act = k == 0 ? HERD_ACT_NONE : k == 1 ? HERD_ACT_RELU : HERD_ACT_RELU6;
                float *a = nanv(nout), *p1 = nanv(nout), *p2 = nanv(nout);
                cpu->conv2d_forward_act(&plain, a, in, w, b, &d, &(conv2d_post){.act = act});
                cpu->conv2d_forward_act(&ex, p1, in, w, b, &d, &(conv2d_post){.act = act}); /* fills the prep (k = 0) */
                cpu->conv2d_forward_act(&ex, p2, in, w, b, &d, &(conv2d_post){.act = act}); /* reads it */
                CHECK(!memcmp(a, p1, nout * sizeof(float)) && !memcmp(a, p2, nout * sizeof(float)),
                      "[%s] %d threads act %d: prepared weights change the bits", shape, T, (int)act);
                if (k == 0) {
                    ref->conv2d_forward(&none, want, in, w, b, &d);
                    compare("prepared conv out", shape, p2, want, nout, (double)d.C * d.KH * d.KW);
                }
                free(a), free(p1), free(p2);
            }
            CHECK(np == 0 || tag != 0, "[%s]: the prep was never filled", shape);
            tag = 0; /* new weights: the model resets the tag */
            float *a = nanv(nout), *p = nanv(nout);
            cpu->conv2d_forward(&plain, a, in, w2, b, &d);
            cpu->conv2d_forward(&ex, p, in, w2, b, &d);
            CHECK(!memcmp(a, p, nout * sizeof(float)), "[%s] %d threads: a reset prep kept the old weights", shape, T);
            free(a), free(p);
            free_ws(&wsp, shape);
        }
        int ok = 1;
        for (int k = 0; k < 16; k++) ok &= prep[np + k] == 12345.0f;
        CHECK(ok, "[%s]: wrote past the prepared floats it asked for", shape);
        free(in), free(w), free(b), free(w2), free(want), free(prep);
    }
}

/* The conv input gradient on the AVX-512 path must keep the bits of the transposed din product
 * plus col2im: colT (N, K) = dout^T * w, each input element = din0 + (0 + its terms added in
 * ascending (kh, kw) order), whichever way the backend lays the product out (tap-major columns
 * added into a channels-last image, cpu_conv2d.c) and on 1-3 threads; with and without the fused
 * ReLU's mask (whose masked dout is checked too). Shapes the transposed form takes (the example
 * CNN's conv2 and conv3, an odd one) and one it does not. */
static void test_conv_din_bits(void) {
    if (!herdi_cpu_avx512_enabled()) return;
    const herd_backend *cpu = &herd_backend_cpu;
    const conv2d_dims shapes[] = {
        {.B = 5, .C = 32, .H = 14, .W = 14, .OC = 64, .KH = 3, .KW = 3, .SH = 1, .SW = 1, .PH = 1, .PW = 1},
        {.B = 3, .C = 64, .H = 7, .W = 7, .OC = 128, .KH = 3, .KW = 3, .SH = 1, .SW = 1, .PH = 1, .PW = 1},
        {.B = 4, .C = 21, .H = 9, .W = 11, .OC = 64, .KH = 3, .KW = 5, .SH = 1, .SW = 1, .PH = 1, .PW = 2},
        {.B = 2, .C = 19, .H = 8, .W = 6, .OC = 32, .KH = 2, .KW = 3, .SH = 1, .SW = 1, .PH = 0, .PW = 1},
        {.B = 3, .C = 5, .H = 30, .W = 30, .OC = 8, .KH = 3, .KW = 3, .SH = 1, .SW = 1, .PH = 1, .PW = 1},
    };
    for (size_t si = 0; si < sizeof shapes / sizeof shapes[0]; si++) {
        conv2d_dims d = shapes[si];
        CHECK(herdi_conv2d_dims_finish(&d), "din bits shape %zu", si);
        const int K = d.C * d.KH * d.KW, N = d.OH * d.OW, OC = d.OC, HW = d.H * d.W;
        size_t nin = (size_t)d.B * d.C * HW, nout = (size_t)d.B * OC * N, nw = (size_t)OC * K;
        float *in = randv(nin), *w = randv(nw), *dout = randv(nout), *din0 = randv(nin), *out = randv(nout);
        float *masked = copyv(dout, nout), *colT = malloc((size_t)N * K * sizeof(float));
        herdi_cpu_act_mask_inplace(masked, out, (int64_t)nout, HERD_ACT_RELU);
        for (int act = 0; act < 2; act++) {
            const float *g = act ? masked : dout;
            float *want = copyv(din0, nin);
            for (int b = 0; b < d.B; b++) {
                herdi_cpu_gemm(N, K, OC, g + (size_t)b * OC * N, 1, N, w, K, 0, colT, K);
                for (int c = 0; c < d.C; c++)
                    for (int ih = 0; ih < d.H; ih++)
                        for (int iw = 0; iw < d.W; iw++) {
                            float acc = 0.0f;
                            for (int kh = 0; kh < d.KH; kh++)
                                for (int kw = 0; kw < d.KW; kw++) {
                                    int oh = ih + d.PH - kh, ow = iw + d.PW - kw;
                                    if (oh < 0 || oh >= d.OH || ow < 0 || ow >= d.OW) continue;
                                    acc += colT[(size_t)(oh * d.OW + ow) * K + (c * d.KH + kh) * d.KW + kw];
                                }
                            want[((size_t)b * d.C + c) * HW + ih * d.W + iw] += acc;
                        }
            }
            for (int t = 1; t <= 3; t++) {
                ws wsp;
                herd_exec ex = make_exec(t, cpu->conv2d_workspace(&d, t), &wsp);
                float *din = copyv(din0, nin), *dw = randv(nw), *db = randv(OC), *gd = copyv(dout, nout);
                char what[96];
                snprintf(what, sizeof what, "din bits: shape %zu, %d thread(s)%s", si, t, act ? ", fused ReLU" : "");
                if (act)
                    cpu->conv2d_backward_act(&ex, din, dw, db, gd, out, in, w, &d, HERD_ACT_RELU);
                else
                    cpu->conv2d_backward(&ex, din, dw, db, gd, in, w, &d);
                CHECK(!memcmp(din, want, nin * sizeof(float)), "%s: din differs from the product + col2im's bits", what);
                if (act) CHECK(!memcmp(gd, masked, nout * sizeof(float)), "%s: dout not masked as the ReLU's", what);
                free_ws(&wsp, what);
                free(din), free(dw), free(db), free(gd);
            }
            free(want);
        }
        free(in), free(w), free(dout), free(din0), free(out), free(masked), free(colT);
    }
}

/* herdi_cpu_gemm_ep's epilogue (bias per row or per column, ReLU or ReLU6 in the tile's store) must
 * give the bits of what the conv did before the kernels took it: the bias written into C, the
 * product accumulated onto it, then herdi_cpu_act_apply_inplace; also with accumulate (C's own values
 * first, then the bias) and through the offsets form. NaN and values outside [0, 6] in the
 * sums check the clamp's edges. For the kernel selected now. */
static void test_gemm_epilogue_bits(void) {
    const int shapes[][3] = {{1, 1, 1}, {7, 33, 5}, {13, 70, 16}, {8, 32, 3}, {25, 17, 40}};
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
        const int M = shapes[s][0], N = shapes[s][1], K = shapes[s][2], ldc = N + 3;
        float *A = randv((size_t)M * K), *B = randv((size_t)K * N), *C0 = randv((size_t)M * ldc);
        float *bias = randv((size_t)(M > N ? M : N));
        for (int i = 0; i < M * K; i++) A[i] *= 8.0f; /* sums well past 6 and below 0 */
        if (K > 0) B[N / 2] = NAN;                      /* one column of NaN sums */
        int *ra = calloc((size_t)M, sizeof(int)), *pa = calloc((size_t)K, sizeof(int));
        for (int i = 0; i < M; i++) ra[i] = i * K;
        for (int p = 0; p < K; p++) pa[p] = p;
        for (int v = 0; v < 12; v++) {
            const herd_act act = v % 3 == 0 ? HERD_ACT_NONE : v % 3 == 1 ? HERD_ACT_RELU : HERD_ACT_RELU6;
            const int per_col = v / 3 % 2, accumulate = v / 6;
            const cpu_gemm_epilogue ep = {.bias = bias, .per_col = per_col, .act = act};
            float *want = copyv(C0, (size_t)M * ldc), *got = copyv(C0, (size_t)M * ldc), *off = copyv(C0, (size_t)M * ldc);
            if (!accumulate)
                for (int i = 0; i < M; i++)
                    for (int j = 0; j < N; j++) want[(size_t)i * ldc + j] = per_col ? bias[j] : bias[i];
            herdi_cpu_gemm(M, N, K, A, K, 1, B, N, 1, want, ldc);
            for (int i = 0; i < M; i++) {
                if (accumulate)
                    for (int j = 0; j < N; j++) want[(size_t)i * ldc + j] += per_col ? bias[j] : bias[i];
                if (act) herdi_cpu_act_apply_inplace(want + (size_t)i * ldc, N, act);
            }
            herdi_cpu_gemm_ep(M, N, K, A, K, 1, B, N, accumulate, &ep, got, ldc);
            CHECK(!memcmp(got, want, (size_t)M * ldc * sizeof(float)),
                  "gemm epilogue (%s) %dx%dx%d act %d per_col %d accumulate %d: bits differ", herdi_cpu_gemm_kernel(), M,
                  N, K, (int)act, per_col, accumulate);
            if (!strcmp(herdi_cpu_gemm_kernel(), "avx512")) { /* the offsets form sums as the kernel does */
                herdi_cpu_gemm_offsets(M, N, K, A, ra, pa, B, N, accumulate, &ep, off, ldc);
                CHECK(!memcmp(off, want, (size_t)M * ldc * sizeof(float)),
                      "gemm_offsets epilogue %dx%dx%d act %d per_col %d accumulate %d: bits differ", M, N, K,
                      (int)act, per_col, accumulate);
            }
            if (!accumulate && !strcmp(herdi_cpu_gemm_kernel(), "avx512")) { /* stored transposed, (N, M) with rows
                                  M + 2 apart: the same bits at (j, i), the floats between the rows untouched */
                const int ldt = M + 2;
                const cpu_gemm_epilogue ept = {.bias = bias, .per_col = per_col, .act = act, .transposed = 1};
                float *t0 = randv((size_t)N * ldt), *t = copyv(t0, (size_t)N * ldt);
                herdi_cpu_gemm_offsets(M, N, K, A, ra, pa, B, N, 0, &ept, t, ldt);
                int bad = 0;
                for (int j = 0; j < N; j++)
                    for (int i = 0; i < ldt; i++) {
                        const float *g = t + (size_t)j * ldt + i;
                        const float *e = i < M ? want + (size_t)i * ldc + j : t0 + (size_t)j * ldt + i;
                        bad += memcmp(g, e, sizeof(float)) != 0;
                    }
                CHECK(!bad, "gemm_offsets transposed (%s) %dx%dx%d act %d per_col %d: %d floats differ",
                      herdi_cpu_gemm_kernel(), M, N, K, (int)act, per_col, bad);
                free(t0), free(t);
            }
            free(want), free(got), free(off);
        }
        free(A), free(B), free(C0), free(bias), free(ra), free(pa);
    }
}

/* herdi_cpu_transpose_add: dst[c*ldd + r] += src[r*lds + c], the bits of the element-by-element
 * loop, where dst rows are contiguous (ldd = rows: the tap path's dw, 9 taps of a channel side
 * by side), farther apart (Winograd's fold into dw) or rows pass a 16-block; the floats between
 * the rows of dst stay untouched. For the kernel selected now. */
static void test_transpose_add_bits(void) {
    const int shapes[][4] = {{9, 33, 9, 40}, {9, 13, 40, 16}, {20, 35, 23, 37}, {1, 1, 1, 1}, {16, 16, 16, 16}};
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
        const int rows = shapes[s][0], cols = shapes[s][1], ldd = shapes[s][2], lds = shapes[s][3];
        size_t nd = (size_t)cols * ldd, ns = (size_t)rows * lds;
        float *src = randv(ns), *got = randv(nd), *want = copyv(got, nd);
        for (int r = 0; r < rows; r++)
            for (int c = 0; c < cols; c++) want[(size_t)c * ldd + r] += src[(size_t)r * lds + c];
        herdi_cpu_transpose_add(got, (size_t)ldd, src, (size_t)lds, rows, cols);
        CHECK(!memcmp(got, want, nd * sizeof(float)), "transpose_add (%s) rows %d cols %d ldd %d lds %d: bits differ",
              herdi_cpu_gemm_kernel(), rows, cols, ldd, lds);
        free(src), free(got), free(want);
    }
}

static void test_conv(void) {
    conv2d_dims fixed[] = {
        {.B = 3, .C = 1, .H = 28, .W = 28, .OC = 32, .KH = 3, .KW = 3, .SH = 1, .SW = 1, .PH = 1, .PW = 1},
        {.B = 2, .C = 32, .H = 14, .W = 14, .OC = 64, .KH = 3, .KW = 3, .SH = 1, .SW = 1, .PH = 1, .PW = 1},
        {.B = 1, .C = 5, .H = 7, .W = 9, .OC = 3, .KH = 1, .KW = 1, .SH = 1, .SW = 1, .PH = 0, .PW = 0},
        {.B = 4, .C = 6, .H = 9, .W = 8, .OC = 7, .KH = 1, .KW = 1, .SH = 2, .SW = 2, .PH = 0, .PW = 0},
        {.B = 3, .C = 3, .H = 11, .W = 6, .OC = 5, .KH = 2, .KW = 5, .SH = 2, .SW = 1, .PH = 0, .PW = 2},
        {.B = 5, .C = 2, .H = 5, .W = 5, .OC = 4, .KH = 5, .KW = 5, .SH = 1, .SW = 1, .PH = 2, .PW = 2},
        {.B = 2, .C = 3, .H = 4, .W = 4, .OC = 2, .KH = 3, .KW = 3, .SH = 3, .SW = 3, .PH = 2, .PW = 2},
        /* column stride 2 on rows of 35 and 17 outputs (ResNet's stem and stride-2 3x3): the
         * vector im2col/col2im's full and partial chunks */
        {.B = 2, .C = 3, .H = 9, .W = 70, .OC = 8, .KH = 7, .KW = 7, .SH = 2, .SW = 2, .PH = 3, .PW = 3},
        {.B = 2, .C = 4, .H = 6, .W = 33, .OC = 5, .KH = 3, .KW = 3, .SH = 2, .SW = 2, .PH = 1, .PW = 1},
        /* transposed shapes whose forward reads the columns in place (direct_T_shape): the example
         * CNN's conv3 (N = 49) and odd sizes with stride 2 (checked bitwise against 3 threads'
         * im2col below: fewer images than threads keep the columns) */
        {.B = 2, .C = 64, .H = 7, .W = 7, .OC = 128, .KH = 3, .KW = 3, .SH = 1, .SW = 1, .PH = 1, .PW = 1},
        {.B = 2, .C = 20, .H = 13, .W = 11, .OC = 40, .KH = 3, .KW = 3, .SH = 2, .SW = 2, .PH = 1, .PW = 1},
        /* 3 channels, stride 4, columns big enough for the direct stem path (75 x 15 x 100) */
        {.B = 3, .C = 3, .H = 60, .W = 400, .OC = 24, .KH = 5, .KW = 5, .SH = 4, .SW = 4, .PH = 2, .PW = 2},
        /* small feature maps, G images per product: groups of 16, 16 and 5; pointwise; 3 per group */
        {.B = 37, .C = 16, .H = 4, .W = 4, .OC = 24, .KH = 3, .KW = 3, .SH = 2, .SW = 2, .PH = 1, .PW = 1},
        {.B = 9, .C = 8, .H = 3, .W = 3, .OC = 5, .KH = 1, .KW = 1, .SH = 1, .SW = 1, .PH = 0, .PW = 0},
        {.B = 19, .C = 6, .H = 5, .W = 6, .OC = 8, .KH = 3, .KW = 3, .SH = 1, .SW = 1, .PH = 1, .PW = 1},
        /* Winograd F(2x2, 3x3) (cpu_winograd.c): odd sizes (a half tile on the edge), maps under
         * 32 columns (16 tiles a vector, gathered) and over (a band of tiles a vector: 33 columns,
         * a partial second vector), channel counts that are not multiples of its row blocks, more
         * images than one chunk holds; 2x2 (the tiny-map path) and 1x5 (im2col) are left by the gate */
        {.B = 3, .C = 64, .H = 7, .W = 9, .OC = 70, .KH = 3, .KW = 3, .SH = 1, .SW = 1, .PH = 1, .PW = 1},
        {.B = 5, .C = 65, .H = 2, .W = 2, .OC = 64, .KH = 3, .KW = 3, .SH = 1, .SW = 1, .PH = 1, .PW = 1},
        {.B = 6, .C = 64, .H = 16, .W = 15, .OC = 129, .KH = 3, .KW = 3, .SH = 1, .SW = 1, .PH = 1, .PW = 1},
        {.B = 2, .C = 64, .H = 1, .W = 5, .OC = 64, .KH = 3, .KW = 3, .SH = 1, .SW = 1, .PH = 1, .PW = 1},
        {.B = 3, .C = 64, .H = 5, .W = 33, .OC = 65, .KH = 3, .KW = 3, .SH = 1, .SW = 1, .PH = 1, .PW = 1},
        /* tiny maps, one product per tap (cpu_conv_taps.c): 2x2 (above: C 65) and 1x1 under 3x3,
         * channels that are not multiples of its blocks of 32, a 5x5 kernel over 2x3, stride 2 onto
         * one output, four images of 2x2 (the fewest output positions, 16, the gate sends there;
         * fewer, as batch-1 inference, go to im2col) */
        {.B = 7, .C = 33, .H = 2, .W = 2, .OC = 70, .KH = 3, .KW = 3, .SH = 1, .SW = 1, .PH = 1, .PW = 1},
        {.B = 16, .C = 40, .H = 1, .W = 1, .OC = 35, .KH = 3, .KW = 3, .SH = 1, .SW = 1, .PH = 1, .PW = 1},
        {.B = 3, .C = 32, .H = 2, .W = 3, .OC = 48, .KH = 5, .KW = 5, .SH = 1, .SW = 1, .PH = 2, .PW = 2},
        {.B = 17, .C = 36, .H = 2, .W = 2, .OC = 32, .KH = 3, .KW = 3, .SH = 2, .SW = 2, .PH = 1, .PW = 1},
        {.B = 4, .C = 64, .H = 2, .W = 2, .OC = 64, .KH = 3, .KW = 3, .SH = 1, .SW = 1, .PH = 1, .PW = 1},
        /* ... and the shapes whose pairs are 60-70% of im2col's, with more than 64 output positions:
         * stride 2 from 4x4 onto 2x2 (25 of 36), 4x4 and 3x3 maps with too few channels for Winograd */
        {.B = 17, .C = 40, .H = 4, .W = 4, .OC = 36, .KH = 3, .KW = 3, .SH = 2, .SW = 2, .PH = 1, .PW = 1},
        {.B = 5, .C = 48, .H = 4, .W = 4, .OC = 33, .KH = 3, .KW = 3, .SH = 1, .SW = 1, .PH = 1, .PW = 1},
        {.B = 8, .C = 33, .H = 3, .W = 3, .OC = 34, .KH = 3, .KW = 3, .SH = 1, .SW = 1, .PH = 1, .PW = 1},
        /* inference-only calls (conv2d_dims.inference): Winograd F(4x4) from 32 channels and in the
         * smaller inference chunks, the example CNN's conv2 and conv3 (14x14 and 7x7: partial tiles
         * on the right and bottom edges), a 13x11 map (a tile of 1 row x 3 columns), more images
         * than a chunk holds (at least 1024 output positions: fewer keep im2col) */
        {.B = 6, .C = 32, .H = 14, .W = 14, .OC = 64, .KH = 3, .KW = 3, .SH = 1, .SW = 1, .PH = 1, .PW = 1, .inference = 1},
        {.B = 22, .C = 64, .H = 7, .W = 7, .OC = 128, .KH = 3, .KW = 3, .SH = 1, .SW = 1, .PH = 1, .PW = 1, .inference = 1},
        {.B = 8, .C = 33, .H = 13, .W = 11, .OC = 40, .KH = 3, .KW = 3, .SH = 1, .SW = 1, .PH = 1, .PW = 1, .inference = 1},
        /* the same shapes under the gates' position counts (batch-1 inference): im2col */
        {.B = 1, .C = 64, .H = 2, .W = 2, .OC = 64, .KH = 3, .KW = 3, .SH = 1, .SW = 1, .PH = 1, .PW = 1},
        {.B = 1, .C = 64, .H = 7, .W = 9, .OC = 70, .KH = 3, .KW = 3, .SH = 1, .SW = 1, .PH = 1, .PW = 1},
        /* fewer images than threads, work enough for the pool: the product split by blocks of
         * columns (plain; transposed, N = 196; pointwise with a partial block) */
        {.B = 1, .C = 16, .H = 27, .W = 27, .OC = 40, .KH = 3, .KW = 3, .SH = 1, .SW = 1, .PH = 1, .PW = 1},
        {.B = 2, .C = 32, .H = 14, .W = 14, .OC = 64, .KH = 3, .KW = 3, .SH = 1, .SW = 1, .PH = 1, .PW = 1},
        {.B = 1, .C = 96, .H = 29, .W = 29, .OC = 40, .KH = 1, .KW = 1, .SH = 1, .SW = 1, .PH = 0, .PW = 0},
        /* ... the direct stem path split by blocks of output positions (2-3 threads must give the
         * bits of 1, whose one slot takes the whole image) */
        {.B = 1, .C = 3, .H = 60, .W = 400, .OC = 24, .KH = 5, .KW = 5, .SH = 4, .SW = 4, .PH = 2, .PW = 2},
    };
    for (size_t i = 0; i < sizeof fixed / sizeof fixed[0]; i++) conv_case(fixed[i], (int)(i % 2));
    /* the inference gate: the example CNN's conv2/conv3 by Winograd in inference at a lane's chunk
     * of 32 images, not in training, nor at batch 1 */
    if (herdi_cpu_avx512_enabled() && !herdi_cpu_conv_gemm_only()) {
        conv2d_dims c2 = {.B = 32, .C = 32, .H = 14, .W = 14, .OC = 64, .KH = 3, .KW = 3, .SH = 1, .SW = 1, .PH = 1, .PW = 1},
                    c3 = {.B = 32, .C = 64, .H = 7, .W = 7, .OC = 128, .KH = 3, .KW = 3, .SH = 1, .SW = 1, .PH = 1, .PW = 1};
        herdi_conv2d_dims_finish(&c2), herdi_conv2d_dims_finish(&c3);
        CHECK(!herdi_cpu_winograd_applies(&c2) && !herdi_cpu_winograd_applies(&c3), "training took Winograd on conv2/conv3");
        c2.inference = c3.inference = 1;
        CHECK(herdi_cpu_winograd_applies(&c2) && herdi_cpu_winograd_applies(&c3), "inference left Winograd on conv2/conv3");
        c2.B = c3.B = 1;
        CHECK(!herdi_cpu_winograd_applies(&c2) && !herdi_cpu_winograd_applies(&c3), "batch-1 inference took Winograd on conv2/conv3");
    }
    for (int i = 0; i < 24; i++) {
        /* one draw per statement: initializer order is unspecified, and the shapes must not
         * depend on the compiler */
        conv2d_dims d = {0};
        d.B = irand(1, 5), d.C = irand(1, 7), d.H = irand(1, 13), d.W = irand(1, 13), d.OC = irand(1, 9);
        d.KH = irand(1, 5), d.KW = irand(1, 5), d.SH = irand(1, 3), d.SW = irand(1, 3);
        d.PH = irand(0, 2), d.PW = irand(0, 2);
        conv_case(d, i % 3 != 0);
    }
    /* groups and dilation (cpu_conv_grouped.c): depthwise 3x3 as in MobileNet (strides 1 and 2),
     * with a channel multiplier, RegNet's groups of 2+ channels, dilated plain and depthwise */
    conv2d_dims grouped[] = {
        {.B = 3, .C = 8, .H = 9, .W = 9, .OC = 8, .KH = 3, .KW = 3, .SH = 1, .SW = 1, .PH = 1, .PW = 1, .G = 8},
        {.B = 2, .C = 6, .H = 10, .W = 7, .OC = 6, .KH = 3, .KW = 3, .SH = 2, .SW = 2, .PH = 1, .PW = 1, .G = 6},
        {.B = 2, .C = 4, .H = 8, .W = 8, .OC = 8, .KH = 5, .KW = 5, .SH = 2, .SW = 2, .PH = 2, .PW = 2, .G = 4},
        {.B = 4, .C = 12, .H = 6, .W = 6, .OC = 12, .KH = 3, .KW = 3, .SH = 1, .SW = 1, .PH = 1, .PW = 1, .G = 3},
        {.B = 2, .C = 4, .H = 11, .W = 9, .OC = 6, .KH = 3, .KW = 3, .SH = 1, .SW = 1, .PH = 2, .PW = 2, .DH = 2, .DW = 2},
        {.B = 2, .C = 6, .H = 12, .W = 10, .OC = 6, .KH = 3, .KW = 2, .SH = 2, .SW = 1, .PH = 3, .PW = 1, .G = 6,
         .DH = 3, .DW = 2},
        /* the AVX-512 depthwise tiles: rows of 150 outputs (a block of 8 chunks of 16, then 2 with a
         * partial one), 34 and 9 at stride 2, 5 rows (a partial tile of rows), 5x5 and 9x9 kernels
         * (9 wide: the scalar loops), channel multiplier 2 */
        {.B = 1, .C = 2, .H = 5, .W = 150, .OC = 2, .KH = 3, .KW = 3, .SH = 1, .SW = 1, .PH = 1, .PW = 1, .G = 2},
        {.B = 2, .C = 3, .H = 13, .W = 67, .OC = 3, .KH = 3, .KW = 3, .SH = 2, .SW = 2, .PH = 1, .PW = 1, .G = 3},
        {.B = 1, .C = 4, .H = 18, .W = 18, .OC = 8, .KH = 5, .KW = 5, .SH = 2, .SW = 2, .PH = 2, .PW = 2, .G = 4},
        {.B = 1, .C = 2, .H = 11, .W = 40, .OC = 2, .KH = 9, .KW = 9, .SH = 1, .SW = 1, .PH = 4, .PW = 4, .G = 2},
        {.B = 2, .C = 3, .H = 7, .W = 7, .OC = 3, .KH = 5, .KW = 5, .SH = 1, .SW = 1, .PH = 2, .PW = 2, .G = 3},
    };
    for (size_t i = 0; i < sizeof grouped / sizeof grouped[0]; i++) conv_case(grouped[i], (int)(i % 2 == 0));
    for (int i = 0; i < 12; i++) {
        conv2d_dims d = {0};
        d.G = irand(1, 4);
        d.B = irand(1, 4), d.C = d.G * irand(1, 3), d.H = irand(3, 11), d.W = irand(3, 11), d.OC = d.G * irand(1, 3);
        d.KH = irand(1, 3), d.KW = irand(1, 3), d.SH = irand(1, 2), d.SW = irand(1, 2);
        d.PH = irand(0, 2), d.PW = irand(0, 2), d.DH = irand(1, 2), d.DW = irand(1, 3);
        if (d.G == 1) d.DH = 2; /* the plain path is covered above */
        conv_case(d, i % 2);
    }
}

/* ---------------- dense ---------------- */
static void dense_case(int B, int IN, int OUT, int with_bias) {
    const herd_backend *ref = &herd_backend_ref, *cpu = &herd_backend_cpu;
    char shape[96];
    snprintf(shape, sizeof shape, "dense B%d IN%d OUT%d%s", B, IN, OUT, with_bias ? " bias" : "");
    size_t nin = (size_t)B * IN, nout = (size_t)B * OUT, nw = (size_t)OUT * IN;
    float *in = randv(nin), *w = randv(nw), *b = with_bias ? randv(OUT) : NULL, *dout = randv(nout);
    float *din0 = randv(nin), *dw0 = randv(nw), *db0 = randv(OUT);
    float *out_r = nanv(nout), *din_r = copyv(din0, nin), *dw_r = copyv(dw0, nw), *db_r = copyv(db0, OUT);
    herd_exec none = {0};
    ref->dense_forward(&none, out_r, in, w, b, B, IN, OUT);
    ref->dense_backward(&none, din_r, dw_r, db_r, dout, in, w, B, IN, OUT);
    for (int t = 0; t < N_TC; t++) {
        herd_exec ex = {.pool = pools[thread_counts[t]]};
        float *out[2], *din[2], *dw[2], *db[2];
        for (int run = 0; run < 2; run++) {
            out[run] = nanv(nout);
            din[run] = copyv(din0, nin);
            dw[run] = copyv(dw0, nw);
            db[run] = copyv(db0, OUT);
            cpu->dense_forward(&ex, out[run], in, w, b, B, IN, OUT);
            cpu->dense_backward(&ex, din[run], dw[run], db[run], dout, in, w, B, IN, OUT);
        }
        compare("dense out", shape, out[0], out_r, nout, IN);
        compare("dense din", shape, din[0], din_r, nin, OUT);
        compare("dense dw", shape, dw[0], dw_r, nw, B);
        compare("dense db", shape, db[0], db_r, OUT, B);
        same_bits("dense out", shape, out[0], out[1], nout);
        same_bits("dense dw", shape, dw[0], dw[1], nw);
        float *dw2 = copyv(dw0, nw), *db2 = copyv(db0, OUT);
        cpu->dense_backward(&ex, NULL, dw2, db2, dout, in, w, B, IN, OUT);
        compare("dense dw (din NULL)", shape, dw2, dw_r, nw, B);
        compare("dense db (din NULL)", shape, db2, db_r, OUT, B);
        for (int run = 0; run < 2; run++) free(out[run]), free(din[run]), free(dw[run]), free(db[run]);
        free(dw2), free(db2);
    }
    /* inference (ex.inference): at up to 4 rows with AVX-512 the dot-product path, whose bits are
     * the same on any thread count; twice alike and within rounding of ref at any size */
    float *inf1 = nanv(nout);
    for (int t = 0; t < N_TC; t++) {
        herd_exec ex = {.pool = pools[thread_counts[t]], .inference = 1};
        float *o = nanv(nout), *o2 = nanv(nout);
        cpu->dense_forward(&ex, o, in, w, b, B, IN, OUT);
        cpu->dense_forward(&ex, o2, in, w, b, B, IN, OUT);
        compare("dense out (inference)", shape, o, out_r, nout, IN);
        same_bits("dense out (inference)", shape, o, o2, nout);
        if (t == 0) memcpy(inf1, o, nout * sizeof(float));
        CHECK(B > 4 || !herdi_cpu_avx512_enabled() || !memcmp(inf1, o, nout * sizeof(float)),
              "dense out (inference) [%s]: %d threads differ from 1", shape, thread_counts[t]);
        free(o), free(o2);
    }
    free(inf1);
    free(in), free(w), free(b), free(dout), free(din0), free(dw0), free(db0);
    free(out_r), free(din_r), free(dw_r), free(db_r);
}

static void test_dense(void) {
    dense_case(32, 1152, 128, 1);
    dense_case(1, 7, 3, 1);
    /* the inference dot products: mobilenet_v2's classifier (blocks of 16 features split across
     * the threads), rows of 1-4, lengths with a partial vector, feature counts not a multiple of 4 */
    dense_case(1, 1280, 1000, 1);
    dense_case(4, 33, 37, 0);
    dense_case(3, 16, 18, 1);
    dense_case(2, 100, 2, 1);
    dense_case(5, 1, 1, 0);
    dense_case(64, 128, 10, 1);
    for (int i = 0; i < 12; i++) {
        int B = irand(1, 9), IN = irand(1, 40), OUT = irand(1, 20); /* sequenced draws */
        dense_case(B, IN, OUT, i % 2);
    }
}

/* ---------------- pooling ---------------- */
/* maxpool2d_backward_set against what it stands for: din zeroed, ref's backward, then ref's
 * act_backward_inplace on the pool's input, bit for bit, the mask tested on the pool's output;
 * din starts as NaN (every element written), a few dout terms are -0 (0 + -0 is +0), and the
 * input holds zeros, NaNs and values in [-8, 8] (ReLU6 stops the gradient past 6) */
static void maxpool_set_case(const herd_exec *ex, const pool2d_dims *d, const char *shape, const float *dout0) {
    const herd_backend *ref = &herd_backend_ref, *cpu = &herd_backend_cpu;
    herd_exec none = {0};
    size_t nin = (size_t)d->B * d->C * d->H * d->W, nout = (size_t)d->B * d->C * d->OH * d->OW;
    float *x = randv(nin), *dout = copyv(dout0, nout), *y = nanv(nout);
    int32_t *am = malloc(nout * sizeof(int32_t));
    for (size_t i = 0; i < nin; i++) x[i] = i % 7 == 0 ? 0.0f : i % 29 == 0 ? NAN : 8.0f * x[i];
    for (size_t i = 0; i < nout; i += 5) dout[i] = -0.0f;
    ref->maxpool2d_forward(&none, y, am, x, d);
    const herd_act acts[3] = {HERD_ACT_NONE, HERD_ACT_RELU, HERD_ACT_RELU6};
    for (int a = 0; a < 3; a++) {
        float *want = calloc(nin ? nin : 1, sizeof(float)), *got = nanv(nin);
        ref->maxpool2d_backward(&none, want, dout, am, d);
        if (acts[a]) ref->act_backward_inplace(&none, want, x, (int64_t)nin, acts[a]);
        cpu->maxpool2d_backward_set(ex, got, dout, am, y, acts[a], d);
        CHECK(memcmp(got, want, nin * sizeof(float)) == 0, "maxpool din set, act %d [%s]: not the bits of zero, add, mask",
              (int)acts[a], shape);
        free(want), free(got);
    }
    free(x), free(dout), free(y), free(am);
}

static void pool_case_nan(pool2d_dims d, int with_nans) {
    const herd_backend *ref = &herd_backend_ref, *cpu = &herd_backend_cpu;
    if (!herdi_pool2d_dims_finish(&d)) return;
    char shape[128];
    snprintf(shape, sizeof shape, "pool B%d C%d %dx%d k%dx%d s%d,%d p%d,%d", d.B, d.C, d.H, d.W, d.KH, d.KW, d.SH,
             d.SW, d.PH, d.PW);
    size_t nin = (size_t)d.B * d.C * d.H * d.W, nout = (size_t)d.B * d.C * d.OH * d.OW;
    float *in = randv(nin), *dout = randv(nout), *din0 = randv(nin);
    if (with_nans == 1) /* NaN must propagate and pick the same argmax as ref */
        for (size_t i = 0; i < nin; i += 3) in[i] = NAN;
    if (with_nans == 2) /* values in {-1, 0, 1}: ties everywhere, the first must win as in ref */
        for (size_t i = 0; i < nin; i++) in[i] = roundf(in[i]);
    herd_exec none = {0};
    float *mo_r = nanv(nout), *ao_r = nanv(nout), *mdin_r = copyv(din0, nin), *adin_r = copyv(din0, nin);
    int32_t *am_r = malloc(nout * sizeof(int32_t));
    ref->maxpool2d_forward(&none, mo_r, am_r, in, &d);
    ref->maxpool2d_backward(&none, mdin_r, dout, am_r, &d);
    ref->avgpool2d_forward(&none, ao_r, in, &d);
    ref->avgpool2d_backward(&none, adin_r, dout, &d);
    for (int t = 0; t < N_TC; t++) {
        herd_exec ex = {.pool = pools[thread_counts[t]]};
        float *mo = nanv(nout), *ao = nanv(nout), *mdin = copyv(din0, nin), *adin = copyv(din0, nin);
        int32_t *am = malloc(nout * sizeof(int32_t));
        cpu->maxpool2d_forward(&ex, mo, am, in, &d);
        cpu->maxpool2d_backward(&ex, mdin, dout, am, &d);
        cpu->avgpool2d_forward(&ex, ao, in, &d);
        cpu->avgpool2d_backward(&ex, adin, dout, &d);
        compare("maxpool out", shape, mo, mo_r, nout, 1);
        CHECK(memcmp(am, am_r, nout * sizeof(int32_t)) == 0, "maxpool argmax [%s] differs from ref", shape);
        compare("maxpool din", shape, mdin, mdin_r, nin, 1);
        if (d.SH >= d.KH && d.SW >= d.KW) maxpool_set_case(&ex, &d, shape, dout);
        if (!d.ceil) { /* ceil-mode average pooling runs on ref (see the pool2d layer) */
            compare("avgpool out", shape, ao, ao_r, nout, (double)d.KH * d.KW);
            compare("avgpool din", shape, adin, adin_r, nin, (double)d.KH * d.KW);
        }
        free(mo), free(ao), free(mdin), free(adin), free(am);
    }
    free(in), free(dout), free(din0), free(mo_r), free(ao_r), free(mdin_r), free(adin_r), free(am_r);
}

static void pool_case(pool2d_dims d) { pool_case_nan(d, 0); }

static void test_pool(void) {
    pool_case_nan((pool2d_dims){.B = 2, .C = 3, .H = 8, .W = 8, .KH = 2, .KW = 2, .SH = 2, .SW = 2}, 1);
    /* 2x2/2 rows of 18 outputs: the vector path's full and partial chunks, odd width */
    pool_case_nan((pool2d_dims){.B = 2, .C = 3, .H = 7, .W = 37, .KH = 2, .KW = 2, .SH = 2, .SW = 2}, 1);
    pool_case_nan((pool2d_dims){.B = 1, .C = 2, .H = 6, .W = 66, .KH = 2, .KW = 2, .SH = 2, .SW = 2}, 2);
    /* rows of 7 and 3 outputs (the example CNN's pool2 and pool3): one partial chunk a row */
    pool_case_nan((pool2d_dims){.B = 3, .C = 5, .H = 14, .W = 14, .KH = 2, .KW = 2, .SH = 2, .SW = 2}, 2);
    pool_case_nan((pool2d_dims){.B = 3, .C = 5, .H = 7, .W = 7, .KH = 2, .KW = 2, .SH = 2, .SW = 2}, 1);
    pool_case_nan((pool2d_dims){.B = 2, .C = 2, .H = 9, .W = 9, .KH = 3, .KW = 3, .SH = 2, .SW = 2, .PH = 1, .PW = 1},
                  2);
    pool_case_nan((pool2d_dims){.B = 2, .C = 3, .H = 9, .W = 7, .KH = 3, .KW = 3, .SH = 1, .SW = 2, .PH = 1}, 1);
    /* rows of 8+ outputs, not 2x2/2: the vector row path (ResNet's 3x3/2 pad 1 stem pool; odd
     * widths, partial chunks, stride 1, a clipped ceil-mode window, NaNs and ties) */
    for (int nan = 0; nan < 3; nan++) {
        pool_case_nan((pool2d_dims){.B = 2, .C = 3, .H = 32, .W = 32, .KH = 3, .KW = 3, .SH = 2, .SW = 2, .PH = 1,
                                    .PW = 1},
                      nan);
        pool_case_nan((pool2d_dims){.B = 1, .C = 2, .H = 17, .W = 67, .KH = 3, .KW = 3, .SH = 2, .SW = 2, .PH = 1,
                                    .PW = 1},
                      nan);
        pool_case_nan((pool2d_dims){.B = 1, .C = 2, .H = 9, .W = 21, .KH = 3, .KW = 2, .SH = 1, .SW = 1, .PH = 1,
                                    .PW = 1},
                      nan);
        pool_case_nan((pool2d_dims){.B = 1, .C = 2, .H = 20, .W = 36, .KH = 3, .KW = 3, .SH = 2, .SW = 2, .ceil = 1},
                      nan);
        pool_case_nan((pool2d_dims){.B = 1, .C = 2, .H = 18, .W = 34, .KH = 2, .KW = 2, .SH = 2, .SW = 2, .ceil = 1},
                      nan);
    }
    pool_case((pool2d_dims){.B = 32, .C = 32, .H = 28, .W = 28, .KH = 2, .KW = 2, .SH = 2, .SW = 2});
    pool_case((pool2d_dims){.B = 3, .C = 5, .H = 7, .W = 9, .KH = 2, .KW = 2, .SH = 2, .SW = 2});
    pool_case((pool2d_dims){.B = 1, .C = 3, .H = 8, .W = 6, .KH = 3, .KW = 2, .SH = 2, .SW = 1, .PH = 1, .PW = 1});
    for (int i = 0; i < 16; i++) {
        pool2d_dims d = {0};
        d.B = irand(1, 4), d.C = irand(1, 6), d.H = irand(1, 12), d.W = irand(1, 12);
        d.KH = irand(1, 4), d.KW = irand(1, 4), d.SH = irand(1, 3), d.SW = irand(1, 3);
        d.PH = irand(0, d.KH / 2); /* PyTorch's limit: padding at most half the window */
        d.PW = irand(0, d.KW / 2);
        pool_case(d);
    }
}

/* ---------------- batch norm ---------------- */
static void bn_case(int B, int C, int HW) {
    const herd_backend *ref = &herd_backend_ref, *cpu = &herd_backend_cpu;
    char shape[64];
    snprintf(shape, sizeof shape, "batchnorm B%d C%d HW%d", B, C, HW);
    size_t n = (size_t)B * C * HW;
    double len = (double)B * HW;
    float *in = randv(n), *gamma = randv(C), *beta = randv(C), *dout = randv(n), *din0 = randv(n);
    float *rm0 = randv(C), *rv0 = malloc(C * sizeof(float)), *dg0 = randv(C), *dbe0 = randv(C);
    for (int c = 0; c < C; c++) rv0[c] = 0.5f + herd_rng_uniform(&rng);
    for (size_t i = 0; i < n; i++) in[i] = 3.0f * in[i] + 0.5f; /* a mean and spread away from (0, 1) */
    herd_exec none = {0};
    float *o_r = nanv(n), *m_r = nanv(C), *rs_r = nanv(C), *rm_r = copyv(rm0, C), *rv_r = copyv(rv0, C);
    float *e_r = nanv(n), *din_r = copyv(din0, n), *dg_r = copyv(dg0, C), *dbe_r = copyv(dbe0, C);
    ref->batchnorm_forward_train(&none, o_r, m_r, rs_r, rm_r, rv_r, in, gamma, beta, B, C, HW, 0.1f, 1e-5f, HERD_ACT_NONE);
    ref->batchnorm_forward_eval(&none, e_r, in, gamma, beta, rm0, rv0, B, C, HW, 1e-5f, HERD_ACT_NONE);
    ref->batchnorm_backward(&none, din_r, dg_r, dbe_r, dout, in, m_r, rs_r, gamma, B, C, HW, NULL);
    for (int t = 0; t < N_TC; t++) {
        herd_exec ex = {.pool = pools[thread_counts[t]]};
        float *o = nanv(n), *m = nanv(C), *rs = nanv(C), *rm = copyv(rm0, C), *rv = copyv(rv0, C);
        float *e = nanv(n), *din = copyv(din0, n), *dg = copyv(dg0, C), *dbe = copyv(dbe0, C);
        cpu->batchnorm_forward_train(&ex, o, m, rs, rm, rv, in, gamma, beta, B, C, HW, 0.1f, 1e-5f, HERD_ACT_NONE);
        cpu->batchnorm_forward_eval(&ex, e, in, gamma, beta, rm0, rv0, B, C, HW, 1e-5f, HERD_ACT_NONE);
        /* backward from ref's saved stats so only the backward itself is compared */
        cpu->batchnorm_backward(&ex, din, dg, dbe, dout, in, m_r, rs_r, gamma, B, C, HW, NULL);
        compare("bn out", shape, o, o_r, n, len);
        compare("bn mean", shape, m, m_r, C, len);
        compare("bn rstd", shape, rs, rs_r, C, len);
        compare("bn running_mean", shape, rm, rm_r, C, len);
        compare("bn running_var", shape, rv, rv_r, C, len);
        compare("bn eval out", shape, e, e_r, n, 1);
        compare("bn din", shape, din, din_r, n, len);
        compare("bn dgamma", shape, dg, dg_r, C, len);
        compare("bn dbeta", shape, dbe, dbe_r, C, len);
        float *dg2 = copyv(dg0, C), *dbe2 = copyv(dbe0, C);
        cpu->batchnorm_backward(&ex, NULL, dg2, dbe2, dout, in, m_r, rs_r, gamma, B, C, HW, NULL);
        compare("bn dgamma (din NULL)", shape, dg2, dg_r, C, len);
        compare("bn dbeta (din NULL)", shape, dbe2, dbe_r, C, len);
        free(o), free(m), free(rs), free(rm), free(rv), free(e), free(din), free(dg), free(dbe), free(dg2), free(dbe2);
    }
    free(in), free(gamma), free(beta), free(dout), free(din0), free(rm0), free(rv0), free(dg0), free(dbe0);
    free(o_r), free(m_r), free(rs_r), free(rm_r), free(rv_r), free(e_r), free(din_r), free(dg_r), free(dbe_r);
}

static void test_batchnorm(void) {
    bn_case(32, 64, 196);
    bn_case(7, 128, 1);
    bn_case(2, 3, 5);
    for (int i = 0; i < 6; i++) {
        int B = irand(2, 6), C = irand(1, 9), HW = irand(1, 30);
        bn_case(B, C, HW);
    }
}

/* The AVX-512 batch norm (8 double sums a register) must give the portable loops' bits: the
 * same shapes with the vector paths on and off (herdi_cpu_gemm_select(0) switches them off). */
static void bn_bits_run(int B, int C, int HW, const float *in, const float *gamma, const float *beta,
                        const float *dout, float *out, float *din, float *stats) {
    herd_exec ex = {.pool = pools[2]};
    float *mean = stats, *rstd = stats + C, *rm = stats + 2 * C, *rv = stats + 3 * C, *dg = stats + 4 * C,
          *dbe = stats + 5 * C;
    herdi_cpu_batchnorm_forward_train(&ex, out, mean, rstd, rm, rv, in, gamma, beta, B, C, HW, 0.1f, 1e-5f, HERD_ACT_NONE);
    herdi_cpu_batchnorm_backward(&ex, din, dg, dbe, (float *)dout, in, mean, rstd, gamma, B, C, HW, NULL);
}

/* A ReLU or ReLU6 fused into the batch norm (the planner's fusion, training too) must give the
 * bits of the batch norm then the act op: forward (train and eval) and backward, where the
 * unfused model runs the act's backward into a zeroed gradient and the batch norm's from that.
 * set: din written (bn_backward_fusion.din_set) over garbage, then masked by din_act on the
 * input, against a zeroed din added to and act_backward_inplace. Both backends, 1-3 threads, the
 * cpu's AVX-512 paths on and off; dout holds -0 and +0 (the fused mask keeps a -0 the unfused
 * add turns into +0: the sums and din must not see it). */
static void bn_act_case(const herd_backend *be, herd_exec *ex, herd_act act, int set, herd_act din_act, int B, int C,
                        int HW) {
    size_t n = (size_t)B * C * HW;
    float *in = randv(n), *gamma = randv(C), *beta = randv(C), *dout = randv(n), *din0 = randv(n);
    for (size_t i = 0; i < n; i++) in[i] = 5.0f * in[i] + 2.0f; /* some past ReLU6's 6 for din_act */
    for (int c = 0; c < C; c++) gamma[c] *= 8.0f;                /* outputs beyond ReLU6's 6 */
    for (size_t i = 0; i < n; i += 5) dout[i] = i % 10 ? -0.0f : 0.0f;
    float *o[2], *din[2], *stats[2], *e[2];
    for (int f = 0; f < 2; f++) { /* 0: apart, 1: fused */
        o[f] = nanv(n), din[f] = set ? (f ? nanv(n) : calloc(n, sizeof(float))) : copyv(din0, n), e[f] = nanv(n);
        stats[f] = calloc(6 * (size_t)C, sizeof(float));
        float *mean = stats[f], *rstd = mean + C, *rm = mean + 2 * C, *rv = mean + 3 * C, *dg = mean + 4 * C,
              *dbe = mean + 5 * C, *g = copyv(dout, n);
        for (int k = 0; k < C; k++) rv[k] = 1.0f;
        if (f) {
            const bn_backward_fusion fu = {.out = o[f], .act = act, .din_set = set, .din_act = din_act};
            be->batchnorm_forward_train(ex, o[f], mean, rstd, rm, rv, in, gamma, beta, B, C, HW, 0.1f, 1e-5f, act);
            be->batchnorm_backward(ex, din[f], dg, dbe, g, in, mean, rstd, gamma, B, C, HW, &fu);
            be->batchnorm_forward_eval(ex, e[f], in, gamma, beta, rm, rv, B, C, HW, 1e-5f, act);
        } else {
            float *pre = nanv(n), *gz = calloc(n, sizeof(float));
            be->batchnorm_forward_train(ex, pre, mean, rstd, rm, rv, in, gamma, beta, B, C, HW, 0.1f, 1e-5f,
                                        HERD_ACT_NONE);
            be->act_forward(ex, o[f], pre, (int64_t)n, act, 0);
            be->act_backward(ex, gz, g, pre, o[f], (int64_t)n, act, 0);
            be->batchnorm_backward(ex, din[f], dg, dbe, gz, in, mean, rstd, gamma, B, C, HW, NULL);
            if (set && din_act) be->act_backward_inplace(ex, din[f], in, (int64_t)n, din_act);
            be->batchnorm_forward_eval(ex, pre, in, gamma, beta, rm, rv, B, C, HW, 1e-5f, HERD_ACT_NONE);
            be->act_forward(ex, e[f], pre, (int64_t)n, act, 0);
            free(pre), free(gz);
        }
        free(g);
    }
    CHECK(!memcmp(o[0], o[1], n * sizeof(float)) && !memcmp(e[0], e[1], n * sizeof(float)) &&
              !memcmp(din[0], din[1], n * sizeof(float)) && !memcmp(stats[0], stats[1], 6 * (size_t)C * sizeof(float)),
          "batchnorm + %s fused (%s, set %d din_act %d, B%d C%d HW%d, %d threads): bits differ from the layers apart",
          act == HERD_ACT_RELU ? "relu" : "relu6", be->name, set, (int)din_act, B, C, HW,
          ex->pool ? herd_pool_threads(ex->pool) : 1);
    for (int f = 0; f < 2; f++) free(o[f]), free(din[f]), free(e[f]), free(stats[f]);
    free(in), free(gamma), free(beta), free(dout), free(din0);
}

static void test_batchnorm_act(void) {
    const int shapes[][3] = {{4, 3, 3136}, {3, 5, 196}, {2, 4, 49}, {5, 2, 7}, {3, 4, 1}, {2, 3, 12}};
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++)
        for (int a = 0; a < 6; a++) { /* act x (added, set, set + din_act) */
            const herd_act act = a % 2 ? HERD_ACT_RELU6 : HERD_ACT_RELU, din_act = a / 2 == 2 ? act : HERD_ACT_NONE;
            const int set = a >= 2, B = shapes[s][0], C = shapes[s][1], HW = shapes[s][2];
            herd_exec none = {0};
            bn_act_case(&herd_backend_ref, &none, act, set, din_act, B, C, HW);
            for (int v = 0; v < 2; v++) {
                if (v) herdi_cpu_gemm_select(0);
                for (int t = 0; t < N_TC; t++) {
                    herd_exec ex = {.pool = pools[thread_counts[t]]};
                    bn_act_case(&herd_backend_cpu, &ex, act, set, din_act, B, C, HW);
                }
                if (v) herdi_cpu_gemm_select(1);
            }
        }
}

static void test_batchnorm_bits(void) {
    if (!herdi_cpu_avx512_enabled()) return;
    /* rows of 7, 4 and 1 (2x2 and 1x1 maps) lie wholly in the masked lanes of one vector */
    const int shapes[][3] = {{4, 3, 3136}, {3, 5, 196}, {2, 4, 49}, {5, 2, 7}, {6, 5, 4}, {3, 4, 1}, {2, 3, 12}};
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
        int B = shapes[s][0], C = shapes[s][1], HW = shapes[s][2];
        size_t n = (size_t)B * C * HW;
        float *in = randv(n), *dout = randv(n), *gamma = randv(C), *beta = randv(C), *din0 = randv(n);
        float *out[2], *din[2], *stats[2];
        for (int v = 0; v < 2; v++) {
            out[v] = nanv(n), din[v] = copyv(din0, n), stats[v] = calloc(6 * (size_t)C, sizeof(float));
            if (v == 1) herdi_cpu_gemm_select(0);
            bn_bits_run(B, C, HW, in, gamma, beta, dout, out[v], din[v], stats[v]);
            if (v == 1) herdi_cpu_gemm_select(1);
        }
        CHECK(!memcmp(out[0], out[1], n * sizeof(float)) && !memcmp(din[0], din[1], n * sizeof(float)) &&
                  !memcmp(stats[0], stats[1], 6 * (size_t)C * sizeof(float)),
              "batchnorm B%d C%d HW%d: the AVX-512 path's bits differ from the portable loops'", B, C, HW);
        for (int v = 0; v < 2; v++) free(out[v]), free(din[v]), free(stats[v]);
        free(in), free(dout), free(gamma), free(beta), free(din0);
    }
}

/* ---------------- activations ---------------- */
static void test_act(void) {
    const herd_backend *ref = &herd_backend_ref, *cpu = &herd_backend_cpu;
    const herd_act kinds[] = {HERD_ACT_NONE,  HERD_ACT_RELU,  HERD_ACT_LEAKY_RELU,  HERD_ACT_SIGMOID,
                              HERD_ACT_TANH,  HERD_ACT_GELU,  HERD_ACT_RELU6,       HERD_ACT_HARDSIGMOID,
                              HERD_ACT_HARDSWISH, HERD_ACT_SILU, HERD_ACT_GELU_TANH};
    const int64_t sizes[] = {1, 37, 100003};
    for (size_t k = 0; k < sizeof kinds / sizeof kinds[0]; k++)
        for (size_t s = 0; s < 3; s++) {
            int64_t n = sizes[s];
            char shape[64];
            snprintf(shape, sizeof shape, "act %d n%lld", (int)kinds[k], (long long)n);
            float *in = randv(n), *dout = randv(n), *din0 = randv(n);
            for (int64_t i = 0; i < n; i++) in[i] *= 4.0f;
            herd_exec none = {0};
            float *o_r = nanv(n), *d_r = copyv(din0, n);
            ref->act_forward(&none, o_r, in, n, kinds[k], 0.1f);
            ref->act_backward(&none, d_r, dout, in, o_r, n, kinds[k], 0.1f);
            for (int t = 0; t < N_TC; t++) {
                herd_exec ex = {.pool = pools[thread_counts[t]]};
                float *o = nanv(n), *d = copyv(din0, n);
                cpu->act_forward(&ex, o, in, n, kinds[k], 0.1f);
                cpu->act_backward(&ex, d, dout, in, o_r, n, kinds[k], 0.1f);
                compare("act out", shape, o, o_r, n, 1);
                compare("act din", shape, d, d_r, n, 1);
                free(o), free(d);
            }
            free(in), free(dout), free(din0), free(o_r), free(d_r);
        }
    /* the residual add with its activation: the bits of the reference add, then the act op (NaN, -0, 6) */
    const herd_act fused[] = {HERD_ACT_NONE, HERD_ACT_RELU, HERD_ACT_RELU6};
    for (size_t k = 0; k < 3; k++)
        for (size_t s = 0; s < 3; s++) {
            int64_t n = sizes[s];
            float *a = randv(n), *b = randv(n), *want = nanv(n);
            for (int64_t i = 0; i < n; i++) a[i] *= 8.0f;
            a[0] = NAN, b[n / 2] = -0.0f, a[n / 2] = -0.0f, a[n - 1] = 6.0f, b[n - 1] = 0.0f;
            herd_exec none = {0};
            herdi_ref_add_forward(want, a, b, n);
            if (fused[k]) herd_backend_ref.act_forward(&none, want, want, n, fused[k], 0);
            for (int t = 0; t < N_TC; t++) {
                herd_exec ex = {.pool = pools[thread_counts[t]]};
                float *o = nanv(n);
                cpu->add_act_forward(&ex, o, a, b, n, fused[k]);
                CHECK(!memcmp(o, want, (size_t)n * sizeof(float)), "add act %d n%lld, %d threads: not the add then the act op's bits",
                      (int)fused[k], (long long)n, thread_counts[t]);
                free(o);
            }
            free(a), free(b), free(want);
        }
}

int main(void) {
    herd_rng_init(&rng, 20261123, 7);
    for (int t = 1; t <= 3; t++) {
        herd_error err;
        if (herd_pool_create(&pools[t], t, &err) != HERD_OK) {
            fprintf(stderr, "pool: %s\n", err.msg);
            return 1;
        }
    }
    CHECK(herd_backend_find("ref") == &herd_backend_ref, "find ref");
    CHECK(herd_backend_find("cpu") == &herd_backend_cpu, "find cpu");
    CHECK(herd_backend_find("gpu") == NULL, "unknown name gives NULL");
    CHECK(herd_backend_find(NULL) == NULL, "NULL name gives NULL");
    herd_backend_set_threads(2);
    printf("conv gemm kernel: %s\n", herdi_cpu_gemm_kernel());
    test_conv();
    test_gemm_epilogue_bits();
    test_transpose_add_bits();
    test_conv_direct_bits();
    test_conv_prepared_bits();
    test_conv_din_bits();
    test_dense();
    test_pool();
    test_batchnorm();
    test_batchnorm_bits();
    test_batchnorm_act();
    test_dwconv_bits();
    test_act();
    /* conv and maxpool have AVX-512 paths and portable fallbacks: cover the other one too */
    if (herdi_cpu_avx512_enabled()) {
        herdi_cpu_gemm_select(0);
        printf("conv gemm kernel: %s\n", herdi_cpu_gemm_kernel());
        test_conv();
        test_gemm_epilogue_bits();
        test_conv_prepared_bits();
        test_dense();
        test_transpose_add_bits();
        test_pool();
        herdi_cpu_gemm_select(1);
    }
    /* the AVX2/FMA kernel (HERD_CPU=avx2, or a CPU without AVX-512) where this CPU runs it */
    if (herdi_cpu_gemm_use(CPU_GEMM_AVX2)) {
        printf("conv gemm kernel: %s\n", herdi_cpu_gemm_kernel());
        test_conv();
        test_gemm_epilogue_bits();
        herdi_cpu_gemm_select(1);
    }
    for (int t = 1; t <= 3; t++) herd_pool_destroy(pools[t]);
    printf("worst error / tolerance: %.3f (%s)\n", worst_ratio, worst_what);
    return check_summary();
}
