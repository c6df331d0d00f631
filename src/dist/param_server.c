/* Parameter server: the last S ranks each own a contiguous shard of the flat parameter buffer
 * (balanced by bytes) and its optimizer state; workers pull parameters, compute gradients on
 * their data shard and push them. Bounded staleness (stale-synchronous parallel): with a
 * finite K, gradients of step t from every worker are averaged into one update (the t-th),
 * and a worker may start step t only once update t-K-1 is applied, so K = 0 is synchronous
 * data parallelism; with K unbounded every push is applied on arrival (asynchronous SGD).
 * Messages: PULL {step, exact} -> PARAMS shard; PUSH {step, samples, grads}; DONE. */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "dist/param_server.h"
#include "dist/strategy.h"
#include "herd/trace.h"

enum { TAG_PULL = 101, TAG_PARAMS = 102, TAG_PUSH = 103, TAG_DONE = 104 };

typedef struct push_header {
    int64_t step;
    int64_t samples;
} push_header;

struct ps_state {
    herd_comm *comm;
    herd_model *m;
    int servers, workers, staleness, rank, server_index; /* server_index -1 on workers */
    int64_t n;                                           /* parameters in all */
    int64_t *lo, *hi;                                    /* shard of each server */
    unsigned char **send;                                /* worker: one push buffer per server */
    /* server state */
    float *acc;         /* (staleness + 2) accumulators of the shard */
    double *acc_samples;
    int *acc_count;
    int64_t version;    /* updates applied */
    int64_t *pending;   /* per worker: step of a pull waiting for its version, or -1 */
    int *pending_exact;
    int done_workers;
    unsigned char *recv;
    double *last_heard;  /* per worker: when its last message came */
    int64_t *last_push;  /* per worker: the step of its last push, -1 before the first */
    char *done;          /* per worker: sent DONE */
};

static int64_t shard_n(const ps_state *p, int s) { return p->hi[s] - p->lo[s]; }

herd_status ps_create(ps_state **out, herd_comm *world, herd_model *m, int servers, int staleness, herd_error *err) {
    int size = herd_comm_size(world);
    if (servers < 1 || servers >= size)
        return herd_fail(err, HERD_EARG, "--strategy ps needs more ranks (%d) than --servers (%d)", size, servers);
    if (servers > 64) return herd_fail(err, HERD_EARG, "--servers %d: at most 64", servers);
    ps_state *p = calloc(1, sizeof *p);
    if (!p) return herd_fail(err, HERD_ENOMEM, "out of memory");
    p->comm = world, p->m = m, p->servers = servers, p->workers = size - servers, p->staleness = staleness;
    p->rank = herd_comm_rank(world);
    p->server_index = p->rank >= p->workers ? p->rank - p->workers : -1;
    herd_model_params(m, &p->n);
    p->lo = calloc((size_t)servers, sizeof *p->lo);
    p->hi = calloc((size_t)servers, sizeof *p->hi);
    if (!p->lo || !p->hi) goto nomem;
    for (int s = 0; s < servers; s++) /* floats are all 4 bytes: balanced by bytes = by count */
        p->lo[s] = p->n * s / servers, p->hi[s] = p->n * (s + 1) / servers;
    if (p->server_index < 0) {
        p->send = calloc((size_t)servers, sizeof *p->send);
        if (!p->send) goto nomem;
        for (int s = 0; s < servers; s++)
            if (!(p->send[s] = malloc(sizeof(push_header) + (size_t)shard_n(p, s) * sizeof(float)))) goto nomem;
    } else {
        int slots = staleness >= 0 ? staleness + 2 : 1;
        int64_t sn = shard_n(p, p->server_index);
        p->acc = calloc((size_t)slots * (size_t)(sn ? sn : 1), sizeof(float));
        p->acc_samples = calloc((size_t)slots, sizeof(double));
        p->acc_count = calloc((size_t)slots, sizeof(int));
        p->pending = malloc((size_t)p->workers * sizeof(int64_t));
        p->pending_exact = calloc((size_t)p->workers, sizeof(int));
        p->recv = malloc(sizeof(push_header) + (size_t)sn * sizeof(float));
        p->last_heard = malloc((size_t)p->workers * sizeof *p->last_heard);
        p->last_push = malloc((size_t)p->workers * sizeof *p->last_push);
        p->done = calloc((size_t)p->workers, 1);
        if (!p->acc || !p->acc_samples || !p->acc_count || !p->pending || !p->pending_exact || !p->recv ||
            !p->last_heard || !p->last_push || !p->done)
            goto nomem;
        for (int w = 0; w < p->workers; w++) p->pending[w] = -1, p->last_push[w] = -1;
    }
    *out = p;
    return HERD_OK;
nomem:
    ps_destroy(p);
    return herd_fail(err, HERD_ENOMEM, "out of memory for parameter-server buffers");
}

