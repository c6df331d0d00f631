/* Parameter server: the last S ranks each own a contiguous key range of the flat parameter
 * buffer (balanced by bytes; the dense parameters, then the embedding tables' rows) and its
 * optimizer state (dense: the trainer's optimizer; tables: the sparse optimizer, lazy Adam,
 * Adagrad or SGD, on the rows the server owns); workers pull parameters, compute gradients on
 * their data shard and push them. A worker moves the dense part of each shard and only the
 * table rows its batch touches (keys as ps-lite's KVWorker::Pull/Push: sorted row offsets,
 * split by the servers' key ranges). Bounded staleness (stale-synchronous parallel): with a
 * finite K, gradients of step t from every worker are averaged into one update (the t-th),
 * and a worker may start step t only once update t-K-1 is applied, so K = 0 is synchronous
 * data parallelism; with K unbounded every push is applied on arrival (asynchronous SGD).
 * Messages: PULL {step, exact, full, keys} -> PARAMS {dense, rows}; PUSH {step, samples, keys,
 * dense, rows}; STATE {update} -> STATE_REPLY {update, opt_t, state}; RESTORE {update, opt_t,
 * state}; DONE. The state of update t is defined by the servers alone: parameters and moments
 * after exactly t updates (a worker asks before pushing step t, so no server is past it). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "dist/param_server.h"
#include "dist/strategy.h"
#include "herd/trace.h"

enum { TAG_PULL = 101, TAG_PARAMS = 102, TAG_PUSH = 103, TAG_DONE = 104, TAG_STATE = 105, TAG_STATE_REPLY = 106,
       TAG_RESTORE = 107 };
enum { PULL_HEADER = 4, PUSH_HEADER = 3, STATE_HEADER = 2 }; /* int64 words before the keys or the state */

typedef struct ps_table { /* one row-sparse table, in herd_model_sparse_grad's order */
    int64_t off, rows, dim;
    int param; /* its registry index */
} ps_table;

typedef struct grow_buf { /* a buffer reused across steps, grown to the largest message */
    unsigned char *p;
    size_t cap;
} grow_buf;

typedef struct slot_rows { /* one pending update's pushed rows of one piece: (local id, samples * gradient) */
    int64_t n, cap;
    int32_t *ids;
    float *vals;
} slot_rows;

struct ps_state {
    herd_comm *comm;
    herd_model *m;
    int servers, workers, staleness, rank, server_index; /* server_index -1 on workers */
    int64_t n, n_dense;                                  /* parameters in all, with a dense gradient */
    int64_t *lo, *hi;                                    /* key range of each server */
    int n_tables;
    ps_table *tables;
    /* worker */
    int64_t *keys;      /* the step's rows, ascending */
    const float **vals; /* push: each key's gradient row */
    size_t keys_cap;
    int32_t *ids;
    size_t ids_cap;
    int64_t *first;     /* servers + 1: index of each server's first key */
    grow_buf *send, *back; /* per server */
    double *load;       /* 3 per server: bytes, rows, requests */
    /* server */
    int64_t dense_n;    /* the shard's dense floats, then its pieces */
    int pieces;
    ps_piece *piece;
    int *piece_table;
    int64_t *row_base;  /* per table: the first row of this server's piece */
    float *acc;         /* (staleness + 2) accumulators of the dense part */
    double *acc_samples;
    int *acc_count;
    slot_rows *srows;   /* slots x pieces */
    int64_t version;    /* updates applied (skipped ones included) */
    herd_optimizer opt;
    herd_sparse_optimizer *sopt; /* per piece */
    int restored;       /* 0: a resumed run's state has not come yet (nothing is answered) */
    int64_t *pending;   /* per worker: step of a request waiting for its version, or -1 */
    char *pending_kind, *pending_exact, *pending_full;
    int64_t **pkeys, *pkeys_n, *pkeys_cap;
    int done_workers;
    grow_buf recv, reply;
    uint64_t *ckeys;    /* coalescing scratch */
    int32_t *cids;
    float *csums;
    int64_t ccap, cdim;
    int32_t *aids;      /* asynchronous updates' row ids */
    int64_t acap;
    double *last_heard;  /* per worker: when its last message came */
    int64_t *last_push;  /* per worker: the step of its last push, -1 before the first */
    char *done;          /* per worker: sent DONE */
};

static int64_t shard_n(const ps_state *p, int s) { return p->hi[s] - p->lo[s]; }
static int64_t dense_of(const ps_state *p, int s) {
    int64_t d = (p->hi[s] < p->n_dense ? p->hi[s] : p->n_dense) - p->lo[s];
    return d > 0 ? d : 0;
}

/* The keys [*a, *b) of table t in server s's range; 0 when there are none. */
static int table_span(const ps_state *p, int s, int t, int64_t *a, int64_t *b) {
    const ps_table *tb = &p->tables[t];
    int64_t end = tb->off + tb->rows * tb->dim;
    *a = p->lo[s] > tb->off ? p->lo[s] : tb->off;
    *b = p->hi[s] < end ? p->hi[s] : end;
    return *a < *b;
}

/* The table pieces of server s's range (at most n_tables) into out; table[i] their tables. */
static int pieces_of(const ps_state *p, int s, ps_piece *out, int *table) {
    int k = 0;
    for (int t = 0; t < p->n_tables; t++) {
        const ps_table *tb = &p->tables[t];
        int64_t a, b;
        if (!table_span(p, s, t, &a, &b)) continue;
        out[k] = (ps_piece){a, b, tb->dim};
        if (table) table[k] = t;
        k++;
    }
    return k;
}

static int grow(grow_buf *b, size_t bytes) {
    if (bytes <= b->cap) return 1;
    void *q = realloc(b->p, bytes);
    if (!q) return 0;
    b->p = q, b->cap = bytes;
    return 1;
}

/* The table rows server s holds. */
static int64_t rows_of(const ps_state *p, int s) {
    int64_t r = 0, a, b;
    for (int t = 0; t < p->n_tables; t++)
        if (table_span(p, s, t, &a, &b)) r += (b - a) / p->tables[t].dim;
    return r;
}

/* The floats of server s's state: parameters, dense moments, the tables' optimizer state. */
static int64_t state_floats(const ps_state *p, int s, int dense_m, int dense_v, const herd_sparse_optimizer *tables) {
    int64_t f = shard_n(p, s) + (dense_m + dense_v) * dense_of(p, s);
    int64_t a, b;
    for (int t = 0; t < p->n_tables && tables; t++)
        if (table_span(p, s, t, &a, &b))
            f += ((tables[t].m != NULL) + (tables[t].v != NULL)) * ((b - a) / p->tables[t].dim) *
                 herd_sparse_state_dim(&tables[t]);
    return f;
}

