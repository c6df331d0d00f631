/* Test helper for test_gpt_vs_torch.py: a language model spec (an i32 (T) input, per-position
 * logits) on STEPS random batches of ids: the first batch's every layer output, loss and
 * parameter gradient, then the loss of each of STEPS AdamW steps (lr 1e-3, weight decay 0.1 on
 * matrices only, as herd train --optimizer adamw --weight-decay 0.1 --decay matrices), all in one
 * safetensors file with the initial weights.
 * usage: gpt_dump SPEC OUT.safetensors BACKEND BATCH STEPS [SEED] */
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
        fprintf(stderr, "usage: gpt_dump SPEC OUT BACKEND BATCH STEPS [SEED]\n");
        return 2;
    }
    const char *spec = argv[1], *out = argv[2], *backend = argv[3];
    int B = atoi(argv[4]), steps = atoi(argv[5]);
    uint64_t seed = argc > 6 ? strtoull(argv[6], NULL, 10) : 7;
    herd_error err = {0};
    herd_model *m = NULL;
    if (herd_model_load_spec(&m, spec, &err)) {
        fprintf(stderr, "gpt_dump: %s\n", err.msg);
        return 1;
    }
    herd_model_set_memory_reuse(m, 0); /* every layer's output stays readable after forward */
    if (herd_model_prepare(m, backend, B, 2, &err)) {
        fprintf(stderr, "gpt_dump: %s\n", err.msg);
        return 1;
    }
    herd_model_init_params(m, seed);
    int c, h, w;
    herd_model_input_shape(m, &c, &h, &w);
    int T = c * h * w, V = herd_model_output_size(m) / T;
    int32_t *ids = malloc((size_t)steps * B * T * sizeof *ids), *labels = malloc((size_t)steps * B * T * sizeof *labels);
    herd_rng r;
    herd_rng_init(&r, seed, 99);
    for (int64_t i = 0; i < (int64_t)steps * B * T; i++) {
        ids[i] = (int32_t)herd_rng_below(&r, (uint32_t)V);
        labels[i] = (int32_t)herd_rng_below(&r, (uint32_t)V);
    }
    static herd_tensor_ref t[MAXT];
    static char names[MAXT][128];
    int n = 0, np = herd_model_param_count(m);
    int64_t n_params;
    float *params = herd_model_params(m, &n_params);
    float *before = malloc((size_t)n_params * sizeof *before), *losses = malloc((size_t)steps * sizeof *losses);
    memcpy(before, params, (size_t)n_params * sizeof *before);
    for (int i = 0; i < np; i++) {
        const herd_param_info *p = herd_model_param(m, i);
        t[n] = (herd_tensor_ref){.name = p->name, .dtype = HERD_F32, .ndim = p->ndim, .data = before + p->offset};
        memcpy(t[n].shape, p->shape, sizeof p->shape);
        n++;
    }
    /* step 0: activations, loss, gradients */
    memcpy(herd_model_batch_buffer(m), ids, (size_t)B * T * sizeof *ids);
    herd_model_set_inputs(m, 0, B);
    if (herd_model_forward(m, B, 1, &err)) {
        fprintf(stderr, "gpt_dump: %s\n", err.msg);
        return 1;
    }
    float *acts = NULL;
    size_t acts_len = 0;
    for (int i = 0; i < m->n_nodes; i++) acts_len += (size_t)B * (size_t)m->nodes[i].numel;
    acts = malloc(acts_len * sizeof *acts);
    size_t at = 0;
    for (int i = 0; i < m->n_nodes && n < MAXT; i++) {
        node *nd = &m->nodes[i];
        snprintf(names[n], sizeof names[n], "act.%s", nd->name);
        memcpy(acts + at, nd->out, (size_t)B * (size_t)nd->numel * sizeof *acts);
        t[n] = (herd_tensor_ref){.name = names[n], .dtype = HERD_F32, .ndim = 1 + nd->ndim, .data = acts + at};
        t[n].shape[0] = B;
        for (int d = 0; d < nd->ndim; d++) t[n].shape[1 + d] = nd->dims[d];
        at += (size_t)B * (size_t)nd->numel;
        n++;
    }
    herd_optim_config oc = herd_optim_defaults(HERD_OPT_ADAMW);
    oc.weight_decay = 0.1f;
    herd_optimizer opt;
    int64_t ranges[2 * 64];
    int nr = 0;
    for (int i = 0; i < np; i++) { /* decay on matrices only (src/train/train.c decay_on_matrices) */
        const herd_param_info *p = herd_model_param(m, i);
        if (!p->trainable || p->ndim < 2) continue;
        if (nr && ranges[2 * nr - 1] == p->offset) ranges[2 * nr - 1] += p->numel;
        else ranges[2 * nr] = p->offset, ranges[2 * nr + 1] = p->offset + p->numel, nr++;
    }
    if (herd_optimizer_init(&opt, &oc, n_params, &err) || herd_optimizer_set_decay_ranges(&opt, ranges, nr, &err)) {
        fprintf(stderr, "gpt_dump: %s\n", err.msg);
        return 1;
    }
    float *grads0 = malloc((size_t)n_params * sizeof *grads0);
    for (int s = 0; s < steps; s++) {
        memcpy(herd_model_batch_buffer(m), ids + (size_t)s * B * T, (size_t)B * T * sizeof *ids);
        herd_model_set_inputs(m, 0, B);
        if (herd_model_forward_backward(m, labels + (size_t)s * B * T, B, 1.0f, &losses[s], NULL, &err)) {
            fprintf(stderr, "gpt_dump: %s\n", err.msg);
            return 1;
        }
        if (s == 0) memcpy(grads0, herd_model_grads(m), (size_t)n_params * sizeof *grads0);
        herd_optimizer_step(&opt, params, herd_model_grads(m), 1e-3f);
    }
    for (int i = 0; i < np; i++) {
        const herd_param_info *p = herd_model_param(m, i);
        snprintf(names[n], sizeof names[n], "grad.%s", p->name);
        t[n] = (herd_tensor_ref){.name = names[n], .dtype = HERD_F32, .ndim = p->ndim, .data = grads0 + p->offset};
        memcpy(t[n].shape, p->shape, sizeof p->shape);
        n++;
    }
    t[n++] = (herd_tensor_ref){.name = "ids", .dtype = HERD_I32, .ndim = 3, .shape = {steps, B, T}, .data = ids};
    t[n++] = (herd_tensor_ref){.name = "labels", .dtype = HERD_I32, .ndim = 3, .shape = {steps, B, T}, .data = labels};
    t[n++] = (herd_tensor_ref){.name = "losses", .dtype = HERD_F32, .ndim = 1, .shape = {steps}, .data = losses};
    if (herd_safetensors_write(out, t, n, NULL, 0, &err)) {
        fprintf(stderr, "gpt_dump: %s\n", err.msg);
        return 1;
    }
    herd_optimizer_free(&opt);
    free(ids), free(labels), free(before), free(losses), free(acts), free(grads0);
    herd_model_destroy(m);
    return 0;
}
