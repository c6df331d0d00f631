/* The "cpu" backend table: sgemm-based conv and dense, tight parallel loops for the rest
 * (implementations in cpu_*.c). */
#include "cpu_internal.h"

const herd_backend herd_backend_cpu = {
    .name = "cpu",
    .unavailable = cpu_env_error,
    .conv2d_workspace = cpu_conv_workspace,
    .conv2d_unsupported = cpu_conv2d_unsupported,
    .conv2d_forward = cpu_conv_forward,
    .conv2d_backward = cpu_conv_backward,
    .dense_forward = cpu_dense_forward,
    .dense_backward = cpu_dense_backward,
    .maxpool2d_forward = cpu_maxpool2d_forward,
    .maxpool2d_backward = cpu_maxpool2d_backward,
    .avgpool2d_forward = cpu_avgpool2d_forward,
    .avgpool2d_backward = cpu_avgpool2d_backward,
    .batchnorm_forward_train = cpu_batchnorm_forward_train,
    .batchnorm_forward_eval = cpu_batchnorm_forward_eval,
    .batchnorm_backward = cpu_batchnorm_backward,
    .act_forward = cpu_act_forward,
    .act_backward = cpu_act_backward,
    .conv2d_forward_act = cpu_conv_forward_act,
    .act_backward_inplace = cpu_act_backward_inplace,
    .conv2d_backward_act = cpu_conv_backward_act,
    .attention_workspace = cpu_attention_workspace,
    .attention_forward = cpu_attention_forward,
    .attention_backward = cpu_attention_backward,
};
