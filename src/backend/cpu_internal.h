/* Private to the cpu backend: its op entry points (one file per layer kind) and the
 * parallel-for wrapper that keeps tiny ops off the thread pool. */
#ifndef HERD_CPU_INTERNAL_H
#define HERD_CPU_INTERNAL_H

#include <stdint.h>

#include "backend.h"

/* Below this many elementary operations, waking the pool's workers (a condvar
 * round trip, tens of microseconds) costs more than it saves; such calls run inline. */
#define CPU_MIN_PARALLEL_WORK 32768

static inline int cpu_threads(const herd_exec *ex) { return ex ? herd_pool_threads(ex->pool) : 1; }

/* herd_pool_for over [0, n) on ex's pool when `work` is big enough, else inline as thread 0.
 * Partitions depend only on (n, threads, work), so results stay deterministic. */
static inline void cpu_for(const herd_exec *ex, int64_t n, int64_t work, herd_range_fn fn, void *ctx) {
    if (n <= 0) return;
    if (!ex || !ex->pool || cpu_threads(ex) == 1 || work < CPU_MIN_PARALLEL_WORK)
        fn(ctx, 0, n, 0);
    else
        herd_pool_for(ex->pool, n, fn, ctx);
}

size_t cpu_conv2d_workspace(const conv2d_dims *d, int threads);
const char *cpu_conv2d_unsupported(const conv2d_dims *d);
void cpu_conv2d_forward(const herd_exec *ex, float *out, const float *in, const float *w, const float *b,
                        const conv2d_dims *d);
void cpu_conv2d_backward(const herd_exec *ex, float *din, float *dw, float *db, const float *dout, const float *in,
                         const float *w, const conv2d_dims *d);
void cpu_dense_forward(const herd_exec *ex, float *out, const float *in, const float *w, const float *b, int B, int IN,
                       int OUT);
void cpu_dense_backward(const herd_exec *ex, float *din, float *dw, float *db, const float *dout, const float *in,
                        const float *w, int B, int IN, int OUT);
void cpu_maxpool2d_forward(const herd_exec *ex, float *out, int32_t *argmax, const float *in, const pool2d_dims *d);
void cpu_maxpool2d_backward(const herd_exec *ex, float *din, const float *dout, const int32_t *argmax,
                            const pool2d_dims *d);
void cpu_avgpool2d_forward(const herd_exec *ex, float *out, const float *in, const pool2d_dims *d);
void cpu_avgpool2d_backward(const herd_exec *ex, float *din, const float *dout, const pool2d_dims *d);
void cpu_batchnorm_forward_train(const herd_exec *ex, float *out, float *mean, float *rstd, float *running_mean,
                                 float *running_var, const float *in, const float *gamma, const float *beta, int B,
                                 int C, int HW, float momentum, float eps);
void cpu_batchnorm_forward_eval(const herd_exec *ex, float *out, const float *in, const float *gamma,
                                const float *beta, const float *running_mean, const float *running_var, int B, int C,
                                int HW, float eps);
void cpu_batchnorm_backward(const herd_exec *ex, float *din, float *dgamma, float *dbeta, const float *dout,
                            const float *in, const float *mean, const float *rstd, const float *gamma, int B, int C,
                            int HW);
void cpu_act_forward(const herd_exec *ex, float *out, const float *in, int64_t n, herd_act act, float alpha);
void cpu_act_backward(const herd_exec *ex, float *din, const float *dout, const float *in, const float *out,
                      int64_t n, herd_act act, float alpha);

#endif
