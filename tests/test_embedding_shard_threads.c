/* Embedding tables sharded across data-parallel ranks (--embedding-shard), ranks as threads: a
 * model with a bag table (pad id, unused slots) and a one-id table trains to the bits of one
 * process on 1 rank, to float tolerance on 2 and 4 (bit-identical with --deterministic on 1, 2
 * and 4 ranks), the table and row plans give the same bits; each rank holds its plan's rows (1/N
 * of the bytes row-wise); checkpoints written by 4 ranks row-wise resume on 1 rank unsharded and
 * on 2 ranks table-wise to the bits of the run without a stop (SGD, and lazy Adam: its state
 * gathered too); a checkpoint's gather writes the whole tables on rank 0 alone (in pieces across
 * the ranks' ranges) and leaves the other ranks' copy and optimizer state at their rows; evaluation
 * through the lookup (ranks with different numbers of batches) has the bits of whole tables, and
 * under --deterministic those of the unsharded ranks, also after herd_train left the tables with
 * their owners (shard_tables_stay: no rank's model then holds more than a part's rows); the tables' own learning rate
 * (--sparse-lr) moves each touched row by exactly its rate times its gradient, sharded or not,
 * and equal to --lr gives the default's bits; a table's init is row-addressable (rows alone are
 * the whole table's bits) and a sharded rank never writes the model's whole tables; a model
 * without tables, an unknown plan and another strategy are one line each. Reference kernels, one thread a rank. */
#include <math.h>
#include <string.h>
#include <sys/stat.h>

#include "check.h"
#include "dist/embedding_shard.h"
#include "herd/data.h"
#include "herd/train.h"
#include "rank_threads.h"
#include "train/trainer_internal.h"

#define SAMPLES 96
#define B 16
#define STEPS 6
#define BAG 6
#define BAG_ROWS 50
#define ONE_ROWS 37
#define EVAL_N 81 /* evaluated: 20 or 21 samples a rank on 4, 40 or 41 on 2, in batches of 4 or 8 */

static const char *SPEC = "input 4 name=x\ninput 6 dtype=i32 name=bag\ninput 1 dtype=i32 name=one\n"
                          "embedding_bag 50 4 mode=mean pad=0 std=0.5 from=bag name=b\n"
                          "embedding 37 4 std=0.5 from=one name=e\nconcat x,b,e\ndense 8 relu\ndense 3\n";
static const char *SPEC_DENSE = "input 4\ndense 3\n";

typedef struct job {
    const char *spec;
    herd_strategy_config cfg;
    const char *shard; /* --embedding-shard, or NULL */
    herd_dataset *ds;
    float *out; /* rank 0's parameters after training (whole tables) */
    int64_t n;
    int64_t held[4]; /* bytes of table rows each rank holds */
    const char *ckpt_dir; /* set: herd_train for 2 epochs, checkpoints every 4 steps there */
    int resume;
    float sparse_lr; /* --sparse-lr (0: --lr) */
    const char *optimizer; /* --optimizer (NULL: the default) */
    int64_t written[4]; /* table floats of the model's own copy not zero once the trainer was made */
    int64_t ckpt_changed[4]; /* table floats a checkpoint's gather changed in the model's copy */
    int ckpt_whole;          /* rank 0's tables after a checkpoint's gather: the bits of the synced ones */
    int ckpt_state;          /* ranks other than 0 made no whole optimizer state */
    herd_metrics *eval;      /* rank 0's evaluation of the first EVAL_N samples after training */
    int eval_same[4];        /* sharded: that evaluation had the bits of one with whole tables */
    int stay;                /* herd_train for 2 epochs with shard_tables_stay, then evaluated */
    int64_t stay_rows[4];    /* then: rows of the one-id table past the first 8 not zero in the model */
} job;

/* After training: herd_evaluate with the strategy into j->eval (rank 0's); sharded, the rows come
 * from their owners and the ranks need different numbers of batches, and the same evaluation with
 * whole tables on every rank (the shard's allgatherv, the strategy without its shard) must have
 * the same bits. Leaves whole tables in every rank's model. */
