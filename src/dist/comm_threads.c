/* Ranks as threads of one process: the communicator of herd's fast distributed tests (every
 * strategy in the default suite and under the sanitizers), and with one rank the communicator
 * of a process alone. Same calls and meaning as the MPI one; sums are taken in rank order, so a
 * result is the same on every rank and from run to run. Collectives of one group are matched
 * by their order of call on each rank (as MPI's); messages are copied when sent (an eager send),
 * kept per receiver in arrival order and matched by source and tag. Every wait has the
 * communicator's deadline; an abort by one rank ends the others' waits. */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "dist/bf16.h"
#include "dist/comm_ops.h"

#define SLOTS 512        /* collectives in flight per group (a rank has at most MAX_REQUESTS) */
#define MAX_REQUESTS 256

enum { C_ALLREDUCE, C_ALLREDUCE_BF16, C_ALLREDUCE_F64, C_BROADCAST, C_ALLGATHER, C_SPLIT, C_REDUCE_SCATTER,
       C_ALLGATHERV, C_ALLTOALLV };
static const char *const coll_names[] = {"allreduce", "allreduce",      "metrics allreduce", "broadcast",
                                         "allgather", "communicator split", "reduce-scatter", "allgatherv",
                                         "alltoallv"};

/* What an alltoallv rank brings: its send buffer and its parts' sizes (in[rank] points at it). */
typedef struct a2a_in {
    const unsigned char *send;
    const int64_t *send_bytes;
} a2a_in;

typedef struct tgroup tgroup;

/* One collective: every rank's buffers, and how far the ranks got through it. */
typedef struct coll {
    int64_t seq; /* the collective's number in the group's order; -1: free */
    int kind, root;
    int64_t n;
    int arrived, computed, left;
    const void **in; /* per rank */
    int *color;      /* split */
    tgroup **sub;    /* split: the new group of each color, under its lowest rank */
} coll;

typedef struct message {
    struct message *next;
    int src, tag;
    int64_t bytes;
    unsigned char data[];
} message;

struct tgroup {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int n, refs, aborted;
    int *world_of; /* rank of this group -> rank of the first group (the "world") */
    coll slots[SLOTS];
    message **head; /* per receiver */
};

typedef struct thread_request {
    int in_use, kind; /* kind: a collective's, or -1 send, -2 receive */
    int slot;
    float *buf;
    int64_t n;
    uint16_t *bf16;
    const int *counts; /* reduce-scatter, allgatherv */
    void *rbuf; /* receive */
    int peer, tag;
} thread_request;

typedef struct tcomm {
    herd_comm base;
    tgroup *g;
    int64_t seq; /* collectives called so far */
    thread_request reqs[MAX_REQUESTS];
} tcomm;

static const comm_ops thread_ops;

static void group_release(tgroup *g) {
    pthread_mutex_lock(&g->mu);
    int last = --g->refs == 0;
    pthread_mutex_unlock(&g->mu);
    if (!last) return;
    for (int r = 0; r < g->n; r++)
        for (message *m = g->head[r], *next; m; m = next) next = m->next, free(m);
    for (int k = 0; k < SLOTS; k++) free(g->slots[k].in), free(g->slots[k].color), free(g->slots[k].sub);
    free(g->head), free(g->world_of);
    pthread_mutex_destroy(&g->mu);
    pthread_cond_destroy(&g->cv);
    free(g);
}

static tgroup *group_create(int n) {
    tgroup *g = calloc(1, sizeof *g);
    if (!g) return NULL;
    g->n = g->refs = n;
    pthread_mutex_init(&g->mu, NULL);
    pthread_cond_init(&g->cv, NULL);
    int ok = (g->head = calloc((size_t)n, sizeof *g->head)) && (g->world_of = calloc((size_t)n, sizeof *g->world_of));
    for (int k = 0; k < SLOTS && ok; k++) {
        coll *s = &g->slots[k];
        s->seq = -1;
        ok = (s->in = calloc((size_t)n, sizeof *s->in)) && (s->color = calloc((size_t)n, sizeof *s->color)) &&
             (s->sub = calloc((size_t)n, sizeof *s->sub));
    }
    for (int r = 0; r < n && ok; r++) g->world_of[r] = r;
    if (!ok) {
        g->refs = 1;
        group_release(g);
        return NULL;
    }
    return g;
}