herd_status herdi_ps_create(ps_state **out, herd_comm *world, herd_model *m, int servers, int staleness, herd_error *err) {
    int size = herd_comm_size(world);
    if (servers < 1 || servers >= size)
        return herd_fail(err, HERD_EARG, "--strategy ps needs more ranks (%d) than --servers (%d)", size, servers);
    if (servers > 64) return herd_fail(err, HERD_EARG, "--servers %d: at most 64", servers);
    ps_state *p = calloc(1, sizeof *p);
    if (!p) return herd_fail(err, HERD_ENOMEM, "out of memory");
    p->comm = world, p->m = m, p->servers = servers, p->workers = size - servers, p->staleness = staleness;
    p->rank = herd_comm_rank(world);
    p->server_index = p->rank >= p->workers ? p->rank - p->workers : -1;
    p->restored = 1;
    /* not herd_model_params: that would write tables still pending from the seed, which a server
     * writes for its own rows alone (herdi_ps_serve) */
    herd_model_params_ready(m, &p->n);
    p->n_dense = herd_model_dense_params(m);
    p->n_tables = herd_model_sparse_count(m);
    p->lo = calloc((size_t)servers, sizeof *p->lo);
    p->hi = calloc((size_t)servers, sizeof *p->hi);
    p->tables = calloc((size_t)(p->n_tables ? p->n_tables : 1), sizeof *p->tables);
    if (!p->lo || !p->hi || !p->tables) goto nomem;
    for (int t = 0; t < p->n_tables; t++) {
        herd_sparse_grad g;
        herd_model_sparse_grad(m, t, &g);
        const herd_param_info *pi = herd_model_param(m, g.param);
        p->tables[t] = (ps_table){pi->offset, pi->shape[0], pi->shape[1], g.param};
        if (pi->offset + pi->numel > p->n) p->n = pi->offset + pi->numel; /* the tables follow the dense ones */
    }
    /* balanced by bytes (floats are all 4 bytes: by count); a cut inside a table moves to the
     * nearest row boundary, so a row lives on one server */
    for (int s = 1; s < servers; s++) {
        int64_t b = p->n * s / servers;
        for (int t = 0; t < p->n_tables; t++) {
            const ps_table *tb = &p->tables[t];
            if (b > tb->off && b < tb->off + tb->rows * tb->dim) b = tb->off + (b - tb->off + tb->dim / 2) / tb->dim * tb->dim;
        }
        if (b < p->hi[s - 1]) b = p->hi[s - 1];
        p->hi[s - 1] = p->lo[s] = b;
    }
    p->hi[servers - 1] = p->n;
    if (p->server_index < 0) {
        p->send = calloc((size_t)servers, sizeof *p->send);
        p->back = calloc((size_t)servers, sizeof *p->back);
        p->first = calloc((size_t)servers + 1, sizeof *p->first);
        p->load = calloc((size_t)servers * 3, sizeof *p->load);
        if (!p->send || !p->back || !p->first || !p->load) goto nomem;
    } else {
        int slots = staleness >= 0 ? staleness + 2 : 1, si = p->server_index;
        p->dense_n = dense_of(p, si);
        p->piece = calloc((size_t)(p->n_tables ? p->n_tables : 1), sizeof *p->piece);
        p->piece_table = calloc((size_t)(p->n_tables ? p->n_tables : 1), sizeof *p->piece_table);
        p->row_base = calloc((size_t)(p->n_tables ? p->n_tables : 1), sizeof *p->row_base);
        if (!p->piece || !p->piece_table || !p->row_base) goto nomem;
        p->pieces = pieces_of(p, si, p->piece, p->piece_table);
        p->acc = calloc((size_t)slots * (size_t)(p->dense_n ? p->dense_n : 1), sizeof(float));
        p->acc_samples = calloc((size_t)slots, sizeof(double));
        p->acc_count = calloc((size_t)slots, sizeof(int));
        p->srows = calloc((size_t)slots * (size_t)(p->pieces ? p->pieces : 1), sizeof *p->srows);
        p->sopt = calloc((size_t)(p->pieces ? p->pieces : 1), sizeof *p->sopt);
        p->pending = malloc((size_t)p->workers * sizeof(int64_t));
        p->pending_kind = calloc((size_t)p->workers, 1);
        p->pending_exact = calloc((size_t)p->workers, 1);
        p->pending_full = calloc((size_t)p->workers, 1);
        p->pkeys = calloc((size_t)p->workers, sizeof *p->pkeys);
        p->pkeys_n = calloc((size_t)p->workers, sizeof *p->pkeys_n);
        p->pkeys_cap = calloc((size_t)p->workers, sizeof *p->pkeys_cap);
        p->last_heard = malloc((size_t)p->workers * sizeof *p->last_heard);
        p->last_push = malloc((size_t)p->workers * sizeof *p->last_push);
        p->done = calloc((size_t)p->workers, 1);
        if (!p->acc || !p->acc_samples || !p->acc_count || !p->srows || !p->sopt || !p->pending || !p->pending_kind ||
            !p->pending_exact || !p->pending_full || !p->pkeys || !p->pkeys_n || !p->pkeys_cap || !p->last_heard ||
            !p->last_push || !p->done)
            goto nomem;
        for (int w = 0; w < p->workers; w++) p->pending[w] = -1, p->last_push[w] = -1;
    }
    *out = p;
    return HERD_OK;
nomem:
    herdi_ps_destroy(p);
    return herd_fail(err, HERD_ENOMEM, "out of memory for parameter-server buffers");
}

void herdi_ps_destroy(ps_state *p) {
    if (!p) return;
    for (int s = 0; p->send && s < p->servers; s++) free(p->send[s].p), free(p->back[s].p);
    free(p->send), free(p->back), free(p->first), free(p->load);
    free(p->keys), free(p->vals), free(p->ids);
    free(p->lo), free(p->hi), free(p->tables), free(p->acc), free(p->acc_samples), free(p->acc_count);
    int slots = p->staleness >= 0 ? p->staleness + 2 : 1;
    for (int i = 0; p->srows && i < slots * p->pieces; i++) free(p->srows[i].ids), free(p->srows[i].vals);
    free(p->srows);
    for (int q = 0; p->sopt && q < p->pieces; q++) herd_sparse_optimizer_free(&p->sopt[q]);
    free(p->sopt);
    herd_optimizer_free(&p->opt);
    free(p->piece), free(p->piece_table), free(p->row_base);
    for (int w = 0; p->pkeys && w < p->workers; w++) free(p->pkeys[w]);
    free(p->pkeys), free(p->pkeys_n), free(p->pkeys_cap);
    free(p->pending), free(p->pending_kind), free(p->pending_exact), free(p->pending_full);
    free(p->recv.p), free(p->reply.p), free(p->ckeys), free(p->cids), free(p->csums), free(p->aids);
    free(p->last_heard), free(p->last_push), free(p->done);
    free(p);
}

int herdi_ps_is_server(const ps_state *p) { return p->server_index >= 0; }
int herdi_ps_workers(const ps_state *p) { return p->workers; }
int herdi_ps_servers(const ps_state *p) { return p->servers; }
void herdi_ps_load(const ps_state *p, double *load) {
    if (p->load) memcpy(load, p->load, (size_t)p->servers * 3 * sizeof *load);
    else memset(load, 0, (size_t)p->servers * 3 * sizeof *load);
}

/* ---- worker ---- */

static int cmp_i32(const void *a, const void *b) {
    int32_t x = *(const int32_t *)a, y = *(const int32_t *)b;
    return (x > y) - (x < y);
}

static int reserve_keys(ps_state *p, size_t n) {
    if (n <= p->keys_cap) return 1;
    int64_t *k = realloc(p->keys, n * sizeof *k);
    if (k) p->keys = k;
    const float **v = realloc(p->vals, n * sizeof *v);
    if (v) p->vals = v;
    if (!k || !v) return 0;
    p->keys_cap = n;
    return 1;
}

