/* Row-sparse gradients across data-parallel ranks (sparse_exchange.h). Everything travels
 * through herd_strategy_gather / herd_strategy_reduce as doubles: ids (below 2^31) and float
 * values are exact in them, so a gather moves the bits unchanged. */
#include "dist/sparse_exchange.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct group_rows { /* one group's coalesced rows of one table */
    int64_t n, cap;
    int32_t *ids;
    float *vals;
} group_rows;

typedef struct table_out { /* the global gradient of one table */
    int64_t n, cap;
    int32_t *ids;
    float *vals;
    int choice; /* 0 none yet, 1 gather, 2 dense */
} table_out;

struct herd_sparse_exchange {
    herd_strategy *s;
    herd_model *m;
    int tables, my_groups, groups, world, deterministic;
    group_rows *rows; /* my_groups x tables */
    table_out *out;   /* tables */
    double *buf, *all;
    size_t buf_cap, all_cap;
    uint64_t *keys;
    size_t keys_cap;
    char note[512];
};

int herdi_sparse_reserve(void **p, size_t *cap, size_t n, size_t size) {
    if (n <= *cap) return 1;
    void *q = herd_malloc_array(n, size);
    if (!q) return 0;
    free(*p);
    *p = q, *cap = n;
    return 1;
}

int herdi_sparse_reserve_rows(int32_t **ids, float **vals, int64_t *cap, int64_t n, int64_t dim) {
    if (n <= *cap) return 1;
    int32_t *i = herd_malloc_array((size_t)n, sizeof *i);
    float *v = herd_malloc_array((size_t)n * (size_t)dim, sizeof *v);
    if (!i || !v) {
        free(i);
        free(v);
        return 0;
    }
    free(*ids);
    free(*vals);
    *ids = i, *vals = v, *cap = n;
    return 1;
}

herd_status herd_sparse_exchange_create(herd_sparse_exchange **out, herd_strategy *s, herd_model *m, herd_error *err) {
    *out = NULL;
    int tables = herd_model_sparse_count(m);
    if (!tables || !s) return HERD_OK;
    /* data parallel only: its parts each compute the whole model's gradient for their rows (a
     * pipeline of one replica too has world 1, but its stages hold different tables) */
    if (strcmp(s->ops->name, "data parallel"))
        return herd_fail(err, HERD_EUNSUPPORTED, "the model's embedding tables have row-sparse gradients, which %s "
                         "training does not exchange: use --strategy dp", s->ops->name);
    if (s->world == 1 && herd_strategy_parts(s) == 1) return HERD_OK;
    herd_sparse_exchange *x = calloc(1, sizeof *x);
    if (!x) return herd_fail(err, HERD_ENOMEM, "out of memory for the sparse gradient exchange");
    x->s = s, x->m = m, x->tables = tables;
    x->world = s->world, x->my_groups = herd_strategy_parts(s);
    x->groups = x->world * x->my_groups;
    x->deterministic = herd_strategy_deterministic_groups(s) > 0;
    x->rows = calloc((size_t)(x->my_groups * tables), sizeof *x->rows);
    x->out = calloc((size_t)tables, sizeof *x->out);
    if (!x->rows || !x->out) {
        herd_sparse_exchange_destroy(x);
        return herd_fail(err, HERD_ENOMEM, "out of memory for the sparse gradient exchange");
    }
    *out = x;
    return HERD_OK;
}

void herd_sparse_exchange_destroy(herd_sparse_exchange *x) {
    if (!x) return;
    for (int i = 0; x->rows && i < x->my_groups * x->tables; i++) free(x->rows[i].ids), free(x->rows[i].vals);
    for (int k = 0; x->out && k < x->tables; k++) free(x->out[k].ids), free(x->out[k].vals);
    free(x->rows);
    free(x->out);
    free(x->buf);
    free(x->all);
    free(x->keys);
    free(x);
}

