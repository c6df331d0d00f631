/* herd model: a graph of layers built from a spec file (or string), with all
 * parameters named in one registry over one contiguous buffer (gradients likewise).
 * Layouts are PyTorch's: activations NCHW, conv weights OIHW, dense weights [out, in],
 * flatten in C*H*W order, so state_dicts map one to one. */
#ifndef HERD_MODEL_H
#define HERD_MODEL_H

#include <stdint.h>

#include "herd/core.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct herd_model herd_model;

/* Training defaults a spec may carry on a `train` line; 0 / NULL = not set. */
typedef struct herd_spec_train {
    char optimizer[16];
    float lr;
    float sparse_lr; /* the embedding tables' (0: not given, lr) */
    int batch;
    int epochs;
    float weight_decay;
} herd_spec_train;

/* ---- building a model from C: the spec parser and the ONNX importer make models with these ----
 * herd_model_begin, then inputs, then layers in an order where every layer's inputs come
 * before it, then herd_model_finish; the model is then used as a parsed one (init, prepare). */
typedef struct herd_layer_arg {
    const char *key;   /* as in spec files: conv takes filters, kernel, stride, pad, bias (see docs/SPEC.md) */
    const char *value; /* its text: "64", "3x3", "same", "0.1" */
} herd_layer_arg;

/* An empty model; source names it in messages. */
herd_status herd_model_begin(herd_model **out, const char *source, herd_error *err);
/* An input of per-sample shape dims: (C,H,W) for images, (F) for vectors; dtype HERD_F32, or
 * HERD_I32 for token/categorical ids (only layers that take ids, such as embedding, may read an
 * i32 input). name NULL: "input", then "input2"... */
herd_status herd_model_add_input(herd_model *m, const char *name, herd_dtype dtype, int ndim, const int64_t *dims,
                                 herd_error *err);
/* Appends a layer of kind `keyword` ("conv", "batchnorm", "relu", "add", "concat", ...: the spec
 * keywords) named `name` (NULL: a default such as conv3) reading the layers or inputs named in
 * inputs[0..n_inputs) (n_inputs 0: the last layer added, or the last input before any layer).
 * Bad arguments, unknown names and shapes that do not fit are errors naming the layer; the
 * model is then unchanged. */
herd_status herd_model_add_layer(herd_model *m, const char *keyword, const char *name, const char *const *inputs,
                                 int n_inputs, const herd_layer_arg *args, int n_args, herd_error *err);
/* The loss (spec: `loss KIND [key=value ...]`), one of:
 *  "xent"  softmax cross-entropy over the output's last dim (the default). Targets: an i32
 *          class per sample for a vector output (K), or one per position for an output
 *          (T,K): i32 (T); ignore=N skips positions labelled N (PyTorch's ignore_index), the
 *          mean is over the positions counted. Metric: accuracy.
 *  "mse"   mean squared error against f32 targets of the output's shape (ratings,
 *          regression; metric RMSE), or against one-hot targets of i32 class labels
 *          (metric accuracy).
 *  "bce"   binary cross-entropy with logits (a sigmoid applied inside, numerically stable)
 *          against f32 targets in [0, 1] of the output's shape, or i32 0/1 labels for an
 *          output of one value. Metrics: accuracy (logit > 0), AUC, RMSE of the probability.
 * args: the keys above (NULL when n_args is 0). */
herd_status herd_model_set_loss(herd_model *m, const char *loss, const herd_layer_arg *args, int n_args,
                                herd_error *err);
/* Checks the graph (a vector output; no softmax before the cross-entropy) and allocates the
 * parameters. */
herd_status herd_model_finish(herd_model *m, herd_error *err);

/* The model as spec text (one line per layer, names and inputs explicit where the defaults
 * would differ) that herd_model_parse turns back into the same model: the same layers, names,
 * shapes and registry. The caller frees *text. */
herd_status herd_model_write_spec(const herd_model *m, char **text, herd_error *err);

