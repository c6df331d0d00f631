/* The trainer's state, shared by the training loop (train.c) and checkpoints (checkpoint.c). */
#ifndef HERD_TRAINER_INTERNAL_H
#define HERD_TRAINER_INTERNAL_H

#include "herd/train.h"
#include "optim/optim.h"

struct herd_trainer {
    herd_model *m;
    herd_train_config cfg;
    struct herd_strategy *s; /* cfg.strategy, or a one-rank strategy of its own (own_strategy) */
    int own_strategy;
    herd_optimizer opt;            /* the dense parameters: herd_model_dense_params floats */
    herd_sparse_optimizer *sparse; /* one per row-sparse table (herd_model_sparse_count) */
    herd_sparse_grad *sparse_grads; /* their gradients of the step */
    struct herd_sparse_exchange *sparse_x; /* data parallel or --deterministic groups: the tables' exchange, else NULL */
    int n_sparse;
    /* cfg.embedding_shard: the tables' rows this rank holds (the sparse optimizers keep their state
     * only), their exchange, and the gradient's squared norm of the step over every rank's rows */
    struct herd_embedding_shard *shard;
    double shard_sq;
    char shard_note[512];
    float **sparse_full; /* checkpoints of sharded tables: m and v of each table whole (2 a table) */
    herd_schedule sched, sparse_sched; /* the dense parameters' and the tables' (cfg.sparse_lr) */
    void *targets;          /* the batch's targets (herd_model_target's layout) */
    herd_metrics metrics;   /* since the caller last cleared it */
    herd_metrics step_metrics; /* the step in progress (added to metrics unless it is skipped) */
    int64_t step; /* global, 0-based: steps taken so far */
    herd_loader *loader; /* herd_train's: batches come from it (step load_step of the epoch) */
    int64_t load_step;
    float lr;
    herd_train_phases phases;
    const herd_dataset *data; /* herd_train's training set (checkpoints record its source), or NULL */
    /* the whole dense optimizer moments, for checkpoints, when this rank updates only a part of
     * the parameters (ZeRO-1): made by the first herdi_checkpoint_gather; NULL otherwise */
    float *full_m, *full_v;
};

/* Where training stands: the next step to run is step_in_epoch of epoch (both 0-based). */
typedef struct train_position {
    int64_t epoch;
    int64_t step_in_epoch;
} train_position;

/* Writes DIR/ckpt-<global step>.safetensors atomically (weights, buffers, optimizer
 * moments, position and step counters, and what resuming must agree with, in the metadata)
 * and keeps the newest `keep`. The path written goes to saved (saved_size bytes; may be 0). */
herd_status herdi_checkpoint_save(const char *dir, const herd_trainer *t, const train_position *pos, int keep,
                            char *saved, size_t saved_size, herd_error *err);
/* Loads the newest loadable checkpoint of DIR into t (model, optimizer, step) and *pos; a
 * damaged newer one is skipped, said in note (note_size bytes; "" when none was). The batch,
 * optimizer, seed, model structure, training data and deterministic layout must match the
 * ones it was written with (HERD_EARG naming the difference). HERD_EIO if none exists. The
 * path loaded goes to loaded. */
herd_status herdi_checkpoint_load_latest(const char *dir, herd_trainer *t, train_position *pos, char *loaded,
                                   size_t loaded_size, char *note, size_t note_size, herd_error *err);
/* Before a checkpoint, on every rank: the training state whole on the writer, whatever the
 * strategy's layout (a ZeRO-1 rank's shard of the optimizer moments goes into t->full_m/v, then
 * the strategy gathers them). Checkpoints hold every tensor whole, so any layout resumes them. */
herd_status herdi_checkpoint_gather(herd_trainer *t, herd_error *err);
/* Checkpoints written by a background thread: herdi_checkpoint_save_async waits for the write in
 * flight (at most one; its file or its error comes back then), copies the state into a
 * snapshot and hands it to the thread, so the training loop only waits for the copy.
 * herdi_checkpoint_writer_wait collects the last write (before stopping or finishing). The time the
 * loop spent in both is herdi_checkpoint_writer_blocked. */
typedef struct ckpt_writer ckpt_writer;
herd_status herdi_checkpoint_writer_create(ckpt_writer **out, const herd_trainer *t, herd_error *err);
herd_status herdi_checkpoint_save_async(ckpt_writer *w, const char *dir, const herd_trainer *t, const train_position *pos,
                                  int keep, char *saved, size_t saved_size, herd_error *err);
herd_status herdi_checkpoint_writer_wait(ckpt_writer *w, char *saved, size_t saved_size, herd_error *err);
double herdi_checkpoint_writer_blocked(const ckpt_writer *w, double *final_wait);
void herdi_checkpoint_writer_destroy(ckpt_writer *w);

/* Makes DIR this run's: creates it, takes DIR/.herd-lock (flock, held until
 * herdi_checkpoint_dir_release) or fails naming the run that holds it, refuses a fresh run
 * (resume = 0) when DIR already holds checkpoints, and removes the temp files of
 * interrupted checkpoint writes (said in note). */
herd_status herdi_checkpoint_dir_claim(const char *dir, int resume, int *lock_fd, char *note, size_t note_size,
                                 herd_error *err);
void herdi_checkpoint_dir_release(int lock_fd);

#endif
