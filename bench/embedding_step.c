/* herd's side of bench/embeddings: the training step time of an embedding_bag model (batch B
 * of bags of L ids into a ROWS x 64 table, sum, then a dense classifier) with lazy Adam on the
 * table and Adam on the dense layer, for each ROWS given, in one run: a row-sparse gradient
 * makes the step cost the batch's rows, not the table's. Every size's model lives at once and
 * the sizes take turns, ROUNDS rounds of STEPS/ROUNDS steps each, so that load from other
 * processes falls on every size alike; a size's step time is the median of its rounds. Then the
 * process's peak RSS against the largest table's bytes (the tables, their lazy Adam moments and
 * everything else of the run).
 * Ids are uniform, or with ALPHA > 0 power-law: rank r drawn with density ~ (r + 1)^-ALPHA
 * (continuous inverse CDF), ranks scattered over the table by r * 2654435761 mod ROWS (a
 * bijection: the factor is prime to 2 and 5).
 * Last, the memory floor of each size: the same steps' distinct rows of a table and two moments
 * laid out as herd's (ROWS x 64 floats each, 2 MiB pages), each row read, then rewritten in all
 * three arrays with no arithmetic beyond an add, rows prefetched ahead as herd's loops do, split
 * over THREADS threads of herd's pool, in rounds as above. What a step at a large table costs more than at a
 * small one, beyond that floor's own growth, would be work that grows with the table.
 * usage: embedding_step B L STEPS THREADS ALPHA ROWS...   (one "rows=... step_ms=..." line per size,
 * then one "floor rows=... step_ms=..." line per size) */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include "herd/herd.h"
#include "../src/core/prefetch.h"

#define ROUNDS 15
#define MAX_SIZES 8

static void print_cpu(void) {
    char line[512];
    FILE *f = fopen("/proc/cpuinfo", "r");
    while (f && fgets(line, sizeof line, f))
        if (strncmp(line, "model name", 10) == 0) {
            printf("cpu: %s", strchr(line, ':') ? strchr(line, ':') + 2 : line);
            break;
        }
    if (f) fclose(f);
}