static herd_status eval_check(job *j, int rank, herd_model *m, herd_strategy *s, herd_trainer *t, herd_error *err) {
    herd_dataset *v = NULL;
    herd_metrics *a = malloc(2 * sizeof *a);
    herd_status st = a ? herd_dataset_slice(&v, j->ds, 0, EVAL_N, err) : herd_fail(err, HERD_ENOMEM, "out of memory");
    if (!st) st = herd_evaluate(m, v, B, s, &a[0], err);
    if (!st && t->shard) {
        st = herd_embedding_shard_gather(t->shard, -1, NULL, NULL, NULL, err);
        s->shard = NULL;
        if (!st) st = herd_evaluate(m, v, B, s, &a[1], err);
        s->shard = t->shard;
        if (!st) j->eval_same[rank] = !memcmp(&a[0], &a[1], sizeof *a);
    }
    if (!st && rank == 0 && j->eval) *j->eval = a[0];
    herd_dataset_close(v);
    free(a);
    return st;
}

static void train_rank(rank_ctx *r) {
    job *j = r->arg;
    herd_model *m = NULL;
    herd_strategy *s = NULL;
    herd_trainer *t = NULL;
    herd_strategy_layout lay;
    herd_status st = herd_strategy_layout_for(&j->cfg, r->size, B, &lay, &r->err);
    if (!st) st = herd_model_parse(&m, j->spec, "<test>", &r->err);
    if (!st) herd_model_init_params(m, 11);
    if (!st) st = herd_model_prepare(m, "ref", lay.rows, 1, &r->err);
    if (!st) st = herd_strategy_create(&s, r->comm, m, &j->cfg, &r->err);
    herd_train_config tc = herd_train_defaults();
    tc.batch = B, tc.lr = 0.05f, tc.seed = 3, tc.strategy = s, tc.embedding_shard = j->shard;
    tc.sparse_lr = j->sparse_lr;
    if (j->optimizer) tc.optimizer = j->optimizer;
    if (!st && j->ckpt_dir) {
        tc.epochs = 2, tc.checkpoint_dir = j->ckpt_dir, tc.checkpoint_every = 4, tc.keep_checkpoints = 0;
        tc.resume = j->resume;
        st = herd_train(m, j->ds, NULL, &tc, NULL, &r->err);
        goto trained;
    }
    if (!st && j->stay) { /* the rows stay with their owners; the evaluation after training still finds them */
        tc.epochs = 2, tc.shard_tables_stay = 1;
        st = herd_train(m, j->ds, NULL, &tc, NULL, &r->err);
        herd_dataset *v = NULL;
        if (!st) st = herd_dataset_slice(&v, j->ds, 0, EVAL_N, &r->err);
        if (!st) st = herd_evaluate(m, v, B, s, j->eval + r->rank, &r->err);
        herd_dataset_close(v);
        herd_sparse_table e;
        for (int k = 0; !st && k < herd_model_sparse_count(m); k++) {
            herd_model_sparse_table(m, k, &e);
            if (e.rows != ONE_ROWS || r->rank >= 4) continue;
            const float *w = herd_model_params(m, NULL) + herd_model_param(m, e.param)->offset;
            j->stay_rows[r->rank] = 0;
            for (int64_t i = 8; i < e.rows; i++) {
                int any = 0;
                for (int64_t d = 0; d < e.dim; d++) any |= w[i * e.dim + d] != 0;
                j->stay_rows[r->rank] += any;
            }
        }
        goto trained;
    }
    if (!st) st = herd_trainer_create(&t, m, &tc, SAMPLES / B, &r->err);
    if (!st && r->rank < 4) { /* sharded: each rank wrote its own rows alone, the model's tables untouched */
        int64_t n, dense = herd_model_dense_params(m);
        const float *p = herd_model_params(m, &n);
        j->written[r->rank] = 0;
        for (int64_t i = dense; i < n; i++) j->written[r->rank] += p[i] != 0;
    }
    int64_t idx[B];
    for (int step = 0; step < STEPS && !st; step++) {
        for (int b = 0; b < B; b++) idx[b] = (step * 37 + b * 5) % SAMPLES;
        herd_step_result res;
        st = herd_trainer_step(t, j->ds, idx, B, &res, &r->err);
    }
    /* a checkpoint's gather: the tables whole on rank 0 alone (the synced bits), the others' copy untouched */
    float *before = NULL;
    int64_t np = 0, dense = herd_model_dense_params(m);
    if (!st && t->shard && r->rank < 4) {
        const float *p = herd_model_params(m, &np);
        if ((before = malloc((size_t)np * sizeof *before))) memcpy(before, p, (size_t)np * sizeof *before);
        herd_embedding_shard_set_piece(t->shard, 4 * 7); /* pieces of 7 rows: across the ranks' ranges */
        st = before ? herdi_checkpoint_gather(t, &r->err) : herd_fail(&r->err, HERD_ENOMEM, "out of memory");
    }
    if (!st && before) {
        const float *p = herd_model_params(m, NULL);
        j->ckpt_changed[r->rank] = 0;
        for (int64_t i = dense; i < np; i++) j->ckpt_changed[r->rank] += p[i] != before[i];
        if (r->rank == 0) memcpy(before, p, (size_t)np * sizeof *before);
        int none = 1;
        for (int k = 0; k < 2 * t->n_sparse && r->rank; k++) none &= t->sparse_full[k] == NULL;
        if (r->rank) j->ckpt_state = j->ckpt_state && none;
    }
    if (!st) st = herd_trainer_sync(t, &r->err);
    if (!st && before && r->rank == 0)
        j->ckpt_whole = !memcmp(before + dense, herd_model_params(m, NULL) + dense, (size_t)(np - dense) * sizeof(float));
    free(before);
    if (!st && r->rank < 4) st = eval_check(j, r->rank, m, s, t, &r->err);
    if (!st && t->shard && r->rank < 4) {
        j->held[r->rank] = 0;
        for (int k = 0; k < t->n_sparse; k++) {
            int64_t lo, hi;
            herd_embedding_shard_range(t->shard, k, &lo, &hi);
            j->held[r->rank] += (hi - lo) * t->sparse[k].dim * 4;
        }
    }
trained:
    if (!st && r->rank == 0) {
        const float *p = herd_model_params(m, &j->n);
        memcpy(j->out, p, (size_t)j->n * sizeof(float));
    }
    r->status = st;
    herd_trainer_destroy(t);
    herd_strategy_destroy(s);
    herd_model_destroy(m);
}

