/* Test helper: one forward and backward of a small spec against typed targets, dumped for
 * PyTorch to redo the loss: logits, targets, the mean loss, the gradient of the loss with
 * respect to the logits (the last layer's output gradient), and the metrics.
 * usage: loss_dump SPEC OUT.safetensors TARGETS BATCH
 *   TARGETS: classes (i32 labels per position in [0, K)), ignored (the same, every third one -1),
 *   binary (i32 0/1),
 *   values (f32 in [0, 1] of the output's shape) */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "herd/io.h"
#include "herd/model.h"

int main(int argc, char **argv) {
    if (argc != 5) {
        fprintf(stderr, "usage: loss_dump SPEC OUT TARGETS BATCH\n");
        return 2;
    }
    const char *kind = argv[3];
    int B = atoi(argv[4]);
    herd_error err = {0};
    herd_model *m = NULL;
    if (herd_model_load_spec(&m, argv[1], &err)) goto fail;
    herd_model_init_params(m, 7);
    int L = herd_model_layer_count(m);
    herd_layer_info li;
    herd_model_layer(m, L - 1, &li);
    int64_t numel = 1;
    for (int d = 0; d < li.ndim; d++) numel *= li.dims[d];
    int64_t K = li.dims[li.ndim - 1], P = numel / K;
    herd_tensor y;
    if (!strcmp(kind, "values")) y = herd_tensor_make(HERD_F32, li.ndim, li.dims, NULL);
    else if (!strcmp(kind, "binary")) y = herd_tensor_make(HERD_I32, 0, NULL, NULL);
    else y = herd_tensor_make(HERD_I32, li.ndim - 1, li.dims, NULL);
    if (herd_model_set_target(m, &y, "loss_dump", &err) || herd_model_prepare(m, "cpu", B, 1, &err)) goto fail;
    herd_rng r;
    herd_rng_init(&r, 11, 3);
    int c, h, w;
    herd_model_input_shape(m, &c, &h, &w);
    float *x = herd_model_input(m);
    for (int64_t i = 0; i < (int64_t)B * c * h * w; i++) x[i] = 4.0f * herd_rng_uniform(&r) - 2.0f;
    size_t tb = herd_model_target_bytes(m);
    void *targets = malloc((size_t)B * tb);
    int64_t nt = (int64_t)B * (int64_t)(tb / 4);
    for (int64_t i = 0; i < nt; i++) {
        if (!strcmp(kind, "values")) ((float *)targets)[i] = herd_rng_uniform(&r);
        else if (!strcmp(kind, "binary")) ((int32_t *)targets)[i] = (int32_t)herd_rng_below(&r, 2);
        else if (!strcmp(kind, "ignored") && i % 3 == 2) ((int32_t *)targets)[i] = -1;
        else ((int32_t *)targets)[i] = (int32_t)herd_rng_below(&r, (uint32_t)K);
    }
    static herd_metrics acc;
    herd_metrics_clear(&acc);
    if (herd_model_forward(m, B, 1, &err)) goto fail;
    static float loss, acc_v, rmse_v, auc_v;
    loss = herd_model_loss(m, targets, B, &acc);
    herd_model_backward(m, targets, B, 1.0f);
    acc_v = (float)herd_metrics_value(&acc, HERD_METRIC_ACCURACY);
    rmse_v = (float)herd_metrics_value(&acc, HERD_METRIC_RMSE);
    auc_v = (float)herd_metrics_value(&acc, HERD_METRIC_AUC);
    float *out, *dout;
    int64_t per;
    herd_model_layer_buffers(m, L - 1, &out, &dout, &per);
    herd_tensor_ref t[8];
    int n = 0;
    t[n++] = (herd_tensor_ref){.name = "logits", .dtype = HERD_F32, .ndim = 3, .shape = {B, P, K}, .data = out};
    t[n++] = (herd_tensor_ref){.name = "dlogits", .dtype = HERD_F32, .ndim = 3, .shape = {B, P, K}, .data = dout};
    t[n++] = (herd_tensor_ref){.name = "targets", .dtype = y.dtype, .ndim = 2, .shape = {B, (int64_t)(tb / 4)},
                               .data = targets};
    t[n++] = (herd_tensor_ref){.name = "loss", .dtype = HERD_F32, .ndim = 0, .data = &loss};
    t[n++] = (herd_tensor_ref){.name = "accuracy", .dtype = HERD_F32, .ndim = 0, .data = &acc_v};
    t[n++] = (herd_tensor_ref){.name = "rmse", .dtype = HERD_F32, .ndim = 0, .data = &rmse_v};
    t[n++] = (herd_tensor_ref){.name = "auc", .dtype = HERD_F32, .ndim = 0, .data = &auc_v};
    if (herd_safetensors_write(argv[2], t, n, NULL, 0, &err)) goto fail;
    free(targets);
    herd_model_destroy(m);
    return 0;
fail:
    fprintf(stderr, "loss_dump: %s\n", err.msg);
    return 1;
}
