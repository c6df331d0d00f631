/* Checks herdi_ref_dense_backward against central differences of L = sum(dense(in, w, b) * r) for inputs,
 * weights and bias, plus a hand case, accumulation and NULL gradients. */
#include <stdint.h>

#include "gradcheck.h"
#include "ops/ops.h"

typedef struct dense_case {
    int B, IN, OUT;
    float *in, *w, *b, *out, *r;
} dense_case;

static double dense_loss(void *ctx) {
    dense_case *c = ctx;
    herdi_ref_dense_forward(c->out, c->in, c->w, c->b, c->B, c->IN, c->OUT);
    return gc_project(c->out, c->r, (int64_t)c->B * c->OUT);
}

static void check_dense(int B, int IN, int OUT, int with_bias, uint64_t seed) {
    printf("dense B=%d IN=%d OUT=%d bias=%d\n", B, IN, OUT, with_bias);
    dense_case c = {.B = B, .IN = IN, .OUT = OUT};
    const int64_t n_in = (int64_t)B * IN, n_w = (int64_t)OUT * IN, n_out = (int64_t)B * OUT;
    herd_rng rng;
    herd_rng_init(&rng, seed, 0);
    c.in = gc_alloc(n_in);
    c.w = gc_alloc(n_w);
    c.b = with_bias ? gc_alloc(OUT) : NULL;
    c.out = gc_alloc(n_out);
    c.r = gc_alloc(n_out);
    gc_fill(&rng, c.in, n_in, -1, 1);
    gc_fill(&rng, c.w, n_w, -1, 1);
    if (c.b) gc_fill(&rng, c.b, OUT, -1, 1);
    gc_fill(&rng, c.r, n_out, -1, 1);
    float *din = gc_alloc(n_in), *dw = gc_alloc(n_w), *db = gc_alloc(OUT);
    herdi_ref_dense_backward(din, dw, with_bias ? db : NULL, c.r, c.in, c.w, B, IN, OUT);

    /* linear in each argument: a large step has no truncation error */
    const float eps = 0.25f;
    gc_check("dense din", dense_loss, &c, c.in, din, n_in, eps, 1e-5, 1e-5);
    gc_check("dense dw", dense_loss, &c, c.w, dw, n_w, eps, 1e-5, 1e-5);
    if (c.b) gc_check("dense db", dense_loss, &c, c.b, db, OUT, eps, 1e-5, 1e-5);

    float *din2 = gc_alloc(n_in), *dw2 = gc_alloc(n_w), *db2 = gc_alloc(OUT);
    memcpy(din2, din, sizeof(float) * n_in);
    memcpy(dw2, dw, sizeof(float) * n_w);
    memcpy(db2, db, sizeof(float) * OUT);
    herdi_ref_dense_backward(din2, dw2, with_bias ? db2 : NULL, c.r, c.in, c.w, B, IN, OUT);
    gc_check_doubled("dense din", din, din2, n_in);
    gc_check_doubled("dense dw", dw, dw2, n_w);
    if (with_bias) gc_check_doubled("dense db", db, db2, OUT);

    float *din3 = gc_alloc(n_in), *dw3 = gc_alloc(n_w), *db3 = gc_alloc(OUT);
    herdi_ref_dense_backward(NULL, dw3, with_bias ? db3 : NULL, c.r, c.in, c.w, B, IN, OUT);
    herdi_ref_dense_backward(din3, NULL, NULL, c.r, c.in, c.w, B, IN, OUT);
    gc_check_equal("dense dw with din=NULL", dw3, dw, n_w);
    if (with_bias) gc_check_equal("dense db with din=NULL", db3, db, OUT);
    gc_check_equal("dense din with dw=db=NULL", din3, din, n_in);

    free(c.in), free(c.w), free(c.b), free(c.out), free(c.r);
    free(din), free(dw), free(db), free(din2), free(dw2), free(db2), free(din3), free(dw3), free(db3);
}

static void check_dense_by_hand(void) {
    /* in (1,2) = [1, 2], w (3,2) rows [1,0] [0,1] [1,1], b = [0.5, -0.5, 0] -> [1.5, 1.5, 3] */
    float in[2] = {1, 2}, w[6] = {1, 0, 0, 1, 1, 1}, b[3] = {0.5f, -0.5f, 0}, out[3];
    herdi_ref_dense_forward(out, in, w, b, 1, 2, 3);
    const float want[3] = {1.5f, 1.5f, 3.0f};
    for (int i = 0; i < 3; i++) CHECK_CLOSE(out[i], want[i], 0, 0, "dense hand case output");
}

int main(void) {
    check_dense_by_hand();
    check_dense(1, 1, 1, 1, 1);
    check_dense(1, 7, 3, 1, 2);
    check_dense(4, 5, 9, 1, 3);
    check_dense(3, 16, 10, 0, 4);
    check_dense(8, 33, 2, 1, 5);
    return check_summary();
}
