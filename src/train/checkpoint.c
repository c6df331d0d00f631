/* Checkpoints for exact resume: one safetensors file per checkpoint holding the model's
 * registry tensors, the optimizer's flat moments ("optimizer.m", "optimizer.v") and, in the
 * metadata, where training stands. Nothing else is needed to continue bit-exactly: the
 * sampler's order and every dropout mask are pure functions of (seed, epoch/step). Files
 * are written atomically by the safetensors writer, so a crash leaves the previous one. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "dist/embedding_shard.h"
#include "dist/strategy.h"
#include "herd/io.h"
#include "model/model_internal.h"
#include "train/trainer_internal.h"

#define CKPT_PREFIX "ckpt-"
#define CKPT_SUFFIX ".safetensors"
#define CKPT_LOCK ".herd-lock"

/* Global step of a checkpoint file name, or -1 if the name is not one. */
static int64_t ckpt_step(const char *name) {
    size_t n = strlen(name), p = strlen(CKPT_PREFIX), s = strlen(CKPT_SUFFIX);
    if (n <= p + s || strncmp(name, CKPT_PREFIX, p) != 0 || strcmp(name + n - s, CKPT_SUFFIX) != 0) return -1;
    int64_t v = 0;
    for (size_t i = p; i < n - s; i++) {
        if (name[i] < '0' || name[i] > '9' || v > INT64_MAX / 10 - 10) return -1;
        v = v * 10 + (name[i] - '0');
    }
    return v;
}

/* Sorted (descending) global steps of the checkpoints in dir; *count of them. */
static herd_status list_checkpoints(const char *dir, int64_t **steps, int *count, herd_error *err) {
    DIR *d = opendir(dir);
    *steps = NULL;
    *count = 0;
    if (!d) return herd_fail(err, HERD_EIO, "%s: cannot open checkpoint directory: %s", dir, strerror(errno));
    int cap = 0;
    struct dirent *e;
    herd_status st = HERD_OK;
    while ((e = readdir(d))) {
        int64_t s = ckpt_step(e->d_name);
        if (s < 0) continue;
        if (*count == cap) {
            cap = cap ? cap * 2 : 16;
            int64_t *grown = realloc(*steps, (size_t)cap * sizeof **steps);
            if (!grown) {
                st = herd_fail(err, HERD_ENOMEM, "out of memory");
                break;
            }
            *steps = grown;
        }
        (*steps)[(*count)++] = s;
    }
    closedir(d);
    for (int i = 1; i < *count; i++) /* few files: insertion sort, newest first */
        for (int j = i; j > 0 && (*steps)[j] > (*steps)[j - 1]; j--) {
            int64_t t = (*steps)[j];
            (*steps)[j] = (*steps)[j - 1];
            (*steps)[j - 1] = t;
        }
    return st;
}

static void ckpt_path(char *buf, size_t size, const char *dir, int64_t step) {
    snprintf(buf, size, "%s/" CKPT_PREFIX "%010" PRId64 CKPT_SUFFIX, dir, step);
}

/* 64-bit FNV-1a over a byte string, continued from h. */
static uint64_t fnv1a(uint64_t h, const void *p, size_t n) {
    const unsigned char *b = p;
    for (size_t i = 0; i < n; i++) h = (h ^ b[i]) * 1099511628211ULL;
    return h;
}

/* What a checkpoint must agree with to be resumed: the model's structure (every layer's kind,
 * settings and output shape, every tensor's name and size), the training data, the
 * deterministic layout. The text forms go into the metadata; checkpoint_identity fills them. */
typedef struct ckpt_identity {
    char model[24];       /* hex hash of the structure */
    char data[600];       /* the training set's source, as given */
    char samples[24];     /* and its number of samples (a --val-split changes it) */
    char deterministic[24]; /* "off" or the --det-groups count */
} ckpt_identity;

