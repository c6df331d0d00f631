/* The model's internal layout, shared by the builder, the executor, the weights reader and
 * the ONNX exporters: model inputs, nodes in topological order (src/model/layer.h), one
 * parameter registry over one contiguous buffer. */
#ifndef HERD_MODEL_INTERNAL_H
#define HERD_MODEL_INTERNAL_H

#include "model/layer.h"
#include "model/loss.h"

/* ---- the model (shared by the builder, the executor, the weights reader, the exporters) ---- */
typedef struct param_entry {
    herd_param_info info;
    char name[HERD_NAME_MAX + 16];
    int node;  /* owning node */
    int64_t ids_per_sample; /* sparse: gradient rows one sample can add */
    int pad;                /* sparse: the id whose row stays zero, -1 none */
    int ids_input;          /* sparse: the model input its ids come from; -1: computed by the model */
} param_entry;

/* The row-sparse gradient of one table: backward appends (id, gradient row) entries for the
 * planned batch; coalescing sorts them by (id, entry) and sums duplicates into rows/sums. */
struct sparse_grad {
    int reg;              /* registry index */
    int64_t dim, cap, n;  /* floats a row; entries planned, gathered */
    int32_t *ids;         /* cap */
    float *vals;          /* cap x dim */
    uint64_t *keys;       /* cap: id << 32 | entry, sorted; then cap for the sort's other half */
    int32_t *rows;        /* distinct ids ascending */
    float *sums;          /* their summed gradients */
    int64_t n_rows;
    int coalesced;
};

typedef struct model_input {
    char name[HERD_NAME_MAX];
    herd_dtype dtype; /* f32, or i32 for token/categorical ids */
    int ndim;
    int64_t dims[4];
    int64_t numel;
    float *data;  /* planned; the executor's buffers are 4-byte slots, so an i32 input holds its
                     int32 ids in this float buffer (read through a cast by the kinds that take ids) */
} model_input;

struct herd_model {
    char source[512];
    model_input inputs[HERD_MAX_MODEL_INPUTS];
    int n_inputs;
    int in_c, in_h, in_w; /* the first input as C,H,W (vectors: F,1,1) */
    node *nodes;          /* HERD_MAX_NODES */
    int n_nodes;
    param_entry *params_reg; /* HERD_MAX_PARAMS */
    int n_reg;
    int64_t n_params, n_buffers;
    int64_t n_dense;          /* params with a dense gradient (grads' length); sparse tables follow */
    sparse_grad *sparse;      /* one per sparse table, in registry order */
    int n_sparse;
    float *params, *grads, *buffers;
    model_loss loss;          /* the loss node: reads the last node and the target */
    herd_spec_train train;
    /* execution plan */
    const herd_backend *be;
    herd_pool *pool;
    herd_arena *arena;
    herd_exec ex;
    int max_batch;
    int train_chunk;          /* rows per forward+backward chunk in training; 0: whole batch */
    int eval_chunk;           /* rows per forward chunk in inference (eval_chunk in model.c) */
    /* inference lanes (herd_model_forward): each pool thread runs whole chunks through the network
     * on activations and workspace of its own, with no hand-off per op */
    int lanes;                /* threads that do; 0: none planned (training, one thread, small batch) */
    float **lane_out;         /* threads x n_nodes: a lane's buffer per node, or NULL: the planned one */
    float *lane_ws;           /* (threads - 1) x ex.workspace_floats: lanes 1.. (lane 0 has ex.workspace) */
    uint64_t lanes_warm;      /* params_gen + 1 once a pooled chunk has filled the nodes' prep */
    double *input_norm;       /* in_c means then in_c stds the weights were trained with, or NULL */
    float *input;             /* the first input's data */
    float *input_planned;     /* its planned buffer while herd_model_use_input lends another */
    float *packed;            /* several inputs: the planned staging buffer of packed samples */
    float *probs;             /* the loss's scratch (softmax probabilities, one-hot targets) */
    herd_rng dropout_rng;
    /* herd_model_init_params's seed while the tables of init_rows kinds are not written yet (their
     * pages untouched): the first access of the parameters writes them, or herd_model_tables_elsewhere
     * says their rows live elsewhere */
    int tables_pending;
    uint64_t table_seed;
    char notes[1024];
    char import_note[512]; /* set by the ONNX importer: the file looks like an eval-mode export */
    int profile;
    struct herd_trace *trace;
    herd_grad_ready_fn grad_hook;
    herd_params_needed_fn params_hook;
    void *params_hook_user;
    void *grad_hook_user;
    int *scratch;             /* per node, for the planner */
    struct live_buf *live, **live_order, **live_placed; /* the liveness planner's tables (2 per node + inputs) */
    int memory_reuse;         /* buffers with disjoint lives share memory (default 1) */
    int fixed_reduction;      /* kernels sum over the batch in parts fixed whatever the thread count (default 0) */
    int inference_only;       /* plan forward only: no gradient buffers */
    uint64_t params_gen;      /* bumped whenever the parameters may change: the nodes' prep is then stale */
    int bf16;                 /* herd_model_set_precision(m, "bf16"): the cpu backend's bf16 table */
    size_t activation_bytes, activation_bytes_plain; /* the activation/gradient region, with and without reuse */
    int64_t *grad_ready;      /* per node: params[grad_ready[i], n) are final once node i's backward ran */
};

