/* Checks batch norm: training backward against central differences of L = sum(bn(in) * r) for inputs,
 * gamma and beta; saved mean/rstd, running-stat update (unbiased variance) and eval mode against
 * hand computation; accumulation and NULL gradients. */
#include <stdint.h>

#include "gradcheck.h"
#include "ops/ops.h"

typedef struct bn_case {
    int B, C, HW;
    float *in, *gamma, *beta, *out, *mean, *rstd, *rm, *rv, *r;
} bn_case;

static double bn_loss(void *ctx) {
    bn_case *c = ctx;
    herdi_ref_batchnorm_forward_train(c->out, c->mean, c->rstd, c->rm, c->rv, c->in, c->gamma, c->beta, c->B, c->C, c->HW,
                                0.1f, 1e-5f);
    return gc_project(c->out, c->r, (int64_t)c->B * c->C * c->HW);
}

static void check_bn_grad(int B, int C, int HW, uint64_t seed) {
    printf("batchnorm train B=%d C=%d HW=%d\n", B, C, HW);
    bn_case c = {.B = B, .C = C, .HW = HW};
    const int64_t n = (int64_t)B * C * HW;
    herd_rng rng;
    herd_rng_init(&rng, seed, 0);
    c.in = gc_alloc(n);
    c.out = gc_alloc(n);
    c.r = gc_alloc(n);
    c.gamma = gc_alloc(C), c.beta = gc_alloc(C), c.mean = gc_alloc(C), c.rstd = gc_alloc(C);
    c.rm = gc_alloc(C), c.rv = gc_alloc(C);
    gc_fill(&rng, c.in, n, -1, 1);
    for (int64_t i = 0; i < n; i++) c.in[i] += (float)((i / HW) % C) * 0.5f; /* a different mean per channel */
    gc_fill(&rng, c.gamma, C, 0.5f, 1.5f);
    gc_fill(&rng, c.beta, C, -1, 1);
    gc_fill(&rng, c.r, n, -1, 1);
    bn_loss(&c);
    float *din = gc_alloc(n), *dg = gc_alloc(C), *dbeta = gc_alloc(C);
    herdi_ref_batchnorm_backward(din, dg, dbeta, c.r, c.in, c.mean, c.rstd, c.gamma, B, C, HW);

    /* normalisation is nonlinear in the input: a small step; the float outputs of a whole
     * channel change with each input, hence the looser tolerance there */
    gc_check("batchnorm din", bn_loss, &c, c.in, din, n, 2e-3f, 5e-4, 1e-3);
    gc_check("batchnorm dgamma", bn_loss, &c, c.gamma, dg, C, 0.25f, 1e-5, 1e-5); /* linear in gamma, beta */
    gc_check("batchnorm dbeta", bn_loss, &c, c.beta, dbeta, C, 0.25f, 1e-5, 1e-5);

    bn_loss(&c); /* restore mean/rstd of the unperturbed input */
    float *din2 = gc_alloc(n), *dg2 = gc_alloc(C), *dbeta2 = gc_alloc(C);
    memcpy(din2, din, sizeof(float) * n);
    memcpy(dg2, dg, sizeof(float) * C);
    memcpy(dbeta2, dbeta, sizeof(float) * C);
    herdi_ref_batchnorm_backward(din2, dg2, dbeta2, c.r, c.in, c.mean, c.rstd, c.gamma, B, C, HW);
    gc_check_doubled("batchnorm din", din, din2, n);
    gc_check_doubled("batchnorm dgamma", dg, dg2, C);
    gc_check_doubled("batchnorm dbeta", dbeta, dbeta2, C);

    float *din3 = gc_alloc(n), *dg3 = gc_alloc(C), *dbeta3 = gc_alloc(C);
    herdi_ref_batchnorm_backward(NULL, dg3, dbeta3, c.r, c.in, c.mean, c.rstd, c.gamma, B, C, HW);
    herdi_ref_batchnorm_backward(din3, NULL, NULL, c.r, c.in, c.mean, c.rstd, c.gamma, B, C, HW);
    gc_check_equal("batchnorm dgamma with din=NULL", dg3, dg, C);
    gc_check_equal("batchnorm dbeta with din=NULL", dbeta3, dbeta, C);
    gc_check_equal("batchnorm din with dgamma=dbeta=NULL", din3, din, n);

    free(c.in), free(c.out), free(c.r), free(c.gamma), free(c.beta), free(c.mean), free(c.rstd), free(c.rm),
        free(c.rv);
    free(din), free(dg), free(dbeta), free(din2), free(dg2), free(dbeta2), free(din3), free(dg3), free(dbeta3);
}

