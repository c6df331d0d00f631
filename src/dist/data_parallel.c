/* Data parallelism, and one process as its one-rank case. Gradients live in one flat buffer
 * whose tail is produced first by backward; buckets are cut from the tail and each is reduced
 * with a non-blocking allreduce as soon as the model's hook says it is final, polled after
 * every layer so communication overlaps the rest of backward. The deterministic mode instead
 * gathers one gradient per fixed micro-group and sums them in group order, which makes the
 * result independent of how many ranks computed the groups.
 * ZeRO stage 1 (cfg.zero): rank r owns the contiguous shard [n*r/W, n*(r+1)/W) of the dense
 * parameters and the optimizer state of it alone; each bucket is reduce-scattered instead of
 * allreduced (rank r gets the sum of the bucket's part inside its shard, in place in its
 * gradient; the rest of its gradient keeps its own values, never read), the rank updates
 * its shard, and the shards are allgathered into every rank's parameters, bucket by bucket
 * without blocking: the next step's forward waits, layer by layer, for the buckets holding the
 * parameters it is about to read (herd_model_set_params_hook), so the allgather overlaps the
 * data loading and the forward of the layers before. Every element's
 * update is the same arithmetic as without it, so with --deterministic (the group sums taken
 * over the shard) the weights are the same bits.
 * Buffers (batch norm's running statistics) under --deterministic: every group starts from the
 * step's buffers, and the step ends with their mean over the groups (in group order), so they do
 * not depend on which rank ran which group either; for a running mean that is one update with
 * the mean of the groups' batch means. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "dist/strategy.h"
#include "herd/trace.h"
#include "optim/optim.h"

#define MAX_BUCKETS 256

typedef struct bucket {
    int64_t lo, hi; /* [lo, hi) of the flat gradient buffer */
    herd_comm_request *req;
    int started;
    double t_start; /* for the trace */
} bucket;

typedef struct dp_state {
    int64_t n_params; /* floats of the dense gradient */
    bucket buckets[MAX_BUCKETS];
    int n_buckets;
    uint16_t *bf16; /* scratch for compressed buckets */
    float *slots;   /* deterministic: one gradient per group, groups * n_params */
    int64_t n_buffers;
    float *buf_start; /* deterministic: the buffers at the start of the step */
    float *buf_slots; /* ... and after each group's forward, groups * n_buffers */
    int batch;        /* ... the step's global batch */
    herd_status hook_status;
    herd_error hook_err;
    /* ZeRO-1 */
    int zero;
    int64_t lo, hi;     /* this rank's shard of the dense parameters */
    int *shard_counts;  /* per rank: its shard's floats */
    int *bucket_counts; /* per bucket, per rank: the floats of the bucket inside the rank's shard */
    herd_comm_request *gather[MAX_BUCKETS]; /* per bucket: its parameters' allgather in flight, or NULL */
    double gather_start[MAX_BUCKETS];
    int gathers;        /* allgathers in flight */
    herd_status gather_status;
    herd_error gather_err;
    herd_status sum_status; /* batchnorm sync=1: the first failed sum of batch statistics */
    herd_error sum_err;
} dp_state;

static void on_grads_ready(void *user, int64_t ready_from) {
    herd_strategy *s = user;
    dp_state *d = s->impl;
    if (d->hook_status) return;
    for (int k = 0; k < d->n_buckets; k++) {
        bucket *b = &d->buckets[k];
        if (b->started || b->lo < ready_from) continue;
        if (d->zero) { /* this rank's part of the bucket (inside its shard) summed where it lies */
            d->hook_status = herd_comm_ireduce_scatter(s->comm, herd_model_grads(s->m) + b->lo,
                                                       d->bucket_counts + (size_t)k * (size_t)s->world, &b->req,
                                                       &d->hook_err);
        } else {
            d->hook_status = herd_comm_iallreduce(s->comm, herd_model_grads(s->m) + b->lo, b->hi - b->lo,
                                                  d->bf16 ? d->bf16 + b->lo : NULL, &b->req, &d->hook_err);
        }
        b->started = 1;
        b->t_start = herd_now();
    }
    herd_comm_poll(s->comm);
}

