/* Embedding tables sharded across data-parallel ranks (embedding_shard.h). Messages are raw bytes
 * through herd_comm_alltoallv: a count per peer (int64), then int32 ids, float rows, or gradient
 * records (int32 group, int32 id, dim floats). Each rank's parts go to a peer in its own order,
 * so an owner reads the records of group 0, 1, ... in that order and its sums follow it. */
#include "dist/embedding_shard.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dist/sparse_exchange.h"
#include "optim/optim.h"

typedef struct group_rows { /* one part's summed gradient rows of one table, by table id */
    int64_t n, cap;
    int32_t *ids;
    float *vals;
} group_rows;

typedef struct shard_table {
    herd_sparse_table t;
    const char *name;
    int64_t *lo, *hi; /* per rank */
    float *rows;      /* this rank's rows: hi - lo of them */
    int32_t *uniq;    /* the part being computed: its distinct ids, ascending */
    int64_t n_uniq, uniq_cap;
    group_rows *groups;    /* per part of this rank */
    int32_t *out_ids;      /* the exchange's result: this rank's rows, relative to lo */
    float *out_vals;
    int64_t out_n, out_cap;
} shard_table;

struct herd_embedding_shard {
    herd_strategy *s;
    herd_comm *c;
    herd_model *m;
    int tables, world, rank, my_groups, whole; /* whole: the model's tables hold every row */
    shard_table *tab;
    unsigned char *send, *recv;
    size_t send_cap, recv_cap;
    int64_t *sbytes, *rbytes, *scount, *rcount; /* per rank */
    uint64_t *keys;
    size_t keys_cap;
    double sent, received;
    int64_t steps;
    int64_t piece_floats; /* the most a gather to one rank moves in one message */
};

static const char *const plan_names[] = {"auto", "table", "row"};

int herd_shard_plan_parse(const char *name, herd_shard_plan *out) {
    for (int k = 0; k < 3; k++)
        if (name && !strcmp(name, plan_names[k])) {
            *out = (herd_shard_plan)k;
            return 1;
        }
    return 0;
}

const char *herd_shard_plan_name(herd_shard_plan plan) { return plan_names[plan]; }

herd_status herd_shard_plan_make(herd_model *m, int world, herd_shard_plan plan, herd_shard_plan *chosen,
                                 int64_t *lo_hi, char *why, size_t why_size, herd_error *err) {
    int n = herd_model_sparse_count(m);
    if (!n) return herd_fail(err, HERD_EARG, "--embedding-shard: the model has no embedding table to shard");
    double *load = calloc((size_t)world, sizeof *load), total = 0;
    int *order = malloc((size_t)n * sizeof *order);
    if (!load || !order) {
        free(load), free(order);
        return herd_fail(err, HERD_ENOMEM, "out of memory for the embedding shard plan");
    }
    herd_sparse_table t[2];
    for (int k = 0; k < n; k++) { /* largest first, ties in table order: insertion sort */
        herd_model_sparse_table(m, k, &t[0]);
        total += (double)t[0].rows * (double)t[0].dim * 4;
        int at = k;
        for (; at > 0; at--) {
            herd_model_sparse_table(m, order[at - 1], &t[1]);
            if (t[1].rows * t[1].dim >= t[0].rows * t[0].dim) break;
            order[at] = order[at - 1];
        }
        order[at] = k;
    }
    for (int i = 0; i < n; i++) { /* table-wise: each on the least loaded rank (the lowest of equals) */
        int k = order[i], r = 0;
        herd_model_sparse_table(m, k, &t[0]);
        for (int q = 1; q < world; q++) r = load[q] < load[r] ? q : r;
        load[r] += (double)t[0].rows * (double)t[0].dim * 4;
        for (int q = 0; q < world; q++)
            lo_hi[((size_t)k * (size_t)world + (size_t)q) * 2] = 0,
                                                         lo_hi[((size_t)k * (size_t)world + (size_t)q) * 2 + 1] =
                                                             q == r ? t[0].rows : 0;
    }
    int most = 0;
    for (int q = 1; q < world; q++) most = load[q] > load[most] ? q : most;
    double even = total / world, over = even > 0 ? load[most] / even : 1;
    if (why_size) why[0] = 0;
    *chosen = plan;
    if (plan == HERD_SHARD_AUTO) {
        *chosen = over <= 1.05 ? HERD_SHARD_TABLE : HERD_SHARD_ROW;
        snprintf(why, why_size, "auto: table-wise would put %.0f bytes on rank %d, %.0f%% of an even share%s",
                 load[most], most, 100 * over,
                 *chosen == HERD_SHARD_TABLE ? ", within 5%" : ", more than 5% over: row-wise");
    }
    if (*chosen == HERD_SHARD_ROW)
        for (int k = 0; k < n; k++) {
            herd_model_sparse_table(m, k, &t[0]);
            for (int q = 0; q < world; q++) {
                lo_hi[((size_t)k * (size_t)world + (size_t)q) * 2] = t[0].rows * q / world;
                lo_hi[((size_t)k * (size_t)world + (size_t)q) * 2 + 1] = t[0].rows * (q + 1) / world;
            }
        }
    free(load), free(order);
    return HERD_OK;
}