/* Parses spec text; `filename` is used in messages ("file:line:col: ..."). */
herd_status herd_model_parse(herd_model **out, const char *text, const char *filename, herd_error *err);
/* Reads and parses a spec file. */
herd_status herd_model_load_spec(herd_model **out, const char *path, herd_error *err);
/* Opens a model file: an ONNX model (a name ending in .onnx; its weights come with it) or a
 * spec, whose parameters are then initialised from seed. */
herd_status herd_model_open(herd_model **out, const char *path, uint64_t seed, herd_error *err);
/* Whether path names an ONNX model (ends in .onnx), which carries its own weights. */
int herd_model_path_is_onnx(const char *path);
void herd_model_destroy(herd_model *m);

const herd_spec_train *herd_model_spec_train(const herd_model *m);

/* Initialises all parameters deterministically from seed (He-normal for layers
 * followed by a ReLU-family activation, Glorot-uniform otherwise; biases 0,
 * batch-norm gamma 1, beta 0, running mean 0, var 1). Also seeds dropout. The embedding
 * tables with row-sparse gradients are written at the first access of the parameters
 * (herd_model_params, a forward pass, saving), with the same values; until then their pages
 * are untouched, so sharded training can write each rank's rows alone. */
void herd_model_init_params(herd_model *m, uint64_t seed);
/* 1 while herd_model_init_params's tables are not written yet. */
int herd_model_tables_pending(const herd_model *m);
/* Rows [lo, hi) of the pending table `param` (a registry index), bit for bit as the whole table's
 * init writes them, into dst ((hi - lo) x dim floats); HERD_EINTERNAL if param is no such table. */
herd_status herd_model_table_init_rows(herd_model *m, int param, int64_t lo, int64_t hi, float *dst, herd_error *err);
/* The caller keeps the pending tables' rows elsewhere (sharded training): they are not written
 * into the model; its table memory stays zero pages until the caller writes it. */
void herd_model_tables_elsewhere(herd_model *m);
/* The parameters without writing pending tables: *n leading floats hold their values (the dense
 * ones while tables are pending, else all), e.g. to broadcast them. */
float *herd_model_params_ready(herd_model *m, int64_t *n);

/* Plans activations, gradients and workspace for batches up to max_batch on backend
 * "ref" or "cpu" with `threads` threads (one arena; nothing allocated per step).
 * May be called again to re-plan. Fallbacks to ref are reported by herd_model_notes. */
herd_status herd_model_prepare(herd_model *m, const char *backend, int max_batch, int threads, herd_error *err);
/* Lines describing per-layer backend fallbacks decided by prepare ("" if none). */
const char *herd_model_notes(const herd_model *m);
/* "" or, for a model imported from ONNX that looks like an eval-mode export (batch norm folded
 * into the convolutions, no dropout between fully connected layers), one line saying so: training
 * it trains a different model than the one written in PyTorch. */
const char *herd_model_import_note(const herd_model *m);

void herd_model_input_shape(const herd_model *m, int *c, int *h, int *w);
/* Inputs the model reads (`input` lines), fed by a dataset's fields in order. */
int herd_model_input_count(const herd_model *m);
/* Input k's name and per-sample dtype and dims (data: its planned buffer, NULL before prepare). */
herd_tensor herd_model_input_desc(const herd_model *m, int k, const char **name);
/* 4-byte values one sample of every input takes: the sum of the inputs' element counts. */
int64_t herd_model_input_slots(const herd_model *m);
/* Where a batch of packed samples goes (max_batch rows of herd_model_input_slots 4-byte values:
 * each sample's inputs one after the other in input order, f32 values or int32 ids, as
 * herd_dataset_batch and herd_loader_rows write them): the input buffer itself when the model
 * has one input, else a planned staging buffer that herd_model_set_inputs spreads. */
