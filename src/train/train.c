/* The training loop and evaluation. One step reads top to bottom: batch, forward, loss,
 * backward, clip, update; nothing is allocated inside it. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/pool.h"
#include "dist/embedding_shard.h"
#include "dist/sparse_exchange.h"
#include "dist/strategy.h"
#include "herd/trace.h"
#include "train/trainer_internal.h"

herd_train_config herd_train_defaults(void) {
    herd_train_config c;
    memset(&c, 0, sizeof c);
    c.epochs = 1;
    c.batch = 32;
    c.optimizer = "adam";
    c.lr = 1e-3f;
    c.schedule = "constant";
    c.lr_step_epochs = 1;
    c.lr_gamma = 0.1f;
    c.keep_checkpoints = 3;
    return c;
}

/* The data's targets are the ones the model takes (the trainer's buffers are sized for them). */
static herd_status check_targets(const herd_model *m, const herd_dataset *ds, herd_error *err) {
    if (herd_tensor_same(&ds->y, herd_model_target(m))) return HERD_OK;
    char ys[96], ms[96];
    return herd_fail(err, HERD_ESHAPE, "%s: targets are %s %s but the model was set up for %s %s", ds->source,
                     herd_dtype_name(ds->y.dtype), herd_tensor_shape_str(&ds->y, ys, sizeof ys),
                     herd_dtype_name(herd_model_target(m)->dtype),
                     herd_tensor_shape_str(herd_model_target(m), ms, sizeof ms));
}

/* Sets the model's target to the data's (the loss checks it fits the output). */
static herd_status check_data(herd_model *m, const herd_dataset *ds, herd_error *err) {
    herd_status st = herd_model_check_data(m, ds, err);
    if (!st) st = herd_model_set_target(m, &ds->y, ds->source, err);
    if (st) return st;
    if (ds->y.dtype == HERD_I32 && herd_model_metrics(m) & HERD_METRIC_ACCURACY && herd_model_output_size(m) > 1 &&
        ds->num_classes > herd_model_output_size(m))
        return herd_fail(err, HERD_ESHAPE, "%s: labels go up to %d but the model has only %d outputs", ds->source,
                         ds->num_classes - 1, herd_model_output_size(m));
    if (ds->n < 1) return herd_fail(err, HERD_EFORMAT, "%s: the dataset is empty", ds->source);
    return HERD_OK;
}

/* The optimizer and LR schedules a training config asks for, s of the dense parameters and
 * sparse of the tables (shared by the trainer and parameter-server servers, which apply the
 * updates there). */
static herd_status make_optimizer(const herd_train_config *cfg, int64_t steps_per_epoch, herd_optim_config *oc,
                                  herd_schedule *s, herd_schedule *sparse, herd_error *err) {
    if (!(cfg->lr > 0) || !isfinite(cfg->lr)) return herd_fail(err, HERD_EARG, "learning rate must be positive");
    if (!isfinite(cfg->sparse_lr))
        return herd_fail(err, HERD_EARG, "the tables' learning rate (--sparse-lr) must be finite");
    herd_opt_kind kind;
    if (!herd_opt_kind_parse(cfg->optimizer, &kind))
        return herd_fail(err, HERD_EARG, "unknown optimizer '%s' (expected sgd, momentum, nesterov, adam, adamw)",
                         cfg->optimizer);
    if (cfg->sparse_optimizer && !herd_sparse_opt_parse(cfg->sparse_optimizer, &(herd_sparse_opt_kind){0}))
        return herd_fail(err, HERD_EARG, "unknown sparse optimizer '%s' (expected sgd, adagrad, rowwise_adagrad, adam)",
                         cfg->sparse_optimizer);
    memset(s, 0, sizeof *s);
    if (!herd_sched_kind_parse(cfg->schedule ? cfg->schedule : "constant", &s->kind))
        return herd_fail(err, HERD_EARG, "unknown LR schedule '%s' (expected constant, step, cosine)", cfg->schedule);
    s->base_lr = cfg->lr;
    s->warmup_steps = cfg->warmup_steps;
    s->step_size = (int64_t)(cfg->lr_step_epochs > 0 ? cfg->lr_step_epochs : 1) * steps_per_epoch;
    s->gamma = cfg->lr_gamma;
    s->total_steps = steps_per_epoch * cfg->epochs - cfg->warmup_steps;
    if (s->total_steps < 1) s->total_steps = 1;
    s->min_lr = cfg->min_lr;
    /* the tables' schedule: the same with its own base (the same values bit for bit when not given) */
    *sparse = *s;
    if (cfg->sparse_lr > 0 && cfg->sparse_lr != cfg->lr) {
        sparse->base_lr = cfg->sparse_lr;
        sparse->min_lr = (float)((double)cfg->min_lr * cfg->sparse_lr / cfg->lr);
    }
    *oc = herd_optim_defaults(kind);
    oc->weight_decay = cfg->weight_decay;
    if (cfg->momentum > 0) oc->momentum = cfg->momentum;
    return HERD_OK;
}

