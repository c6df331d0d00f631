/* cpu elementwise activations: contiguous chunks per thread; exact per element, so
 * results match for any split. */
#include <math.h>

#include "cpu_internal.h"

typedef struct act_job {
    float *out, *din;
    const float *in, *dout, *out_in;
    herd_act act;
    float alpha;
} act_job;

static inline float clampf(float x, float lo, float hi) { return x < lo ? lo : x > hi ? hi : x; }

/* How many times dearer than a ReLU each kind is, to size the parallel threshold. */
static int64_t act_cost(herd_act act) {
    return act == HERD_ACT_RELU || act == HERD_ACT_LEAKY_RELU || act == HERD_ACT_NONE || act == HERD_ACT_RELU6 ||
                   act == HERD_ACT_HARDSIGMOID || act == HERD_ACT_HARDSWISH
               ? 1
           : act == HERD_ACT_GELU || act == HERD_ACT_GELU_TANH ? 4 /* vectorized (cpu_gelu.c) */
               : 20;
}

static void act_forward_range(void *ctx, int64_t i0, int64_t i1, int thread) {
    (void)thread;
    const act_job *j = ctx;
    const float *x = j->in;
    float *y = j->out;
    const float a = j->alpha;
    switch (j->act) {
    case HERD_ACT_NONE:
        for (int64_t i = i0; i < i1; i++) y[i] = x[i];
        break;
    case HERD_ACT_RELU:
        for (int64_t i = i0; i < i1; i++) y[i] = x[i] > 0.0f ? x[i] : 0.0f;
        break;
    case HERD_ACT_LEAKY_RELU:
        for (int64_t i = i0; i < i1; i++) y[i] = x[i] > 0.0f ? x[i] : a * x[i];
        break;
    case HERD_ACT_SIGMOID:
        for (int64_t i = i0; i < i1; i++) y[i] = 1.0f / (1.0f + expf(-x[i]));
        break;
    case HERD_ACT_TANH:
        for (int64_t i = i0; i < i1; i++) y[i] = tanhf(x[i]);
        break;
    case HERD_ACT_GELU:
    case HERD_ACT_GELU_TANH: herdi_cpu_gelu_forward(y + i0, x + i0, i1 - i0, j->act == HERD_ACT_GELU_TANH); break;
    case HERD_ACT_RELU6:
        for (int64_t i = i0; i < i1; i++) y[i] = clampf(x[i], 0.0f, 6.0f);
        break;
    case HERD_ACT_HARDSIGMOID:
        for (int64_t i = i0; i < i1; i++) y[i] = clampf(x[i] + 3.0f, 0.0f, 6.0f) / 6.0f;
        break;
    case HERD_ACT_HARDSWISH:
        for (int64_t i = i0; i < i1; i++) y[i] = x[i] * clampf(x[i] + 3.0f, 0.0f, 6.0f) / 6.0f;
        break;
    case HERD_ACT_SILU:
        for (int64_t i = i0; i < i1; i++) y[i] = x[i] / (1.0f + expf(-x[i]));
        break;
    }
}

void herdi_cpu_act_forward(const herd_exec *ex, float *out, const float *in, int64_t n, herd_act act, float alpha) {
    act_job j = {.out = out, .in = in, .act = act, .alpha = alpha};
    cpu_for(ex, n, CPU_NS_PER_STREAM_ELEM(n * act_cost(act)), act_forward_range, &j);
}

static void act_backward_range(void *ctx, int64_t i0, int64_t i1, int thread) {
    (void)thread;
    const act_job *j = ctx;
    const float *x = j->in, *y = j->out_in, *g = j->dout;
    float *dx = j->din;
    const float a = j->alpha;
    switch (j->act) {
    case HERD_ACT_NONE:
        for (int64_t i = i0; i < i1; i++) dx[i] += g[i];
        break;
    /* loads hoisted out of the ?: so the compiler emits a blend, not a branch
     * that mispredicts on every other element (measured 10x slower) */
    case HERD_ACT_RELU: /* from the output: out > 0 exactly where in > 0, and the input may be gone */
        for (int64_t i = i0; i < i1; i++) {
            float gi = g[i];
            dx[i] += y[i] > 0.0f ? gi : 0.0f;
        }
        break;
    case HERD_ACT_LEAKY_RELU:
        for (int64_t i = i0; i < i1; i++) {
            float gi = g[i];
            dx[i] += x[i] > 0.0f ? gi : a * gi;
        }
        break;
    case HERD_ACT_SIGMOID:
        for (int64_t i = i0; i < i1; i++) dx[i] += g[i] * y[i] * (1.0f - y[i]);
        break;
    case HERD_ACT_TANH:
        for (int64_t i = i0; i < i1; i++) dx[i] += g[i] * (1.0f - y[i] * y[i]);
        break;
    case HERD_ACT_GELU:
    case HERD_ACT_GELU_TANH: herdi_cpu_gelu_backward(dx + i0, g + i0, x + i0, i1 - i0, j->act == HERD_ACT_GELU_TANH); break;
    case HERD_ACT_RELU6:
        for (int64_t i = i0; i < i1; i++) {
            float gi = g[i];
            dx[i] += y[i] > 0.0f && y[i] < 6.0f ? gi : 0.0f;
        }
        break;
    case HERD_ACT_HARDSIGMOID:
        for (int64_t i = i0; i < i1; i++) {
            float gi = g[i] / 6.0f;
            dx[i] += x[i] > -3.0f && x[i] < 3.0f ? gi : 0.0f;
        }
        break;
    case HERD_ACT_HARDSWISH:
        for (int64_t i = i0; i < i1; i++) {
            float v = x[i], s = v < -3.0f ? 0.0f : v <= 3.0f ? v / 3.0f + 0.5f : 1.0f;
            dx[i] += g[i] * s;
        }
        break;
    case HERD_ACT_SILU:
        for (int64_t i = i0; i < i1; i++) {
            float v = x[i], s = 1.0f / (1.0f + expf(-v));
            dx[i] += g[i] * s * (1.0f + v * (1.0f - s));
        }
        break;
    }
}