void herd_embedding_shard_destroy(herd_embedding_shard *x) {
    if (!x) return;
    for (int k = 0; x->tab && k < x->tables; k++) {
        shard_table *st = &x->tab[k];
        free(st->lo), free(st->hi);
        herd_aligned_free(st->rows);
        free(st->uniq), free(st->out_ids), free(st->out_vals);
        for (int g = 0; st->groups && g < x->my_groups; g++) free(st->groups[g].ids), free(st->groups[g].vals);
        free(st->groups);
    }
    free(x->tab);
    free(x->send), free(x->recv);
    free(x->sbytes), free(x->rbytes), free(x->scount), free(x->rcount);
    free(x->keys);
    free(x);
}

static float *model_table(herd_embedding_shard *x, const shard_table *st) {
    return herd_model_params(x->m, NULL) + herd_model_param(x->m, st->t.param)->offset;
}

void herd_embedding_shard_reload(herd_embedding_shard *x) {
    for (int k = 0; k < x->tables; k++) {
        shard_table *st = &x->tab[k];
        int64_t lo = st->lo[x->rank], hi = st->hi[x->rank];
        memcpy(st->rows, model_table(x, st) + lo * st->t.dim, (size_t)((hi - lo) * st->t.dim) * sizeof(float));
    }
    x->whole = 1; /* given back at the next lookup */
}