static float ref[8192], got[8192], det[8192], other[8192];

static int run(job *j, int ranks, float *out) {
    rank_ctx ctx[4];
    j->out = out, j->ckpt_whole = 0, j->ckpt_state = 1;
    memset(j->eval_same, 0, sizeof j->eval_same);
    int bad = run_ranks(ranks, 30, train_rank, j, ctx);
    for (int r = 0; r < ranks; r++)
        if (ctx[r].status) fprintf(stderr, "rank %d of %d: %s\n", r, ranks, ctx[r].err.msg);
    return bad;
}

static double max_diff(const float *a, const float *b, int64_t n) {
    double d = 0;
    for (int64_t i = 0; i < n; i++) d = fmax(d, fabs((double)a[i] - (double)b[i]));
    return d;
}

/* One line naming what is wrong, on every rank */
static void expect_refused(job *j, int ranks, const char *what, const char *needle) {
    rank_ctx ctx[4];
    j->out = got;
    run_ranks(ranks, 30, train_rank, j, ctx);
    CHECK(ctx[0].status == HERD_EARG && strstr(ctx[0].err.msg, needle) && !strchr(ctx[0].err.msg, '\n'), "%s: %s",
          what, ctx[0].err.msg);
}

/* The tables' learning rate (--sparse-lr), one process, SGD on both sides under a cosine schedule
 * with warm-up: each step moves every row the batch touched by exactly -(the step's sparse lr) x
 * its gradient and no other row, at 2x the dense lr every step; the dense parameters take the
 * dense lr alone (the same bits as without --sparse-lr after one step); --sparse-lr equal to --lr
 * gives the default's bits. Returns the steps checked. */
