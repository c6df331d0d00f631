/* Checks every activation's backward and softmax's backward against central differences of
 * L = sum(f(in) * r), plus known values, overflow-free extremes, accumulation and NULL din. */
#include <stdint.h>

#include "gradcheck.h"
#include "ops/ops.h"

typedef struct act_case {
    int64_t n;
    herd_act act;
    float alpha;
    int softmax_K; /* > 0: softmax over rows of K instead of an activation */
    float *in, *out, *r;
} act_case;

static void act_forward(act_case *c) {
    if (c->softmax_K) herdi_ref_softmax_forward(c->out, c->in, (int)(c->n / c->softmax_K), c->softmax_K);
    else herdi_ref_act_forward(c->out, c->in, c->n, c->act, c->alpha);
}

static void act_backward(float *din, act_case *c) {
    if (c->softmax_K) herdi_ref_softmax_backward(din, c->r, c->out, (int)(c->n / c->softmax_K), c->softmax_K);
    else herdi_ref_act_backward(din, c->r, c->in, c->out, c->n, c->act, c->alpha);
}

static double act_loss(void *ctx) {
    act_case *c = ctx;
    act_forward(c);
    return gc_project(c->out, c->r, c->n);
}

static void check_act_grad(const char *name, herd_act act, float alpha, int softmax_K, int64_t n, uint64_t seed) {
    printf("%s n=%lld\n", name, (long long)n);
    act_case c = {.n = n, .act = act, .alpha = alpha, .softmax_K = softmax_K};
    herd_rng rng;
    herd_rng_init(&rng, seed, 0);
    c.in = gc_alloc(n);
    c.out = gc_alloc(n);
    c.r = gc_alloc(n);
    gc_fill(&rng, c.in, n, -3, 3);
    /* keep relu-like inputs off the kinks at 0, +-3 and 6 by more than the step */
    for (int64_t i = 0; i < n; i++) {
        if (fabsf(c.in[i]) < 0.05f) c.in[i] = c.in[i] < 0 ? -0.05f - c.in[i] : 0.05f + c.in[i];
        if (fabsf(fabsf(c.in[i]) - 3.0f) < 0.05f) c.in[i] *= 0.95f;
        if (act == HERD_ACT_RELU6) c.in[i] *= 2.5f; /* reach past 6 */
        if (fabsf(c.in[i] - 6.0f) < 0.05f) c.in[i] = 6.1f;
    }
    gc_fill(&rng, c.r, n, -1, 1);
    act_forward(&c);
    float *din = gc_alloc(n), *din2 = gc_alloc(n);
    act_backward(din, &c);
    char what[64];
    snprintf(what, sizeof what, "%s din", name);
    gc_check(what, act_loss, &c, c.in, din, n, 1e-2f, 1e-4, 1e-3);
    act_forward(&c);
    memcpy(din2, din, sizeof(float) * n);
    act_backward(din2, &c);
    gc_check_doubled(what, din, din2, n);
    act_backward(NULL, &c);
    free(c.in), free(c.out), free(c.r), free(din), free(din2);
}

static float act1(herd_act act, float alpha, float x) {
    float y;
    herdi_ref_act_forward(&y, &x, 1, act, alpha);
    return y;
}

