/* Test helper for tests/test_ops_vs_torch.py: runs every reference op on seeded random data and
 * writes inputs, weights, outputs and gradients as .npy files plus a manifest.txt naming each case. */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "herd/core.h"
#include "ops/ops.h"

static const char *g_dir;
static FILE *g_manifest;
static herd_rng g_rng;

static void die(const char *what) {
    fprintf(stderr, "dump_ops: %s: %s\n", what, strerror(errno));
    exit(1);
}

static void *xcalloc(int64_t n, size_t size) {
    void *p = herd_calloc_array((size_t)(n > 0 ? n : 1), size);
    if (!p) die("out of memory");
    return p;
}

static float *rand_floats(int64_t n, float lo, float hi) {
    float *x = xcalloc(n, sizeof(float));
    for (int64_t i = 0; i < n; i++) x[i] = lo + (hi - lo) * herd_rng_uniform(&g_rng);
    return x;
}

static float *zeros(int64_t n) { return xcalloc(n, sizeof(float)); }

/* .npy version 1.0: magic, version, little-endian u16 header length, a Python dict literal padded
 * with spaces to a 64-byte boundary and ended by '\n', then the raw little-endian data. */
static void write_npy(const char *cas, const char *name, const void *data, const char *descr, int ndim,
                      const int64_t *shape) {
    char path[4096], header[512], dims[256] = "";
    snprintf(path, sizeof path, "%s/%s_%s.npy", g_dir, cas, name);
    int64_t count = 1;
    size_t used = 0;
    for (int i = 0; i < ndim; i++) {
        used += (size_t)snprintf(dims + used, sizeof dims - used, "%lld,%s", (long long)shape[i],
                                 i + 1 < ndim ? " " : "");
        count *= shape[i];
    }
    int len = snprintf(header, sizeof header, "{'descr': '%s', 'fortran_order': False, 'shape': (%s), }", descr, dims);
    int total = 10 + len + 1;
    int pad = (64 - total % 64) % 64;
    memset(header + len, ' ', (size_t)pad);
    header[len + pad] = '\n';
    uint16_t hlen = (uint16_t)(len + pad + 1);
    FILE *f = fopen(path, "wb");
    if (!f) die(path);
    const unsigned char pre[10] = {0x93, 'N', 'U', 'M', 'P', 'Y', 1, 0, (unsigned char)(hlen & 0xff),
                                   (unsigned char)(hlen >> 8)};
    fwrite(pre, 1, 10, f);
    fwrite(header, 1, hlen, f);
    /* both element types are 4 bytes; emit little-endian whatever the host order */
    const unsigned char *p = data;
    for (int64_t i = 0; i < count; i++) {
        uint32_t v;
        memcpy(&v, p + 4 * i, 4);
        unsigned char b[4] = {(unsigned char)v, (unsigned char)(v >> 8), (unsigned char)(v >> 16),
                              (unsigned char)(v >> 24)};
        fwrite(b, 1, 4, f);
    }
    if (fclose(f) != 0) die(path);
}

static void save(const char *cas, const char *name, const float *x, int ndim, int64_t d0, int64_t d1, int64_t d2,
                 int64_t d3) {
    const int64_t shape[4] = {d0, d1, d2, d3};
    write_npy(cas, name, x, "<f4", ndim, shape);
}

static void save_i32(const char *cas, const char *name, const int32_t *x, int ndim, int64_t d0, int64_t d1,
                     int64_t d2, int64_t d3) {
    const int64_t shape[4] = {d0, d1, d2, d3};
    write_npy(cas, name, x, "<i4", ndim, shape);
}