/* The servers' shares of p->keys[0..nk): keys [first[s], first[s+1]) are server s's. */
static void split_keys(ps_state *p, int64_t nk) {
    int64_t i = 0;
    for (int s = 0; s < p->servers; s++) {
        p->first[s] = i;
        while (i < nk && p->keys[i] < p->hi[s]) i++;
    }
    p->first[p->servers] = nk;
}

/* The rows the first `rows` loaded samples read, as keys (ascending, distinct): *nk. */
static herd_status touched_keys(ps_state *p, int rows, int64_t *nk, herd_error *err) {
    *nk = 0;
    for (int t = 0; t < p->n_tables && rows > 0; t++) {
        herd_sparse_table tab;
        herd_model_sparse_table(p->m, t, &tab);
        const int32_t *ids = tab.ids;
        int64_t per = tab.per_sample;
        if (!ids)
            return herd_fail(err, HERD_EUNSUPPORTED, "--strategy ps fetches the table rows a batch reads before the "
                             "forward pass: table %d reads ids the model computes, not an input", t);
        size_t n = (size_t)rows * (size_t)per;
        if (n > p->ids_cap) {
            int32_t *q = realloc(p->ids, n * sizeof *q);
            if (!q) return herd_fail(err, HERD_ENOMEM, "out of memory for the rows of a batch");
            p->ids = q, p->ids_cap = n;
        }
        size_t k = 0;
        for (size_t i = 0; i < n; i++) /* others (pad slots, bad ids) are the layer's to check */
            if (ids[i] >= 0 && ids[i] < p->tables[t].rows) p->ids[k++] = ids[i];
        if (k > 1) qsort(p->ids, k, sizeof *p->ids, cmp_i32);
        if (!reserve_keys(p, (size_t)*nk + k)) return herd_fail(err, HERD_ENOMEM, "out of memory for the rows of a batch");
        for (size_t i = 0; i < k; i++)
            if (i == 0 || p->ids[i] != p->ids[i - 1])
                p->keys[(*nk)++] = p->tables[t].off + (int64_t)p->ids[i] * p->tables[t].dim;
    }
    return HERD_OK;
}

/* The floats of key's row (the table holding it; keys ascending from table *t on). */
static int64_t row_dim(const ps_state *p, int64_t key, int *t) {
    while (*t < p->n_tables - 1 && key >= p->tables[*t + 1].off) (*t)++;
    return p->tables[*t].dim;
}

herd_status herdi_ps_pull(ps_state *p, int64_t t, int exact, int full, int rows, herd_error *err) {
    float *params = herd_model_params(p->m, NULL);
    herd_comm_request *recv[64], *send[64];
    int64_t nk = 0;
    herd_status st = full ? HERD_OK : touched_keys(p, rows, &nk, err);
    if (st) return st;
    split_keys(p, nk);
    int posted = 0;
    for (int s = 0; s < p->servers && !st; s++) {
        int64_t k0 = p->first[s], k1 = p->first[s + 1], floats = full ? shard_n(p, s) : dense_of(p, s);
        int tb = 0;
        for (int64_t i = k0; i < k1; i++) floats += row_dim(p, p->keys[i], &tb);
        size_t req = (size_t)(PULL_HEADER + k1 - k0) * sizeof(int64_t);
        if (!grow(&p->send[s], req) || (!full && !grow(&p->back[s], (size_t)floats * sizeof(float) + 8))) {
            st = herd_fail(err, HERD_ENOMEM, "out of memory for a pull");
            break;
        }
        /* the receive is posted before the request, so the server's reply never waits on us */
        void *dst = full ? (void *)(params + p->lo[s]) : (void *)p->back[s].p;
        st = herd_comm_irecv(p->comm, dst, floats * (int64_t)sizeof(float), p->workers + s, TAG_PARAMS, &recv[s], err);
        if (st) break;
        int64_t h[PULL_HEADER] = {t, exact, full, k1 - k0};
        memcpy(p->send[s].p, h, sizeof h);
        if (k1 > k0) memcpy(p->send[s].p + sizeof h, p->keys + k0, (size_t)(k1 - k0) * sizeof(int64_t));
        st = herd_comm_isend(p->comm, p->send[s].p, (int64_t)req, p->workers + s, TAG_PULL, &send[s], err);
        posted = s + 1;
        double *ld = p->load + 3 * s;
        ld[0] += (double)req + (double)floats * sizeof(float);
        ld[1] += (double)(full ? rows_of(p, s) : k1 - k0);
        ld[2] += 1;
    }
    /* the first failure ends the job: the remaining requests are abandoned, not waited for */
    for (int s = 0; s < posted && !st; s++)
        if (!(st = herd_comm_wait(p->comm, send[s], err))) st = herd_comm_wait(p->comm, recv[s], err);
    if (st || full) return st;
    for (int s = 0; s < p->servers; s++) { /* dense part, then each row to its place */
        const float *src = (const float *)p->back[s].p;
        int64_t d = dense_of(p, s);
        memcpy(params + p->lo[s], src, (size_t)d * sizeof(float));
        src += d;
        int tb = 0;
        for (int64_t i = p->first[s]; i < p->first[s + 1]; i++) {
            int64_t dim = row_dim(p, p->keys[i], &tb);
            memcpy(params + p->keys[i], src, (size_t)dim * sizeof(float));
            src += dim;
        }
    }
    return HERD_OK;
}

herd_status herdi_ps_push(ps_state *p, int64_t t, int samples, const herd_sparse_grad *tables, int n_tables,
                    herd_error *err) {
    const float *grads = herd_model_grads(p->m);
    int64_t nk = 0;
    for (int k = 0; k < n_tables && samples > 0; k++) nk += tables[k].rows; /* a skipped step pushes no rows */
    if (!reserve_keys(p, (size_t)nk)) return herd_fail(err, HERD_ENOMEM, "out of memory for a push");
    nk = 0;
    for (int k = 0; k < n_tables && samples > 0; k++)
        for (int64_t r = 0; r < tables[k].rows; r++) {
            p->keys[nk] = p->tables[k].off + (int64_t)tables[k].ids[r] * tables[k].dim;
            p->vals[nk++] = tables[k].values + r * tables[k].dim;
        }
    split_keys(p, nk);
    herd_comm_request *req[64];
    herd_status st = HERD_OK;
    int posted = 0;
    for (int s = 0; s < p->servers && !st; s++) {
        int64_t k0 = p->first[s], k1 = p->first[s + 1], d = dense_of(p, s), floats = d;
        int tb = 0;
        for (int64_t i = k0; i < k1; i++) floats += row_dim(p, p->keys[i], &tb);
        size_t bytes = (size_t)(PUSH_HEADER + k1 - k0) * sizeof(int64_t) + (size_t)floats * sizeof(float);
        if (!grow(&p->send[s], bytes)) {
            st = herd_fail(err, HERD_ENOMEM, "out of memory for a push");
            break;
        }
        unsigned char *b = p->send[s].p;
        int64_t h[PUSH_HEADER] = {t, samples, k1 - k0};
        memcpy(b, h, sizeof h);
        b += sizeof h;
        if (k1 > k0) memcpy(b, p->keys + k0, (size_t)(k1 - k0) * sizeof(int64_t));
        b += (size_t)(k1 - k0) * sizeof(int64_t);
        memcpy(b, grads + p->lo[s], (size_t)d * sizeof(float));
        b += (size_t)d * sizeof(float);
        tb = 0;
        for (int64_t i = k0; i < k1; i++) {
            size_t rb = (size_t)row_dim(p, p->keys[i], &tb) * sizeof(float);
            memcpy(b, p->vals[i], rb);
            b += rb;
        }
        st = herd_comm_isend(p->comm, p->send[s].p, (int64_t)bytes, p->workers + s, TAG_PUSH, &req[s], err);
        if (!st) posted = s + 1;
        double *ld = p->load + 3 * s;
        ld[0] += (double)bytes, ld[1] += (double)(k1 - k0), ld[2] += 1;
    }
    for (int s = 0; s < posted && !st; s++) st = herd_comm_wait(p->comm, req[s], err);
    return st;
}