static void checkpoint_identity(const herd_trainer *t, ckpt_identity *id) {
    const herd_model *m = t->m;
    uint64_t h = 14695981039346656037ULL;
    int in[3];
    herd_model_input_shape(m, &in[0], &in[1], &in[2]);
    h = fnv1a(h, in, sizeof in);
    for (int i = 0; i < herd_model_layer_count(m); i++) {
        herd_layer_info li;
        herd_model_layer(m, i, &li);
        int shape[3] = {li.c, li.h, li.w};
        h = fnv1a(h, li.kind, strlen(li.kind) + 1);
        h = fnv1a(h, li.detail, strnlen(li.detail, sizeof li.detail));
        h = fnv1a(h, shape, sizeof shape);
    }
    for (int i = 0; i < herd_model_param_count(m); i++) {
        const herd_param_info *p = herd_model_param(m, i);
        int64_t numel = p->numel;
        h = fnv1a(h, p->name, strlen(p->name) + 1);
        h = fnv1a(h, &numel, sizeof numel);
    }
    if (m->loss.kind != &herdi_loss_xent || m->loss.ignore) { /* the default loss leaves older checkpoints' hashes as they were */
        char loss[64];
        m->loss.kind->spec(&m->loss, loss, sizeof loss);
        h = fnv1a(h, m->loss.kind->name, strlen(m->loss.kind->name) + 1);
        h = fnv1a(h, loss, strlen(loss) + 1);
    }
    snprintf(id->model, sizeof id->model, "%016" PRIx64, h);
    snprintf(id->data, sizeof id->data, "%s", t->data ? t->data->source : "");
    snprintf(id->samples, sizeof id->samples, "%" PRId64, t->data ? t->data->n : (int64_t)-1);
    int groups = herd_strategy_deterministic_groups(t->s);
    if (groups > 0) snprintf(id->deterministic, sizeof id->deterministic, "%d", groups);
    else snprintf(id->deterministic, sizeof id->deterministic, "off");
}

/* "optimizer.<table>.m" / ".v": moment j (0 m, 1 v) of sparse table k's optimizer */
#define SPARSE_NAME (HERD_NAME_MAX + 48)
static void sparse_moment_name(char *out, const herd_trainer *t, int k, int j) {
    snprintf(out, SPARSE_NAME, "optimizer.%s.%s", herd_model_param(t->m, t->sparse_grads[k].param)->name, j ? "v" : "m");
}

/* One checkpoint to write: the tensors (pointing at the live state, or at a snapshot of it) and
 * the metadata, its strings owned here so a background thread can write it while training goes
 * on. */
typedef struct ckpt_job {
    char dir[4096];
    int keep;
    int64_t step;
    herd_tensor_ref refs[3 * HERD_MAX_PARAMS + 2]; /* registry, dense moments, two moments a sparse table */
    int n;
    char (*sparse_names)[SPARSE_NAME];
    char epoch[24], step_in_epoch[24], global[24], opt_t[24], batch[24], seed[24], optimizer[32], model[512];
    ckpt_identity id;
    const char *meta[34];
    int n_meta;
    char *owned[2];
} ckpt_job;

static void job_free(ckpt_job *j) {
    free(j->owned[0]), free(j->owned[1]);
    free(j->sparse_names);
    j->owned[0] = j->owned[1] = NULL;
    j->sparse_names = NULL;
}

/* Sharded tables, on the writer (rank 0) alone: every table whole in the model and its optimizer
 * state whole in t->sparse_full; the other ranks send their rows and keep only them. */
static herd_status gather_tables(herd_trainer *t, herd_error *err) {
    int writer = herd_strategy_writer(t->s);
    if (!t->sparse_full && !(t->sparse_full = calloc((size_t)(2 * t->n_sparse), sizeof *t->sparse_full)))
        return herd_fail(err, HERD_ENOMEM, "out of memory for the optimizer state of a checkpoint");
    const float *mine[2 * HERD_MAX_PARAMS]; /* this rank's rows: the optimizers' own arrays */
    int64_t sd[HERD_MAX_PARAMS];
    for (int k = 0; k < t->n_sparse; k++) {
        const herd_sparse_optimizer *o = &t->sparse[k];
        int64_t rows = herd_model_param(t->m, t->sparse_grads[k].param)->shape[0];
        sd[k] = herd_sparse_state_dim(o);
        for (int j = 0; j < 2; j++) {
            float **whole = &t->sparse_full[2 * k + j];
            mine[2 * k + j] = j ? o->v : o->m;
            if (!mine[2 * k + j] || !writer) continue;
            if (!*whole && !(*whole = herd_malloc_array((size_t)(rows * sd[k]), sizeof **whole)))
                return herd_fail(err, HERD_ENOMEM, "out of memory for the optimizer state of a checkpoint");
        }
    }
    return herd_embedding_shard_gather(t->shard, 0, mine, t->sparse_full, sd, err);
}