static void conv_case_gd(const char *cas, int B, int C, int H, int W, int OC, int KH, int KW, int SH, int SW, int PH,
                         int PW, int bias, int G, int DH, int DW) {
    conv2d_dims d = {.B = B, .C = C, .H = H, .W = W, .OC = OC, .KH = KH, .KW = KW, .SH = SH, .SW = SW, .PH = PH,
                     .PW = PW, .G = G, .DH = DH, .DW = DW};
    if (!herdi_conv2d_dims_finish(&d)) die("conv dims");
    int64_t n_in = (int64_t)B * C * H * W, n_w = (int64_t)OC * (C / d.G) * KH * KW, n_out = (int64_t)B * OC * d.OH * d.OW;
    float *in = rand_floats(n_in, -1, 1), *w = rand_floats(n_w, -1, 1), *b = bias ? rand_floats(OC, -1, 1) : NULL;
    float *dout = rand_floats(n_out, -1, 1), *out = zeros(n_out), *din = zeros(n_in), *dw = zeros(n_w),
          *db = zeros(OC);
    herdi_ref_conv2d_forward(out, in, w, b, &d);
    herdi_ref_conv2d_backward(din, dw, bias ? db : NULL, dout, in, w, &d);
    fprintf(g_manifest, "conv2d %s stride=%d,%d padding=%d,%d bias=%d groups=%d dilation=%d,%d\n", cas, SH, SW, PH, PW,
            bias, d.G, d.DH, d.DW);
    save(cas, "in", in, 4, B, C, H, W);
    save(cas, "w", w, 4, OC, C / d.G, KH, KW);
    if (bias) save(cas, "b", b, 1, OC, 0, 0, 0);
    save(cas, "dout", dout, 4, B, OC, d.OH, d.OW);
    save(cas, "out", out, 4, B, OC, d.OH, d.OW);
    save(cas, "din", din, 4, B, C, H, W);
    save(cas, "dw", dw, 4, OC, C / d.G, KH, KW);
    if (bias) save(cas, "db", db, 1, OC, 0, 0, 0);
    free(in), free(w), free(b), free(dout), free(out), free(din), free(dw), free(db);
}

static void conv_case(const char *cas, int B, int C, int H, int W, int OC, int KH, int KW, int SH, int SW, int PH,
                      int PW, int bias) {
    conv_case_gd(cas, B, C, H, W, OC, KH, KW, SH, SW, PH, PW, bias, 1, 1, 1);
}

static void pool_case(const char *cas, int is_max, int B, int C, int H, int W, int KH, int KW, int SH, int SW,
                      int PH, int PW) {
    pool2d_dims d = {.B = B, .C = C, .H = H, .W = W, .KH = KH, .KW = KW, .SH = SH, .SW = SW, .PH = PH, .PW = PW};
    if (!herdi_pool2d_dims_finish(&d)) die("pool dims");
    int64_t n_in = (int64_t)B * C * H * W, n_out = (int64_t)B * C * d.OH * d.OW;
    /* continuous random values: ties in a max window have probability ~0 */
    float *in = rand_floats(n_in, -2, 1), *dout = rand_floats(n_out, -1, 1), *out = zeros(n_out), *din = zeros(n_in);
    int32_t *arg = xcalloc(n_out, sizeof(int32_t));
    if (is_max) {
        herdi_ref_maxpool2d_forward(out, arg, in, &d);
        herdi_ref_maxpool2d_backward(din, dout, arg, &d);
    } else {
        herdi_ref_avgpool2d_forward(out, in, &d);
        herdi_ref_avgpool2d_backward(din, dout, &d);
    }
    fprintf(g_manifest, "%s %s kernel=%d,%d stride=%d,%d padding=%d,%d\n", is_max ? "maxpool2d" : "avgpool2d", cas,
            KH, KW, SH, SW, PH, PW);
    save(cas, "in", in, 4, B, C, H, W);
    save(cas, "dout", dout, 4, B, C, d.OH, d.OW);
    save(cas, "out", out, 4, B, C, d.OH, d.OW);
    save(cas, "din", din, 4, B, C, H, W);
    if (is_max) save_i32(cas, "argmax", arg, 4, B, C, d.OH, d.OW);
    free(in), free(dout), free(out), free(din), free(arg);
}