herd_status herdi_ps_done(ps_state *p, herd_error *err) {
    int64_t none = 0;
    herd_status st = HERD_OK;
    for (int s = 0; s < p->servers && !st; s++) {
        herd_comm_request *r;
        st = herd_comm_isend(p->comm, &none, sizeof none, p->workers + s, TAG_DONE, &r, err);
        if (!st) st = herd_comm_wait(p->comm, r, err);
    }
    return st;
}

/* Copies server s's state between buf (after the header) and the model and *st: to_buf = 1
 * packs it, 0 unpacks it. Layout: parameters, dense m, dense v, then per table piece its
 * optimizer's m and v rows (what exists). st's dense moments start at parameter dense_base, table
 * t's optimizer at row row_base[t] (a worker's are whole: 0 and NULL; a server's its own). */
static void state_copy(ps_state *p, int s, const ps_full_state *st, int64_t dense_base, const int64_t *row_base,
                       float *buf, int to_buf) {
    float *params = herd_model_params(p->m, NULL);
#define STATE_MOVE(ptr, count)                                                                 \
    do {                                                                                       \
        if (to_buf) memcpy(buf, (ptr), (size_t)(count) * sizeof(float));                      \
        else memcpy((ptr), buf, (size_t)(count) * sizeof(float));                              \
        buf += (count);                                                                        \
    } while (0)
    STATE_MOVE(params + p->lo[s], shard_n(p, s));
    int64_t d = dense_of(p, s);
    if (st->m) STATE_MOVE(st->m + (p->lo[s] - dense_base), d);
    if (st->v) STATE_MOVE(st->v + (p->lo[s] - dense_base), d);
    for (int t = 0; t < p->n_tables && st->tables; t++) {
        const ps_table *tb = &p->tables[t];
        herd_sparse_optimizer *o = &st->tables[t];
        int64_t a, b;
        if (!table_span(p, s, t, &a, &b)) continue;
        int64_t sd = herd_sparse_state_dim(o), nr = (b - a) / tb->dim;
        int64_t r0 = (a - tb->off) / tb->dim - (row_base ? row_base[t] : 0);
        if (o->m) STATE_MOVE(o->m + r0 * sd, nr * sd);
        if (o->v) STATE_MOVE(o->v + r0 * sd, nr * sd);
    }
#undef STATE_MOVE
}

herd_status herdi_ps_gather(ps_state *p, int64_t t, ps_full_state *st, herd_error *err) {
    if (p->n_tables && !st->tables) return herd_fail(err, HERD_EINTERNAL, "herdi_ps_gather without the tables' optimizers");
    herd_comm_request *recv[64], *send[64];
    int64_t msg[64];
    herd_status s2 = HERD_OK;
    int posted = 0;
    for (int s = 0; s < p->servers && !s2; s++) {
        size_t bytes = STATE_HEADER * sizeof(int64_t) +
                       (size_t)state_floats(p, s, st->m != NULL, st->v != NULL, st->tables) * sizeof(float);
        if (!grow(&p->back[s], bytes)) {
            s2 = herd_fail(err, HERD_ENOMEM, "out of memory for the servers' state");
            break;
        }
        if ((s2 = herd_comm_irecv(p->comm, p->back[s].p, (int64_t)bytes, p->workers + s, TAG_STATE_REPLY, &recv[s],
                                  err)))
            break;
        msg[s] = t;
        s2 = herd_comm_isend(p->comm, &msg[s], sizeof msg[s], p->workers + s, TAG_STATE, &send[s], err);
        posted = s + 1;
    }
    for (int s = 0; s < posted && !s2; s++)
        if (!(s2 = herd_comm_wait(p->comm, send[s], err))) s2 = herd_comm_wait(p->comm, recv[s], err);
    for (int s = 0; s < p->servers && !s2; s++) {
        int64_t h[STATE_HEADER];
        memcpy(h, p->back[s].p, sizeof h);
        if (h[0] != t) return herd_fail(err, HERD_EINTERNAL, "server %d sent the state of update %lld, not %lld", s,
                                        (long long)h[0], (long long)t);
        st->version = h[0], st->opt_t = h[1];
        state_copy(p, s, st, 0, NULL, (float *)(p->back[s].p + sizeof h), 0);
    }
    return s2;
}

herd_status herdi_ps_restore(ps_state *p, const ps_full_state *st, herd_error *err) {
    if (p->n_tables && !st->tables) return herd_fail(err, HERD_EINTERNAL, "herdi_ps_restore without the tables' optimizers");
    herd_status s2 = HERD_OK;
    for (int s = 0; s < p->servers && !s2; s++) {
        size_t bytes = STATE_HEADER * sizeof(int64_t) +
                       (size_t)state_floats(p, s, st->m != NULL, st->v != NULL, st->tables) * sizeof(float);
        if (!grow(&p->send[s], bytes)) return herd_fail(err, HERD_ENOMEM, "out of memory for the servers' state");
        int64_t h[STATE_HEADER] = {st->version, st->opt_t};
        memcpy(p->send[s].p, h, sizeof h);
        state_copy(p, s, st, 0, NULL, (float *)(p->send[s].p + sizeof h), 1);
        herd_comm_request *r;
        s2 = herd_comm_isend(p->comm, p->send[s].p, (int64_t)bytes, p->workers + s, TAG_RESTORE, &r, err);
        if (!s2) s2 = herd_comm_wait(p->comm, r, err);
    }
    return s2;
}

/* ---- the messages a server receives ---- */

/* keys[0..n) ascending, distinct, each a row start inside a piece: 0, or -1 naming the first
 * that is not in what; *floats = the rows' floats. */
static int check_keys(const ps_expect *e, const int64_t *keys, int64_t n, int64_t *floats, char *what, size_t size) {
    int q = 0;
    *floats = 0;
    for (int64_t i = 0; i < n; i++) {
        int64_t k = keys[i];
        if (i > 0 && k <= keys[i - 1]) {
            snprintf(what, size, "key %lld (%lld) does not follow %lld: keys must ascend", (long long)i, (long long)k,
                     (long long)keys[i - 1]);
            return -1;
        }
        while (q < e->pieces && k >= e->piece[q].hi) q++;
        if (q >= e->pieces || k < e->piece[q].lo || (k - e->piece[q].lo) % e->piece[q].dim) {
            snprintf(what, size, "key %lld (%lld) is not the start of a table row this server holds", (long long)i,
                     (long long)k);
            return -1;
        }
        *floats += e->piece[q].dim;
    }
    return 0;
}

