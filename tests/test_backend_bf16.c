/* The cpu-bf16 backend's conv and dense (--precision bf16) against the fp32 reference ops: odd
 * shapes, batch 1, stride 2, padding, 1x1, forward and accumulating backward, pools of 1, 2
 * and 3 threads, bit-identical reruns; plus the layers it hands back to fp32.
 *
 * Tolerances, from bf16's 8-bit significand (unit roundoff u = 2^-8) and fp32 accumulation
 * (K-term sum, e32 = 2^-24): each product of two operands rounded to bf16 is off by at most
 * (2u + u^2) of |a*b|, so against the fp32 op on the exact data
 *     |bf16 - ref| <= (2u + u^2 + 2*K*e32) * S + 2*e32*|ref|,   S = sum |a|*|b|
 * (S computed by the reference op on |a|, |b|). And the kernel must be exactly "round the
 * operands to bf16, multiply-add in fp32": against the fp32 op on the rounded data it is off
 * only by two fp32 summation orders, 2*K*e32 * S_q + 2*e32*|ref_q|, a bound 40-1000x tighter
 * than the first at these K, which an fp32 kernel (not rounding) or a wrong rounding fails. */
#include <stdlib.h>
#include <string.h>

#include "backend/backend.h"
#include "backend/cpu_bf16.h"
#include "check.h"
#include "dist/bf16.h"

static herd_rng rng;
static herd_pool *pools[4];

static float *randv(size_t n) {
    float *p = malloc((n ? n : 1) * sizeof(float));
    for (size_t i = 0; i < n; i++) p[i] = 2.0f * herd_rng_uniform(&rng) - 1.0f;
    return p;
}

static float *copyv(const float *a, size_t n) {
    float *p = malloc((n ? n : 1) * sizeof(float));
    if (a) memcpy(p, a, n * sizeof(float));
    return p;
}

static float *absv(const float *a, size_t n) {
    float *p = copyv(a, n);
    for (size_t i = 0; i < n; i++) p[i] = fabsf(p[i]);
    return p;
}

static float *bf16v(const float *a, size_t n) {
    float *p = copyv(a, n);
    for (size_t i = 0; i < n; i++) p[i] = herd_bf16_to_f32(herd_f32_to_bf16(p[i]));
    return p;
}

static float *zerov(size_t n) { return calloc(n ? n : 1, sizeof(float)); }

#define U_BF16 (1.0 / 256)
#define E32 (1.0 / 16777216)

/* got vs want (want = base + the sum), S = sum |a||b|: |got - want| <= rel_s * S + 2 e32 |want|.
 * Returns the largest |got - want| seen, for the "it really is bf16" check. */
static double compare(const char *what, const char *shape, const float *got, const float *want, const float *S,
                      size_t n, double rel_s) {
    size_t bad = 0, first = 0;
    double worst = 0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)got[i] - want[i]), bound = rel_s * S[i] + 2 * E32 * fabs(want[i]) + 1e-30;
        if (d > worst) worst = d;
        if (!(d <= bound) && !bad++) first = i;
    }
    CHECK(bad == 0, "%s [%s]: %zu of %zu outside the bound, first at %zu: got %.9g expected %.9g, bound %.3g*%.6g", what,
          shape, bad, n, first, bad ? got[first] : 0.0, bad ? want[first] : 0.0, rel_s, bad ? S[first] : 0.0);
    return worst;
}

/* Both bounds for one result: vs the exact-data ref (r) and the rounded-data ref (q). */
static void check_both(const char *what, const char *shape, const float *got, const float *r, const float *q,
                       const float *S, const float *Sq, size_t n, double K) {
    double e_exact = compare(what, shape, got, r, S, n, 2 * U_BF16 + U_BF16 * U_BF16 + 2 * K * E32);
    char w2[96];
    snprintf(w2, sizeof w2, "%s vs rounded operands", what);
    double e_q = compare(w2, shape, got, q, Sq, n, 2 * K * E32);
    CHECK(e_q <= e_exact, "%s [%s]: closer to the fp32 result (%.3g) than to the bf16-operand one (%.3g)", what,
          shape, e_exact, e_q);
}

static void same_bits(const char *what, const char *shape, const float *a, const float *b, size_t n) {
    CHECK(memcmp(a, b, n * sizeof(float)) == 0, "%s [%s]: results differ (reruns or thread counts)", what, shape);
}

static herd_exec make_exec(int threads, size_t floats, float **buf) {
    *buf = malloc((floats + 16) * sizeof(float));
    for (int i = 0; i < 16; i++) (*buf)[floats + i] = 12345.0f;
    return (herd_exec){.pool = pools[threads], .workspace = *buf, .workspace_floats = floats};
}