/* batchnorm sync=1: the batch statistics summed over the ranks (a failure waits for the end of
 * backward to be reported; the sums then stay this rank's). */
static void sum_batch_stats(void *user, double *v, int n) {
    herd_strategy *s = user;
    dp_state *d = s->impl;
    if (!d->sum_status) d->sum_status = herd_comm_allreduce_f64(s->comm, v, n, &d->sum_err);
}

/* ZeRO-1: waits for the allgather of bucket k's parameters (a failure is kept for the next
 * status the trainer sees). */
static void wait_gather(herd_strategy *s, int k) {
    dp_state *d = s->impl;
    if (!d->gather[k]) return;
    double t0 = herd_now();
    herd_status st = herd_comm_wait(s->comm, d->gather[k], d->gather_status ? &(herd_error){0} : &d->gather_err);
    if (st && !d->gather_status) d->gather_status = st;
    d->gather[k] = NULL;
    double t1 = herd_now();
    s->wait_seconds += t1 - t0;
    herd_trace_add(s->trace, "allgather parameters", "comm", HERD_TRACE_COMM, d->gather_start[k], t1);
    if (--d->gathers == 0) herd_model_set_params_hook(s->m, NULL, NULL);
}

/* The model's forward is about to read params[lo, hi): the buckets overlapping it must have
 * arrived. */
static void on_params_needed(void *user, int64_t lo, int64_t hi) {
    herd_strategy *s = user;
    dp_state *d = s->impl;
    for (int k = d->n_buckets - 1; k >= 0 && d->gathers; k--)
        if (d->buckets[k].lo < hi && d->buckets[k].hi > lo) wait_gather(s, k);
}

/* Every allgather still in flight, before anything reads or writes the whole parameters. */
static herd_status wait_gathers(herd_strategy *s, herd_error *err) {
    dp_state *d = s->impl;
    for (int k = d->n_buckets - 1; k >= 0 && d->gathers; k--) wait_gather(s, k);
    herd_status st = d->gather_status;
    d->gather_status = HERD_OK;
    return st ? herd_fail(err, st, "%s", d->gather_err.msg) : HERD_OK;
}

/* Groups of a global batch across the world: the fixed micro-groups, or one per rank. */
static int total_groups(const herd_strategy *s) { return s->cfg.deterministic ? s->cfg.groups : s->world; }

int herdi_data_parallel_parts(const herd_strategy *s) { return s->cfg.deterministic ? s->cfg.groups / s->world : 1; }

/* Part p of this rank: group rank * parts + p of the global batch, the same split whatever the
 * world size: group g gets [g*B/G, (g+1)*B/G). */
void herdi_data_parallel_part(const herd_strategy *s, int B, int p, int *lo, int *count, int *id) {
    int G = total_groups(s), gid = s->rank * herdi_data_parallel_parts(s) + p;
    int64_t a = (int64_t)gid * B / G, b = (int64_t)(gid + 1) * B / G;
    *lo = (int)a, *count = (int)(b - a), *id = gid;
}

static herd_status dp_begin_step(herd_strategy *s, int64_t t, herd_error *err) {
    (void)t, (void)err;
    dp_state *d = s->impl;
    if (d->buf_start) memcpy(d->buf_start, herd_model_buffers(s->m, NULL), (size_t)d->n_buffers * sizeof(float));
    for (int k = 0; k < d->n_buckets; k++) d->buckets[k].started = 0, d->buckets[k].req = NULL;
    d->hook_status = HERD_OK;
    herd_model_set_grad_hook(s->m, d->n_buckets ? on_grads_ready : NULL, s);
    if (d->n_buckets) herd_comm_progress(s->comm, 1); /* keeps buckets moving during long layers */
    return HERD_OK;
}

/* Forward and backward of one group, its gradient scaled by count/B so that the sum over the
 * groups is the global batch's mean. Shared with the parameter server's workers (scale 1:
 * the servers weigh each worker's mean by its samples). */