herd_status herd_embedding_shard_create(herd_embedding_shard **out, herd_strategy *s, herd_model *m,
                                        herd_shard_plan plan, char *note, size_t note_size, herd_error *err) {
    *out = NULL;
    if (strcmp(s->ops->name, "data parallel"))
        return herd_fail(err, HERD_EARG, "--embedding-shard shards tables across data-parallel ranks, not under %s "
                         "training: use --strategy dp", s->ops->name);
    int n = herd_model_sparse_count(m);
    herd_sparse_table a, b;
    for (int k = 0; k < n; k++) {
        herd_model_sparse_table(m, k, &a);
        if (a.input < 0)
            return herd_fail(err, HERD_EARG, "--embedding-shard: table '%s' reads ids the model computes, not an input",
                             herd_model_param(m, a.param)->name);
    }
    for (int k = 0; k < n; k++)
        for (int j = 0; j < k; j++) {
            herd_model_sparse_table(m, k, &a), herd_model_sparse_table(m, j, &b);
            if (a.input == b.input)
                return herd_fail(err, HERD_EARG, "--embedding-shard: tables '%s' and '%s' read the same input; "
                                 "sharding needs one table an input", herd_model_param(m, b.param)->name,
                                 herd_model_param(m, a.param)->name);
        }
    herd_embedding_shard *x = calloc(1, sizeof *x);
    int64_t *lo_hi = n ? malloc((size_t)n * (size_t)s->world * 2 * sizeof *lo_hi) : NULL;
    if (!x || (n && !lo_hi)) {
        free(x), free(lo_hi);
        return herd_fail(err, HERD_ENOMEM, "out of memory for the embedding shards");
    }
    x->s = s, x->c = s->comm, x->m = m, x->tables = n, x->world = s->world, x->rank = s->rank;
    x->my_groups = herd_strategy_parts(s);
    x->piece_floats = (int64_t)1 << 26; /* 256 MiB: well under MPI's 2^31 bytes a message */
    herd_shard_plan chosen;
    char why[256];
    herd_status st = herd_shard_plan_make(m, x->world, plan, &chosen, lo_hi, why, sizeof why, err);
    if (st) goto fail;
    size_t w = (size_t)x->world;
    x->tab = calloc((size_t)n, sizeof *x->tab);
    x->sbytes = malloc(w * sizeof *x->sbytes), x->rbytes = malloc(w * sizeof *x->rbytes);
    x->scount = malloc(w * sizeof *x->scount), x->rcount = malloc(w * sizeof *x->rcount);
    if (!x->tab || !x->sbytes || !x->rbytes || !x->scount || !x->rcount) goto nomem;
    for (int k = 0; k < n; k++) {
        shard_table *t = &x->tab[k];
        herd_model_sparse_table(m, k, &t->t);
        t->name = herd_model_param(m, t->t.param)->name;
        if (t->t.rows * t->t.dim > INT32_MAX) {
            st = herd_fail(err, HERD_EARG, "--embedding-shard: table '%s' (%lld x %lld) is too large to gather whole "
                           "(2^31 floats at most)", t->name, (long long)t->t.rows, (long long)t->t.dim);
            goto fail;
        }
        t->lo = malloc(w * sizeof *t->lo), t->hi = malloc(w * sizeof *t->hi);
        t->groups = calloc((size_t)x->my_groups, sizeof *t->groups);
        if (!t->lo || !t->hi || !t->groups) goto nomem;
        for (size_t q = 0; q < w; q++) t->lo[q] = lo_hi[((size_t)k * w + q) * 2], t->hi[q] = lo_hi[((size_t)k * w + q) * 2 + 1];
        int64_t mine_rows = t->hi[x->rank] - t->lo[x->rank];
        if (!(t->rows = herd_aligned_alloc((size_t)(mine_rows * t->t.dim) * sizeof(float)))) goto nomem;
        /* tables still to be written from the seed: this rank writes its own rows alone, the
         * whole table's values there, and the model's copy stays untouched pages */
        if (herd_model_tables_pending(m) &&
            (st = herd_model_table_init_rows(m, t->t.param, t->lo[x->rank], t->hi[x->rank], t->rows, err)))
            goto fail;
    }
    if (herd_model_tables_pending(m)) herd_model_tables_elsewhere(m);
    else herd_embedding_shard_reload(x); /* written whole (loaded weights): take this rank's rows */
    snprintf(note, note_size, "embedding tables sharded %s-wise over %d rank%s%s%s%s", herd_shard_plan_name(chosen),
             x->world, x->world == 1 ? "" : "s", why[0] ? " (" : "", why, why[0] ? ")" : "");
    free(lo_hi);
    *out = x;
    return HERD_OK;
nomem:
    st = herd_fail(err, HERD_ENOMEM, "out of memory for the embedding shards");
fail:
    free(lo_hi);
    herd_embedding_shard_destroy(x);
    return st;
}

void herd_embedding_shard_set_piece(herd_embedding_shard *x, int64_t floats) { x->piece_floats = floats; }

void herd_embedding_shard_range(const herd_embedding_shard *x, int k, int64_t *lo, int64_t *hi) {
    *lo = x->tab[k].lo[x->rank], *hi = x->tab[k].hi[x->rank];
}

float *herd_embedding_shard_rows(herd_embedding_shard *x, int k) { return x->tab[k].rows; }

void herd_embedding_shard_bytes(const herd_embedding_shard *x, double *sent, double *received, int64_t *steps) {
    *sent = x->sent, *received = x->received, *steps = x->steps;
}

/* sbytes/rbytes from per-rank item counts of `size` bytes each; 0, or HERD_ENOMEM */
static herd_status exchange(herd_embedding_shard *x, const void *send, int64_t size, void *recv, herd_error *err) {
    for (int q = 0; q < x->world; q++) x->sbytes[q] = x->scount[q] * size, x->rbytes[q] = x->rcount[q] * size;
    for (int q = 0; q < x->world; q++)
        if (q != x->rank) x->sent += (double)x->sbytes[q], x->received += (double)x->rbytes[q];
    return herd_comm_alltoallv(x->c, send, x->sbytes, recv, x->rbytes, err);
}

/* scount (set by the caller) to every peer, rcount back; then room for as many items of `size` bytes
 * as either way holds, in both buffers */
static herd_status exchange_counts(herd_embedding_shard *x, int64_t size, herd_error *err) {
    for (int q = 0; q < x->world; q++) x->sbytes[q] = x->rbytes[q] = sizeof(int64_t);
    herd_status st = herd_comm_alltoallv(x->c, x->scount, x->sbytes, x->rcount, x->rbytes, err);
    if (st) return st;
    int64_t s = 0, r = 0;
    for (int q = 0; q < x->world; q++) s += x->scount[q], r += x->rcount[q];
    size_t most = (size_t)((s > r ? s : r) * size) + 1; /* a lookup answers in the buffer it asked from */
    if (!herdi_sparse_reserve((void **)&x->send, &x->send_cap, most, 1) ||
        !herdi_sparse_reserve((void **)&x->recv, &x->recv_cap, most, 1))
        return herd_fail(err, HERD_ENOMEM, "out of memory for %lld embedding rows to exchange", (long long)(s + r));
    return HERD_OK;
}

