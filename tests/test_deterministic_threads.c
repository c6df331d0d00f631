/* --deterministic whatever the layout: ranks as threads (herd_comm_threads_open), each rank's
 * model on the cpu backend with its own pool of threads; the example CNN (dropout) and a CNN
 * with batch norm (running statistics included) end on the same bits for ranks x threads =
 * 1x1, 1x2, 1x3, 2x1, 2x2 and 4x1. */
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "dist/strategy.h"
#include "herd/train.h"
#include "rank_threads.h"

#define SAMPLES 64
#define CLASSES 10
#define B 32
#define STEPS 3
#define PIXELS (28 * 28)

/* batch norm after convolutions of both conv paths (28x28 and 7x7 per image, and 4x4 maps
 * that several images share one product for) and after a dense layer */
static const char *SPEC_BN = "input 1x28x28\nconv 8 3 pad=1\nbatchnorm relu\nmaxpool 2\nconv 16 3 pad=1\n"
                             "batchnorm relu\nmaxpool 2\nconv 16 3 stride=2 pad=1\nbatchnorm relu\nflatten\n"
                             "dense 32\nbatchnorm relu\ndropout 0.2\ndense 10\n";

typedef struct job {
    const char *spec, *path; /* spec text, or a spec file */
    int threads, fixed;      /* per rank; fixed: herd_model_set_fixed_reduction as the layout says */
    herd_dataset *ds;
    float *params, *buffers; /* rank 0's after the last step */
    int64_t n_params, n_buffers;
} job;

static herd_status make_model(const job *j, const herd_strategy_config *cfg, int world, herd_model **m,
                              herd_error *err) {
    herd_strategy_layout lay;
    herd_status st = herd_strategy_layout_for(cfg, world, B, &lay, err);
    if (st) return st;
    if (j->path) {
        if ((st = herd_model_open(m, j->path, 11, err))) return st;
    } else {
        if ((st = herd_model_parse(m, j->spec, "<test>", err))) return st;
        herd_model_init_params(*m, 11);
    }
    herd_model_set_fixed_reduction(*m, j->fixed && lay.fixed_reduction);
    return herd_model_prepare(*m, "cpu", lay.rows, j->threads, err);
}

static void train_rank(rank_ctx *r) {
    job *j = r->arg;
    herd_model *m = NULL;
    herd_strategy *s = NULL;
    herd_trainer *t = NULL;
    herd_strategy_config cfg = herd_strategy_defaults(HERD_STRATEGY_DP);
    cfg.deterministic = 1;
    herd_status st = make_model(j, &cfg, r->size, &m, &r->err);
    if (!st) st = herd_strategy_create(&s, r->comm, m, &cfg, &r->err);
    herd_train_config tc = herd_train_defaults();
    tc.batch = B, tc.lr = 0.01f, tc.seed = 3, tc.strategy = s;
    if (!st) st = herd_trainer_create(&t, m, &tc, SAMPLES / B, &r->err);
    int64_t idx[B];
    for (int step = 0; step < STEPS && !st; step++) {
        for (int b = 0; b < B; b++) idx[b] = (step * 37 + b * 5) % SAMPLES;
        herd_step_result res;
        st = herd_trainer_step(t, j->ds, idx, B, &res, &r->err);
    }
    if (!st) st = herd_strategy_sync_model(s, STEPS, &r->err);
    if (!st && herd_strategy_world_rank(s) == 0) {
        const float *p = herd_model_params(m, &j->n_params), *b = herd_model_buffers(m, &j->n_buffers);
        j->params = malloc((size_t)j->n_params * sizeof(float));
        j->buffers = malloc((size_t)(j->n_buffers ? j->n_buffers : 1) * sizeof(float));
        if (!j->params || !j->buffers) st = herd_fail(&r->err, HERD_ENOMEM, "out of memory");
        else memcpy(j->params, p, (size_t)j->n_params * sizeof(float)), memcpy(j->buffers, b, (size_t)j->n_buffers * sizeof(float));
    }
    r->status = st;
    herd_trainer_destroy(t);
    herd_strategy_destroy(s);
    herd_model_destroy(m);
}

