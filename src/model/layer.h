/* The layer table: what one layer kind knows (its arguments, shape rule, parameters, init,
 * memory, forward, backward, FLOPs, ONNX export), and the node that holds one layer of a
 * model. Each kind lives in one file under src/layers/ and is one row of the table in
 * src/layers/layers.c; the executor, the builder and the spec parser know no kind by name. */
#ifndef HERD_LAYER_H
#define HERD_LAYER_H

#include "backend/backend.h"
#include "herd/model.h"
#include "ops/ops.h"

#define HERD_NAME_MAX 64
#define HERD_MAX_NODES 1024
#define HERD_MAX_PARAMS 2048
#define HERD_MAX_INPUTS 64      /* inputs of one node (concat of a dense block) */
#define HERD_MAX_MODEL_INPUTS 8 /* `input` lines */
#define LAYER_CFG_BYTES 96      /* a kind's config struct lives inline in its node */
#define LAYER_MAX_SLOTS 4       /* parameter tensors of one node */
#define LAYER_MAX_SAVED 2       /* buffers a forward keeps for its backward */

typedef struct node node;
typedef struct layer_kind layer_kind;
typedef struct layer_build layer_build;
typedef struct onnx_exporter onnx_exporter;
typedef struct onnx_importer onnx_importer;
typedef struct sparse_grad sparse_grad;

/* One layer of a model. Inputs are earlier nodes (index >= 0) or model inputs (-1 - k). */
struct node {
    const layer_kind *kind;
    char name[HERD_NAME_MAX]; /* unique; parameter names are "<name>.<slot>" */
    int line, col;            /* in the spec, for messages (0 when built by other means) */
    int n_in;
    int in[HERD_MAX_INPUTS];
    int ndim;                 /* output per sample: (C,H,W) for images, (F) for vectors */
    int64_t dims[4];
    int64_t numel;            /* per sample */
    _Alignas(8) unsigned char cfg[LAYER_CFG_BYTES]; /* the kind's config struct */
    int param[LAYER_MAX_SLOTS]; /* registry indices, -1 = none; slot meaning is the kind's */
    int he_init;              /* read by a ReLU-family activation: He init for conv/dense */
    /* set by the planning passes */
    herd_act fused_act;       /* HERD_ACT_NONE, or the ReLU (ReLU6 for LAYER_FUSES_RELU6 kinds) that follows it
                                 and that this node applies (the activation is its only consumer) */
    int alias;                /* >= 0: a view whose buffers are node `alias`'s (a fused ReLU, a flatten, a folded
                                 batch norm) */
    int fused_affine;         /* inference plans: >= 0, the node (a batch norm, kind->eval_affine) whose per-channel
                                 affine this node applies to its sums before fused_act; -1: none */
    float *affine;            /* planned with fused_affine: its scale then its shift, numel / spatial floats each */
    int last_reader;          /* the last node reading this node's buffers (-1: none) */
    int first_grad_writer;    /* the first backward (highest node) adding to its gradient (-1: none) */
    int grad_set;             /* 1: that backward is its gradient's only writer and writes all of it (kind->sets_grad),
                                 with this node's fused_act mask applied: nothing zeroes the gradient first, and
                                 this node's backward does not mask it again (herdi_layer_backward_act) */
    int out_death;            /* in a training step's schedule, the last time its output is read */
    float *out, *dout;        /* planned for max_batch samples; dout NULL when no gradient is needed */
    void *saved[LAYER_MAX_SAVED];
    const herd_backend *be;
    double t_forward, t_backward; /* profiling */
    /* inference-only models: the layer's weights rearranged once (herd_exec.prep), planned by the
     * kind's plan (NULL: none); valid while prep_gen equals the model's params_gen */
    float *prep;
    size_t prep_floats;
    int prep_tag;
    /* training plans with reuse: the node's workspace (herd_exec.workspace) for its forward and for
     * its backward, ws_floats each, planned by liveness with the activations (NULL: the model's
     * shared block) */
    float *ws_forward, *ws_backward;
    size_t ws_floats;
    uint64_t prep_gen;
};

/* Everything one forward or backward call of a node sees: rows [row0, row0 + B) of the
 * planned batch. Pointers are already offset to those rows. */