/* The liveness planner's tables, sized for HERD_MAX_NODES (NULL when out of memory). */
struct live_buf *herdi_model_live_tables(struct live_buf ***order, struct live_buf ***placed);
/* Allocates params/grads/buffers once the graph is complete. */
herd_status herdi_model_alloc_params(herd_model *m, herd_error *err);
/* Fills refs[0..n_reg) with the registry tensors (names, shapes, data) and returns n_reg. */
struct herd_tensor_ref;
int herdi_model_registry_refs(const herd_model *m, struct herd_tensor_ref *refs);
/* Copies every registry tensor from an open safetensors file after validating names, dtypes
 * and shapes (nothing changes on error). Tensors named own_prefix* belong to the caller and
 * are skipped; any other unknown tensor is an error. */
struct herd_safetensors;
herd_status herdi_model_load_tensors(herd_model *m, const struct herd_safetensors *st, const char *own_prefix,
                               herd_error *err);
/* The input normalisation as safetensors metadata pairs: writes 4 strings (2 pairs) into meta
 * and returns 2, 0 when the model has none, -1 out of memory; free owned[0] and owned[1]. */
int herdi_model_norm_meta(const herd_model *m, const char **meta, char **owned);
/* Pointer to registry entry i's data. */
float *herdi_model_param_data(herd_model *m, int i);
/* The parameters or buffers may have changed (written through a pointer handed out, loaded):
 * every node's weights prepared for inference (node.prep) are stale. */
void herdi_model_params_changed(herd_model *m);
/* Writes the tables herd_model_init_params left pending (every access of the parameters calls it). */
void herdi_model_tables_ready(herd_model *m);
/* The exec node n's forward (backward = 0) or backward runs with: the model's, or *own filled
 * with the node's prepared weights and its own workspace where it has them. */
const herd_exec *herdi_node_exec(herd_model *m, node *n, int backward, herd_exec *own);
/* Data of node n's parameter slot (NULL when the slot is empty). */
float *herdi_node_param(herd_model *m, const node *n, int slot);
/* Per-sample shape of node input k: a node's output or a model input. */
int herdi_node_in_ndim(const herd_model *m, const node *n, int k);
const int64_t *herdi_node_in_dims(const herd_model *m, const node *n, int k);
int64_t herdi_node_in_numel(const herd_model *m, const node *n, int k);
/* f32 for a node's output; a model input's dtype (f32 or i32) */
herd_dtype herdi_node_in_dtype(const herd_model *m, const node *n, int k);

/* One reading of numbers in model text (layer arguments, the spec's train line): the whole
 * string is a base-10 integer / a finite number within [lo, hi]; 1 when it is. */
