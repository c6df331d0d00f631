/* The "cpu-bf16" backend table (--precision bf16): a copy of the cpu backend's table made once,
 * with the bf16 conv and dense of cpu_conv_bf16.c and cpu_dense_bf16.c in place of the fp32
 * ones (a conv of fewer than 32 input channels x kernel taps stays fp32: see
 * herdi_cpu_conv_bf16_unsupported). Every other entry stays the cpu backend's fp32 op (an entry added to "cpu" later comes
 * along); the attention entries are left out, so attention layers fall back to "cpu" (fp32)
 * with a note rather than running in fp32 unsaid. */
#include <pthread.h>

#include "cpu_bf16.h"

static herd_backend table;
static pthread_once_t once = PTHREAD_ONCE_INIT;

static void table_init(void) {
    table = herd_backend_cpu;
    table.name = "cpu-bf16";
    table.unavailable = herdi_cpu_bf16_unavailable;
    table.fallback = &herd_backend_cpu;
    table.conv2d_workspace = herdi_cpu_conv_bf16_workspace;
    table.conv2d_prepared = NULL; /* its products read the fp32 weights as they are */
    table.conv2d_unsupported = herdi_cpu_conv_bf16_unsupported;
    table.conv2d_forward = herdi_cpu_conv_bf16_forward;
    table.conv2d_backward = herdi_cpu_conv_bf16_backward;
    table.conv2d_forward_act = herdi_cpu_conv_bf16_forward_act;
    table.conv2d_backward_act = herdi_cpu_conv_bf16_backward_act;
    table.dense_workspace = herdi_cpu_dense_bf16_workspace;
    table.dense_forward = herdi_cpu_dense_bf16_forward;
    table.dense_backward = herdi_cpu_dense_bf16_backward;
    table.attention_workspace = NULL;
    table.attention_forward = NULL;
    table.attention_backward = NULL;
}

const herd_backend *herd_backend_cpu_bf16(void) {
    pthread_once(&once, table_init);
    return &table;
}