/* The tables' optimizer cfg asks for (default: lazy Adam beside adam/adamw, else SGD). */
static herd_sparse_opt_kind sparse_kind(const herd_train_config *cfg, const herd_optim_config *oc) {
    herd_sparse_opt_kind kind = HERD_SPARSE_SGD;
    if (cfg->sparse_optimizer) herd_sparse_opt_parse(cfg->sparse_optimizer, &kind);
    else if (oc->kind == HERD_OPT_ADAM || oc->kind == HERD_OPT_ADAMW) kind = HERD_SPARSE_ADAM;
    return kind;
}

herd_status herd_train_serve(herd_model *m, const herd_dataset *train, const herd_train_config *cfg,
                             herd_error *err) {
    (void)m;
    if (!cfg->strategy || !herd_strategy_is_server(cfg->strategy))
        return herd_fail(err, HERD_EINTERNAL, "herd_train_serve on a rank that is not a parameter server");
    herd_optim_config oc;
    herd_schedule sched, sparse_sched;
    int64_t steps_per_epoch = (train->n + cfg->batch - 1) / cfg->batch;
    herd_status st = make_optimizer(cfg, steps_per_epoch, &oc, &sched, &sparse_sched, err);
    return st ? st : herd_strategy_serve(cfg->strategy, &oc, sparse_kind(cfg, &oc), &sched, &sparse_sched, cfg->resume,
                                         err);
}

/* Weight decay on the trainable tensors of 2 or more dims only (merged into ranges), of the
 * parameters [lo, hi) this rank's optimizer updates (offsets relative to lo). */
static herd_status decay_on_matrices(herd_trainer *t, int64_t lo, int64_t hi, herd_error *err) {
    if (hi == lo && herd_model_dense_params(t->m) > 0)
        return herd_fail(err, HERD_EUNSUPPORTED, "weight decay on matrices only is not supported with --strategy ps "
                         "(the servers decay every parameter)");
    int np = herd_model_param_count(t->m), n = 0;
    int64_t *r = malloc((size_t)(np > 0 ? np : 1) * 2 * sizeof *r);
    if (!r) return herd_fail(err, HERD_ENOMEM, "out of memory");
    for (int i = 0; i < np; i++) {
        const herd_param_info *p = herd_model_param(t->m, i);
        if (!p->trainable || p->sparse || p->ndim < 2) continue; /* tables: no weight decay */
        int64_t a = p->offset > lo ? p->offset : lo, b = p->offset + p->numel < hi ? p->offset + p->numel : hi;
        if (a >= b) continue;
        if (n && r[2 * n - 1] == a - lo) r[2 * n - 1] = b - lo; /* adjacent: one range */
        else r[2 * n] = a - lo, r[2 * n + 1] = b - lo, n++;
    }
    herd_status st = herd_optimizer_set_decay_ranges(&t->opt, r, n, err);
    free(r);
    return st;
}

/* One sparse optimizer per row-sparse table, of the kind cfg asks for; where the state lives on
 * other ranks (parameter servers), only for checkpoints (their copy of it). */
static herd_status sparse_optimizers(herd_trainer *t, herd_error *err) {
    int n = herd_model_sparse_count(t->m);
    if (!n) return HERD_OK;
    herd_sparse_opt_kind kind = sparse_kind(&t->cfg, &t->opt.cfg);
    int keep = !t->s->remote_state || t->cfg.checkpoint_dir;
    t->sparse = calloc((size_t)n, sizeof *t->sparse);
    t->sparse_grads = calloc((size_t)n, sizeof *t->sparse_grads);
    if (!t->sparse || !t->sparse_grads) return herd_fail(err, HERD_ENOMEM, "out of memory");
    for (int k = 0; k < n; k++) {
        herd_sparse_grad *g = &t->sparse_grads[k]; /* its table (checkpoints name the state by it) before any step */
        herd_model_sparse_grad(t->m, k, g);
        const herd_param_info *p = herd_model_param(t->m, g->param);
        int64_t lo = 0, hi = p->shape[0]; /* sharded: the state of this rank's rows only */
        if (t->shard) herd_embedding_shard_range(t->shard, k, &lo, &hi);
        herd_status st = keep ? herd_sparse_optimizer_init(&t->sparse[k], kind, hi - lo, p->shape[1], err) : HERD_OK;
        if (st) return herd_fail_prefix(err, "%s", p->name);
        t->n_sparse++;
    }
    return HERD_OK;
}

