/* Checkpoints for exact resume: one safetensors file per checkpoint holding the model's
 * registry tensors, the optimizer's flat moments ("optimizer.m", "optimizer.v") and, in the
 * metadata, where training stands. Nothing else is needed to continue bit-exactly: the
 * sampler's order and every dropout mask are pure functions of (seed, epoch/step). Files
 * are written atomically by the safetensors writer, so a crash leaves the previous one. */
#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "herd/io.h"
#include "model/model_internal.h"
#include "train/trainer_internal.h"

#define CKPT_PREFIX "ckpt-"
#define CKPT_SUFFIX ".safetensors"

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

herd_status checkpoint_save(const char *dir, const herd_trainer *t, const train_position *pos, int keep,
                            herd_error *err) {
    if (mkdir(dir, 0777) != 0 && errno != EEXIST)
        return herd_fail(err, HERD_EIO, "%s: cannot create checkpoint directory: %s", dir, strerror(errno));
    const herd_model *m = t->m;
    herd_tensor_ref refs[HERD_MAX_PARAMS + 2];
    int n = model_registry_refs(m, refs);
    if (t->opt.m) refs[n++] = (herd_tensor_ref){.name = "optimizer.m", .dtype = HERD_F32, .ndim = 1,
                                                .shape = {t->opt.n}, .data = t->opt.m};
    if (t->opt.v) refs[n++] = (herd_tensor_ref){.name = "optimizer.v", .dtype = HERD_F32, .ndim = 1,
                                                .shape = {t->opt.n}, .data = t->opt.v};
    char epoch[24], step_in_epoch[24], global[24], opt_t[24], batch[24], seed[24];
    snprintf(epoch, sizeof epoch, "%" PRId64, pos->epoch);
    snprintf(step_in_epoch, sizeof step_in_epoch, "%" PRId64, pos->step_in_epoch);
    snprintf(global, sizeof global, "%" PRId64, t->step);
    snprintf(opt_t, sizeof opt_t, "%" PRId64, t->opt.t);
    snprintf(batch, sizeof batch, "%d", t->cfg.batch);
    snprintf(seed, sizeof seed, "%" PRIu64, t->cfg.seed);
    const char *meta[22] = {"format", "herd-checkpoint-1", "model", m->source, "epoch", epoch,
                            "step_in_epoch", step_in_epoch, "global_step", global, "optimizer", t->cfg.optimizer,
                            "optimizer_t", opt_t, "batch", batch, "seed", seed};
    char *owned[2], path[4096];
    int extra = model_norm_meta(m, meta + 18, owned); /* so the file also serves as --weights for eval */
    if (extra < 0) return herd_fail(err, HERD_ENOMEM, "%s: out of memory", dir);
    ckpt_path(path, sizeof path, dir, t->step);
    herd_status st = herd_safetensors_write(path, refs, n, meta, 9 + extra, err);
    free(owned[0]), free(owned[1]);
    if (st) return st;
    /* keep the newest `keep`: only files herd named, never anything else in the directory */
    int64_t *steps;
    int count;
    if (keep > 0 && list_checkpoints(dir, &steps, &count, err) == HERD_OK) {
        for (int i = keep; i < count; i++) {
            ckpt_path(path, sizeof path, dir, steps[i]);
            remove(path);
        }
        free(steps);
    }
    return HERD_OK;
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

static void copy_moment(const herd_safetensors *st, const char *name, float *dst, int64_t n) {
    if (dst) memcpy(dst, herd_safetensors_find(st, name)->data, (size_t)n * sizeof(float));
}

herd_status checkpoint_load_latest(const char *dir, herd_trainer *t, train_position *pos, herd_error *err) {
    int64_t *steps;
    int count;
    herd_status s = list_checkpoints(dir, &steps, &count, err);
    if (s) return s;
    if (count == 0) {
        free(steps);
        return herd_fail(err, HERD_EIO, "%s: no checkpoint (" CKPT_PREFIX "*" CKPT_SUFFIX ") to resume from", dir);
    }
    char path[4096];
    ckpt_path(path, sizeof path, dir, steps[0]);
    free(steps);
    herd_safetensors *st = NULL;
    if ((s = herd_safetensors_open(&st, path, err))) return s;
    int64_t epoch, in_epoch, global, opt_t, batch;
    const char *fmt = herd_safetensors_meta(st, "format"), *opt = herd_safetensors_meta(st, "optimizer");
    if (!fmt || strcmp(fmt, "herd-checkpoint-1") != 0)
        s = herd_fail(err, HERD_EFORMAT, "%s: not a herd checkpoint (format '%s', expected 'herd-checkpoint-1')", path,
                      fmt ? fmt : "none");
    const int64_t big = (int64_t)1 << 50;
    if (!s) s = meta_int(st, "epoch", 1 << 20, &epoch, err); /* herd train takes at most 2^20 epochs */
    if (!s) s = meta_int(st, "step_in_epoch", big, &in_epoch, err);
    if (!s) s = meta_int(st, "global_step", big, &global, err);
    if (!s) s = meta_int(st, "optimizer_t", big, &opt_t, err);
    if (!s) s = meta_int(st, "batch", 1 << 20, &batch, err);
    if (!s && batch != t->cfg.batch)
        s = herd_fail(err, HERD_EARG, "%s: written with --batch %" PRId64 ", resumed with %d; the global batch must "
                      "stay the same (the number of ranks may change)", path, batch, t->cfg.batch);
    if (!s && (!opt || strcmp(opt, t->cfg.optimizer) != 0))
        s = herd_fail(err, HERD_EARG, "%s: written with optimizer %s, resumed with %s", path, opt ? opt : "?",
                      t->cfg.optimizer);
    /* validate all, then copy: the model changes only if everything fits */
    if (!s) s = check_moment(st, "optimizer.m", t->opt.m, t->opt.n, err);
    if (!s) s = check_moment(st, "optimizer.v", t->opt.v, t->opt.n, err);
    if (!s) s = model_load_tensors(t->m, st, "optimizer.", err);
    if (!s) {
        copy_moment(st, "optimizer.m", t->opt.m, t->opt.n);
        copy_moment(st, "optimizer.v", t->opt.v, t->opt.n);
        t->step = global;
        t->opt.t = opt_t;
        pos->epoch = epoch;
        pos->step_in_epoch = in_epoch;
    }
    herd_safetensors_close(st);
    return s;
}