herd_status herdi_checkpoint_gather(herd_trainer *t, herd_error *err) {
    int64_t lo, hi, n = herd_model_dense_params(t->m);
    herd_status st = t->shard ? gather_tables(t, err) : HERD_OK;
    if (st) return st;
    herd_strategy_update_range(t->s, &lo, &hi);
    herd_strategy_state state = {t->opt.m, t->opt.v, t->sparse, t->opt.t};
    if (lo == 0 && hi == n) return herd_strategy_gather_state(t->s, &state, err);
    if ((t->opt.m && !t->full_m && !(t->full_m = malloc((size_t)n * sizeof(float)))) ||
        (t->opt.v && !t->full_v && !(t->full_v = malloc((size_t)n * sizeof(float)))))
        return herd_fail(err, HERD_ENOMEM, "out of memory for the optimizer state of a checkpoint");
    if (t->full_m) memcpy(t->full_m + lo, t->opt.m, (size_t)(hi - lo) * sizeof(float));
    if (t->full_v) memcpy(t->full_v + lo, t->opt.v, (size_t)(hi - lo) * sizeof(float));
    state.m = t->full_m, state.v = t->full_v;
    st = herd_strategy_gather_state(t->s, &state, err);
    if (!st && t->s->remote_state) { /* the servers' count of updates (they hold the optimizers) */
        t->opt.t = state.opt_t;
        for (int k = 0; k < t->n_sparse; k++) t->sparse[k].t = state.opt_t;
    }
    return st;
}

static herd_status job_make(ckpt_job *j, const char *dir, const herd_trainer *t, const train_position *pos, int keep,
                            herd_error *err) {
    const herd_model *m = t->m;
    snprintf(j->dir, sizeof j->dir, "%s", dir);
    j->keep = keep;
    j->step = t->step;
    j->n = herdi_model_registry_refs(m, j->refs);
    /* the dense moments whole, whatever part of them this rank updates (herdi_checkpoint_gather) */
    const float *mm = t->full_m ? t->full_m : t->opt.m, *vv = t->full_v ? t->full_v : t->opt.v;
    int64_t n = t->full_m || t->full_v ? herd_model_dense_params(m) : t->opt.n;
    if (mm) j->refs[j->n++] = (herd_tensor_ref){.name = "optimizer.m", .dtype = HERD_F32, .ndim = 1, .shape = {n},
                                                .data = mm};
    if (vv) j->refs[j->n++] = (herd_tensor_ref){.name = "optimizer.v", .dtype = HERD_F32, .ndim = 1, .shape = {n},
                                                .data = vv};
    free(j->sparse_names);
    if (!(j->sparse_names = herd_malloc_array((size_t)(2 * t->n_sparse + 1), SPARSE_NAME)))
        return herd_fail(err, HERD_ENOMEM, "%s: out of memory", dir);
    for (int k = 0; k < t->n_sparse; k++) /* the tables' optimizer state, under the tables' names */
        for (int q = 0; q < 2; q++) {
            const herd_sparse_optimizer *o = &t->sparse[k];
            const float *data = t->shard ? t->sparse_full[2 * k + q] : q ? o->v : o->m; /* whole (herdi_checkpoint_gather) */
            if (!data) continue;
            sparse_moment_name(j->sparse_names[2 * k + q], t, k, q);
            j->refs[j->n++] = (herd_tensor_ref){.name = j->sparse_names[2 * k + q], .dtype = HERD_F32, .ndim = 2,
                                                .shape = {herd_model_param(m, t->sparse_grads[k].param)->shape[0],
                                                          herd_sparse_state_dim(o)},
                                                .data = data};
        }
    snprintf(j->epoch, sizeof j->epoch, "%" PRId64, pos->epoch);
    snprintf(j->step_in_epoch, sizeof j->step_in_epoch, "%" PRId64, pos->step_in_epoch);
    snprintf(j->global, sizeof j->global, "%" PRId64, t->step);
    snprintf(j->opt_t, sizeof j->opt_t, "%" PRId64, t->opt.t);
    snprintf(j->batch, sizeof j->batch, "%d", t->cfg.batch);
    snprintf(j->seed, sizeof j->seed, "%" PRIu64, t->cfg.seed);
    snprintf(j->optimizer, sizeof j->optimizer, "%s", t->cfg.optimizer);
    snprintf(j->model, sizeof j->model, "%s", m->source);
    checkpoint_identity(t, &j->id);
    const char *meta[26] = {"format", "herd-checkpoint-1", "model", j->model, "epoch", j->epoch,
                            "step_in_epoch", j->step_in_epoch, "global_step", j->global, "optimizer", j->optimizer,
                            "optimizer_t", j->opt_t, "batch", j->batch, "seed", j->seed,
                            "model_hash", j->id.model, "data", j->id.data, "samples", j->id.samples,
                            "deterministic", j->id.deterministic};
    memcpy(j->meta, meta, sizeof meta);
    int extra = herdi_model_norm_meta(m, j->meta + 26, j->owned); /* so the file also serves as --weights for eval */
    if (extra < 0) return herd_fail(err, HERD_ENOMEM, "%s: out of memory", dir);
    j->n_meta = 13 + extra;
    return HERD_OK;
}