herd_status herd_trainer_create(herd_trainer **out, herd_model *m, const herd_train_config *cfg,
                                int64_t steps_per_epoch, herd_error *err) {
    if (cfg->epochs < 1) return herd_fail(err, HERD_EARG, "epochs must be at least 1");
    if (cfg->batch < 1) return herd_fail(err, HERD_EARG, "batch must be at least 1");
    herd_trainer *t = calloc(1, sizeof *t);
    if (!t) return herd_fail(err, HERD_ENOMEM, "out of memory");
    t->m = m;
    t->cfg = *cfg;
    t->lr = cfg->lr;
    herd_optim_config oc;
    herd_status st = make_optimizer(cfg, steps_per_epoch, &oc, &t->sched, &t->sparse_sched, err);
    /* no strategy given: one process, the one-rank strategy of its own */
    if (!st && !(t->s = cfg->strategy)) {
        if (!(st = herd_strategy_create_local(&t->s, m, err))) t->own_strategy = 1;
    }
    /* the optimizer keeps state for the parameters this rank updates (none on a parameter-server
     * worker: the servers apply the updates) */
    int64_t lo = 0, hi = 0;
    if (!st) herd_strategy_update_range(t->s, &lo, &hi);
    if (!st) st = herd_optimizer_init(&t->opt, &oc, hi - lo, err);
    if (!st && cfg->decay_matrices) st = decay_on_matrices(t, lo, hi, err);
    if (st) {
        herd_optimizer_free(&t->opt);
        if (t->own_strategy) herd_strategy_destroy(t->s);
        free(t);
        return st;
    }
    herd_shard_plan plan = HERD_SHARD_AUTO;
    if (cfg->embedding_shard && !herd_shard_plan_parse(cfg->embedding_shard, &plan))
        st = herd_fail(err, HERD_EARG, "--embedding-shard %s: unknown plan (expected table, row or auto)",
                       cfg->embedding_shard);
    else if (cfg->embedding_shard &&
             !(st = herd_embedding_shard_create(&t->shard, t->s, m, plan, t->shard_note, sizeof t->shard_note, err)))
        herd_strategy_set_shard(t->s, t->shard); /* the strategy's from now on: evaluations after training use it */
    if (st || (st = sparse_optimizers(t, err)) ||
        (!t->shard && !t->s->remote_state && (st = herd_sparse_exchange_create(&t->sparse_x, t->s, m, err)))) {
        herd_trainer_destroy(t);
        return st;
    }
    t->targets = malloc((size_t)cfg->batch * herd_model_target_bytes(m));
    if (!t->targets) {
        herd_trainer_destroy(t);
        return herd_fail(err, HERD_ENOMEM, "out of memory");
    }
    *out = t;
    return HERD_OK;
}

void herd_trainer_destroy(herd_trainer *t) {
    if (!t) return;
    herd_optimizer_free(&t->opt);
    for (int k = 0; k < t->n_sparse; k++) herd_sparse_optimizer_free(&t->sparse[k]);
    free(t->sparse);
    free(t->sparse_grads);
    herd_sparse_exchange_destroy(t->sparse_x);
    for (int k = 0; t->sparse_full && k < 2 * t->n_sparse; k++) free(t->sparse_full[k]);
    free(t->sparse_full);
    free(t->targets);
    free(t->full_m), free(t->full_v);
    if (t->own_strategy) herd_strategy_destroy(t->s);
    free(t);
}

float herd_trainer_lr(const herd_trainer *t) { return t->lr; }
herd_metrics *herd_trainer_metrics(herd_trainer *t) { return &t->metrics; }

/* The first of the B batch rows whose f32 model input holds a NaN or Inf, or -1. */
static int nonfinite_input_row(herd_model *m, int B) {
    for (int k = 0; k < herd_model_input_count(m); k++) {
        herd_tensor in = herd_model_input_desc(m, k, NULL);
        int64_t n = herd_tensor_numel(&in);
        const float *x = in.data;
        for (int b = 0; in.dtype == HERD_F32 && x && b < B; b++)
            for (int64_t i = 0; i < n; i++)
                if (!isfinite(x[(int64_t)b * n + i])) return b;
    }
    return -1;
}

/* A non-finite loss (grads = 0; the batch's rows are idx[0..B) of ds) or gradient: names the
 * input sample when the data holds the NaN/Inf, else the first layer that made one. */
static herd_status nonfinite_error(herd_model *m, const herd_dataset *ds, const int64_t *idx, int B, int64_t step,
                                   int grads, herd_error *err) {
    int row = grads ? -1 : nonfinite_input_row(m, B);
    if (row >= 0)
        return herd_fail(err, HERD_ENUMERIC, "%s: sample %lld holds a non-finite input value (NaN/Inf) (step %lld); "
                         "the data, not the training, is at fault", ds ? ds->source : "the data",
                         idx ? (long long)idx[row] : (long long)row, (long long)step);
    int at = herd_model_first_nonfinite(m, B, grads);
    if (at >= 0) {
        herd_layer_info info;
        herd_model_layer(m, at, &info);
        return herd_fail(err, HERD_ENUMERIC, "step %lld: the %s of layer '%s' became non-finite (NaN/Inf); "
                         "try a lower learning rate or gradient clipping", (long long)step,
                         grads ? "gradient" : "output", info.name);
    }
    return herd_fail(err, HERD_ENUMERIC, "step %lld: the %s became non-finite (NaN/Inf)", (long long)step,
                     grads ? "gradient norm" : "loss");
}

static herd_status finish_update(herd_trainer *t, herd_step_result *res, herd_error *err);

/* ---- data loading: the loader's rows when herd_train runs one, else read here ---- */

/* Rows [first, first + count) of the global batch idx into rows [row0, row0 + count) of the
 * model's inputs (every input, from the data's fields in order) and of the targets. */