/* B=2, C=1, HW=2 with values 1..4: mean 2.5, biased var 1.25, unbiased 5/3. */
static void check_bn_by_hand(void) {
    const float in[4] = {1, 2, 3, 4}, gamma[1] = {2.0f}, beta[1] = {0.5f};
    float out[4], mean[1], rstd[1], rm[1] = {0.5f}, rv[1] = {2.0f};
    const float eps = 1e-5f, mom = 0.1f;
    herdi_ref_batchnorm_forward_train(out, mean, rstd, rm, rv, in, gamma, beta, 2, 1, 2, mom, eps);
    const double r = 1.0 / sqrt(1.25 + (double)eps);
    CHECK_CLOSE(mean[0], 2.5, 0, 1e-7, "batchnorm saved mean");
    CHECK_CLOSE(rstd[0], r, 0, 1e-7, "batchnorm saved rstd = 1/sqrt(biased var + eps)");
    for (int i = 0; i < 4; i++) CHECK_CLOSE(out[i], (in[i] - 2.5) * r * 2.0 + 0.5, 1e-6, 1e-6, "batchnorm train output");
    CHECK_CLOSE(rm[0], 0.9 * 0.5 + 0.1 * 2.5, 1e-7, 1e-6, "running mean after one step");
    CHECK_CLOSE(rv[0], 0.9 * 2.0 + 0.1 * (5.0 / 3.0), 1e-7, 1e-6, "running var after one step (unbiased)");

    /* eval normalises with the running stats just computed */
    float ev[4];
    herdi_ref_batchnorm_forward_eval(ev, in, gamma, beta, rm, rv, 2, 1, 2, eps);
    for (int i = 0; i < 4; i++) {
        double want = ((double)in[i] - rm[0]) / sqrt((double)rv[0] + eps) * 2.0 + 0.5;
        CHECK_CLOSE(ev[i], want, 1e-6, 1e-6, "batchnorm eval output");
    }

    /* one value per channel: unbiased variance undefined, running var must stay finite */
    float one_out[1], one_in[1] = {3.0f}, one_rm[1] = {0}, one_rv[1] = {1};
    herdi_ref_batchnorm_forward_train(one_out, mean, rstd, one_rm, one_rv, one_in, gamma, beta, 1, 1, 1, mom, eps);
    CHECK(isfinite(one_rv[0]) && isfinite(one_out[0]), "batchnorm with N=1: running var %g out %g", one_rv[0],
          one_out[0]);
}

/* mean 1000, spread 1: a one-pass E[x^2]-E[x]^2 in float would lose the variance entirely */
static void check_bn_offset(void) {
    enum { B = 64, C = 2, HW = 9 };
    float in[B * C * HW], out[B * C * HW], gamma[C] = {1, 1}, beta[C] = {0, 0}, mean[C], rstd[C], rm[C], rv[C];
    herd_rng rng;
    herd_rng_init(&rng, 99, 0);
    gc_fill(&rng, in, B * C * HW, 999, 1001);
    herdi_ref_batchnorm_forward_train(out, mean, rstd, rm, rv, in, gamma, beta, B, C, HW, 0.1f, 1e-5f);
    for (int c = 0; c < C; c++) {
        double s = 0, sq = 0;
        for (int n = 0; n < B; n++)
            for (int i = 0; i < HW; i++) s += in[(n * C + c) * HW + i];
        double m = s / (B * HW);
        for (int n = 0; n < B; n++)
            for (int i = 0; i < HW; i++) sq += (in[(n * C + c) * HW + i] - m) * (in[(n * C + c) * HW + i] - m);
        CHECK_CLOSE(mean[c], m, 0, 1e-7, "batchnorm mean with offset 1000");
        CHECK_CLOSE(rstd[c], 1.0 / sqrt(sq / (B * HW) + 1e-5), 0, 1e-6, "batchnorm rstd with offset 1000");
    }
}

int main(void) {
    check_bn_by_hand();
    check_bn_offset();
    check_bn_grad(1, 1, 5, 1);
    check_bn_grad(2, 3, 1, 2); /* after a dense layer */
    check_bn_grad(3, 2, 6, 3);
    check_bn_grad(4, 5, 9, 4);
    check_bn_grad(1, 4, 12, 5);
    return check_summary();
}