herd_status herdi_data_parallel_compute(herd_strategy *s, const herd_strategy_part *p, float scale, float *loss,
                                  herd_metrics *acc, herd_error *err) {
    *loss = 0;
    if (p->count == 0) { /* more groups than samples in a short last batch */
        /* the dense gradient: embedding tables have no slice of grads (the params count them) */
        memset(herd_model_grads(s->m), 0, (size_t)herd_model_dense_params(s->m) * sizeof(float));
        return HERD_OK;
    }
    /* dropout masks depend on (step, group), never on which rank computes the group */
    herd_model_set_dropout_stream(s->m, p->seed, 1000003ULL * (uint64_t)p->step + (uint64_t)p->id);
    return herd_model_forward_backward(s->m, p->targets, p->count, scale, loss, acc, err);
}

static herd_status dp_compute(herd_strategy *s, const herd_strategy_part *p, float *loss, herd_metrics *acc,
                              herd_error *err) {
    dp_state *d = s->impl;
    float *buffers = herd_model_buffers(s->m, NULL);
    if (d->buf_start) memcpy(buffers, d->buf_start, (size_t)d->n_buffers * sizeof(float));
    herd_status st = herdi_data_parallel_compute(s, p, (float)p->count / (float)p->B, loss, acc, err);
    if (!st && d->slots)
        memcpy(d->slots + (size_t)p->id * d->n_params, herd_model_grads(s->m), (size_t)d->n_params * sizeof(float));
    if (!st && d->buf_start)
        memcpy(d->buf_slots + (size_t)p->id * d->n_buffers, buffers, (size_t)d->n_buffers * sizeof(float));
    d->batch = p->B;
    return st;
}

/* --deterministic: the buffers become their mean over the groups that had rows, summed in
 * group order whatever rank ran them. */
static herd_status mean_buffers(herd_strategy *s, herd_error *err) {
    dp_state *d = s->impl;
    int G = s->cfg.groups, mine = herdi_data_parallel_parts(s);
    size_t per = (size_t)mine * (size_t)d->n_buffers;
    herd_status st = s->world > 1 ? herd_comm_allgather(s->comm, d->buf_slots + (size_t)s->rank * per, d->buf_slots,
                                                        (int64_t)per, err)
                                  : HERD_OK;
    if (st) return st;
    float *b = herd_model_buffers(s->m, NULL);
    int used = 0;
    for (int g = 0; g < G; g++) {
        if ((int64_t)(g + 1) * d->batch / G == (int64_t)g * d->batch / G) continue; /* no rows: no statistics */
        const float *src = d->buf_slots + (size_t)g * d->n_buffers;
        if (used++ == 0) memcpy(b, src, (size_t)d->n_buffers * sizeof(float));
        else for (int64_t i = 0; i < d->n_buffers; i++) b[i] += src[i];
    }
    for (int64_t i = 0; i < d->n_buffers && used > 1; i++) b[i] /= (float)used;
    return HERD_OK;
}

