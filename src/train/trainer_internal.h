/* The trainer's state, shared by the training loop (train.c) and checkpoints (checkpoint.c). */
#ifndef HERD_TRAINER_INTERNAL_H
#define HERD_TRAINER_INTERNAL_H

#include "herd/train.h"
#include "optim/optim.h"

struct herd_trainer {
    herd_model *m;
    herd_train_config cfg;
    herd_optimizer opt;
    herd_schedule sched;
    int32_t *labels;
    int64_t step; /* global, 0-based: steps taken so far */
    herd_loader *loader; /* herd_train's: batches come from it (step load_step of the epoch) */
    int64_t load_step;
    float lr;
    herd_train_phases phases;
};

/* Where training stands: the next step to run is step_in_epoch of epoch (both 0-based). */
typedef struct train_position {
    int64_t epoch;
    int64_t step_in_epoch;
} train_position;

/* Writes DIR/ckpt-<global step>.safetensors atomically (weights, buffers, optimizer
 * moments, position and step counters in the metadata) and keeps the newest `keep`. */
herd_status checkpoint_save(const char *dir, const herd_trainer *t, const train_position *pos, int keep,
                            herd_error *err);
/* Loads the newest checkpoint of DIR into t (model, optimizer, step) and *pos. The batch
 * size and optimizer must match the ones it was written with. HERD_EIO if none exists. */
herd_status checkpoint_load_latest(const char *dir, herd_trainer *t, train_position *pos, herd_error *err);

#endif