herd_status herdi_ps_decode(int tag, const unsigned char *buf, int64_t bytes, const ps_expect *e, ps_message *out,
                      herd_error *err) {
    static const struct {
        int tag;
        ps_kind kind;
        const char *name;
        int64_t header; /* int64 words */
    } kinds[] = {{TAG_PULL, PS_PULL, "pull", PULL_HEADER},       {TAG_PUSH, PS_PUSH, "push", PUSH_HEADER},
                 {TAG_DONE, PS_DONE, "done", 1},                 {TAG_STATE, PS_STATE, "state", 1},
                 {TAG_RESTORE, PS_RESTORE, "restore", STATE_HEADER}};
    int k = -1;
    for (int i = 0; i < (int)(sizeof kinds / sizeof kinds[0]); i++)
        if (kinds[i].tag == tag) k = i;
    if (k < 0) return herd_fail(err, HERD_EFORMAT, "unexpected message tag %d (%lld bytes)", tag, (long long)bytes);
    const char *name = kinds[k].name;
    int64_t hb = kinds[k].header * (int64_t)sizeof(int64_t);
    if (bytes < hb)
        return herd_fail(err, HERD_EFORMAT, "%s message of %lld bytes, shorter than its %lld-byte header", name,
                         (long long)bytes, (long long)hb);
    memset(out, 0, sizeof *out);
    out->kind = kinds[k].kind;
    int64_t w[PULL_HEADER] = {0};
    memcpy(w, buf, (size_t)hb);
    const int64_t max_step = (int64_t)1 << 50; /* as checkpoints bound positions */
    int64_t want = hb, rows_floats = 0;
    char what[160];
    int64_t max_keys = 0;
    for (int q = 0; q < e->pieces; q++) max_keys += (e->piece[q].hi - e->piece[q].lo) / e->piece[q].dim;
    switch (out->kind) {
    case PS_PULL:
    case PS_PUSH: {
        int64_t nk = w[out->kind == PS_PULL ? 3 : 2];
        if (nk < 0 || nk > max_keys)
            return herd_fail(err, HERD_EFORMAT, "%s message names %lld rows, this server holds %lld", name,
                             (long long)nk, (long long)max_keys);
        if (bytes < hb + nk * (int64_t)sizeof(int64_t))
            return herd_fail(err, HERD_EFORMAT, "%s message of %lld bytes cannot hold its %lld keys", name,
                             (long long)bytes, (long long)nk);
        out->keys = nk;
        out->key = (const int64_t *)(buf + hb); /* the buffer is malloc'ed and the header 8-byte words: aligned */
        if (check_keys(e, out->key, nk, &rows_floats, what, sizeof what))
            return herd_fail(err, HERD_EFORMAT, "%s message: %s", name, what);
        want = hb + nk * (int64_t)sizeof(int64_t);
        if (out->kind == PS_PUSH) want += (e->dense_n + rows_floats) * (int64_t)sizeof(float);
        break;
    }
    case PS_RESTORE: want = hb + e->state_floats * (int64_t)sizeof(float); break;
    default: break;
    }
    if (bytes != want)
        return herd_fail(err, HERD_EFORMAT, "%s message of %lld bytes, expected %lld", name, (long long)bytes,
                         (long long)want);
    switch (out->kind) {
    case PS_PULL:
        if (w[0] < 0 || w[0] > max_step || (w[1] != 0 && w[1] != 1) || (w[2] != 0 && w[2] != 1) ||
            (w[2] && out->keys))
            return herd_fail(err, HERD_EFORMAT, "pull for step %lld (exact %lld, full %lld, %lld keys): not a step in "
                             "0..2^50, 0 or 1 twice, and no keys with full", (long long)w[0], (long long)w[1],
                             (long long)w[2], (long long)out->keys);
        out->step = w[0], out->exact = (int)w[1], out->full = (int)w[2];
        return HERD_OK;
    case PS_PUSH:
        if (w[1] < 0 || w[1] > INT32_MAX)
            return herd_fail(err, HERD_EFORMAT, "push of %lld samples: not a count in 0..2^31-1", (long long)w[1]);
        if (e->slots > 0 ? w[0] < e->version || w[0] >= e->version + e->slots : w[0] < 0 || w[0] > max_step)
            return herd_fail(err, HERD_EFORMAT, "push for step %lld outside the window [%lld, %lld)", (long long)w[0],
                             (long long)(e->slots > 0 ? e->version : 0),
                             (long long)(e->slots > 0 ? e->version + e->slots : max_step + 1));
        out->step = w[0], out->samples = w[1];
        out->dense = (const float *)(out->key + out->keys);
        out->rows = out->dense + e->dense_n;
        return HERD_OK;
    case PS_DONE:
        if (w[0] != 0) return herd_fail(err, HERD_EFORMAT, "done message carries %lld, expected 0", (long long)w[0]);
        return HERD_OK;
    case PS_STATE:
        if (w[0] < 0 || w[0] > max_step)
            return herd_fail(err, HERD_EFORMAT, "state request for update %lld: not in 0..2^50", (long long)w[0]);
        out->step = w[0];
        return HERD_OK;
    case PS_RESTORE:
        if (w[0] < 0 || w[0] > max_step || w[1] < 0 || w[1] > w[0])
            return herd_fail(err, HERD_EFORMAT, "restore of update %lld with %lld optimizer steps: not 0 <= steps <= "
                             "update <= 2^50", (long long)w[0], (long long)w[1]);
        out->step = w[0], out->opt_t = w[1];
        out->dense = (const float *)(buf + hb);
        return HERD_OK;
    }
    return herd_fail(err, HERD_EFORMAT, "unexpected message tag %d", tag);
}

/* ---- server ---- */

static herd_status send_reply(ps_state *p, int worker, int tag, size_t bytes, herd_error *err) {
    herd_comm_request *r;
    herd_status st = herd_comm_isend(p->comm, p->reply.p, (int64_t)bytes, worker, tag, &r, err);
    return st ? st : herd_comm_wait(p->comm, r, err); /* the shard changes with the next update */
}

/* A pull: the dense part and the rows asked for (full: the whole shard). */
static herd_status reply_params(ps_state *p, int worker, int full, const int64_t *keys, int64_t nk, herd_error *err) {
    const float *params = herd_model_params(p->m, NULL);
    int64_t lo = p->lo[p->server_index], floats = full ? shard_n(p, p->server_index) : p->dense_n;
    int q = 0;
    for (int64_t i = 0; i < nk; i++) {
        while (keys[i] >= p->piece[q].hi) q++;
        floats += p->piece[q].dim;
    }
    if (!grow(&p->reply, (size_t)floats * sizeof(float) + 8)) /* never NULL, even for nothing */
        return herd_fail(err, HERD_ENOMEM, "server rank %d: out of memory for a reply", p->rank);
    float *b = (float *)p->reply.p;
    memcpy(b, params + lo, (size_t)(full ? floats : p->dense_n) * sizeof(float));
    b += p->dense_n;
    q = 0;
    for (int64_t i = 0; i < nk && !full; i++) {
        while (keys[i] >= p->piece[q].hi) q++;
        memcpy(b, params + keys[i], (size_t)p->piece[q].dim * sizeof(float));
        b += p->piece[q].dim;
    }
    return send_reply(p, worker, TAG_PARAMS, (size_t)floats * sizeof(float), err);
}

static int has_moment(const herd_optimizer *o, int v) { return v ? o->v != NULL : o->m != NULL; }

/* This server's state as state_copy reads it: its dense moments (from parameter lo) and, indexed
 * by table, its pieces' optimizers (from their first rows, p->row_base). */
