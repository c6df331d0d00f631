/* Reference operators: plain C, single-threaded, the oracle every fast path is checked against.
 * Layout is PyTorch's: activations NCHW, conv weights OIHW, dense weights [out, in].
 * Argument order: outputs, saved-for-backward buffers, inputs, weights, sizes.
 * Every backward ACCUMULATES (+=) into din and into parameter gradients, so one
 * explicit zeroing per step serves residual branches too. A NULL din (or dweight,
 * dbias) means "not needed" and is skipped. */
#ifndef HERD_OPS_H
#define HERD_OPS_H

#include <stdint.h>

#include "herd/core.h"

typedef struct conv2d_dims {
    int B, C, H, W;     /* input */
    int OC, KH, KW;     /* weight is (OC, C/G, KH, KW) */
    int SH, SW, PH, PW; /* stride, zero padding */
    int OH, OW;         /* output, = (H + 2PH - DH*(KH-1) - 1) / SH + 1 */
    int G;              /* groups: input channels [g*C/G, (g+1)*C/G) feed outputs [g*OC/G, (g+1)*OC/G);
                           0 reads as 1 (herdi_conv2d_dims_finish sets it) */
    int DH, DW;         /* dilation: tap k reads input row o*SH - PH + k*DH; 0 reads as 1 */
    int inference;      /* a call (or plan) of an inference-only model (herd_exec.inference): no training
                           step reads the output, so a kernel may take a form that sums in another
                           order on more shapes (Winograd: cpu_winograd.c); the reference ops ignore it */
} conv2d_dims;

/* Whether d uses groups or dilation (the plain convolution's fast paths do not). */
static inline int conv2d_is_grouped(const conv2d_dims *d) { return d->G > 1 || d->DH > 1 || d->DW > 1; }

typedef struct pool2d_dims {
    int B, C, H, W;
    int KH, KW, SH, SW, PH, PW;
    int ceil; /* output size rounded up, as PyTorch's ceil_mode: the last window may run past the
                 padded input (it is clipped; an average divides by its part inside the padding) */
    int OH, OW;
} pool2d_dims;

/* multi-head self-attention over T positions of C = H * hs values (llm.c's attention):
 * qkv (B,T,3C) holds each position's query, key and value ([q | k | v], head h at h*hs);
 * out (B,T,C) the heads' outputs side by side; att (B,H,T,T) the softmax probabilities
 * (0 above the diagonal when causal), kept for backward. */
typedef struct attn_dims {
    int B, T, C, H;
    int causal;
} attn_dims;

typedef enum herd_act {
    HERD_ACT_NONE = 0,
    HERD_ACT_RELU,
    HERD_ACT_LEAKY_RELU, /* alpha = negative slope */
    HERD_ACT_SIGMOID,
    HERD_ACT_TANH,
    HERD_ACT_GELU,       /* exact (erf) form, PyTorch's default */
    HERD_ACT_RELU6,      /* min(max(x, 0), 6) */
    HERD_ACT_HARDSIGMOID,/* min(max(x + 3, 0), 6) / 6, PyTorch's (ONNX HardSigmoid alpha 1/6, beta 1/2) */
    HERD_ACT_HARDSWISH,  /* x * hardsigmoid(x) */
    HERD_ACT_SILU,       /* x * sigmoid(x) */
    HERD_ACT_GELU_TANH   /* 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))): GPT-2's, PyTorch's approximate='tanh' */
} herd_act;

/* Fills OH/OW from the rest (G, DH, DW of 0 become 1); returns 0 when the output would be empty,
 * sizes overflow or G does not divide C and OC. */
int herdi_conv2d_dims_finish(conv2d_dims *d);
int herdi_pool2d_dims_finish(pool2d_dims *d);

/* conv2d: out (B,OC,OH,OW), in (B,C,H,W), w (OC,C/G,KH,KW), b (OC) or NULL. */
void herdi_ref_conv2d_forward(float *out, const float *in, const float *w, const float *b, const conv2d_dims *d);
void herdi_ref_conv2d_backward(float *din, float *dw, float *db, const float *dout, const float *in, const float *w,
                         const conv2d_dims *d);

/* maxpool2d: out (B,C,OH,OW); argmax (B,C,OH,OW) holds the index h*W+w of the max
 * within its (b,c) plane (padding never wins; ties go to the first). */
void herdi_ref_maxpool2d_forward(float *out, int32_t *argmax, const float *in, const pool2d_dims *d);
void herdi_ref_maxpool2d_backward(float *din, const float *dout, const int32_t *argmax, const pool2d_dims *d);

/* avgpool2d, count_include_pad = true (PyTorch's default). */
void herdi_ref_avgpool2d_forward(float *out, const float *in, const pool2d_dims *d);
void herdi_ref_avgpool2d_backward(float *din, const float *dout, const pool2d_dims *d);

