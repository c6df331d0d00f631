/* Parameter-server internals used by the strategy (param_server.c): the worker side (pull
 * parameters, push gradients, gather and restore the servers' state) and the server loop.
 *
 * Keys are as ps-lite's: a row of an embedding table is named by its offset (in floats) in the
 * model's flat parameter buffer, so keys sort in buffer order and each server owns one key range
 * [lo, hi): the dense parameters first, then the tables' rows (a table's rows may be split
 * between servers at a row boundary). A worker pulls and pushes the dense part of each shard and
 * only the rows its batch touches (KVWorker::Pull/Push(keys, vals)). */
#ifndef HERD_PARAM_SERVER_H
#define HERD_PARAM_SERVER_H

#include "dist/comm.h"
#include "herd/model.h"
#include "optim/optim.h"

typedef struct ps_state ps_state;

/* world: all ranks; the last `servers` ranks serve contiguous key ranges of the flat
 * parameters, balanced by bytes (boundaries inside a table moved to the nearest row); the others
 * are workers. staleness < 0: unbounded (asynchronous). */
herd_status herdi_ps_create(ps_state **out, herd_comm *world, herd_model *m, int servers, int staleness, herd_error *err);
void herdi_ps_destroy(ps_state *p);
int herdi_ps_is_server(const ps_state *p);
int herdi_ps_workers(const ps_state *p);
/* Worker: parameters for step t into the model (waits while more than `staleness` steps ahead
 * of the slowest worker; exact = 1 waits for every update before t, e.g. for evaluation): the
 * dense ones and, full = 0, only the table rows the first `rows` loaded samples read; full = 1,
 * every row. */
herd_status herdi_ps_pull(ps_state *p, int64_t t, int exact, int full, int rows, herd_error *err);
/* Worker: the model's dense gradients and the tables' row-sparse ones (tables[0..n_tables), in
 * herd_model_sparse_grad's order), the mean over `samples` local samples, of step t. */
herd_status herdi_ps_push(ps_state *p, int64_t t, int samples, const herd_sparse_grad *tables, int n_tables,
                    herd_error *err);
/* Worker: no more requests from this worker. */
herd_status herdi_ps_done(ps_state *p, herd_error *err);

/* The whole training state the servers hold, as a worker sees it: parameters (the model's),
 * the dense moments m, v (whole, NULL when the optimizer has none), each table's optimizer
 * (whole tables), and the count of updates applied. */
typedef struct ps_full_state {
    float *m, *v;
    herd_sparse_optimizer *tables; /* herd_model_sparse_count of them, or NULL when none */
    int64_t version, opt_t;
} ps_full_state;
/* Worker: the state after update t (waits for it) from every server into the model and *st. */
herd_status herdi_ps_gather(ps_state *p, int64_t t, ps_full_state *st, herd_error *err);
/* Worker: st (and the model's parameters) to every server, which resume from it. */
herd_status herdi_ps_restore(ps_state *p, const ps_full_state *st, herd_error *err);
/* Server: applies pushed gradients with the optimizers and schedules (dense: oc, sched; tables:
 * sparse, sparse_sched) until every worker is done; resume = 1 answers nothing before a worker
 * restored its state. */
herd_status herdi_ps_serve(ps_state *p, const herd_optim_config *oc, herd_sparse_opt_kind sparse,
                     const herd_schedule *sched, const herd_schedule *sparse_sched, int resume, herd_error *err);
/* Worker: what it exchanged with each server since creation, load[3 s + 0..2] = bytes (both
 * ways), table rows (pulled and pushed), requests. */
void herdi_ps_load(const ps_state *p, double *load);
int herdi_ps_servers(const ps_state *p);

/* A message a server received, as herdi_ps_decode checked it. */
typedef enum ps_kind { PS_PULL, PS_PUSH, PS_DONE, PS_STATE, PS_RESTORE } ps_kind;
typedef struct ps_message {
    ps_kind kind;
    int64_t step;       /* PULL: the step whose parameters are wanted; PUSH: the gradient's step;
                           STATE: the update count wanted; RESTORE: the update count restored */
    int64_t samples;    /* PUSH: local samples behind the gradient (0: a skipped step) */
    int exact, full;    /* PULL: 1 waits for every update before step; 1 every row */
    int64_t opt_t;      /* RESTORE: the optimizer's updates */
    int64_t keys;       /* PULL, PUSH: rows named, ascending, distinct, each a row start in the shard */
    const int64_t *key;
    const float *dense; /* PUSH: dense_n floats; RESTORE: the state, state_floats floats */
    const float *rows;  /* PUSH: the rows' floats, in key order */
} ps_message;
/* One table's rows in a shard: keys [lo, hi), row floats dim. */
typedef struct ps_piece {
    int64_t lo, hi, dim;
} ps_piece;
/* What the server accepts now: its shard (dense_n dense floats, then pieces), the window of
 * steps pushes may be for, [version, version + slots) (slots 0: asynchronous, any step in
 * 0..2^50), and the floats a RESTORE carries. */
typedef struct ps_expect {
    int64_t shard_n, version;
    int slots;
    int64_t dense_n;
    int pieces;
    const ps_piece *piece;
    int64_t state_floats;
} ps_expect;
/* Checks a received message (tag, bytes) for kind, size and content before anything uses
 * it: HERD_EFORMAT with one line naming what is wrong. buf must be aligned for int64. */
herd_status herdi_ps_decode(int tag, const unsigned char *buf, int64_t bytes, const ps_expect *e, ps_message *out,
                      herd_error *err);

#endif