static void server_view(ps_state *p, ps_full_state *st, herd_sparse_optimizer *tables) {
    memset(st, 0, sizeof *st);
    st->m = has_moment(&p->opt, 0) ? p->opt.m : NULL;
    st->v = has_moment(&p->opt, 1) ? p->opt.v : NULL;
    for (int q = 0; q < p->pieces; q++) {
        const ps_table *tb = &p->tables[p->piece_table[q]];
        tables[p->piece_table[q]] = p->sopt[q];
        p->row_base[p->piece_table[q]] = (p->piece[q].lo - tb->off) / tb->dim;
    }
    st->tables = tables;
}

static herd_status reply_state(ps_state *p, int worker, herd_sparse_optimizer *view, herd_error *err) {
    ps_full_state st;
    server_view(p, &st, view);
    int64_t floats = state_floats(p, p->server_index, st.m != NULL, st.v != NULL, view);
    size_t bytes = STATE_HEADER * sizeof(int64_t) + (size_t)floats * sizeof(float);
    if (!grow(&p->reply, bytes)) return herd_fail(err, HERD_ENOMEM, "server rank %d: out of memory for its state", p->rank);
    int64_t h[STATE_HEADER] = {p->version, p->opt.t};
    memcpy(p->reply.p, h, sizeof h);
    state_copy(p, p->server_index, &st, p->lo[p->server_index], p->row_base, (float *)(p->reply.p + sizeof h), 1);
    return send_reply(p, worker, TAG_STATE_REPLY, bytes, err);
}

/* A pull for step t may be answered once updates up to t-K-1 (exact: t-1) are applied. */
static int pull_ready(const ps_state *p, int64_t t, int exact) {
    if (!p->restored) return 0;
    if (exact) return p->version >= t;
    return p->staleness < 0 || p->version >= t - p->staleness;
}

static herd_status serve_pending(ps_state *p, herd_sparse_optimizer *view, herd_error *err) {
    for (int w = 0; w < p->workers; w++)
        if (p->pending[w] >= 0 && pull_ready(p, p->pending[w], p->pending_exact[w])) {
            p->pending[w] = -1;
            herd_status st = p->pending_kind[w] == PS_STATE
                                 ? reply_state(p, w, view, err)
                                 : reply_params(p, w, p->pending_full[w], p->pkeys[w], p->pkeys_n[w], err);
            if (st) return st;
        }
    return HERD_OK;
}

/* Rows (local ids, values times `scale`) of piece q into slot list r. */
static int slot_append(slot_rows *r, const ps_piece *pc, const int64_t *keys, const float *vals, int64_t n, float scale) {
    if (r->n + n > r->cap) {
        int64_t cap = (r->n + n) * 2;
        int32_t *i = realloc(r->ids, (size_t)cap * sizeof *i);
        if (i) r->ids = i;
        float *v = realloc(r->vals, (size_t)cap * (size_t)pc->dim * sizeof *v);
        if (v) r->vals = v;
        if (!i || !v) return 0;
        r->cap = cap;
    }
    for (int64_t k = 0; k < n; k++) {
        r->ids[r->n] = (int32_t)((keys[k] - pc->lo) / pc->dim);
        float *o = r->vals + r->n * pc->dim;
        for (int64_t d = 0; d < pc->dim; d++) o[d] = scale * vals[k * pc->dim + d];
        r->n++;
    }
    return 1;
}

static int cmp_u64(const void *a, const void *b) {
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return (x > y) - (x < y);
}

/* The slot's rows of one piece summed per id (ids ascending, each id's terms in arrival order),
 * into p->cids / p->csums; the count of distinct ids, or -1 out of memory. */
static int64_t coalesce(ps_state *p, const slot_rows *r, int64_t dim) {
    if (r->n > p->ccap || dim > p->cdim) {
        int64_t cap = r->n > p->ccap ? r->n : p->ccap, cd = dim > p->cdim ? dim : p->cdim;
        if (cap < 1) cap = 1;
        free(p->ckeys), free(p->cids), free(p->csums);
        p->ckeys = malloc((size_t)cap * sizeof *p->ckeys);
        p->cids = malloc((size_t)cap * sizeof *p->cids);
        p->csums = malloc((size_t)cap * (size_t)cd * sizeof *p->csums);
        if (!p->ckeys || !p->cids || !p->csums) {
            p->ccap = p->cdim = 0;
            return -1;
        }
        p->ccap = cap, p->cdim = cd;
    }
    for (int64_t i = 0; i < r->n; i++) p->ckeys[i] = (uint64_t)(uint32_t)r->ids[i] << 32 | (uint64_t)i;
    if (r->n > 1) qsort(p->ckeys, (size_t)r->n, sizeof *p->ckeys, cmp_u64);
    int64_t out = -1;
    for (int64_t i = 0; i < r->n; i++) {
        int32_t id = (int32_t)(p->ckeys[i] >> 32);
        const float *v = r->vals + (int64_t)(p->ckeys[i] & 0xffffffffu) * dim;
        if (out < 0 || p->cids[out] != id) {
            p->cids[++out] = id;
            memcpy(p->csums + out * dim, v, (size_t)dim * sizeof(float));
        } else {
            float *s = p->csums + out * dim;
            for (int64_t d = 0; d < dim; d++) s[d] += v[d];
        }
    }
    return out + 1;
}

/* The pushed rows of message m split by piece: [*k0, *k1) are piece q's keys, *v0 their first float. */
static void piece_keys(const ps_state *p, const ps_message *m, int q, int64_t *k0, int64_t *k1, int64_t *v0) {
    int64_t i = 0, v = 0;
    for (int r = 0; r < q; r++)
        while (i < m->keys && m->key[i] < p->piece[r].hi) v += p->piece[r].dim, i++;
    *k0 = i, *v0 = v;
    while (i < m->keys && m->key[i] < p->piece[q].hi) i++;
    *k1 = i;
}

/* An asynchronous update of the tables' rows: each piece's pushed rows as they came (distinct). */
static herd_status apply_pieces_async(ps_state *p, const ps_message *m, float lr, herd_error *err) {
    for (int q = 0; q < p->pieces; q++) {
        int64_t k0, k1, v0;
        piece_keys(p, m, q, &k0, &k1, &v0);
        if (k1 - k0 > p->acap) {
            int32_t *a = realloc(p->aids, (size_t)(k1 - k0) * sizeof *a);
            if (!a) return herd_fail(err, HERD_ENOMEM, "server rank %d: out of memory for a push's rows", p->rank);
            p->aids = a, p->acap = k1 - k0;
        }
        for (int64_t i = k0; i < k1; i++) p->aids[i - k0] = (int32_t)((m->key[i] - p->piece[q].lo) / p->piece[q].dim);
        herd_sparse_optimizer_step(&p->sopt[q], herd_model_params(p->m, NULL) + p->piece[q].lo, p->aids, m->rows + v0,
                                   k1 - k0, lr, NULL);
    }
    return HERD_OK;
}

/* Tables still pending from the seed: the server writes the rows of its key range alone (the
 * whole tables' values there); the rest of the model's tables stays untouched pages. */
static herd_status server_tables(ps_state *p, herd_error *err) {
    if (!herd_model_tables_pending(p->m)) return HERD_OK;
    int64_t n;
    float *params = herd_model_params_ready(p->m, &n);
    for (int q = 0; q < p->pieces; q++) {
        const ps_table *tb = &p->tables[p->piece_table[q]];
        herd_status st = herd_model_table_init_rows(p->m, tb->param, (p->piece[q].lo - tb->off) / tb->dim,
                                                    (p->piece[q].hi - tb->off) / tb->dim, params + p->piece[q].lo, err);
        if (st) return st;
    }
    herd_model_tables_elsewhere(p->m);
    return HERD_OK;
}

