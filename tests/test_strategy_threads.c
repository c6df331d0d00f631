/* Every strategy with its ranks as threads (herd_comm_threads_open), against one process on
 * the same global batches: data parallel with buckets cut at parameter boundaries (many small
 * ones, and the automatic ones), bf16 gradients, --deterministic's fixed groups bit-identical
 * for 1, 2 and 4 ranks with dropout, ZeRO-1 bit-identical to plain data parallel (and with
 * --deterministic to one process) holding 1/N of the optimizer state, the parameter server with staleness 0 (equal to one
 * process) and 2 (the workers agree after an exact pull) or unbounded, and the GPipe and 1F1B
 * pipeline schedules on 2 stages and on 2 stages x 2 replicas; the layout-free resume matrix; the
 * parameter server with an embedding table (1 and 3 servers, the table split between two; lazy
 * Adam, Adagrad, row-wise Adagrad and SGD on the servers' rows, SGD also at --sparse-lr): equal to one process, the rows moved equal to the rows the batches touch, and its
 * checkpoints resumed under ps and data parallel (and data parallel's under ps); the small GPT of
 * tests/data/gpt_small.spec cut between its token embedding and the head tied to it (the tied
 * table on both stages, its copies bit-identical, equal to one process, and its checkpoints
 * resuming). Reference kernels, one thread per rank. */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "check.h"
#include "dist/strategy.h"
#include "herd/train.h"
#include "rank_threads.h"

#define SAMPLES 96
#define IN 12
#define CLASSES 4
#define B 16
#define STEPS 6

static const char *SPEC_PLAIN = "input 12\ndense 16 relu\ndense 16 relu\ndense 4\n";
static const char *SPEC_DROPOUT = "input 12\ndense 16 relu\ndropout 0.3\ndense 16 relu\ndense 4\n";
static const char *SPEC_SYNC_BN = "input 12\ndense 16 bias=0\nbatchnorm sync=1 relu\ndense 16 bias=0\nbatchnorm sync=1 relu\ndense 4\n";
static const char *SPEC_SYNC_BN_IMAGE = "input 12\nreshape 3x2x2\nconv 4 3 pad=1 bias=0\nbatchnorm sync=1 relu\nflatten\ndense 8 bias=0\nbatchnorm sync=1 relu\ndense 4\n";
static const char *SPEC_POOL_CUT = "input 12\nreshape 3x2x2\nconv 4 3 pad=1 relu\nmaxpool 2\nflatten\ndense 4\n";
static const char *SPEC_LOCAL_BN = "input 12\ndense 16 bias=0\nbatchnorm relu\ndense 16 bias=0\nbatchnorm relu\ndense 4\n";

typedef struct job {
    const char *spec;
    const char *backend; /* NULL: ref */
    herd_strategy_config cfg;
    herd_dataset *ds;
    float *out;    /* the trained parameters of the first training rank */
    int64_t n;     /* their number */
    float *agree;  /* the parameters of every training rank, after the last step (n each) */
    int agree_ranks;
    int64_t lo_hi[2 * 64]; /* rank 0's gradient buckets */
    int buckets;
    int64_t opt_lo, opt_hi; /* the last rank's update range */
    const char *ckpt_dir;   /* set: herd_train for 2 epochs, checkpoints every 4 steps there */
    int resume;
    int64_t steps_run;      /* herd_train: the steps the first rank took */
    const char *sparse_opt; /* --sparse-optimizer (NULL: the default, lazy Adam beside adam) */
    float sparse_lr;        /* --sparse-lr (0: --lr) */
    int64_t server_rows[8]; /* parameter servers (by rank): table floats of their model not zero after serving */
    double load[3 * 8];     /* parameter servers: the workers' exchange with each, before the last sync */
    int load_servers;
    int batch;              /* 0: B */
    const char *optimizer;  /* NULL: the default, lr 0.02 */
    float lr;               /* with optimizer: its rate (weight decay 0.1 on matrices) */
    float clip;             /* --clip-norm (0: off) */
    float *unsynced;        /* set: every rank's parameters before the last sync (n each) */
} job;

static herd_status make_model(const job *j, int world, herd_model **out, herd_error *err) {
    herd_strategy_layout lay;
    herd_status st = herd_strategy_layout_for(&j->cfg, world, j->batch ? j->batch : B, &lay, err);
    if (st) return st;
    if ((st = herd_model_parse(out, j->spec, "<test>", err))) return st;
    herd_model_init_params(*out, 11);
    herd_model_set_memory_reuse(*out, lay.memory_reuse);
    return herd_model_prepare(*out, j->backend ? j->backend : "ref", lay.rows, 1, err);
}

/* A file's text (NUL-terminated, malloc'd), or NULL. */
static char *read_text(const char *path) {
    FILE *f = fopen(path, "rb");
    char *text = f ? calloc(1, 1 << 16) : NULL;
    size_t k = text ? fread(text, 1, (1 << 16) - 1, f) : 0;
    if (f) fclose(f);
    if (text && (k == 0 || k == (1 << 16) - 1)) free(text), text = NULL;
    return text;
}

