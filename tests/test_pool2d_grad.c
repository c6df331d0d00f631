/* Checks max/avg/global-average pooling backward against central differences of L = sum(pool(in) * r),
 * plus maxpool's padding/tie rules, count_include_pad, accumulation, NULL din and herdi_pool2d_dims_finish;
 * and that the global average's forward (8 planes at a time) gives each plane's in-order double sum. */
#include <stdint.h>
#include <string.h>

#include "gradcheck.h"
#include "ops/ops.h"

typedef struct pool_case {
    pool2d_dims d;
    int kind; /* 0 max, 1 avg, 2 gap (uses B, C, H*W) */
    float *in, *out, *r;
    int32_t *arg;
} pool_case;

static int64_t pool_out_n(const pool_case *c) {
    return c->kind == 2 ? (int64_t)c->d.B * c->d.C : (int64_t)c->d.B * c->d.C * c->d.OH * c->d.OW;
}

static void pool_forward(pool_case *c) {
    if (c->kind == 0) herdi_ref_maxpool2d_forward(c->out, c->arg, c->in, &c->d);
    if (c->kind == 1) herdi_ref_avgpool2d_forward(c->out, c->in, &c->d);
    if (c->kind == 2) herdi_ref_gap_forward(c->out, c->in, c->d.B, c->d.C, c->d.H * c->d.W);
}

static void pool_backward(float *din, pool_case *c) {
    if (c->kind == 0) herdi_ref_maxpool2d_backward(din, c->r, c->arg, &c->d);
    if (c->kind == 1) herdi_ref_avgpool2d_backward(din, c->r, &c->d);
    if (c->kind == 2) herdi_ref_gap_backward(din, c->r, c->d.B, c->d.C, c->d.H * c->d.W);
}

static double pool_loss(void *ctx) {
    pool_case *c = ctx;
    pool_forward(c);
    return gc_project(c->out, c->r, pool_out_n(c));
}

/* Distinct values 0.05 apart in random order, so no window has a tie within the FD step;
 * all negative so a max that counted zero padding would be caught. */
static void fill_distinct_negative(herd_rng *rng, float *x, int64_t n) {
    for (int64_t i = 0; i < n; i++) x[i] = -0.1f - 0.05f * (float)i;
    for (int64_t i = n - 1; i > 0; i--) {
        int64_t j = herd_rng_below(rng, (uint32_t)(i + 1));
        float t = x[i];
        x[i] = x[j];
        x[j] = t;
    }
}

static void check_pool(int kind, int B, int C, int H, int W, int KH, int KW, int SH, int SW, int PH, int PW,
                       uint64_t seed) {
    static const char *names[] = {"maxpool2d", "avgpool2d", "gap"};
    pool_case c = {.d = {.B = B, .C = C, .H = H, .W = W, .KH = KH, .KW = KW, .SH = SH, .SW = SW, .PH = PH, .PW = PW},
                   .kind = kind};
    if (kind != 2) {
        CHECK(herdi_pool2d_dims_finish(&c.d), "pool dims B%d C%d %dx%d k%dx%d s%dx%d p%dx%d", B, C, H, W, KH, KW, SH, SW, PH,
              PW);
        printf("%s B=%d C=%d H=%d W=%d k=%dx%d s=%dx%d p=%dx%d -> %dx%d\n", names[kind], B, C, H, W, KH, KW, SH, SW,
               PH, PW, c.d.OH, c.d.OW);
    } else {
        printf("gap B=%d C=%d HW=%d\n", B, C, H * W);
    }
    const int64_t n_in = (int64_t)B * C * H * W, n_out = pool_out_n(&c);
    herd_rng rng;
    herd_rng_init(&rng, seed, 0);
    c.in = gc_alloc(n_in);
    c.out = gc_alloc(n_out);
    c.r = gc_alloc(n_out);
    c.arg = (int32_t *)herd_calloc_array((size_t)n_out, sizeof(int32_t));
    if (kind == 0) {
        fill_distinct_negative(&rng, c.in, n_in);
    } else {
        gc_fill(&rng, c.in, n_in, -1, 1);
    }
    gc_fill(&rng, c.r, n_out, -1, 1);
    pool_forward(&c);
    float *din = gc_alloc(n_in);
    pool_backward(din, &c);

    /* max pool is linear between ties (values are 0.05 apart, step 0.01); avg and gap are linear */
    const float eps = kind == 0 ? 0.01f : 0.25f;
    char what[64];
    snprintf(what, sizeof what, "%s din", names[kind]);
    gc_check(what, pool_loss, &c, c.in, din, n_in, eps, 1e-5, 1e-5);

    float *din2 = gc_alloc(n_in);
    memcpy(din2, din, sizeof(float) * n_in);
    pool_backward(din2, &c);
    gc_check_doubled(what, din, din2, n_in);
    pool_backward(NULL, &c); /* must not crash */

    if (kind == 0) {
        pool_forward(&c); /* the last finite-difference call left a perturbed output behind */
        /* the reported index holds the reported max and lies inside the input plane */
        int bad = 0;
        for (int64_t p = 0; p < (int64_t)B * C; p++) {
            for (int64_t o = 0; o < (int64_t)c.d.OH * c.d.OW; o++) {
                int32_t a = c.arg[p * c.d.OH * c.d.OW + o];
                if (a < 0 || a >= H * W || c.in[p * H * W + a] != c.out[p * c.d.OH * c.d.OW + o]) bad++;
            }
        }
        CHECK(bad == 0, "maxpool argmax: %d outputs whose argmax does not point at the max (padding never wins)", bad);
    }
    free(c.in), free(c.out), free(c.r), free(c.arg), free(din), free(din2);
}