static int sparse_lr_steps(herd_dataset *ds, float sparse_lr, float *out, float *first, int64_t *n_out) {
    herd_error err = {0};
    herd_model *m = NULL;
    herd_trainer *t = NULL;
    herd_train_config tc = herd_train_defaults();
    tc.batch = B, tc.lr = 0.05f, tc.seed = 3, tc.sparse_lr = sparse_lr, tc.optimizer = "sgd";
    tc.sparse_optimizer = "sgd", tc.schedule = "cosine", tc.warmup_steps = 2, tc.min_lr = 0.01f;
    herd_status st = herd_model_parse(&m, SPEC, "<test>", &err);
    if (!st) herd_model_init_params(m, 11);
    if (!st) st = herd_model_prepare(m, "ref", B, 1, &err);
    if (!st) st = herd_trainer_create(&t, m, &tc, STEPS, &err);
    CHECK(!st, "--sparse-lr %g: %s", sparse_lr, err.msg);
    if (st) return 0;
    int64_t n;
    float *p = herd_model_params(m, &n), *before = malloc((size_t)n * sizeof *before);
    int64_t idx[B];
    int checked = 0, bad = 0;
    for (int step = 0; step < STEPS && before && !st; step++) {
        for (int b = 0; b < B; b++) idx[b] = (step * 37 + b * 5) % SAMPLES;
        memcpy(before, p, (size_t)n * sizeof *p);
        herd_step_result res;
        if ((st = herd_trainer_step(t, ds, idx, B, &res, &err))) break;
        /* the step's rates: the dense one from the schedule, the tables' from it at sparse_lr / lr */
        float lr = herd_schedule_lr(&t->sched, step), slr = herd_schedule_lr(&t->sparse_sched, step);
        float want = sparse_lr > 0 ? sparse_lr / tc.lr : 1.0f;
        bad += slr != want * lr;
        for (int k = 0; k < t->n_sparse; k++) {
            const herd_sparse_grad *g = &t->sparse_grads[k];
            const herd_param_info *pi = herd_model_param(m, g->param);
            int64_t r = 0;
            for (int64_t row = 0; row < pi->shape[0]; row++)
                for (int64_t d = 0; d < g->dim; d++) {
                    int64_t at = pi->offset + row * g->dim + d;
                    int touched = r < g->rows && g->ids[r] == row;
                    float expect = before[at];
                    if (touched) expect += -slr * g->values[r * g->dim + d]; /* the kernel's p += -lr g */
                    bad += memcmp(&expect, &p[at], sizeof expect) != 0;
                    if (touched && d == g->dim - 1) r++;
                }
            bad += r != g->rows; /* the ids came sorted and every one was met */
        }
        if (step == 0) memcpy(first, p, (size_t)n * sizeof *p);
        checked++;
    }
    CHECK(!st, "--sparse-lr %g: %s", sparse_lr, err.msg);
    CHECK(!bad, "--sparse-lr %g: %d table values or step rates not as the rule says", sparse_lr, bad);
    memcpy(out, p, (size_t)n * sizeof *p);
    *n_out = n;
    free(before);
    herd_trainer_destroy(t);
    herd_model_destroy(m);
    return checked;
}

/* A table's init is row-addressable: rows [lo, hi) alone (herd_model_table_init_rows) are the
 * whole table's rows bit for bit (the pad row zero), and the whole table is written at the first
 * access of the parameters. */
