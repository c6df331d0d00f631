/* Checks the losses: softmax cross-entropy and MSE backward against central differences of the
 * returned mean loss, the probabilities, hand values, stability for huge logits, scale, accumulation. */
#include <stdint.h>

#include "gradcheck.h"
#include "ops/ops.h"

typedef struct loss_case {
    int B, K;       /* xent: logits (B,K); mse: n = B*K */
    int mse;
    float *x, *probs, *target;
    int32_t *labels;
} loss_case;

static double loss_value(void *ctx) {
    loss_case *c = ctx;
    if (c->mse) return herdi_ref_mse_forward(c->x, c->target, (int64_t)c->B * c->K);
    return herdi_ref_softmax_xent_forward(c->probs, c->x, c->labels, c->B, c->K, NULL);
}

static void check_loss_grad(int mse, int B, int K, uint64_t seed) {
    printf("%s B=%d K=%d\n", mse ? "mse" : "softmax_xent", B, K);
    loss_case c = {.B = B, .K = K, .mse = mse};
    const int64_t n = (int64_t)B * K;
    herd_rng rng;
    herd_rng_init(&rng, seed, 0);
    c.x = gc_alloc(n);
    c.probs = gc_alloc(n);
    c.target = gc_alloc(n);
    c.labels = (int32_t *)herd_calloc_array((size_t)B, sizeof(int32_t));
    gc_fill(&rng, c.x, n, -2, 2);
    gc_fill(&rng, c.target, n, -2, 2);
    for (int b = 0; b < B; b++) c.labels[b] = (int32_t)herd_rng_below(&rng, (uint32_t)K);
    loss_value(&c);
    float *g = gc_alloc(n), *g2 = gc_alloc(n);
    /* scale 1/B turns the per-row terms into the gradient of the mean loss; mse already divides by n */
    if (mse) herdi_ref_mse_backward(g, c.x, c.target, n, 1.0f);
    else herdi_ref_softmax_xent_backward(g, c.probs, c.labels, B, K, NULL, 1.0f / B);

    /* the loss comes back as one float, so its rounding (~6e-8 relative) divided by the step limits
     * the accuracy: mse is quadratic (central differences are exact for any step), xent is smooth */
    const char *what = mse ? "mse dpred" : "softmax_xent dlogits";
    gc_check(what, loss_value, &c, c.x, g, n, mse ? 0.25f : 0.02f, 3e-5, 1e-3);

    loss_value(&c);
    if (!mse) {
        /* probabilities are the row softmax */
        float *sm = gc_alloc(n);
        herdi_ref_softmax_forward(sm, c.x, B, K);
        for (int64_t i = 0; i < n; i++) CHECK_CLOSE(c.probs[i], sm[i], 0, 1e-6, "softmax_xent probs vs softmax");
        free(sm);
    }
    memcpy(g2, g, sizeof(float) * n);
    if (mse) herdi_ref_mse_backward(g2, c.x, c.target, n, 1.0f);
    else herdi_ref_softmax_xent_backward(g2, c.probs, c.labels, B, K, NULL, 1.0f / B);
    gc_check_doubled(what, g, g2, n);

    /* scale multiplies the gradient (e.g. loss scaling or 1/world) */
    float *g3 = gc_alloc(n);
    if (mse) herdi_ref_mse_backward(g3, c.x, c.target, n, 0.5f);
    else herdi_ref_softmax_xent_backward(g3, c.probs, c.labels, B, K, NULL, 0.5f / B);
    for (int64_t i = 0; i < n; i++) CHECK_CLOSE(g3[i], 0.5 * g[i], 1e-7, 1e-6, "loss backward with scale 0.5");
    if (mse) herdi_ref_mse_backward(NULL, c.x, c.target, n, 1.0f);
    else herdi_ref_softmax_xent_backward(NULL, c.probs, c.labels, B, K, NULL, 1.0f);
    free(c.x), free(c.probs), free(c.target), free(c.labels), free(g), free(g2), free(g3);
}

static void check_values(void) {
    float zeros[8] = {0}, probs[8];
    int32_t labels[2] = {3, 0};
    float loss = herdi_ref_softmax_xent_forward(probs, zeros, labels, 2, 4, NULL);
    CHECK_CLOSE(loss, log(4.0), 0, 1e-7, "xent of uniform logits = log K");

    /* huge logits: no overflow, loss = 1000 exactly as -log softmax */
    float big[2] = {1000.0f, 0.0f}, bp[2];
    int32_t one[1] = {1};
    loss = herdi_ref_softmax_xent_forward(bp, big, one, 1, 2, NULL);
    CHECK_CLOSE(loss, 1000.0, 0, 1e-7, "xent with logit gap 1000");
    CHECK(isfinite(bp[0]) && isfinite(bp[1]), "xent probs finite for huge logits: %g %g", bp[0], bp[1]);

    /* an out-of-range label poisons the loss instead of reading out of bounds */
    int32_t bad[1] = {2};
    loss = herdi_ref_softmax_xent_forward(bp, big, bad, 1, 2, NULL);
    CHECK(isnan(loss), "xent with label 2 of K=2 returns NaN, got %g", loss);

    float pred[3] = {1, 2, 3}, target[3] = {1, 0, 0};
    CHECK_CLOSE(herdi_ref_mse_forward(pred, target, 3), (0.0 + 4.0 + 9.0) / 3.0, 0, 1e-7, "mse hand value");
    float g[3] = {0};
    herdi_ref_mse_backward(g, pred, target, 3, 1.0f);
    CHECK_CLOSE(g[2], 2.0 * 3.0 / 3.0, 0, 1e-7, "mse gradient hand value");
}

int main(void) {
    check_values();
    check_loss_grad(0, 1, 1, 1);
    check_loss_grad(0, 1, 10, 2);
    check_loss_grad(0, 5, 3, 3);
    check_loss_grad(0, 8, 10, 4);
    check_loss_grad(1, 1, 1, 5);
    check_loss_grad(1, 3, 7, 6);
    check_loss_grad(1, 16, 4, 7);
    return check_summary();
}