static tcomm *comm_make(tgroup *g, int rank, double timeout) {
    tcomm *c = calloc(1, sizeof *c);
    if (!c) return NULL;
    c->base.ops = &thread_ops, c->base.rank = rank, c->base.size = g->n, c->base.timeout = timeout;
    c->g = g;
    return c;
}

herd_status herd_comm_threads_open(int n, double timeout_s, herd_comm **comms, herd_error *err) {
    if (n < 1 || n > 4096) return herd_fail(err, HERD_EARG, "%d in-process ranks: expected 1..4096", n);
    tgroup *g = group_create(n);
    if (!g) return herd_fail(err, HERD_ENOMEM, "out of memory for %d in-process ranks", n);
    for (int r = 0; r < n; r++) {
        tcomm *c = comm_make(g, r, timeout_s > 0 ? timeout_s : 60);
        if (!c) {
            for (int q = 0; q < r; q++) herd_comm_close(comms[q]);
            g->refs = n - r;
            for (int q = r; q < n; q++) group_release(g);
            return herd_fail(err, HERD_ENOMEM, "out of memory for %d in-process ranks", n);
        }
        comms[r] = &c->base;
    }
    return HERD_OK;
}

/* Waits on the group's condition until `done` holds, the deadline passes or a rank aborted. */
static herd_status wait_until(tcomm *c, int (*done)(tcomm *c, void *arg), void *arg, double deadline,
                              const char *what, herd_error *err) {
    tgroup *g = c->g;
    while (!done(c, arg)) {
        if (g->aborted)
            return herd_fail(err, HERD_EIO, "rank %d: another rank ended the job (code %d) during %s", c->base.rank,
                             g->aborted, what);
        double left = deadline - herd_now();
        if (left <= 0)
            return herd_fail(err, HERD_EIO, "rank %d: no answer within %.0f s to %s", c->base.rank, c->base.timeout,
                             what);
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        double wake = (double)ts.tv_sec + ts.tv_nsec * 1e-9 + (left < 0.05 ? left : 0.05);
        ts.tv_sec = (time_t)wake, ts.tv_nsec = (long)((wake - (double)ts.tv_sec) * 1e9);
        pthread_cond_timedwait(&g->cv, &g->mu, &ts);
    }
    return HERD_OK;
}

/* ---- collectives: arrive (register this rank's buffers), then finish (wait for all, read
 * everyone's into scratch, wait until all have read, write this rank's result) ---- */

typedef struct slot_arg {
    coll *s;
    int64_t seq;
} slot_arg;

static int slot_free(tcomm *c, void *arg) {
    slot_arg *a = arg;
    (void)c;
    return a->s->seq == -1 || a->s->seq == a->seq;
}
static int all_arrived(tcomm *c, void *arg) { return ((coll *)arg)->arrived == c->g->n; }
static int all_computed(tcomm *c, void *arg) { return ((coll *)arg)->computed == c->g->n; }