static void gap_case(const char *cas, int B, int C, int H, int W) {
    int64_t n_in = (int64_t)B * C * H * W;
    float *in = rand_floats(n_in, -1, 1), *dout = rand_floats((int64_t)B * C, -1, 1), *out = zeros((int64_t)B * C),
          *din = zeros(n_in);
    herdi_ref_gap_forward(out, in, B, C, H * W);
    herdi_ref_gap_backward(din, dout, B, C, H * W);
    fprintf(g_manifest, "gap %s\n", cas);
    save(cas, "in", in, 4, B, C, H, W);
    save(cas, "dout", dout, 2, B, C, 0, 0);
    save(cas, "out", out, 2, B, C, 0, 0);
    save(cas, "din", din, 4, B, C, H, W);
    free(in), free(dout), free(out), free(din);
}

static void dense_case(const char *cas, int B, int IN, int OUT, int bias) {
    float *in = rand_floats((int64_t)B * IN, -1, 1), *w = rand_floats((int64_t)OUT * IN, -1, 1);
    float *b = bias ? rand_floats(OUT, -1, 1) : NULL, *dout = rand_floats((int64_t)B * OUT, -1, 1);
    float *out = zeros((int64_t)B * OUT), *din = zeros((int64_t)B * IN), *dw = zeros((int64_t)OUT * IN),
          *db = zeros(OUT);
    herdi_ref_dense_forward(out, in, w, b, B, IN, OUT);
    herdi_ref_dense_backward(din, dw, bias ? db : NULL, dout, in, w, B, IN, OUT);
    fprintf(g_manifest, "dense %s bias=%d\n", cas, bias);
    save(cas, "in", in, 2, B, IN, 0, 0);
    save(cas, "w", w, 2, OUT, IN, 0, 0);
    if (bias) save(cas, "b", b, 1, OUT, 0, 0, 0);
    save(cas, "dout", dout, 2, B, OUT, 0, 0);
    save(cas, "out", out, 2, B, OUT, 0, 0);
    save(cas, "din", din, 2, B, IN, 0, 0);
    save(cas, "dw", dw, 2, OUT, IN, 0, 0);
    if (bias) save(cas, "db", db, 1, OUT, 0, 0, 0);
    free(in), free(w), free(b), free(dout), free(out), free(din), free(dw), free(db);
}

/* HW = H*W; ndim 2 saves (B, C) tensors as after a dense layer (H = W = 1) */
static void batchnorm_case(const char *cas, int ndim, int B, int C, int H, int W) {
    const float momentum = 0.1f, eps = 1e-5f;
    int HW = H * W;
    int64_t n = (int64_t)B * C * HW;
    float *in = rand_floats(n, -1, 3), *gamma = rand_floats(C, 0.5f, 1.5f), *beta = rand_floats(C, -1, 1);
    float *rm0 = rand_floats(C, -0.5f, 0.5f), *rv0 = rand_floats(C, 0.5f, 2.0f), *rm = zeros(C), *rv = zeros(C);
    memcpy(rm, rm0, sizeof(float) * C);
    memcpy(rv, rv0, sizeof(float) * C);
    float *dout = rand_floats(n, -1, 1), *out = zeros(n), *mean = zeros(C), *rstd = zeros(C), *din = zeros(n),
          *dg = zeros(C), *dbeta = zeros(C), *eval = zeros(n);
    herdi_ref_batchnorm_forward_train(out, mean, rstd, rm, rv, in, gamma, beta, B, C, HW, momentum, eps);
    herdi_ref_batchnorm_backward(din, dg, dbeta, dout, in, mean, rstd, gamma, B, C, HW);
    /* eval with the running stats we started from */
    herdi_ref_batchnorm_forward_eval(eval, in, gamma, beta, rm0, rv0, B, C, HW, eps);
    fprintf(g_manifest, "batchnorm %s momentum=%.9g eps=%.9g\n", cas, momentum, eps);
    int nd = ndim == 2 ? 2 : 4;
    save(cas, "in", in, nd, B, C, H, W);
    save(cas, "gamma", gamma, 1, C, 0, 0, 0);
    save(cas, "beta", beta, 1, C, 0, 0, 0);
    save(cas, "running_mean0", rm0, 1, C, 0, 0, 0);
    save(cas, "running_var0", rv0, 1, C, 0, 0, 0);
    save(cas, "running_mean1", rm, 1, C, 0, 0, 0);
    save(cas, "running_var1", rv, 1, C, 0, 0, 0);
    save(cas, "mean", mean, 1, C, 0, 0, 0);
    save(cas, "rstd", rstd, 1, C, 0, 0, 0);
    save(cas, "out", out, nd, B, C, H, W);
    save(cas, "eval_out", eval, nd, B, C, H, W);
    save(cas, "dout", dout, nd, B, C, H, W);
    save(cas, "din", din, nd, B, C, H, W);
    save(cas, "dgamma", dg, 1, C, 0, 0, 0);
    save(cas, "dbeta", dbeta, 1, C, 0, 0, 0);
    free(in), free(gamma), free(beta), free(rm0), free(rv0), free(rm), free(rv), free(dout), free(out), free(mean),
        free(rstd), free(din), free(dg), free(dbeta), free(eval);
}