/* Writes the job's file atomically, then keeps the newest `keep`: only files herd named, never
 * anything else in the directory; the directory is this run's alone (herdi_checkpoint_dir_claim), so
 * every checkpoint in it is ours. */
static herd_status job_write(const ckpt_job *j, char *saved, size_t saved_size, herd_error *err) {
    char path[sizeof j->dir + 64];
    ckpt_path(path, sizeof path, j->dir, j->step);
    herd_status st = herd_safetensors_write(path, j->refs, j->n, j->meta, j->n_meta, err);
    if (st) return st;
    if (saved) snprintf(saved, saved_size, "%s", path);
    int64_t *steps;
    int count;
    if (j->keep > 0 && list_checkpoints(j->dir, &steps, &count, err) == HERD_OK) {
        for (int i = j->keep; i < count; i++) {
            ckpt_path(path, sizeof path, j->dir, steps[i]);
            remove(path);
        }
        free(steps);
    }
    return HERD_OK;
}

herd_status herdi_checkpoint_save(const char *dir, const herd_trainer *t, const train_position *pos, int keep,
                            char *saved, size_t saved_size, herd_error *err) {
    if (mkdir(dir, 0777) != 0 && errno != EEXIST)
        return herd_fail(err, HERD_EIO, "%s: cannot create checkpoint directory: %s", dir, strerror(errno));
    ckpt_job *j = calloc(1, sizeof *j);
    if (!j) return herd_fail(err, HERD_ENOMEM, "%s: out of memory", dir);
    herd_status st = job_make(j, dir, t, pos, keep, err);
    if (!st) st = job_write(j, saved, saved_size, err);
    job_free(j);
    free(j);
    return st;
}

/* ---- checkpoints written in the background ---- */
/* Values of a checkpoint tensor (all are f32: parameters, buffers, optimizer moments). */
static size_t ref_numel(const herd_tensor_ref *r) {
    size_t k = 1;
    for (int d = 0; d < r->ndim; d++) k *= (size_t)r->shape[d];
    return k;
}

struct ckpt_writer {
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int busy, quit, started;
    ckpt_job job;
    float *snapshot;   /* params, buffers, optimizer m, v: copied at the step boundary */
    herd_pool *pool;   /* the model's threads copy it */
    size_t snapshot_floats;
    herd_status status; /* of the last write, until the owner collects it */
    herd_error err;
    char written[4096]; /* its file ("" when it failed or none finished) */
    double blocked;     /* seconds the training loop waited at checkpoints: copies, a previous write */
    double final_wait;  /* seconds herdi_checkpoint_writer_wait waited for the last write */
};

static void *writer_main(void *arg) {
    ckpt_writer *w = arg;
    pthread_mutex_lock(&w->mu);
    for (;;) {
        while (!w->busy && !w->quit) pthread_cond_wait(&w->cv, &w->mu);
        if (!w->busy) break;
        pthread_mutex_unlock(&w->mu);
        herd_error err = {0};
        char written[4096] = "";
        herd_status st = job_write(&w->job, written, sizeof written, &err);
        pthread_mutex_lock(&w->mu);
        w->status = st, w->err = err;
        memcpy(w->written, written, sizeof written);
        job_free(&w->job);
        w->busy = 0;
        pthread_cond_broadcast(&w->cv);
    }
    pthread_mutex_unlock(&w->mu);
    return NULL;
}

herd_status herdi_checkpoint_writer_create(ckpt_writer **out, const herd_trainer *t, herd_error *err) {
    ckpt_writer *w = calloc(1, sizeof *w);
    if (!w) return herd_fail(err, HERD_ENOMEM, "out of memory");
    /* the snapshot is allocated and its pages touched now, so a checkpoint costs the loop one copy */
    int64_t np, nb;
    herd_model_params(t->m, &np);
    herd_model_buffers(t->m, &nb);
    w->snapshot_floats = (size_t)(np + nb) + (t->opt.m ? (size_t)t->opt.n : 0) + (t->opt.v ? (size_t)t->opt.n : 0);
    if (!(w->snapshot = herd_aligned_alloc((w->snapshot_floats ? w->snapshot_floats : 1) * sizeof(float)))) {
        double mb = (double)w->snapshot_floats * 4 / 1e6;
        free(w);
        return herd_fail(err, HERD_ENOMEM, "no memory for a %.1f MB checkpoint snapshot", mb);
    }
    memset(w->snapshot, 0, w->snapshot_floats * sizeof(float));
    w->pool = herd_model_pool(t->m);
    pthread_mutex_init(&w->mu, NULL);
    pthread_cond_init(&w->cv, NULL);
    if (pthread_create(&w->thread, NULL, writer_main, w) != 0) {
        pthread_mutex_destroy(&w->mu);
        pthread_cond_destroy(&w->cv);
        herd_aligned_free(w->snapshot);
        free(w);
        return herd_fail(err, HERD_EIO, "cannot start the checkpoint writer thread");
    }
    w->started = 1;
    *out = w;
    return HERD_OK;
}