static void train_rank(rank_ctx *r) {
    job *j = r->arg;
    herd_model *m = NULL;
    herd_strategy *s = NULL;
    herd_trainer *t = NULL;
    herd_status st = make_model(j, r->size, &m, &r->err);
    if (!st) st = herd_strategy_create(&s, r->comm, m, &j->cfg, &r->err);
    herd_train_config tc = herd_train_defaults();
    tc.batch = j->batch ? j->batch : B, tc.lr = 0.02f, tc.seed = 3, tc.strategy = s;
    if (j->optimizer) tc.optimizer = j->optimizer, tc.lr = j->lr, tc.weight_decay = 0.1f, tc.decay_matrices = 1;
    tc.clip_norm = j->clip;
    tc.resume = j->resume; /* a resumed parameter server waits for the state */
    tc.sparse_optimizer = j->sparse_opt;
    tc.sparse_lr = j->sparse_lr;
    if (!st && herd_strategy_is_server(s)) { /* parameter server: until the workers are done */
        r->status = herd_train_serve(m, j->ds, &tc, &r->err);
        int64_t n, dense = herd_model_dense_params(m), wr = herd_strategy_world_rank(s);
        const float *p = herd_model_params(m, &n);
        if (wr < 8) j->server_rows[wr] = 0;
        for (int64_t i = dense; i < n && wr < 8; i++) j->server_rows[wr] += p[i] != 0;
        goto done;
    }
    if (!st && j->ckpt_dir) { /* the whole loop, its checkpoints and its resume */
        tc.epochs = 2, tc.checkpoint_dir = j->ckpt_dir, tc.checkpoint_every = 4, tc.keep_checkpoints = 0;
        tc.resume = j->resume;
        herd_train_phases ph = {0};
        tc.phases = &ph;
        st = herd_train(m, j->ds, NULL, &tc, NULL, &r->err);
        if (r->rank == 0) j->steps_run = ph.steps;
        goto trained;
    }
    if (!st) st = herd_trainer_create(&t, m, &tc, SAMPLES / tc.batch, &r->err);
    int64_t idx[B];
    for (int step = 0; step < STEPS && !st; step++) {
        for (int b = 0; b < tc.batch; b++) idx[b] = (step * 37 + b * 5) % SAMPLES;
        herd_step_result res;
        st = herd_trainer_step(t, j->ds, idx, tc.batch, &res, &r->err);
    }
    double load[3 * 8];
    int servers = 0;
    if (!st) st = herd_strategy_server_load(s, load, 8, &servers, &r->err); /* the steps' alone */
    if (!st && herd_strategy_world_rank(s) == 0) memcpy(j->load, load, sizeof load), j->load_servers = servers;
    if (!st && j->unsynced) {
        int64_t n;
        const float *p = herd_model_params(m, &n);
        memcpy(j->unsynced + (size_t)herd_strategy_world_rank(s) * (size_t)n, p, (size_t)n * sizeof(float));
    }
    if (!st) st = herd_strategy_sync_model(s, STEPS, &r->err);
    if (!st) st = herd_strategy_finish(s, &r->err);
trained:
    if (!st) {
        int64_t n;
        const float *p = herd_model_params(m, &n);
        int wr = herd_strategy_world_rank(s);
        if (wr == 0) {
            memcpy(j->out, p, (size_t)n * sizeof(float));
            j->n = n;
            j->buckets = herdi_data_parallel_buckets(s, j->lo_hi, 64);
        }
        if (wr == r->size - 1) herd_strategy_update_range(s, &j->opt_lo, &j->opt_hi);
        if (wr < j->agree_ranks) memcpy(j->agree + (size_t)wr * (size_t)n, p, (size_t)n * sizeof(float));
    }
    r->status = st;
done:
    herd_trainer_destroy(t);
    herd_strategy_destroy(s);
    herd_model_destroy(m);
}

static float ref_params[16384], got_params[16384], agree[8 * 16384];

