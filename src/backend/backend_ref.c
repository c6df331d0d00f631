/* The "ref" backend: the reference ops behind the backend table, single-threaded,
 * no workspace; the oracle the cpu backend is tested against. */
#include "backend.h"

#include <string.h>

static size_t ref_conv2d_workspace(const conv2d_dims *d, int threads) {
    (void)d;
    (void)threads;
    return 0;
}

static const char *ref_conv2d_unsupported(const conv2d_dims *d) {
    (void)d;
    return NULL;
}

static void ref_be_conv2d_forward(const herd_exec *ex, float *out, const float *in, const float *w, const float *b,
                                  const conv2d_dims *d) {
    (void)ex;
    herdi_ref_conv2d_forward(out, in, w, b, d);
}

static void ref_be_conv2d_backward(const herd_exec *ex, float *din, float *dw, float *db, const float *dout,
                                   const float *in, const float *w, const conv2d_dims *d) {
    (void)ex;
    herdi_ref_conv2d_backward(din, dw, db, dout, in, w, d);
}

static void ref_be_dense_forward(const herd_exec *ex, float *out, const float *in, const float *w, const float *b,
                                 int B, int IN, int OUT) {
    (void)ex;
    herdi_ref_dense_forward(out, in, w, b, B, IN, OUT);
}

static void ref_be_dense_backward(const herd_exec *ex, float *din, float *dw, float *db, const float *dout,
                                  const float *in, const float *w, int B, int IN, int OUT) {
    (void)ex;
    herdi_ref_dense_backward(din, dw, db, dout, in, w, B, IN, OUT);
}

static void ref_be_maxpool2d_forward(const herd_exec *ex, float *out, int32_t *argmax, const float *in,
                                     const pool2d_dims *d) {
    (void)ex;
    herdi_ref_maxpool2d_forward(out, argmax, in, d);
}

static void ref_be_maxpool2d_backward(const herd_exec *ex, float *din, const float *dout, const int32_t *argmax,
                                      const pool2d_dims *d) {
    (void)ex;
    herdi_ref_maxpool2d_backward(din, dout, argmax, d);
}

static void ref_be_avgpool2d_forward(const herd_exec *ex, float *out, const float *in, const pool2d_dims *d) {
    (void)ex;
    herdi_ref_avgpool2d_forward(out, in, d);
}

static void ref_be_avgpool2d_backward(const herd_exec *ex, float *din, const float *dout, const pool2d_dims *d) {
    (void)ex;
    herdi_ref_avgpool2d_backward(din, dout, d);
}

static void ref_be_batchnorm_forward_train(const herd_exec *ex, float *out, float *mean, float *rstd,
                                           float *running_mean, float *running_var, const float *in,
                                           const float *gamma, const float *beta, int B, int C, int HW,
                                           float momentum, float eps, herd_act act) {
    if (ex->batch_sum)
        herdi_ref_batchnorm_forward_train_sync(out, mean, rstd, running_mean, running_var, in, gamma, beta, B, C, HW,
                                         momentum, eps, ex->batch_sum, ex->batch_sum_user, ex->batch_scratch);
    else
        herdi_ref_batchnorm_forward_train(out, mean, rstd, running_mean, running_var, in, gamma, beta, B, C, HW, momentum,
                                    eps);
    if (act) herdi_ref_act_forward(out, out, (int64_t)B * C * HW, act, 0);
}

static void ref_be_batchnorm_forward_eval(const herd_exec *ex, float *out, const float *in, const float *gamma,
                                          const float *beta, const float *running_mean, const float *running_var,
                                          int B, int C, int HW, float eps, herd_act act) {
    (void)ex;
    herdi_ref_batchnorm_forward_eval(out, in, gamma, beta, running_mean, running_var, B, C, HW, eps);
    if (act) herdi_ref_act_forward(out, out, (int64_t)B * C * HW, act, 0);
}