static void check_guard(float *buf, size_t floats, const char *shape) {
    int ok = 1;
    for (int i = 0; i < 16; i++) ok &= buf[floats + i] == 12345.0f;
    CHECK(ok, "[%s]: wrote past the workspace it asked for", shape);
    free(buf);
}

static void conv_case(const herd_backend *be, conv2d_dims d, int with_bias) {
    if (!herdi_conv2d_dims_finish(&d)) return;
    char shape[160];
    snprintf(shape, sizeof shape, "conv B%d C%d %dx%d OC%d k%dx%d s%d,%d p%d,%d%s", d.B, d.C, d.H, d.W, d.OC, d.KH,
             d.KW, d.SH, d.SW, d.PH, d.PW, with_bias ? " bias" : "");
    /* the kernels run every plain conv; the table hands shallow ones (C*KH*KW < 32) to fp32 */
    CHECK((be->conv2d_unsupported(&d) == NULL) == (d.C * d.KH * d.KW >= 32), "[%s]: bf16 runs a plain conv of C*KH*KW >= 32 only", shape);
    size_t nin = (size_t)d.B * d.C * d.H * d.W, nout = (size_t)d.B * d.OC * d.OH * d.OW;
    size_t nw = (size_t)d.OC * d.C * d.KH * d.KW;
    double kf = (double)d.C * d.KH * d.KW, kd = (double)d.OC * d.KH * d.KW, kw = (double)d.B * d.OH * d.OW;
    float *in = randv(nin), *w = randv(nw), *b = with_bias ? randv(d.OC) : NULL, *dout = randv(nout);
    float *din0 = randv(nin), *dw0 = randv(nw), *db0 = randv(d.OC);
    float *inq = bf16v(in, nin), *wq = bf16v(w, nw), *doutq = bf16v(dout, nout);
    float *ina = absv(in, nin), *wa = absv(w, nw), *douta = absv(dout, nout);
    float *inqa = absv(inq, nin), *wqa = absv(wq, nw), *doutqa = absv(doutq, nout);
    /* references: exact data (r), rounded data (q), and the sums of |products| (S, Sq) */
    float *out_r = zerov(nout), *out_q = zerov(nout), *out_S = zerov(nout), *out_Sq = zerov(nout);
    herdi_ref_conv2d_forward(out_r, in, w, b, &d);
    herdi_ref_conv2d_forward(out_q, inq, wq, b, &d);
    herdi_ref_conv2d_forward(out_S, ina, wa, NULL, &d);
    herdi_ref_conv2d_forward(out_Sq, inqa, wqa, NULL, &d);
    float *din_r = copyv(din0, nin), *dw_r = copyv(dw0, nw), *db_r = copyv(db0, d.OC);
    float *din_q = copyv(din0, nin), *dw_q = copyv(dw0, nw), *db_q = copyv(db0, d.OC);
    float *din_S = zerov(nin), *dw_S = zerov(nw), *db_S = zerov(d.OC);
    float *din_Sq = zerov(nin), *dw_Sq = zerov(nw), *db_Sq = zerov(d.OC);
    herdi_ref_conv2d_backward(din_r, dw_r, db_r, dout, in, w, &d);
    herdi_ref_conv2d_backward(din_q, dw_q, db_q, doutq, inq, wq, &d);
    herdi_ref_conv2d_backward(din_S, dw_S, db_S, douta, ina, wa, &d);
    herdi_ref_conv2d_backward(din_Sq, dw_Sq, db_Sq, doutqa, inqa, wqa, &d);
    /* db is an fp32 sum of the exact dout in both */
    memcpy(db_q, db_r, d.OC * sizeof(float));

    float *first_out = NULL, *first_din = NULL;
    for (int T = 1; T <= 3; T++) {
        float *buf;
        size_t ws = be->conv2d_workspace(&d, T);
        herd_exec ex = make_exec(T, ws, &buf);
        float *out[2], *din[2], *dw[2], *db[2];
        for (int run = 0; run < 2; run++) {
            out[run] = zerov(nout), din[run] = copyv(din0, nin), dw[run] = copyv(dw0, nw), db[run] = copyv(db0, d.OC);
            be->conv2d_forward(&ex, out[run], in, w, b, &d);
            be->conv2d_backward(&ex, din[run], dw[run], db[run], dout, in, w, &d);
        }
        check_both("conv out", shape, out[0], out_r, out_q, out_S, out_Sq, nout, kf);
        check_both("conv din", shape, din[0], din_r, din_q, din_S, din_Sq, nin, kd);
        check_both("conv dw", shape, dw[0], dw_r, dw_q, dw_S, dw_Sq, nw, kw);
        compare("conv db", shape, db[0], db_r, db_S, d.OC, 2 * kw * E32);
        same_bits("conv out", shape, out[0], out[1], nout);
        same_bits("conv din", shape, din[0], din[1], nin);
        same_bits("conv dw", shape, dw[0], dw[1], nw);
        same_bits("conv db", shape, db[0], db[1], d.OC);
        if (T == 1) {
            first_out = copyv(out[0], nout), first_din = copyv(din[0], nin);
        } else { /* out and din are computed image by image: no thread count changes them */
            same_bits("conv out 1 vs N threads", shape, first_out, out[0], nout);
            same_bits("conv din 1 vs N threads", shape, first_din, din[0], nin);
        }
        /* fused ReLU: out = max(conv, 0); backward masks dout in place, then the same products */
        float *o = zerov(nout), *g = copyv(dout, nout), *di = copyv(din0, nin), *dwr = copyv(dw0, nw);
        be->conv2d_forward_act(&ex, o, in, w, b, &d, &(conv2d_post){.act = HERD_ACT_RELU});
        int relu_ok = 1;
        for (size_t i = 0; i < nout; i++) relu_ok &= o[i] == (out[0][i] > 0 ? out[0][i] : 0.0f);
        CHECK(relu_ok, "conv forward_relu [%s]: not max(forward, 0)", shape);
        float *gm = copyv(dout, nout), *di2 = copyv(din0, nin), *dw2 = copyv(dw0, nw);
        for (size_t i = 0; i < nout; i++) gm[i] = o[i] > 0 ? gm[i] : 0.0f;
        be->conv2d_backward(&ex, di2, dw2, NULL, gm, in, w, &d);
        be->conv2d_backward_act(&ex, di, dwr, NULL, g, o, in, w, &d, HERD_ACT_RELU);
        same_bits("conv backward_relu dout", shape, g, gm, nout);
        same_bits("conv backward_relu din", shape, di, di2, nin);
        same_bits("conv backward_relu dw", shape, dwr, dw2, nw);
        /* din NULL (a first layer) and dw/db NULL leave the rest alone */
        float *dw3 = copyv(dw0, nw), *din3 = copyv(din0, nin);
        be->conv2d_backward(&ex, NULL, dw3, NULL, dout, in, w, &d);
        be->conv2d_backward(&ex, din3, NULL, NULL, dout, in, w, &d);
        same_bits("conv dw (din NULL)", shape, dw3, dw[0], nw);
        same_bits("conv din (dw NULL)", shape, din3, din[0], nin);
        check_guard(buf, ws, shape);
        free(o), free(g), free(di), free(dwr), free(gm), free(di2), free(dw2), free(dw3), free(din3);
        for (int run = 0; run < 2; run++) free(out[run]), free(din[run]), free(dw[run]), free(db[run]);
    }
    free(first_out), free(first_din);
    float *all[] = {in, w, b, dout, din0, dw0, db0, inq, wq, doutq, ina, wa, douta, inqa, wqa, doutqa, out_r, out_q,
                    out_S, out_Sq, din_r, dw_r, db_r, din_q, dw_q, db_q, din_S, dw_S, db_S, din_Sq, dw_Sq, db_Sq};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) free(all[i]);
}