herd_status herd_sparse_exchange_group_done(herd_sparse_exchange *x, int g, int count, herd_error *err) {
    for (int k = 0; k < x->tables; k++) {
        group_rows *r = &x->rows[g * x->tables + k];
        r->n = 0;
        if (!count) continue; /* an empty group: the model's rows are another group's */
        herd_sparse_grad sg;
        herd_model_sparse_grad(x->m, k, &sg); /* this group's duplicates summed */
        if (!herdi_sparse_reserve_rows(&r->ids, &r->vals, &r->cap, sg.rows, sg.dim))
            return herd_fail(err, HERD_ENOMEM, "out of memory for %lld gradient rows", (long long)sg.rows);
        memcpy(r->ids, sg.ids, (size_t)sg.rows * sizeof *r->ids);
        memcpy(r->vals, sg.values, (size_t)(sg.rows * sg.dim) * sizeof *r->vals);
        r->n = sg.rows;
    }
    return HERD_OK;
}

static int cmp_u64(const void *a, const void *b) {
    uint64_t p = *(const uint64_t *)a, q = *(const uint64_t *)b;
    return p < q ? -1 : p > q;
}

/* Every group's rows from every rank (each rank's my_groups x maxc rows of [id, values]); the
 * rows of one id summed in group order into o */
static herd_status by_gather(herd_sparse_exchange *x, int k, const double *counts, int64_t maxc, int64_t dim,
                             table_out *o, herd_error *err) {
    size_t per = (size_t)x->my_groups * (size_t)maxc * (size_t)(1 + dim), total = 0;
    for (int g = 0; g < x->groups; g++) total += (size_t)counts[g];
    if (per > (size_t)INT32_MAX / (size_t)x->world)
        return herd_fail(err, HERD_EARG, "table %d: %lld gradient rows a group are too many to gather", k, (long long)maxc);
    if (!herdi_sparse_reserve((void **)&x->buf, &x->buf_cap, per ? per : 1, sizeof *x->buf) ||
        !herdi_sparse_reserve((void **)&x->all, &x->all_cap, per * (size_t)x->world + 1, sizeof *x->all) ||
        !herdi_sparse_reserve((void **)&x->keys, &x->keys_cap, total + 1, sizeof *x->keys) ||
        !herdi_sparse_reserve_rows(&o->ids, &o->vals, &o->cap, (int64_t)total, dim))
        return herd_fail(err, HERD_ENOMEM, "out of memory for %zu gathered gradient rows", total);
    for (int g = 0; g < x->my_groups; g++) {
        const group_rows *r = &x->rows[g * x->tables + k];
        double *b = x->buf + (size_t)g * (size_t)maxc * (size_t)(1 + dim);
        for (int64_t i = 0; i < r->n; i++, b += 1 + dim) {
            b[0] = r->ids[i];
            for (int64_t d = 0; d < dim; d++) b[1 + d] = r->vals[i * dim + d];
        }
    }
    int ranks;
    herd_status st = herd_strategy_gather(x->s, x->buf, (int)per, x->all, x->world, &ranks, err);
    if (st) return st;
    /* entries in group order (rank r's groups are r * my_groups + g): a stable sort by id keeps it */
    size_t e = 0;
    for (int g = 0; g < x->groups; g++)
        for (int64_t i = 0; i < (int64_t)counts[g]; i++, e++) {
            const double *row = x->all + ((size_t)g * (size_t)maxc + (size_t)i) * (size_t)(1 + dim);
            x->keys[e] = (uint64_t)(uint32_t)(int32_t)row[0] << 32 | (uint64_t)(row - x->all);
        }
    qsort(x->keys, total, sizeof *x->keys, cmp_u64); /* (id, position): position follows group order */
    o->n = 0;
    for (size_t i = 0; i < total; i++) {
        int32_t id = (int32_t)(x->keys[i] >> 32);
        const double *v = x->all + (uint32_t)x->keys[i] + 1;
        float *s = o->vals + (o->n ? (o->n - 1) * dim : 0);
        if (o->n && o->ids[o->n - 1] == id) {
            for (int64_t d = 0; d < dim; d++) s[d] += (float)v[d];
        } else {
            o->ids[o->n] = id;
            s = o->vals + o->n++ * dim;
            for (int64_t d = 0; d < dim; d++) s[d] = (float)v[d];
        }
    }
    return HERD_OK;
}

/* A dense (rows, dim + 1) sum across ranks of each rank's rows (its one group), the last column
 * counting the ranks that touched the row: the touched rows, ascending, into o */