static int cmp_i32(const void *a, const void *b) {
    int32_t p = *(const int32_t *)a, q = *(const int32_t *)b;
    return (p > q) - (p < q);
}

static int cmp_u64(const void *a, const void *b) {
    uint64_t p = *(const uint64_t *)a, q = *(const uint64_t *)b;
    return (p > q) - (p < q);
}

/* The owner of id (ranges ascend with the rank in both plans) */
static int owner(const shard_table *t, int world, int32_t id) {
    for (int q = 0; q < world; q++)
        if (id >= t->lo[q] && id < t->hi[q]) return q;
    return -1; /* not reached: the ranges cover the table */
}

/* local row of the j-th distinct id: the pad row keeps its own index */
static int64_t local_row(const shard_table *t, int64_t j) { return j + (t->t.pad >= 0 && j >= t->t.pad); }

static herd_status lookup_table(herd_embedding_shard *x, shard_table *t, int count, herd_error *err) {
    herd_sparse_table now;
    herd_model_sparse_table(x->m, (int)(t - x->tab), &now);
    int32_t *ids = now.ids;
    int64_t n = (int64_t)count * t->t.per_sample, dim = t->t.dim;
    if (n > t->uniq_cap) {
        int32_t *u = herd_malloc_array((size_t)n, sizeof *u);
        if (!u) return herd_fail(err, HERD_ENOMEM, "out of memory for %lld embedding ids", (long long)n);
        free(t->uniq);
        t->uniq = u, t->uniq_cap = n;
    }
    t->n_uniq = 0;
    for (int64_t i = 0; i < n; i++) /* ids outside the table stay as they are: the layer's check names them */
        if (ids[i] >= 0 && ids[i] < t->t.rows && ids[i] != t->t.pad) t->uniq[t->n_uniq++] = ids[i];
    if (t->n_uniq > 1) qsort(t->uniq, (size_t)t->n_uniq, sizeof *t->uniq, cmp_i32);
    int64_t u = 0;
    for (int64_t i = 0; i < t->n_uniq; i++)
        if (!u || t->uniq[i] != t->uniq[u - 1]) t->uniq[u++] = t->uniq[i];
    t->n_uniq = u;
    /* ids to their owners (ascending ids go to ascending ranks: the parts are runs of uniq) */
    memset(x->scount, 0, (size_t)x->world * sizeof *x->scount);
    for (int64_t j = 0; j < u; j++) x->scount[owner(t, x->world, t->uniq[j])]++;
    herd_status st = exchange_counts(x, dim * (int64_t)sizeof(float), err);
    if (!st) st = exchange(x, t->uniq, sizeof(int32_t), x->recv, err);
    if (st) return st;
    /* answer with the rows asked for, in the order asked */
    int64_t asked = 0;
    for (int q = 0; q < x->world; q++) asked += x->rcount[q];
    const int32_t *want = (const int32_t *)x->recv;
    float *reply = (float *)x->send, *mine = t->rows;
    int64_t lo = t->lo[x->rank];
    for (int64_t i = 0; i < asked; i++) memcpy(reply + i * dim, mine + (want[i] - lo) * dim, (size_t)dim * sizeof(float));
    int64_t *swap = x->scount;
    x->scount = x->rcount, x->rcount = swap; /* the replies go back the way the ids came */
    st = exchange(x, reply, dim * (int64_t)sizeof(float), x->recv, err);
    swap = x->scount, x->scount = x->rcount, x->rcount = swap;
    if (st) return st;
    /* the model's table: the fetched rows at their local rows, the pad row zero; ids renamed */
    float *table = model_table(x, t);
    if (x->whole) herd_release_pages(table, (size_t)(t->t.rows * dim) * sizeof(float));
    const float *got = (const float *)x->recv;
    for (int64_t j = 0; j < u; j++) memcpy(table + local_row(t, j) * dim, got + j * dim, (size_t)dim * sizeof(float));
    if (t->t.pad >= 0) memset(table + (int64_t)t->t.pad * dim, 0, (size_t)dim * sizeof(float));
    for (int64_t i = 0; i < n; i++) {
        if (ids[i] < 0 || ids[i] >= t->t.rows || ids[i] == t->t.pad) continue;
        const int32_t *at = bsearch(&ids[i], t->uniq, (size_t)u, sizeof *t->uniq, cmp_i32);
        ids[i] = (int32_t)local_row(t, at - t->uniq);
    }
    return HERD_OK;
}

