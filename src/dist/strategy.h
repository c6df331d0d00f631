/* Data-parallel training as a strategy the training loop calls at fixed points: which part
 * of the global batch this rank computes, gradient exchange overlapped with backward
 * (buckets reduced as soon as backward has produced them), and metric reduction.
 * Single-process training is the same strategy with one rank (no communication). */
#ifndef HERD_STRATEGY_H
#define HERD_STRATEGY_H

#include "dist/comm.h"
#include "herd/model.h"

typedef struct herd_strategy_config {
    double bucket_mb;  /* gradient bucket size in MiB; <= 0: auto, min(25 as PyTorch DDP, a quarter of the model) */
    int bf16;          /* send gradients as bfloat16 */
    int deterministic; /* fixed-order reduction: bit-identical weights for any world size dividing `groups` */
    int groups;        /* deterministic: fixed micro-groups per global batch */
} herd_strategy_config;

typedef struct herd_strategy herd_strategy;

herd_status herd_strategy_create(herd_strategy **out, herd_comm *c, herd_model *m, const herd_strategy_config *cfg,
                                 herd_error *err);
void herd_strategy_destroy(herd_strategy *s);

int herd_strategy_rank(const herd_strategy *s);
int herd_strategy_world(const herd_strategy *s);
/* Largest number of samples one group of a global batch of B can hold (plan the model for it). */
int herd_strategy_max_group(const herd_strategy *s, int B);
/* Number of groups this rank computes per step (1 unless deterministic). */
int herd_strategy_groups(const herd_strategy *s);
/* Group g (0-based, of this rank) covers samples [*lo, *lo + *count) of a global batch of B;
 * *id is its global index (for dropout streams). count may be 0 when B < groups. */
void herd_strategy_group(const herd_strategy *s, int B, int g, int *lo, int *count, int *id);

/* Start of a step: arms the backward hook that starts bucket reductions. */
void herd_strategy_begin_step(herd_strategy *s);
/* After group g's backward (gradients scaled by count/B are in the model's grads). */
herd_status herd_strategy_group_done(herd_strategy *s, int g, herd_error *err);
/* After the last group: the model's grads hold the sum over the global batch on every rank. */
herd_status herd_strategy_finish_step(herd_strategy *s, herd_error *err);

/* Copies rank 0's parameters and buffers to every rank. */
herd_status herd_strategy_sync_params(herd_strategy *s, herd_error *err);
/* Sums v[0..n) across ranks. */
herd_status herd_strategy_reduce(herd_strategy *s, double *v, int n, herd_error *err);

/* Seconds spent waiting for gradient exchange after backward, since creation. */
double herd_strategy_wait_seconds(const herd_strategy *s);

#endif