static double peak_rss_mib(void) {
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_maxrss / 1024.0;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

typedef struct size_run {
    long long rows;
    herd_model *m;
    herd_trainer *t;
    herd_dataset *ds;
    int64_t *idx, next; /* sample order; the next step's first */
    int64_t rows_updated, steps;  /* distinct rows the steps' gradients held */
    double round_ms[ROUNDS];
} size_run;

static int fail(const char *what, const herd_error *err) {
    fprintf(stderr, "embedding_step: %s: %s\n", what, err->msg);
    return 1;
}

/* steps training steps of run r: its ms a step */
static int run_steps(size_run *r, int B, int steps, double *ms) {
    herd_error err = {0};
    double t0 = herd_now();
    for (int s = 0; s < steps; s++) {
        herd_step_result res;
        if (herd_trainer_step(r->t, r->ds, r->idx + r->next, B, &res, &err)) return fail("step", &err);
        r->next += B;
        herd_sparse_grad g;
        herd_model_sparse_grad(r->m, 0, &g); /* coalesced by the step already: no extra work */
        r->rows_updated += g.rows, r->steps++;
    }
    *ms = (herd_now() - t0) * 1e3 / steps;
    return 0;
}

/* an id of a table of rows: uniform (alpha 0) or power-law */
static int32_t draw_id(herd_rng *g, long long rows, double alpha) {
    if (alpha <= 0) return (int32_t)herd_rng_below(g, (uint32_t)rows);
    double u = herd_rng_uniform(g), e = 1.0 - alpha, n = (double)rows;
    double r = fabs(e) < 1e-9 ? exp(u * log(n + 1.0)) - 1.0 : pow(u * (pow(n + 1.0, e) - 1.0) + 1.0, 1.0 / e) - 1.0;
    long long rank = r < 0 ? 0 : r >= n ? rows - 1 : (long long)r;
    return (int32_t)((unsigned long long)rank * 2654435761ULL % (unsigned long long)rows);
}

/* the memory floor: a step's distinct rows (sorted, as herd's coalesced gradient holds them) read
 * from the table and rewritten in the table and both moments */
typedef struct floor_run {
    long long rows;
    float *w, *m, *v;
    int32_t *ids;   /* every step's distinct rows, one after another */
    int64_t *start; /* step s's rows are ids[start[s] .. start[s + 1]) */
    int64_t steps, next;
    double round_ms[ROUNDS];
} floor_run;

typedef struct floor_job {
    floor_run *f;
    const int32_t *ids;
} floor_job;

/* rows [r0, r1) of a step, on one of herd's pool threads (as herd's own row loops run) */
static void floor_rows(void *ctx, int64_t r0, int64_t r1, int thread) {
    (void)thread;
    floor_job *j = ctx;
    floor_run *f = j->f;
    const size_t row_bytes = 64 * sizeof(float);
    for (int64_t r = r0; r < r1; r++) {
        if (r + HERD_PREFETCH_ROWS < r1) {
            int64_t ahead = (int64_t)j->ids[r + HERD_PREFETCH_ROWS] * 64;
            herd_prefetch(f->w + ahead, row_bytes, 1);
            herd_prefetch(f->m + ahead, row_bytes, 1);
            herd_prefetch(f->v + ahead, row_bytes, 1);
        }
        int64_t o = (int64_t)j->ids[r] * 64;
        for (int d = 0; d < 64; d++) {
            f->w[o + d] += 1e-7f;
            f->m[o + d] += 1e-7f;
            f->v[o + d] += 1e-7f;
        }
    }
}

static void floor_steps(floor_run *f, int steps, herd_pool *pool, double *ms) {
    double t0 = herd_now();
    for (int s = 0; s < steps; s++) {
        int64_t k = f->next++ % f->steps;
        floor_job j = {f, f->ids + f->start[k]};
        herd_pool_for(pool, f->start[k + 1] - f->start[k], floor_rows, &j);
    }
    *ms = (herd_now() - t0) * 1e3 / steps;
}

static int cmp_i32(const void *a, const void *b) {
    int32_t x = *(const int32_t *)a, y = *(const int32_t *)b;
    return x < y ? -1 : x > y;
}

static float *floor_array(long long rows) {
    size_t bytes = (size_t)rows * 64 * sizeof(float);
    float *p = herd_aligned_calloc(bytes);
    if (p) herd_advise_huge_pages(p, bytes), memset(p, 0, bytes); /* first touch outside the timing */
    return p;
}

/* the floor of every size, in rounds; the same ids as the herd runs (same generator and seed) */
static int memory_floor(long long *rows, int n_sizes, int B, int L, int steps, int threads, double alpha) {
    floor_run f[MAX_SIZES];
    memset(f, 0, sizeof f);
    herd_pool *pool = NULL;
    herd_error err = {0};
    if (herd_pool_create(&pool, threads, &err)) return fail("pool", &err);
    int per_round = steps / ROUNDS > 0 ? steps / ROUNDS : 1;
    for (int k = 0; k < n_sizes; k++) {
        floor_run *r = &f[k];
        r->rows = rows[k];
        r->steps = per_round * ROUNDS + 5;
        herd_rng g;
        herd_rng_init(&g, 5, 0);
        r->ids = malloc((size_t)(r->steps * B * L) * sizeof *r->ids);
        r->start = malloc((size_t)(r->steps + 1) * sizeof *r->start);
        r->w = floor_array(r->rows), r->m = floor_array(r->rows), r->v = floor_array(r->rows);
        if (!r->ids || !r->start || !r->w || !r->m || !r->v) {
            fprintf(stderr, "embedding_step: out of memory for the floor at %lld rows\n", r->rows);
            return 1;
        }
        int64_t n = 0;
        for (int64_t s = 0; s < r->steps; s++) {
            int32_t *step = r->ids + n;
            for (int64_t i = 0; i < (int64_t)B * L; i++) step[i] = draw_id(&g, r->rows, alpha);
            qsort(step, (size_t)B * L, sizeof *step, cmp_i32);
            int64_t u = 0;
            for (int64_t i = 0; i < (int64_t)B * L; i++)
                if (i == 0 || step[i] != step[i - 1]) step[u++] = step[i];
            r->start[s] = n;
            n += u;
        }
        r->start[r->steps] = n;
        double warm;
        floor_steps(r, 5, pool, &warm);
    }
    for (int round = 0; round < ROUNDS; round++)
        for (int k = 0; k < n_sizes; k++) floor_steps(&f[k], per_round, pool, &f[k].round_ms[round]);
    for (int k = 0; k < n_sizes; k++) {
        qsort(f[k].round_ms, ROUNDS, sizeof f[k].round_ms[0], cmp_double);
        printf("floor rows=%lld step_ms=%.3f min_ms=%.3f max_ms=%.3f rows_a_step=%.0f\n", f[k].rows,
               f[k].round_ms[ROUNDS / 2], f[k].round_ms[0], f[k].round_ms[ROUNDS - 1],
               (double)f[k].start[f[k].steps] / (double)f[k].steps);
        herd_aligned_free(f[k].w), herd_aligned_free(f[k].m), herd_aligned_free(f[k].v);
        free(f[k].ids), free(f[k].start);
    }
    herd_pool_destroy(pool);
    return 0;
}

int main(int argc, char **argv) {
    if (argc < 7 || argc - 6 > MAX_SIZES) {
        fprintf(stderr, "usage: embedding_step B L STEPS THREADS ALPHA ROWS... (at most %d sizes)\n", MAX_SIZES);
        return 2;
    }
    int B = atoi(argv[1]), L = atoi(argv[2]), steps = atoi(argv[3]), threads = atoi(argv[4]), n_sizes = argc - 6;
    double alpha = atof(argv[5]);
    int per_round = steps / ROUNDS > 0 ? steps / ROUNDS : 1;
    print_cpu();
    size_run runs[MAX_SIZES];
    memset(runs, 0, sizeof runs);
    long long largest = 0;
    for (int k = 0; k < n_sizes; k++) {
        size_run *r = &runs[k];
        r->rows = atoll(argv[6 + k]);
        if (r->rows > largest) largest = r->rows;
        char spec[256];
        snprintf(spec, sizeof spec, "input %d dtype=i32\nembedding_bag %lld 64 mode=sum\ndense 2\n", L, r->rows);
        herd_error err = {0};
        if (herd_model_create(&r->m, spec, B, threads, 1, &err)) return fail("model", &err);
        int64_t n = (int64_t)B * (per_round * ROUNDS + 5), xd[2] = {n, L}, yd[1] = {n};
        int32_t *x = malloc((size_t)(n * L) * 4), *y = malloc((size_t)n * 4);
        herd_rng g;
        herd_rng_init(&g, 5, 0);
        for (int64_t i = 0; i < n * L; i++) x[i] = draw_id(&g, r->rows, alpha);
        for (int64_t i = 0; i < n; i++) y[i] = (int32_t)(x[i * L] % 2);
        if (herd_dataset_from_memory(&r->ds, herd_tensor_make(HERD_I32, 2, xd, x), herd_tensor_make(HERD_I32, 1, yd, y), 2,
                                     "synthetic", &err))
            return fail("data", &err);
        herd_train_config cfg = herd_train_defaults();
        cfg.batch = B, cfg.optimizer = "adam", cfg.sparse_optimizer = "adam", cfg.lr = 1e-3f;
        if (herd_trainer_create(&r->t, r->m, &cfg, per_round * ROUNDS + 5, &err)) return fail("trainer", &err);
        r->idx = malloc((size_t)n * sizeof *r->idx);
        for (int64_t i = 0; i < n; i++) r->idx[i] = i;
        double warm;
        if (run_steps(r, B, 5, &warm)) return 1; /* warm-up */
    }
    for (int round = 0; round < ROUNDS; round++)
        for (int k = 0; k < n_sizes; k++)
            if (run_steps(&runs[k], B, per_round, &runs[k].round_ms[round])) return 1;
    for (int k = 0; k < n_sizes; k++) {
        size_run *r = &runs[k];
        qsort(r->round_ms, ROUNDS, sizeof r->round_ms[0], cmp_double);
        printf("rows=%lld dim=64 batch=%d ids=%d threads=%d step_ms=%.3f min_ms=%.3f max_ms=%.3f rows_a_step=%.0f\n", r->rows,
               B, L, threads, r->round_ms[ROUNDS / 2], r->round_ms[0], r->round_ms[ROUNDS - 1],
               (double)r->rows_updated / (double)r->steps);
    }
    double table_mib = (double)largest * 64 * 4 / 1048576.0;
    printf("peak_rss_mib=%.0f largest_table_mib=%.0f ratio=%.2f\n", peak_rss_mib(), table_mib, peak_rss_mib() / table_mib);
    long long sizes[MAX_SIZES];
    for (int k = 0; k < n_sizes; k++) {
        sizes[k] = runs[k].rows;
        herd_trainer_destroy(runs[k].t);
        herd_dataset_close(runs[k].ds);
        herd_model_destroy(runs[k].m);
        free(runs[k].idx);
    }
    fflush(stdout);
    return memory_floor(sizes, n_sizes, B, L, steps, threads, alpha);
}