herd_status herdi_ps_serve(ps_state *p, const herd_optim_config *oc, herd_sparse_opt_kind sparse,
                     const herd_schedule *sched, const herd_schedule *sparse_sched, int resume, herd_error *err) {
    int64_t n = shard_n(p, p->server_index), dn = p->dense_n;
    herd_status st = server_tables(p, err);
    if (!st) st = herd_optimizer_init(&p->opt, oc, dn, err);
    for (int q = 0; q < p->pieces && !st; q++)
        st = herd_sparse_optimizer_init(&p->sopt[q], sparse, (p->piece[q].hi - p->piece[q].lo) / p->piece[q].dim,
                                        p->piece[q].dim, err);
    herd_sparse_optimizer *view = calloc((size_t)(p->n_tables ? p->n_tables : 1), sizeof *view);
    if (!st && !view) st = herd_fail(err, HERD_ENOMEM, "out of memory");
    if (st) {
        free(view);
        return st;
    }
    p->restored = !resume;
    /* the optimizers work on the shard: give them shard-relative pointers */
    float *params = herd_model_params(p->m, NULL), *shard = params + p->lo[p->server_index];
    int slots = p->staleness >= 0 ? p->staleness + 2 : 1;
    ps_full_state sv;
    server_view(p, &sv, view);
    ps_expect expect = {n, 0, p->staleness >= 0 ? slots : 0, dn, p->pieces, p->piece,
                        state_floats(p, p->server_index, sv.m != NULL, sv.v != NULL, view)};
    int64_t max_keys = 0;
    for (int q = 0; q < p->pieces; q++) max_keys += (p->piece[q].hi - p->piece[q].lo) / p->piece[q].dim;
    int64_t cap = (int64_t)sizeof(int64_t) * (PULL_HEADER + max_keys) + n * (int64_t)sizeof(float);
    if (cap < (int64_t)(STATE_HEADER * sizeof(int64_t)) + expect.state_floats * (int64_t)sizeof(float))
        cap = (int64_t)(STATE_HEADER * sizeof(int64_t)) + expect.state_floats * (int64_t)sizeof(float);
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
            if (!p->restored) lag = 0; /* a resumed run: the first worker brings the state */
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
        if (bytes < 0 || bytes > cap) {
            st = herd_fail(err, HERD_EFORMAT, "server rank %d: a message of %lld bytes (tag %d) from rank %d is larger "
                           "than any message of the protocol (%lld bytes)", p->rank, (long long)bytes, tag, src,
                           (long long)cap);
            break;
        }
        if (!grow(&p->recv, (size_t)(bytes ? bytes : 8))) {
            st = herd_fail(err, HERD_ENOMEM, "server rank %d: out of memory for a message of %lld bytes", p->rank,
                           (long long)bytes);
            break;
        }
        herd_comm_request *r;
        if ((st = herd_comm_irecv(p->comm, p->recv.p, bytes, src, tag, &r, err)) || (st = herd_comm_wait(p->comm, r, err)))
            break;
        expect.version = p->version;
        ps_message msg;
        if ((st = herdi_ps_decode(tag, p->recv.p, bytes, &expect, &msg, err))) {
            herd_fail_prefix(err, "server rank %d: from rank %d", p->rank, src);
            break;
        }
        if (msg.kind == PS_PULL || msg.kind == PS_STATE) {
            int exact = msg.kind == PS_STATE ? 1 : msg.exact;
            if (pull_ready(p, msg.step, exact)) {
                st = msg.kind == PS_STATE ? reply_state(p, src, view, err)
                                          : reply_params(p, src, msg.full, msg.key, msg.keys, err);
            } else {
                if (msg.keys > p->pkeys_cap[src]) {
                    int64_t *k = realloc(p->pkeys[src], (size_t)msg.keys * sizeof *k);
                    if (!k) {
                        st = herd_fail(err, HERD_ENOMEM, "server rank %d: out of memory", p->rank);
                        break;
                    }
                    p->pkeys[src] = k, p->pkeys_cap[src] = msg.keys;
                }
                if (msg.keys) memcpy(p->pkeys[src], msg.key, (size_t)msg.keys * sizeof(int64_t));
                p->pkeys_n[src] = msg.keys;
                p->pending[src] = msg.step, p->pending_kind[src] = (char)msg.kind;
                p->pending_exact[src] = (char)exact, p->pending_full[src] = (char)msg.full;
            }
        } else if (msg.kind == PS_RESTORE) {
            if (p->restored || src != 0) {
                st = herd_fail(err, HERD_EFORMAT, "server rank %d: a state to restore from rank %d %s", p->rank, src,
                               p->restored ? "after training started" : "(only the first worker brings it)");
                break;
            }
            state_copy(p, p->server_index, &sv, p->lo[p->server_index], p->row_base, (float *)msg.dense, 0);
            p->version = msg.step, p->opt.t = msg.opt_t;
            for (int q = 0; q < p->pieces; q++) p->sopt[q].t = msg.opt_t;
            p->restored = 1;
            st = serve_pending(p, view, err);
        } else if (msg.kind == PS_PUSH) {
            if (!p->restored) {
                st = herd_fail(err, HERD_EFORMAT, "server rank %d: a push from rank %d before the resumed state came",
                               p->rank, src);
                break;
            }
            p->last_push[src] = msg.step;
            if (p->staleness < 0) { /* asynchronous: every worker's gradient is an update of its own */
                float lr = herd_schedule_lr(sched, p->version);
                if (msg.samples > 0) {
                    p->opt.t++;
                    herd_optimizer_update_range(&p->opt, shard, msg.dense, 0, dn, lr, p->opt.t);
                    st = apply_pieces_async(p, &msg, herd_schedule_lr(sparse_sched, p->version), err);
                }
                p->version++;
                herd_fault_step(p->rank, p->version); /* tests only */
            } else {
                int k = (int)(msg.step % slots);
                float *acc = p->acc + (size_t)k * (size_t)dn;
                for (int64_t i = 0; i < dn; i++) acc[i] += (float)msg.samples * msg.dense[i];
                for (int q = 0; q < p->pieces && !st; q++) {
                    int64_t k0, k1, v0;
                    piece_keys(p, &msg, q, &k0, &k1, &v0);
                    if (!slot_append(&p->srows[k * p->pieces + q], &p->piece[q], msg.key + k0, msg.rows + v0, k1 - k0,
                                     (float)msg.samples))
                        st = herd_fail(err, HERD_ENOMEM, "server rank %d: out of memory for pushed rows", p->rank);
                }
                p->acc_samples[k] += (double)msg.samples;
                p->acc_count[k]++;
                /* in step order: update v once all workers pushed step v */
                for (int kk = (int)(p->version % slots); !st && p->acc_count[kk] == p->workers;
                     kk = (int)(p->version % slots)) {
                    float *a = p->acc + (size_t)kk * (size_t)dn;
                    if (p->acc_samples[kk] > 0) { /* 0: every worker skipped this step (--on-nan skip-step) */
                        float inv = (float)(1.0 / p->acc_samples[kk]);
                        for (int64_t i = 0; i < dn; i++) a[i] *= inv;
                        float lr = herd_schedule_lr(sched, p->version);
                        float sparse_lr = herd_schedule_lr(sparse_sched, p->version);
                        p->opt.t++;
                        herd_optimizer_update_range(&p->opt, shard, a, 0, dn, lr, p->opt.t);
                        for (int q = 0; q < p->pieces && !st; q++) { /* the rows pushed, summed per row */
                            slot_rows *sr = &p->srows[kk * p->pieces + q];
                            int64_t rows = coalesce(p, sr, p->piece[q].dim);
                            if (rows < 0) {
                                st = herd_fail(err, HERD_ENOMEM, "server rank %d: out of memory for pushed rows", p->rank);
                                break;
                            }
                            for (int64_t i = 0; i < rows * p->piece[q].dim; i++) p->csums[i] *= inv;
                            herd_sparse_optimizer_step(&p->sopt[q], params + p->piece[q].lo, p->cids, p->csums, rows,
                                                       sparse_lr, NULL);
                        }
                    }
                    for (int q = 0; q < p->pieces; q++) p->srows[kk * p->pieces + q].n = 0;
                    p->version++;
                    herd_fault_step(p->rank, p->version); /* tests only */
                    memset(a, 0, (size_t)dn * sizeof(float));
                    p->acc_samples[kk] = 0;
                    p->acc_count[kk] = 0;
                }
            }
            if (!st) st = serve_pending(p, view, err);
        } else {
            p->done_workers += !p->done[src];
            p->done[src] = 1;
        }
    }
    herd_comm_set_waiting(p->comm, -1);
    free(view);
    return st;
}