static herd_status load_batch(herd_trainer *t, const herd_dataset *ds, const int64_t *idx, int first, int count,
                              int64_t row0, herd_error *err) {
    float *x = herd_model_batch_buffer(t->m) + row0 * herd_model_input_slots(t->m);
    void *y = (char *)t->targets + (size_t)row0 * herd_model_target_bytes(t->m);
    herd_status st;
    if (t->loader && row0 == 0) { /* the loader's rows read where they lie when the model can (no copy) */
        const float *view = NULL;
        st = herd_loader_rows_view(t->loader, t->load_step, first, count, x, &view, y, err);
        if (!st && view && !herd_model_use_input(t->m, view))
            memcpy(x, view, (size_t)count * (size_t)herd_model_input_slots(t->m) * sizeof *x);
    } else if (t->loader) st = herd_loader_rows(t->loader, t->load_step, first, count, x, y, err);
    else if (!(st = check_targets(t->m, ds, err))) /* y holds the model's targets */
        st = herd_dataset_batch(ds, idx + first, count, x, y, err);
    if (!st) herd_model_set_inputs(t->m, row0, count);
    return st;
}

static herd_status step_inner(herd_trainer *t, const herd_dataset *ds, const int64_t *idx, int B,
                              herd_step_result *res, herd_error *err);

herd_status herd_trainer_step(herd_trainer *t, const herd_dataset *ds, const int64_t *idx, int B,
                              herd_step_result *res, herd_error *err) {
    /* phases: data, exchange and update are timed where they happen; compute is the rest */
    herd_train_phases *p = &t->phases, before = *p;
    double t0 = herd_now();
    herdi_pool_hot(herd_model_pool(t->m), 1); /* the forward, backward, clipping and update: one run of jobs */
    herd_status st = step_inner(t, ds, idx, B, res, err);
    herdi_pool_hot(herd_model_pool(t->m), -1);
    herd_model_use_input(t->m, NULL); /* the loader's rows are reused once later steps are asked */
    double others = (p->data - before.data) + (p->exchange - before.exchange) + (p->update - before.update);
    p->compute += herd_now() - t0 - others;
    p->steps++;
    p->samples += res->samples;
    if (!st && !res->skipped) herd_metrics_add(&t->metrics, &t->step_metrics);
    return st;
}

static herd_status step_inner(herd_trainer *t, const herd_dataset *ds, const int64_t *idx, int B,
                              herd_step_result *res, herd_error *err) {
    herd_model *m = t->m;
    herd_strategy *s = t->s;
    herd_status st;
    if (B > t->cfg.batch) return herd_fail(err, HERD_EARG, "step of %d samples exceeds the batch %d", B, t->cfg.batch);
    memset(res, 0, sizeof *res);
    herd_metrics *acc = &t->step_metrics;
    herd_metrics_clear(acc);
    if ((st = herd_strategy_begin_step(s, t->step, err))) return st;
    int parts = herd_strategy_parts(s);
    for (int p = 0; p < parts; p++) {
        herd_strategy_part part = {.index = p, .B = B, .targets = t->targets, .seed = t->cfg.seed, .step = t->step};
        int lo;
        herd_strategy_part_rows(s, B, p, &lo, &part.count, &part.id);
        if (part.count > 0) {
            double t0 = herd_now();
            if ((st = load_batch(t, ds, idx, lo, part.count, 0, err))) return st;
            double t1 = herd_now();
            t->phases.data += t1 - t0;
            herd_trace_add(t->cfg.trace, "load batch", "data", HERD_TRACE_COMPUTE, t0, t1);
        }
        if (t->shard) { /* the part's rows from their owners (every rank takes part, an empty part too) */
            double t0 = herd_now();
            st = herd_embedding_shard_lookup(t->shard, p, part.count, err);
            t->phases.exchange += herd_now() - t0;
            if (st) return st;
        }
        float loss;
        if ((st = herd_strategy_compute(s, &part, &loss, acc, err))) return st;
        /* skip mode goes on: the non-finite gradients then skip the step on every rank alike */
        if (!isfinite(loss) && !t->cfg.skip_nonfinite)
            return nonfinite_error(m, ds, idx ? idx + lo : NULL, part.count, t->step, 0, err);
        res->samples += part.count;
        if (t->sparse_x && (st = herd_sparse_exchange_group_done(t->sparse_x, p, part.count, err))) return st;
        if (t->shard && (st = herd_embedding_shard_group_done(t->shard, p, part.count, err))) return st;
    }
    res->loss_sum = acc->loss_sum, res->loss_units = acc->loss_units;
    double t0 = herd_now(); /* gradient exchange: the tables' rows to their owners while the dense buckets move */
    if (t->shard) st = herd_embedding_shard_exchange(t->shard, t->sparse_grads, t->n_sparse, &t->shard_sq, err);
    if (!st) st = herd_strategy_after_backward(s, res->samples, err);
    t->phases.exchange += herd_now() - t0;
    if (st) return st;
    return finish_update(t, res, err);
}