static void act_case(const char *cas, const char *name, herd_act act, float alpha, int B, int K) {
    int64_t n = (int64_t)B * K;
    float *in = rand_floats(n, -4, 4), *dout = rand_floats(n, -1, 1), *out = zeros(n), *din = zeros(n);
    herdi_ref_act_forward(out, in, n, act, alpha);
    herdi_ref_act_backward(din, dout, in, out, n, act, alpha);
    fprintf(g_manifest, "act %s name=%s alpha=%.9g\n", cas, name, alpha);
    save(cas, "in", in, 2, B, K, 0, 0);
    save(cas, "dout", dout, 2, B, K, 0, 0);
    save(cas, "out", out, 2, B, K, 0, 0);
    save(cas, "din", din, 2, B, K, 0, 0);
    free(in), free(dout), free(out), free(din);
}

static void softmax_case(const char *cas, int B, int K, float offset) {
    int64_t n = (int64_t)B * K;
    float *in = rand_floats(n, offset - 5, offset + 5), *dout = rand_floats(n, -1, 1), *out = zeros(n),
          *din = zeros(n);
    herdi_ref_softmax_forward(out, in, B, K);
    herdi_ref_softmax_backward(din, dout, out, B, K);
    fprintf(g_manifest, "softmax %s\n", cas);
    save(cas, "in", in, 2, B, K, 0, 0);
    save(cas, "dout", dout, 2, B, K, 0, 0);
    save(cas, "out", out, 2, B, K, 0, 0);
    save(cas, "din", din, 2, B, K, 0, 0);
    free(in), free(dout), free(out), free(din);
}

static void xent_case(const char *cas, int B, int K, float spread) {
    int64_t n = (int64_t)B * K;
    float *logits = rand_floats(n, -spread, spread), *probs = zeros(n), *dlogits = zeros(n);
    int32_t *labels = xcalloc(B, sizeof(int32_t));
    for (int b = 0; b < B; b++) labels[b] = (int32_t)herd_rng_below(&g_rng, (uint32_t)K);
    float loss = herdi_ref_softmax_xent_forward(probs, logits, labels, B, K, NULL);
    herdi_ref_softmax_xent_backward(dlogits, probs, labels, B, K, NULL, 1.0f / B);
    fprintf(g_manifest, "softmax_xent %s scale=1/B\n", cas);
    save(cas, "logits", logits, 2, B, K, 0, 0);
    save_i32(cas, "labels", labels, 1, B, 0, 0, 0);
    save(cas, "probs", probs, 2, B, K, 0, 0);
    save(cas, "loss", &loss, 1, 1, 0, 0, 0);
    save(cas, "dlogits", dlogits, 2, B, K, 0, 0);
    free(logits), free(probs), free(dlogits), free(labels);
}

