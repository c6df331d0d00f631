/* Distribution strategies: one table of functions the trainer calls at fixed points, one
 * implementation per strategy (data parallel, with or without fixed-order groups, with or
 * without ZeRO-1's sharded optimizer state: data_parallel.c; parameter server: param_server.c; pipeline: pipeline.c). One process is
 * data parallel with one rank. The trainer never asks which strategy it runs.
 *
 * One step, as the trainer drives it (src/train/train.c):
 *     begin_step(t)
 *     for p in 0 .. parts-1:            rows [lo, lo+count) of the global batch of B: part(B, p)
 *         the trainer loads those rows into rows [0, count) of the model's batch
 *         compute(p): forward, loss and backward of them (may run a whole micro-batch schedule)
 *     after_backward(samples)          the gradient the update needs is in the model's grads
 *     grad_sq()                        its squared L2 norm, the whole model's (for clipping)
 *     apply(opt, lr)                   the update (here, sharded, or on parameter servers)
 * and around the steps: sync_model (parameters current for evaluation or saving),
 * gather_state (a checkpoint's whole state onto the writer), finish (end of training).
 * Metrics are summed over s->metrics (herd_strategy_reduce, herd_strategy_gather). */
#ifndef HERD_STRATEGY_H
#define HERD_STRATEGY_H

#include "dist/comm.h"
#include "herd/dist.h"
#include "herd/model.h"
#include "optim/optim.h"

struct herd_trace;

/* What compute gets: the part's rows are loaded at row 0 of the model's batch buffer and
 * their targets at targets[0..count). */
typedef struct herd_strategy_part {
    int index;           /* p */
    int count, B;        /* rows of the part, rows of the global batch */
    int id;              /* the part's index among the global batch's parts (dropout streams) */
    const void *targets; /* herd_model_target's layout */
    uint64_t seed;
    int64_t step;        /* global, 0-based */
} herd_strategy_part;

/* What apply gets. */
typedef struct herd_strategy_update {
    struct herd_optimizer *opt; /* sized by the update range (herd_strategy_update_range) */
    float lr;
    int samples;    /* this rank's rows of the step */
    int skipped;    /* 1: non-finite gradients, no update (peers that wait for one are still told) */
    herd_pool *pool; /* the model's threads */
    const herd_sparse_grad *tables; /* the tables' gradients (clipped), herd_model_sparse_count of them:
                                       applied by the strategy when remote_state, else by the trainer */
    int n_tables;
} herd_strategy_update;

/* A checkpoint's training state beyond the model's parameters, whole: the dense optimizer's
 * moments (NULL when it has none), the tables' optimizers (herd_model_sparse_count, NULL when
 * the model has no table), and the optimizer's count of updates. */
typedef struct herd_strategy_state {
    float *m, *v;
    herd_sparse_optimizer *tables;
    int64_t opt_t;
} herd_strategy_state;

typedef struct herd_strategy_ops {
    const char *name;
    /* Parts of a step this rank computes, and part p of a global batch of B: rows
     * [*lo, *lo + *count) (count may be 0 when B is short), *id its global index. */
    int (*parts)(const herd_strategy *s);
    void (*part)(const herd_strategy *s, int B, int p, int *lo, int *count, int *id);
    /* Start of step t: arm gradient exchange, pull parameters. */
    herd_status (*begin_step)(herd_strategy *s, int64_t t, herd_error *err);
    /* Forward, loss (added to *acc) and backward of the loaded part; *loss is its mean loss (0
     * where this rank computes none). */
    herd_status (*compute)(herd_strategy *s, const herd_strategy_part *p, float *loss, herd_metrics *acc,
                           herd_error *err);
    /* After the last part (samples: this rank's rows of the step). */
    herd_status (*after_backward)(herd_strategy *s, int samples, herd_error *err);
    /* *sq = the squared norm of the whole model's dense gradient, the same on every rank. */
    herd_status (*grad_sq)(herd_strategy *s, double *sq, herd_error *err);
    /* The update of the dense parameters. */
    herd_status (*apply)(herd_strategy *s, const herd_strategy_update *u, herd_error *err);
    /* Parameters (and buffers) current on every rank, e.g. before evaluation or saving at step t. */
    herd_status (*sync_model)(herd_strategy *s, int64_t t, herd_error *err);
    /* Before a checkpoint, on every rank: the whole training state onto the writer: parameters,
     * buffers, and st (st->m, st->v buffers of every dense parameter in which this rank's update
     * range holds its own moments; with remote_state, the tables' optimizers and opt_t are
     * filled too). */
    herd_status (*gather_state)(herd_strategy *s, herd_strategy_state *st, herd_error *err);
    /* After resuming at update `step` from a checkpoint every rank loaded (parameters into the
     * model, st whole): where the state lives elsewhere, it goes there (NULL: nothing to do). */
    herd_status (*restore_state)(herd_strategy *s, const herd_strategy_state *st, int64_t step, herd_error *err);
    /* Parameter servers: per server s, load[3 s + 0..2] = bytes, table rows and requests the
     * workers exchanged with it, summed over the workers (a collective among them); NULL: none. */
    herd_status (*server_load)(herd_strategy *s, double *load, int max_servers, int *servers, herd_error *err);
    /* End of training on this rank. */
    herd_status (*finish)(herd_strategy *s, herd_error *err);
    void (*destroy)(herd_strategy *s);
} herd_strategy_ops;