/* After the gradients are complete: finiteness check and clipping, then the update. */
static herd_status finish_update(herd_trainer *t, herd_step_result *res, herd_error *err) {
    herd_model *m = t->m;
    herd_strategy *s = t->s;
    herd_status st = HERD_OK;
    int64_t n_params = herd_model_dense_params(m); /* the dense gradient; the sparse tables' follow */
    float *params = herd_model_params(m, NULL);
    float *grads = herd_model_grads(m);
    herd_sparse_grad *sg = t->sparse_grads;
    for (int k = 0; k < t->n_sparse && !t->shard; k++) herd_model_sparse_grad(m, k, &sg[k]); /* sums the batch's rows */
    if (t->sparse_x && (st = herd_sparse_exchange_finish(t->sparse_x, sg, t->n_sparse, err))) return st; /* every rank's */
    /* the global norm (clipping when asked) doubles as the finiteness check of every gradient */
    t->lr = herd_schedule_lr(&t->sched, t->step);
    float sparse_lr = herd_schedule_lr(&t->sparse_sched, t->step);
    double t0 = herd_now(), sq;
    if ((st = herd_strategy_grad_sq(s, &sq, err))) return st; /* the whole model's, the same on every rank */
    if (t->shard) sq += t->shard_sq; /* every rank's rows' */
    for (int k = 0; k < t->n_sparse && !t->shard; k++) sq += herd_grad_sq_sum(sg[k].values, sg[k].rows * sg[k].dim);
    double norm = sqrt(sq);
    herd_clip_scale(grads, n_params, norm, t->cfg.clip_norm);
    for (int k = 0; k < t->n_sparse; k++) herd_clip_scale(sg[k].values, sg[k].rows * sg[k].dim, norm, t->cfg.clip_norm);
    t->phases.update += herd_now() - t0;
    int skip = !isfinite(norm);
    if (skip && !t->cfg.skip_nonfinite) return nonfinite_error(m, NULL, NULL, res->samples, t->step, 1, err);
    res->skipped = skip; /* no update; the step still counts, so schedules and resume stay aligned */
    /* the update: the time the strategy waited in it (pushes to servers) counts as exchange */
    double w0 = herd_strategy_wait_seconds(s);
    t0 = herd_now();
    herd_strategy_update u = {&t->opt, t->lr, res->samples, skip, herd_model_pool(m), sg, t->n_sparse};
    st = herd_strategy_apply(s, &u, err);
    for (int k = 0; k < t->n_sparse && !skip && !s->remote_state; k++) /* only the rows the batch touched, and their state */
        herd_sparse_optimizer_step(&t->sparse[k],
                                   t->shard ? herd_embedding_shard_rows(t->shard, k)
                                            : params + herd_model_param(m, sg[k].param)->offset,
                                   sg[k].ids, sg[k].values, sg[k].rows, sparse_lr, herd_model_pool(m));
    double waited = herd_strategy_wait_seconds(s) - w0;
    t->phases.exchange += waited;
    t->phases.update += herd_now() - t0 - waited;
    t->step++;
    return st;
}

herd_status herd_evaluate(herd_model *m, herd_dataset *ds, int batch, herd_strategy *strategy, herd_metrics *out,
                          herd_error *err) {
    herd_metrics_clear(out);
    herd_status st = check_data(m, ds, err);
    if (st) return st;
    int rank = 0, world = 1; /* no strategy: one process */
    if (strategy) herd_strategy_eval_shard(strategy, &rank, &world);
    herd_embedding_shard *shard = strategy ? herd_strategy_shard(strategy) : NULL;
    /* a rank's model is planned for its share of a global batch (herd_train passes the global one) */
    if (batch > herd_model_max_batch(m)) batch = herd_model_max_batch(m);
    int64_t first = ds->n * rank / world, last = ds->n * (rank + 1) / world, rounds = (last - first + batch - 1) / batch;
    for (int r = 0; shard && r < world; r++) { /* sharded tables: every rank looks rows up as often as the most */
        int64_t n = ds->n * (r + 1) / world - ds->n * r / world;
        if ((n + batch - 1) / batch > rounds) rounds = (n + batch - 1) / batch;
    }
    void *targets = malloc((size_t)batch * herd_model_target_bytes(m));
    int64_t *idx = malloc((size_t)batch * sizeof *idx);
    if (!targets || !idx) {
        free(targets);
        free(idx);
        return herd_fail(err, HERD_ENOMEM, "out of memory");
    }
    for (int64_t i = 0; i < rounds && !st; i++) {
        int64_t off = first + i * batch;
        int B = (int)(off >= last ? 0 : last - off < batch ? last - off : batch);
        for (int b = 0; b < B; b++) idx[b] = off + b;
        if (B && (st = herd_dataset_batch(ds, idx, B, herd_model_batch_buffer(m), targets, err))) break;
        if (B) herd_model_set_inputs(m, 0, B);
        /* the rows from their owners, as a training step's forward (an empty part takes part too) */
        if (shard && (st = herd_embedding_shard_lookup(shard, 0, B, err))) break;
        if (!B) continue;
        if ((st = herd_model_forward(m, B, 0, err))) break;
        herd_model_loss(m, targets, B, out);
    }
    free(targets);
    free(idx);
    if (st) return st;
    if (strategy && (st = herd_strategy_reduce(strategy, (double *)out, HERD_METRICS_DOUBLES, err))) return st;
    return HERD_OK;
}

/* The epoch's figures from its metrics: -1 for what the model does not measure. */
static void epoch_figures(const herd_model *m, const herd_metrics *a, double *loss, double *acc, double *rmse,
                          double *auc) {
    int has = herd_model_metrics(m);
    *loss = a->loss_units > 0 ? herd_metrics_loss(a) : 0;
    *acc = has & HERD_METRIC_ACCURACY ? herd_metrics_value(a, HERD_METRIC_ACCURACY) : -1;
    *rmse = has & HERD_METRIC_RMSE ? herd_metrics_value(a, HERD_METRIC_RMSE) : -1;
    *auc = has & HERD_METRIC_AUC ? herd_metrics_value(a, HERD_METRIC_AUC) : -1;
}