/* Waits for the write in flight (under mu); its outcome into saved and the return value. */
static herd_status writer_collect(ckpt_writer *w, char *saved, size_t saved_size, herd_error *err) {
    while (w->busy) pthread_cond_wait(&w->cv, &w->mu);
    herd_status st = w->status;
    if (st && err) *err = w->err;
    if (saved && saved_size) snprintf(saved, saved_size, "%s", w->written);
    w->status = HERD_OK;
    w->written[0] = 0;
    return st;
}

herd_status herdi_checkpoint_writer_wait(ckpt_writer *w, char *saved, size_t saved_size, herd_error *err) {
    if (saved && saved_size) saved[0] = 0;
    if (!w) return HERD_OK;
    double t0 = herd_now();
    pthread_mutex_lock(&w->mu);
    herd_status st = writer_collect(w, saved, saved_size, err);
    pthread_mutex_unlock(&w->mu);
    w->final_wait += herd_now() - t0;
    return st;
}

/* The job's tensors laid end to end into the snapshot, in chunks of COPY_CHUNK floats spread
 * over the model's threads (one thread alone does not reach the memory bandwidth). */
#define COPY_CHUNK ((size_t)1 << 20)
typedef struct copy_job {
    const ckpt_job *job;
    float *dst;
} copy_job;

static void copy_range(void *ctx, int64_t lo, int64_t hi, int thread) {
    (void)thread;
    const copy_job *c = ctx;
    size_t from = (size_t)lo * COPY_CHUNK, to = (size_t)hi * COPY_CHUNK, at = 0;
    for (int i = 0; i < c->job->n && at < to; i++) { /* tensor i holds floats [at, at + k) of the snapshot */
        size_t k = ref_numel(&c->job->refs[i]), a = from > at ? from : at, b = to < at + k ? to : at + k;
        if (a < b) memcpy(c->dst + a, (const float *)c->job->refs[i].data + (a - at), (b - a) * sizeof(float));
        at += k;
    }
}

herd_status herdi_checkpoint_save_async(ckpt_writer *w, const char *dir, const herd_trainer *t, const train_position *pos,
                                  int keep, char *saved, size_t saved_size, herd_error *err) {
    double t0 = herd_now();
    if (mkdir(dir, 0777) != 0 && errno != EEXIST)
        return herd_fail(err, HERD_EIO, "%s: cannot create checkpoint directory: %s", dir, strerror(errno));
    pthread_mutex_lock(&w->mu);
    herd_status st = writer_collect(w, saved, saved_size, err); /* at most one in flight */
    if (!st) st = job_make(&w->job, dir, t, pos, keep, err);
    size_t need = 0;
    for (int i = 0; !st && i < w->job.n; i++) need += ref_numel(&w->job.refs[i]);
    if (!st && need > w->snapshot_floats) {
        herd_aligned_free(w->snapshot);
        w->snapshot_floats = 0;
        if (!(w->snapshot = herd_aligned_alloc(need * sizeof(float))))
            st = herd_fail(err, HERD_ENOMEM, "%s: no memory for a %.1f MB checkpoint snapshot", dir,
                           (double)need * 4 / 1e6);
        else
            w->snapshot_floats = need;
    }
    if (!st) { /* the copy: the training loop may change the state as soon as this returns */
        copy_job c = {.job = &w->job, .dst = w->snapshot};
        herd_pool_for(w->pool, (int64_t)((need + COPY_CHUNK - 1) / COPY_CHUNK), copy_range, &c);
        float *p = w->snapshot;
        for (int i = 0; i < w->job.n; i++) {
            w->job.refs[i].data = p;
            p += ref_numel(&w->job.refs[i]);
        }
        w->busy = 1;
        pthread_cond_broadcast(&w->cv);
    } else {
        job_free(&w->job);
    }
    pthread_mutex_unlock(&w->mu);
    w->blocked += herd_now() - t0;
    return st;
}

double herdi_checkpoint_writer_blocked(const ckpt_writer *w, double *final_wait) {
    if (final_wait) *final_wait = w ? w->final_wait : 0;
    return w ? w->blocked : 0;
}