/* ---- the strategy: workers compute gradients, servers (herd_train_serve) apply them ---- */

typedef struct ps_strategy {
    ps_state *ps;
    herd_comm *workers; /* the workers' own communicator, for metrics */
    int64_t step;       /* the step in progress */
} ps_strategy;

static herd_status ps_begin_step(herd_strategy *s, int64_t t, herd_error *err) {
    (void)err;
    ((ps_strategy *)s->impl)->step = t; /* the pull waits for the part's rows (compute) */
    return HERD_OK;
}

static herd_status ps_compute(herd_strategy *s, const herd_strategy_part *p, float *loss, herd_metrics *acc,
                              herd_error *err) {
    ps_strategy *x = s->impl;
    /* the dense parameters and the rows of the loaded samples, as of the step's allowed staleness */
    herd_status st = herdi_ps_pull(x->ps, x->step, 0, 0, p->count, err);
    /* a worker pushes its local mean; the servers weigh workers by their sample counts */
    return st ? st : herdi_data_parallel_compute(s, p, 1.0f, loss, acc, err);
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
    herd_status st = herdi_ps_push(x->ps, x->step, u->skipped ? 0 : u->samples, u->tables, u->n_tables, err);
    double t1 = herd_now();
    s->wait_seconds += t1 - t0;
    herd_trace_add(s->trace, "push gradients", "comm", HERD_TRACE_COMM, t0, t1);
    return st;
}

static herd_status ps_sync_model(herd_strategy *s, int64_t t, herd_error *err) {
    return herdi_ps_pull(((ps_strategy *)s->impl)->ps, t, 1, 1, 0, err);
}

/* The state after the step just pushed (update step + 1: this worker has not pushed the next,
 * so no server is past it) onto the writer, the first worker. */
static herd_status ps_gather_state(herd_strategy *s, herd_strategy_state *state, herd_error *err) {
    ps_strategy *x = s->impl;
    if (!herd_strategy_writer(s)) return HERD_OK;
    ps_full_state st = {state->m, state->v, state->tables, 0, 0};
    herd_status e = herdi_ps_gather(x->ps, x->step + 1, &st, err);
    if (!e) state->opt_t = st.opt_t;
    return e;
}

/* A resumed state (loaded by every worker) to the servers, from the first worker. */
static herd_status ps_restore_state(herd_strategy *s, const herd_strategy_state *state, int64_t step,
                                    herd_error *err) {
    ps_strategy *x = s->impl;
    if (!herd_strategy_writer(s)) return HERD_OK;
    ps_full_state st = {state->m, state->v, state->tables, step, state->opt_t};
    return herdi_ps_restore(x->ps, &st, err);
}

static herd_status ps_finish(herd_strategy *s, herd_error *err) { return herdi_ps_done(((ps_strategy *)s->impl)->ps, err); }

static herd_status ps_server_load(herd_strategy *s, double *load, int max_servers, int *servers, herd_error *err) {
    ps_state *ps = ((ps_strategy *)s->impl)->ps;
    *servers = herdi_ps_servers(ps);
    if (*servers > max_servers) return herd_fail(err, HERD_EARG, "%d servers do not fit %d", *servers, max_servers);
    herdi_ps_load(ps, load);
    return herd_strategy_reduce(s, load, 3 * *servers, err); /* summed over the workers */
}

static void ps_strategy_destroy(herd_strategy *s) {
    ps_strategy *x = s->impl;
    if (!x) return;
    herdi_ps_destroy(x->ps);
    herd_comm_close(x->workers);
    free(x);
}

static const herd_strategy_ops ps_ops = {
    .name = "parameter server",
    .parts = herdi_data_parallel_parts, /* worker w computes rows [w*B/W, (w+1)*B/W) */
    .part = herdi_data_parallel_part,
    .begin_step = ps_begin_step,
    .compute = ps_compute,
    .after_backward = ps_after_backward,
    .grad_sq = ps_grad_sq,
    .apply = ps_apply,
    .sync_model = ps_sync_model,
    .gather_state = ps_gather_state,
    .restore_state = ps_restore_state,
    .server_load = ps_server_load,
    .finish = ps_finish,
    .destroy = ps_strategy_destroy,
};

herd_status herdi_param_server_layout(const herd_strategy_config *cfg, int world, int *groups, int *reuse, herd_error *err) {
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

herd_status herdi_param_server_setup(herd_strategy *s, herd_error *err) {
    int groups, reuse;
    herd_status st = herdi_param_server_layout(&s->cfg, herd_comm_size(s->comm), &groups, &reuse, err);
    if (st) return st;
    ps_strategy *x = calloc(1, sizeof *x);
    if (!x) return herd_fail(err, HERD_ENOMEM, "out of memory");
    s->ops = &ps_ops, s->impl = x;
    if ((st = herdi_ps_create(&x->ps, s->comm, s->m, s->cfg.servers, s->cfg.staleness, err)) ||
        (st = herd_comm_split(s->comm, herdi_ps_is_server(x->ps), &x->workers, err))) {
        ps_strategy_destroy(s);
        s->ops = NULL, s->impl = NULL;
        return st;
    }
    s->metrics = x->workers;
    s->rank = s->eval_rank = herd_comm_rank(x->workers);
    s->world = s->eval_world = herd_comm_size(x->workers);
    s->update_lo = s->update_hi = 0; /* the servers keep the optimizer state and apply the updates */
    s->remote_state = 1;
    s->serves = herdi_ps_is_server(x->ps);
    return HERD_OK;
}

herd_status herd_strategy_serve(herd_strategy *s, const herd_optim_config *oc, herd_sparse_opt_kind sparse,
                                const herd_schedule *sched, const herd_schedule *sparse_sched, int resume,
                                herd_error *err) {
    if (!s->serves) return herd_fail(err, HERD_EINTERNAL, "serve called on a worker");
    return herdi_ps_serve(((ps_strategy *)s->impl)->ps, oc, sparse, sched, sparse_sched, resume, err);
}