static void dense_case(const herd_backend *be, int B, int IN, int OUT, int with_bias) {
    char shape[96];
    snprintf(shape, sizeof shape, "dense B%d IN%d OUT%d%s", B, IN, OUT, with_bias ? " bias" : "");
    size_t nin = (size_t)B * IN, nout = (size_t)B * OUT, nw = (size_t)OUT * IN;
    float *in = randv(nin), *w = randv(nw), *b = with_bias ? randv(OUT) : NULL, *dout = randv(nout);
    float *din0 = randv(nin), *dw0 = randv(nw), *db0 = randv(OUT);
    float *inq = bf16v(in, nin), *wq = bf16v(w, nw), *doutq = bf16v(dout, nout);
    float *ina = absv(in, nin), *wa = absv(w, nw), *douta = absv(dout, nout);
    float *inqa = absv(inq, nin), *wqa = absv(wq, nw), *doutqa = absv(doutq, nout);
    float *out_r = zerov(nout), *out_q = zerov(nout), *out_S = zerov(nout), *out_Sq = zerov(nout);
    herdi_ref_dense_forward(out_r, in, w, b, B, IN, OUT);
    herdi_ref_dense_forward(out_q, inq, wq, b, B, IN, OUT);
    herdi_ref_dense_forward(out_S, ina, wa, NULL, B, IN, OUT);
    herdi_ref_dense_forward(out_Sq, inqa, wqa, NULL, B, IN, OUT);
    float *din_r = copyv(din0, nin), *dw_r = copyv(dw0, nw), *db_r = copyv(db0, OUT);
    float *din_q = copyv(din0, nin), *dw_q = copyv(dw0, nw), *db_q = copyv(db0, OUT);
    float *din_S = zerov(nin), *dw_S = zerov(nw), *db_S = zerov(OUT);
    float *din_Sq = zerov(nin), *dw_Sq = zerov(nw), *db_Sq = zerov(OUT);
    herdi_ref_dense_backward(din_r, dw_r, db_r, dout, in, w, B, IN, OUT);
    herdi_ref_dense_backward(din_q, dw_q, db_q, doutq, inq, wq, B, IN, OUT);
    herdi_ref_dense_backward(din_S, dw_S, db_S, douta, ina, wa, B, IN, OUT);
    herdi_ref_dense_backward(din_Sq, dw_Sq, db_Sq, doutqa, inqa, wqa, B, IN, OUT);
    float *first[3] = {0};
    for (int T = 1; T <= 3; T++) {
        float *buf;
        size_t ws = be->dense_workspace(B, IN, OUT, T);
        herd_exec ex = make_exec(T, ws, &buf);
        float *out = zerov(nout), *din = copyv(din0, nin), *dw = copyv(dw0, nw), *db = copyv(db0, OUT);
        be->dense_forward(&ex, out, in, w, b, B, IN, OUT);
        be->dense_backward(&ex, din, dw, db, dout, in, w, B, IN, OUT);
        check_both("dense out", shape, out, out_r, out_q, out_S, out_Sq, nout, IN);
        check_both("dense din", shape, din, din_r, din_q, din_S, din_Sq, nin, OUT);
        check_both("dense dw", shape, dw, dw_r, dw_q, dw_S, dw_Sq, nw, B);
        compare("dense db", shape, db, db_r, db_S, OUT, 2 * B * E32);
        if (T == 1) {
            first[0] = out, first[1] = din, first[2] = dw;
        } else { /* split by rows: every element one fixed-order sum */
            same_bits("dense out 1 vs N threads", shape, first[0], out, nout);
            same_bits("dense din 1 vs N threads", shape, first[1], din, nin);
            same_bits("dense dw 1 vs N threads", shape, first[2], dw, nw);
            free(out), free(din), free(dw);
        }
        free(db);
        check_guard(buf, ws, shape);
    }
    for (int i = 0; i < 3; i++) free(first[i]);
    float *all[] = {in, w, b, dout, din0, dw0, db0, inq, wq, doutq, ina, wa, douta, inqa, wqa, doutqa, out_r, out_q,
                    out_S, out_Sq, din_r, dw_r, db_r, din_q, dw_q, db_q, din_S, dw_S, db_S, din_Sq, dw_Sq, db_Sq};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) free(all[i]);
}

