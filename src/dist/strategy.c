/* The strategies behind strategy.h. Data parallelism (here) and the parameter server
 * (param_server.c, reached through the same calls). Gradients live in one flat buffer whose tail is produced
 * first by backward; buckets are cut from the tail and each is reduced with a non-blocking
 * allreduce as soon as the model's hook says it is final, polled after every layer so
 * communication overlaps the rest of backward. The deterministic mode instead gathers one
 * gradient per fixed micro-group and sums them in group order, which makes the result
 * independent of how many ranks computed the groups. */
#include <stdlib.h>
#include <string.h>

#include "dist/param_server.h"
#include "dist/pipeline.h"
#include "dist/strategy.h"
#include "herd/trace.h"

#define MAX_BUCKETS 256

typedef struct bucket {
    int64_t lo, hi; /* [lo, hi) of the flat gradient buffer */
    herd_comm_request *req;
    int started;
    double t_start; /* for the trace */
} bucket;

struct herd_strategy {
    herd_comm *comm;
    herd_model *m;
    herd_strategy_config cfg;
    int rank, world;
    int64_t n_params; /* floats of the dense gradient */
    bucket buckets[MAX_BUCKETS];
    int n_buckets;
    uint16_t *bf16; /* scratch for compressed buckets */
    float *slots;   /* deterministic: one gradient per group, groups * n_params */
    herd_status hook_status;
    herd_error hook_err;
    double wait_seconds;
    ps_state *ps;       /* parameter server */
    pipe_state *pipe;   /* pipeline */
    herd_comm *workers; /* PS: the workers' own communicator, for metrics */
    int64_t step;       /* PS: the step in progress */
    herd_trace *trace;
};

static void on_grads_ready(void *user, int64_t ready_from) {
    herd_strategy *s = user;
    if (s->hook_status) return;
    for (int k = 0; k < s->n_buckets; k++) {
        bucket *b = &s->buckets[k];
        if (b->started || b->lo < ready_from) continue;
        s->hook_status = herd_comm_iallreduce(s->comm, herd_model_grads(s->m) + b->lo, b->hi - b->lo,
                                              s->bf16 ? s->bf16 + b->lo : NULL, &b->req, &s->hook_err);
        b->started = 1;
        b->t_start = herd_now();
    }
    herd_comm_poll(s->comm);
}

herd_strategy_config herd_strategy_defaults(herd_strategy_kind kind) {
    herd_strategy_config c;
    memset(&c, 0, sizeof c);
    c.kind = kind;
    c.servers = 1;
    c.groups = 4;
    c.stages = 2;
    c.microbatches = 4;
    return c;
}

static herd_status strategy_setup(herd_strategy **out, herd_comm *c, herd_model *m, const herd_strategy_config *cfg,
                                  herd_error *err);

herd_status herd_strategy_create(herd_strategy **out, herd_comm *c, herd_model *m, const herd_strategy_config *cfg,
                                 herd_error *err) {
    herd_status st = strategy_setup(out, c, m, cfg, err);
    if (!st && (st = herd_strategy_sync_params(*out, err))) { /* every rank starts from rank 0's model */
        herd_strategy_destroy(*out);
        *out = NULL;
    }
    return st;
}

