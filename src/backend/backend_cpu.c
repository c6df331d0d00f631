/* The "cpu" backend table: sgemm-based conv and dense, tight parallel loops for the rest
 * (implementations in cpu_*.c). */
#include "cpu_internal.h"

const herd_backend herd_backend_cpu = {
    .name = "cpu",
    .unavailable = herdi_cpu_env_error,
    .conv2d_workspace = herdi_cpu_conv_workspace,
    .conv2d_prepared = herdi_cpu_conv_prepared,
    .conv2d_unsupported = herdi_cpu_conv2d_unsupported,
    .conv2d_forward = herdi_cpu_conv_forward,
    .conv2d_backward = herdi_cpu_conv_backward,
    .dense_forward = herdi_cpu_dense_forward,
    .dense_backward = herdi_cpu_dense_backward,
    .maxpool2d_forward = herdi_cpu_maxpool2d_forward,
    .maxpool2d_backward = herdi_cpu_maxpool2d_backward,
    .maxpool2d_backward_set = herdi_cpu_maxpool2d_backward_set,
    .avgpool2d_forward = herdi_cpu_avgpool2d_forward,
    .avgpool2d_backward = herdi_cpu_avgpool2d_backward,
    .batchnorm_forward_train = herdi_cpu_batchnorm_forward_train,
    .batchnorm_forward_eval = herdi_cpu_batchnorm_forward_eval,
    .batchnorm_backward = herdi_cpu_batchnorm_backward,
    .batchnorm_eval_affine = herdi_cpu_batchnorm_eval_affine,
    .act_forward = herdi_cpu_act_forward,
    .act_backward = herdi_cpu_act_backward,
    .conv2d_forward_act = herdi_cpu_conv_forward_act,
    .act_backward_inplace = herdi_cpu_act_backward_inplace,
    .conv2d_backward_act = herdi_cpu_conv_backward_act,
    .add_act_forward = herdi_cpu_add_act_forward,
    .attention_workspace = herdi_cpu_attention_workspace,
    .attention_forward = herdi_cpu_attention_forward,
    .attention_backward = herdi_cpu_attention_backward,
};
