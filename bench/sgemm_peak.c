/* The hardware reference for bench/vs_pytorch: GFLOP/s of one large square OpenBLAS
 * sgemm with the given thread count (best of several runs).
 * usage: sgemm_peak [N=4096] [THREADS=all] */
#include <cblas.h>
#include <stdio.h>
#include <stdlib.h>

#include "herd/core.h"

int main(int argc, char **argv) {
    int n = argc > 1 ? atoi(argv[1]) : 4096;
    int threads = argc > 2 ? atoi(argv[2]) : herd_cpu_count();
    if (n < 64 || threads < 1) {
        fprintf(stderr, "usage: sgemm_peak [N>=64] [THREADS>=1]\n");
        return 2;
    }
    openblas_set_num_threads(threads);
    size_t nn = (size_t)n * n;
    float *a = herd_aligned_alloc(nn * 4), *b = herd_aligned_alloc(nn * 4), *c = herd_aligned_alloc(nn * 4);
    if (!a || !b || !c) return 1;
    for (size_t i = 0; i < nn; i++) a[i] = (float)(i % 7) * 0.1f, b[i] = (float)(i % 5) * 0.1f, c[i] = 0;
    double best = 0;
    for (int rep = 0; rep < 4; rep++) {
        double t0 = herd_now();
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, n, n, 1.0f, a, n, b, n, 0.0f, c, n);
        double g = 2.0 * n * (double)n * n / (herd_now() - t0) * 1e-9;
        if (rep && g > best) best = g; /* the first run warms up */
    }
    printf("sgemm_peak: n=%d threads=%d gflops=%.1f\n", n, threads, best);
    herd_aligned_free(a);
    herd_aligned_free(b);
    herd_aligned_free(c);
    return 0;
}
