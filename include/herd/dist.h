/* herd dist: training on several processes from a C program. A program started by mpirun or
 * srun (--mpi=pmix) joins the job with herd_comm_open, makes a strategy over its model and
 * hands it to the trainer (herd_train_config.strategy, herd_train or herd_fit): every rank runs
 * the same code on the same data, each computing its share of every global batch, and rank 0
 * alone should write files. Started without a launcher, the communicator has one rank. */
#ifndef HERD_DIST_H
#define HERD_DIST_H

#include "herd/core.h"
#include "herd/model.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct herd_comm herd_comm;
/* Joins the job if this process was started by an MPI launcher (mpirun, srun), else returns a
 * one-rank communicator. timeout_s bounds every wait (<= 0: 60 s default): a rank that died or
 * hangs becomes an error naming it, never a silent hang. */
herd_status herd_comm_open(herd_comm **out, double timeout_s, herd_error *err);
void herd_comm_close(herd_comm *c);
int herd_comm_rank(const herd_comm *c);
int herd_comm_size(const herd_comm *c);
/* Ends the whole job with code (MPI_Abort) when one rank cannot go on: one rank's exit would
 * leave the others waiting. With one process it returns and the caller exits as usual. */
void herd_comm_abort(herd_comm *c, int code);

typedef enum herd_strategy_kind { HERD_STRATEGY_DP = 0, HERD_STRATEGY_PS, HERD_STRATEGY_PIPELINE } herd_strategy_kind;

typedef struct herd_strategy_config {
    herd_strategy_kind kind;
    int servers;       /* PS: the last `servers` ranks hold the parameters */
    int staleness;     /* PS: steps a worker may run ahead of the slowest; < 0 = unbounded */
    double bucket_mb;  /* gradient bucket size in MiB; <= 0: auto, min(25 as PyTorch DDP, a quarter of the model) */
    int bf16;          /* send gradients as bfloat16 */
    int deterministic; /* fixed-order reduction: bit-identical weights for any world size dividing `groups` */
    int groups;        /* deterministic: fixed micro-groups per global batch */
    int zero;          /* 1: ZeRO stage 1 (data parallel): gradients reduce-scattered, each rank updates its
                        * 1/world of the parameters with its 1/world of the optimizer state, then the
                        * parameters are allgathered; 0: every rank updates everything */
    int stages;        /* pipeline: stages per pipeline (the world holds world/stages replicas) */
    int microbatches;  /* pipeline: micro-batches per step */
    int one_f_one_b;   /* pipeline: 1F1B schedule instead of GPipe */
    int cuts[64];      /* pipeline: last layer of each stage but the last (0: balanced by FLOPs) */
} herd_strategy_config;

/* Data parallel with automatic buckets; the defaults of herd train (PS: 1 server, staleness 0;
 * deterministic groups 4; pipeline 2 stages, 4 micro-batches, GPipe). */
herd_strategy_config herd_strategy_defaults(herd_strategy_kind kind);

/* How a rank's model must be prepared under cfg on `world` ranks for a global batch of B,
 * answered before the model is: rows (the most rows of a batch one rank computes at once: the
 * model's max_batch), memory_reuse (0: a pipeline keeps every micro-batch's activations,
 * herd_model_set_memory_reuse(m, 0)) and fixed_reduction (1 with cfg.deterministic:
 * herd_model_set_fixed_reduction(m, 1), so the weights depend on the thread count no more than
 * on the world size). HERD_EARG with one line when the layout cannot work (servers, stages or
 * groups against the world size, a batch smaller than the groups). */
typedef struct herd_strategy_layout {
    int rows;
    int memory_reuse;
    int fixed_reduction;
} herd_strategy_layout;
herd_status herd_strategy_layout_for(const herd_strategy_config *cfg, int world, int batch, herd_strategy_layout *out,
                                     herd_error *err);

/* What cfg cannot train of model m, before any rank starts (batchnorm sync=1 outside plain data
 * parallel): HERD_EARG with one line; herd_strategy_create checks it too. */
herd_status herd_strategy_check_model(const herd_strategy_config *cfg, const herd_model *m, herd_error *err);

typedef struct herd_strategy herd_strategy;
/* A strategy over c for model m (already prepared for this rank's share of the batch and
 * initialised); every rank calls it, and rank 0's parameters and buffers are copied to all. */
herd_status herd_strategy_create(herd_strategy **out, herd_comm *c, herd_model *m, const herd_strategy_config *cfg,
                                 herd_error *err);
void herd_strategy_destroy(herd_strategy *s);
/* 1 on parameter-server server ranks: they call herd_train_serve instead of training. */
int herd_strategy_is_server(const herd_strategy *s);
/* 1 on the one rank that should write files (world rank 0). */
int herd_strategy_writer(const herd_strategy *s);

#ifdef __cplusplus
}
#endif
#endif