static herd_status coll_arrive(tcomm *c, int kind, const void *in, int64_t n, int root, int color, int *slot,
                               herd_error *err) {
    tgroup *g = c->g;
    int64_t seq = c->seq++;
    slot_arg a = {&g->slots[seq % SLOTS], seq};
    pthread_mutex_lock(&g->mu);
    herd_status st = wait_until(c, slot_free, &a, herd_now() + c->base.timeout, coll_names[kind], err);
    if (!st) {
        coll *s = a.s;
        if (s->seq == -1) s->seq = seq, s->kind = kind, s->n = n, s->root = root;
        if (s->kind != kind || s->n != n || s->root != root)
            st = herd_fail(err, HERD_EINTERNAL, "rank %d: collective %lld is a %s of %lld values here but a %s of %lld "
                           "on another rank", c->base.rank, (long long)seq, coll_names[kind], (long long)n,
                           coll_names[s->kind], (long long)s->n);
        else {
            s->in[c->base.rank] = in, s->color[c->base.rank] = color;
            s->arrived++;
            pthread_cond_broadcast(&g->cv);
        }
    }
    pthread_mutex_unlock(&g->mu);
    *slot = (int)(seq % SLOTS);
    return st;
}

/* Reads what this rank's result needs from every rank's buffers into scratch (floats, doubles
 * or bytes by kind); a split makes the new groups here (under the lock). */
static herd_status coll_compute(tcomm *c, coll *s, const int *counts, void *scratch, herd_comm **sub,
                                herd_error *err) {
    int n = c->g->n, me = c->base.rank;
    int64_t off = 0; /* reduce-scatter, allgatherv: where rank r's part starts */
    switch (s->kind) {
    case C_ALLREDUCE: {
        float *out = scratch;
        memcpy(out, s->in[0], (size_t)s->n * sizeof(float));
        for (int r = 1; r < n; r++)
            for (int64_t i = 0; i < s->n; i++) out[i] += ((const float *)s->in[r])[i];
        return HERD_OK;
    }
    case C_ALLREDUCE_BF16: { /* each sum rounded to bfloat16, as the wire format of the MPI one */
        float *out = scratch;
        for (int64_t i = 0; i < s->n; i++) {
            uint16_t acc = ((const uint16_t *)s->in[0])[i];
            for (int r = 1; r < n; r++)
                acc = herd_f32_to_bf16(herd_bf16_to_f32(acc) + herd_bf16_to_f32(((const uint16_t *)s->in[r])[i]));
            out[i] = herd_bf16_to_f32(acc);
        }
        return HERD_OK;
    }
    case C_ALLREDUCE_F64: {
        double *out = scratch;
        memcpy(out, s->in[0], (size_t)s->n * sizeof(double));
        for (int r = 1; r < n; r++)
            for (int64_t i = 0; i < s->n; i++) out[i] += ((const double *)s->in[r])[i];
        return HERD_OK;
    }
    case C_BROADCAST:
        memcpy(scratch, s->in[s->root], (size_t)s->n * sizeof(float));
        return HERD_OK;
    case C_ALLGATHER:
        for (int r = 0; r < n; r++) memcpy((float *)scratch + (size_t)r * (size_t)s->n, s->in[r], (size_t)s->n * 4);
        return HERD_OK;
    case C_REDUCE_SCATTER: {
        for (int r = 0; r < me; r++) off += counts[r];
        float *out = scratch;
        if (counts[me] == 0) return HERD_OK; /* no part of it here (no scratch either) */
        memcpy(out, (const float *)s->in[0] + off, (size_t)counts[me] * sizeof(float));
        for (int r = 1; r < n; r++)
            for (int64_t i = 0; i < counts[me]; i++) out[i] += ((const float *)s->in[r])[off + i];
        return HERD_OK;
    }
    case C_ALLGATHERV:
        for (int r = 0; r < n; off += counts[r], r++)
            memcpy((float *)scratch + off, (const float *)s->in[r] + off, (size_t)counts[r] * sizeof(float));
        return HERD_OK;
    case C_ALLTOALLV: { /* counts: unused; scratch: this rank's receive buffer in rank order */
        int64_t at = 0;
        for (int r = 0; r < n; r++) {
            const a2a_in *a = s->in[r];
            int64_t from = 0;
            for (int q = 0; q < me; q++) from += a->send_bytes[q];
            if (a->send_bytes[me]) /* nothing to receive: no scratch at all */
                memcpy((unsigned char *)scratch + at, a->send + from, (size_t)a->send_bytes[me]);
            at += a->send_bytes[me];
        }
        return HERD_OK;
    }
    case C_SPLIT: {
        int first = -1, members = 0, rank = 0;
        for (int r = 0; r < n; r++) {
            if (s->color[r] != s->color[me]) continue;
            if (first < 0) first = r;
            if (r < me) rank++;
            members++;
        }
        pthread_mutex_lock(&c->g->mu);
        if (!s->sub[first] && (s->sub[first] = group_create(members)))
            for (int r = 0, k = 0; r < n; r++)
                if (s->color[r] == s->color[me]) s->sub[first]->world_of[k++] = c->g->world_of[r];
        tgroup *g = s->sub[first];
        pthread_mutex_unlock(&c->g->mu);
        tcomm *t = g ? comm_make(g, rank, c->base.timeout) : NULL;
        if (!t) return herd_fail(err, HERD_ENOMEM, "out of memory for a communicator split");
        *sub = &t->base;
        return HERD_OK;
    }
    }
    return herd_fail(err, HERD_EINTERNAL, "unknown collective %d", s->kind);
}