void ps_destroy(ps_state *p) {
    if (!p) return;
    if (p->send)
        for (int s = 0; s < p->servers; s++) free(p->send[s]);
    free(p->send);
    free(p->lo), free(p->hi), free(p->acc), free(p->acc_samples), free(p->acc_count);
    free(p->pending), free(p->pending_exact), free(p->recv);
    free(p->last_heard), free(p->last_push), free(p->done);
    free(p);
}

int ps_is_server(const ps_state *p) { return p->server_index >= 0; }
int ps_workers(const ps_state *p) { return p->workers; }

herd_status ps_pull(ps_state *p, int64_t t, int exact, herd_error *err) {
    float *params = herd_model_params(p->m, NULL);
    herd_comm_request *recv[64], *send[64];
    int64_t msg[64][2];
    herd_status st = HERD_OK;
    int posted = 0;
    for (int s = 0; s < p->servers && s < 64 && !st; s++) {
        /* the receive is posted before the request, so the server's reply never waits on us */
        st = herd_comm_irecv(p->comm, params + p->lo[s], shard_n(p, s) * (int64_t)sizeof(float), p->workers + s,
                             TAG_PARAMS, &recv[s], err);
        if (st) break;
        msg[s][0] = t, msg[s][1] = exact;
        st = herd_comm_isend(p->comm, msg[s], sizeof msg[s], p->workers + s, TAG_PULL, &send[s], err);
        posted = s + 1;
    }
    /* the first failure ends the job: the remaining requests are abandoned, not waited for */
    for (int s = 0; s < posted && !st; s++)
        if (!(st = herd_comm_wait(p->comm, send[s], err))) st = herd_comm_wait(p->comm, recv[s], err);
    return st;
}

herd_status ps_push(ps_state *p, int64_t t, int samples, herd_error *err) {
    const float *grads = herd_model_grads(p->m);
    herd_comm_request *req[64];
    herd_status st = HERD_OK;
    int posted = 0;
    for (int s = 0; s < p->servers && s < 64 && !st; s++) {
        push_header h = {t, samples};
        memcpy(p->send[s], &h, sizeof h);
        memcpy(p->send[s] + sizeof h, grads + p->lo[s], (size_t)shard_n(p, s) * sizeof(float));
        st = herd_comm_isend(p->comm, p->send[s], (int64_t)(sizeof h + (size_t)shard_n(p, s) * sizeof(float)),
                             p->workers + s, TAG_PUSH, &req[s], err);
        if (!st) posted = s + 1;
    }
    for (int s = 0; s < posted && !st; s++) st = herd_comm_wait(p->comm, req[s], err);
    return st;
}

herd_status ps_done(ps_state *p, herd_error *err) {
    int64_t none = 0;
    herd_status st = HERD_OK;
    for (int s = 0; s < p->servers && !st; s++) {
        herd_comm_request *r;
        st = herd_comm_isend(p->comm, &none, sizeof none, p->workers + s, TAG_DONE, &r, err);
        if (!st) st = herd_comm_wait(p->comm, r, err);
    }
    return st;
}