static void check_rules(void) {
    /* ties go to the first element of the window in row-major order */
    pool2d_dims d = {.B = 1, .C = 1, .H = 4, .W = 4, .KH = 2, .KW = 2, .SH = 2, .SW = 2};
    CHECK(herdi_pool2d_dims_finish(&d), "4x4 k2 s2 dims");
    float in[16], out[4];
    int32_t arg[4];
    for (int i = 0; i < 16; i++) in[i] = 3.0f;
    herdi_ref_maxpool2d_forward(out, arg, in, &d);
    const int32_t first[4] = {0, 2, 8, 10};
    for (int i = 0; i < 4; i++) CHECK(arg[i] == first[i], "maxpool tie: window %d argmax %d, expected %d", i, arg[i], first[i]);

    /* count_include_pad: 2x2 ones, k2 s2 p1 -> each window holds one real pixel of four */
    pool2d_dims a = {.B = 1, .C = 1, .H = 2, .W = 2, .KH = 2, .KW = 2, .SH = 2, .SW = 2, .PH = 1, .PW = 1};
    CHECK(herdi_pool2d_dims_finish(&a) && a.OH == 2 && a.OW == 2, "avgpool p1 dims %dx%d, expected 2x2", a.OH, a.OW);
    float ones[4] = {1, 1, 1, 1}, avg[4];
    herdi_ref_avgpool2d_forward(avg, ones, &a);
    for (int i = 0; i < 4; i++) CHECK_CLOSE(avg[i], 0.25, 0, 0, "avgpool count_include_pad corner window");

    /* padding never wins even when every real value is negative */
    float neg[4] = {-4, -3, -2, -1}, mx[4];
    herdi_ref_maxpool2d_forward(mx, arg, neg, &a);
    for (int i = 0; i < 4; i++) CHECK_CLOSE(mx[i], neg[i], 0, 0, "maxpool with padding over negative values");

    pool2d_dims ok = {.B = 2, .C = 3, .H = 7, .W = 8, .KH = 3, .KW = 3, .SH = 2, .SW = 2, .PH = 1, .PW = 1};
    CHECK(herdi_pool2d_dims_finish(&ok) && ok.OH == 4 && ok.OW == 4, "7x8 k3 s2 p1: got %dx%d, expected 4x4", ok.OH, ok.OW);
    pool2d_dims bad[] = {
        {.B = 1, .C = 0, .H = 4, .W = 4, .KH = 2, .KW = 2, .SH = 2, .SW = 2},
        {.B = 1, .C = 1, .H = 4, .W = 4, .KH = 2, .KW = 2, .SH = 0, .SW = 2},
        {.B = 1, .C = 1, .H = 4, .W = 4, .KH = 2, .KW = 2, .SH = 2, .SW = 2, .PH = 2}, /* pad > kernel/2 */
        {.B = 1, .C = 1, .H = 4, .W = 4, .KH = 2, .KW = 2, .SH = 2, .SW = 2, .PW = -1},
        {.B = 1, .C = 1, .H = 1, .W = 4, .KH = 4, .KW = 2, .SH = 1, .SW = 1, .PH = 1}, /* kernel > padded input */
        {.B = 1, .C = 1, .H = 1 << 16, .W = 1 << 16, .KH = 2, .KW = 2, .SH = 2, .SW = 2}, /* h*W+w overflows int32 */
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        CHECK(herdi_pool2d_dims_finish(&bad[i]) == 0, "bad pool dims case %zu accepted", i);
    }
}

/* 21 planes (two groups of 8 and 5 alone) of 49 values: the bits of one plane at a time in order
 * (catches a plane read at the wrong place or a group's tail mishandled; a sum in double of 49
 * floats rounds to the same float in almost any order, so this cannot see an order change). */
static void check_gap_bits(void) {
    enum { P = 21, HW = 49 };
    float in[P * HW], out[P], want[P];
    uint32_t s = 12345;
    for (int i = 0; i < P * HW; i++) {
        s = s * 1664525u + 1013904223u;
        in[i] = (float)((int32_t)s >> 8) * (i % 7 == 0 ? 1e3f : i % 3 == 0 ? 1e-4f : 1.0f);
    }
    for (int p = 0; p < P; p++) {
        double acc = 0.0;
        for (int i = 0; i < HW; i++) acc += in[p * HW + i];
        want[p] = (float)(acc / HW);
    }
    herdi_ref_gap_forward(out, in, 3, 7, HW);
    CHECK(!memcmp(out, want, sizeof out), "gap forward: not each plane's in-order sum");
}

int main(void) {
    check_gap_bits();
    check_rules();
    for (int kind = 0; kind < 2; kind++) {
        check_pool(kind, 1, 1, 5, 5, 2, 2, 2, 2, 0, 0, 10 + kind);
        check_pool(kind, 2, 3, 7, 6, 3, 3, 2, 2, 1, 1, 20 + kind);
        check_pool(kind, 1, 2, 6, 9, 3, 2, 1, 2, 1, 1, 30 + kind);
        check_pool(kind, 3, 1, 4, 4, 2, 2, 1, 1, 1, 1, 40 + kind);
        check_pool(kind, 2, 2, 5, 7, 3, 3, 3, 3, 0, 0, 50 + kind);
    }
    check_pool(2, 1, 1, 3, 3, 0, 0, 0, 0, 0, 0, 60);
    check_pool(2, 3, 4, 5, 7, 0, 0, 0, 0, 0, 0, 61);
    check_pool(2, 2, 5, 1, 1, 0, 0, 0, 0, 0, 0, 62);
    return check_summary();
}