static int run(job *j, int ranks, float *out) {
    rank_ctx ctx[8];
    j->out = out, j->agree = agree, j->agree_ranks = ranks;
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

static void expect_close(job *j, int ranks, const char *what, double tol) {
    CHECK(!run(j, ranks, got_params), "%s: training failed", what);
    double d = max_diff(got_params, ref_params, j->n);
    CHECK(d <= tol, "%s: max |difference| to one process %.3g > %.3g", what, d, tol);
}

/* Layout-free checkpoints: 4 ranks with --zero 1 --deterministic write them; resumed from the
 * one after step 4 (mid-epoch) on other layouts, the run ends on the same bits as without the
 * stop, and a 2-stage pipeline resumes a --zero 1 checkpoint (to float tolerance, no fixed
 * groups there); a checkpoint of another model is refused. */
static void resume_matrix(herd_dataset *ds) {
    static float full[4096];
    char dir[64], src[256], dst[256];
    snprintf(dir, sizeof dir, "/tmp/herd_resume_XXXXXX");
    if (!mkdtemp(dir)) {
        CHECK(0, "no scratch directory");
        return;
    }
    char written[96];
    snprintf(written, sizeof written, "%s/w", dir);
    job r = {.spec = SPEC_DROPOUT, .cfg = herd_strategy_defaults(HERD_STRATEGY_DP), .ds = ds, .ckpt_dir = written};
    r.cfg.deterministic = 1, r.cfg.zero = 1;
    CHECK(!run(&r, 4, full), "4 ranks --zero 1 writing checkpoints");
    snprintf(src, sizeof src, "%s/ckpt-0000000004.safetensors", written);
    static const struct {
        int ranks, zero;
    } layouts[] = {{2, 1}, {1, 0}, {2, 0}, {4, 1}};
    for (int k = 0; k < (int)(sizeof layouts / sizeof layouts[0]); k++) {
        char resumed[96];
        snprintf(resumed, sizeof resumed, "%s/r%d", dir, k);
        snprintf(dst, sizeof dst, "%s/ckpt-0000000004.safetensors", resumed);
        CHECK(mkdir(resumed, 0700) == 0 && copy_file(src, dst) == 0, "copying %s", src);
        r.ckpt_dir = resumed, r.resume = 1, r.cfg.zero = layouts[k].zero;
        CHECK(!run(&r, layouts[k].ranks, got_params), "resume on %d ranks --zero %d", layouts[k].ranks,
              layouts[k].zero);
        CHECK(memcmp(full, got_params, (size_t)r.n * sizeof(float)) == 0,
              "resumed on %d ranks --zero %d: not the bits of the run without a stop (max %.3g)", layouts[k].ranks,
              layouts[k].zero, max_diff(full, got_params, r.n));
        CHECK(r.steps_run == 2 * SAMPLES / B - 4, "resumed at step 4 of %d, ran %lld steps", 2 * SAMPLES / B,
              (long long)r.steps_run);
    }
    /* without --deterministic (a pipeline has no fixed groups): 4 ranks --zero 1 write, a 2-stage
     * pipeline resumes, equal to the run without a stop to float tolerance */
    char plain[96];
    snprintf(plain, sizeof plain, "%s/plain", dir);
    job z = {.spec = SPEC_PLAIN, .cfg = herd_strategy_defaults(HERD_STRATEGY_DP), .ds = ds, .ckpt_dir = plain};
    z.cfg.zero = 1;
    CHECK(!run(&z, 4, full), "4 ranks --zero 1 writing checkpoints, not deterministic");
    char piped[96];
    snprintf(piped, sizeof piped, "%s/pipe", dir);
    snprintf(src, sizeof src, "%s/ckpt-0000000004.safetensors", plain);
    snprintf(dst, sizeof dst, "%s/ckpt-0000000004.safetensors", piped);
    CHECK(mkdir(piped, 0700) == 0 && copy_file(src, dst) == 0, "copying %s", src);
    z.cfg = herd_strategy_defaults(HERD_STRATEGY_PIPELINE), z.cfg.cuts[0] = 0, z.ckpt_dir = piped, z.resume = 1;
    CHECK(!run(&z, 2, got_params), "2-stage pipeline resuming a --zero 1 checkpoint");
    CHECK(max_diff(full, got_params, z.n) <= 2e-6 && z.steps_run == 2 * SAMPLES / B - 4,
          "2-stage pipeline from a --zero 1 checkpoint: %.3g from the run without a stop, %lld steps",
          max_diff(full, got_params, z.n), (long long)z.steps_run);

    /* another model: one line naming the difference, on every rank */
    snprintf(src, sizeof src, "%s/ckpt-0000000004.safetensors", written);
    char other[96];
    snprintf(other, sizeof other, "%s/other", dir);
    r.spec = SPEC_PLAIN, r.ckpt_dir = other;
    CHECK(mkdir(other, 0700) == 0, "mkdir %s", other);
    snprintf(dst, sizeof dst, "%s/other/ckpt-0000000004.safetensors", dir);
    CHECK(copy_file(src, dst) == 0, "copying %s", src);
    rank_ctx ctx[2];
    run_ranks(2, 30, train_rank, &r, ctx);
    CHECK(ctx[0].status == HERD_EARG && strstr(ctx[0].err.msg, "not the same model") && !strchr(ctx[0].err.msg, '\n'),
          "a checkpoint of another model: %s", ctx[0].err.msg);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    CHECK(system(cmd) == 0, "%s", cmd);
}

/* Parameter server with an embedding table (ids an input of their own): 2 workers and 1 or 3
 * servers (with 3 the table's rows are split between the last two) equal one process; every step
 * moves exactly the rows its batch touches (each worker pulls and pushes its distinct ids); a ps
 * checkpoint resumes under ps (the same bits: two workers' sums do not depend on arrival order)
 * and under data parallel, and a data-parallel one under ps (float tolerance). */
static const char *SPEC_TABLE = "input 12 name=x\ninput 3 dtype=i32 name=ids\ndense 16 relu from=x name=h\n"
                                "embedding_bag 40 8 mode=sum from=ids name=bag\nconcat h,bag\ndense 4\n";
enum { TABLE_ROWS = 40, TABLE_DIM = 8 };

static void ps_tables(void) {
    float *x = malloc(SAMPLES * IN * sizeof *x);
    int32_t *ids = malloc(SAMPLES * 3 * sizeof *ids), *y = malloc(SAMPLES * sizeof *y);
    if (!x || !ids || !y) return;
    herd_rng rng;
    herd_rng_init(&rng, 9, 0);
    for (int i = 0; i < SAMPLES; i++) {
        y[i] = i % CLASSES;
        for (int k = 0; k < IN; k++) x[i * IN + k] = herd_rng_normal(&rng) + (k % CLASSES == y[i] ? 0.5f : 0);
        for (int k = 0; k < 3; k++) /* skewed ids, the first one says the class */
            ids[i * 3 + k] = k == 0 ? y[i] * 10 + (int32_t)herd_rng_below(&rng, 3)
                                    : (int32_t)herd_rng_below(&rng, k == 1 ? 8 : TABLE_ROWS);
    }
    herd_tensor xs[2] = {herd_tensor_make(HERD_F32, 2, (int64_t[]){SAMPLES, IN}, x),
                         herd_tensor_make(HERD_I32, 2, (int64_t[]){SAMPLES, 3}, ids)};
    herd_error err = {0};
    herd_dataset *ds = NULL;
    if (herd_dataset_from_memory_fields(&ds, xs, 2, herd_tensor_make(HERD_I32, 1, (int64_t[]){SAMPLES}, y), CLASSES,
                                        "test-table", &err)) {
        CHECK(0, "%s", err.msg);
        return;
    }
    static float one[4096], full[4096];
    job j = {.spec = SPEC_TABLE, .cfg = herd_strategy_defaults(HERD_STRATEGY_DP), .ds = ds};
    CHECK(!run(&j, 1, one), "table: one process failed");
    job p = {.spec = SPEC_TABLE, .cfg = herd_strategy_defaults(HERD_STRATEGY_PS), .ds = ds};
    /* the rows each step touches: per worker (rows [w*B/2, (w+1)*B/2) of the batch) its distinct ids */
    double touched = 0;
    for (int step = 0; step < STEPS; step++)
        for (int w = 0; w < 2; w++) {
            char seen[TABLE_ROWS] = {0};
            for (int b = w * B / 2; b < (w + 1) * B / 2; b++)
                for (int k = 0; k < 3; k++) {
                    int32_t id = ids[((step * 37 + b * 5) % SAMPLES) * 3 + k];
                    touched += !seen[id];
                    seen[id] = 1;
                }
        }
    for (int servers = 1; servers <= 3; servers += 2) {
        p.cfg.servers = servers;
        char what[64];
        snprintf(what, sizeof what, "ps with a table, %d server%s", servers, servers > 1 ? "s" : "");
        CHECK(!run(&p, 2 + servers, got_params), "%s: training failed", what);
        CHECK(max_diff(got_params, one, p.n) <= 2e-6, "%s: max |difference| to one process %.3g > 2e-6", what,
              max_diff(got_params, one, p.n));
        double rows = 0, requests = 0;
        for (int s = 0; s < p.load_servers; s++) rows += p.load[3 * s + 1], requests += p.load[3 * s + 2];
        /* pulled and pushed once each; requests: a pull and a push per worker, step and server */
        CHECK(p.load_servers == servers && rows == 2 * touched && requests == 2.0 * 2 * STEPS * servers,
              "%s: %d servers' load, %.0f rows moved (the batches touch %.0f, twice), %.0f requests", what,
              p.load_servers, rows, touched, requests);
        CHECK(servers == 1 || (p.load[4] > 0 && p.load[7] > 0), "%s: the table's rows not split (%.0f, %.0f rows)",
              what, p.load[4], p.load[7]);
        /* each server wrote the rows of its key range alone: together the table once */
        int64_t written = 0;
        for (int s = 2; s < 2 + servers; s++) written += p.server_rows[s];
        CHECK(written > 0 && written <= TABLE_ROWS * TABLE_DIM, "%s: the servers hold %lld table values, the table has %d",
              what, (long long)written, TABLE_ROWS * TABLE_DIM);
    }
    /* the other sparse optimizers, on the servers' rows (the table split between 2 servers); SGD
     * also with the tables' own rate (--sparse-lr twice --lr, applied by the servers) */
    static const char *const sparse[] = {"adagrad", "rowwise_adagrad", "sgd", "sgd"};
    for (int k = 0; k < 4; k++) {
        j.sparse_opt = p.sparse_opt = sparse[k];
        j.sparse_lr = p.sparse_lr = k == 3 ? 0.04f : 0;
        p.cfg.servers = 2;
        CHECK(!run(&j, 1, one), "table, %s: one process failed", sparse[k]);
        CHECK(!run(&p, 4, got_params), "ps with a table, %s: training failed", sparse[k]);
        CHECK(max_diff(got_params, one, p.n) <= 2e-6, "ps with a table, --sparse-optimizer %s, --sparse-lr %g: %.3g "
              "from one process", sparse[k], p.sparse_lr, max_diff(got_params, one, p.n));
    }
    j.sparse_opt = p.sparse_opt = NULL;
    j.sparse_lr = p.sparse_lr = 0;

    /* checkpoints: ps (1 server) writes every 4 steps over 2 epochs; resumed from step 4 */
    char dir[64], src[256], dst[256], sub[96];
    snprintf(dir, sizeof dir, "/tmp/herd_psckpt_XXXXXX");
    if (!mkdtemp(dir)) {
        CHECK(0, "no scratch directory");
        herd_dataset_close(ds);
        return;
    }
    p.cfg.servers = 1;
    snprintf(sub, sizeof sub, "%s/ps", dir);
    p.ckpt_dir = sub;
    CHECK(!run(&p, 3, full), "ps writing checkpoints");
    snprintf(src, sizeof src, "%s/ckpt-0000000004.safetensors", sub);
    static const struct {
        herd_strategy_kind kind;
        int ranks;
        double tol;
    } resumes[] = {{HERD_STRATEGY_PS, 3, 0}, {HERD_STRATEGY_PS, 4, 0}, {HERD_STRATEGY_DP, 2, 2e-6}, {HERD_STRATEGY_DP, 1, 2e-6}};
    for (int k = 0; k < (int)(sizeof resumes / sizeof resumes[0]); k++) {
        char resumed[96];
        snprintf(resumed, sizeof resumed, "%s/r%d", dir, k);
        snprintf(dst, sizeof dst, "%s/ckpt-0000000004.safetensors", resumed);
        CHECK(mkdir(resumed, 0700) == 0 && copy_file(src, dst) == 0, "copying %s", src);
        job r = {.spec = SPEC_TABLE, .cfg = herd_strategy_defaults(resumes[k].kind), .ds = ds, .ckpt_dir = resumed,
                 .resume = 1};
        if (resumes[k].kind == HERD_STRATEGY_PS) r.cfg.servers = resumes[k].ranks - 2;
        CHECK(!run(&r, resumes[k].ranks, got_params), "resuming a ps checkpoint on %d ranks (%s)", resumes[k].ranks,
              resumes[k].kind == HERD_STRATEGY_PS ? "ps" : "dp");
        double d = max_diff(full, got_params, r.n);
        CHECK(d <= resumes[k].tol && r.steps_run == 2 * SAMPLES / B - 4,
              "ps checkpoint resumed on %d ranks (%s): %.3g from the run without a stop (tolerance %.3g), %lld steps",
              resumes[k].ranks, resumes[k].kind == HERD_STRATEGY_PS ? "ps" : "dp", d, resumes[k].tol,
              (long long)r.steps_run);
    }
    /* data parallel writes, ps resumes */
    snprintf(sub, sizeof sub, "%s/dp", dir);
    job d = {.spec = SPEC_TABLE, .cfg = herd_strategy_defaults(HERD_STRATEGY_DP), .ds = ds, .ckpt_dir = sub};
    CHECK(!run(&d, 2, full), "dp writing checkpoints");
    snprintf(src, sizeof src, "%s/ckpt-0000000004.safetensors", sub);
    snprintf(sub, sizeof sub, "%s/dp_ps", dir);
    snprintf(dst, sizeof dst, "%s/ckpt-0000000004.safetensors", sub);
    CHECK(mkdir(sub, 0700) == 0 && copy_file(src, dst) == 0, "copying %s", src);
    p.ckpt_dir = sub, p.resume = 1;
    CHECK(!run(&p, 3, got_params), "ps resuming a dp checkpoint");
    CHECK(max_diff(full, got_params, p.n) <= 2e-6 && p.steps_run == 2 * SAMPLES / B - 4,
          "ps from a dp checkpoint: %.3g from the run without a stop, %lld steps", max_diff(full, got_params, p.n),
          (long long)p.steps_run);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    CHECK(system(cmd) == 0, "%s", cmd);
    herd_dataset_close(ds);
}

/* The small GPT (tests/data/gpt_small.spec, its head tied to the token embedding wte) on
 * token windows, SGD (and AdamW) with weight decay on matrices and clipping at a norm it
 * reaches: a 2-stage pipeline cut after the first block, so wte is used on both stages, equals
 * one process to float tolerance (GPipe, 1F1B, one micro-batch, 2 stages x 2 replicas); the
 * stages' copies of wte are bit-identical before any gather; a pipeline checkpoint (wte in it
 * once, under its name) resumes, bit-identically as the same pipeline and to float tolerance
 * in one process. */
#define GPT_T 8
#define GPT_V 29
#define GPT_B 8
static void tied_pipeline(void) {
    const char *src_dir = getenv("HERD_SOURCE_DIR");
    char path[512];
    snprintf(path, sizeof path, "%s/tests/data/gpt_small.spec", src_dir ? src_dir : ".");
    char *spec = read_text(path);
    CHECK(spec != NULL, "cannot read %s (HERD_SOURCE_DIR)", path);
    if (!spec) return;
    int32_t *x = malloc(SAMPLES * GPT_T * sizeof *x), *y = malloc(SAMPLES * GPT_T * sizeof *y);
    if (!x || !y) abort(); /* a test harness failure */
    herd_rng rng;
    herd_rng_init(&rng, 9, 0);
    for (int i = 0; i < SAMPLES; i++) { /* a text with structure: mostly the next letter, sometimes any */
        int32_t c = (int32_t)herd_rng_below(&rng, GPT_V);
        for (int t = 0; t <= GPT_T; t++) {
            if (t < GPT_T) x[i * GPT_T + t] = c;
            if (t > 0) y[i * GPT_T + t - 1] = c;
            c = herd_rng_below(&rng, 4) ? (c + 1) % GPT_V : (int32_t)herd_rng_below(&rng, GPT_V);
        }
    }
    herd_error err = {0};
    herd_dataset *ds = NULL;
    int64_t dims[2] = {SAMPLES, GPT_T};
    CHECK(!herd_dataset_from_memory(&ds, herd_tensor_make(HERD_I32, 2, dims, x), herd_tensor_make(HERD_I32, 2, dims, y),
                                    GPT_V, "gpt windows", &err), "token windows: %s", err.msg);
    if (!ds) {
        free(spec);
        return;
    }
    static float one[16384], unsynced[4 * 16384];
    job g = {.spec = spec, .cfg = herd_strategy_defaults(HERD_STRATEGY_DP), .ds = ds, .batch = GPT_B,
             .optimizer = "sgd", .lr = 0.5f, .clip = 0.5f};
    CHECK(!run(&g, 1, one), "the GPT in one process");
    herd_model *m = NULL;
    int wte = -1, cut = -1;
    CHECK(!herd_model_parse(&m, spec, "<test>", &err), "%s", err.msg);
    for (int r = 0; m && r < herd_model_param_count(m); r++)
        if (!strcmp(herd_model_param(m, r)->name, "wte.weight")) wte = r;
    for (int l = 0; m && l < herd_model_layer_count(m); l++) {
        herd_layer_info li;
        herd_model_layer(m, l, &li);
        if (!strcmp(li.name, "h0_out")) cut = l;
    }
    CHECK(wte >= 0 && cut > 0 && herd_model_param_users(m, wte, (int[2]){0}, 2) == 2, "wte is not a tied weight");
    int64_t lo = wte >= 0 ? herd_model_param(m, wte)->offset : 0, numel = wte >= 0 ? herd_model_param(m, wte)->numel : 0;
    herd_model_destroy(m);
    /* SGD at a high rate, clipping active: float noise stays ~1e-7 (measured 3e-8 to 1.2e-7),
     * while a missing sum of the tied gradient moves the weights by 0.07 and counting it twice
     * in the clipping norm by 0.04. AdamW last: its update divides by sqrt(v), so an element
     * whose gradient is float noise moves by up to lr either way (measured 4.8e-5 at lr 3e-3). */
    static const struct {
        int ranks, one_f_one_b, microbatches;
        const char *what;
        double tol;
    } layouts[] = {{2, 0, 4, "GPipe", 1e-6}, {2, 1, 4, "1F1B", 1e-6}, {4, 1, 2, "2 stages x 2 replicas, 1F1B", 1e-6},
                   {2, 0, 1, "one micro-batch", 1e-6}, {2, 1, 4, "1F1B, AdamW", 2e-4}};
    static float one_adamw[16384];
    job ga = g;
    ga.optimizer = "adamw", ga.lr = 3e-3f;
    CHECK(!run(&ga, 1, one_adamw), "the GPT in one process, AdamW");
    for (int k = 0; k < (int)(sizeof layouts / sizeof layouts[0]); k++) {
        job q = strstr(layouts[k].what, "AdamW") ? ga : g;
        const float *ref = strstr(layouts[k].what, "AdamW") ? one_adamw : one;
        q.cfg = herd_strategy_defaults(HERD_STRATEGY_PIPELINE), q.cfg.cuts[0] = cut;
        q.cfg.one_f_one_b = layouts[k].one_f_one_b, q.cfg.microbatches = layouts[k].microbatches;
        q.unsynced = unsynced;
        CHECK(!run(&q, layouts[k].ranks, got_params), "tied GPT pipeline, %s: training failed", layouts[k].what);
        double d = max_diff(got_params, ref, g.n);
        CHECK(d <= layouts[k].tol, "tied GPT pipeline, %s: max |difference| to one process %.3g > %.3g", layouts[k].what,
              d, layouts[k].tol);
        for (int r = 1; r < layouts[k].ranks; r++)
            CHECK(!memcmp(unsynced + lo, unsynced + (size_t)r * (size_t)g.n + lo, (size_t)numel * sizeof(float)),
                  "tied GPT pipeline, %s: rank %d's copy of wte.weight differs from rank 0's (max %.3g)",
                  layouts[k].what, r, max_diff(unsynced + lo, unsynced + (size_t)r * (size_t)g.n + lo, numel));
    }
    /* checkpoints: a 2-stage pipeline writes them; resumed after step 4 as the same pipeline
     * (the same bits) and in one process (float tolerance) */
    char dir[64], sub[96], src[256], dst[256];
    snprintf(dir, sizeof dir, "/tmp/herd_tied_XXXXXX");
    if (!mkdtemp(dir)) {
        CHECK(0, "no scratch directory");
        goto done;
    }
    static float full[16384];
    job c = g;
    snprintf(sub, sizeof sub, "%s/w", dir);
    c.cfg = herd_strategy_defaults(HERD_STRATEGY_PIPELINE), c.cfg.cuts[0] = cut, c.ckpt_dir = sub;
    CHECK(!run(&c, 2, full), "tied GPT pipeline writing checkpoints");
    snprintf(src, sizeof src, "%s/ckpt-0000000004.safetensors", sub);
    for (int k = 0; k < 2; k++) {
        char resumed[96];
        snprintf(resumed, sizeof resumed, "%s/r%d", dir, k);
        snprintf(dst, sizeof dst, "%s/ckpt-0000000004.safetensors", resumed);
        CHECK(mkdir(resumed, 0700) == 0 && copy_file(src, dst) == 0, "copying %s", src);
        job r = c;
        r.ckpt_dir = resumed, r.resume = 1;
        if (k) r.cfg = herd_strategy_defaults(HERD_STRATEGY_DP);
        CHECK(!run(&r, k ? 1 : 2, got_params), "resuming the tied GPT pipeline's checkpoint %s",
              k ? "in one process" : "as the same pipeline");
        double d = max_diff(full, got_params, c.n);
        CHECK(k ? d <= 1e-6 : d == 0, "tied GPT checkpoint resumed %s: %.3g from the run without a stop",
              k ? "in one process" : "as the same pipeline", d);
        CHECK(r.steps_run == 2 * SAMPLES / GPT_B - 4, "resumed at step 4 of %d, ran %lld steps", 2 * SAMPLES / GPT_B,
              (long long)r.steps_run);
    }
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    CHECK(system(cmd) == 0, "%s", cmd);
done:
    herd_dataset_close(ds);
    free(spec);
}

int main(void) {
    float *x = malloc(SAMPLES * IN * sizeof *x); /* the dataset owns them */
    int32_t *y = malloc(SAMPLES * sizeof *y);
    if (!x || !y) return 1;
    herd_rng rng;
    herd_rng_init(&rng, 5, 0);
    for (int i = 0; i < SAMPLES; i++) {
        y[i] = i % CLASSES;
        for (int k = 0; k < IN; k++) x[i * IN + k] = herd_rng_normal(&rng) + (k % CLASSES == y[i] ? 1.5f : 0);
    }
    herd_error err = {0};
    herd_dataset *ds = NULL;
    if (herd_dataset_from_memory(&ds, herd_tensor_make(HERD_F32, 2, (int64_t[]){SAMPLES, IN}, x),
                                 herd_tensor_make(HERD_I32, 1, (int64_t[]){SAMPLES}, y), CLASSES, "test", &err)) {
        fprintf(stderr, "%s\n", err.msg);
        return 1;
    }
    job j = {.spec = SPEC_PLAIN, .cfg = herd_strategy_defaults(HERD_STRATEGY_DP), .ds = ds};
    CHECK(!run(&j, 1, ref_params), "one process failed");
    CHECK(j.buckets == 0, "one rank cut %d buckets", j.buckets);

    /* data parallel: tiny buckets (one per tensor), and the automatic size */
    j.cfg.bucket_mb = 1e-6;
    expect_close(&j, 2, "2 ranks, one bucket per tensor", 2e-6);
    herd_model *m = NULL;
    int tensors = 0;
    if (!herd_model_parse(&m, SPEC_PLAIN, "<test>", &err)) tensors = herd_model_param_count(m);
    herd_model_init_params(m, 11); /* training moved the weights far more than the tolerances below */
    CHECK(max_diff(herd_model_params(m, NULL), ref_params, j.n) > 0.05, "6 steps moved the weights by %.3g only",
          max_diff(herd_model_params(m, NULL), ref_params, j.n));
    CHECK(j.buckets == tensors, "%d buckets for %d tensors", j.buckets, tensors);
    int64_t hi = j.n, tiled = 1;
    for (int k = 0; k < j.buckets; k++) { /* from the tail backward finishes first, at tensor starts */
        int at_start = 0;
        for (int i = 0; i < tensors; i++) at_start |= herd_model_param(m, i)->offset == j.lo_hi[2 * k];
        tiled &= j.lo_hi[2 * k + 1] == hi && at_start;
        hi = j.lo_hi[2 * k];
    }
    CHECK(tiled && hi == 0, "buckets do not tile the gradient from its tail at tensor starts");
    herd_model_destroy(m);
    j.cfg.bucket_mb = 0;
    expect_close(&j, 4, "4 ranks, automatic buckets", 2e-6);
    CHECK(j.buckets >= 2 && j.buckets <= 5, "automatic buckets: %d (a quarter of the model each at most)", j.buckets);
    j.cfg.bf16 = 1;
    expect_close(&j, 2, "2 ranks, bf16 gradients", 2e-2);
    j.cfg.bf16 = 0;

    /* ZeRO-1: the same sums in the same (rank) order as the allreduce, the same update of each
     * element: bit-identical to plain data parallel on this communicator */
    static float plain[4096];
    for (int ranks = 2; ranks <= 4; ranks++) {
        j.cfg.zero = 0, j.cfg.bucket_mb = 1e-4;
        CHECK(!run(&j, ranks, plain), "plain data parallel, %d ranks", ranks);
        j.cfg.zero = 1;
        CHECK(!run(&j, ranks, got_params), "--zero 1, %d ranks", ranks);
        CHECK(memcmp(plain, got_params, (size_t)j.n * sizeof(float)) == 0,
              "--zero 1 on %d ranks differs from plain data parallel (max %.3g)", ranks, max_diff(plain, got_params, j.n));
        CHECK(max_diff(got_params, ref_params, j.n) <= 2e-6, "--zero 1 on %d ranks: %.3g from one process", ranks,
              max_diff(got_params, ref_params, j.n));
        int64_t lo = j.opt_lo, hi = j.opt_hi; /* the last rank's optimizer state: 1/ranks of the parameters */
        CHECK(hi == j.n && llabs((hi - lo) * ranks - j.n) < ranks, "--zero 1: the last of %d ranks updates [%lld, %lld) of %lld",
              ranks, (long long)lo, (long long)hi, (long long)j.n);
    }
    j.cfg.zero = 0, j.cfg.bucket_mb = 0;

    /* deterministic: bit-identical for 1, 2 and 4 ranks, with dropout */
    job d = {.spec = SPEC_DROPOUT, .cfg = herd_strategy_defaults(HERD_STRATEGY_DP), .ds = ds};
    d.cfg.deterministic = 1;
    static float det1[4096];
    CHECK(!run(&d, 1, det1), "deterministic, one process");
    for (int ranks = 2; ranks <= 4; ranks *= 2)
        for (int zero = 0; zero <= 1; zero++) {
            d.cfg.zero = zero;
            CHECK(!run(&d, ranks, got_params), "deterministic, %d ranks, --zero %d", ranks, zero);
            CHECK(memcmp(det1, got_params, (size_t)d.n * sizeof(float)) == 0,
                  "deterministic: %d ranks with --zero %d differ from one (max %.3g)", ranks, zero,
                  max_diff(det1, got_params, d.n));
        }
    d.cfg.zero = 0;
    herd_error e = {0};
    herd_strategy_layout lay;
    CHECK(herd_strategy_layout_for(&d.cfg, 3, B, &lay, &e) == HERD_EARG && strstr(e.msg, "world size (3) to divide"),
          "3 ranks with 4 groups: %s", e.msg);

    /* parameter server: 2 workers + 1 server; synchronous equals one process */
    job p = {.spec = SPEC_PLAIN, .cfg = herd_strategy_defaults(HERD_STRATEGY_PS), .ds = ds};
    expect_close(&p, 3, "parameter server, staleness 0", 2e-6);
    for (int k = 0; k < 2; k++) {
        p.cfg.staleness = k ? -1 : 2;
        p.agree_ranks = 2;
        CHECK(!run(&p, 3, got_params), "parameter server, staleness %d", p.cfg.staleness);
        /* bounded: an exact pull for step t waits for update t, the same on both workers (unbounded
         * staleness numbers its updates by push, so the workers may end on different ones) */
        CHECK(p.cfg.staleness < 0 || memcmp(agree, agree + p.n, (size_t)p.n * sizeof(float)) == 0,
              "staleness %d: the workers' parameters differ after an exact pull", p.cfg.staleness);
        /* stale gradients: near the synchronous weights, not equal (the order of updates depends on timing) */
        double moved = max_diff(got_params, ref_params, p.n);
        CHECK(isfinite(moved) && moved < 1.0, "staleness %d: %.3g away from the synchronous result", p.cfg.staleness,
              moved);
    }
    p.cfg.staleness = 0, p.cfg.deterministic = 1;
    CHECK(herd_strategy_layout_for(&p.cfg, 3, B, &lay, &e) == HERD_EARG, "ps with --deterministic accepted");
    p.cfg.deterministic = 0, p.cfg.zero = 1;
    CHECK(herd_strategy_layout_for(&p.cfg, 3, B, &lay, &e) == HERD_EARG && strstr(e.msg, "--zero 1 is for --strategy dp"),
          "ps with --zero 1: %s", e.msg);

    /* pipeline: 2 stages (GPipe, 1F1B), and 2 stages x 2 replicas */
    job q = {.spec = SPEC_PLAIN, .cfg = herd_strategy_defaults(HERD_STRATEGY_PIPELINE), .ds = ds};
    q.cfg.cuts[0] = 0; /* the first dense layer alone */
    expect_close(&q, 2, "pipeline, 2 stages, GPipe", 2e-6);
    q.cfg.one_f_one_b = 1;
    expect_close(&q, 2, "pipeline, 2 stages, 1F1B", 2e-6);
    expect_close(&q, 4, "pipeline, 2 stages x 2 replicas, 1F1B", 2e-6);
    /* a cut between a conv and the max pool that writes its input's gradient whole (the cpu
     * backend's maxpool2d_backward_set): the conv's stage still zeroes the gradient it adds the
     * received one into */
    static float pool_one[4096];
    job pc = {.spec = SPEC_POOL_CUT, .backend = "cpu", .cfg = herd_strategy_defaults(HERD_STRATEGY_DP), .ds = ds};
    CHECK(!run(&pc, 1, pool_one), "conv + max pool, one process");
    pc.cfg = herd_strategy_defaults(HERD_STRATEGY_PIPELINE), pc.cfg.cuts[0] = 1;
    CHECK(!run(&pc, 2, got_params), "conv | max pool, 2 stages");
    CHECK(max_diff(got_params, pool_one, pc.n) <= 2e-6, "pipeline cut between a conv and its max pool: %.3g from one process",
          max_diff(got_params, pool_one, pc.n));
    q.cfg.stages = 3;
    CHECK(herd_strategy_layout_for(&q.cfg, 4, B, &lay, &e) == HERD_EARG && strstr(e.msg, "--stages 3 divides"),
          "4 ranks with 3 stages: %s", e.msg);
    /* SyncBatchNorm: 2 and 4 ranks normalise with the whole batch's statistics, as one process
     * does (to float tolerance: the sums are split across ranks); without sync=1 they do not.
     * On the ref backend and on the cpu one (its batch-norm kernels complete their sums over the
     * ranks: the same arithmetic as its one process), vectors and images. */
    static float bn1[4096];
    const char *bn_specs[] = {SPEC_SYNC_BN, SPEC_SYNC_BN_IMAGE}, *bn_backends[] = {"ref", "cpu"};
    for (int k = 0; k < 4; k++) {
        job sb = {.spec = bn_specs[k % 2], .backend = bn_backends[k / 2],
                  .cfg = herd_strategy_defaults(HERD_STRATEGY_DP), .ds = ds};
        CHECK(!run(&sb, 1, bn1), "sync batch norm (%s, %s), one process", sb.backend, k % 2 ? "images" : "vectors");
        for (int ranks = 2; ranks <= 4; ranks *= 2) {
            CHECK(!run(&sb, ranks, got_params), "sync batch norm, %d ranks", ranks);
            CHECK(max_diff(got_params, bn1, sb.n) <= 2e-6, "sync batch norm (%s, %s) on %d ranks: %.3g from one process",
                  sb.backend, k % 2 ? "images" : "vectors", ranks, max_diff(got_params, bn1, sb.n));
        }
    }
    job sb = {.spec = SPEC_SYNC_BN, .cfg = herd_strategy_defaults(HERD_STRATEGY_DP), .ds = ds};
    CHECK(!run(&sb, 1, bn1), "sync batch norm, one process");
    job lb = {.spec = SPEC_LOCAL_BN, .cfg = herd_strategy_defaults(HERD_STRATEGY_DP), .ds = ds};
    CHECK(!run(&lb, 2, got_params) && max_diff(got_params, bn1, lb.n) > 1e-4,
          "batch norm without sync on 2 ranks: only %.3g from one process (the test cannot tell)",
          max_diff(got_params, bn1, lb.n));
    sb.cfg.deterministic = 1;
    rank_ctx bctx[2];
    run_ranks(2, 30, train_rank, &sb, bctx);
    CHECK(bctx[0].status == HERD_EARG && strstr(bctx[0].err.msg, "batchnorm sync=1 is for --strategy dp without") &&
              !strchr(bctx[0].err.msg, '\n'),
          "sync batch norm with --deterministic: %s", bctx[0].err.msg);
    resume_matrix(ds);
    ps_tables();
    herd_dataset_close(ds);
    tied_pipeline();
    return check_summary();
}