int herdi_model_parse_int(const char *s, int lo, int hi, int *out);
int herdi_model_parse_float(const char *s, double lo, double hi, float *out);

/* ---- building a model (src/model/build.c): the spec parser and the importers call these ---- */
herd_status herdi_model_create(herd_model **out, const char *source, herd_error *err);
/* Adds a model input of per-sample shape dims. */
herd_status herdi_model_add_input(herd_model *m, const char *name, herd_dtype dtype, int ndim, const int64_t *dims,
                            herd_error *err);
/* A free default name prefix<k> for a new node. */
void herdi_model_default_name(const herd_model *m, const char *prefix, char *out, size_t size);
/* Index of the node (>= 0) or model input (-1 - k) called name; HERD_MAX_NODES when none. */
int herdi_model_find(const herd_model *m, const char *name);
/* Appends a node of `kind` reading inputs[0..n_in), named name, built from args; on failure the
 * model is unchanged. file/line/col locate it in messages (file NULL: the model's source). */
herd_status herdi_model_add_node(herd_model *m, const layer_kind *kind, const char *keyword, const char *name,
                           const int *inputs, int n_in, struct layer_arg *args, int n_args, const char *file,
                           int line, int col, herd_error *err);
/* Checks the finished graph (output is a vector, loss fits) and allocates the parameters. */
herd_status herdi_model_finish(herd_model *m, herd_error *err);

/* ---- ONNX export helpers a kind's onnx_export uses (src/io/onnx_export.c) ---- */
/* ONNX tensor name of node n's input k, and whether it is (N,C,H,W) rather than (N,F) */
const char *herdi_onnx_in(onnx_exporter *x, const node *n, int k);
int herdi_onnx_in_rank4(onnx_exporter *x, const node *n, int k);
/* ONNX tensor name for n's output; set_out overrides it (e.g. a dropout passes its input on) */
const char *herdi_onnx_out(onnx_exporter *x, const node *n);
/* whether a later layer reading n's output needs it as (N,C,H,W) (a conv after a gap) */
int herdi_onnx_read_as_image(onnx_exporter *x, const node *n);
void herdi_onnx_set_out(onnx_exporter *x, const node *n, const char *tensor, int rank4);
/* A registry tensor's name (an initializer is written for it) */
const char *herdi_onnx_param(onnx_exporter *x, const node *n, int slot);
/* node with up to 5 inputs (NULL-terminated list), one output */
typedef struct onnx_xattr {
    const char *name;
    int type; /* 'i' int, 'f' float, 'I' ints */
    int64_t i;
    float f;
    const int64_t *ints;
    int n_ints;
} onnx_xattr;
void herdi_onnx_emit(onnx_exporter *x, const char *op, const char *name, const char *out, const char *const *inputs,
               int n_inputs, const onnx_xattr *attrs, int n_attrs);
/* herdi_onnx_emit of a node with several outputs (Split) */
void herdi_onnx_emit_outs(onnx_exporter *x, const char *op, const char *name, const char *const *outs, int n_outs,
                    const char *const *inputs, int n_inputs, const onnx_xattr *attrs, int n_attrs);
/* the model declares at least this opset (13 otherwise) */
void herdi_onnx_require_opset(onnx_exporter *x, int opset);
/* a 1-D int64 initializer (a shape, slice bounds) named `name`, which the caller makes unique
 * (e.g. from its node's name); returns name */
const char *herdi_onnx_ints(onnx_exporter *x, const char *name, const int64_t *v, int n);
/* a scalar float initializer shared by every user of `name` (written once) */
const char *herdi_onnx_scalar(onnx_exporter *x, const char *name, float value);
/* A constant shared by every layer naming it the same (a causal mask, a shape): the name's
 * stored copy, *fresh = 1 the first time (the caller then writes the initializer); at most 4 a node. */
