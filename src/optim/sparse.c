/* Optimizers for tables with row-sparse gradients (embeddings): only the rows a step touched
 * move, and only their state, so a step costs the batch's rows, not the table's. Each follows
 * PyTorch 1.13 on a coalesced sparse gradient (torch/optim/_functional.py sparse_adam,
 * adagrad.py's sparse branch, SGD's sparse add). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/prefetch.h"
#include "optim/optim.h"

static const char *const sparse_names[] = {"sgd", "adagrad", "adam", "rowwise_adagrad"};
#define SPARSE_KINDS (int)(sizeof sparse_names / sizeof sparse_names[0])

int herd_sparse_opt_parse(const char *name, herd_sparse_opt_kind *out) {
    for (int k = 0; k < SPARSE_KINDS; k++)
        if (name && !strcmp(name, sparse_names[k])) {
            *out = (herd_sparse_opt_kind)k;
            return 1;
        }
    return 0;
}

const char *herd_sparse_opt_name(herd_sparse_opt_kind kind) {
    return (int)kind >= 0 && (int)kind < SPARSE_KINDS ? sparse_names[kind] : "?";
}

herd_status herd_sparse_optimizer_init(herd_sparse_optimizer *o, herd_sparse_opt_kind kind, int64_t rows, int64_t dim,
                                       herd_error *err) {
    memset(o, 0, sizeof *o);
    o->kind = kind;
    o->rows = rows, o->dim = dim;
    o->beta1 = 0.9f, o->beta2 = 0.999f;
    o->eps = kind == HERD_SPARSE_ADAGRAD || kind == HERD_SPARSE_ROWWISE_ADAGRAD ? 1e-10f : 1e-8f;
    /* row-wise Adagrad keeps one sum a row (FBGEMM's rowwise_adagrad): dim times less state */
    size_t n = (size_t)rows * (size_t)herd_sparse_state_dim(o);
    /* zeroed here, page by page, rather than left to the kernel's first touch: a step then never
     * pays page faults for rows it meets for the first time (measured by bench/embeddings: at 1e6
     * rows most of a short run's rows are new, and the faults took most of its step time) */
    if (kind == HERD_SPARSE_ADAM && !(o->m = herd_aligned_alloc(n * sizeof *o->m)))
        return herd_fail(err, HERD_ENOMEM, "cannot allocate lazy Adam's moments of a %lld x %lld table",
                         (long long)rows, (long long)dim);
    if (kind != HERD_SPARSE_SGD && !(o->v = herd_aligned_alloc(n * sizeof *o->v))) {
        herd_aligned_free(o->m);
        o->m = NULL;
        return herd_fail(err, HERD_ENOMEM, "cannot allocate the optimizer state of a %lld x %lld table",
                         (long long)rows, (long long)dim);
    }
    /* read at the batch's rows, as the table: 2 MiB pages (bench/embeddings: 4 KiB ones made a step at 1e6+ rows
     * mostly page-table walks) */
    if (o->m) herd_advise_huge_pages(o->m, n * sizeof *o->m), memset(o->m, 0, n * sizeof *o->m);
    if (o->v) herd_advise_huge_pages(o->v, n * sizeof *o->v), memset(o->v, 0, n * sizeof *o->v);
    return HERD_OK;
}

int64_t herd_sparse_state_dim(const herd_sparse_optimizer *o) {
    return o->kind == HERD_SPARSE_ROWWISE_ADAGRAD ? 1 : o->dim;
}

void herd_sparse_optimizer_free(herd_sparse_optimizer *o) {
    herd_aligned_free(o->m);
    herd_aligned_free(o->v);
    o->m = o->v = NULL;
}

typedef struct sparse_job {
    herd_sparse_optimizer *o;
    float *table;
    const int32_t *ids;
    const float *values;
    int64_t n_rows;
    float lr, step;
} sparse_job;

/* rows [r0, r1) of the step; each row's update reads and writes that row alone, so any split
 * of the rows over threads gives the same bits */
