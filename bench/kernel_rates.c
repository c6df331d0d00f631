/* The machine line of bench/all: single-thread GFLOP/s of herd's own gemm kernels on one
 * product that stays in L2 (M = N = K = 256, best of several runs): AVX-512, AVX2/FMA and
 * bf16 (vdpbf16ps) where the CPU runs them (-1 where not), and the AVX-512 datapath width this
 * implies: the 16-lane kernel does twice the 8-lane one's work per instruction, so a CPU whose
 * AVX-512 units are 512 bits wide runs it near 2x the AVX2 kernel's rate, one that splits each
 * 512-bit operation into two 256-bit halves near 1x. usage: kernel_rates */
#include <stdio.h>
#include <stdlib.h>

#include "backend/cpu_bf16.h"
#include "herd/core.h"

#define DIM 256

static double rate(int kernel, const float *a, const float *b, float *c) {
    if (kernel >= 0 && !herdi_cpu_gemm_use(kernel)) return -1;
    if (kernel < 0 && herdi_cpu_bf16_unavailable()) return -1;
    double best = 1e30;
    for (int rep = 0; rep < 40; rep++) {
        double t0 = herd_now();
        if (kernel >= 0)
            herdi_cpu_gemm(DIM, DIM, DIM, a, DIM, 1, b, DIM, 0, c, DIM);
        else
            herdi_cpu_gemm_bf16(DIM, DIM, DIM / 2, a, DIM / 2, 1, b, DIM, 0, c, DIM);
        double t = herd_now() - t0;
        if (rep && t < best) best = t; /* the first run warms up */
    }
    return 2.0 * DIM * DIM * (double)DIM / best * 1e-9;
}

int main(void) {
    float *a = malloc(sizeof(float) * DIM * DIM), *b = malloc(sizeof(float) * DIM * DIM),
          *c = malloc(sizeof(float) * DIM * DIM);
    if (!a || !b || !c) return 1;
    for (int i = 0; i < DIM * DIM; i++) a[i] = (float)(i % 7) * 0.1f, b[i] = (float)(i % 5) * 0.1f;
    double r512 = rate(CPU_GEMM_AVX512, a, b, c), r2 = rate(CPU_GEMM_AVX2, a, b, c);
    herdi_cpu_gemm_select(1);
    double rbf = rate(-1, a, b, c); /* a and b read as bf16 pairs: the rate, not the values, matters */
    int width = r512 > 0 && r2 > 0 ? (r512 / r2 > 1.5 ? 512 : 256) : -1;
    printf("kernel_rates: dim=%d threads=1 avx512_gflops=%.1f avx2_gflops=%.1f bf16_gflops=%.1f "
           "avx512_datapath_bits=%d\n", DIM, r512, r2, rbf, width);
    free(a), free(b), free(c);
    return 0;
}