static void init_rows_check(void) {
    herd_model *m = NULL;
    herd_error err = {0};
    CHECK(!herd_model_parse(&m, SPEC, "<test>", &err), "%s", err.msg);
    if (!m) return;
    herd_model_init_params(m, 11);
    CHECK(herd_model_tables_pending(m), "the tables were written by herd_model_init_params");
    static float part[2][BAG_ROWS * 4];
    static const int64_t ranges[][3] = {{0, 0, 50}, {0, 0, 1}, {0, 7, 31}, {0, 49, 50}, {1, 0, 37}, {1, 12, 13}};
    herd_sparse_table tb[2];
    for (int k = 0; k < 2; k++) herd_model_sparse_table(m, k, &tb[k]);
    for (int q = 0; q < 6; q++) {
        const int64_t *r = ranges[q];
        CHECK(!herd_model_table_init_rows(m, tb[r[0]].param, r[1], r[2], part[q % 2], &err), "%s", err.msg);
        CHECK(herd_model_tables_pending(m), "herd_model_table_init_rows wrote the model's tables");
        const float *whole = herd_model_params(m, NULL) + herd_model_param(m, tb[r[0]].param)->offset; /* writes them */
        CHECK(!herd_model_tables_pending(m), "herd_model_params left the tables pending");
        CHECK(memcmp(part[q % 2], whole + r[1] * 4, (size_t)(r[2] - r[1]) * 4 * sizeof(float)) == 0,
              "table %lld rows [%lld, %lld) alone: not the whole table's values", (long long)r[0], (long long)r[1],
              (long long)r[2]);
        herd_model_init_params(m, 11); /* pending again */
    }
    CHECK(herd_model_table_init_rows(m, tb[0].param, 40, 51, part[0], &err) == HERD_EINTERNAL, "rows past the end");
    herd_model_destroy(m);
}

static void sparse_lr_check(herd_dataset *ds) {
    static float base[8192], twice[8192], same[8192], base1[8192], twice1[8192], same1[8192];
    int64_t n = 0, dense;
    CHECK(sparse_lr_steps(ds, 0, base, base1, &n) == STEPS, "default: steps checked");
    CHECK(sparse_lr_steps(ds, 0.1f, twice, twice1, &n) == STEPS, "--sparse-lr 2x: steps checked");
    CHECK(sparse_lr_steps(ds, 0.05f, same, same1, &n) == STEPS, "--sparse-lr = --lr: steps checked");
    CHECK(memcmp(base, same, (size_t)n * sizeof(float)) == 0, "--sparse-lr equal to --lr: not the default's bits");
    CHECK(memcmp(base, twice, (size_t)n * sizeof(float)) != 0, "--sparse-lr 2x: the same weights as the default");
    herd_model *m = NULL;
    herd_error err = {0};
    CHECK(!herd_model_parse(&m, SPEC, "<test>", &err), "%s", err.msg);
    dense = m ? herd_model_dense_params(m) : 0;
    herd_model_destroy(m);
    CHECK(dense > 0 && dense < n && memcmp(base1, twice1, (size_t)dense * sizeof(float)) == 0,
          "--sparse-lr 2x: the dense parameters after the first step are not the default's");
}

/* 4 ranks row-wise write checkpoints (--deterministic, the tables at --sparse-lr 2x); the one
 * after step 4 resumes on 1 rank unsharded, on 2 ranks table-wise and on 4 row-wise, each ending
 * on the unbroken run's bits */
static void resume_matrix(herd_dataset *ds, const char *optimizer) {
    static float full[8192];
    char dir[64], src[256], dst[256], written[96];
    snprintf(dir, sizeof dir, "/tmp/herd_shard_XXXXXX");
    if (!mkdtemp(dir)) {
        CHECK(0, "no scratch directory");
        return;
    }
    snprintf(written, sizeof written, "%s/w", dir);
    job w = {.spec = SPEC, .cfg = herd_strategy_defaults(HERD_STRATEGY_DP), .ds = ds, .shard = "row", .ckpt_dir = written,
             .sparse_lr = 0.1f, .optimizer = optimizer};
    w.cfg.deterministic = 1;
    CHECK(!run(&w, 4, full), "4 ranks row-wise writing checkpoints");
    snprintf(src, sizeof src, "%s/ckpt-0000000004.safetensors", written);
    static const struct {
        int ranks;
        const char *shard;
    } layouts[] = {{1, NULL}, {2, "table"}, {4, "row"}, {1, "row"}};
    for (int k = 0; k < 4; k++) {
        char resumed[96];
        snprintf(resumed, sizeof resumed, "%s/r%d", dir, k);
        snprintf(dst, sizeof dst, "%s/ckpt-0000000004.safetensors", resumed);
        CHECK(mkdir(resumed, 0700) == 0 && copy_file(src, dst) == 0, "copying %s", src);
        w.ckpt_dir = resumed, w.resume = 1, w.shard = layouts[k].shard;
        CHECK(!run(&w, layouts[k].ranks, got), "%s: resume on %d ranks, %s", optimizer ? optimizer : "sgd",
              layouts[k].ranks, layouts[k].shard ? layouts[k].shard : "unsharded");
        CHECK(memcmp(full, got, (size_t)w.n * sizeof(float)) == 0,
              "%s: resumed on %d ranks %s: not the bits of the run without a stop (max %.3g)",
              optimizer ? optimizer : "sgd", layouts[k].ranks,
              layouts[k].shard ? layouts[k].shard : "unsharded", max_diff(full, got, w.n));
    }
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    CHECK(system(cmd) == 0, "%s", cmd);
}

