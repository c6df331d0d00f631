/* Checks the residual add and gradient accumulation: forward values, backward of L = sum((a + b) * r)
 * by central differences (via herdi_ref_accumulate into both inputs), accumulation and NULL din. */
#include <stdint.h>

#include "gradcheck.h"
#include "ops/ops.h"

typedef struct add_case {
    int64_t n;
    float *a, *b, *out, *r;
} add_case;

static double add_loss(void *ctx) {
    add_case *c = ctx;
    herdi_ref_add_forward(c->out, c->a, c->b, c->n);
    return gc_project(c->out, c->r, c->n);
}

static void check_add(int64_t n, uint64_t seed) {
    printf("add n=%lld\n", (long long)n);
    add_case c = {.n = n};
    herd_rng rng;
    herd_rng_init(&rng, seed, 0);
    c.a = gc_alloc(n), c.b = gc_alloc(n), c.out = gc_alloc(n), c.r = gc_alloc(n);
    gc_fill(&rng, c.a, n, -1, 1);
    gc_fill(&rng, c.b, n, -1, 1);
    gc_fill(&rng, c.r, n, -1, 1);
    herdi_ref_add_forward(c.out, c.a, c.b, n);
    for (int64_t i = 0; i < n; i++) CHECK_CLOSE(c.out[i], c.a[i] + c.b[i], 0, 0, "add forward");
    float *da = gc_alloc(n), *db = gc_alloc(n), *da2 = gc_alloc(n);
    herdi_ref_accumulate(da, c.r, n);
    herdi_ref_accumulate(db, c.r, n);
    gc_check("add da", add_loss, &c, c.a, da, n, 0.25f, 1e-6, 1e-6);
    gc_check("add db", add_loss, &c, c.b, db, n, 0.25f, 1e-6, 1e-6);
    memcpy(da2, da, sizeof(float) * n);
    herdi_ref_accumulate(da2, c.r, n);
    gc_check_doubled("accumulate", da, da2, n);
    herdi_ref_accumulate(NULL, c.r, n);
    free(c.a), free(c.b), free(c.out), free(c.r), free(da), free(db), free(da2);
}

int main(void) {
    check_add(1, 1);
    check_add(37, 2);
    herdi_ref_add_forward(NULL, NULL, NULL, 0); /* n = 0 touches nothing */
    return check_summary();
}