static herd_status strategy_setup(herd_strategy **out, herd_comm *c, herd_model *m, const herd_strategy_config *cfg,
                                  herd_error *err) {
    herd_strategy *s = calloc(1, sizeof *s);
    if (!s) return herd_fail(err, HERD_ENOMEM, "out of memory");
    s->comm = c, s->m = m, s->cfg = *cfg;
    s->rank = herd_comm_rank(c), s->world = herd_comm_size(c);
    s->n_params = herd_model_dense_params(m); /* the gradient exchanged: sparse tables have none here */
    if (cfg->kind == HERD_STRATEGY_PS) {
        herd_status st;
        if (cfg->deterministic) {
            free(s);
            return herd_fail(err, HERD_EARG, "--deterministic is for --strategy dp, not ps");
        }
        if ((st = ps_create(&s->ps, c, m, cfg->servers, cfg->staleness, err))) {
            free(s);
            return st;
        }
        if ((st = herd_comm_split(c, ps_is_server(s->ps), &s->workers, err))) {
            herd_strategy_destroy(s);
            return st;
        }
        s->rank = herd_comm_rank(s->workers), s->world = herd_comm_size(s->workers);
        *out = s;
        return HERD_OK;
    }
    if (cfg->kind == HERD_STRATEGY_PIPELINE) {
        herd_status st;
        if (cfg->deterministic || cfg->bf16) {
            free(s);
            return herd_fail(err, HERD_EARG, "--deterministic and --grad-compress are for --strategy dp");
        }
        if ((st = pipe_create(&s->pipe, c, m, cfg->stages, cfg->cuts, cfg->microbatches, cfg->one_f_one_b, err))) {
            free(s);
            return st;
        }
        s->rank = pipe_replica(s->pipe), s->world = pipe_replicas(s->pipe);
        *out = s;
        return HERD_OK;
    }
    if (cfg->deterministic) {
        if (cfg->groups < 1 || cfg->groups % s->world != 0) {
            int world = s->world;
            free(s);
            return herd_fail(err, HERD_EARG, "--deterministic needs the world size (%d) to divide the %d groups",
                             world, cfg->groups);
        }
        s->slots = herd_aligned_alloc((size_t)cfg->groups * (size_t)s->n_params * sizeof(float));
        if (!s->slots) goto nomem;
    } else if (s->world > 1) {
        /* auto (<= 0): PyTorch DDP's 25 MiB, but at most a quarter of the model, so a small
         * model still gets several buckets and its last layers' reduction starts early */
        double mb = cfg->bucket_mb > 0 ? cfg->bucket_mb : 25;
        if (cfg->bucket_mb <= 0 && mb * 1048576.0 / sizeof(float) > s->n_params / 4.0)
            mb = s->n_params / 4.0 * sizeof(float) / 1048576.0;
        int64_t per = (int64_t)(mb * 1048576.0 / sizeof(float));
        if (per < 1) per = 1;
        /* cut at parameter-tensor boundaries, walking back from the tail that backward finishes
         * first, so each bucket starts the moment its last layer's backward is done */
        int64_t hi = s->n_params, size = 0;
        for (int i = herd_model_param_count(m) - 1; i >= 0; i--) {
            const herd_param_info *p = herd_model_param(m, i);
            if (!p->trainable) continue;
            size = hi - p->offset;
            if (size >= per && s->n_buckets < MAX_BUCKETS - 1) {
                s->buckets[s->n_buckets++] = (bucket){.lo = p->offset, .hi = hi};
                hi = p->offset;
            }
        }
        if (hi > 0) s->buckets[s->n_buckets++] = (bucket){.lo = 0, .hi = hi};
        if (cfg->bf16 && !(s->bf16 = malloc((size_t)s->n_params * sizeof(uint16_t)))) goto nomem;
    }
    *out = s;
    return HERD_OK;
nomem:
    herd_strategy_destroy(s);
    return herd_fail(err, HERD_ENOMEM, "out of memory for gradient exchange buffers");
}

void herd_strategy_destroy(herd_strategy *s) {
    if (!s) return;
    herd_model_set_grad_hook(s->m, NULL, NULL);
    free(s->bf16);
    herd_aligned_free(s->slots);
    ps_destroy(s->ps);
    pipe_destroy(s->pipe);
    herd_comm_close(s->workers);
    free(s);
}

void herd_strategy_set_trace(herd_strategy *s, herd_trace *t) { s->trace = t; }

int herd_strategy_is_server(const herd_strategy *s) { return s->ps && ps_is_server(s->ps); }
int herd_strategy_applies_update(const herd_strategy *s) { return s->ps != NULL; }

float herd_strategy_grad_scale(const herd_strategy *s, int count, int B) {
    /* a PS worker pushes its local mean; the server weighs workers by their sample counts */
    return s->ps ? 1.0f : (float)count / (float)B;
}

herd_status herd_strategy_sync_model(herd_strategy *s, int64_t t, herd_error *err) {
    if (s->pipe) return pipe_gather_params(s->pipe, err);
    return s->ps ? ps_pull(s->ps, t, 1, err) : HERD_OK;
}