typedef struct layer_call {
    const herd_exec *ex;
    const herd_backend *be;
    const node *n;
    int B;
    int64_t row0;
    int training;
    herd_rng *rng;                       /* dropout's stream */
    const float *in[HERD_MAX_INPUTS];
    const int64_t *in_dims[HERD_MAX_INPUTS]; /* per-sample dims of each input */
    int in_ndim[HERD_MAX_INPUTS];
    float *din[HERD_MAX_INPUTS];         /* NULL: that input needs no gradient */
    int din_set;                         /* 1: backward writes din[0] whole (kind->sets_grad, planned): nothing zeroed
                                            it; din_act is the activation in[0]'s producer fused, whose mask
                                            (act_backward_inplace on in[0]) backward applies to it */
    herd_act din_act;
    float *out, *dout;
    float *w[LAYER_MAX_SLOTS], *dw[LAYER_MAX_SLOTS]; /* parameter data and gradients by slot (dw NULL for buffers
                                                         and sparse tables) */
    const float *scale, *shift;          /* n->fused_affine's affine for this call (per output channel), else NULL */
    sparse_grad *sg[LAYER_MAX_SLOTS];    /* a sparse table's gradient (NULL otherwise) */
    herd_exec exn;                       /* ex when the node has its own prep (node.prep) */
} layer_call;

/* The gradient row of table row `id` that a sparse table's backward writes (dim floats, to be
 * set, not added: duplicates are summed when the gradient is read). */
float *herdi_layer_sparse_row(sparse_grad *g, int32_t id);

/* What planning hands a kind for its saved buffers and workspace. */
typedef struct layer_plan {
    herd_arena *arena;
    int B;                   /* rows of the saved buffers (a call's rows keep their places in them) */
    int call_B;              /* the most rows one forward call gets: B, or an inference-only model's chunk
                                (herd_model_forward_range), for workspace and prepared weights sized by a
                                call (Winograd keeps its transformed kernels where a call has few tiles:
                                ResNet-18 3x64x64 planned at batch 128 kept none and made them every chunk) */
    int threads;             /* parts a kernel may split its work into, each with its own scratch: the
                                pool's threads, or herd_exec.fixed_parts where that is more */
    size_t workspace_floats; /* the largest any node asks for */
    int inference;           /* an inference-only model: a node may take prep memory (node.prep) */
} layer_plan;

enum { LAYER_READS_INPUT = 1, LAYER_READS_OUTPUT = 2 };
enum { LAYER_VIEW = 1, LAYER_FUSES_RELU = 2, LAYER_TAKES_ACT = 4, LAYER_IMAGE_INPUT = 8, LAYER_BATCH_STATS = 16,
       LAYER_ACTIVATION = 32, LAYER_READS_IDS = 64,
       LAYER_FUSES_RELU6 = 128, LAYER_FUSES_AFFINE = 256, LAYER_FUSES_RELU_BEFORE = 512 };