static herd_status dp_after_backward(herd_strategy *s, int samples, herd_error *err) {
    (void)samples;
    dp_state *d = s->impl;
    float *grads = herd_model_grads(s->m);
    double t0 = herd_now();
    herd_status st = HERD_OK;
    if (d->slots) {
        int mine = herdi_data_parallel_parts(s);
        size_t per = (size_t)mine * (size_t)d->n_params;
        if (s->world > 1)
            st = herd_comm_allgather(s->comm, d->slots + (size_t)s->rank * per, d->slots, (int64_t)per, err);
        if (st == HERD_OK) {
            /* fixed order: group 0 + group 1 + ... whatever rank computed them (ZeRO: over the shard) */
            memcpy(grads + d->lo, d->slots + d->lo, (size_t)(d->hi - d->lo) * sizeof(float));
            for (int g = 1; g < s->cfg.groups; g++) {
                const float *src = d->slots + (size_t)g * d->n_params;
                for (int64_t i = d->lo; i < d->hi; i++) grads[i] += src[i];
            }
        }
        if (st == HERD_OK && d->buf_start) st = mean_buffers(s, err);
    } else if (d->n_buckets) {
        herd_model_set_grad_hook(s->m, NULL, NULL);
        if (d->hook_status) st = herd_fail(err, d->hook_status, "%s", d->hook_err.msg);
        on_grads_ready(s, 0);           /* anything not yet started */
        herd_comm_progress(s->comm, 0); /* from here this thread waits on them itself */
        /* after a failure the job ends: the other buckets are abandoned, not waited for again */
        for (int k = 0; k < d->n_buckets && !st; k++) {
            bucket *b = &d->buckets[k];
            if (!b->req) continue;
            st = herd_comm_wait(s->comm, b->req, err);
            b->req = NULL;
            /* done at the latest when the wait returns: the bar shows how long it was in flight */
            herd_trace_add(s->trace, d->zero ? "reduce-scatter bucket" : "allreduce bucket", "comm", HERD_TRACE_COMM,
                           b->t_start, herd_now());
        }
    }
    if (!st) st = wait_gathers(s, err); /* any the forward did not need */
    if (!st && d->sum_status) st = herd_fail(err, d->sum_status, "%s", d->sum_err.msg);
    s->wait_seconds += herd_now() - t0;
    return st;
}

static herd_status dp_grad_sq(herd_strategy *s, double *sq, herd_error *err) {
    dp_state *d = s->impl;
    *sq = herd_grad_sq_sum(herd_model_grads(s->m) + d->lo, d->hi - d->lo);
    return d->zero && s->world > 1 ? herd_comm_allreduce_f64(s->comm, sq, 1, err) : HERD_OK; /* the shards' sum */
}

/* Every rank applies the same update to the whole model (also used by the pipeline). */
herd_status herdi_data_parallel_apply(herd_strategy *s, const herd_strategy_update *u, herd_error *err) {
    (void)err;
    if (u->skipped) return HERD_OK;
    double t0 = herd_now();
    herd_optimizer_step_pool(u->opt, herd_model_params(s->m, NULL), herd_model_grads(s->m), u->lr, u->pool);
    herd_trace_add(s->trace, "optimizer", "optimizer", HERD_TRACE_COMPUTE, t0, herd_now());
    return HERD_OK;
}

/* ZeRO-1: this rank's shard updated with its shard of the optimizer state, then every shard to
 * every rank. */
static herd_status zero_apply(herd_strategy *s, const herd_strategy_update *u, herd_error *err) {
    dp_state *d = s->impl;
    if (u->skipped) return HERD_OK;
    double t0 = herd_now();
    float *params = herd_model_params(s->m, NULL);
    herd_optimizer_step_pool(u->opt, params + d->lo, herd_model_grads(s->m) + d->lo, u->lr, u->pool);
    double t1 = herd_now();
    herd_trace_add(s->trace, "optimizer (shard)", "optimizer", HERD_TRACE_COMPUTE, t0, t1);
    if (s->world == 1) return HERD_OK;
    if (!d->n_buckets) { /* --deterministic: one allgather, here */
        herd_status st = herd_comm_allgatherv(s->comm, params, d->shard_counts, err);
        double t2 = herd_now();
        s->wait_seconds += t2 - t1;
        herd_trace_add(s->trace, "allgather parameters", "comm", HERD_TRACE_COMM, t1, t2);
        return st;
    }
    /* bucket by bucket from the first layer's, which the next forward needs first */
    for (int k = d->n_buckets - 1; k >= 0; k--) {
        bucket *b = &d->buckets[k];
        herd_status st = herd_comm_iallgatherv(s->comm, params + b->lo, d->bucket_counts + (size_t)k * (size_t)s->world,
                                               &d->gather[k], err);
        if (st) return st;
        d->gather_start[k] = herd_now();
        d->gathers += d->gather[k] != NULL;
    }
    if (d->gathers) {
        herd_model_set_params_hook(s->m, on_params_needed, s);
        herd_comm_progress(s->comm, 1); /* moving while the next batch loads and the forward runs */
    }
    return HERD_OK;
}

