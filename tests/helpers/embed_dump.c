/* Test helper: a few training steps of a model with embedding tables, through the trainer (the
 * dense optimizer and the sparse one of each table), dumped for PyTorch to redo: the initial
 * parameters, every model input of the samples (ids in each table's range, some equal to its pad
 * id), the labels, the first step's logits and loss, and per step s the dense gradients
 * (s<k>.grad.NAME), each table's row-sparse gradient (s<k>.ids.NAME, s<k>.values.NAME) and every
 * parameter after the step (s<k>.after.NAME). With `ragged`, the bags of each embedding_bag hold
 * 1..L ids, their unused slots HERD_NO_ID (as a cat=COL:L column gives them).
 * usage: embed_dump SPEC OUT.safetensors OPTIMIZER SPARSE_OPTIMIZER BATCH STEPS [LR [ragged]] */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "herd/data.h"
#include "herd/io.h"
#include "herd/train.h"
#include "layers/layer_common.h"

#define MAXT 4096

static herd_tensor_ref t[MAXT];
static char names[MAXT][160];
static int nt;

static void add(const char *name, herd_dtype dt, int ndim, const int64_t *shape, const void *data, size_t bytes) {
    void *copy = malloc(bytes ? bytes : 1);
    memcpy(copy, data, bytes);
    snprintf(names[nt], sizeof names[nt], "%s", name);
    t[nt] = (herd_tensor_ref){.name = names[nt], .dtype = dt, .ndim = ndim, .data = copy};
    for (int d = 0; d < ndim; d++) t[nt].shape[d] = shape[d];
    nt++;
}

/* The table that reads model input k (its rows and pad id), or 0 rows when none does. */
static const embed_table *table_of_input(const herd_model *m, int k) {
    for (int i = 0; i < m->n_nodes; i++)
        if ((m->nodes[i].kind->flags & LAYER_READS_IDS) && m->nodes[i].in[0] == -1 - k)
            return (const embed_table *)m->nodes[i].cfg;
    return NULL;
}