static void check_values(void) {
    CHECK_CLOSE(act1(HERD_ACT_RELU, 0, -2.0f), 0.0, 0, 0, "relu(-2)");
    CHECK_CLOSE(act1(HERD_ACT_RELU, 0, 2.5f), 2.5, 0, 0, "relu(2.5)");
    CHECK_CLOSE(act1(HERD_ACT_LEAKY_RELU, 0.1f, -2.0f), -0.2, 1e-7, 1e-6, "leaky_relu(-2, 0.1)");
    CHECK_CLOSE(act1(HERD_ACT_SIGMOID, 0, 0.0f), 0.5, 0, 0, "sigmoid(0)");
    CHECK_CLOSE(act1(HERD_ACT_SIGMOID, 0, 2.0f), 0.8807970779778823, 0, 1e-7, "sigmoid(2)");
    CHECK_CLOSE(act1(HERD_ACT_SIGMOID, 0, -200.0f), 0.0, 1e-30, 0, "sigmoid(-200) underflows to 0, not NaN");
    CHECK_CLOSE(act1(HERD_ACT_SIGMOID, 0, 200.0f), 1.0, 0, 0, "sigmoid(200)");
    CHECK_CLOSE(act1(HERD_ACT_TANH, 0, 0.5f), 0.46211715726000974, 0, 1e-7, "tanh(0.5)");
    CHECK_CLOSE(act1(HERD_ACT_GELU, 0, 1.0f), 0.8413447460685429, 0, 1e-7, "gelu(1) exact erf form");
    CHECK_CLOSE(act1(HERD_ACT_GELU, 0, -1.0f), -0.15865525393145707, 0, 1e-6, "gelu(-1) exact erf form");
    /* GPT-2's tanh form (PyTorch F.gelu(x, approximate='tanh')) */
    CHECK_CLOSE(act1(HERD_ACT_GELU_TANH, 0, 1.0f), 0.8411919906082768, 0, 1e-7, "gelu_tanh(1)");
    CHECK_CLOSE(act1(HERD_ACT_GELU_TANH, 0, -2.5f), -0.015084, 1e-6, 1e-4, "gelu_tanh(-2.5)");
    CHECK_CLOSE(act1(HERD_ACT_NONE, 0, -1.25f), -1.25, 0, 0, "identity");
    CHECK_CLOSE(act1(HERD_ACT_RELU6, 0, 7.0f), 6.0, 0, 0, "relu6(7)");
    CHECK_CLOSE(act1(HERD_ACT_RELU6, 0, -1.0f), 0.0, 0, 0, "relu6(-1)");
    CHECK_CLOSE(act1(HERD_ACT_HARDSIGMOID, 0, 1.5f), 0.75, 0, 1e-7, "hardsigmoid(1.5)");
    CHECK_CLOSE(act1(HERD_ACT_HARDSIGMOID, 0, -4.0f), 0.0, 0, 0, "hardsigmoid(-4)");
    CHECK_CLOSE(act1(HERD_ACT_HARDSWISH, 0, 1.5f), 1.125, 0, 1e-7, "hardswish(1.5)");
    CHECK_CLOSE(act1(HERD_ACT_HARDSWISH, 0, 4.0f), 4.0, 0, 0, "hardswish(4)");
    CHECK_CLOSE(act1(HERD_ACT_SILU, 0, 2.0f), 2.0 * 0.8807970779778823, 0, 1e-7, "silu(2)");
    CHECK_CLOSE(act1(HERD_ACT_SILU, 0, -200.0f), 0.0, 1e-30, 0, "silu(-200) underflows to 0, not NaN");

    /* relu's slope at exactly 0 is 0, leaky relu's is alpha (PyTorch) */
    float x0 = 0.0f, y0, g1 = 1.0f, d = 0.0f;
    herdi_ref_act_forward(&y0, &x0, 1, HERD_ACT_RELU, 0);
    herdi_ref_act_backward(&d, &g1, &x0, &y0, 1, HERD_ACT_RELU, 0);
    CHECK_CLOSE(d, 0.0, 0, 0, "relu slope at 0");
    d = 0.0f;
    herdi_ref_act_forward(&y0, &x0, 1, HERD_ACT_LEAKY_RELU, 0.2f);
    herdi_ref_act_backward(&d, &g1, &x0, &y0, 1, HERD_ACT_LEAKY_RELU, 0.2f);
    CHECK_CLOSE(d, 0.2, 1e-7, 0, "leaky relu slope at 0");

    /* softmax of huge logits: subtracting the max keeps exp finite */
    float big[3] = {1000.0f, 1001.0f, 1002.0f}, p[3];
    herdi_ref_softmax_forward(p, big, 1, 3);
    const double e0 = exp(-2.0), e1 = exp(-1.0), s = e0 + e1 + 1.0;
    CHECK_CLOSE(p[0], e0 / s, 0, 1e-6, "softmax(1000,1001,1002)[0]");
    CHECK_CLOSE(p[1], e1 / s, 0, 1e-6, "softmax(1000,1001,1002)[1]");
    CHECK_CLOSE(p[2], 1.0 / s, 0, 1e-6, "softmax(1000,1001,1002)[2]");
}

int main(void) {
    check_values();
    check_act_grad("identity", HERD_ACT_NONE, 0, 0, 17, 1);
    check_act_grad("relu", HERD_ACT_RELU, 0, 0, 101, 2);
    check_act_grad("leaky_relu", HERD_ACT_LEAKY_RELU, 0.01f, 0, 101, 3);
    check_act_grad("leaky_relu(0.3)", HERD_ACT_LEAKY_RELU, 0.3f, 0, 33, 4);
    check_act_grad("sigmoid", HERD_ACT_SIGMOID, 0, 0, 101, 5);
    check_act_grad("tanh", HERD_ACT_TANH, 0, 0, 101, 6);
    check_act_grad("gelu", HERD_ACT_GELU, 0, 0, 101, 7);
    check_act_grad("gelu_tanh", HERD_ACT_GELU_TANH, 0, 0, 101, 16);
    check_act_grad("relu6", HERD_ACT_RELU6, 0, 0, 101, 12);
    check_act_grad("hardsigmoid", HERD_ACT_HARDSIGMOID, 0, 0, 101, 13);
    check_act_grad("hardswish", HERD_ACT_HARDSWISH, 0, 0, 101, 14);
    check_act_grad("silu", HERD_ACT_SILU, 0, 0, 101, 15);
    check_act_grad("softmax B=1 K=1", HERD_ACT_NONE, 0, 1, 1, 8);
    check_act_grad("softmax B=1 K=7", HERD_ACT_NONE, 0, 7, 7, 9);
    check_act_grad("softmax B=4 K=10", HERD_ACT_NONE, 0, 10, 40, 10);
    check_act_grad("softmax B=3 K=2", HERD_ACT_NONE, 0, 2, 6, 11);
    return check_summary();
}