void herdi_cpu_act_backward(const herd_exec *ex, float *din, const float *dout, const float *in, const float *out,
                      int64_t n, herd_act act, float alpha) {
    if (!din) return;
    act_job j = {.din = din, .dout = dout, .in = in, .out_in = out, .act = act, .alpha = alpha};
    cpu_for(ex, n, CPU_NS_PER_STREAM_ELEM(n * act_cost(act)), act_backward_range, &j);
}

static void act_backward_inplace_range(void *ctx, int64_t i0, int64_t i1, int thread) {
    (void)thread;
    const act_job *j = ctx;
    herdi_cpu_act_mask_inplace(j->din + i0, j->out_in + i0, i1 - i0, j->act);
}

void herdi_cpu_act_backward_inplace(const herd_exec *ex, float *g, const float *out, int64_t n, herd_act act) {
    act_job j = {.din = g, .out_in = out, .act = act};
    cpu_for(ex, n, CPU_NS_PER_STREAM_ELEM(n), act_backward_inplace_range, &j);
}

void herdi_cpu_act_apply_inplace(float *x, int64_t n, herd_act act) {
    if (act == HERD_ACT_RELU6) /* as the act op computes it */
        for (int64_t i = 0; i < n; i++) x[i] = clampf(x[i], 0.0f, 6.0f);
    else
        for (int64_t i = 0; i < n; i++) {
            float v = x[i];
            x[i] = v > 0.0f ? v : 0.0f;
        }
}

/* out = a + b, then the activation on each block of it while the block is in L1 */
static void add_act_range(void *ctx, int64_t i0, int64_t i1, int thread) {
    (void)thread;
    const act_job *j = ctx;
    for (int64_t b0 = i0; b0 < i1; b0 += 2048) {
        int64_t b1 = i1 - b0 < 2048 ? i1 : b0 + 2048;
        for (int64_t i = b0; i < b1; i++) j->out[i] = j->in[i] + j->out_in[i];
        if (j->act) herdi_cpu_act_apply_inplace(j->out + b0, b1 - b0, j->act);
    }
}

void herdi_cpu_add_act_forward(const herd_exec *ex, float *out, const float *a, const float *b, int64_t n, herd_act act) {
    act_job j = {.out = out, .in = a, .out_in = b, .act = act};
    cpu_for(ex, n, CPU_NS_PER_STREAM_ELEM(2 * n), add_act_range, &j);
}

void herdi_cpu_post_plane(float *x, int64_t n, const conv2d_post *post, int oc) {
    if (!post) return;
    if (post->scale) { /* a multiply then an add, as the batch norm's own pass (no contraction in ISO C) */
        const float s = post->scale[oc], t = post->shift[oc];
        for (int64_t i = 0; i < n; i++) x[i] = x[i] * s + t;
    }
    if (post->act) herdi_cpu_act_apply_inplace(x, n, post->act);
}

void herdi_cpu_act_mask_inplace(float *g, const float *out, int64_t n, herd_act act) {
    if (act == HERD_ACT_RELU6)
        for (int64_t i = 0; i < n; i++) {
            float gi = g[i];
            g[i] = cpu_act_passes(out[i], HERD_ACT_RELU6) ? gi : 0.0f;
        }
    else
        for (int64_t i = 0; i < n; i++) {
            float gi = g[i];
            g[i] = cpu_act_passes(out[i], HERD_ACT_RELU) ? gi : 0.0f;
        }
}