void herdi_checkpoint_writer_destroy(ckpt_writer *w) {
    if (!w) return;
    pthread_mutex_lock(&w->mu);
    while (w->busy) pthread_cond_wait(&w->cv, &w->mu);
    w->quit = 1;
    pthread_cond_broadcast(&w->cv);
    pthread_mutex_unlock(&w->mu);
    pthread_join(w->thread, NULL);
    pthread_mutex_destroy(&w->mu);
    pthread_cond_destroy(&w->cv);
    herd_aligned_free(w->snapshot);
    free(w);
}

/* A temp file a checkpoint write left behind (killed before its rename): ckpt-*.safetensors.tmp.* */
static int is_stale_temp(const char *name) {
    const char *tmp = strstr(name, CKPT_SUFFIX ".tmp.");
    return !strncmp(name, CKPT_PREFIX, strlen(CKPT_PREFIX)) && tmp;
}

herd_status herdi_checkpoint_dir_claim(const char *dir, int resume, int *lock_fd, char *note, size_t note_size,
                                 herd_error *err) {
    *lock_fd = -1;
    if (note_size) note[0] = 0;
    if (mkdir(dir, 0777) != 0 && errno != EEXIST)
        return herd_fail(err, HERD_EIO, "%s: cannot create checkpoint directory: %s", dir, strerror(errno));
    char path[4096];
    snprintf(path, sizeof path, "%s/" CKPT_LOCK, dir);
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0) return herd_fail(err, HERD_EIO, "%s: cannot create the lock file: %s", path, strerror(errno));
    if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
        int e = errno;
        char owner[32] = "";
        ssize_t k = pread(fd, owner, sizeof owner - 1, 0);
        owner[k > 0 ? k : 0] = 0;
        owner[strcspn(owner, "\n")] = 0;
        close(fd);
        if (e == EWOULDBLOCK)
            return herd_fail(err, HERD_EARG, "%s: checkpoint directory is in use by another herd run (pid %s holds %s); "
                             "give each run its own --checkpoint-dir", dir, owner[0] ? owner : "?", path);
        return herd_fail(err, HERD_EIO, "%s: cannot lock: %s", path, strerror(e));
    }
    char pid[24];
    int len = snprintf(pid, sizeof pid, "%ld\n", (long)getpid());
    int wrote = ftruncate(fd, 0) == 0 && pwrite(fd, pid, (size_t)len, 0) == len;
    (void)wrote; /* the pid only helps another run's message; the lock is what counts */
    /* a fresh run may not take over another run's checkpoints: its pruning would delete them and
     * a later --resume would silently continue the wrong run */
    int64_t *steps;
    int count;
    herd_status st = list_checkpoints(dir, &steps, &count, err);
    if (!st && !resume && count > 0) {
        ckpt_path(path, sizeof path, dir, steps[0]);
        st = herd_fail(err, HERD_EARG, "%s: already holds checkpoints of another run (newest %s); continue it with "
                       "--resume %s, or give an empty --checkpoint-dir", dir, path, dir);
    }
    free(steps);
    /* temp files of writes killed before their rename: nobody else writes here (we hold the lock) */
    DIR *d = st ? NULL : opendir(dir);
    int removed = 0;
    struct dirent *e;
    while (d && (e = readdir(d))) {
        if (!is_stale_temp(e->d_name)) continue;
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        if (unlink(path) == 0) removed++;
    }
    if (d) closedir(d);
    if (removed && note_size)
        snprintf(note, note_size, "removed %d unfinished checkpoint temp file%s left in %s by an interrupted run",
                 removed, removed == 1 ? "" : "s", dir);
    if (st) {
        close(fd);
        return st;
    }
    *lock_fd = fd;
    return HERD_OK;
}

void herdi_checkpoint_dir_release(int lock_fd) {
    if (lock_fd >= 0) close(lock_fd); /* the lock goes with the descriptor; the file stays, harmlessly */
}

/* A count from the metadata, at most max (a file may say anything; the loop adds to these). */
static herd_status meta_int(const herd_safetensors *st, const char *key, int64_t max, int64_t *out, herd_error *err) {
    const char *v = herd_safetensors_meta(st, key);
    char *end;
    errno = 0;
    long long x = v ? strtoll(v, &end, 10) : 0;
    if (!v || !*v || *end || errno || x < 0 || x > max)
        return herd_fail(err, HERD_EFORMAT, "%s: checkpoint metadata '%s' is missing or not a count in 0..%lld",
                         herd_safetensors_path(st), key, (long long)max);
    *out = x;
    return HERD_OK;
}