int main(int argc, char **argv) {
    if (argc < 7) {
        fprintf(stderr, "usage: embed_dump SPEC OUT OPTIMIZER SPARSE_OPTIMIZER BATCH STEPS [LR]\n");
        return 2;
    }
    int B = atoi(argv[5]), steps = atoi(argv[6]);
    float lr = argc > 7 ? strtof(argv[7], NULL) : 1e-2f;
    int ragged = argc > 8 && !strcmp(argv[8], "ragged");
    herd_error err = {0};
    herd_model *m = NULL;
    if (herd_model_load_spec(&m, argv[1], &err) || herd_model_prepare(m, "ref", B, 1, &err)) {
        fprintf(stderr, "embed_dump: %s\n", err.msg);
        return 1;
    }
    herd_model_init_params(m, 7);
    int64_t N = (int64_t)B * steps, np;
    float *params = herd_model_params(m, &np);
    for (int i = 0; i < herd_model_param_count(m); i++) {
        const herd_param_info *p = herd_model_param(m, i);
        add(p->name, HERD_F32, p->ndim, p->shape, (p->trainable ? params : herd_model_buffers(m, NULL)) + p->offset,
            (size_t)p->numel * 4);
    }
    herd_rng r;
    herd_rng_init(&r, 3, 99);
    int nx = herd_model_input_count(m), K = herd_model_output_size(m);
    herd_tensor xs[HERD_MAX_FIELDS];
    for (int k = 0; k < nx; k++) {
        const char *name;
        herd_tensor in = herd_model_input_desc(m, k, &name);
        int64_t per = herd_tensor_numel(&in), dims[4] = {N};
        for (int d = 0; d < in.ndim; d++) dims[d + 1] = in.dims[d];
        xs[k] = herd_tensor_make(in.dtype, in.ndim + 1, dims, malloc((size_t)(N * per) * 4));
        const embed_table *tb = table_of_input(m, k);
        for (int64_t i = 0; i < N * per; i++) {
            if (in.dtype == HERD_I32) /* small ranges: repeated ids within a batch, and pads */
                ((int32_t *)xs[k].data)[i] = (int32_t)herd_rng_below(&r, (uint32_t)(tb->rows < 12 ? tb->rows : 12));
            else
                ((float *)xs[k].data)[i] = 2.0f * herd_rng_uniform(&r) - 1.0f;
        }
        for (int64_t i = 0; ragged && tb && tb->mode && i < N; i++) /* bag i keeps its first 1..per ids */
            for (int64_t j = 1 + (int64_t)herd_rng_below(&r, (uint32_t)per); j < per; j++)
                ((int32_t *)xs[k].data)[i * per + j] = HERD_NO_ID;
        char nm[160];
        snprintf(nm, sizeof nm, "input.%s", name);
        add(nm, in.dtype, in.ndim + 1, dims, xs[k].data, (size_t)(N * per) * 4);
    }
    int32_t *labels = malloc((size_t)N * sizeof *labels);
    for (int64_t i = 0; i < N; i++) labels[i] = (int32_t)herd_rng_below(&r, (uint32_t)K);
    add("labels", HERD_I32, 1, &N, labels, (size_t)N * 4);
    herd_dataset *ds = NULL;
    herd_tensor y = herd_tensor_make(HERD_I32, 1, &N, labels);
    if (herd_dataset_from_memory_fields(&ds, xs, nx, y, K, "dump", &err)) {
        fprintf(stderr, "embed_dump: %s\n", err.msg);
        return 1;
    }
    herd_train_config cfg = herd_train_defaults();
    cfg.batch = B, cfg.optimizer = argv[3], cfg.sparse_optimizer = argv[4], cfg.lr = lr;
    herd_trainer *tr = NULL;
    if (herd_trainer_create(&tr, m, &cfg, steps, &err)) {
        fprintf(stderr, "embed_dump: %s\n", err.msg);
        return 1;
    }
    int64_t *idx = malloc((size_t)N * sizeof *idx);
    for (int64_t i = 0; i < N; i++) idx[i] = i;
    for (int s = 0; s < steps; s++) {
        herd_step_result res;
        if (herd_trainer_step(tr, ds, idx + (int64_t)s * B, B, &res, &err)) {
            fprintf(stderr, "embed_dump: %s\n", err.msg);
            return 1;
        }
        char nm[160];
        if (s == 0) {
            int64_t ld[2] = {B, K};
            float loss = (float)(res.loss_sum / res.loss_units);
            add("logits", HERD_F32, 2, ld, herd_model_output(m), (size_t)B * (size_t)K * 4);
            add("loss", HERD_F32, 0, NULL, &loss, 4);
        }
        for (int i = 0; i < herd_model_param_count(m); i++) {
            const herd_param_info *p = herd_model_param(m, i);
            if (!p->trainable || p->sparse) continue;
            snprintf(nm, sizeof nm, "s%d.grad.%s", s, p->name);
            add(nm, HERD_F32, p->ndim, p->shape, herd_model_grads(m) + p->offset, (size_t)p->numel * 4);
        }
        for (int k = 0; k < herd_model_sparse_count(m); k++) {
            herd_sparse_grad g;
            herd_model_sparse_grad(m, k, &g);
            const char *pn = herd_model_param(m, g.param)->name;
            int64_t vd[2] = {g.rows, g.dim};
            snprintf(nm, sizeof nm, "s%d.ids.%s", s, pn);
            add(nm, HERD_I32, 1, vd, g.ids, (size_t)g.rows * 4);
            snprintf(nm, sizeof nm, "s%d.values.%s", s, pn);
            add(nm, HERD_F32, 2, vd, g.values, (size_t)(g.rows * g.dim) * 4);
        }
        for (int i = 0; i < herd_model_param_count(m); i++) {
            const herd_param_info *p = herd_model_param(m, i);
            if (!p->trainable) continue;
            snprintf(nm, sizeof nm, "s%d.after.%s", s, p->name);
            add(nm, HERD_F32, p->ndim, p->shape, params + p->offset, (size_t)p->numel * 4);
        }
    }
    if (herd_safetensors_write(argv[2], t, nt, NULL, 0, &err)) {
        fprintf(stderr, "embed_dump: %s\n", err.msg);
        return 1;
    }
    herd_trainer_destroy(tr);
    herd_dataset_close(ds);
    herd_model_destroy(m);
    for (int i = 0; i < nt; i++) free((void *)t[i].data);
    free(idx);
    return 0;
}