struct layer_kind {
    const char *name;     /* "conv2d": as summaries show it */
    const char *const *keywords; /* spec keywords ("conv"); the first is the main one; no two kinds share one */
    const char *prefix;   /* default node names prefix1, prefix2... (NULL: the keyword used) */
    const char *const *positional; /* names of the positional spec arguments, in order (NULL-terminated) */
    int min_inputs, max_inputs;
    int flags;            /* LAYER_VIEW: output aliases the input (no compute); LAYER_FUSES_RELU: can apply
                             a following ReLU itself; LAYER_FUSES_RELU6: a following ReLU6 too; LAYER_TAKES_ACT: a spec line may add an activation;
                             LAYER_IMAGE_INPUT: reads (C,H,W) (ONNX export refuses a flat input there);
                             LAYER_BATCH_STATS: needs the whole batch at once (training is never cut in chunks);
                             LAYER_ACTIVATION: its keywords may end another layer's line (`conv 32 3 relu`);
                             LAYER_READS_IDS: may read an i32 model input (token/categorical ids); no other
                             kind is given one (checked when a node is added); LAYER_FUSES_AFFINE: in an
                             inference plan, can apply the per-channel affine of an eval_affine kind that
                             reads it (c->scale, c->shift: v = v * scale + shift after its sum and bias,
                             before its fused activation); LAYER_FUSES_RELU_BEFORE: kind(relu(x)) is
                             relu(kind(x)) bit for bit (max pooling), so in a training plan it can apply a
                             ReLU that only it reads to its own output instead (fused_act), the ReLU's
                             input then needing no ReLU'd copy kept for the ReLU's backward */
    /* NULL when backend be runs this node's configuration, else a short reason (it then runs on ref) */
    const char *(*unsupported)(const node *n, const herd_backend *be);
    /* reads the arguments, checks the input shapes, sets the output shape, declares parameters */
    herd_status (*build)(layer_build *b);
    /* checks the inputs of a call before forward (NULL: none), e.g. ids within the table; one
     * line naming the layer and the sample on failure */
    herd_status (*check)(const layer_call *c, herd_error *err);
    /* parameters and buffers from the seed (NULL: none) */
    void (*init)(herd_model *m, node *n, uint64_t seed);
    /* kinds whose one parameter is a table: rows [lo, hi) of it as init would write them, into dst
     * ((hi - lo) rows). herd_model_init_params leaves such tables to the first access of the
     * parameters (herdi_model_tables_ready), so that sharded training can have each rank write only the
     * rows it owns (herd_model_table_init_rows). NULL: init at once. */
    void (*init_rows)(herd_model *m, const node *n, uint64_t seed, int64_t lo, int64_t hi, float *dst);
    /* saved buffers and workspace for plan->B rows (NULL: none) */
    herd_status (*plan)(node *n, layer_plan *plan);
    void (*forward)(const layer_call *c);
    void (*backward)(const layer_call *c);
    /* what backward reads besides gradients: LAYER_READS_INPUT | LAYER_READS_OUTPUT (NULL: both);
     * the memory planner frees the rest as soon as forward is done with it */
    int (*backward_reads)(const node *n);
    /* 1 when this node's backward can write the whole gradient of its one input instead of adding
     * into it (each input element gets at most one term: a max pool whose windows do not
     * overlap, a batch norm); the model then plans it so (layer_call.din_set) where it is that gradient's
     * only writer. NULL: never. */
    int (*sets_grad)(const node *n);
    /* forward FLOPs per sample (multiply-add = 2) */
    int64_t (*flops)(const herd_model *m, const node *n);
    /* "32 3x3 s1 p1" for summaries (NULL: empty) */
    void (*describe)(const herd_model *m, const node *n, char *buf, size_t size);
    herd_status (*onnx_export)(onnx_exporter *x, const node *n);
    /* ONNX import of one node whose op type is in onnx_ops (NULL: none): reads its attributes
     * and weights with the onnx_ helpers of model_internal.h into spec arguments and
     * parameter slots, or refuses with a one-line reason (what the kind cannot express) */
    const char *const *onnx_ops;
    herd_status (*onnx_import)(onnx_importer *x);
    /* the node as a spec line: keyword and arguments, without name= and from= (NULL: the first
     * keyword alone); src/model/spec_write.c adds the rest */
    void (*spec)(const herd_model *m, const node *n, char *buf, size_t size);
    /* generation one position at a time (src/model/decode.c; NULL: the kind cannot): the output
     * at position c->row0 of one sequence from its inputs at that position (in[k] and out hold one
     * position's values: dims[1] of a (T, F) node; an id input holds the id in its first slot),
     * with decode_cache(n) floats of state kept across positions (what earlier positions left, as
     * attention's keys and values); decode_cache NULL: none, < 0: this configuration cannot */
    void (*decode)(const layer_call *c, float *cache);
    int64_t (*decode_cache)(const node *n);
    /* 1 when this node's batch statistics are summed over the data-parallel ranks (batchnorm
     * sync=1; NULL: never) */
    int (*batch_sync)(const node *n);
    /* Per-channel affine kinds (batch norm): 1 when this node's eval forward on its backend is
     * out = in * scale[ch] + shift[ch] (a multiply then an add, those bits), and, given a call,
     * fills scale and shift (a float per channel each) from its parameters; c NULL: only whether
     * it is. An inference plan then folds the node into its LAYER_FUSES_AFFINE producer. NULL: never. */
    int (*eval_affine)(const node *n, const layer_call *c, float *scale, float *shift);
};