static void mse_case(const char *cas, int B, int K) {
    int64_t n = (int64_t)B * K;
    float *pred = rand_floats(n, -2, 2), *target = rand_floats(n, -2, 2), *dpred = zeros(n);
    float loss = herdi_ref_mse_forward(pred, target, n);
    herdi_ref_mse_backward(dpred, pred, target, n, 1.0f);
    fprintf(g_manifest, "mse %s scale=1\n", cas);
    save(cas, "pred", pred, 2, B, K, 0, 0);
    save(cas, "target", target, 2, B, K, 0, 0);
    save(cas, "loss", &loss, 1, 1, 0, 0, 0);
    save(cas, "dpred", dpred, 2, B, K, 0, 0);
    free(pred), free(target), free(dpred);
}

static void dropout_case(const char *cas, int B, int K, float p) {
    int64_t n = (int64_t)B * K;
    float *in = rand_floats(n, -1, 1), *dout = rand_floats(n, -1, 1), *out = zeros(n), *mask = zeros(n),
          *din = zeros(n);
    herd_rng drop;
    herd_rng_init(&drop, 1234, 7);
    herdi_ref_dropout_forward(out, mask, in, n, p, &drop);
    herdi_ref_dropout_backward(din, dout, mask, n);
    fprintf(g_manifest, "dropout %s p=%.9g\n", cas, p);
    save(cas, "in", in, 2, B, K, 0, 0);
    save(cas, "mask", mask, 2, B, K, 0, 0);
    save(cas, "dout", dout, 2, B, K, 0, 0);
    save(cas, "out", out, 2, B, K, 0, 0);
    save(cas, "din", din, 2, B, K, 0, 0);
    free(in), free(dout), free(out), free(mask), free(din);
}