float *herd_model_batch_buffer(herd_model *m);
/* Runs the following steps on x (rows of the model's single f32 input, as the batch buffer
 * holds them; only read, and it must stay valid while they run) in place of the planned
 * buffer, which saves copying a batch that is ready elsewhere (the loader's); NULL returns to
 * the planned buffer, which herd_model_batch_buffer keeps naming (herd_model_normalize_input
 * does nothing meanwhile). 0 (nothing changed) where the model cannot: several inputs, or a
 * layer viewing the input. */
int herd_model_use_input(herd_model *m, const float *x);
/* Rows [row0, row0 + B) of every input from the same rows of the batch buffer (nothing to do
 * for a model of one input). */
void herd_model_set_inputs(herd_model *m, int64_t row0, int B);
/* Whether ds's fields feed the model's inputs, in order: as many fields as inputs; an f32 input
 * takes u8/f32 samples of the same element count (and C,H,W when the field has 3 dims), an i32
 * input i32 samples of the same count. Error (HERD_ESHAPE): one line naming the source, the field
 * and the input. */
struct herd_dataset;
herd_status herd_model_check_data(const herd_model *m, const struct herd_dataset *ds, herd_error *err);
/* The batch size the last herd_model_prepare planned for (0 before any). */
int herd_model_max_batch(const herd_model *m);
int herd_model_output_size(const herd_model *m);

/* ---- generation (language models: one i32 input of T ids, every layer per position, (T, V) logits) ---- */
typedef struct herd_decoder herd_decoder;
/* A decoder over a prepared model: each step runs one new position through every layer, keeping
 * what causal attention needs of the positions before it. A layer that is not per position, or
 * whose kind cannot run one position alone (non-causal attention), is an error naming it. */
herd_status herd_decoder_create(herd_decoder **out, herd_model *m, herd_error *err);
/* Feeds id at the next position; *logits (V values, valid until the next step) are that position's. */
herd_status herd_decoder_step(herd_decoder *d, int32_t id, const float **logits, herd_error *err);
int64_t herd_decoder_position(const herd_decoder *d);
int herd_decoder_context(const herd_decoder *d); /* T */
void herd_decoder_reset(herd_decoder *d);        /* back to position 0 */
void herd_decoder_destroy(herd_decoder *d);

typedef struct herd_generate_options {
    int tokens;        /* new ids, >= 1 (the prompt must fit the model's context T; when the text fills the
                          window of T ids, it moves on by T/2) */
    float temperature; /* <= 0: the most likely id; else softmax(logits / temperature) */
    int top_k;         /* > 0: draw among the k most likely ids only */
    uint64_t seed;     /* the draws: one uniform a token from a Philox stream of the seed */
    int recompute;     /* 1: run the whole window through herd_model_forward for every token (the oracle);
                          0: the decoder, one position a token */
} herd_generate_options;
/* prompt[0..n_prompt) (ids below the model's V), then o->tokens new ids into out. The model must
 * be prepared (batch >= 1). The same seed gives the same ids. */
herd_status herd_generate(herd_model *m, const int32_t *prompt, int64_t n_prompt, const herd_generate_options *o,
                          int32_t *out, herd_error *err);
/* Input buffer for up to max_batch samples (NCHW), filled by the caller before forward. */
float *herd_model_input(herd_model *m);
/* Forward pass over the first B samples of the input buffer; training enables dropout
 * and batch statistics. */
herd_status herd_model_forward(herd_model *m, int B, int training, herd_error *err);
/* (B, output_size) result of the last forward. */
const float *herd_model_output(const herd_model *m);

/* ---- targets, loss and metrics ----
 * Targets are typed: one per sample, as the dataset's y describes it. The model takes i32
 * class labels by default (f32 values of the output's shape when the loss needs them). */
herd_status herd_model_set_target(herd_model *m, const herd_tensor *y, const char *source, herd_error *err);
/* One sample's target (data NULL) and its size in bytes. */
const herd_tensor *herd_model_target(const herd_model *m);
size_t herd_model_target_bytes(const herd_model *m);