const char *herdi_onnx_shared(onnx_exporter *x, const char *name, int *fresh);
/* a node's own constant: an f32 / i32 initializer named `name` (the caller makes it unique) */
void herdi_onnx_constant(onnx_exporter *x, const char *name, int ndim, const int64_t *dims, const float *data, int64_t numel);
void herdi_onnx_constant_i32(onnx_exporter *x, const char *name, int ndim, const int64_t *dims, const int32_t *data,
                       int64_t numel);
herd_status herdi_onnx_fail(onnx_exporter *x, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;

/* ---- ONNX import helpers a kind's onnx_import uses (src/io/onnx_import.c) ----
 * The node being translated has data inputs (layer outputs, in order) and constant inputs
 * (initializers, Constant nodes), addressed by their ONNX input position k. */
const char *herdi_onnx_op(const onnx_importer *x);
/* attribute values; absent: dflt (ints: -1 returned, else the count, at most max copied) */
int64_t herdi_onnx_attr_int(const onnx_importer *x, const char *name, int64_t dflt);
float herdi_onnx_attr_float(const onnx_importer *x, const char *name, float dflt);
int herdi_onnx_attr_ints(const onnx_importer *x, const char *name, int64_t *v, int max);
/* whether string attribute name is absent or equals one of the values (a NULL-terminated list) */
int herdi_onnx_attr_str_in(const onnx_importer *x, const char *name, const char *const *values);
/* herd's per-sample shape of data input 0 */
int herdi_onnx_in_ndim(const onnx_importer *x);
const int64_t *herdi_onnx_in_dims(const onnx_importer *x);
/* zero padding of H and W a Pad node put before data input 0; a kind that reads it folds it
 * into its own padding (a kind that does not is refused a padded input) */
void herdi_onnx_in_pad(onnx_importer *x, int *ph, int *pw);
/* The node's auto_pad: NOTSET (or absent) leaves p (the pads attribute, [h0, w0, h1, w1]) alone;
 * VALID zeroes it; SAME_UPPER / SAME_LOWER set it from the input size (plus the xh, xw of a Pad
 * before it), kernel k (kh, kw), strides s and dilations dil when both sides come out alike
 * (or SAME_LOWER's extra one before at stride 2+, which no window reaches), else refuse naming
 * the axis and the pads. An unknown value, or pads given too (has_pads), is refused. */
herd_status herdi_onnx_auto_pad(onnx_importer *x, const int64_t *k, const int64_t *s, const int64_t *dil, int xh, int xw,
                          int has_pads, int64_t *p);
/* dims of constant input k (its rank), or -1 when input k is absent or not a constant */
int herdi_onnx_const_dims(const onnx_importer *x, int k, int64_t *dims);
/* constant scalar input k (an operand such as Clip's min, claimed so it is not taken for a
 * weight) into *v with *present = 1; absent: *present = 0; refused when it is not one constant
 * value ("WHAT (input K) must be ...") */
herd_status herdi_onnx_const_scalar(onnx_importer *x, int k, const char *what, double *v, int *present);
/* constant input k holds the data of parameter slot `slot` (transpose: a 2-D [in, out] matrix
 * for a slot of shape [out, in]); refused when input k is not a constant */
herd_status herdi_onnx_weight(onnx_importer *x, int k, int slot, int transpose);
/* herdi_onnx_weight with every value times scale (Gemm's alpha and beta folded into the weights);
 * broadcast: a one-value tensor fills the whole slot */
herd_status herdi_onnx_weight_as(onnx_importer *x, int k, int slot, int transpose, float scale, int broadcast);
/* the spec keyword (default: the kind's first) and the arguments of the layer */
void herdi_onnx_keyword(onnx_importer *x, const char *keyword);
void herdi_onnx_arg(onnx_importer *x, const char *key, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;
/* the node is an identity here (e.g. Flatten of a vector): its output is its input */
void herdi_onnx_pass_through(onnx_importer *x);
/* "FILE: node 'NAME' (OP): <reason>", HERD_EUNSUPPORTED */
herd_status herdi_onnx_refuse(onnx_importer *x, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;

#endif