static void add_case(const char *cas, int B, int K) {
    int64_t n = (int64_t)B * K;
    float *a = rand_floats(n, -1, 1), *b = rand_floats(n, -1, 1), *dout = rand_floats(n, -1, 1), *out = zeros(n);
    float *da = zeros(n), *db = zeros(n);
    herdi_ref_add_forward(out, a, b, n);
    herdi_ref_accumulate(da, dout, n);
    herdi_ref_accumulate(db, dout, n);
    fprintf(g_manifest, "add %s\n", cas);
    save(cas, "a", a, 2, B, K, 0, 0);
    save(cas, "b", b, 2, B, K, 0, 0);
    save(cas, "dout", dout, 2, B, K, 0, 0);
    save(cas, "out", out, 2, B, K, 0, 0);
    save(cas, "da", da, 2, B, K, 0, 0);
    save(cas, "db", db, 2, B, K, 0, 0);
    free(a), free(b), free(dout), free(out), free(da), free(db);
}

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: dump_ops OUTPUT_DIR\n");
        return 2;
    }
    g_dir = argv[1];
    char path[4096];
    snprintf(path, sizeof path, "%s/manifest.txt", g_dir);
    g_manifest = fopen(path, "w");
    if (!g_manifest) die(path);
    herd_rng_init(&g_rng, 20240601, 0);

    conv_case("conv_s1p1", 2, 3, 7, 6, 4, 3, 3, 1, 1, 1, 1, 1);
    conv_case("conv_s2p1_rect", 1, 2, 9, 8, 3, 3, 2, 2, 2, 1, 0, 1);
    conv_case("conv_k5s2p2_nobias", 3, 4, 8, 8, 2, 5, 5, 2, 2, 2, 2, 0);
    conv_case_gd("conv_depthwise_s2", 2, 4, 9, 8, 4, 3, 3, 2, 2, 1, 1, 1, 4, 1, 1);
    conv_case_gd("conv_groups2_mult", 2, 4, 7, 7, 6, 3, 3, 1, 1, 1, 1, 0, 2, 1, 1);
    conv_case_gd("conv_dilated", 2, 3, 11, 10, 4, 3, 3, 1, 2, 2, 2, 1, 1, 2, 3);
    conv_case("conv_1x1", 2, 5, 6, 7, 3, 1, 1, 1, 1, 0, 0, 1);
    conv_case("conv_s3x2_wide", 2, 16, 12, 10, 8, 3, 3, 3, 2, 1, 1, 1);
    pool_case("maxpool_k2s2", 1, 2, 3, 6, 6, 2, 2, 2, 2, 0, 0);
    pool_case("maxpool_k3s2p1", 1, 1, 2, 7, 5, 3, 3, 2, 2, 1, 1);
    pool_case("maxpool_k3x2_s1x2_p1", 1, 2, 2, 5, 8, 3, 2, 1, 2, 1, 1);
    pool_case("avgpool_k2s2", 0, 2, 3, 6, 6, 2, 2, 2, 2, 0, 0);
    pool_case("avgpool_k3s2p1", 0, 1, 2, 7, 5, 3, 3, 2, 2, 1, 1);
    pool_case("avgpool_k3x2_s1x2_p1", 0, 2, 2, 5, 8, 3, 2, 1, 2, 1, 1);
    gap_case("gap_5x7", 2, 3, 5, 7);
    gap_case("gap_1x1", 3, 4, 1, 1);
    dense_case("dense_bias", 4, 7, 5, 1);
    dense_case("dense_nobias_b1", 1, 16, 3, 0);
    dense_case("dense_wide", 8, 300, 10, 1);
    batchnorm_case("bn_4d", 4, 4, 3, 5, 5);
    batchnorm_case("bn_2d", 2, 8, 6, 1, 1);
    batchnorm_case("bn_4d_b1", 4, 1, 2, 3, 4);
    act_case("act_relu", "relu", HERD_ACT_RELU, 0.0f, 3, 17);
    act_case("act_leaky_relu", "leaky_relu", HERD_ACT_LEAKY_RELU, 0.1f, 3, 17);
    act_case("act_sigmoid", "sigmoid", HERD_ACT_SIGMOID, 0.0f, 3, 17);
    act_case("act_tanh", "tanh", HERD_ACT_TANH, 0.0f, 3, 17);
    act_case("act_gelu", "gelu", HERD_ACT_GELU, 0.0f, 3, 17);
    act_case("act_gelu_tanh", "gelu_tanh", HERD_ACT_GELU_TANH, 0.0f, 3, 17);
    act_case("act_none", "none", HERD_ACT_NONE, 0.0f, 2, 5);
    act_case("act_relu6", "relu6", HERD_ACT_RELU6, 0.0f, 3, 17);
    act_case("act_hardsigmoid", "hardsigmoid", HERD_ACT_HARDSIGMOID, 0.0f, 3, 17);
    act_case("act_hardswish", "hardswish", HERD_ACT_HARDSWISH, 0.0f, 3, 17);
    act_case("act_silu", "silu", HERD_ACT_SILU, 0.0f, 3, 17);
    softmax_case("softmax_small", 4, 10, 0.0f);
    softmax_case("softmax_offset", 3, 7, 80.0f);
    xent_case("xent_10", 6, 10, 3.0f);
    xent_case("xent_wide_spread", 4, 5, 40.0f);
    xent_case("xent_b1", 1, 3, 1.0f);
    mse_case("mse_5x7", 5, 7);
    mse_case("mse_1", 1, 1);
    dropout_case("dropout_p03", 4, 50, 0.3f);
    dropout_case("dropout_p0", 2, 10, 0.0f);
    add_case("add", 3, 11);

    if (fclose(g_manifest) != 0) die(path);
    return 0;
}