/* Sums over samples that make the metrics; they add up across batches and ranks (all
 * doubles: a data-parallel run sums them as one array). Which metrics a model has depends
 * on its loss and targets (herd_model_metrics). */
#define HERD_AUC_BINS 4096
enum { HERD_METRIC_ACCURACY = 1, HERD_METRIC_RMSE = 2, HERD_METRIC_AUC = 4 };
typedef struct herd_metrics {
    double loss_sum, loss_units; /* mean loss = loss_sum / loss_units */
    double samples;
    double hits, counted;        /* accuracy = hits / counted (positions with a label) */
    double sq_err, values;       /* RMSE = sqrt(sq_err / values) */
    /* AUC: positive and negative targets by the logit's bin (HERD_AUC_BINS bins of equal
     * width over [-16, 16], the ends open), ties within a bin counted as one half */
    double pos[HERD_AUC_BINS], neg[HERD_AUC_BINS];
} herd_metrics;
#define HERD_METRICS_DOUBLES ((int)(sizeof(herd_metrics) / sizeof(double)))
void herd_metrics_clear(herd_metrics *a);
void herd_metrics_add(herd_metrics *a, const herd_metrics *b);
/* The mean loss, and metric HERD_METRIC_*; -1 when nothing was counted for it. */
double herd_metrics_loss(const herd_metrics *a);
double herd_metrics_value(const herd_metrics *a, int metric);
/* HERD_METRIC_* flags of what the model's loss and target measure. */
int herd_model_metrics(const herd_model *m);

/* What the model predicts from the first B rows of the last forward's output, as its loss
 * reads them (B x output_size floats): class probabilities (xent: the softmax over the last
 * dim), probabilities of 1 (bce: the sigmoid), or the values (mse). */
void herd_model_predictions(const herd_model *m, int B, float *out);
/* 1 when the predictions are class probabilities of a vector output (one class per sample:
 * xent over (K), or bce of one output, class = probability >= 0.5) */
int herd_model_predicts_classes(const herd_model *m);

/* Loss of the last forward against B targets (herd_model_target's layout, B after one
 * another): the mean over the batch, NaN when a target is out of range (a class label
 * outside the outputs; nothing is read or written out of bounds). Adds the batch to *acc
 * when acc is not NULL. */
float herd_model_loss(herd_model *m, const void *targets, int B, herd_metrics *acc);
/* Zeroes gradients and back-propagates the loss of the last forward/loss call
 * (mean over the batch, times grad_scale: data-parallel callers pass local/global). */
void herd_model_backward(herd_model *m, const void *targets, int B, float grad_scale);
/* One training pass: zeroes the gradients, then forward, loss and backward over the first B
 * samples, in chunks of herd_model_train_chunk rows so that each chunk's backward finds its
 * activations still in cache. The gradients are those of forward + loss + backward on the
 * whole batch (up to float summation order); the grad hook runs during the last chunk only.
 * *loss is the mean loss; the batch is added to *acc (may be NULL). A target out of range is
 * an error naming the sample. */
herd_status herd_model_forward_backward(herd_model *m, const void *targets, int B, float grad_scale, float *loss,
                                        herd_metrics *acc, herd_error *err);
/* Rows per chunk of herd_model_forward_backward (0: never cut, as with batch norm). */
int herd_model_train_chunk(const herd_model *m);
/* ---- pieces of a step, for pipeline stages and micro-batches ----
 * Rows [row0, row0 + B) of the planned batch hold one micro-batch; layers [first, last]
 * are one stage. herd_model_forward/loss/backward are these over everything. */
herd_status herd_model_forward_range(herd_model *m, int first, int last, int64_t row0, int B, int training,
                                     herd_error *err);
float herd_model_loss_rows(herd_model *m, int64_t row0, const void *targets, int B, herd_metrics *acc);
/* What the loss of B samples is a mean over (samples, or the positions counted), so
 * micro-batches can be weighted: their seeds' scales are units/total units. */
