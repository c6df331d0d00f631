/* Finite-difference gradient checking shared by the tests/test_*_grad.c files: random fills from
 * herd_rng, a random-projection loss L = sum(out * r) summed in double, and central differences. */
#ifndef HERD_TEST_GRADCHECK_H
#define HERD_TEST_GRADCHECK_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "herd/core.h"

static inline float *gc_alloc(int64_t n) {
    float *p = (float *)herd_calloc_array((size_t)(n > 0 ? n : 1), sizeof(float));
    if (!p) {
        fprintf(stderr, "out of memory\n");
        exit(2);
    }
    return p;
}

static inline void gc_fill(herd_rng *rng, float *x, int64_t n, float lo, float hi) {
    for (int64_t i = 0; i < n; i++) x[i] = lo + (hi - lo) * herd_rng_uniform(rng);
}

/* L = sum(out * r) in double, so outputs that did not change cancel exactly in L(+) - L(-). */
static inline double gc_project(const float *out, const float *r, int64_t n) {
    double s = 0.0;
    for (int64_t i = 0; i < n; i++) s += (double)out[i] * r[i];
    return s;
}

typedef double (*gc_loss_fn)(void *ctx);

/* Compares the analytic gradient g[0..n) of loss() with central differences in p[0..n).
 * The step divides by the float values actually stored, (p+eps) - (p-eps) in double,
 * so the representation error of p +- eps does not count against backward.
 * Returns the largest |g - fd| and prints it with the tolerance. */
static inline double gc_check(const char *what, gc_loss_fn loss, void *ctx, float *p, const float *g, int64_t n, float eps,
                       double atol, double rtol) {
    double max_err = 0.0;
    for (int64_t i = 0; i < n; i++) {
        float orig = p[i];
        p[i] = orig + eps;
        double up = p[i], lp = loss(ctx);
        p[i] = orig - eps;
        double dn = p[i], lm = loss(ctx);
        p[i] = orig;
        double fd = (lp - lm) / (up - dn);
        double err = fabs((double)g[i] - fd);
        if (err > max_err) max_err = err;
        char label[256];
        snprintf(label, sizeof label, "%s[%lld] backward vs finite difference (eps %g)", what, (long long)i, eps);
        CHECK_CLOSE(g[i], fd, atol, rtol, label);
    }
    printf("  %-48s n=%-6lld max |analytic - fd| = %.3g (atol %g rtol %g)\n", what, (long long)n, max_err, atol,
           rtol);
    return max_err;
}

/* backward accumulates: running it a second time into the same buffer must double it */
static inline void gc_check_doubled(const char *what, const float *once, const float *twice, int64_t n) {
    double max_err = 0.0;
    for (int64_t i = 0; i < n; i++) {
        char label[256];
        snprintf(label, sizeof label, "%s[%lld] after two backward calls vs 2x one call", what, (long long)i);
        CHECK_CLOSE(twice[i], 2.0 * once[i], 1e-6, 1e-6, label);
        double e = fabs((double)twice[i] - 2.0 * once[i]);
        if (e > max_err) max_err = e;
    }
    printf("  %-48s accumulates: max |twice - 2*once| = %.3g (atol 1e-6 rtol 1e-6)\n", what, max_err);
}

/* exact equality, e.g. dw computed with din = NULL vs with din present */
static inline void gc_check_equal(const char *what, const float *a, const float *b, int64_t n) {
    int64_t bad = 0;
    for (int64_t i = 0; i < n; i++) bad += a[i] != b[i];
    CHECK(bad == 0, "%s: %lld of %lld elements differ (exact comparison)", what, (long long)bad, (long long)n);
}

#endif