/* An optimizer moment the trainer has (dst != NULL) must be in the file with n floats. */
static herd_status check_moment(const herd_safetensors *st, const char *name, const float *dst, int64_t n,
                                herd_error *err) {
    const herd_tensor_ref *r = herd_safetensors_find(st, name);
    if (dst && (!r || r->dtype != HERD_F32 || r->ndim != 1 || r->shape[0] != n))
        return herd_fail(err, HERD_EFORMAT, "%s: '%s' is missing or not %" PRId64 " floats (another optimizer or model?)",
                         herd_safetensors_path(st), name, n);
    return HERD_OK;
}

/* Values [lo, lo + n) of the checkpoint's tensor name into dst (when there is one). */
static void copy_moment(const herd_safetensors *st, const char *name, float *dst, int64_t lo, int64_t n) {
    if (dst) memcpy(dst, (const float *)herd_safetensors_find(st, name)->data + lo, (size_t)n * sizeof(float));
}

/* The checkpoint's value for key differs from this run's: one line naming both. Keys older
 * checkpoints lack are not compared. */
static herd_status compare_meta(const herd_safetensors *st, const char *key, const char *ours, const char *what,
                                const char *hint, herd_error *err) {
    const char *theirs = herd_safetensors_meta(st, key);
    if (!theirs || !strcmp(theirs, ours)) return HERD_OK;
    return herd_fail(err, HERD_EARG, "%s: written with %s %s, resumed with %s%s", herd_safetensors_path(st), what,
                     theirs, ours, hint);
}

/* Opens path and checks the file itself (format, positions): HERD_EFORMAT/HERD_EIO mean a
 * damaged file, an older one may do. */
static herd_status open_checkpoint(const char *path, herd_safetensors **out, int64_t pos[4], herd_error *err) {
    herd_safetensors *st = NULL;
    herd_status s = herd_safetensors_open(&st, path, err);
    if (s) return s;
    const char *fmt = herd_safetensors_meta(st, "format");
    if (!fmt || strcmp(fmt, "herd-checkpoint-1") != 0)
        s = herd_fail(err, HERD_EFORMAT, "%s: not a herd checkpoint (format '%s', expected 'herd-checkpoint-1')", path,
                      fmt ? fmt : "none");
    const int64_t big = (int64_t)1 << 50;
    if (!s) s = meta_int(st, "epoch", 1 << 20, &pos[0], err); /* herd train takes at most 2^20 epochs */
    if (!s) s = meta_int(st, "step_in_epoch", big, &pos[1], err);
    if (!s) s = meta_int(st, "global_step", big, &pos[2], err);
    if (!s) s = meta_int(st, "optimizer_t", big, &pos[3], err);
    if (s) {
        herd_safetensors_close(st);
        return s;
    }
    *out = st;
    return HERD_OK;
}

/* Everything that changes the results must be what the checkpoint was written with. */
static herd_status check_compatible(const herd_safetensors *st, const herd_trainer *t, herd_error *err) {
    const char *path = herd_safetensors_path(st);
    int64_t batch;
    herd_status s = meta_int(st, "batch", 1 << 20, &batch, err);
    if (!s && batch != t->cfg.batch)
        s = herd_fail(err, HERD_EARG, "%s: written with --batch %" PRId64 ", resumed with %d; the global batch must "
                      "stay the same (the number of ranks may change)", path, batch, t->cfg.batch);
    const char *opt = herd_safetensors_meta(st, "optimizer");
    if (!s && (!opt || strcmp(opt, t->cfg.optimizer) != 0))
        s = herd_fail(err, HERD_EARG, "%s: written with optimizer %s, resumed with %s", path, opt ? opt : "?",
                      t->cfg.optimizer);
    char seed[24];
    snprintf(seed, sizeof seed, "%" PRIu64, t->cfg.seed);
    ckpt_identity id;
    checkpoint_identity(t, &id);
    if (!s) s = compare_meta(st, "seed", seed, "--seed", " (the seed orders the data and draws dropout)", err);
    if (!s) s = compare_meta(st, "model_hash", id.model, "a model of structure hash", " (another spec: not the "
                             "same model)", err);
    if (!s && t->data) s = compare_meta(st, "data", id.data, "the training data", "", err);
    if (!s && t->data) s = compare_meta(st, "samples", id.samples, "a training set of samples", " (another "
                                        "--val-split or another dataset)", err);
    if (!s) s = compare_meta(st, "deterministic", id.deterministic, "--deterministic groups", " ('off' = without "
                             "--deterministic; the layout decides the summation order)", err);
    return s;
}