static herd_status dp_nothing(herd_strategy *s, herd_error *err) {
    (void)s, (void)err;
    return HERD_OK;
}

static herd_status dp_sync_model(herd_strategy *s, int64_t t, herd_error *err) {
    (void)t;
    return wait_gathers(s, err); /* every rank holds the same model once the parameters arrived */
}

static herd_status dp_gather_state(herd_strategy *s, herd_strategy_state *state, herd_error *err) {
    dp_state *d = s->impl;
    float *m = state->m, *v = state->v;
    herd_status st0 = wait_gathers(s, err);
    if (st0) return st0;
    if (!d->zero || s->world == 1) return dp_nothing(s, err); /* every rank holds the whole state */
    herd_status st = m ? herd_comm_allgatherv(s->comm, m, d->shard_counts, err) : HERD_OK; /* every rank's shard */
    return !st && v ? herd_comm_allgatherv(s->comm, v, d->shard_counts, err) : st;
}

static herd_status dp_finish(herd_strategy *s, herd_error *err) { return wait_gathers(s, err); }

static void dp_destroy(herd_strategy *s) {
    dp_state *d = s->impl;
    herd_model_set_grad_hook(s->m, NULL, NULL);
    herd_model_set_params_hook(s->m, NULL, NULL);
    herd_model_set_batch_sum(s->m, NULL, NULL);
    if (!d) return;
    free(d->bf16);
    herd_aligned_free(d->slots);
    free(d->buf_start), free(d->buf_slots);
    free(d->shard_counts), free(d->bucket_counts);
    free(d);
}

static herd_status dp_apply(herd_strategy *s, const herd_strategy_update *u, herd_error *err) {
    return ((dp_state *)s->impl)->zero ? zero_apply(s, u, err) : herdi_data_parallel_apply(s, u, err);
}

static const herd_strategy_ops dp_ops = {
    .name = "data parallel",
    .parts = herdi_data_parallel_parts,
    .part = herdi_data_parallel_part,
    .begin_step = dp_begin_step,
    .compute = dp_compute,
    .after_backward = dp_after_backward,
    .grad_sq = dp_grad_sq,
    .apply = dp_apply,
    .sync_model = dp_sync_model,
    .gather_state = dp_gather_state,
    .finish = dp_finish,
    .destroy = dp_destroy,
};

herd_status herdi_data_parallel_layout(const herd_strategy_config *cfg, int world, int *groups, int *reuse, herd_error *err) {
    if (cfg->zero != 0 && cfg->zero != 1) return herd_fail(err, HERD_EARG, "--zero %d: expected 0 or 1", cfg->zero);
    if (cfg->zero && cfg->bf16)
        return herd_fail(err, HERD_EARG, "--zero 1 and --grad-compress bf16 together are not supported yet");
    if (cfg->deterministic && (cfg->groups < 1 || cfg->groups % world != 0))
        return herd_fail(err, HERD_EARG, "--deterministic needs the world size (%d) to divide the %d groups "
                         "(--det-groups)", world, cfg->groups);
    *groups = cfg->deterministic ? cfg->groups : world;
    *reuse = 1;
    return HERD_OK;
}