/* ---- the messages a server receives ---- */

herd_status ps_decode(int tag, const unsigned char *buf, int64_t bytes, const ps_expect *e, ps_message *out,
                      herd_error *err) {
    static const struct {
        int tag;
        ps_kind kind;
        const char *name;
    } kinds[] = {{TAG_PULL, PS_PULL, "pull"}, {TAG_PUSH, PS_PUSH, "push"}, {TAG_DONE, PS_DONE, "done"}};
    int k = -1;
    for (int i = 0; i < (int)(sizeof kinds / sizeof kinds[0]); i++)
        if (kinds[i].tag == tag) k = i;
    if (k < 0) return herd_fail(err, HERD_EFORMAT, "unexpected message tag %d (%lld bytes)", tag, (long long)bytes);
    int64_t want = kinds[k].kind == PS_PUSH ? (int64_t)sizeof(push_header) + e->shard_n * (int64_t)sizeof(float)
                                            : kinds[k].kind == PS_PULL ? 2 * (int64_t)sizeof(int64_t)
                                                                       : (int64_t)sizeof(int64_t);
    if (bytes != want)
        return herd_fail(err, HERD_EFORMAT, "%s message of %lld bytes, expected %lld", kinds[k].name, (long long)bytes,
                         (long long)want);
    memset(out, 0, sizeof *out);
    out->kind = kinds[k].kind;
    int64_t w[2];
    memcpy(w, buf, kinds[k].kind == PS_DONE ? sizeof w[0] : sizeof w);
    const int64_t max_step = (int64_t)1 << 50; /* as checkpoints bound positions */
    switch (out->kind) {
    case PS_PULL:
        if (w[0] < 0 || w[0] > max_step || (w[1] != 0 && w[1] != 1))
            return herd_fail(err, HERD_EFORMAT, "pull for step %lld (exact %lld): not a step in 0..2^50 and 0 or 1",
                             (long long)w[0], (long long)w[1]);
        out->step = w[0], out->exact = (int)w[1];
        return HERD_OK;
    case PS_PUSH:
        if (w[1] < 0 || w[1] > INT32_MAX)
            return herd_fail(err, HERD_EFORMAT, "push of %lld samples: not a count in 0..2^31-1", (long long)w[1]);
        if (e->slots > 0 ? w[0] < e->version || w[0] >= e->version + e->slots : w[0] < 0 || w[0] > max_step)
            return herd_fail(err, HERD_EFORMAT, "push for step %lld outside the window [%lld, %lld)", (long long)w[0],
                             (long long)(e->slots > 0 ? e->version : 0),
                             (long long)(e->slots > 0 ? e->version + e->slots : max_step + 1));
        out->step = w[0], out->samples = w[1];
        out->grads = (const float *)(buf + sizeof(push_header)); /* the buffer is malloc'ed: aligned for floats */
        return HERD_OK;
    case PS_DONE:
        if (w[0] != 0) return herd_fail(err, HERD_EFORMAT, "done message carries %lld, expected 0", (long long)w[0]);
        return HERD_OK;
    }
    return herd_fail(err, HERD_EFORMAT, "unexpected message tag %d", tag);
}

/* ---- server ---- */

static herd_status reply_params(ps_state *p, int worker, herd_error *err) {
    int64_t lo = p->lo[p->server_index], n = shard_n(p, p->server_index);
    herd_comm_request *r;
    herd_status st = herd_comm_isend(p->comm, herd_model_params(p->m, NULL) + lo, n * (int64_t)sizeof(float), worker,
                                     TAG_PARAMS, &r, err);
    return st ? st : herd_comm_wait(p->comm, r, err); /* the shard changes with the next update */
}