int64_t herd_model_loss_units(const herd_model *m, const void *targets, int B);
/* Zeroes the activation gradients of layers [first-1, last] in those rows (not the parameter grads). */
void herd_model_zero_dout_rows(herd_model *m, int first, int last, int64_t row0, int B);
/* Adds the gradient of these rows' mean loss, times grad_scale, to the last layer's output
 * gradient (targets: those of rows [row0, row0 + B)). */
void herd_model_seed_loss_grad(herd_model *m, int64_t row0, const void *targets, int B, float grad_scale);
/* Back-propagates layers last..first, accumulating into the parameter grads and into the
 * output gradient of layer first-1. */
void herd_model_backward_range(herd_model *m, int first, int last, int64_t row0, int B);
/* The number of inputs of layer i; the first `max` go to inputs[]: layer indices, or -1 - k
 * for the model's input k. */
int herd_model_layer_inputs(const herd_model *m, int i, int *inputs, int max);
/* The ranges of the flat parameters [*plo, *phi) and buffers [*blo, *bhi) that layers
 * [first, last] own (registered in layer order, so each is one range; empty: lo = hi). A tied
 * weight (dense tie=) is owned by the layer that registered it (the embedding), not by the
 * layers that borrow it. */
void herd_model_layer_param_range(const herd_model *m, int first, int last, int64_t *plo, int64_t *phi, int64_t *blo,
                                  int64_t *bhi);
/* The number of layers that use parameter r (registry index): 2 or more for a tied weight;
 * the first `max` of them go to layers[], in layer order. */
int herd_model_param_users(const herd_model *m, int r, int *layers, int max);
/* The layer that owns parameter r (registered it; its range holds it). */
int herd_model_param_owner(const herd_model *m, int r);
/* Layer i's output and output-gradient buffers (planned batch) and floats per sample. */
void herd_model_layer_buffers(herd_model *m, int i, float **out, float **dout, int64_t *per_sample);

/* Called during backward each time the gradients of params[ready_from, n_params) are
 * final (after each layer), so data-parallel training can start reducing them while
 * backward goes on. fn = NULL removes the hook. */
typedef void (*herd_grad_ready_fn)(void *user, int64_t ready_from);
void herd_model_set_grad_hook(herd_model *m, herd_grad_ready_fn fn, void *user);
/* Called during forward before each layer that reads dense parameters, with the range
 * params[lo, hi) they lie in, so ZeRO-1 can wait for each layer's parameters alone while the
 * rest still arrive. fn = NULL removes the hook. */
typedef void (*herd_params_needed_fn)(void *user, int64_t lo, int64_t hi);
/* SyncBatchNorm (batchnorm sync=1): fn(user, v, n) adds v[0..n) over every rank the batch is
 * spread over, in place, the same calls in the same order on every rank; a failure is the
 * caller's to keep and report. NULL (the default): each process normalises with its own rows. */
void herd_model_set_batch_sum(herd_model *m, void (*fn)(void *user, double *v, int n), void *user);
/* Layers whose batch statistics are summed over the ranks (batchnorm sync=1). */
int herd_model_batch_sync_layers(const herd_model *m);
void herd_model_set_params_hook(herd_model *m, herd_params_needed_fn fn, void *user);

/* Re-keys the dropout generator: masks become a pure function of (seed, stream), so
 * distributed training can make them independent of how a batch is split. */
void herd_model_set_dropout_stream(herd_model *m, uint64_t seed, uint64_t stream);

/* Index of the first layer whose output holds a non-finite value (grads = 0: runs the forward
 * pass over the first B rows of the input again, layer by layer, in training mode), or the last
 * layer whose parameter gradients do (grads = 1, after backward), or -1. */
int herd_model_first_nonfinite(herd_model *m, int B, int grads);