herd_status herd_embedding_shard_lookup(herd_embedding_shard *x, int g, int count, herd_error *err) {
    (void)g;
    for (int k = 0; k < x->tables; k++) {
        herd_status st = lookup_table(x, &x->tab[k], count, err);
        if (st) return st;
    }
    x->whole = 0;
    return HERD_OK;
}

herd_status herd_embedding_shard_group_done(herd_embedding_shard *x, int g, int count, herd_error *err) {
    for (int k = 0; k < x->tables; k++) {
        shard_table *t = &x->tab[k];
        group_rows *r = &t->groups[g];
        r->n = 0;
        if (!count) continue;
        herd_sparse_grad sg;
        herd_model_sparse_grad(x->m, k, &sg); /* by local row, ascending: table ids ascend with them */
        if (!herdi_sparse_reserve_rows(&r->ids, &r->vals, &r->cap, sg.rows, sg.dim))
            return herd_fail(err, HERD_ENOMEM, "out of memory for %lld gradient rows", (long long)sg.rows);
        for (int64_t i = 0; i < sg.rows; i++) {
            int64_t l = sg.ids[i];
            r->ids[i] = t->uniq[l - (t->t.pad >= 0 && l > t->t.pad)];
        }
        if (sg.rows) memcpy(r->vals, sg.values, (size_t)(sg.rows * sg.dim) * sizeof(float));
        r->n = sg.rows;
    }
    return HERD_OK;
}

/* Every part's rows of table t to their owners; the owner's rows summed id by id in group order */
static herd_status exchange_table(herd_embedding_shard *x, shard_table *t, herd_error *err) {
    int64_t dim = t->t.dim, rec = 2 + dim; /* group, id, values: 4-byte words */
    memset(x->scount, 0, (size_t)x->world * sizeof *x->scount);
    for (int g = 0; g < x->my_groups; g++)
        for (int64_t i = 0; i < t->groups[g].n; i++) x->scount[owner(t, x->world, t->groups[g].ids[i])]++;
    herd_status st = exchange_counts(x, rec * 4, err);
    if (st) return st;
    /* records grouped by owner, each owner's in group then id order */
    int64_t *at = x->sbytes; /* free until exchange() sets it: the next record's index per owner */
    int64_t off = 0;
    for (int q = 0; q < x->world; q++) at[q] = off, off += x->scount[q];
    uint32_t *out = (uint32_t *)x->send;
    for (int g = 0; g < x->my_groups; g++) {
        const group_rows *r = &t->groups[g];
        for (int64_t i = 0; i < r->n; i++) {
            uint32_t *o = out + at[owner(t, x->world, r->ids[i])]++ * rec;
            o[0] = (uint32_t)(x->rank * x->my_groups + g), o[1] = (uint32_t)r->ids[i];
            memcpy(o + 2, r->vals + i * dim, (size_t)dim * sizeof(float));
        }
    }
    if ((st = exchange(x, out, rec * 4, x->recv, err))) return st;
    int64_t got = 0;
    for (int q = 0; q < x->world; q++) got += x->rcount[q];
    /* received in rank order, each rank's in its group order: the global group order. A stable sort
     * by id keeps it: keys (id - lo) << 32 | record */
    if (!herdi_sparse_reserve((void **)&x->keys, &x->keys_cap, (size_t)(got + 1) * sizeof *x->keys, 1) ||
        !herdi_sparse_reserve_rows(&t->out_ids, &t->out_vals, &t->out_cap, got, dim))
        return herd_fail(err, HERD_ENOMEM, "out of memory for %lld gradient rows", (long long)got);
    const uint32_t *in = (const uint32_t *)x->recv;
    int64_t lo = t->lo[x->rank];
    for (int64_t e = 0; e < got; e++) x->keys[e] = (uint64_t)((int64_t)(int32_t)in[e * rec + 1] - lo) << 32 | (uint64_t)e;
    qsort(x->keys, (size_t)got, sizeof *x->keys, cmp_u64);
    t->out_n = 0;
    for (int64_t e = 0; e < got; e++) {
        int32_t id = (int32_t)(x->keys[e] >> 32);
        const float *src = (const float *)(in + (int64_t)(uint32_t)x->keys[e] * rec + 2);
        if (t->out_n && t->out_ids[t->out_n - 1] == id) {
            float *s = t->out_vals + (t->out_n - 1) * dim;
            for (int64_t d = 0; d < dim; d++) s[d] += src[d];
        } else {
            t->out_ids[t->out_n] = id;
            memcpy(t->out_vals + t->out_n++ * dim, src, (size_t)dim * sizeof(float));
        }
    }
    return HERD_OK;
}

