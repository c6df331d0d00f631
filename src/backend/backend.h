/* Backends: one table of operator entry points per implementation, chosen at run time.
 * "ref" wraps the reference ops (src/ops) and is always present; "cpu" is the fast path.
 * Every entry has the reference op's contract (ops.h): same layouts, backward accumulates. */
#ifndef HERD_BACKEND_H
#define HERD_BACKEND_H

#include <stddef.h>

#include "../ops/ops.h"
#include "herd/core.h"

/* herd_exec.fixed_parts under herd_model_set_fixed_reduction: as many parts as the threads of
 * the machines herd is tuned on (2 to 8), so those keep every thread busy in the split sums. */
#define HERD_FIXED_PARTS 8

/* What a fast op may use: the pool (NULL = one thread) and a scratch block
 * planned once from the *_workspace queries below (never allocated per call). */
typedef struct herd_exec {
    herd_pool *pool;
    float *workspace;
    size_t workspace_floats;
    /* 0: a kernel that sums over the batch takes one partial sum per thread; > 0: exactly this
     * many (fewer only when the batch has fewer rows), whatever the thread count, so the sums
     * and the weights trained do not depend on it (herd_model_set_fixed_reduction) */
    int fixed_parts;
    /* adds n doubles over every rank the batch is spread over, in place (batchnorm sync=1);
     * NULL: the batch is this process's alone (herd_model_set_batch_sum). Set, the batch-norm
     * entries complete each sum over the batch with it, in batch_scratch (2C + 2 doubles): the
     * batchnorm layer sets both for its sync=1 calls and clears batch_sum for the others */
    ref_sum_fn batch_sum;
    void *batch_sum_user;
    double *batch_scratch;
    /* 1 in an inference-only model (herd_model_set_inference_only): no training step reads these
     * outputs, so an op may sum in another order than its training path where that is faster
     * (the cpu dense at a few rows: cpu_dense.c). 0: training's kernels, whose bits are fixed. */
    int inference;
    /* Inference-only models, per call of a layer that asked for it when planned (conv2d_prepared):
     * prep_floats floats of the layer's own, kept across calls, for its weights rearranged once
     * (transposed, Winograd-transformed: the op's choice), and *prep_tag, what they hold: 0
     * nothing (the model resets it whenever the parameters may have changed: herd_model_params,
     * herd_model_buffers, loading), else bits of the op's own. An op reading them computes the
     * same bits as it would rearranging the weights itself. NULL: nothing kept (training). */
    float *prep;
    size_t prep_floats;
    int *prep_tag;
} herd_exec;

/* What a conv does to each output after its sum and bias, while the output is in cache: with
 * scale, v = v * scale[oc] + shift[oc], a multiply then an add (the two roundings of the cpu
 * backend's batch norm in eval, which an inference plan folds into the conv before it:
 * batchnorm_eval_affine), then act(v) (HERD_ACT_NONE, HERD_ACT_RELU or HERD_ACT_RELU6). */
typedef struct conv2d_post {
    const float *scale, *shift; /* (OC) each, or NULL */
    herd_act act;
} conv2d_post;

/* What a batch norm's backward (batchnorm_backward) does besides its own, each a pass it saves:
 * act, out: the ReLU or ReLU6 fused after it (HERD_ACT_NONE: none) and that activation's output:
 * dout is first masked as act_backward_inplace(dout, out, act) computes it; din_set: din is
 * written, 0 + its value (the bits of a zeroed din added to), instead of added to (it was not
 * zeroed: layer_call.din_set); din_act: then din masked by the activation fused into the
 * producer of in, act_backward_inplace(din, in, din_act). */
typedef struct bn_backward_fusion {
    const float *out;
    herd_act act;
    int din_set;
    herd_act din_act;
} bn_backward_fusion;