/* ---- the parameter registry ---- */
typedef struct herd_param_info {
    const char *name;   /* "conv1.weight" */
    int trainable;      /* 1: slice of params/grads; 0: buffer (batch-norm running stats) */
    int64_t offset;     /* in floats, into params (trainable) or buffers */
    int64_t numel;
    int ndim;
    int64_t shape[4];
    int sparse;         /* 1: a table with a row-sparse gradient (embedding): it follows every dense
                           parameter in params, has no slice of grads, and its gradient is read with
                           herd_model_sparse_grad */
} herd_param_info;

int herd_model_param_count(const herd_model *m);
const herd_param_info *herd_model_param(const herd_model *m, int i);
/* Flat buffers: n_params trainable floats (params and grads), n_buffers non-trainable.
 * A model prepared for inference only keeps some layers' weights rearranged across forward
 * passes (transposed, Winograd-transformed); herd_model_params, herd_model_params_ready and
 * herd_model_buffers mark them stale, so call one of them again after writing through a pointer
 * it gave earlier and before the next forward pass. */
float *herd_model_params(herd_model *m, int64_t *n_params);
float *herd_model_grads(herd_model *m);
/* Floats of params with a dense gradient: grads holds this many (the first parameters; the
 * row-sparse tables follow them). Equal to n_params when the model has no sparse table. */
int64_t herd_model_dense_params(const herd_model *m);

/* ---- row-sparse gradients (embedding tables) ----
 * Backward gathers, for each sparse table, the rows the batch touched and their gradients;
 * herd_model_sparse_grad sums duplicates (rows ascending, each row's terms in batch order, so
 * the result is deterministic) and returns them. Time and memory are those of the batch's ids,
 * never of the table's row count. herd_model_forward_backward / herd_model_backward start a
 * new gradient. */
typedef struct herd_sparse_grad {
    int param;           /* registry index of the table */
    int64_t rows, dim;   /* touched rows; floats per row */
    const int32_t *ids;  /* rows ascending, distinct */
    float *values;       /* rows x dim summed gradients (a caller may scale them, e.g. clipping) */
} herd_sparse_grad;
int herd_model_sparse_count(const herd_model *m);
void herd_model_sparse_grad(herd_model *m, int k, herd_sparse_grad *out);
/* Sparse table k and where its ids are: ids[b * per_sample + j] is id j of row b of the model's
 * input `input` (rows loaded by herd_model_set_inputs; the executor reads them from there, so a
 * caller may read them before any forward pass, as a parameter server fetching those rows does,
 * or rewrite them, as sharded training does; pad ids and unused slots included). input -1 and
 * ids NULL when the layer reads ids the model computes. */
typedef struct herd_sparse_table {
    int param;            /* registry index */
    int64_t rows, dim;
    int pad;              /* its row stays zero and gets no gradient; -1 none */
    int input;            /* the model input holding its ids; -1: ids the model computes */
    int32_t *ids;         /* that input's data (NULL before herd_model_prepare) */
    int64_t per_sample;
} herd_sparse_table;
void herd_model_sparse_table(herd_model *m, int k, herd_sparse_table *out);
/* The model's thread pool (made by herd_model_prepare; NULL before it), for work between
 * steps that should use the same threads, such as the optimizer. */
herd_pool *herd_model_pool(herd_model *m);
float *herd_model_buffers(herd_model *m, int64_t *n_buffers);

/* ---- description, for summaries ---- */
typedef struct herd_layer_info {
    const char *name;   /* "conv1" */
    const char *kind;   /* "conv2d" */
    char detail[96];    /* "32 3x3 s1 p1" */
    int c, h, w;        /* output shape per sample as C,H,W (h = w = 1 for vectors) */
    int ndim;           /* and as it is: (F), (T,K), (C,H,W) ... */
    int64_t dims[4];
    int64_t params;     /* trainable parameters */
    int64_t flops;      /* forward FLOPs per sample (multiply-add = 2) */
} herd_layer_info;

int herd_model_layer_count(const herd_model *m);
void herd_model_layer(const herd_model *m, int i, herd_layer_info *info);
/* Records every layer's forward and backward into t (herd/trace.h); NULL stops. */
struct herd_trace;
void herd_model_set_trace(herd_model *m, struct herd_trace *t);