/* What every strategy has; an implementation keeps its own state in impl. */
struct herd_strategy {
    const herd_strategy_ops *ops;
    herd_comm *comm;    /* the world */
    herd_comm *metrics; /* the ranks that compute gradients: metrics are summed over them */
    herd_model *m;
    herd_strategy_config cfg;
    int rank, world;           /* among the ranks that compute gradients */
    int eval_rank, eval_world; /* evaluation: this rank's share of a dataset */
    int64_t update_lo, update_hi; /* the dense parameters this rank's optimizer updates */
    int serves;                /* 1: a parameter-server server (herd_train_serve) */
    int remote_state;          /* 1: the optimizer state and the updates (dense and tables) live on
                                  other ranks: the trainer hands the tables' gradients to apply */
    double wait_seconds;       /* waiting for the exchange, since creation */
    struct herd_trace *trace;
    herd_comm *owned_comm;     /* herd_strategy_create_local's, closed with the strategy */
    struct herd_embedding_shard *shard; /* sharded tables (herd_strategy_set_shard), destroyed with it */
    void *impl;
};

/* ---- implementations ----
 * setup fills s (ops, impl, and rank, world, metrics, eval_*, update_*, serves where they differ
 * from the world's) or fails with one line, freeing what it made (destroy frees impl).
 * layout: the groups a global batch is cut into across the world (the model plans for
 * ceil(B / groups) rows) and whether activation memory may be reused; HERD_EARG with one line
 * when cfg cannot run on `world` ranks. */
herd_status herdi_data_parallel_setup(herd_strategy *s, herd_error *err);
herd_status herdi_data_parallel_layout(const herd_strategy_config *cfg, int world, int *groups, int *reuse, herd_error *err);
herd_status herdi_param_server_setup(herd_strategy *s, herd_error *err);
herd_status herdi_param_server_layout(const herd_strategy_config *cfg, int world, int *groups, int *reuse, herd_error *err);
herd_status herdi_pipeline_setup(herd_strategy *s, herd_error *err);
herd_status herdi_pipeline_layout(const herd_strategy_config *cfg, int world, int *groups, int *reuse, herd_error *err);
/* Data parallel's parts: one per rank of s->world (rows [r*B/W, (r+1)*B/W)), or
 * --deterministic's fixed groups, groups/world per rank. */
int herdi_data_parallel_parts(const herd_strategy *s);
void herdi_data_parallel_part(const herd_strategy *s, int B, int p, int *lo, int *count, int *id);
/* Data parallel's gradient buckets, in the order backward finishes them: [lo, hi) pairs into
 * lo_hi (at most max); returns their number (0: one rank, --deterministic, or not data parallel). */
int herdi_data_parallel_buckets(const herd_strategy *s, int64_t *lo_hi, int max);
/* Data parallel's compute (dropout stream of the part, forward and backward with the gradient
 * scaled by `scale`; a part of no rows zeroes the gradient) and apply (the optimizer on the
 * whole buffer, here), for implementations that do the same. */
herd_status herdi_data_parallel_compute(herd_strategy *s, const herd_strategy_part *p, float scale, float *loss,
                                  herd_metrics *acc, herd_error *err);
herd_status herdi_data_parallel_apply(herd_strategy *s, const herd_strategy_update *u, herd_error *err);