herd_status herd_embedding_shard_exchange(herd_embedding_shard *x, herd_sparse_grad *sg, int n, double *sq,
                                          herd_error *err) {
    *sq = 0;
    for (int k = 0; k < n && k < x->tables; k++) {
        shard_table *t = &x->tab[k];
        herd_status st = exchange_table(x, t, err);
        if (st) return st;
        sg[k] = (herd_sparse_grad){.param = t->t.param, .rows = t->out_n, .dim = t->t.dim, .ids = t->out_ids,
                                   .values = t->out_vals};
        *sq += herd_grad_sq_sum(t->out_vals, t->out_n * t->t.dim);
    }
    x->steps++;
    return x->world > 1 ? herd_comm_allreduce_f64(x->c, sq, 1, err) : HERD_OK;
}

/* Rows of w floats: every rank's own (mine: hi - lo rows) into whole on root alone, in pieces of at
 * most piece_floats floats (a row at least); the ranges ascend with the rank and cover the table
 * from row 0, so a piece's parts, in rank order, lie one after another where they belong. */
static herd_status gather_root(herd_embedding_shard *x, const shard_table *t, const float *mine, float *whole,
                               int64_t w, int root, herd_error *err) {
    int64_t step = x->piece_floats / w > 0 ? x->piece_floats / w : 1, lo = t->lo[x->rank], hi = t->hi[x->rank];
    for (int64_t a = 0; a < t->t.rows; a += step) {
        int64_t b = a + step < t->t.rows ? a + step : t->t.rows;
        for (int q = 0; q < x->world; q++) {
            int64_t l = t->lo[q] > a ? t->lo[q] : a, h = t->hi[q] < b ? t->hi[q] : b;
            x->rbytes[q] = x->rank == root && h > l ? (h - l) * w * (int64_t)sizeof(float) : 0;
            x->sbytes[q] = 0;
        }
        int64_t l = lo > a ? lo : a, h = hi < b ? hi : b;
        if (h > l) x->sbytes[root] = (h - l) * w * (int64_t)sizeof(float);
        herd_status st = herd_comm_alltoallv(x->c, h > l ? mine + (l - lo) * w : mine, x->sbytes,
                                             x->rank == root ? whole + a * w : NULL, x->rbytes, err);
        if (st) return st;
    }
    return HERD_OK;
}

herd_status herd_embedding_shard_gather(herd_embedding_shard *x, int root, const float *const *mine_state,
                                        float **state, const int64_t *state_dim, herd_error *err) {
    int *counts = malloc((size_t)x->world * sizeof *counts);
    if (!counts) return herd_fail(err, HERD_ENOMEM, "out of memory");
    herd_status st = HERD_OK;
    int receives = root < 0 || x->rank == root;
    for (int k = 0; k < x->tables && !st; k++) {
        shard_table *t = &x->tab[k];
        int64_t lo = t->lo[x->rank], hi = t->hi[x->rank];
        for (int j = -1; j < (mine_state ? 2 : 0) && !st; j++) { /* the table, then its state arrays */
            int64_t w = j < 0 ? t->t.dim : state_dim[k];
            const float *mine = j < 0 ? t->rows : mine_state[2 * k + j];
            float *whole = j < 0 ? model_table(x, t) : receives ? state[2 * k + j] : NULL;
            if (!mine) continue;
            if (root >= 0) {
                st = gather_root(x, t, mine, whole, w, root, err);
                continue;
            }
            memcpy(whole + lo * w, mine, (size_t)((hi - lo) * w) * sizeof(float));
            for (int q = 0; q < x->world; q++) counts[q] = (int)((t->hi[q] - t->lo[q]) * w);
            st = herd_comm_allgatherv(x->c, whole, counts, err);
        }
    }
    free(counts);
    if (receives) x->whole = 1; /* the model holds every row until the next lookup */
    return st;
}