/* The second half of a collective this rank arrived at; writes its result into out (bytes). */
static herd_status coll_finish(tcomm *c, int slot, const int *counts, void *out, size_t bytes, herd_comm **sub,
                               herd_error *err) {
    tgroup *g = c->g;
    coll *s = &g->slots[slot];
    const char *what = coll_names[s->kind];
    double deadline = herd_now() + c->base.timeout;
    void *scratch = bytes ? malloc(bytes) : NULL;
    if (bytes && !scratch) return herd_fail(err, HERD_ENOMEM, "out of memory for a %s", what);
    pthread_mutex_lock(&g->mu);
    herd_status st = wait_until(c, all_arrived, s, deadline, what, err);
    pthread_mutex_unlock(&g->mu);
    if (!st) st = coll_compute(c, s, counts, scratch, sub, err);
    pthread_mutex_lock(&g->mu);
    if (!st) {
        s->computed++;
        pthread_cond_broadcast(&g->cv);
        st = wait_until(c, all_computed, s, deadline, what, err); /* no rank reads this one's buffers any more */
    }
    if (!st && bytes) memcpy(out, scratch, bytes);
    if (!st && ++s->left == g->n) {
        s->seq = -1, s->arrived = s->computed = s->left = 0;
        memset(s->sub, 0, (size_t)g->n * sizeof *s->sub);
        pthread_cond_broadcast(&g->cv);
    }
    pthread_mutex_unlock(&g->mu);
    free(scratch);
    return st;
}

static herd_status coll_run(tcomm *c, int kind, const void *in, void *out, int64_t n, size_t bytes, int root,
                            herd_error *err) {
    int slot;
    herd_status st = coll_arrive(c, kind, in, n, root, 0, &slot, err);
    return st ? st : coll_finish(c, slot, NULL, out, bytes, NULL, err);
}

static thread_request *take_request(tcomm *c, int kind) {
    for (int i = 0; i < MAX_REQUESTS; i++)
        if (!c->reqs[i].in_use) {
            thread_request *r = &c->reqs[i];
            memset(r, 0, sizeof *r);
            r->in_use = 1, r->kind = kind;
            return r;
        }
    return NULL;
}

static herd_status t_broadcast(herd_comm *hc, float *buf, int64_t n, int root, herd_error *err) {
    if (root < 0 || root >= hc->size) return herd_fail(err, HERD_EARG, "broadcast from rank %d of %d", root, hc->size);
    return coll_run((tcomm *)hc, C_BROADCAST, buf, buf, n, (size_t)n * sizeof(float), root, err);
}

static herd_status t_allreduce_f64(herd_comm *hc, double *buf, int n, herd_error *err) {
    return coll_run((tcomm *)hc, C_ALLREDUCE_F64, buf, buf, n, (size_t)n * sizeof(double), 0, err);
}

