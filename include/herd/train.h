/* herd train: the training loop (sampler → batch → forward → loss → backward → clip →
 * optimizer → schedule) and evaluation. The library never prints: progress reaches the
 * caller through callbacks. */
#ifndef HERD_TRAIN_H
#define HERD_TRAIN_H

#include <signal.h>
#include <stdint.h>

#include "herd/core.h"
#include "herd/data.h"
#include "herd/model.h"

#ifdef __cplusplus
extern "C" {
#endif

/* A distribution strategy (src/dist/strategy.h): data-parallel over MPI ranks. NULL
 * everywhere below means one process. */
typedef struct herd_strategy herd_strategy;

/* Where a training run's time went, summed over its steps (this rank). */
typedef struct herd_train_phases {
    double data;     /* loading batches */
    double compute;  /* forward, loss, backward (pipeline: the whole micro-batch schedule) */
    double exchange; /* waiting for gradient exchange or parameter-server pushes */
    double update;   /* clipping and the optimizer */
    double checkpoint; /* the loop held up by checkpoints (copying the state, a write still going) */
    double checkpoint_end; /* waiting at the end (or a stop) for the last background write */
    int64_t steps, samples;
    int64_t optimizer_floats; /* the dense optimizer state this rank keeps (--zero 1: its shard's) */
} herd_train_phases;

typedef struct herd_train_config {
    int epochs;              /* >= 1 */
    int batch;               /* <= the batch the model was prepared for */
    const char *optimizer;   /* sgd | momentum | nesterov | adam | adamw: the dense parameters */
    /* the embedding tables (row-sparse gradients; src/optim/optim.h has the rules): sgd | adagrad |
     * rowwise_adagrad | adam (lazy Adam, as torch.optim.SparseAdam). NULL: adam for adam/adamw, else sgd. Both follow
     * the schedule (the tables from sparse_lr); momentum and weight decay apply to the dense parameters only. */
    const char *sparse_optimizer;
    /* the embedding tables sharded across the data-parallel ranks (src/dist/embedding_shard.h):
     * "table" (each table on one rank), "row" (each rank a row range of every table) or "auto"
     * (table-wise when that is within 5% of an even split of the bytes); NULL: every rank holds
     * every table */
    const char *embedding_shard;
    /* with embedding_shard: 1 leaves each table's rows with their owners at the end of herd_train
     * (nothing saves the model; evaluations with the strategy still look rows up), so no rank
     * ever holds a whole table; 0: rank 0's model gets every table whole (herd_trainer_sync) */
    int shard_tables_stay;
    float lr;
    /* the embedding tables' learning rate (their sparse optimizer); <= 0: lr. The schedule applies
     * to it as to lr: its own base sparse_lr, warm-up and decay alike, the cosine floor
     * min_lr x sparse_lr / lr */
    float sparse_lr;
    float momentum;          /* momentum/nesterov; <= 0 = default 0.9 */
    float weight_decay;
    /* 1: weight decay only on parameters of 2 or more dims (dense and conv weights), none on
     * biases, norms' scales and shifts, position embeddings' rows are matrices too; 0: on
     * every parameter (torch.optim's default) */
    int decay_matrices;
    const char *schedule;    /* constant | step | cosine (NULL = constant) */
    int64_t warmup_steps;    /* linear warm-up steps (0 = none) */
    int lr_step_epochs;      /* step schedule: decay every this many epochs */
    float lr_gamma;          /* step schedule factor */
    float min_lr;            /* cosine floor */
    float clip_norm;         /* global-norm clipping; <= 0 = off */
    uint64_t seed;           /* shuffling and dropout (the model's init uses its own call) */
    herd_strategy *strategy; /* NULL: one process; else this rank computes its share of each batch */
    /* checkpoints: every `checkpoint_every` steps (0 = never) rank 0 writes
     * checkpoint_dir/ckpt-<step>.safetensors atomically, keeping the newest keep_checkpoints
     * (0 = all); resume = 1 continues exactly from the newest one there (any world size,
     * same global batch). */
    const char *checkpoint_dir;
    int64_t checkpoint_every;
    int keep_checkpoints;
    int resume;
    /* 0: a checkpoint is a copy of the state at the step boundary that a background thread
     * writes while training goes on (at most one in flight); 1: written before the next step */
    int checkpoint_sync;
    /* a NaN/Inf loss or gradient: 0 stops with HERD_ENUMERIC naming the first layer that went
     * non-finite (the last checkpoint stays the one before it); 1 skips that step's update */
    int skip_nonfinite;
    /* when set, data loading, loss and optimizer steps are recorded there (herd/trace.h) */
    struct herd_trace *trace;
    /* when set, filled with the run's time per phase when herd_train returns */
    herd_train_phases *phases;
    /* with a strategy: every this many steps (0 = never) the ranks' busy times (the wall time
     * of the interval less the time waiting in the exchange) are gathered and the slowest rank
     * is named through cb->notice on the writer rank, with its excess over the others' median */
    int64_t straggler_every;
    /* herd_train reads batches through a loader (include/herd/data.h): prefetch threads,
     * cache, augmentation; the defaults (all 0) load each batch in the training thread */
    herd_loader_config loader;
    /* when set: once *stop is non-zero (a signal handler may set it), herd_train stops after the
     * step in progress and the checkpoint due with it, and returns HERD_ESTOPPED. With a
     * strategy only the rank that writes checkpoints looks at it (the caller then ends the job). */
    const volatile sig_atomic_t *stop;
} herd_train_config;


/* Defaults: 1 epoch, batch 32, adam, lr 1e-3, constant schedule, no clipping, seed 0. */
herd_train_config herd_train_defaults(void);

typedef struct herd_epoch_stats {
    int epoch;               /* 1-based */
    /* means over the epoch's training samples; a metric the model's loss does not measure
     * (herd_model_metrics) is -1 */
    double loss, accuracy, rmse, auc;
    double val_loss, val_accuracy, val_rmse, val_auc; /* -1 when there is no validation set */
    double seconds;          /* training time of the epoch (excluding validation) */
    double images_per_second;
    double lr;               /* learning rate at the end of the epoch */
    int64_t skipped_steps;   /* updates skipped for non-finite gradients (skip_nonfinite) */
} herd_epoch_stats;

typedef struct herd_train_callbacks {
    void *user;
    void (*epoch_begin)(void *user, int epoch, int epochs, int64_t steps);
    /* running means of the epoch so far (accuracy -1 when the model has none) */
    void (*step)(void *user, int64_t step, double running_loss, double running_accuracy);
    void (*epoch_end)(void *user, const herd_epoch_stats *stats);
    /* optional: a one-line note for the user (a damaged newest checkpoint skipped on resume,
     * temp files of an interrupted run removed) */
    void (*notice)(void *user, const char *msg);
    /* optional: the checkpoint just written (resumed = 0) or resumed from (resumed = 1) */
    void (*checkpoint)(void *user, const char *path, int resumed);
} herd_train_callbacks;

/* One training step at a time, for callers that drive their own loop (herd bench,
 * embedding programs); herd_train is built on it. */
typedef struct herd_trainer herd_trainer;
/* steps_per_epoch sizes the LR schedule (step decay, cosine length). */
herd_status herd_trainer_create(herd_trainer **out, herd_model *m, const herd_train_config *cfg,
                                int64_t steps_per_epoch, herd_error *err);
/* What one step saw on this rank (its share of the global batch). */
typedef struct herd_step_result {
    double loss_sum, loss_units; /* the step's mean loss is loss_sum / loss_units */
    int samples;
    int skipped;     /* 1: non-finite gradients, the update was skipped (skip_nonfinite) */
} herd_step_result;

/* One step on the global batch idx[0..B) of ds: this rank loads its share, runs forward,
 * loss and backward, the strategy combines gradients, then clipping and the update.
 * HERD_ENUMERIC names the first layer that went non-finite. */
herd_status herd_trainer_step(herd_trainer *t, const herd_dataset *ds, const int64_t *idx, int B,
                              herd_step_result *res, herd_error *err);
/* The loss and metrics of the steps taken since the caller last cleared it (herd_metrics_clear;
 * skipped steps are left out); herd_train clears it at each epoch's start. */
herd_metrics *herd_trainer_metrics(herd_trainer *t);
/* Learning rate used by the last step. */
float herd_trainer_lr(const herd_trainer *t);
/* The model current on every rank, for evaluation or saving (the strategy's sync_model); tables
 * sharded by --embedding-shard are written whole into rank 0's model alone (the one that saves),
 * until a step or an evaluation looks rows up again: evaluations with the strategy look them up
 * from their owners (herd_evaluate), so no rank needs whole tables for them. */
herd_status herd_trainer_sync(herd_trainer *t, herd_error *err);
void herd_trainer_destroy(herd_trainer *t);

/* Trains m (already prepared with herd_model_prepare) on train, validating on val
 * (may be NULL) after each epoch. cb may be NULL. Stops with HERD_ENUMERIC, naming the
 * first layer that went non-finite, if the loss becomes NaN/Inf. */
herd_status herd_train(herd_model *m, herd_dataset *train, herd_dataset *val, const herd_train_config *cfg,
                       const herd_train_callbacks *cb, herd_error *err);

/* On a parameter-server server rank (cfg->strategy): applies the workers' gradients with
 * the optimizer and schedule cfg asks for until every worker is done. train sizes the
 * schedule. */
herd_status herd_train_serve(herd_model *m, const herd_dataset *train, const herd_train_config *cfg,
                             herd_error *err);

/* The loss and metrics of m on ds (herd_metrics_loss, herd_metrics_value), in batches of
 * `batch` (<= the prepared batch); *out is overwritten. With a strategy each rank evaluates
 * its contiguous share and the sums are combined; where the strategy's ranks shard the tables
 * (--embedding-shard) each batch's rows come from their owners as in a training step, every rank
 * taking part in as many lookups as the rank with the most batches (the same bits as whole tables). */
herd_status herd_evaluate(herd_model *m, herd_dataset *ds, int batch, herd_strategy *strategy, herd_metrics *out,
                          herd_error *err);

#ifdef __cplusplus
}
#endif
#endif