/* A pull for step t may be answered once updates up to t-K-1 (exact: t-1) are applied. */
static int pull_ready(const ps_state *p, int64_t t, int exact) {
    if (exact) return p->version >= t;
    return p->staleness < 0 || p->version >= t - p->staleness;
}

static herd_status serve_pending(ps_state *p, herd_error *err) {
    for (int w = 0; w < p->workers; w++)
        if (p->pending[w] >= 0 && pull_ready(p, p->pending[w], p->pending_exact[w])) {
            p->pending[w] = -1;
            herd_status st = reply_params(p, w, err);
            if (st) return st;
        }
    return HERD_OK;
}

herd_status ps_serve(ps_state *p, const herd_optim_config *oc, const herd_schedule *sched, herd_error *err) {
    int64_t n = shard_n(p, p->server_index);
    herd_optimizer opt;
    herd_status st = herd_optimizer_init(&opt, oc, n, err);
    if (st) return st;
    /* the optimizer works on the shard: give it shard-relative pointers */
    float *shard = herd_model_params(p->m, NULL) + p->lo[p->server_index];
    int slots = p->staleness >= 0 ? p->staleness + 2 : 1;
    double timeout = herd_comm_timeout(p->comm);
    for (int w = 0; w < p->workers; w++) p->last_heard[w] = herd_now();
    while (!st && p->done_workers < p->workers) {
        int found, src, tag;
        int64_t bytes;
        if ((st = herd_comm_probe(p->comm, &found, &src, &tag, &bytes, err))) break;
        if (!found) {
            /* the worker the server waits for: of those not done and not waiting for a reply from
             * it, the one heard from longest ago (its push holds the next update back) */
            int lag = -1;
            for (int w = 0; w < p->workers; w++)
                if (!p->done[w] && p->pending[w] < 0 && (lag < 0 || p->last_heard[w] < p->last_heard[lag])) lag = w;
            herd_comm_set_waiting(p->comm, lag);
            if (lag >= 0 && (st = herd_comm_check_alive(p->comm, p->last_heard[lag], "the server waited for a worker",
                                                        err)))
                break;
            if (lag >= 0 && herd_now() - p->last_heard[lag] > timeout) {
                char why[400];
                herd_comm_blame(p->comm, lag, why, sizeof why);
                st = herd_fail(err, HERD_EIO, "server rank %d: nothing from worker rank %d for %.0f s (its last push "
                               "was for step %lld, the server is at update %lld)%s", p->rank,
                               herd_comm_world_rank(p->comm, lag), timeout, (long long)p->last_push[lag],
                               (long long)p->version, why[0] ? why : "; it died or hangs");
                break;
            }
            struct timespec ts = {0, 20000};
            nanosleep(&ts, NULL);
            continue;
        }
        herd_comm_set_waiting(p->comm, -1);
        if (src < 0 || src >= p->workers) {
            st = herd_fail(err, HERD_EINTERNAL, "server rank %d: message tag %d from rank %d, which is not a worker",
                           p->rank, tag, src);
            break;
        }
        p->last_heard[src] = herd_now();
        /* size and kind are checked before anything is received, the content before it is used */
        int64_t cap = (int64_t)(sizeof(push_header) + (size_t)n * sizeof(float));
        if (bytes < 0 || bytes > cap) {
            st = herd_fail(err, HERD_EFORMAT, "server rank %d: a message of %lld bytes (tag %d) from rank %d is larger "
                           "than any message of the protocol (%lld bytes)", p->rank, (long long)bytes, tag, src,
                           (long long)cap);
            break;
        }
        herd_comm_request *r;
        if ((st = herd_comm_irecv(p->comm, p->recv, bytes, src, tag, &r, err)) || (st = herd_comm_wait(p->comm, r, err)))
            break;
        ps_expect expect = {n, p->version, p->staleness >= 0 ? slots : 0};
        ps_message msg;
        if ((st = ps_decode(tag, p->recv, bytes, &expect, &msg, err))) {
            herd_fail_prefix(err, "server rank %d: from rank %d", p->rank, src);
            break;
        }
        if (msg.kind == PS_PULL) {
            if (pull_ready(p, msg.step, msg.exact)) st = reply_params(p, src, err);
            else p->pending[src] = msg.step, p->pending_exact[src] = msg.exact;
        } else if (msg.kind == PS_PUSH) {
            p->last_push[src] = msg.step;
            const float *g = msg.grads;
            if (p->staleness < 0) { /* asynchronous: every worker's gradient is an update of its own */
                float lr = herd_schedule_lr(sched, p->version);
                if (msg.samples > 0) herd_optimizer_update_range(&opt, shard, g, 0, n, lr, p->version + 1);
                p->version++;
                herd_fault_step(p->rank, p->version); /* tests only */
            } else {
                int k = (int)(msg.step % slots);
                float *acc = p->acc + (size_t)k * (size_t)n;
                for (int64_t i = 0; i < n; i++) acc[i] += (float)msg.samples * g[i];
                p->acc_samples[k] += (double)msg.samples;
                p->acc_count[k]++;
                /* in step order: update v once all workers pushed step v */
                for (int kk = (int)(p->version % slots); p->acc_count[kk] == p->workers; kk = (int)(p->version % slots)) {
                    float *a = p->acc + (size_t)kk * (size_t)n;
                    if (p->acc_samples[kk] > 0) { /* 0: every worker skipped this step (--on-nan skip-step) */
                        float inv = (float)(1.0 / p->acc_samples[kk]);
                        for (int64_t i = 0; i < n; i++) a[i] *= inv;
                        float lr = herd_schedule_lr(sched, p->version);
                        herd_optimizer_update_range(&opt, shard, a, 0, n, lr, p->version + 1);
                    }
                    p->version++;
                    herd_fault_step(p->rank, p->version); /* tests only */
                    memset(a, 0, (size_t)n * sizeof(float));
                    p->acc_samples[kk] = 0;
                    p->acc_count[kk] = 0;
                }
            }
            st = serve_pending(p, err);
        } else {
            p->done_workers += !p->done[src];
            p->done[src] = 1;
        }
    }
    herd_comm_set_waiting(p->comm, -1);
    herd_optimizer_free(&opt);
    return st;
}

