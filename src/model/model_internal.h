/* The model's internal layout, shared by the spec parser, the graph executor and the
 * weights reader: a list of nodes in execution order over one parameter registry. */
#ifndef HERD_MODEL_INTERNAL_H
#define HERD_MODEL_INTERNAL_H

#include "backend/backend.h"
#include "herd/model.h"
#include "ops/ops.h"

typedef enum node_kind {
    NODE_CONV,
    NODE_MAXPOOL,
    NODE_AVGPOOL,
    NODE_GAP,
    NODE_DENSE,
    NODE_FLATTEN,
    NODE_DROPOUT,
    NODE_BATCHNORM,
    NODE_ACT,
    NODE_SOFTMAX,
    NODE_ADD
} node_kind;

typedef enum loss_kind { LOSS_XENT = 0, LOSS_MSE } loss_kind;

#define HERD_NAME_MAX 64
#define HERD_MAX_NODES 256
#define HERD_MAX_PARAMS 512

typedef struct node {
    node_kind kind;
    char name[HERD_NAME_MAX]; /* unique; parameter names are "<name>.weight" */
    int line, col;            /* in the spec, for messages */
    int in, in2;              /* producer nodes; -1 = the model input; in2 only for add */
    int c, h, w;              /* output shape per sample */
    /* kind-specific configuration */
    conv2d_dims conv;         /* B filled per call */
    pool2d_dims pool;
    int dense_in, dense_out;
    int has_bias;
    float p;                  /* dropout */
    float eps, momentum;      /* batch-norm */
    herd_act act;
    float alpha;
    int he_init;              /* followed by a ReLU-family activation */
    /* registry indices (-1 = none) */
    int p_weight, p_bias, p_mean, p_var;
    /* planned buffers for max_batch samples */
    float *out, *dout;        /* flatten and in-place ReLUs alias their input's buffers */
    int inplace;              /* a ReLU that is its conv/dense producer's only consumer: it runs on the
                                 producer's buffers (or inside the conv, fused) */
    float *save_a, *save_b;   /* dropout mask | batch-norm mean, rstd */
    int32_t *argmax;          /* maxpool */
    const herd_backend *be;
    double t_forward, t_backward; /* profiling */
} node;

typedef struct param_entry {
    herd_param_info info;
    char name[HERD_NAME_MAX + 16];
} param_entry;

struct herd_model {
    char source[512];
    int in_c, in_h, in_w;
    node nodes[HERD_MAX_NODES];
    int n_nodes;
    param_entry params_reg[HERD_MAX_PARAMS];
    int n_reg;
    int64_t n_params, n_buffers;
    float *params, *grads, *buffers;
    loss_kind loss;
    herd_spec_train train;
    /* execution plan */
    const herd_backend *be;
    herd_pool *pool;
    herd_arena *arena;
    herd_exec ex;
    int max_batch;
    int train_chunk;          /* rows per forward+backward chunk in training; 0: whole batch */
    double *input_norm;       /* in_c means then in_c stds the weights were trained with, or NULL */
    float *input;
    float *probs;             /* softmax probabilities for the loss */
    herd_rng dropout_rng;
    char notes[1024];
    int profile;
    struct herd_trace *trace;
    herd_grad_ready_fn grad_hook;
    void *grad_hook_user;
    int64_t grad_ready[HERD_MAX_NODES]; /* params[grad_ready[i], n) are final once node i's backward ran */
};

/* Adds a registry entry; returns its index or -1 when full. */
int model_add_param(herd_model *m, const char *layer, const char *suffix, int trainable, int ndim,
                    const int64_t *shape);
/* Allocates params/grads/buffers once the graph is complete. */
herd_status model_alloc_params(herd_model *m, herd_error *err);
/* Fills refs[0..n_reg) with the registry tensors (names, shapes, data) and returns n_reg. */
struct herd_tensor_ref;
int model_registry_refs(const herd_model *m, struct herd_tensor_ref *refs);
/* Copies every registry tensor from an open safetensors file after validating names, dtypes
 * and shapes (nothing changes on error). Tensors named own_prefix* belong to the caller and
 * are skipped; any other unknown tensor is an error. */
struct herd_safetensors;
herd_status model_load_tensors(herd_model *m, const struct herd_safetensors *st, const char *own_prefix,
                               herd_error *err);
/* The input normalisation as safetensors metadata pairs: writes 4 strings (2 pairs) into meta
 * and returns 2, 0 when the model has none, -1 out of memory; free owned[0] and owned[1]. */
int model_norm_meta(const herd_model *m, const char **meta, char **owned);
/* Pointer to registry entry i's data. */
float *model_param_data(herd_model *m, int i);

#endif