/* Per-layer timing: when enabled, forward/backward accumulate seconds per layer. */
void herd_model_profile(herd_model *m, int enable);
/* Accumulated seconds of layer i since profiling was enabled. */
void herd_model_layer_times(const herd_model *m, int i, double *forward, double *backward);

/* Bytes planned by the last prepare (activations, gradients, workspace). */
size_t herd_model_planned_bytes(const herd_model *m);
/* The activation and gradient buffers of the last prepare: bytes with buffers whose lives do
 * not overlap sharing memory, and what they would take each on its own. */
void herd_model_activation_bytes(const herd_model *m, size_t *with_reuse, size_t *without_reuse);
/* Before herd_model_prepare: enable = 0 gives every buffer its own memory (a pipeline stage
 * interleaves the forward and backward passes of micro-batches, which a plan for one pass at a
 * time does not allow). Default 1. */
void herd_model_set_memory_reuse(herd_model *m, int enable);
int herd_model_memory_reuse(const herd_model *m);
/* Before herd_model_prepare: enable = 1 makes every sum over the batch that the kernels split
 * across threads (a convolution's weight gradient, a dense layer's products) split into the same
 * fixed parts whatever the thread count, added in part order, so the gradients and the weights
 * trained are bit-identical for any number of threads (herd train --deterministic; it plans a
 * little more workspace and may leave threads idle in those sums). Default 0: one part per thread. */
void herd_model_set_fixed_reduction(herd_model *m, int enable);
/* Before herd_model_prepare: enable = 1 plans forward passes only (no gradient buffers; an
 * activation is freed after its last reader), for evaluation and prediction, and keeps weights
 * rearranged once for the kernels (conv weights transposed into panels for batch-1 products on
 * small maps, Winograd-transformed kernels where a call has few tiles: planned memory, at most
 * about 4x the weights of those layers) instead of per call; the cpu dense at up to 4 rows then
 * sums its dot products in another order than training's (within float rounding). Default 0. */
void herd_model_set_inference_only(herd_model *m, int enable);
/* Before herd_model_prepare: "fp32" (default) or "bf16": the matrix products of conv and dense
 * layers in bfloat16 with fp32 accumulation (vdpbf16ps; prepare fails with one line where the
 * CPU lacks AVX512_BF16 or the backend is not "cpu"); weights, gradients, loss, optimizer and
 * checkpoints stay fp32, and a layer without a bf16 kernel runs in fp32 (herd_model_notes).
 * HERD_EARG for another name. */
herd_status herd_model_set_precision(herd_model *m, const char *precision, herd_error *err);

/* ---- input normalisation the weights were trained with ----
 * (x - mean[c]) / std[c] per input channel (a std of 0 divides by 1), as `herd train
 * --normalize auto` trains. The model only carries the numbers: herd_model_save writes them as
 * safetensors metadata (input_mean, input_std), herd_model_load reads them back, and whoever
 * feeds raw data applies them (herd eval and predict, herd_predict). mean = std = NULL clears. */
herd_status herd_model_set_input_norm(herd_model *m, const double *mean, const double *std, herd_error *err);
/* in_c means then in_c stds, or NULL when the model has none. */
const double *herd_model_input_norm(const herd_model *m);
/* Normalises the first B samples of the input buffer in place (nothing when there is none). */
void herd_model_normalize_input(herd_model *m, int B);

/* ---- weights files (safetensors, names from the registry) ---- */
herd_status herd_model_save(const herd_model *m, const char *path, herd_error *err);
/* Every registry tensor must be present with the same shape; extra tensors are an error
 * (except the optimizer state of a herd checkpoint, which loads as weights too). The file's
 * input normalisation (or its absence) replaces the model's. */
herd_status herd_model_load(herd_model *m, const char *path, herd_error *err);

#ifdef __cplusplus
}
#endif
#endif