/* ---- the strategy: workers compute gradients, servers (herd_train_serve) apply them ---- */

typedef struct ps_strategy {
    ps_state *ps;
    herd_comm *workers; /* the workers' own communicator, for metrics */
    int64_t step;       /* the step in progress */
} ps_strategy;

static herd_status ps_begin_step(herd_strategy *s, int64_t t, herd_error *err) {
    ps_strategy *x = s->impl;
    x->step = t;
    return ps_pull(x->ps, t, 0, err);
}

static herd_status ps_compute(herd_strategy *s, const herd_strategy_part *p, float *loss, herd_metrics *acc,
                              herd_error *err) {
    /* a worker pushes its local mean; the servers weigh workers by their sample counts */
    return data_parallel_compute(s, p, 1.0f, loss, acc, err);
}

static herd_status ps_after_backward(herd_strategy *s, int samples, herd_error *err) {
    (void)s, (void)samples, (void)err;
    return HERD_OK; /* the gradient goes to the servers as the update */
}

static herd_status ps_grad_sq(herd_strategy *s, double *sq, herd_error *err) {
    (void)err; /* the worker's own gradient: each worker clips and checks its push */
    *sq = herd_grad_sq_sum(herd_model_grads(s->m), herd_model_dense_params(s->m));
    return HERD_OK;
}