static int run(job *j, int ranks) {
    rank_ctx ctx[4];
    free(j->params), free(j->buffers);
    j->params = j->buffers = NULL;
    int bad = run_ranks(ranks, 60, train_rank, j, ctx);
    for (int r = 0; r < ranks; r++)
        if (ctx[r].status) fprintf(stderr, "rank %d of %d: %s\n", r, ranks, ctx[r].err.msg);
    return bad;
}

static int same(const job *a, const job *b) {
    return a->n_params == b->n_params && a->n_buffers == b->n_buffers &&
           memcmp(a->params, b->params, (size_t)a->n_params * sizeof(float)) == 0 &&
           memcmp(a->buffers, b->buffers, (size_t)a->n_buffers * sizeof(float)) == 0;
}

static void layouts(const char *what, const char *spec, const char *path, herd_dataset *ds) {
    static const struct {
        int ranks, threads;
    } L[] = {{1, 2}, {1, 3}, {2, 1}, {2, 2}, {4, 1}};
    job one = {.spec = spec, .path = path, .threads = 1, .fixed = 1, .ds = ds};
    CHECK(!run(&one, 1), "%s: 1 rank x 1 thread failed", what);
    for (int k = 0; k < (int)(sizeof L / sizeof L[0]); k++) {
        job j = {.spec = spec, .path = path, .threads = L[k].threads, .fixed = 1, .ds = ds};
        CHECK(!run(&j, L[k].ranks), "%s: %d ranks x %d threads failed", what, L[k].ranks, L[k].threads);
        CHECK(j.params && one.params && same(&one, &j),
              "%s: %d ranks x %d threads: parameters or buffers differ from 1 x 1 (bit for bit)", what, L[k].ranks,
              L[k].threads);
        free(j.params), free(j.buffers);
    }
    /* what the fixed parts are for: one part per thread sums dw in another order (said, not
     * required: a kernel may become thread-independent on its own) */
    job per_thread = {.spec = spec, .path = path, .threads = 2, .fixed = 0, .ds = ds};
    if (!run(&per_thread, 1) && one.params)
        printf("%s: 1 x 2 with one part per thread %s 1 x 1\n", what, same(&one, &per_thread) ? "equals" : "differs from");
    free(per_thread.params), free(per_thread.buffers);
    free(one.params), free(one.buffers);
}

int main(void) {
    const char *src = getenv("HERD_SOURCE_DIR");
    char path[4096];
    snprintf(path, sizeof path, "%s/examples/fashion_cnn.spec", src ? src : ".");
    float *x = malloc(SAMPLES * PIXELS * sizeof *x); /* the dataset owns them */
    int32_t *y = malloc(SAMPLES * sizeof *y);
    if (!x || !y) return 1;
    herd_rng rng;
    herd_rng_init(&rng, 5, 0);
    for (int i = 0; i < SAMPLES; i++) { /* a bright square whose place is the class, in noise */
        y[i] = i % CLASSES;
        for (int k = 0; k < PIXELS; k++) {
            int row = k / 28, col = k % 28, on = row / 7 == y[i] % 4 && col / 7 == y[i] / 4;
            x[i * PIXELS + k] = 0.3f * herd_rng_normal(&rng) + (on ? 1.0f : 0.0f);
        }
    }
    herd_error err = {0};
    herd_dataset *ds = NULL;
    if (herd_dataset_from_memory(&ds, herd_tensor_make(HERD_F32, 4, (int64_t[]){SAMPLES, 1, 28, 28}, x),
                                 herd_tensor_make(HERD_I32, 1, (int64_t[]){SAMPLES}, y), CLASSES, "test", &err)) {
        fprintf(stderr, "%s\n", err.msg);
        return 1;
    }
    layouts("example CNN", NULL, path, ds);
    layouts("batch-norm CNN", SPEC_BN, NULL, ds);
    herd_dataset_close(ds);
    return check_summary();
}