/* ---- the straggler report ---- */
#define STRAGGLER_MAX_RANKS 4096
enum { ST_WORLD, ST_WALL, ST_BUSY, ST_DATA, ST_COMPUTE, ST_EXCHANGE, ST_N };

typedef struct straggler {
    double t0;               /* wall clock at the last report */
    herd_train_phases last;  /* phases then */
    double *all;             /* ranks x ST_N */
} straggler;

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Gathers every rank's times since the last report (totals when whole) and names the slowest
 * rank by busy time (wall less exchange waits) against the median of the others. */
static herd_status straggler_report(herd_trainer *t, straggler *r, int64_t steps, int whole,
                                    const herd_train_callbacks *cb, herd_error *err) {
    herd_strategy *s = t->s;
    const herd_train_phases *p = &t->phases, *l = whole ? &(herd_train_phases){0} : &r->last;
    double now = herd_now(), mine[ST_N];
    mine[ST_WORLD] = herd_strategy_world_rank(s);
    mine[ST_WALL] = now - r->t0;
    mine[ST_DATA] = p->data - l->data;
    mine[ST_COMPUTE] = p->compute - l->compute;
    mine[ST_EXCHANGE] = p->exchange - l->exchange;
    mine[ST_BUSY] = mine[ST_WALL] - mine[ST_EXCHANGE];
    int n;
    herd_status st = herd_strategy_gather(s, mine, ST_N, r->all, STRAGGLER_MAX_RANKS, &n, err);
    if (!whole) r->t0 = herd_now(), r->last = *p; /* the next interval starts after the gather's own wait */
    if (st || n < 2 || !herd_strategy_writer(s) || !cb || !cb->notice) return st;
    char line[512];
    if (whole) {
        cb->notice(cb->user, "per-rank time over the run (s): rank   busy   data   compute   exchange wait");
        for (int k = 0; k < n; k++) {
            const double *v = r->all + (size_t)k * ST_N;
            snprintf(line, sizeof line, "  rank %-4d %8.2f %8.2f %8.2f %8.2f", (int)v[ST_WORLD], v[ST_BUSY],
                     v[ST_DATA], v[ST_COMPUTE], v[ST_EXCHANGE]);
            cb->notice(cb->user, line);
        }
        return HERD_OK;
    }
    int slow = 0;
    for (int k = 1; k < n; k++)
        if (r->all[(size_t)k * ST_N + ST_BUSY] > r->all[(size_t)slow * ST_N + ST_BUSY]) slow = k;
    double others[STRAGGLER_MAX_RANKS], waited = 0, wall = 0;
    int m = 0;
    for (int k = 0; k < n; k++) {
        if (k == slow) continue;
        others[m++] = r->all[(size_t)k * ST_N + ST_BUSY];
        waited += r->all[(size_t)k * ST_N + ST_EXCHANGE], wall += r->all[(size_t)k * ST_N + ST_WALL];
    }
    qsort(others, (size_t)m, sizeof *others, cmp_double);
    double median = m % 2 ? others[m / 2] : 0.5 * (others[m / 2 - 1] + others[m / 2]);
    const double *v = r->all + (size_t)slow * ST_N;
    snprintf(line, sizeof line, "straggler report, steps %lld-%lld: rank %d is the slowest, busy %.3f s (data %.3f, "
             "compute %.3f) against a median %.3f s of the other %d rank%s: +%.0f%%; they waited %.0f%% of the time "
             "in the exchange", (long long)(t->step - steps + 1), (long long)t->step, (int)v[ST_WORLD], v[ST_BUSY],
             v[ST_DATA], v[ST_COMPUTE], median, m, m == 1 ? "" : "s",
             median > 0 ? 100.0 * (v[ST_BUSY] / median - 1.0) : 0.0, wall > 0 ? 100.0 * waited / wall : 0.0);
    cb->notice(cb->user, line);
    return HERD_OK;
}

herd_status herd_trainer_sync(herd_trainer *t, herd_error *err) {
    herd_status st = herd_strategy_sync_model(t->s, t->step, err);
    return !st && t->shard ? herd_embedding_shard_gather(t->shard, 0, NULL, NULL, NULL, err) : st;
}

/* Sharded tables, on the writer: the plan and each rank's table bytes (start), or the bytes the
 * lookups and gradient exchanges moved a step, per rank (end). */