/* ---- the trainer's calls (each a row of the table, or common to all) ---- */
int herd_strategy_parts(const herd_strategy *s);
void herd_strategy_part_rows(const herd_strategy *s, int B, int p, int *lo, int *count, int *id);
/* This rank's rows of a global batch of B: the span of its parts (herd_rows_fn, for the loader). */
void herd_strategy_rows(void *s, int B, int *lo, int *hi);
herd_status herd_strategy_begin_step(herd_strategy *s, int64_t t, herd_error *err);
herd_status herd_strategy_compute(herd_strategy *s, const herd_strategy_part *p, float *loss, herd_metrics *acc,
                                  herd_error *err);
herd_status herd_strategy_after_backward(herd_strategy *s, int samples, herd_error *err);
herd_status herd_strategy_grad_sq(herd_strategy *s, double *sq, herd_error *err);
herd_status herd_strategy_apply(herd_strategy *s, const herd_strategy_update *u, herd_error *err);
herd_status herd_strategy_sync_model(herd_strategy *s, int64_t t, herd_error *err);
herd_status herd_strategy_gather_state(herd_strategy *s, herd_strategy_state *st, herd_error *err);
herd_status herd_strategy_restore_state(herd_strategy *s, const herd_strategy_state *st, int64_t step,
                                        herd_error *err);
/* Parameter servers' load (the server_load row; *servers = 0 for other strategies). */
herd_status herd_strategy_server_load(herd_strategy *s, double *load, int max_servers, int *servers,
                                      herd_error *err);
herd_status herd_strategy_finish(herd_strategy *s, herd_error *err);
/* The dense parameters [*lo, *hi) this rank's optimizer updates (and keeps state for). */
void herd_strategy_update_range(const herd_strategy *s, int64_t *lo, int64_t *hi);
/* Evaluation: this rank's share of a dataset (every evaluating rank holds the whole model, or
 * looks its tables' rows up from their owners: herd_strategy_shard). */
void herd_strategy_eval_shard(const herd_strategy *s, int *rank, int *world);
/* Embedding tables sharded across the ranks (--embedding-shard): the trainer's, kept by the
 * strategy (which destroys it, and a later one it is given) so that evaluations after training
 * still look rows up from their owners. NULL: every rank holds whole tables. */
void herd_strategy_set_shard(herd_strategy *s, struct herd_embedding_shard *x);
struct herd_embedding_shard *herd_strategy_shard(const herd_strategy *s);

/* Parameter-server server ranks: apply pushed gradients (dense parameters with oc and sched, tables with
 * `sparse` and sparse_sched) until every worker is done; resume = 1 waits for the first worker's resumed state. */
herd_status herd_strategy_serve(herd_strategy *s, const herd_optim_config *oc, herd_sparse_opt_kind sparse,
                                const herd_schedule *sched, const herd_schedule *sparse_sched, int resume,
                                herd_error *err);

/* Copies rank 0's parameters and buffers to every rank. */
herd_status herd_strategy_sync_params(herd_strategy *s, herd_error *err);
/* Sums v[0..n) over the ranks that compute gradients. */
herd_status herd_strategy_reduce(herd_strategy *s, double *v, int n, herd_error *err);
/* Every gradient-computing rank's n values (mine) into all (ranks x n, in their order);
 * *ranks = their number (all holds at most max_ranks rows). */
herd_status herd_strategy_gather(herd_strategy *s, const double *mine, int n, double *all, int max_ranks, int *ranks,
                                 herd_error *err);
/* This process's rank in the world. */
int herd_strategy_world_rank(const herd_strategy *s);
/* Ranks in the world (1: one process). */
int herd_strategy_world_size(const herd_strategy *s);
/* --deterministic: the fixed number of groups per batch (checkpoints record it); 0 without. */
int herd_strategy_deterministic_groups(const herd_strategy *s);
/* Records each gradient bucket's exchange into t (herd/trace.h); NULL stops. */
void herd_strategy_set_trace(herd_strategy *s, struct herd_trace *t);
/* Seconds spent waiting for the exchange (gradients, pushes, neighbours), since creation. */
double herd_strategy_wait_seconds(const herd_strategy *s);
/* Pipeline: seconds waiting for neighbours and seconds in steps on this rank (0, 0 elsewhere). */
void herd_strategy_pipeline_times(const herd_strategy *s, double *wait, double *total);

/* A one-rank strategy over its own one-process communicator, for a trainer given none. */
herd_status herd_strategy_create_local(herd_strategy **out, herd_model *m, herd_error *err);

#endif
