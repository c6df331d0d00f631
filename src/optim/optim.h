/* Optimizers over flat parameter/gradient buffers, learning-rate schedules and
 * global-norm gradient clipping. All state is flat too (one buffer per moment),
 * so a checkpoint or a parameter-server shard is a range [begin, end). */
#ifndef HERD_OPTIM_H
#define HERD_OPTIM_H

#include <stdint.h>

#include "herd/core.h"

typedef enum herd_opt_kind {
    HERD_OPT_SGD = 0,
    HERD_OPT_MOMENTUM, /* heavy ball, PyTorch's SGD(momentum=m) */
    HERD_OPT_NESTEROV, /* PyTorch's SGD(momentum=m, nesterov=True) */
    HERD_OPT_ADAM,     /* weight_decay is L2 added to the gradient (torch.optim.Adam) */
    HERD_OPT_ADAMW     /* decoupled weight decay (torch.optim.AdamW) */
} herd_opt_kind;

typedef struct herd_optim_config {
    herd_opt_kind kind;
    float momentum;     /* default 0.9 */
    float beta1, beta2; /* default 0.9, 0.999 */
    float eps;          /* default 1e-8 */
    float weight_decay; /* default 0 */
} herd_optim_config;

/* Defaults as in PyTorch for the kind. */
herd_optim_config herd_optim_defaults(herd_opt_kind kind);
/* "sgd", "momentum", "nesterov", "adam", "adamw"; returns 0 if unknown. */
int herd_opt_kind_parse(const char *name, herd_opt_kind *out);
const char *herd_opt_kind_name(herd_opt_kind kind);

typedef struct herd_optimizer {
    herd_optim_config cfg;
    int64_t n;
    int64_t t;  /* steps taken */
    float *m;   /* momentum / first moment (NULL for plain SGD) */
    float *v;   /* second moment (Adam/AdamW only) */
    /* weight decay applies to these sorted, disjoint ranges [decay[2i], decay[2i+1]) only;
     * NULL: everywhere (torch.optim's default) */
    int64_t *decay;
    int n_decay;
} herd_optimizer;

herd_status herd_optimizer_init(herd_optimizer *o, const herd_optim_config *cfg, int64_t n, herd_error *err);
void herd_optimizer_free(herd_optimizer *o);
/* One update of params[begin,end) with lr; `t` is the 1-based step number used for
 * Adam's bias correction (callers updating several ranges in one step pass the same t).
 * Follows torch.optim 1.13 (dampening 0): SGD d = g + wd*p; momentum b = mu*b + d
 * (b starts at 0, so step 1 gives b = d as torch's clone); p -= lr*b, or
 * p -= lr*(d + mu*b) for Nesterov. Adam: g += wd*p; AdamW: p *= 1 - lr*wd first;
 * m = b1*m + (1-b1)*g; v = b2*v + (1-b2)*g*g;
 * p -= lr/(1-b1^t) * m / (sqrt(v)/sqrt(1-b2^t) + eps). Allocates nothing. */
void herd_optimizer_update_range(herd_optimizer *o, float *params, const float *grads, int64_t begin, int64_t end,
                                 float lr, int64_t t);
/* Weight decay only on the n_ranges ranges [ranges[2i], ranges[2i+1]) (sorted, disjoint, within
 * [0, n); copied): a parameter group without decay for everything else, as torch's
 * param_groups with weight_decay 0 for biases and norms. */
herd_status herd_optimizer_set_decay_ranges(herd_optimizer *o, const int64_t *ranges, int n_ranges, herd_error *err);
/* Whole buffer: increments o->t and updates [0, n). */
void herd_optimizer_step(herd_optimizer *o, float *params, const float *grads, float lr);
/* herd_optimizer_step split over the pool's threads in 64-byte-aligned ranges (NULL pool =
 * one thread); every element's update is independent, so the result is the same. */
void herd_optimizer_step_pool(herd_optimizer *o, float *params, const float *grads, float lr, herd_pool *pool);

/* ---- tables with row-sparse gradients (embeddings) ----
 * Each touched row (ids distinct, values summed per row: herd_model_sparse_grad) is updated as
 * PyTorch 1.13 does with a sparse gradient; rows not in the batch and their state do not move:
 *  SGD:     p -= lr * g   (momentum and weight decay do not apply to sparse gradients)
 *  ADAGRAD: s += g*g; p -= lr * g / (sqrt(s) + eps), eps 1e-10 (torch.optim.Adagrad, state 0)
 *  ROWWISE_ADAGRAD: one sum a row (FBGEMM's row-wise Adagrad): s += mean over the row of g*g;
 *           p -= lr * g / (sqrt(s) + eps), eps 1e-10; state rows floats, not rows x dim
 *  ADAM:    lazy Adam, torch.optim.SparseAdam: m += (g - m)(1 - b1); v += (g*g - v)(1 - b2);
 *           p -= lr*sqrt(1-b2^t)/(1-b1^t) * m / (sqrt(v) + eps), b 0.9/0.999, eps 1e-8, t the
 *           table's step count (every step, touched or not). */