static herd_status by_dense(herd_sparse_exchange *x, int k, int64_t rows, int64_t dim, table_out *o, herd_error *err) {
    size_t n = (size_t)rows * (size_t)(dim + 1);
    if (!herdi_sparse_reserve((void **)&x->all, &x->all_cap, n, sizeof *x->all) ||
        !herdi_sparse_reserve_rows(&o->ids, &o->vals, &o->cap, rows, dim))
        return herd_fail(err, HERD_ENOMEM, "out of memory for a dense %lld x %lld gradient", (long long)rows, (long long)dim);
    memset(x->all, 0, n * sizeof *x->all);
    const group_rows *r = &x->rows[k];
    for (int64_t i = 0; i < r->n; i++) {
        double *row = x->all + (size_t)r->ids[i] * (size_t)(dim + 1);
        for (int64_t d = 0; d < dim; d++) row[d] = r->vals[i * dim + d];
        row[dim] = 1.0;
    }
    herd_status st = herd_strategy_reduce(x->s, x->all, (int)n, err);
    if (st) return st;
    o->n = 0;
    for (int64_t id = 0; id < rows; id++) {
        const double *row = x->all + (size_t)id * (size_t)(dim + 1);
        if (row[dim] == 0.0) continue;
        o->ids[o->n] = (int32_t)id;
        for (int64_t d = 0; d < dim; d++) o->vals[o->n * dim + d] = (float)row[d];
        o->n++;
    }
    return HERD_OK;
}

herd_status herd_sparse_exchange_finish(herd_sparse_exchange *x, herd_sparse_grad *sg, int n, herd_error *err) {
    x->note[0] = 0;
    double counts[1024], mine[1024];
    if (x->groups > 1024) return herd_fail(err, HERD_EARG, "%d groups: the sparse exchange takes at most 1024", x->groups);
    for (int k = 0; k < n && k < x->tables; k++) {
        const herd_param_info *p = herd_model_param(x->m, sg[k].param);
        int64_t rows = p->shape[0], dim = p->shape[1], maxc = 0;
        for (int g = 0; g < x->my_groups; g++) mine[g] = (double)x->rows[g * x->tables + k].n;
        int ranks;
        herd_status st = herd_strategy_gather(x->s, mine, x->my_groups, counts, x->world, &ranks, err);
        if (st) return st;
        for (int g = 0; g < x->groups; g++) maxc = (int64_t)counts[g] > maxc ? (int64_t)counts[g] : maxc;
        /* bytes each way: a gather moves every rank's padded rows, a dense sum the whole table
         * (twice, as a ring allreduce does); --deterministic sums in group order: gather only */
        double gather_mb = 8e-6 * (double)x->groups * (double)maxc * (double)(1 + dim),
               dense_mb = 2 * 8e-6 * (double)rows * (double)(dim + 1);
        int choice = x->deterministic || x->world == 1 || gather_mb <= dense_mb || (double)rows * (dim + 1) > INT32_MAX ? 1 : 2;
        table_out *o = &x->out[k];
        st = choice == 1 ? by_gather(x, k, counts, maxc, dim, o, err) : by_dense(x, k, rows, dim, o, err);
        if (st) return st;
        if (choice != o->choice) {
            size_t at = strlen(x->note);
            snprintf(x->note + at, sizeof x->note - at, "%stable '%s': %lld of %lld rows a step (%.2f%%) from %d groups: "
                     "%s (%.1f MB; %s %.1f MB)%s", at ? "; " : "", p->name, (long long)o->n, (long long)rows,
                     100.0 * (double)o->n / (double)rows, x->groups, choice == 1 ? "gather of ids and values" : "dense allreduce",
                     choice == 1 ? gather_mb : dense_mb, choice == 1 ? "a dense allreduce:" : "a gather:",
                     choice == 1 ? dense_mb : gather_mb, x->deterministic ? ", summed in group order (--deterministic)" : "");
            o->choice = choice;
        }
        sg[k].rows = o->n, sg[k].ids = o->ids, sg[k].values = o->vals;
    }
    return HERD_OK;
}

const char *herd_sparse_exchange_note(const herd_sparse_exchange *x) { return x->note; }