static void ref_be_act_backward_inplace(const herd_exec *ex, float *g, const float *out, int64_t n, herd_act act);

static void ref_be_batchnorm_backward(const herd_exec *ex, float *din, float *dgamma, float *dbeta, float *dout,
                                      const float *in, const float *mean, const float *rstd, const float *gamma,
                                      int B, int C, int HW, const bn_backward_fusion *f) {
    const int64_t n = (int64_t)B * C * HW;
    if (f && f->act) ref_be_act_backward_inplace(ex, dout, f->out, n, f->act);
    if (f && f->din_set && din) memset(din, 0, (size_t)n * sizeof(float));
    if (ex->batch_sum)
        herdi_ref_batchnorm_backward_sync(din, dgamma, dbeta, dout, in, mean, rstd, gamma, B, C, HW, ex->batch_sum,
                                    ex->batch_sum_user, ex->batch_scratch);
    else
        herdi_ref_batchnorm_backward(din, dgamma, dbeta, dout, in, mean, rstd, gamma, B, C, HW);
    if (f && f->din_set && f->din_act && din) ref_be_act_backward_inplace(ex, din, in, n, f->din_act);
}

static void ref_be_act_forward(const herd_exec *ex, float *out, const float *in, int64_t n, herd_act act,
                               float alpha) {
    (void)ex;
    herdi_ref_act_forward(out, in, n, act, alpha);
}

static void ref_be_act_backward(const herd_exec *ex, float *din, const float *dout, const float *in,
                                const float *out, int64_t n, herd_act act, float alpha) {
    (void)ex;
    herdi_ref_act_backward(din, dout, in, out, n, act, alpha);
}

static void ref_be_act_backward_inplace(const herd_exec *ex, float *g, const float *out, int64_t n, herd_act act) {
    (void)ex;
    for (int64_t i = 0; i < n; i++) g[i] = out[i] > 0.0f && (act != HERD_ACT_RELU6 || out[i] < 6.0f) ? g[i] : 0.0f;
}

static size_t ref_attention_workspace(const attn_dims *d, int threads) {
    (void)d, (void)threads;
    return 0;
}

static void ref_be_attention_forward(const herd_exec *ex, float *out, float *att, const float *qkv,
                                     const attn_dims *d) {
    (void)ex;
    herdi_ref_attention_forward(out, att, qkv, d);
}

static void ref_be_attention_backward(const herd_exec *ex, float *dqkv, const float *dout, const float *qkv,
                                      const float *att, const attn_dims *d) {
    (void)ex;
    herdi_ref_attention_backward(dqkv, dout, qkv, att, d);
}

const herd_backend herd_backend_ref = {
    .name = "ref",
    .conv2d_workspace = ref_conv2d_workspace,
    .conv2d_unsupported = ref_conv2d_unsupported,
    .conv2d_forward = ref_be_conv2d_forward,
    .conv2d_backward = ref_be_conv2d_backward,
    .dense_forward = ref_be_dense_forward,
    .dense_backward = ref_be_dense_backward,
    .maxpool2d_forward = ref_be_maxpool2d_forward,
    .maxpool2d_backward = ref_be_maxpool2d_backward,
    .avgpool2d_forward = ref_be_avgpool2d_forward,
    .avgpool2d_backward = ref_be_avgpool2d_backward,
    .batchnorm_forward_train = ref_be_batchnorm_forward_train,
    .batchnorm_forward_eval = ref_be_batchnorm_forward_eval,
    .batchnorm_backward = ref_be_batchnorm_backward,
    .act_forward = ref_be_act_forward,
    .act_backward = ref_be_act_backward,
    .conv2d_forward_act = NULL,
    .act_backward_inplace = ref_be_act_backward_inplace,
    .conv2d_backward_act = NULL,
    .attention_workspace = ref_attention_workspace,
    .attention_forward = ref_be_attention_forward,
    .attention_backward = ref_be_attention_backward,
};