/* ---- the table (src/layers/layers.c) ---- */
extern const layer_kind *const herd_layer_kinds[];
extern const int herd_layer_kind_count;
const layer_kind *herdi_layer_kind_by_keyword(const char *keyword);
/* "conv, maxpool, ..." for messages */
const char *herdi_layer_keywords(void);
/* The keywords of the kinds that take ids (LAYER_READS_IDS), for messages. */
const char *herdi_layer_id_keywords(void);
/* HERD_ACT_RELU or HERD_ACT_RELU6 when n is that activation (a planner may fuse it into its producer), else
 * HERD_ACT_NONE. */
herd_act herdi_layer_fusable_act(const node *n);
/* Whether a per-sample shape is a vector: (F), or (C,1,1) as herd has always read it. */
int herdi_layer_is_vector(int ndim, const int64_t *dims);
/* v in the fewest digits that read back as the same float ("0.1", "1e-05"); buf of at least 16 bytes */
const char *herdi_layer_float_str(float v, char *buf, size_t size);
/* The kind that imports ONNX op type `op` (NULL: none). */
const layer_kind *herdi_layer_kind_by_onnx_op(const char *op);
/* Input k as C,H,W: (F) is (F,1,1). */
void herdi_lb_in_chw(const layer_build *b, int k, int *c, int *h, int *w);

/* ---- what a kind's build function uses (src/model/build.c) ---- */
struct layer_build {
    herd_model *m;
    node *n;              /* the node being built: name, inputs, line set; shape, params to fill */
    const char *keyword;
    herd_error *err;
    /* argument source: named values (spec positionals are already named) */
    int n_args;
    struct layer_arg {
        const char *key, *value;
        int col, end_col; /* where the argument starts and ends on its spec line (0: unknown) */
        int used;
    } *args;
    const char *file; /* for messages: "file:line:col: ..." */
};

/* The value of argument `key` (marking it used), or NULL when absent. */
const char *herdi_lb_arg(layer_build *b, const char *key);
/* Integer argument in [lo, hi]; absent: *out unchanged unless required (then an error). `what`
 * describes it in messages ("number of filters"). */
herd_status herdi_lb_int(layer_build *b, const char *key, const char *what, int required, int lo, int hi, int *out);
/* "3" -> 3,3; "3x5" -> 3,5 */
herd_status herdi_lb_pair(layer_build *b, const char *key, const char *what, int required, int lo, int hi, int *x, int *y);
herd_status herdi_lb_float(layer_build *b, const char *key, const char *what, int required, double lo, double hi,
                     float *out);
/* "file:line:col: <fmt>" with the column of argument key (NULL: the layer's); returns st. */
herd_status herdi_lb_fail(layer_build *b, herd_status st, const char *key, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 4, 5)))
#endif
    ;
/* Declares parameter slot `slot` as "<node>.<suffix>". */
herd_status herdi_lb_param(layer_build *b, int slot, const char *suffix, int trainable, int ndim, const int64_t *shape);
/* Declares a trainable (rows, dim) table with a row-sparse gradient: backward writes at most
 * ids_per_sample rows per sample with herdi_layer_sparse_row; the ids are read from the node's input 0
 * (an i32 model input); pad: the id whose row stays zero and gets no gradient, -1 none. */
herd_status herdi_lb_param_sparse(layer_build *b, int slot, const char *suffix, int64_t rows, int64_t dim,
                            int64_t ids_per_sample, int pad);
/* dtype of input k (f32, or a model input's i32) */
herd_dtype herdi_lb_in_dtype(const layer_build *b, int k);
/* Per-sample shape of input k. */
int herdi_lb_in_ndim(const layer_build *b, int k);
const int64_t *herdi_lb_in_dims(const layer_build *b, int k);
/* Sets the node's output shape. */
void herdi_lb_set_shape(layer_build *b, int ndim, const int64_t *dims);
/* "3x32x32" of input k / of dims */
const char *herdi_lb_shape_str(int ndim, const int64_t *dims, char *buf, size_t size);
/* The node that input k is (NULL for a model input). */
node *herdi_lb_in_node(layer_build *b, int k);

#endif
