/* Checks inverted dropout: backward against central differences with the mask held fixed,
 * mask values {0, 1/(1-p)}, kept fraction near 1-p, p = 0 and p = 1, determinism for one rng state,
 * accumulation and NULL din. */
#include <stdint.h>

#include "gradcheck.h"
#include "ops/ops.h"

typedef struct dropout_case {
    int64_t n;
    float p;
    herd_rng start; /* every forward restarts from here, so the mask is fixed while we differentiate */
    float *in, *out, *mask, *r;
} dropout_case;

static double dropout_loss(void *ctx) {
    dropout_case *c = ctx;
    herd_rng rng = c->start;
    herdi_ref_dropout_forward(c->out, c->mask, c->in, c->n, c->p, &rng);
    return gc_project(c->out, c->r, c->n);
}

static void check_dropout_grad(int64_t n, float p, uint64_t seed) {
    printf("dropout n=%lld p=%g\n", (long long)n, p);
    dropout_case c = {.n = n, .p = p};
    herd_rng rng;
    herd_rng_init(&rng, seed, 0);
    c.in = gc_alloc(n);
    c.out = gc_alloc(n);
    c.mask = gc_alloc(n);
    c.r = gc_alloc(n);
    gc_fill(&rng, c.in, n, -1, 1);
    gc_fill(&rng, c.r, n, -1, 1);
    herd_rng_init(&c.start, seed, 1);
    dropout_loss(&c);
    float *din = gc_alloc(n), *din2 = gc_alloc(n);
    herdi_ref_dropout_backward(din, c.r, c.mask, n);
    gc_check("dropout din", dropout_loss, &c, c.in, din, n, 0.25f, 1e-5, 1e-5);
    memcpy(din2, din, sizeof(float) * n);
    herdi_ref_dropout_backward(din2, c.r, c.mask, n);
    gc_check_doubled("dropout din", din, din2, n);
    herdi_ref_dropout_backward(NULL, c.r, c.mask, n);
    free(c.in), free(c.out), free(c.mask), free(c.r), free(din), free(din2);
}

static void check_mask(float p, uint64_t seed) {
    const int64_t n = 200000;
    float *in = gc_alloc(n), *out = gc_alloc(n), *mask = gc_alloc(n), *out2 = gc_alloc(n), *mask2 = gc_alloc(n);
    for (int64_t i = 0; i < n; i++) in[i] = 1.0f + (float)(i % 7);
    herd_rng rng, rng2;
    herd_rng_init(&rng, seed, 3);
    rng2 = rng;
    herdi_ref_dropout_forward(out, mask, in, n, p, &rng);
    herdi_ref_dropout_forward(out2, mask2, in, n, p, &rng2);
    gc_check_equal("dropout mask, same rng state twice", mask, mask2, n);
    gc_check_equal("dropout out, same rng state twice", out, out2, n);

    const float keep = p < 1.0f ? 1.0f / (1.0f - p) : 0.0f;
    int64_t kept = 0, odd = 0, wrong_out = 0;
    for (int64_t i = 0; i < n; i++) {
        if (mask[i] == keep && keep != 0.0f) kept++;
        else if (mask[i] != 0.0f) odd++;
        if (out[i] != in[i] * mask[i]) wrong_out++;
    }
    CHECK(odd == 0, "dropout p=%g: %lld mask values neither 0 nor 1/(1-p) = %g", p, (long long)odd, keep);
    CHECK(wrong_out == 0, "dropout p=%g: %lld outputs differ from in * mask", p, (long long)wrong_out);
    /* kept ~ Binomial(n, 1-p): 6 standard deviations (plus one element) is a safe bound */
    double expect = (1.0 - p) * n, sd = sqrt(n * p * (1.0 - p));
    CHECK(fabs(kept - expect) <= 6 * sd + 1, "dropout p=%g: kept %lld of %lld, expected %.0f +- %.0f", p,
          (long long)kept, (long long)n, expect, 6 * sd + 1);
    printf("dropout p=%g: kept fraction %.4f (expected %.4f), scale %g\n", p, (double)kept / n, 1.0 - p, keep);

    /* the stream advanced by one draw per element; another call gives a different mask */
    herdi_ref_dropout_forward(out2, mask2, in, n, p, &rng);
    int64_t same = 0;
    for (int64_t i = 0; i < n; i++) same += mask[i] == mask2[i];
    if (p > 0.0f && p < 1.0f) CHECK(same < n, "dropout p=%g: next call drew the identical mask", p);
    free(in), free(out), free(mask), free(out2), free(mask2);
}

int main(void) {
    check_dropout_grad(1, 0.5f, 1);
    check_dropout_grad(37, 0.3f, 2);
    check_dropout_grad(64, 0.0f, 3);
    check_dropout_grad(100, 0.9f, 4);
    check_mask(0.0f, 10);
    check_mask(0.1f, 11);
    check_mask(0.5f, 12);
    check_mask(0.8f, 13);
    check_mask(1.0f, 14);
    return check_summary();
}