herd_status herdi_data_parallel_setup(herd_strategy *s, herd_error *err) {
    int groups, reuse;
    herd_status st = herdi_data_parallel_layout(&s->cfg, s->world, &groups, &reuse, err);
    if (st) return st;
    dp_state *d = calloc(1, sizeof *d);
    if (!d) return herd_fail(err, HERD_ENOMEM, "out of memory");
    s->ops = &dp_ops, s->impl = d;
    d->n_params = herd_model_dense_params(s->m); /* the gradient exchanged: sparse tables have none here */
    d->lo = 0, d->hi = d->n_params;
    const herd_strategy_config *cfg = &s->cfg;
    if (s->world > 1 && herd_model_batch_sync_layers(s->m)) herd_model_set_batch_sum(s->m, sum_batch_stats, s);
    if (cfg->zero) {
        if (d->n_params > 0x7fffffff) {
            dp_destroy(s);
            s->ops = NULL, s->impl = NULL;
            return herd_fail(err, HERD_EARG, "--zero 1: %lld parameters do not fit one exchange (2^31 at most)",
                             (long long)d->n_params);
        }
        d->zero = 1;
        d->lo = d->n_params * s->rank / s->world, d->hi = d->n_params * (s->rank + 1) / s->world;
        s->update_lo = d->lo, s->update_hi = d->hi;
        if (!(d->shard_counts = malloc((size_t)s->world * sizeof *d->shard_counts))) goto nomem;
        for (int r = 0; r < s->world; r++)
            d->shard_counts[r] = (int)(d->n_params * (r + 1) / s->world - d->n_params * r / s->world);
    }
    if (cfg->deterministic) {
        d->slots = herd_aligned_alloc((size_t)cfg->groups * (size_t)d->n_params * sizeof(float));
        if (!d->slots) goto nomem;
        herd_model_buffers(s->m, &d->n_buffers);
        if (d->n_buffers > 0 && (!(d->buf_start = malloc((size_t)d->n_buffers * sizeof(float))) ||
                                 !(d->buf_slots = malloc((size_t)cfg->groups * (size_t)d->n_buffers * sizeof(float)))))
            goto nomem;
    } else if (s->world > 1) {
        /* auto (<= 0): PyTorch DDP's 25 MiB, but at most a quarter of the model, so a small
         * model still gets several buckets and its last layers' reduction starts early */
        double mb = cfg->bucket_mb > 0 ? cfg->bucket_mb : 25;
        if (cfg->bucket_mb <= 0 && mb * 1048576.0 / sizeof(float) > d->n_params / 4.0)
            mb = d->n_params / 4.0 * sizeof(float) / 1048576.0;
        int64_t per = (int64_t)(mb * 1048576.0 / sizeof(float));
        if (per < 1) per = 1;
        /* cut at parameter-tensor boundaries, walking back from the tail that backward finishes
         * first, so each bucket starts the moment its last layer's backward is done */
        int64_t hi = d->n_params, size = 0;
        for (int i = herd_model_param_count(s->m) - 1; i >= 0; i--) {
            const herd_param_info *p = herd_model_param(s->m, i);
            if (!p->trainable) continue;
            size = hi - p->offset;
            if (size >= per && d->n_buckets < MAX_BUCKETS - 1) {
                d->buckets[d->n_buckets++] = (bucket){.lo = p->offset, .hi = hi};
                hi = p->offset;
            }
        }
        if (hi > 0) d->buckets[d->n_buckets++] = (bucket){.lo = 0, .hi = hi};
        if (cfg->bf16 && !(d->bf16 = malloc((size_t)d->n_params * sizeof(uint16_t)))) goto nomem;
        if (d->zero) { /* each bucket's floats inside each rank's shard */
            if (!(d->bucket_counts = malloc((size_t)d->n_buckets * (size_t)s->world * sizeof *d->bucket_counts)))
                goto nomem;
            for (int k = 0; k < d->n_buckets; k++)
                for (int r = 0; r < s->world; r++) {
                    int64_t a = d->n_params * r / s->world, b = d->n_params * (r + 1) / s->world;
                    a = a > d->buckets[k].lo ? a : d->buckets[k].lo, b = b < d->buckets[k].hi ? b : d->buckets[k].hi;
                    d->bucket_counts[(size_t)k * (size_t)s->world + (size_t)r] = (int)(b > a ? b - a : 0);
                }
        }
    }
    return HERD_OK;
nomem:
    dp_destroy(s);
    s->ops = NULL, s->impl = NULL;
    return herd_fail(err, HERD_ENOMEM, "out of memory for gradient exchange buffers");
}

int herdi_data_parallel_buckets(const herd_strategy *s, int64_t *lo_hi, int max) {
    const dp_state *d = s->ops == &dp_ops ? s->impl : NULL;
    int n = d ? d->n_buckets : 0;
    for (int k = 0; k < n && k < max; k++) lo_hi[2 * k] = d->buckets[k].lo, lo_hi[2 * k + 1] = d->buckets[k].hi;
    return n;
}