typedef struct herd_backend {
    const char *name;
    /* NULL if this machine can run the backend, else one line saying why not (NULL entry: always). */
    const char *(*unavailable)(void);
    /* Where a layer goes that this backend cannot run (its kind's `unsupported` check): NULL = ref. */
    const struct herd_backend *fallback;
    /* floats of workspace the conv ops need for these dims with this many threads. */
    size_t (*conv2d_workspace)(const conv2d_dims *d, int threads);
    /* floats an inference-only model keeps per conv layer for its weights rearranged once
     * (herd_exec.prep) at these dims, d->B the planned batch (NULL or 0: none) */
    size_t (*conv2d_prepared)(const conv2d_dims *d);
    /* NULL if supported, else a short reason; the model then uses ref for that layer and logs it. */
    const char *(*conv2d_unsupported)(const conv2d_dims *d);
    void (*conv2d_forward)(const herd_exec *ex, float *out, const float *in, const float *w, const float *b,
                           const conv2d_dims *d);
    void (*conv2d_backward)(const herd_exec *ex, float *din, float *dw, float *db, const float *dout, const float *in,
                            const float *w, const conv2d_dims *d);
    /* floats of workspace the dense ops need (NULL: none) */
    size_t (*dense_workspace)(int B, int IN, int OUT, int threads);
    void (*dense_forward)(const herd_exec *ex, float *out, const float *in, const float *w, const float *b, int B,
                          int IN, int OUT);
    void (*dense_backward)(const herd_exec *ex, float *din, float *dw, float *db, const float *dout, const float *in,
                           const float *w, int B, int IN, int OUT);
    void (*maxpool2d_forward)(const herd_exec *ex, float *out, int32_t *argmax, const float *in, const pool2d_dims *d);
    void (*maxpool2d_backward)(const herd_exec *ex, float *din, const float *dout, const int32_t *argmax,
                               const pool2d_dims *d);
    /* maxpool2d_backward writing din instead of adding into it, for windows that do not overlap
     * (each input element in at most one, so each gets at most one term): din = 0 + g where the
     * element is its window's argmax and act (the ReLU or ReLU6 that produced the pool's input;
     * HERD_ACT_NONE: none) passes the gradient there, else +0. act's test reads out, the pool's
     * output: the input's value at the argmax, read in order rather than gathered from the 4x
     * larger input. The bits of zeroing din, maxpool2d_backward, then act_backward_inplace(din,
     * in). NULL = not offered (the layer runs those three). */
    void (*maxpool2d_backward_set)(const herd_exec *ex, float *din, const float *dout, const int32_t *argmax,
                                   const float *out, herd_act act, const pool2d_dims *d);
    void (*avgpool2d_forward)(const herd_exec *ex, float *out, const float *in, const pool2d_dims *d);
    void (*avgpool2d_backward)(const herd_exec *ex, float *din, const float *dout, const pool2d_dims *d);
    /* The batch norm's forward, then act (HERD_ACT_NONE, or the ReLU or ReLU6 that follows it,
     * fused by the planner) on each output as act_forward computes it: the bits of the batch norm
     * then the act op, in one pass. */
    void (*batchnorm_forward_train)(const herd_exec *ex, float *out, float *mean, float *rstd, float *running_mean,
                                    float *running_var, const float *in, const float *gamma, const float *beta, int B,
                                    int C, int HW, float momentum, float eps, herd_act act);
    void (*batchnorm_forward_eval)(const herd_exec *ex, float *out, const float *in, const float *gamma,
                                   const float *beta, const float *running_mean, const float *running_var, int B,
                                   int C, int HW, float eps, herd_act act);
    /* f (NULL: nothing else): the fused passes of bn_backward_fusion; a backend may mask dout in
     * place (ref) or as it reads it (cpu). */
    void (*batchnorm_backward)(const herd_exec *ex, float *din, float *dgamma, float *dbeta, float *dout,
                               const float *in, const float *mean, const float *rstd, const float *gamma, int B,
                               int C, int HW, const bn_backward_fusion *f);
    void (*act_forward)(const herd_exec *ex, float *out, const float *in, int64_t n, herd_act act, float alpha);
    void (*act_backward)(const herd_exec *ex, float *din, const float *dout, const float *in, const float *out,
                         int64_t n, herd_act act, float alpha);
    /* conv2d_forward then post (conv2d_post: a folded batch norm's scale and shift, then act
     * HERD_ACT_RELU (max(out, 0)) or HERD_ACT_RELU6 (min(max(out, 0), 6))), each output while it
     * is still in cache: the executor's fused conv + batch norm + activation. NULL = not offered
     * (the layer runs them apart). */
    void (*conv2d_forward_act)(const herd_exec *ex, float *out, const float *in, const float *w, const float *b,
                               const conv2d_dims *d, const conv2d_post *post);
    /* The batch norm of batchnorm_forward_eval as out = in * scale[c] + shift[c] (a multiply then
     * an add, its exact bits) for an inference plan to fold into the conv before it; NULL: this
     * backend's batch norm is not such an affine (the planner leaves it alone). */
    void (*batchnorm_eval_affine)(float *scale, float *shift, const float *gamma, const float *beta,
                                  const float *running_mean, const float *running_var, int C, float eps);
    /* Backward of a ReLU or ReLU6 computed in place (out aliases in, dout aliases din):
     * g[i] = out[i] > 0 (and < 6 for ReLU6) ? g[i] : 0. Overwrites, as the buffer is the
     * producer's dout and the activation is its only consumer; out lies strictly inside
     * (0, 6) exactly where the pre-activation did. */
    void (*act_backward_inplace)(const herd_exec *ex, float *g, const float *out, int64_t n, herd_act act);
    /* act_backward_inplace(dout, out, act) then conv2d_backward, each image masked while it is
     * in cache: the backward of the fused conv + activation. NULL = not offered. */
    void (*conv2d_backward_act)(const herd_exec *ex, float *din, float *dw, float *db, float *dout, const float *out,
                                const float *in, const float *w, const conv2d_dims *d, herd_act act);
    /* out = a + b, then act (HERD_ACT_NONE, HERD_ACT_RELU or HERD_ACT_RELU6) as act_forward computes it, each
     * element once: the bits of the add then the act op (a residual add and the ReLU fused into it). NULL =
     * not offered (the layer runs the reference add, then act_forward). */
    void (*add_act_forward)(const herd_exec *ex, float *out, const float *a, const float *b, int64_t n, herd_act act);
    /* multi-head self-attention (ops.h attn_dims); workspace floats for these dims and threads */
    size_t (*attention_workspace)(const attn_dims *d, int threads);
    void (*attention_forward)(const herd_exec *ex, float *out, float *att, const float *qkv, const attn_dims *d);
    void (*attention_backward)(const herd_exec *ex, float *dqkv, const float *dout, const float *qkv, const float *att,
                               const attn_dims *d);
} herd_backend;

extern const herd_backend herd_backend_ref;
extern const herd_backend herd_backend_cpu;
/* --precision bf16: conv and dense products in bf16 with fp32 accumulation (vdpbf16ps),
 * everything else as "cpu"; a layer it has no kernel for (attention, grouped or dilated
 * convolutions) falls back to "cpu" in fp32. Not found by name: chosen by herd_model_set_precision. */
const herd_backend *herd_backend_cpu_bf16(void);

/* "ref" or "cpu"; NULL if unknown. */
const herd_backend *herd_backend_find(const char *name);

/* Called once before training with the thread count of herd's pool. The cpu backend
 * parallelises over images (conv) and row blocks (dense) on herd's pool and calls the
 * gemm from inside each pool thread, so this pins OpenBLAS to ONE thread whatever
 * `threads` is: OpenBLAS's own threads would only oversubscribe the cores. Measured with
 * tests/helpers/bench_backend.c, target model at batch 32 on the 2-core dev VM, conv on
 * OpenBLAS: pool 2 + OpenBLAS 1 = 15.0 ms per step, pool 1 + OpenBLAS 2 = 21.4 ms. */
void herd_backend_set_threads(int threads);

#endif
