/* Test helper: runs one training step of a spec on a deterministic batch and writes
 * everything PyTorch needs to redo it into one safetensors file: weights, input, labels,
 * dropout masks, logits, loss, parameter gradients, and the parameters after one step
 * of the chosen optimizer.
 * usage: model_dump SPEC OUT.safetensors BACKEND BATCH OPTIMIZER [SEED] */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "herd/io.h"
#include "herd/model.h"
#include "model/model_internal.h"
#include "optim/optim.h"

#define MAXT 1024

int main(int argc, char **argv) {
    if (argc < 6) {
        fprintf(stderr, "usage: model_dump SPEC OUT BACKEND BATCH OPTIMIZER [SEED]\n");
        return 2;
    }
    const char *spec = argv[1], *out = argv[2], *backend = argv[3], *opt_name = argv[5];
    int B = atoi(argv[4]);
    uint64_t seed = argc > 6 ? strtoull(argv[6], NULL, 10) : 7;
    herd_error err = {0};
    herd_model *m = NULL;
    if (herd_model_load_spec(&m, spec, &err) || herd_model_prepare(m, backend, B, 2, &err)) {
        fprintf(stderr, "model_dump: %s\n", err.msg);
        return 1;
    }
    herd_model_init_params(m, seed);
    int c, h, w;
    herd_model_input_shape(m, &c, &h, &w);
    int K = herd_model_output_size(m);
    int64_t in_numel = (int64_t)B * c * h * w;
    herd_rng r;
    herd_rng_init(&r, seed, 99);
    float *x = herd_model_input(m);
    for (int64_t i = 0; i < in_numel; i++) x[i] = herd_rng_uniform(&r);
    /* a class per sample, or per position for (T,K) logits (the model's default target) */
    int64_t P = (int64_t)(herd_model_target_bytes(m) / sizeof(int32_t));
    const node *last = &m->nodes[m->n_nodes - 1];
    int64_t classes = last->dims[last->ndim - 1];
    int32_t *labels = malloc((size_t)(B * P) * sizeof *labels);
    for (int64_t i = 0; i < B * P; i++) labels[i] = (int32_t)herd_rng_below(&r, (uint32_t)classes);
    float *x_copy = malloc((size_t)in_numel * sizeof *x_copy);
    memcpy(x_copy, x, (size_t)in_numel * sizeof *x_copy);

    static herd_tensor_ref t[MAXT];
    static char names[MAXT][128];
    int n = 0;
    int np = herd_model_param_count(m);
    int64_t n_params;
    float *params = herd_model_params(m, &n_params);
    float *before = malloc((size_t)n_params * sizeof *before);
    memcpy(before, params, (size_t)n_params * sizeof *before);
    float *buffers_before = NULL;
    int64_t n_buf;
    float *buffers = herd_model_buffers(m, &n_buf);
    buffers_before = malloc((size_t)(n_buf ? n_buf : 1) * sizeof(float));
    memcpy(buffers_before, buffers, (size_t)n_buf * sizeof(float));
    for (int i = 0; i < np; i++) {
        const herd_param_info *p = herd_model_param(m, i);
        t[n] = (herd_tensor_ref){.name = p->name, .dtype = HERD_F32, .ndim = p->ndim};
        memcpy(t[n].shape, p->shape, sizeof p->shape);
        t[n].data = (p->trainable ? before : buffers_before) + p->offset;
        n++;
    }
    if (herd_model_forward(m, B, 1, &err)) {
        fprintf(stderr, "model_dump: %s\n", err.msg);
        return 1;
    }
    static float loss;
    loss = herd_model_loss(m, labels, B, NULL);
    herd_model_backward(m, labels, B, 1.0f);
    t[n++] = (herd_tensor_ref){.name = "input", .dtype = HERD_F32, .ndim = 4, .shape = {B, c, h, w}, .data = x_copy};
    t[n++] = (herd_tensor_ref){.name = "labels", .dtype = HERD_I32, .ndim = P > 1 ? 2 : 1, .shape = {B, P},
                               .data = labels};
    t[n++] = (herd_tensor_ref){.name = "logits", .dtype = HERD_F32, .ndim = P > 1 ? 3 : 2,
                               .shape = {B, P > 1 ? P : K, classes}, .data = herd_model_output(m)};
    t[n++] = (herd_tensor_ref){.name = "loss", .dtype = HERD_F32, .ndim = 0, .data = &loss};
    for (int i = 0; i < m->n_nodes; i++) {
        node *nd = &m->nodes[i];
        if (strcmp(nd->kind->name, "dropout") != 0) continue;
        snprintf(names[n], sizeof names[n], "mask.%s", nd->name);
        t[n] = (herd_tensor_ref){.name = names[n], .dtype = HERD_F32, .ndim = 2,
                                 .shape = {B, nd->numel}, .data = nd->saved[0]};
        n++;
    }
    for (int i = 0; i < np; i++) {
        const herd_param_info *p = herd_model_param(m, i);
        if (!p->trainable) continue;
        snprintf(names[n], sizeof names[n], "grad.%s", p->name);
        t[n] = (herd_tensor_ref){.name = names[n], .dtype = HERD_F32, .ndim = p->ndim,
                                 .data = herd_model_grads(m) + p->offset};
        memcpy(t[n].shape, p->shape, sizeof p->shape);
        n++;
    }
    /* one optimizer step with lr 1e-3 */
    herd_opt_kind kind;
    if (!herd_opt_kind_parse(opt_name, &kind)) {
        fprintf(stderr, "model_dump: unknown optimizer %s\n", opt_name);
        return 2;
    }
    herd_optim_config oc = herd_optim_defaults(kind);
    herd_optimizer opt;
    if (herd_optimizer_init(&opt, &oc, n_params, &err)) return 1;
    herd_optimizer_step(&opt, params, herd_model_grads(m), 1e-3f);
    for (int i = 0; i < np; i++) {
        const herd_param_info *p = herd_model_param(m, i);
        snprintf(names[n], sizeof names[n], "after.%s", p->name);
        t[n] = (herd_tensor_ref){.name = names[n], .dtype = HERD_F32, .ndim = p->ndim,
                                 .data = (p->trainable ? params : buffers) + p->offset};
        memcpy(t[n].shape, p->shape, sizeof p->shape);
        n++;
    }
    if (herd_safetensors_write(out, t, n, NULL, 0, &err)) {
        fprintf(stderr, "model_dump: %s\n", err.msg);
        return 1;
    }
    herd_optimizer_free(&opt);
    free(labels);
    free(x_copy);
    free(before);
    free(buffers_before);
    herd_model_destroy(m);
    return 0;
}