static herd_status t_allgather(herd_comm *hc, const float *in, float *out, int64_t n, herd_error *err) {
    return coll_run((tcomm *)hc, C_ALLGATHER, in, out, n, (size_t)hc->size * (size_t)n * sizeof(float), 0, err);
}

static herd_status t_iallreduce(herd_comm *hc, float *buf, int64_t n, uint16_t *bf16_scratch, herd_comm_request **req,
                                herd_error *err) {
    tcomm *c = (tcomm *)hc;
    thread_request *r = take_request(c, bf16_scratch ? C_ALLREDUCE_BF16 : C_ALLREDUCE);
    if (!r) return herd_fail(err, HERD_EINTERNAL, "more than %d allreduces in flight", MAX_REQUESTS);
    r->buf = buf, r->n = n, r->bf16 = bf16_scratch;
    if (bf16_scratch)
        for (int64_t i = 0; i < n; i++) bf16_scratch[i] = herd_f32_to_bf16(buf[i]);
    herd_status st = coll_arrive(c, r->kind, bf16_scratch ? (const void *)bf16_scratch : buf, n, 0, 0, &r->slot, err);
    if (st) {
        r->in_use = 0;
        return st;
    }
    *req = (herd_comm_request *)r;
    return HERD_OK;
}

static herd_status t_ireduce_scatter(herd_comm *hc, float *buf, const int *counts, herd_comm_request **req,
                                     herd_error *err) {
    tcomm *c = (tcomm *)hc;
    thread_request *r = take_request(c, C_REDUCE_SCATTER);
    if (!r) return herd_fail(err, HERD_EINTERNAL, "more than %d requests in flight", MAX_REQUESTS);
    int64_t total = 0, off = 0;
    for (int q = 0; q < hc->size; q++) total += counts[q], off += q < hc->rank ? counts[q] : 0;
    /* this rank's part is written once every rank has read the inputs (coll_finish) */
    r->buf = buf + off, r->n = counts[hc->rank], r->counts = counts;
    herd_status st = coll_arrive(c, C_REDUCE_SCATTER, buf, total, 0, 0, &r->slot, err);
    if (st) {
        r->in_use = 0;
        return st;
    }
    *req = (herd_comm_request *)r;
    return HERD_OK;
}

static herd_status t_iallgatherv(herd_comm *hc, float *buf, const int *counts, herd_comm_request **req,
                                 herd_error *err) {
    tcomm *c = (tcomm *)hc;
    thread_request *r = take_request(c, C_ALLGATHERV);
    if (!r) return herd_fail(err, HERD_EINTERNAL, "more than %d requests in flight", MAX_REQUESTS);
    int64_t total = 0;
    for (int q = 0; q < hc->size; q++) total += counts[q];
    r->buf = buf, r->n = total, r->counts = counts;
    herd_status st = coll_arrive(c, C_ALLGATHERV, buf, total, 0, 0, &r->slot, err);
    if (st) {
        r->in_use = 0;
        return st;
    }
    *req = (herd_comm_request *)r;
    return HERD_OK;
}

static herd_status t_alltoallv(herd_comm *hc, const void *send, const int64_t *send_bytes, void *recv,
                               const int64_t *recv_bytes, herd_error *err) {
    tcomm *c = (tcomm *)hc;
    a2a_in me = {send, send_bytes};
    int64_t total = 0;
    for (int q = 0; q < hc->size; q++) total += recv_bytes[q];
    int slot;
    herd_status st = coll_arrive(c, C_ALLTOALLV, &me, 0, 0, 0, &slot, err);
    if (st) return st;
    /* every rank's sizes are readable once all arrived: each part must be the size its receiver expects */
    coll *s = &c->g->slots[slot];
    pthread_mutex_lock(&c->g->mu);
    st = wait_until(c, all_arrived, s, herd_now() + hc->timeout, "alltoallv", err);
    for (int q = 0; q < hc->size && !st; q++)
        if (((const a2a_in *)s->in[q])->send_bytes[hc->rank] != recv_bytes[q]) {
            st = herd_fail(err, HERD_EINTERNAL, "alltoallv: rank %d sends %lld bytes to rank %d, which expects %lld",
                           q, (long long)((const a2a_in *)s->in[q])->send_bytes[hc->rank], hc->rank,
                           (long long)recv_bytes[q]);
            c->g->aborted = 1; /* the others stop waiting for this rank's part */
            pthread_cond_broadcast(&c->g->cv);
        }
    pthread_mutex_unlock(&c->g->mu);
    return st ? st : coll_finish(c, slot, NULL, recv, (size_t)total, NULL, err);
}

