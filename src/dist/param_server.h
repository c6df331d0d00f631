/* Parameter-server internals used by the strategy (data_parallel.c): the worker side (pull
 * parameters, push gradients) and the server loop. */
#ifndef HERD_PARAM_SERVER_H
#define HERD_PARAM_SERVER_H

#include "dist/comm.h"
#include "herd/model.h"
#include "optim/optim.h"

typedef struct ps_state ps_state;

/* world: all ranks; the last `servers` ranks serve contiguous shards of the flat parameters,
 * balanced by bytes; the others are workers. staleness < 0: unbounded (asynchronous). */
herd_status ps_create(ps_state **out, herd_comm *world, herd_model *m, int servers, int staleness, herd_error *err);
void ps_destroy(ps_state *p);
int ps_is_server(const ps_state *p);
int ps_workers(const ps_state *p);
/* Worker: parameters for step t into the model (waits while more than `staleness` steps ahead
 * of the slowest worker; exact = 1 waits for every update before t, e.g. for evaluation). */
herd_status ps_pull(ps_state *p, int64_t t, int exact, herd_error *err);
/* Worker: the model's gradients (mean over `samples` local samples) of step t to the servers. */
herd_status ps_push(ps_state *p, int64_t t, int samples, herd_error *err);
/* Worker: no more requests from this worker. */
herd_status ps_done(ps_state *p, herd_error *err);
/* Server: applies pushed gradients with the optimizer and schedule until every worker is done. */
herd_status ps_serve(ps_state *p, const herd_optim_config *oc, const herd_schedule *sched, herd_error *err);

/* A message a server received, as ps_decode checked it. */
typedef enum ps_kind { PS_PULL, PS_PUSH, PS_DONE } ps_kind;
typedef struct ps_message {
    ps_kind kind;
    int64_t step;       /* PULL: the step whose parameters are wanted; PUSH: the gradient's step */
    int64_t samples;    /* PUSH: local samples behind the gradient (0: a skipped step) */
    int exact;          /* PULL: 1 waits for every update before step */
    const float *grads; /* PUSH: shard_n floats inside the received buffer */
} ps_message;
/* What the server accepts now: its shard's length and the window of steps pushes may be for,
 * [version, version + slots) (slots 0: asynchronous, any step in 0..2^50). */
typedef struct ps_expect {
    int64_t shard_n, version;
    int slots;
} ps_expect;
/* Checks a received message (tag, bytes) for kind, size and content before anything uses
 * it: HERD_EFORMAT with one line naming what is wrong. buf must be aligned for floats. */
herd_status ps_decode(int tag, const unsigned char *buf, int64_t bytes, const ps_expect *e, ps_message *out,
                      herd_error *err);

#endif