/* global average pool: out (B,C), in (B,C,HW). */
void herdi_ref_gap_forward(float *out, const float *in, int B, int C, int HW);
void herdi_ref_gap_backward(float *din, const float *dout, int B, int C, int HW);

/* dense: out (B,OUT), in (B,IN), w (OUT,IN), b (OUT) or NULL. */
void herdi_ref_dense_forward(float *out, const float *in, const float *w, const float *b, int B, int IN, int OUT);
void herdi_ref_dense_backward(float *din, float *dw, float *db, const float *dout, const float *in, const float *w, int B,
                        int IN, int OUT);

/* inverted dropout: mask[i] is 0 or 1/(1-p), drawn from rng; out = in * mask. */
void herdi_ref_dropout_forward(float *out, float *mask, const float *in, int64_t n, float p, herd_rng *rng);
void herdi_ref_dropout_backward(float *din, const float *dout, const float *mask, int64_t n);

/* batch norm over (B, C, HW) per channel C (HW = 1 after a dense layer).
 * Train: normalises with the batch mean and biased variance, saves mean and
 * rstd = 1/sqrt(var + eps) (C each), and updates the running stats as PyTorch
 * does: r = (1 - momentum) r + momentum x, with the unbiased variance. */
void herdi_ref_batchnorm_forward_train(float *out, float *mean, float *rstd, float *running_mean, float *running_var,
                                 const float *in, const float *gamma, const float *beta, int B, int C, int HW,
                                 float momentum, float eps);
void herdi_ref_batchnorm_forward_eval(float *out, const float *in, const float *gamma, const float *beta,
                                const float *running_mean, const float *running_var, int B, int C, int HW, float eps);
void herdi_ref_batchnorm_backward(float *din, float *dgamma, float *dbeta, const float *dout, const float *in,
                            const float *mean, const float *rstd, const float *gamma, int B, int C, int HW);
/* SyncBatchNorm: the same with the batch spread over ranks, sum(user, v, n) adding v[0..n) over
 * them in place (each rank passes its rows); scratch: 2C + 2 doubles. Backward adds this rank's
 * share to dgamma and dbeta (the ranks' parameter gradients are summed afterwards) and the whole
 * batch's terms to din. */
typedef void (*ref_sum_fn)(void *user, double *v, int n);
void herdi_ref_batchnorm_forward_train_sync(float *out, float *mean, float *rstd, float *running_mean, float *running_var,
                                      const float *in, const float *gamma, const float *beta, int B, int C, int HW,
                                      float momentum, float eps, ref_sum_fn sum, void *user, double *scratch);
void herdi_ref_batchnorm_backward_sync(float *din, float *dgamma, float *dbeta, const float *dout, const float *in,
                                 const float *mean, const float *rstd, const float *gamma, int B, int C, int HW,
                                 ref_sum_fn sum, void *user, double *scratch);

/* elementwise activations; backward gets both in and out (each kind uses what it needs). */
void herdi_ref_act_forward(float *out, const float *in, int64_t n, herd_act act, float alpha);
void herdi_ref_act_backward(float *din, const float *dout, const float *in, const float *out, int64_t n, herd_act act,
                      float alpha);

/* softmax over the last dimension K of (B, K). */
void herdi_ref_softmax_forward(float *out, const float *in, int B, int K);
void herdi_ref_softmax_backward(float *din, const float *dout, const float *out, int B, int K);

/* attention: out = softmax(q k^T / sqrt(hs) [causal mask]) v per head; backward
 * accumulates into dqkv (B,T,3C). */
void herdi_ref_attention_forward(float *out, float *att, const float *qkv, const attn_dims *d);
void herdi_ref_attention_backward(float *dqkv, const float *dout, const float *qkv, const float *att, const attn_dims *d);

/* residual add: out = a + b (backward is dout accumulated into both). */
void herdi_ref_add_forward(float *out, const float *a, const float *b, int64_t n);
/* din += dout */
void herdi_ref_accumulate(float *din, const float *dout, int64_t n);

/* fused, stable softmax cross-entropy: logits (N,K) (N rows: samples, or positions), labels in
 * [0,K); rows labelled *ignore (ignore not NULL) are skipped. Writes probs (N,K), returns the mean
 * loss over the rows counted (0 when none). Backward: dlogits += (probs - onehot) * scale for the
 * rows counted, scale usually 1/counted. */
float herdi_ref_softmax_xent_forward(float *probs, const float *logits, const int32_t *labels, int64_t N, int64_t K,
                               const int32_t *ignore);
void herdi_ref_softmax_xent_backward(float *dlogits, const float *probs, const int32_t *labels, int64_t N, int64_t K,
                               const int32_t *ignore, float scale);

/* mean squared error over n elements: returns mean((pred-target)^2); backward dpred += 2(pred-target)/n * scale. */
float herdi_ref_mse_forward(const float *pred, const float *target, int64_t n);
void herdi_ref_mse_backward(float *dpred, const float *pred, const float *target, int64_t n, float scale);

#endif