/* ---- point to point ---- */

static herd_status t_isend(herd_comm *hc, const void *buf, int64_t bytes, int dest, int tag, herd_comm_request **req,
                           herd_error *err) {
    tcomm *c = (tcomm *)hc;
    if (dest < 0 || dest >= hc->size) return herd_fail(err, HERD_EARG, "send to rank %d of %d", dest, hc->size);
    if (bytes < 0) return herd_fail(err, HERD_EARG, "send of %lld bytes", (long long)bytes);
    thread_request *r = take_request(c, -1);
    message *m = malloc(sizeof *m + (size_t)bytes);
    if (!r || !m) {
        if (r) r->in_use = 0;
        free(m);
        return herd_fail(err, r ? HERD_ENOMEM : HERD_EINTERNAL, "a send of %lld bytes: out of %s", (long long)bytes,
                         r ? "memory" : "requests");
    }
    m->next = NULL, m->src = hc->rank, m->tag = tag, m->bytes = bytes;
    if (bytes) memcpy(m->data, buf, (size_t)bytes);
    tgroup *g = c->g;
    pthread_mutex_lock(&g->mu);
    message **at = &g->head[dest];
    while (*at) at = &(*at)->next;
    *at = m;
    pthread_cond_broadcast(&g->cv);
    pthread_mutex_unlock(&g->mu);
    *req = (herd_comm_request *)r;
    return HERD_OK;
}

static herd_status t_irecv(herd_comm *hc, void *buf, int64_t bytes, int src, int tag, herd_comm_request **req,
                           herd_error *err) {
    if (src < 0 || src >= hc->size) return herd_fail(err, HERD_EARG, "receive from rank %d of %d", src, hc->size);
    thread_request *r = take_request((tcomm *)hc, -2);
    if (!r) return herd_fail(err, HERD_EINTERNAL, "more than %d requests in flight", MAX_REQUESTS);
    r->rbuf = buf, r->n = bytes, r->peer = src, r->tag = tag;
    *req = (herd_comm_request *)r;
    return HERD_OK;
}

/* The first message from r->peer with r->tag in this rank's mailbox, or NULL. */
static message **find_message(tcomm *c, const thread_request *r) {
    for (message **at = &c->g->head[c->base.rank]; *at; at = &(*at)->next)
        if ((*at)->src == r->peer && (*at)->tag == r->tag) return at;
    return NULL;
}

static int message_here(tcomm *c, void *arg) { return find_message(c, arg) != NULL; }

static herd_status t_probe(herd_comm *hc, int *found, int *src, int *tag, int64_t *bytes, herd_error *err) {
    tcomm *c = (tcomm *)hc;
    (void)err;
    pthread_mutex_lock(&c->g->mu);
    message *m = c->g->head[hc->rank];
    *found = m != NULL;
    if (m) *src = m->src, *tag = m->tag, *bytes = m->bytes;
    pthread_mutex_unlock(&c->g->mu);
    return HERD_OK;
}

