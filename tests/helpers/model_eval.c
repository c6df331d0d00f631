/* Test helper: inference of a model (spec + weights, or an .onnx file) on the tensor "input"
 * of a safetensors file, writing "logits" to another, so Python tests can compare herd's
 * forward pass with PyTorch's.
 * usage: model_eval MODEL.spec|MODEL.onnx WEIGHTS.safetensors|- IN.safetensors OUT.safetensors */
#include <stdio.h>
#include <string.h>

#include "herd/io.h"
#include "herd/model.h"
#include "herd/onnx.h"

static int is_onnx(const char *p) {
    size_t n = strlen(p);
    return n > 5 && strcmp(p + n - 5, ".onnx") == 0;
}

int main(int argc, char **argv) {
    if (argc != 5) {
        fprintf(stderr, "usage: model_eval MODEL WEIGHTS|- IN OUT\n");
        return 2;
    }
    herd_error err = {0};
    herd_model *m = NULL;
    herd_safetensors *in = NULL;
    int rc = 1;
    if (is_onnx(argv[1]) ? herd_model_import_onnx(&m, argv[1], &err) : herd_model_load_spec(&m, argv[1], &err))
        goto fail;
    if (strcmp(argv[2], "-") != 0 && herd_model_load(m, argv[2], &err)) goto fail;
    if (herd_safetensors_open(&in, argv[3], &err)) goto fail;
    const herd_tensor_ref *x = herd_safetensors_find(in, "input");
    int c, h, w;
    herd_model_input_shape(m, &c, &h, &w);
    if (!x || x->dtype != HERD_F32 || x->ndim < 2 || x->shape[0] < 1) {
        fprintf(stderr, "model_eval: %s: no F32 tensor 'input' [B, ...]\n", argv[3]);
        goto out;
    }
    int B = (int)x->shape[0];
    int64_t per = 1;
    for (int d = 1; d < x->ndim; d++) per *= x->shape[d];
    if (per != (int64_t)c * h * w) {
        fprintf(stderr, "model_eval: input has %lld values per sample, the model takes %d\n", (long long)per,
                c * h * w);
        goto out;
    }
    if (herd_model_prepare(m, "ref", B, 1, &err)) goto fail;
    memcpy(herd_model_input(m), x->data, (size_t)B * (size_t)per * sizeof(float));
    herd_model_normalize_input(m, B); /* raw inputs, as herd_predict takes them */
    if (herd_model_forward(m, B, 0, &err)) goto fail;
    int K = herd_model_output_size(m);
    herd_tensor_ref out = {
        .name = "logits", .dtype = HERD_F32, .ndim = 2, .shape = {B, K}, .data = herd_model_output(m)};
    if (herd_safetensors_write(argv[4], &out, 1, NULL, 0, &err)) goto fail;
    rc = 0;
    goto out;
fail:
    fprintf(stderr, "model_eval: %s\n", err.msg);
out:
    herd_safetensors_close(in);
    herd_model_destroy(m);
    return rc;
}