static herd_status shard_report(herd_trainer *t, int start, const herd_train_callbacks *cb, herd_error *err) {
    int world = herd_strategy_world_size(t->s);
    double mine[3] = {0}, *all = herd_malloc_array((size_t)world * 3, sizeof *all);
    if (!all) return herd_fail(err, HERD_ENOMEM, "out of memory");
    int64_t steps = 0;
    for (int k = 0; k < t->n_sparse; k++) {
        int64_t lo, hi;
        herd_embedding_shard_range(t->shard, k, &lo, &hi);
        mine[0] += (double)((hi - lo) * t->sparse[k].dim) * sizeof(float);
    }
    herd_embedding_shard_bytes(t->shard, &mine[1], &mine[2], &steps);
    int n;
    herd_status st = herd_strategy_gather(t->s, mine, 3, all, world, &n, err);
    if (st || !herd_strategy_writer(t->s) || !cb || !cb->notice) {
        free(all);
        return st;
    }
    char line[8192];
    size_t at = (size_t)snprintf(line, sizeof line, "%s", start ? t->shard_note : "embedding exchange a step (sent + received, "
                                 "ids, rows and gradients), by rank:");
    if (start) at += (size_t)snprintf(line + at, sizeof line - at, "; table bytes by rank:");
    for (int r = 0; r < n && at < sizeof line; r++)
        at += (size_t)snprintf(line + at, sizeof line - at, " %.0f", start ? all[3 * r] : (all[3 * r + 1] + all[3 * r + 2]) /
                               (double)(steps > 0 ? steps : 1));
    cb->notice(cb->user, line);
    free(all);
    return HERD_OK;
}