int main(void) {
    float *x = malloc(SAMPLES * 4 * sizeof *x);
    int32_t *bag = malloc(SAMPLES * BAG * sizeof *bag), *one = malloc(SAMPLES * sizeof *one),
            *y = malloc(SAMPLES * sizeof *y);
    if (!x || !bag || !one || !y) return 1;
    herd_rng rng;
    herd_rng_init(&rng, 5, 0);
    for (int i = 0; i < SAMPLES; i++) {
        for (int k = 0; k < 4; k++) x[i * 4 + k] = herd_rng_normal(&rng);
        int len = 1 + (int)herd_rng_below(&rng, BAG); /* the rest unused slots; some ids the pad */
        for (int k = 0; k < BAG; k++)
            bag[i * BAG + k] = k >= len ? HERD_NO_ID : (int32_t)herd_rng_below(&rng, BAG_ROWS);
        one[i] = (int32_t)herd_rng_below(&rng, ONE_ROWS);
        y[i] = (bag[i * BAG] + one[i]) % 3;
    }
    herd_error err = {0};
    herd_dataset *ds = NULL;
    herd_tensor xs[3] = {herd_tensor_make(HERD_F32, 2, (int64_t[]){SAMPLES, 4}, x),
                         herd_tensor_make(HERD_I32, 2, (int64_t[]){SAMPLES, BAG}, bag),
                         herd_tensor_make(HERD_I32, 2, (int64_t[]){SAMPLES, 1}, one)};
    if (herd_dataset_from_memory_fields(&ds, xs, 3, herd_tensor_make(HERD_I32, 1, (int64_t[]){SAMPLES}, y), 3, "mem",
                                        &err)) {
        fprintf(stderr, "%s\n", err.msg);
        return 1;
    }
    herd_metrics *ev = malloc(3 * sizeof *ev); /* one process's, a sharded run's, an unsharded run's */
    if (!ev) return 1;
    job j = {.spec = SPEC, .cfg = herd_strategy_defaults(HERD_STRATEGY_DP), .ds = ds, .eval = &ev[0]};
    CHECK(!run(&j, 1, ref), "one process failed");
    j.shard = "row", j.eval = &ev[1];
    CHECK(!run(&j, 1, got), "one rank, row-wise");
    CHECK(memcmp(ref, got, (size_t)j.n * sizeof(float)) == 0, "row-wise on one rank: not one process's bits (max %.3g)",
          max_diff(ref, got, j.n));
    CHECK(j.eval_same[0] && !memcmp(&ev[0], &ev[1], sizeof *ev), "row-wise on one rank: the evaluation is not one "
          "process's bits (loss %.9g against %.9g)", herd_metrics_loss(&ev[1]), herd_metrics_loss(&ev[0]));
    herd_model *m0 = NULL;
    if (!herd_model_parse(&m0, SPEC, "<test>", &err)) herd_model_init_params(m0, 11);
    CHECK(m0 && max_diff(herd_model_params(m0, NULL), ref, j.n) > 0.02, "%d steps hardly moved the weights", STEPS);
    herd_model_destroy(m0);
    for (int ranks = 2; ranks <= 4; ranks *= 2) {
        j.shard = "row";
        CHECK(!run(&j, ranks, got), "%d ranks row-wise", ranks);
        CHECK(max_diff(ref, got, j.n) <= 2e-6, "%d ranks row-wise: %.3g from one process", ranks, max_diff(ref, got, j.n));
        for (int r = 0; r < ranks; r++)
            CHECK(j.eval_same[r], "row-wise on %d ranks: rank %d's evaluation through the lookup is not the bits of whole "
                  "tables", ranks, r);
        CHECK(fabs(herd_metrics_loss(&ev[1]) - herd_metrics_loss(&ev[0])) <= 1e-5 &&
                  fabs(herd_metrics_value(&ev[1], HERD_METRIC_ACCURACY) -
                       herd_metrics_value(&ev[0], HERD_METRIC_ACCURACY)) <= 1.0 / EVAL_N &&
                  ev[1].samples == EVAL_N,
              "row-wise on %d ranks: evaluated loss %.7f, accuracy %.4f over %.0f samples; one process %.7f, %.4f", ranks,
              herd_metrics_loss(&ev[1]), herd_metrics_value(&ev[1], HERD_METRIC_ACCURACY), ev[1].samples,
              herd_metrics_loss(&ev[0]), herd_metrics_value(&ev[0], HERD_METRIC_ACCURACY));
        /* 1/N of the bytes, to a row of each table (these are small; bench/embedding_shard measures large ones) */
        int64_t total = (BAG_ROWS + ONE_ROWS) * 4 * 4, even = total / ranks, sum = 0;
        for (int r = 0; r < ranks; r++) {
            CHECK(llabs(j.held[r] - even) <= 2 * 16, "row-wise on %d ranks: rank %d holds %lld of %lld table bytes",
                  ranks, r, (long long)j.held[r], (long long)total);
            sum += j.held[r];
        }
        CHECK(sum == total, "row-wise on %d ranks: the ranks hold %lld of %lld table bytes", ranks, (long long)sum,
              (long long)total);
        for (int r = 0; r < ranks; r++)
            CHECK(j.written[r] == 0, "row-wise on %d ranks: rank %d wrote %lld values of the model's whole tables", ranks,
                  r, (long long)j.written[r]);
        CHECK(j.ckpt_whole && j.ckpt_changed[0] > 0, "row-wise on %d ranks: a checkpoint's gather did not write the "
              "whole tables on rank 0", ranks);
        for (int r = 1; r < ranks; r++)
            CHECK(j.ckpt_changed[r] == 0 && j.ckpt_state, "row-wise on %d ranks: a checkpoint's gather wrote %lld values "
                  "of rank %d's tables (or made whole optimizer state there)", ranks, (long long)j.ckpt_changed[r], r);
        j.shard = "table";
        CHECK(!run(&j, ranks, other), "%d ranks table-wise", ranks);
        CHECK(j.ckpt_whole, "table-wise on %d ranks: a checkpoint's gather did not write the whole tables on rank 0",
              ranks);
        for (int r = 0; r < ranks; r++)
            CHECK(j.eval_same[r], "table-wise on %d ranks: rank %d's evaluation through the lookup is not the bits of "
                  "whole tables", ranks, r);
        CHECK(memcmp(got, other, (size_t)j.n * sizeof(float)) == 0, "%d ranks: table-wise differs from row-wise (max %.3g)",
              ranks, max_diff(got, other, j.n));
        CHECK(j.held[0] == BAG_ROWS * 16 && j.held[1] == ONE_ROWS * 16, "table-wise on %d ranks: ranks hold %lld, %lld bytes",
              ranks, (long long)j.held[0], (long long)j.held[1]);
    }
    /* --deterministic: the bits of one process for 1, 2 and 4 ranks and both plans; the evaluation
     * the bits of the unsharded ranks' */
    job d = {.spec = SPEC, .cfg = herd_strategy_defaults(HERD_STRATEGY_DP), .ds = ds, .eval = &ev[0]};
    d.cfg.deterministic = 1;
    CHECK(!run(&d, 1, det), "deterministic, one process");
    for (int ranks = 1; ranks <= 4; ranks *= 2) {
        d.shard = NULL, d.eval = &ev[2];
        CHECK(!run(&d, ranks, got), "deterministic, %d ranks unsharded", ranks);
        d.eval = &ev[1];
        for (int plan = 0; plan < 2; plan++) {
            d.shard = plan ? "table" : "row";
            CHECK(!run(&d, ranks, got), "deterministic, %d ranks %s-wise", ranks, d.shard);
            CHECK(memcmp(det, got, (size_t)d.n * sizeof(float)) == 0, "deterministic, %d ranks %s-wise: not one "
                  "process's bits (max %.3g)", ranks, d.shard, max_diff(det, got, d.n));
            CHECK(!memcmp(&ev[1], &ev[2], sizeof *ev), "deterministic, %d ranks %s-wise: the evaluation (loss %.9g) is "
                  "not the unsharded one's bits (%.9g)", ranks, d.shard, herd_metrics_loss(&ev[1]),
                  herd_metrics_loss(&ev[2]));
        }
    }
    d.eval = &ev[0];
    /* tables left with their owners after herd_train (nothing saves): no rank's model holds more of
     * the one-id table than a part's 8 rows, and the evaluation after training (the strategy's
     * shard) has the bits of the unsharded ranks' */
    herd_metrics *st2 = malloc(4 * sizeof *st2);
    if (!st2) return 1;
    d.stay = 1, d.shard = NULL, d.eval = st2;
    CHECK(!run(&d, 2, got), "deterministic, 2 ranks unsharded, herd_train");
    d.shard = "row", d.eval = st2 + 2;
    memset(d.stay_rows, 0xff, sizeof d.stay_rows);
    CHECK(!run(&d, 2, got), "deterministic, 2 ranks row-wise, herd_train, tables left with their owners");
    for (int r = 0; r < 2; r++) {
        CHECK(d.stay_rows[r] == 0, "tables left with their owners: rank %d's model holds %lld rows of the one-id table "
              "past a part's 8", r, (long long)d.stay_rows[r]);
        CHECK(!memcmp(&st2[r], &st2[2 + r], sizeof *st2), "tables left with their owners: rank %d's evaluation after "
              "herd_train (loss %.9g) is not the unsharded one's bits (%.9g)", r, herd_metrics_loss(&st2[2 + r]),
              herd_metrics_loss(&st2[r]));
    }
    free(st2);
    d.stay = 0, d.eval = &ev[0];
    /* the tables' own rate reaches the owners' rows: 4 ranks row-wise, one process's bits */
    d.sparse_lr = 0.1f, d.shard = NULL;
    CHECK(!run(&d, 1, det), "deterministic, --sparse-lr, one process");
    d.shard = "row";
    CHECK(!run(&d, 4, got), "deterministic, --sparse-lr, 4 ranks row-wise");
    CHECK(memcmp(det, got, (size_t)d.n * sizeof(float)) == 0, "deterministic, --sparse-lr 2x, 4 ranks row-wise: not one "
          "process's bits (max %.3g)", max_diff(det, got, d.n));
    sparse_lr_check(ds);
    init_rows_check();
    resume_matrix(ds, NULL);
    resume_matrix(ds, "adam"); /* lazy Adam: the tables' m and v gathered on rank 0 */

    /* refusals: one line each */
    job bad = {.spec = SPEC, .cfg = herd_strategy_defaults(HERD_STRATEGY_DP), .ds = ds, .shard = "diagonal"};
    expect_refused(&bad, 2, "unknown plan", "--embedding-shard diagonal: unknown plan");
    herd_dataset_close(ds);
    float *xd = malloc(SAMPLES * 4 * sizeof *xd);
    int32_t *yd = malloc(SAMPLES * sizeof *yd);
    if (!xd || !yd) return 1;
    for (int i = 0; i < SAMPLES * 4; i++) xd[i] = (float)(i % 7);
    for (int i = 0; i < SAMPLES; i++) yd[i] = i % 3;
    if (herd_dataset_from_memory(&ds, herd_tensor_make(HERD_F32, 2, (int64_t[]){SAMPLES, 4}, xd),
                                 herd_tensor_make(HERD_I32, 1, (int64_t[]){SAMPLES}, yd), 3, "mem", &err))
        return 1;
    job dense = {.spec = SPEC_DENSE, .cfg = herd_strategy_defaults(HERD_STRATEGY_DP), .ds = ds, .shard = "row"};
    expect_refused(&dense, 2, "a model without tables", "no embedding table to shard");
    herd_dataset_close(ds);
    free(ev);
    return check_summary();
}
