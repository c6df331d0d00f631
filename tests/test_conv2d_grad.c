/* Checks herdi_ref_conv2d_backward against central differences of L = sum(conv(in, w, b) * r) for inputs,
 * weights and bias over several shapes, plus accumulation, NULL gradients, a hand case and dims_finish. */
#include <stdint.h>

#include "gradcheck.h"
#include "ops/ops.h"

typedef struct conv_case {
    conv2d_dims d;
    float *in, *w, *b, *out, *r;
} conv_case;

static double conv_loss(void *ctx) {
    conv_case *c = ctx;
    herdi_ref_conv2d_forward(c->out, c->in, c->w, c->b, &c->d);
    return gc_project(c->out, c->r, (int64_t)c->d.B * c->d.OC * c->d.OH * c->d.OW);
}

static void check_conv_gd(int B, int C, int H, int W, int OC, int KH, int KW, int SH, int SW, int PH, int PW,
                          int G, int DH, int DW, int with_bias, uint64_t seed) {
    conv_case c = {.d = {.B = B, .C = C, .H = H, .W = W, .OC = OC, .KH = KH, .KW = KW, .SH = SH, .SW = SW, .PH = PH,
                         .PW = PW, .G = G, .DH = DH, .DW = DW}};
    CHECK(herdi_conv2d_dims_finish(&c.d), "dims for B%d C%d %dx%d OC%d k%dx%d s%dx%d p%dx%d g%d d%dx%d", B, C, H, W, OC, KH,
          KW, SH, SW, PH, PW, G, DH, DW);
    printf("conv2d B=%d C=%d H=%d W=%d OC=%d k=%dx%d s=%dx%d p=%dx%d g=%d d=%dx%d bias=%d -> %dx%d\n", B, C, H, W, OC,
           KH, KW, SH, SW, PH, PW, c.d.G, c.d.DH, c.d.DW, with_bias, c.d.OH, c.d.OW);
    const int64_t n_in = (int64_t)B * C * H * W, n_w = (int64_t)OC * (C / c.d.G) * KH * KW;
    const int64_t n_out = (int64_t)B * OC * c.d.OH * c.d.OW;
    herd_rng rng;
    herd_rng_init(&rng, seed, 0);
    c.in = gc_alloc(n_in);
    c.w = gc_alloc(n_w);
    c.b = with_bias ? gc_alloc(OC) : NULL;
    c.out = gc_alloc(n_out);
    c.r = gc_alloc(n_out);
    gc_fill(&rng, c.in, n_in, -1, 1);
    gc_fill(&rng, c.w, n_w, -1, 1);
    if (c.b) gc_fill(&rng, c.b, OC, -1, 1);
    gc_fill(&rng, c.r, n_out, -1, 1);

    float *din = gc_alloc(n_in), *dw = gc_alloc(n_w), *db = gc_alloc(OC);
    herdi_ref_conv2d_forward(c.out, c.in, c.w, c.b, &c.d);
    herdi_ref_conv2d_backward(din, dw, with_bias ? db : NULL, c.r, c.in, c.w, &c.d);

    /* conv is linear in each of in, w, b separately, so a large step has no truncation error
     * and shrinks the effect of rounding the float outputs */
    const float eps = 0.25f;
    const double atol = 1e-5, rtol = 1e-5;
    gc_check("conv2d din", conv_loss, &c, c.in, din, n_in, eps, atol, rtol);
    gc_check("conv2d dw", conv_loss, &c, c.w, dw, n_w, eps, atol, rtol);
    if (c.b) gc_check("conv2d db", conv_loss, &c, c.b, db, OC, eps, atol, rtol);

    /* accumulation: a second call adds the same gradient again */
    float *din2 = gc_alloc(n_in), *dw2 = gc_alloc(n_w), *db2 = gc_alloc(OC);
    memcpy(din2, din, sizeof(float) * n_in);
    memcpy(dw2, dw, sizeof(float) * n_w);
    memcpy(db2, db, sizeof(float) * OC);
    herdi_ref_conv2d_backward(din2, dw2, with_bias ? db2 : NULL, c.r, c.in, c.w, &c.d);
    gc_check_doubled("conv2d din", din, din2, n_in);
    gc_check_doubled("conv2d dw", dw, dw2, n_w);
    if (with_bias) gc_check_doubled("conv2d db", db, db2, OC);

    /* NULL din (first layer) and NULL dw/db (frozen weights) skip just that gradient */
    float *dw3 = gc_alloc(n_w), *db3 = gc_alloc(OC), *din3 = gc_alloc(n_in);
    herdi_ref_conv2d_backward(NULL, dw3, with_bias ? db3 : NULL, c.r, c.in, c.w, &c.d);
    herdi_ref_conv2d_backward(din3, NULL, NULL, c.r, c.in, c.w, &c.d);
    gc_check_equal("conv2d dw with din=NULL", dw3, dw, n_w);
    if (with_bias) gc_check_equal("conv2d db with din=NULL", db3, db, OC);
    gc_check_equal("conv2d din with dw=db=NULL", din3, din, n_in);

    free(c.in), free(c.w), free(c.b), free(c.out), free(c.r);
    free(din), free(dw), free(db), free(din2), free(dw2), free(db2), free(dw3), free(db3), free(din3);
}

static void check_conv(int B, int C, int H, int W, int OC, int KH, int KW, int SH, int SW, int PH, int PW,
                       int with_bias, uint64_t seed) {
    check_conv_gd(B, C, H, W, OC, KH, KW, SH, SW, PH, PW, 0, 0, 0, with_bias, seed);
}