herd_status herd_train(herd_model *m, herd_dataset *train, herd_dataset *val, const herd_train_config *cfg,
                       const herd_train_callbacks *cb, herd_error *err) {
    herd_status st;
    if ((st = check_data(m, train, err))) return st;
    if (val && (st = check_data(m, val, err))) return st;
    if (cfg->batch < 1) return herd_fail(err, HERD_EARG, "batch must be at least 1");
    int64_t steps_per_epoch = (train->n + cfg->batch - 1) / cfg->batch;
    herd_trainer *t = NULL;
    if ((st = herd_trainer_create(&t, m, cfg, steps_per_epoch, err))) return st;
    herd_sampler sampler, ahead; /* this epoch's order, the next one's */
    if ((st = herd_sampler_init(&sampler, train->n, cfg->seed, 1, err))) {
        herd_trainer_destroy(t);
        return st;
    }
    if ((st = herd_sampler_init(&ahead, train->n, cfg->seed, 1, err))) {
        herd_sampler_free(&sampler);
        herd_trainer_destroy(t);
        return st;
    }
    train_position start = {0, 0};
    double t0_run = herd_now();
    straggler strag = {.t0 = t0_run};
    ckpt_writer *cw = NULL;
    herd_loader *loader = NULL;
    int lock_fd = -1;
    int64_t steps_run = 0; /* by this process, for test faults */
    herd_strategy *s = t->s;
    if ((st = herd_loader_create(&loader, train, cfg->batch, &cfg->loader, herd_strategy_rows, s, err))) goto done;
    t->loader = loader;
    t->data = train;
    if (cfg->straggler_every > 0 &&
        !(strag.all = malloc((size_t)STRAGGLER_MAX_RANKS * ST_N * sizeof *strag.all))) {
        st = herd_fail(err, HERD_ENOMEM, "out of memory");
        goto done;
    }
    int writer = herd_strategy_writer(s);
    char note[2048], path[4096];
    if (cfg->checkpoint_dir && writer &&
        (st = herdi_checkpoint_dir_claim(cfg->checkpoint_dir, cfg->resume, &lock_fd, note, sizeof note, err)))
        goto done;
    if (cfg->checkpoint_dir && writer && note[0] && cb && cb->notice) cb->notice(cb->user, note);
    if (cfg->checkpoint_dir && writer && cfg->checkpoint_every > 0 && !cfg->checkpoint_sync &&
        (st = herdi_checkpoint_writer_create(&cw, t, err)))
        goto done;
    if (cfg->resume) {
        if ((st = herdi_checkpoint_load_latest(cfg->checkpoint_dir, t, &start, path, sizeof path, note, sizeof note, err)))
            goto done;
        if (writer && note[0] && cb && cb->notice) cb->notice(cb->user, note);
        if (writer && cb && cb->checkpoint) cb->checkpoint(cb->user, path, 1);
        herd_strategy_state state = {t->full_m ? t->full_m : t->opt.m, t->full_v ? t->full_v : t->opt.v, t->sparse,
                                     t->opt.t};
        if ((st = herd_strategy_restore_state(s, &state, t->step, err))) goto done; /* to where it lives */
    }
    if (!st && t->shard && (st = shard_report(t, 1, cb, err))) goto done;
    if (start.step_in_epoch >= steps_per_epoch) start.epoch++, start.step_in_epoch = 0;
    for (int epoch = (int)start.epoch + 1; epoch <= cfg->epochs && !st; epoch++) {
        herd_sampler_set_epoch(&sampler, epoch - 1);
        if (cb && cb->epoch_begin) cb->epoch_begin(cb->user, epoch, cfg->epochs, steps_per_epoch);
        double t0 = herd_now();
        herd_metrics *acc = herd_trainer_metrics(t); /* this rank's, from the resume point on */
        herd_metrics_clear(acc);
        int64_t skipped = 0;
        int64_t first = epoch == start.epoch + 1 ? start.step_in_epoch : 0;
        if ((st = herd_loader_start_epoch(loader, epoch - 1, sampler.perm, train->n, cfg->batch, first, err))) break;
        if (epoch < cfg->epochs) { /* the next epoch's first batch is loaded while this one ends */
            herd_sampler_set_epoch(&ahead, epoch);
            if ((st = herd_loader_plan_epoch(loader, epoch, ahead.perm, train->n, cfg->batch, err))) break;
        }
        for (int64_t s = first; s < steps_per_epoch; s++) {
            int64_t off = s * cfg->batch;
            int B = (int)(train->n - off < cfg->batch ? train->n - off : cfg->batch);
            herd_step_result r;
            t->load_step = s;
            if ((st = herd_trainer_step(t, train, sampler.perm + off, B, &r, err))) break;
            if (t->sparse_x && writer && cb && cb->notice && *herd_sparse_exchange_note(t->sparse_x))
                cb->notice(cb->user, herd_sparse_exchange_note(t->sparse_x));
            herd_fault_step(herd_strategy_world_rank(t->s), ++steps_run); /* tests only */
            if (strag.all && t->step % cfg->straggler_every == 0 &&
                (st = straggler_report(t, &strag, cfg->straggler_every, 0, cb, err)))
                break;
            skipped += r.skipped;
            if (cb && cb->step && acc->loss_units > 0)
                cb->step(cb->user, s + 1, herd_metrics_loss(acc),
                         herd_model_metrics(m) & HERD_METRIC_ACCURACY ? herd_metrics_value(acc, HERD_METRIC_ACCURACY)
                                                                      : -1);
            if (cfg->checkpoint_dir && cfg->checkpoint_every > 0 && t->step % cfg->checkpoint_every == 0) {
                train_position pos = {epoch - 1, s + 1};
                if ((st = herdi_checkpoint_gather(t, err))) break;
                if (writer && cw) { /* the copy now, the write in the background; the one before is done */
                    st = herdi_checkpoint_save_async(cw, cfg->checkpoint_dir, t, &pos, cfg->keep_checkpoints, path,
                                               sizeof path, err);
                } else if (writer) {
                    double c0 = herd_now();
                    st = herdi_checkpoint_save(cfg->checkpoint_dir, t, &pos, cfg->keep_checkpoints, path, sizeof path, err);
                    t->phases.checkpoint += herd_now() - c0;
                }
                if (st) break;
                if (writer && path[0] && cb && cb->checkpoint) cb->checkpoint(cb->user, path, 0);
            }
            if (writer && cfg->stop && *cfg->stop) { /* a step boundary: the checkpoint due is written */
                if ((st = herdi_checkpoint_writer_wait(cw, path, sizeof path, err))) break;
                if (path[0] && cb && cb->checkpoint) cb->checkpoint(cb->user, path, 0);
                st = herd_fail(err, HERD_ESTOPPED, "stopped on request after step %lld of epoch %d",
                               (long long)(s + 1), epoch);
                break;
            }
        }
        if (st) break;
        herd_epoch_stats es;
        es.epoch = epoch;
        es.seconds = herd_now() - t0;
        if ((st = herd_strategy_reduce(s, (double *)acc, HERD_METRICS_DOUBLES, err))) break;
        epoch_figures(m, acc, &es.loss, &es.accuracy, &es.rmse, &es.auc);
        es.images_per_second = acc->samples / (es.seconds > 0 ? es.seconds : 1e-9);
        es.lr = herd_trainer_lr(t);
        es.skipped_steps = skipped;
        es.val_loss = es.val_accuracy = es.val_rmse = es.val_auc = -1;
        /* the dense parameters current; sharded tables stay with their owners (the evaluations look rows up) */
        if ((st = herd_strategy_sync_model(s, t->step, err))) break;
        if (val) {
            /* in pieces of what this rank's model is planned for (a share of the global batch) */
            int eval_batch = herd_model_max_batch(m) < cfg->batch ? herd_model_max_batch(m) : cfg->batch;
            if ((st = herd_evaluate(m, val, eval_batch, s, &t->step_metrics, err))) break;
            epoch_figures(m, &t->step_metrics, &es.val_loss, &es.val_accuracy, &es.val_rmse, &es.val_auc);
        }
        if (cb && cb->epoch_end) cb->epoch_end(cb->user, &es);
    }
    if (!st) st = t->shard && cfg->shard_tables_stay ? herd_strategy_sync_model(s, t->step, err) : herd_trainer_sync(t, err);
    if (!st && t->shard) st = shard_report(t, 0, cb, err);
    if (!st && cw) { /* the last write in flight */
        st = herdi_checkpoint_writer_wait(cw, path, sizeof path, err);
        if (!st && path[0] && cb && cb->checkpoint) cb->checkpoint(cb->user, path, 0);
    }
    if (!st) st = herd_strategy_finish(s, err);
    if (!st && strag.all) {
        strag.t0 = t0_run;
        st = straggler_report(t, &strag, t->step, 1, cb, err);
    }
    t->phases.checkpoint += herdi_checkpoint_writer_blocked(cw, &t->phases.checkpoint_end);
    t->phases.optimizer_floats = ((t->opt.m != NULL) + (t->opt.v != NULL)) * t->opt.n;
    if (cfg->phases) *cfg->phases = t->phases;
done:
    herdi_checkpoint_writer_destroy(cw); /* a write still going (an error ended the run) is finished first */
    free(strag.all);
    herdi_checkpoint_dir_release(lock_fd);
    herd_loader_destroy(loader);
    herd_sampler_free(&sampler);
    herd_sampler_free(&ahead);
    herd_trainer_destroy(t);
    return st;
}