void herd_strategy_eval_shard(const herd_strategy *s, int *rank, int *world) {
    if (s->pipe) { /* after sync_model every rank holds the whole model */
        *rank = herd_comm_rank(s->comm), *world = herd_comm_size(s->comm);
    } else {
        *rank = s->rank, *world = s->world;
    }
}

int herd_strategy_is_pipeline(const herd_strategy *s) { return s->pipe != NULL; }

herd_status herd_strategy_sync_checkpoint(herd_strategy *s, float *m, float *v, herd_error *err) {
    return s->pipe ? pipe_gather_state(s->pipe, m, v, err) : HERD_OK;
}

int herd_strategy_writer(const herd_strategy *s) { return herd_comm_rank(s->comm) == 0; }

herd_status herd_strategy_grad_sq_total(herd_strategy *s, double *sq, herd_error *err) {
    if (!s->pipe || herd_comm_size(s->comm) == 1) return HERD_OK;
    herd_status st = herd_comm_allreduce_f64(s->comm, sq, 1, err); /* every rank: stages x replicas */
    if (st == HERD_OK) *sq /= pipe_replicas(s->pipe);          /* replicas of a stage hold the same */
    return st;
}

herd_status herd_strategy_pipeline_step(herd_strategy *s, int count, int B, const void *targets,
                                        herd_load_rows_fn load, void *user, uint64_t seed, int64_t step,
                                        herd_metrics *acc, herd_error *err) {
    return pipe_step(s->pipe, count, B, targets, load, user, seed, step, acc, err);
}

void herd_strategy_pipeline_times(const herd_strategy *s, double *wait, double *total) {
    if (s->pipe) pipe_times(s->pipe, wait, total);
    else *wait = *total = 0;
}

herd_status herd_strategy_finish(herd_strategy *s, herd_error *err) { return s->ps ? ps_done(s->ps, err) : HERD_OK; }

herd_status herd_strategy_serve(herd_strategy *s, const struct herd_optim_config *oc,
                                const struct herd_schedule *sched, herd_error *err) {
    if (!herd_strategy_is_server(s)) return herd_fail(err, HERD_EINTERNAL, "serve called on a worker");
    return ps_serve(s->ps, oc, sched, err);
}

int herd_strategy_rank(const herd_strategy *s) { return s->rank; }
int herd_strategy_world(const herd_strategy *s) { return s->world; }
int herd_strategy_groups(const herd_strategy *s) { return s->cfg.deterministic ? s->cfg.groups / s->world : 1; }

static int total_groups(const herd_strategy *s) { return s->cfg.deterministic ? s->cfg.groups : s->world; }

int herd_strategy_max_group(const herd_strategy *s, int B) {
    int G = total_groups(s);
    return (B + G - 1) / G;
}

void herd_strategy_group(const herd_strategy *s, int B, int g, int *lo, int *count, int *id) {
    int G = total_groups(s);
    int gid = s->rank * herd_strategy_groups(s) + g;
    /* the same split whatever the world size: group gid gets [gid*B/G, (gid+1)*B/G) */
    int64_t a = (int64_t)gid * B / G, b = (int64_t)(gid + 1) * B / G;
    *lo = (int)a, *count = (int)(b - a), *id = gid;
}

herd_status herd_strategy_begin_step(herd_strategy *s, int64_t t, herd_error *err) {
    if (s->ps) {
        s->step = t;
        return ps_pull(s->ps, t, 0, err);
    }
    for (int k = 0; k < s->n_buckets; k++) s->buckets[k].started = 0, s->buckets[k].req = NULL;
    s->hook_status = HERD_OK;
    herd_model_set_grad_hook(s->m, s->n_buckets ? on_grads_ready : NULL, s);
    if (s->n_buckets) herd_comm_progress(s->comm, 1); /* keeps buckets moving during long layers */
    return HERD_OK;
}

herd_status herd_strategy_group_done(herd_strategy *s, int g, herd_error *err) {
    (void)err;
    if (s->cfg.deterministic) {
        int gid = s->rank * herd_strategy_groups(s) + g;
        memcpy(s->slots + (size_t)gid * s->n_params, herd_model_grads(s->m), (size_t)s->n_params * sizeof(float));
    }
    return HERD_OK;
}

