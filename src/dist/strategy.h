/* Distribution strategies the training loop calls at fixed points: which part of the global
 * batch this rank computes, what happens to gradients after backward, where the update is
 * applied, and metric reduction. Data parallel: gradient exchange overlapped with backward
 * (buckets reduced as soon as backward has produced them), every rank applies the same
 * update. Parameter server: workers pull parameters and push gradients, servers apply the
 * updates. Single-process training is data parallel with one rank (no communication). */
#ifndef HERD_STRATEGY_H
#define HERD_STRATEGY_H

#include "dist/comm.h"
#include "herd/dist.h"
#include "herd/model.h"

/* the public part (kinds, config, create, destroy, is_server, writer): herd/dist.h */

/* This rank's index and count among the ranks that compute gradients (all ranks for data
 * parallel, the workers for a parameter server). */
int herd_strategy_rank(const herd_strategy *s);
int herd_strategy_world(const herd_strategy *s);
/* 1 when the strategy applies updates itself (the trainer must not step its optimizer). */
int herd_strategy_applies_update(const herd_strategy *s);
/* Evaluation: this rank's share of a dataset (every rank holds the whole model then). */
void herd_strategy_eval_shard(const herd_strategy *s, int *rank, int *world);
/* Pipeline: 1 when the trainer must hand its step to herd_strategy_pipeline_step. */
int herd_strategy_is_pipeline(const herd_strategy *s);
/* Before a checkpoint, on every rank: gathers what the file needs onto the writer (pipeline:
 * every stage's parameters, buffers and optimizer moments m, v; NULL when the optimizer has
 * none). Data parallel: nothing to do. */
herd_status herd_strategy_sync_checkpoint(herd_strategy *s, float *m, float *v, herd_error *err);
/* Pipeline: *sq (this stage's sum of squared gradients, the same on every replica of the
 * stage) becomes the whole model's, summed over the stages; elsewhere unchanged. */
herd_status herd_strategy_grad_sq_total(herd_strategy *s, double *sq, herd_error *err);
typedef herd_status (*herd_load_rows_fn)(void *user, int64_t row0, int first, int count, herd_error *err);
/* Pipeline: one step over this replica's `count` samples of a global batch of B (see pipeline.h). */
herd_status herd_strategy_pipeline_step(herd_strategy *s, int count, int B, const void *targets,
                                        herd_load_rows_fn load, void *user, uint64_t seed, int64_t step,
                                        herd_metrics *acc, herd_error *err);
/* Pipeline: seconds waiting for neighbours and seconds in steps, on this rank. */
void herd_strategy_pipeline_times(const herd_strategy *s, double *wait, double *total);
/* Scale for the loss gradient of a group of `count` samples of a global batch of B. */
float herd_strategy_grad_scale(const herd_strategy *s, int count, int B);
/* Largest number of samples one group of a global batch of B can hold (plan the model for it). */
int herd_strategy_max_group(const herd_strategy *s, int B);
/* This process's rank in the world (all ranks, whatever the strategy's own groups). */
int herd_strategy_world_rank(const herd_strategy *s);
/* --deterministic: the fixed number of micro-groups per batch; 0 without it. */
int herd_strategy_deterministic_groups(const herd_strategy *s);
/* Number of groups this rank computes per step (1 unless deterministic). */
int herd_strategy_groups(const herd_strategy *s);
/* Group g (0-based, of this rank) covers samples [*lo, *lo + *count) of a global batch of B;
 * *id is its global index (for dropout streams). count may be 0 when B < groups. */
void herd_strategy_group(const herd_strategy *s, int B, int g, int *lo, int *count, int *id);

/* Start of step t (global, 0-based): arms the backward hook that starts bucket reductions;
 * a parameter-server worker pulls the parameters for step t. */
herd_status herd_strategy_begin_step(herd_strategy *s, int64_t t, herd_error *err);
/* After group g's backward (gradients scaled by count/B are in the model's grads). */
herd_status herd_strategy_group_done(herd_strategy *s, int g, herd_error *err);
/* After the last group (samples: this rank's samples in the step): data parallel leaves the
 * global batch's gradient in the model's grads on every rank; a parameter-server worker
 * pushes its gradients. */
herd_status herd_strategy_finish_step(herd_strategy *s, int samples, herd_error *err);
/* Makes the model's parameters current before evaluation or saving at step t (a PS worker
 * pulls every update up to t); nothing for data parallel. */
herd_status herd_strategy_sync_model(herd_strategy *s, int64_t t, herd_error *err);
/* End of training on a worker (a PS worker tells the servers). */
herd_status herd_strategy_finish(herd_strategy *s, herd_error *err);
/* Parameter-server server ranks: apply pushed gradients until every worker is done. */
struct herd_optim_config;
struct herd_schedule;
herd_status herd_strategy_serve(herd_strategy *s, const struct herd_optim_config *oc,
                                const struct herd_schedule *sched, herd_error *err);

/* Copies rank 0's parameters and buffers to every rank. */
herd_status herd_strategy_sync_params(herd_strategy *s, herd_error *err);
/* Sums v[0..n) across ranks. */
herd_status herd_strategy_reduce(herd_strategy *s, double *v, int n, herd_error *err);
/* Every training rank's n values (mine) into all (ranks x n, in the order of the ranks that
 * reduce metrics: every rank, or the parameter server's workers); *ranks = their number
 * (all holds at most max_ranks rows). */
herd_status herd_strategy_gather(herd_strategy *s, const double *mine, int n, double *all, int max_ranks, int *ranks,
                                 herd_error *err);

/* Records each gradient bucket's exchange into t (herd/trace.h); NULL stops. */
struct herd_trace;
void herd_strategy_set_trace(herd_strategy *s, struct herd_trace *t);

/* Seconds spent waiting for gradient exchange after backward, since creation. */
double herd_strategy_wait_seconds(const herd_strategy *s);

#endif
