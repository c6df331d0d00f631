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
        herd_comm_request *r;
        if (tag == TAG_PULL) {
            int64_t msg[2];
            if ((st = herd_comm_irecv(p->comm, msg, sizeof msg, src, TAG_PULL, &r, err)) ||
                (st = herd_comm_wait(p->comm, r, err)))
                break;
            if (pull_ready(p, msg[0], (int)msg[1])) st = reply_params(p, src, err);
            else p->pending[src] = msg[0], p->pending_exact[src] = (int)msg[1];
        } else if (tag == TAG_PUSH) {
            size_t want = sizeof(push_header) + (size_t)n * sizeof(float);
            if (bytes != (int64_t)want) {
                st = herd_fail(err, HERD_EINTERNAL, "server rank %d: push of %lld bytes, expected %zu", p->rank,
                               (long long)bytes, want);
                break;
            }
            if ((st = herd_comm_irecv(p->comm, p->recv, bytes, src, TAG_PUSH, &r, err)) ||
                (st = herd_comm_wait(p->comm, r, err)))
                break;
            push_header h;
            memcpy(&h, p->recv, sizeof h);
            p->last_push[src] = h.step;
            const float *g = (const float *)(p->recv + sizeof h);
            if (p->staleness < 0) { /* asynchronous: every worker's gradient is an update of its own */
                float lr = herd_schedule_lr(sched, p->version);
                if (h.samples > 0) herd_optimizer_update_range(&opt, shard, g, 0, n, lr, p->version + 1);
                p->version++;
                herd_fault_step(p->rank, p->version); /* tests only */
            } else {
                if (h.step < p->version || h.step >= p->version + slots) {
                    st = herd_fail(err, HERD_EINTERNAL, "server rank %d: push for step %lld outside the window "
                                   "[%lld, %lld)", p->rank, (long long)h.step, (long long)p->version,
                                   (long long)(p->version + slots));
                    break;
                }
                int k = (int)(h.step % slots);
                float *acc = p->acc + (size_t)k * (size_t)n;
                for (int64_t i = 0; i < n; i++) acc[i] += (float)h.samples * g[i];
                p->acc_samples[k] += (double)h.samples;
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
        } else if (tag == TAG_DONE) {
            int64_t none;
            if ((st = herd_comm_irecv(p->comm, &none, sizeof none, src, TAG_DONE, &r, err)) ||
                (st = herd_comm_wait(p->comm, r, err)))
                break;
            p->done_workers += !p->done[src];
            p->done[src] = 1;
        } else {
            st = herd_fail(err, HERD_EINTERNAL, "server rank %d: unexpected message tag %d from rank %d", p->rank, tag,
                           src);
        }
    }
    herd_comm_set_waiting(p->comm, -1);
    herd_optimizer_free(&opt);
    return st;
}