herd_status herdi_checkpoint_load_latest(const char *dir, herd_trainer *t, train_position *pos, char *loaded,
                                   size_t loaded_size, char *note, size_t note_size, herd_error *err) {
    int64_t *steps;
    int count;
    if (note_size) note[0] = 0;
    herd_status s = list_checkpoints(dir, &steps, &count, err);
    if (s) return s;
    if (count == 0) {
        free(steps);
        return herd_fail(err, HERD_EIO, "%s: no checkpoint (" CKPT_PREFIX "*" CKPT_SUFFIX ") to resume from", dir);
    }
    char path[4096];
    herd_safetensors *st = NULL;
    int64_t p[4];
    herd_error damage = {0}; /* the newest damaged file's error */
    int skipped = 0;
    /* newest first; a damaged file (truncated, overwritten) gives way to the one before it */
    for (int i = 0; i < count; i++) {
        herd_error e = {0};
        ckpt_path(path, sizeof path, dir, steps[i]);
        s = open_checkpoint(path, &st, p, &e);
        if (!s) break;
        *err = skipped ? damage : e;
        if (s != HERD_EFORMAT && s != HERD_EIO) break;
        if (!skipped++) damage = e;
    }
    free(steps);
    if (s) return s;
    if (skipped && note_size)
        snprintf(note, note_size, "skipped %d damaged checkpoint%s (newest: %s); resuming from %s", skipped,
                 skipped == 1 ? "" : "s", damage.msg, path);
    if (loaded_size) snprintf(loaded, loaded_size, "%s", path);
    /* validate all, then copy: the model changes only if everything fits */
    s = check_compatible(st, t, err);
    /* the file's dense moments are whole: this rank takes the part it updates */
    int64_t lo, hi, n_dense = herd_model_dense_params(t->m);
    herd_strategy_update_range(t->s, &lo, &hi);
    if (!s) s = check_moment(st, "optimizer.m", t->opt.m, n_dense, err);
    if (!s) s = check_moment(st, "optimizer.v", t->opt.v, n_dense, err);
    char name[SPARSE_NAME];
    for (int k = 0; k < t->n_sparse && !s; k++)
        for (int j = 0; j < 2 && !s; j++) {
            const herd_sparse_optimizer *o = &t->sparse[k];
            int64_t rows = herd_model_param(t->m, t->sparse_grads[k].param)->shape[0]; /* whole, whatever the plan */
            sparse_moment_name(name, t, k, j);
            const herd_tensor_ref *r = herd_safetensors_find(st, name);
            if ((j ? o->v : o->m) && (!r || r->dtype != HERD_F32 || r->ndim != 2 || r->shape[0] != rows ||
                                      r->shape[1] != herd_sparse_state_dim(o)))
                s = herd_fail(err, HERD_EFORMAT, "%s: '%s' is missing or not %lld x %lld floats (another sparse "
                              "optimizer?)", herd_safetensors_path(st), name, (long long)rows,
                              (long long)herd_sparse_state_dim(o));
        }
    if (!s) s = herdi_model_load_tensors(t->m, st, "optimizer.", err);
    if (!s && t->s->remote_state) { /* whole, for the ranks that hold them (herd_strategy_restore_state) */
        if ((t->opt.m && !t->full_m && !(t->full_m = malloc((size_t)n_dense * sizeof(float)))) ||
            (t->opt.v && !t->full_v && !(t->full_v = malloc((size_t)n_dense * sizeof(float)))))
            s = herd_fail(err, HERD_ENOMEM, "out of memory for the optimizer state of a checkpoint");
        lo = 0, hi = n_dense;
    }
    if (!s) {
        copy_moment(st, "optimizer.m", t->s->remote_state ? t->full_m : t->opt.m, lo, hi - lo);
        copy_moment(st, "optimizer.v", t->s->remote_state ? t->full_v : t->opt.v, lo, hi - lo);
        for (int k = 0; k < t->n_sparse; k++)
            for (int j = 0; j < 2; j++) {
                herd_sparse_optimizer *o = &t->sparse[k];
                int64_t lo = 0, hi = o->rows; /* sharded: this rank's rows of the whole state */
                if (t->shard) herd_embedding_shard_range(t->shard, k, &lo, &hi);
                sparse_moment_name(name, t, k, j);
                copy_moment(st, name, j ? o->v : o->m, lo * herd_sparse_state_dim(o), (hi - lo) * herd_sparse_state_dim(o));
                o->t = p[3];
            }
        if (t->shard) herd_embedding_shard_reload(t->shard); /* the tables were loaded whole into the model */
        t->step = p[2];
        t->opt.t = p[3];
        pos->epoch = p[0];
        pos->step_in_epoch = p[1];
    }
    herd_safetensors_close(st);
    return s;
}