static void sparse_rows(void *ctx, int64_t r0, int64_t r1, int thread) {
    (void)thread;
    const sparse_job *j = ctx;
    herd_sparse_optimizer *o = j->o;
    float *table = j->table, lr = j->lr, step = j->step;
    const int32_t *ids = j->ids;
    const float *values = j->values;
    int64_t D = o->dim, S = herd_sparse_state_dim(o);
    size_t row_bytes = (size_t)D * sizeof(float);
    for (int64_t r = r0; r < r1; r++) {
        float *p = table + (int64_t)ids[r] * D;
        const float *g = values + r * D;
        if (r + HERD_PREFETCH_ROWS < r1) { /* the row and its state a few ahead (ids are spread over the table) */
            int64_t ahead = ids[r + HERD_PREFETCH_ROWS];
            herd_prefetch(table + ahead * D, row_bytes, 1);
            if (o->m) herd_prefetch(o->m + ahead * D, row_bytes, 1);
            if (o->v) herd_prefetch(o->v + ahead * S, (size_t)S * sizeof(float), 1);
        }
        if (o->kind == HERD_SPARSE_SGD) {
            for (int64_t d = 0; d < D; d++) p[d] += -lr * g[d];
        } else if (o->kind == HERD_SPARSE_ROWWISE_ADAGRAD) { /* s += mean(g^2) over the row; p -= lr g / (sqrt(s) + eps) */
            float *s = o->v + ids[r], sq = 0.0f;
            for (int64_t d = 0; d < D; d++) sq += g[d] * g[d];
            *s += sq / (float)D;
            float scale = lr / (sqrtf(*s) + o->eps);
            for (int64_t d = 0; d < D; d++) p[d] += -scale * g[d];
        } else if (o->kind == HERD_SPARSE_ADAGRAD) { /* sum += g^2; p -= lr * g / (sqrt(sum) + eps) */
            float *s = o->v + (int64_t)ids[r] * D;
            for (int64_t d = 0; d < D; d++) {
                s[d] += g[d] * g[d];
                p[d] += -lr * (g[d] / (sqrtf(s[d]) + o->eps));
            }
        } else { /* SparseAdam: m += (g - m)(1 - b1); v += (g^2 - v)(1 - b2); p -= step * m / (sqrt(v) + eps) */
            float *m = o->m + (int64_t)ids[r] * D, *v = o->v + (int64_t)ids[r] * D;
            for (int64_t d = 0; d < D; d++) {
                float um = (g[d] - m[d]) * (1.0f - o->beta1), uv = (g[d] * g[d] - v[d]) * (1.0f - o->beta2);
                m[d] = um + m[d];
                v[d] = uv + v[d];
                p[d] += -step * (m[d] / (sqrtf(v[d]) + o->eps));
            }
        }
    }
}

void herd_sparse_optimizer_step(herd_sparse_optimizer *o, float *table, const int32_t *ids, const float *values,
                                int64_t n_rows, float lr, herd_pool *pool) {
    o->t++;
    /* Adam's step size as torch computes it: lr * sqrt(1 - b2^t) / (1 - b1^t) in double, used as float */
    double bc1 = 1.0 - pow((double)o->beta1, (double)o->t), bc2 = 1.0 - pow((double)o->beta2, (double)o->t);
    sparse_job j = {.o = o, .table = table, .ids = ids, .values = values, .n_rows = n_rows, .lr = lr,
                    .step = (float)((double)lr * sqrt(bc2) / bc1)};
    /* rows spread over a large table wait on memory: a second thread keeps twice the misses in
     * flight; a few hundred rows are not worth the hand-off */
    int64_t state = (1 + (o->m != NULL) + (o->v != NULL && o->kind != HERD_SPARSE_ROWWISE_ADAGRAD)) * o->rows * o->dim;
    if (pool && herd_table_split(herd_pool_threads(pool), state * (int64_t)sizeof(float), n_rows * o->dim, 16384))
        herd_pool_for(pool, n_rows, sparse_rows, &j);
    else
        sparse_rows(&j, 0, n_rows, 0);
}