static herd_status t_wait(herd_comm *hc, herd_comm_request *req, herd_error *err) {
    tcomm *c = (tcomm *)hc;
    thread_request *r = (thread_request *)req;
    herd_status st = HERD_OK;
    if (r->kind == C_ALLREDUCE || r->kind == C_ALLREDUCE_BF16 || r->kind == C_REDUCE_SCATTER || r->kind == C_ALLGATHERV) {
        st = coll_finish(c, r->slot, r->counts, r->buf, (size_t)r->n * sizeof(float), NULL, err);
    } else if (r->kind == -2) {
        char what[64];
        snprintf(what, sizeof what, "a receive from rank %d (tag %d)", r->peer, r->tag);
        pthread_mutex_lock(&c->g->mu);
        st = wait_until(c, message_here, r, herd_now() + hc->timeout, what, err);
        if (!st) {
            message **at = find_message(c, r), *m = *at;
            if (m->bytes > r->n)
                st = herd_fail(err, HERD_EFORMAT, "rank %d: a message of %lld bytes from rank %d (tag %d) for a receive "
                               "of %lld", hc->rank, (long long)m->bytes, r->peer, r->tag, (long long)r->n);
            else {
                if (m->bytes) memcpy(r->rbuf, m->data, (size_t)m->bytes);
                *at = m->next;
                free(m);
            }
        }
        pthread_mutex_unlock(&c->g->mu);
    }
    r->in_use = 0;
    return st;
}

static herd_status t_split(herd_comm *hc, int color, herd_comm **out, herd_error *err) {
    tcomm *c = (tcomm *)hc;
    int slot;
    herd_status st = coll_arrive(c, C_SPLIT, NULL, 0, 0, color, &slot, err);
    return st ? st : coll_finish(c, slot, NULL, NULL, 0, out, err);
}

/* ---- the rest of the table ---- */

static void t_close(herd_comm *hc) {
    tcomm *c = (tcomm *)hc;
    group_release(c->g);
    free(c);
}

static int t_local_size(const herd_comm *hc) { return hc->size; }
static void t_poll(herd_comm *hc) { (void)hc; }
static void t_progress(herd_comm *hc, int on) { (void)hc, (void)on; }
static void t_set_waiting(herd_comm *hc, int peer) { (void)hc, (void)peer; }

static void t_blame(herd_comm *hc, int peer, char *out, size_t size) {
    (void)hc, (void)peer;
    if (size) out[0] = 0; /* one process: a stuck thread is found by the deadline */
}

static int t_world_rank(const herd_comm *hc, int r) {
    const tcomm *c = (const tcomm *)hc;
    return r >= 0 && r < hc->size ? c->g->world_of[r] : r;
}

static herd_status t_check_alive(herd_comm *hc, double quiet_since, const char *what, herd_error *err) {
    tcomm *c = (tcomm *)hc;
    if (c->g->aborted) return herd_fail(err, HERD_EIO, "another rank ended the job while %s", what);
    if (herd_now() - quiet_since > hc->timeout)
        return herd_fail(err, HERD_EIO, "no answer within %.0f s while %s", hc->timeout, what);
    return HERD_OK;
}

static void t_abort(herd_comm *hc, int code) {
    tgroup *g = ((tcomm *)hc)->g;
    pthread_mutex_lock(&g->mu);
    g->aborted = code ? code : 1;
    pthread_cond_broadcast(&g->cv);
    pthread_mutex_unlock(&g->mu);
}

static const comm_ops thread_ops = {
    .close = t_close,
    .local_size = t_local_size,
    .broadcast = t_broadcast,
    .allreduce_f64 = t_allreduce_f64,
    .allgather = t_allgather,
    .iallreduce = t_iallreduce,
    .ireduce_scatter = t_ireduce_scatter,
    .iallgatherv = t_iallgatherv,
    .alltoallv = t_alltoallv,
    .poll = t_poll,
    .progress = t_progress,
    .wait = t_wait,
    .split = t_split,
    .isend = t_isend,
    .irecv = t_irecv,
    .probe = t_probe,
    .set_waiting = t_set_waiting,
    .blame = t_blame,
    .world_rank = t_world_rank,
    .check_alive = t_check_alive,
    .abort = t_abort,
};