typedef enum herd_sparse_opt_kind {
    HERD_SPARSE_SGD = 0,
    HERD_SPARSE_ADAGRAD,
    HERD_SPARSE_ADAM,
    HERD_SPARSE_ROWWISE_ADAGRAD
} herd_sparse_opt_kind;

typedef struct herd_sparse_optimizer {
    herd_sparse_opt_kind kind;
    float beta1, beta2, eps;
    int64_t rows, dim;
    int64_t t;    /* steps taken */
    float *m;     /* Adam's first moment (rows x dim), else NULL */
    float *v;     /* Adam's second moment / Adagrad's sum (rows x dim; rows for row-wise Adagrad), NULL for SGD */
} herd_sparse_optimizer;

/* "sgd", "adagrad", "adam", "rowwise_adagrad"; 0 if unknown. */
int herd_sparse_opt_parse(const char *name, herd_sparse_opt_kind *out);
const char *herd_sparse_opt_name(herd_sparse_opt_kind kind);
/* State for a (rows, dim) table (zero pages until touched). */
herd_status herd_sparse_optimizer_init(herd_sparse_optimizer *o, herd_sparse_opt_kind kind, int64_t rows, int64_t dim,
                                       herd_error *err);
void herd_sparse_optimizer_free(herd_sparse_optimizer *o);
/* Floats of state a row (in m and v): dim, or 1 for row-wise Adagrad. */
int64_t herd_sparse_state_dim(const herd_sparse_optimizer *o);
/* One update of the rows ids[0..n_rows) of table with their gradients values (n_rows x dim). */
void herd_sparse_optimizer_step(herd_sparse_optimizer *o, float *table, const int32_t *ids, const float *values,
                                int64_t n_rows, float lr, herd_pool *pool);

typedef enum herd_sched_kind { HERD_SCHED_CONSTANT = 0, HERD_SCHED_STEP, HERD_SCHED_COSINE } herd_sched_kind;

typedef struct herd_schedule {
    herd_sched_kind kind;
    float base_lr;
    int64_t warmup_steps; /* linear warm-up: base_lr*(step+1)/warmup_steps for step < warmup_steps (0 = none) */
    int64_t step_size;    /* STEP: multiply by gamma every step_size steps */
    float gamma;
    int64_t total_steps;  /* COSINE: anneal to min_lr at total_steps (after warm-up) */
    float min_lr;
} herd_schedule;

/* "constant", "step", "cosine"; 0 if unknown. */
int herd_sched_kind_parse(const char *name, herd_sched_kind *out);
/* LR for 0-based step number `step` (negative counts as 0). With W = warmup_steps:
 * step < W gives base_lr*(step+1)/W (torch LinearLR(start_factor=1/W, total_iters=W-1));
 * afterwards s = step - W feeds the main schedule, which starts at base_lr:
 * CONSTANT base_lr; STEP base_lr*gamma^floor(s/step_size) (step_size <= 0: base_lr);
 * COSINE min_lr + (base_lr-min_lr)*(1+cos(pi*s/T))/2 with T = total_steps and s
 * clamped to T (torch's closed form would rise again past T; T <= 0: base_lr).
 * Computed in double, rounded to float. */
float herd_schedule_lr(const herd_schedule *s, int64_t step);

/* Scales grads so their global L2 norm is at most max_norm (no-op if max_norm <= 0);
 * returns the norm before clipping (computed in double). As torch's clip_grad_norm_:
 * coef = max_norm/(norm + 1e-6), grads *= coef only when coef < 1. A NaN norm is
 * returned with grads untouched (torch would fill them with NaN); Inf scales by 0. */
double herd_clip_grad_norm(float *grads, int64_t n, float max_norm);
/* The two halves of it, for gradients spread over processes (pipeline stages): the sum of
 * squares of this part (fixed order, double), and the scaling by a norm found elsewhere. */
double herd_grad_sq_sum(const float *grads, int64_t n);
void herd_clip_scale(float *grads, int64_t n, double norm, float max_norm);

#endif