herd_status herd_strategy_finish_step(herd_strategy *s, int samples, herd_error *err) {
    float *grads = herd_model_grads(s->m);
    double t0 = herd_now();
    herd_status st = HERD_OK;
    if (s->ps) {
        st = ps_push(s->ps, s->step, samples, err);
    } else if (s->cfg.deterministic) {
        int mine = herd_strategy_groups(s);
        size_t per = (size_t)mine * (size_t)s->n_params;
        if (s->world > 1)
            st = herd_comm_allgather(s->comm, s->slots + (size_t)s->rank * per, s->slots, (int64_t)per, err);
        if (st == HERD_OK) {
            /* fixed order: group 0 + group 1 + ... whatever rank computed them */
            memcpy(grads, s->slots, (size_t)s->n_params * sizeof(float));
            for (int g = 1; g < s->cfg.groups; g++) {
                const float *src = s->slots + (size_t)g * s->n_params;
                for (int64_t i = 0; i < s->n_params; i++) grads[i] += src[i];
            }
        }
    } else if (s->n_buckets) {
        herd_model_set_grad_hook(s->m, NULL, NULL);
        if (s->hook_status) st = herd_fail(err, s->hook_status, "%s", s->hook_err.msg);
        on_grads_ready(s, 0); /* anything not yet started */
        herd_comm_progress(s->comm, 0); /* from here this thread waits on them itself */
        /* after a failure the job ends: the other buckets are abandoned, not waited for again */
        for (int k = 0; k < s->n_buckets && !st; k++) {
            bucket *b = &s->buckets[k];
            if (!b->req) continue;
            st = herd_comm_wait(s->comm, b->req, err);
            b->req = NULL;
            /* done at the latest when the wait returns: the bar shows how long it was in flight */
            herd_trace_add(s->trace, "allreduce bucket", "comm", HERD_TRACE_COMM, b->t_start, herd_now());
        }
    }
    s->wait_seconds += herd_now() - t0;
    return st;
}

herd_status herd_strategy_sync_params(herd_strategy *s, herd_error *err) {
    if (herd_comm_size(s->comm) == 1) return HERD_OK;
    int64_t np, nb;
    float *p = herd_model_params(s->m, &np);
    float *b = herd_model_buffers(s->m, &nb);
    herd_status st = herd_comm_broadcast(s->comm, p, np, 0, err);
    if (st == HERD_OK && nb) st = herd_comm_broadcast(s->comm, b, nb, 0, err);
    return st;
}

herd_status herd_strategy_reduce(herd_strategy *s, double *v, int n, herd_error *err) {
    /* pipelines: every stage takes part; only the last ones carry loss figures */
    herd_comm *c = s->ps ? s->workers : s->comm;
    return herd_comm_size(c) == 1 ? HERD_OK : herd_comm_allreduce_f64(c, v, n, err);
}

herd_status herd_strategy_gather(herd_strategy *s, const double *mine, int n, double *all, int max_ranks, int *ranks,
                                 herd_error *err) {
    herd_comm *c = s->ps ? s->workers : s->comm;
    int size = herd_comm_size(c), rank = herd_comm_rank(c);
    if (size > max_ranks) return herd_fail(err, HERD_EARG, "%d ranks do not fit a gather of %d", size, max_ranks);
    *ranks = size;
    memset(all, 0, (size_t)size * (size_t)n * sizeof *all);
    memcpy(all + (size_t)rank * (size_t)n, mine, (size_t)n * sizeof *all);
    return size == 1 ? HERD_OK : herd_comm_allreduce_f64(c, all, size * n, err); /* a sum of disjoint rows */
}

double herd_strategy_wait_seconds(const herd_strategy *s) { return s->wait_seconds; }

int herd_strategy_deterministic_groups(const herd_strategy *s) { return s->cfg.deterministic ? s->cfg.groups : 0; }
int herd_strategy_world_rank(const herd_strategy *s) { return herd_comm_rank(s->comm); }