/* 3x3 ones, 2x2 ones kernel, pad 1, stride 2: the four windows cover 1, 2, 2 and 4 real pixels. */
static void check_conv_by_hand(void) {
    conv2d_dims d = {.B = 1, .C = 1, .H = 3, .W = 3, .OC = 1, .KH = 2, .KW = 2, .SH = 2, .SW = 2, .PH = 1, .PW = 1};
    CHECK(herdi_conv2d_dims_finish(&d) && d.OH == 2 && d.OW == 2, "hand case dims: OH %d OW %d, expected 2x2", d.OH, d.OW);
    float in[9], w[4] = {1, 1, 1, 1}, b[1] = {0.5f}, out[4];
    for (int i = 0; i < 9; i++) in[i] = 1.0f;
    herdi_ref_conv2d_forward(out, in, w, b, &d);
    const float want[4] = {1.5f, 2.5f, 2.5f, 4.5f};
    for (int i = 0; i < 4; i++) CHECK_CLOSE(out[i], want[i], 0, 0, "conv2d hand case output");
}

static void check_dims(void) {
    conv2d_dims d = {.B = 2, .C = 3, .H = 32, .W = 31, .OC = 8, .KH = 3, .KW = 3, .SH = 2, .SW = 2, .PH = 1, .PW = 1};
    CHECK(herdi_conv2d_dims_finish(&d) && d.OH == 16 && d.OW == 16, "32x31 k3 s2 p1: got %dx%d, expected 16x16", d.OH, d.OW);
    conv2d_dims ok = {.B = 1, .C = 1, .H = 5, .W = 5, .OC = 1, .KH = 5, .KW = 5, .SH = 1, .SW = 1};
    CHECK(herdi_conv2d_dims_finish(&ok) && ok.OH == 1 && ok.OW == 1, "kernel == input gives 1x1, got %dx%d", ok.OH, ok.OW);
    conv2d_dims bad[] = {
        {.B = 0, .C = 1, .H = 5, .W = 5, .OC = 1, .KH = 3, .KW = 3, .SH = 1, .SW = 1},
        {.B = 1, .C = 1, .H = 5, .W = 5, .OC = -1, .KH = 3, .KW = 3, .SH = 1, .SW = 1},
        {.B = 1, .C = 1, .H = 5, .W = 5, .OC = 1, .KH = 3, .KW = 3, .SH = 0, .SW = 1},
        {.B = 1, .C = 1, .H = 5, .W = 5, .OC = 1, .KH = 3, .KW = 3, .SH = 1, .SW = 1, .PH = -1},
        {.B = 1, .C = 1, .H = 2, .W = 5, .OC = 1, .KH = 3, .KW = 3, .SH = 1, .SW = 1},         /* kernel > input */
        {.B = 1, .C = 1, .H = 1, .W = 1, .OC = 1, .KH = 4, .KW = 4, .SH = 1, .SW = 1, .PH = 1, .PW = 1}, /* > padded */
        {.B = 1, .C = 1, .H = 2000000000, .W = 5, .OC = 1, .KH = 3, .KW = 3, .SH = 1, .SW = 1, .PH = 1000000000},
        {.B = 1 << 30, .C = 1 << 30, .H = 1 << 30, .W = 1 << 30, .OC = 1, .KH = 1, .KW = 1, .SH = 1, .SW = 1},
        {.B = 1, .C = 4, .H = 5, .W = 5, .OC = 6, .KH = 3, .KW = 3, .SH = 1, .SW = 1, .G = 4},  /* 4 groups, 6 filters */
        {.B = 1, .C = 3, .H = 5, .W = 5, .OC = 3, .KH = 3, .KW = 3, .SH = 1, .SW = 1, .G = -1},
        {.B = 1, .C = 1, .H = 5, .W = 5, .OC = 1, .KH = 3, .KW = 3, .SH = 1, .SW = 1, .DH = 3}, /* 7 rows > 5 */
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        CHECK(herdi_conv2d_dims_finish(&bad[i]) == 0, "bad conv dims case %zu accepted", i);
    }
}

int main(void) {
    check_dims();
    check_conv_by_hand();
    check_conv(1, 1, 5, 5, 1, 3, 3, 1, 1, 0, 0, 1, 1);
    check_conv(2, 3, 7, 5, 4, 3, 2, 2, 1, 1, 0, 1, 2);
    check_conv(3, 2, 6, 6, 3, 3, 3, 2, 2, 1, 1, 1, 3);
    check_conv(1, 2, 4, 7, 2, 1, 1, 1, 1, 0, 0, 0, 4);
    check_conv(2, 1, 5, 5, 2, 5, 5, 3, 3, 2, 2, 1, 5);
    check_conv(1, 3, 9, 8, 2, 4, 3, 3, 2, 2, 1, 0, 6);
    check_conv(2, 2, 6, 6, 2, 3, 3, 2, 2, 0, 0, 1, 7); /* last input row and column feed no output */
    /* groups (depthwise, with a channel multiplier, several channels per group) and dilation */
    check_conv_gd(2, 4, 6, 6, 4, 3, 3, 1, 1, 1, 1, 4, 1, 1, 1, 8);
    check_conv_gd(2, 3, 7, 6, 6, 3, 3, 2, 2, 1, 1, 3, 1, 1, 0, 9);
    check_conv_gd(1, 6, 5, 5, 4, 3, 1, 1, 1, 1, 0, 2, 1, 1, 1, 10);
    check_conv_gd(2, 2, 9, 8, 3, 3, 3, 1, 1, 2, 2, 1, 2, 2, 1, 11);
    check_conv_gd(1, 4, 11, 9, 4, 3, 2, 2, 1, 3, 1, 2, 3, 2, 1, 12);
    return check_summary();
}