int main(void) {
    const char *why = herdi_cpu_bf16_unavailable();
    if (why) {
        printf("skipped: %s\n", why);
        return 77;
    }
    const herd_backend *be = herd_backend_cpu_bf16();
    herd_error err = {0};
    for (int t = 1; t <= 3; t++) CHECK(herd_pool_create(&pools[t], t, &err) == HERD_OK, "pool: %s", err.msg);
    herd_rng_init(&rng, 17, 17);
    conv2d_dims fixed[] = {
        /* the example CNN's layers, batch 3 */
        {.B = 3, .C = 1, .H = 28, .W = 28, .OC = 32, .KH = 3, .KW = 3, .SH = 1, .SW = 1, .PH = 1, .PW = 1},
        {.B = 3, .C = 32, .H = 14, .W = 14, .OC = 64, .KH = 3, .KW = 3, .SH = 1, .SW = 1, .PH = 1, .PW = 1},
        {.B = 2, .C = 64, .H = 7, .W = 7, .OC = 128, .KH = 3, .KW = 3, .SH = 1, .SW = 1, .PH = 1, .PW = 1},
        /* odd everything: 1x1 in place of im2col, stride 2, uneven kernel and padding, batch 1 */
        {.B = 1, .C = 5, .H = 7, .W = 9, .OC = 3, .KH = 1, .KW = 1, .SH = 1, .SW = 1, .PH = 0, .PW = 0},
        {.B = 4, .C = 3, .H = 9, .W = 8, .OC = 7, .KH = 1, .KW = 1, .SH = 2, .SW = 2, .PH = 0, .PW = 0},
        {.B = 3, .C = 3, .H = 11, .W = 6, .OC = 5, .KH = 2, .KW = 5, .SH = 2, .SW = 1, .PH = 0, .PW = 2},
        {.B = 2, .C = 7, .H = 13, .W = 13, .OC = 33, .KH = 3, .KW = 3, .SH = 2, .SW = 2, .PH = 1, .PW = 1},
        {.B = 5, .C = 9, .H = 5, .W = 3, .OC = 1, .KH = 3, .KW = 3, .SH = 1, .SW = 1, .PH = 2, .PW = 2},
        {.B = 1, .C = 1, .H = 1, .W = 1, .OC = 1, .KH = 1, .KW = 1, .SH = 1, .SW = 1, .PH = 0, .PW = 0},
        /* stride 1, the columns read from the image itself and din as a convolution with the flipped
         * weights: unequal kernel sides and pads, a pad of 0 (din's pad kernel - 1), maps of 6
         * columns (two output rows to a vector, 7 rows: the last vector half full) and of 18 (two
         * vectors a row); a pad beyond kernel - 1 keeps col2im */
        {.B = 2, .C = 6, .H = 9, .W = 6, .OC = 10, .KH = 3, .KW = 5, .SH = 1, .SW = 1, .PH = 0, .PW = 2},
        {.B = 3, .C = 4, .H = 10, .W = 20, .OC = 9, .KH = 5, .KW = 3, .SH = 1, .SW = 1, .PH = 1, .PW = 0},
        {.B = 2, .C = 40, .H = 4, .W = 4, .OC = 8, .KH = 1, .KW = 1, .SH = 1, .SW = 1, .PH = 1, .PW = 1},
        /* the transposed products read the padded channel pairs through offset tables and store
         * their tiles transposed: an odd channel count at stride 2 (out), odd channels and 60
         * output channels (out: a last panel of 28 columns), 60 channels and an odd output
         * channel count in dout's pairs (din: 60 columns) */
        {.B = 2, .C = 7, .H = 13, .W = 13, .OC = 64, .KH = 3, .KW = 3, .SH = 2, .SW = 2, .PH = 1, .PW = 1},
        {.B = 2, .C = 35, .H = 7, .W = 7, .OC = 60, .KH = 3, .KW = 3, .SH = 1, .SW = 1, .PH = 1, .PW = 1},
        {.B = 3, .C = 60, .H = 7, .W = 7, .OC = 33, .KH = 3, .KW = 3, .SH = 1, .SW = 1, .PH = 1, .PW = 1},
    };
    for (size_t i = 0; i < sizeof fixed / sizeof fixed[0]; i++) conv_case(be, fixed[i], (int)(i % 2 == 0));
    int dense_shapes[][3] = {{32, 1152, 128}, {32, 128, 10}, {1, 1, 1}, {7, 33, 17}, {37, 129, 65}, {2, 5, 300}};
    for (size_t i = 0; i < sizeof dense_shapes / sizeof dense_shapes[0]; i++)
        dense_case(be, dense_shapes[i][0], dense_shapes[i][1], dense_shapes[i][2], (int)(i % 2 == 0));
    /* what bf16 hands back to fp32: grouped and dilated convolutions, attention */
    conv2d_dims g = {.B = 1, .C = 4, .H = 5, .W = 5, .OC = 4, .KH = 3, .KW = 3, .SH = 1, .SW = 1, .G = 2};
    herdi_conv2d_dims_finish(&g);
    CHECK(be->conv2d_unsupported(&g) != NULL, "grouped conv must fall back to fp32");
    conv2d_dims dl = {.B = 1, .C = 4, .H = 9, .W = 9, .OC = 4, .KH = 3, .KW = 3, .SH = 1, .SW = 1, .DH = 2, .DW = 2};
    herdi_conv2d_dims_finish(&dl);
    CHECK(be->conv2d_unsupported(&dl) != NULL, "dilated conv must fall back to fp32");
    conv2d_dims shallow = {.B = 1, .C = 1, .H = 28, .W = 28, .OC = 32, .KH = 3, .KW = 3, .SH = 1, .SW = 1};
    herdi_conv2d_dims_finish(&shallow);
    CHECK(be->conv2d_unsupported(&shallow) != NULL, "a 9-deep conv must stay fp32");
    CHECK(be->attention_forward == NULL && be->fallback == &herd_backend_cpu,
          "attention has no bf16 kernel: the table must hand it to cpu");
    for (int t = 1; t <= 3; t++) herd_pool_destroy(pools[t]);
    return check_summary();
}
