/* Pipeline (model) parallelism internals used by the strategy: stage assignment and the
 * micro-batch schedules (GPipe, 1F1B) of one step. */
#ifndef HERD_PIPELINE_H
#define HERD_PIPELINE_H

#include "dist/comm.h"
#include "herd/model.h"

typedef struct pipe_state pipe_state;

/* world = stages x replicas; rank r is stage r % stages of pipeline r / stages.
 * cuts[0..stages-2]: index of the last layer of each stage but the last. */
herd_status herdi_pipe_create(pipe_state **out, herd_comm *world, herd_model *m, int stages, const int *cuts,
                        int microbatches, int one_f_one_b, herd_error *err);
void herdi_pipe_destroy(pipe_state *p);
int herdi_pipe_replica(const pipe_state *p);
int herdi_pipe_replicas(const pipe_state *p);
int herdi_pipe_stage(const pipe_state *p);
/* One step over this pipeline's `count` samples (of a global batch of B), loaded into rows
 * [0, count) of the model's batch (stage 0 reads the inputs, the last stage the targets): forward and
 * backward of every micro-batch in the schedule's order, activations and gradients
 * exchanged with the neighbouring stages, then the stage's gradients summed over replicas.
 * targets: the count targets (herd_model_target's layout). The loss and metrics (last stage
 * only) are added to *acc. */
herd_status herdi_pipe_step(pipe_state *p, int count, int B, const void *targets, uint64_t seed, int64_t step,
                      herd_metrics *acc, herd_error *err);
/* Every rank gets the whole model's parameters and buffers (each stage contributes its own). */
herd_status herdi_pipe_gather_params(pipe_state *p, herd_error *err);
/* herdi_pipe_gather_params, plus the optimizer's moments m and v (NULL: none) over the parameter
 * ranges: after it every stage holds the whole training state (for a checkpoint). */
herd_status herdi_pipe_gather_state(pipe_state *p, float *m, float *v, herd_error *err);
/* Seconds spent waiting for neighbours, and in steps, since creation (bubble measurement). */
void herdi_pipe_times(const pipe_state *p, double *wait, double *total);

#endif