static herd_status ps_apply(herd_strategy *s, const herd_strategy_update *u, herd_error *err) {
    ps_strategy *x = s->impl;
    /* a skipped step is an empty push: the servers still wait for this step */
    if (u->skipped) memset(herd_model_grads(s->m), 0, (size_t)herd_model_dense_params(s->m) * sizeof(float));
    double t0 = herd_now();
    herd_status st = ps_push(x->ps, x->step, u->skipped ? 0 : u->samples, err);
    double t1 = herd_now();
    s->wait_seconds += t1 - t0;
    herd_trace_add(s->trace, "push gradients", "comm", HERD_TRACE_COMM, t0, t1);
    return st;
}

static herd_status ps_sync_model(herd_strategy *s, int64_t t, herd_error *err) {
    return ps_pull(((ps_strategy *)s->impl)->ps, t, 1, err);
}

static herd_status ps_gather_state(herd_strategy *s, float *m, float *v, herd_error *err) {
    (void)s, (void)m, (void)v;
    return herd_fail(err, HERD_EUNSUPPORTED, "checkpoints of a parameter-server run are not supported yet");
}

static herd_status ps_finish(herd_strategy *s, herd_error *err) { return ps_done(((ps_strategy *)s->impl)->ps, err); }

static void ps_strategy_destroy(herd_strategy *s) {
    ps_strategy *x = s->impl;
    if (!x) return;
    ps_destroy(x->ps);
    herd_comm_close(x->workers);
    free(x);
}

static const herd_strategy_ops ps_ops = {
    .name = "parameter server",
    .parts = data_parallel_parts, /* worker w computes rows [w*B/W, (w+1)*B/W) */
    .part = data_parallel_part,
    .begin_step = ps_begin_step,
    .compute = ps_compute,
    .after_backward = ps_after_backward,
    .grad_sq = ps_grad_sq,
    .apply = ps_apply,
    .sync_model = ps_sync_model,
    .gather_state = ps_gather_state,
    .finish = ps_finish,
    .destroy = ps_strategy_destroy,
};

herd_status param_server_layout(const herd_strategy_config *cfg, int world, int *groups, int *reuse, herd_error *err) {
    if (world <= cfg->servers)
        return herd_fail(err, HERD_EARG, "--strategy ps needs more ranks (-n %d) than --servers (%d)", world,
                         cfg->servers);
    if (cfg->deterministic) return herd_fail(err, HERD_EARG, "--deterministic is for --strategy dp");
    if (cfg->zero)
        return herd_fail(err, HERD_EARG, "--zero 1 is for --strategy dp (the parameter servers already hold the "
                         "optimizer state, sharded)");
    *groups = world - cfg->servers;
    *reuse = 1;
    return HERD_OK;
}

herd_status param_server_setup(herd_strategy *s, herd_error *err) {
    int groups, reuse;
    herd_status st = param_server_layout(&s->cfg, herd_comm_size(s->comm), &groups, &reuse, err);
    if (st) return st;
    ps_strategy *x = calloc(1, sizeof *x);
    if (!x) return herd_fail(err, HERD_ENOMEM, "out of memory");
    s->ops = &ps_ops, s->impl = x;
    if ((st = ps_create(&x->ps, s->comm, s->m, s->cfg.servers, s->cfg.staleness, err)) ||
        (st = herd_comm_split(s->comm, ps_is_server(x->ps), &x->workers, err))) {
        ps_strategy_destroy(s);
        s->ops = NULL, s->impl = NULL;
        return st;
    }
    s->metrics = x->workers;
    s->rank = s->eval_rank = herd_comm_rank(x->workers);
    s->world = s->eval_world = herd_comm_size(x->workers);
    s->update_lo = s->update_hi = 0; /* the servers keep the optimizer state and apply the updates */
    s->serves = ps_is_server(x->ps);
    return HERD_OK;
}

herd_status herd_strategy_serve(herd_strategy *s, const herd_optim_config *oc, const herd_schedule *sched,
                                herd_error *err) {
    if (!s->serves) return herd_fail(err, HERD_EINTERNAL, "serve called on a worker");
    return ps_serve(((ps_strategy *)s->impl)->ps, oc, sched, err);
}
