/* What every strategy shares: creation (dispatch by kind to its implementation), the table's
 * calls, the layout answer before a model is prepared, and metric reduction. */
#include <stdlib.h>
#include <string.h>

#include "dist/strategy.h"

#include "dist/embedding_shard.h"

/* One row per herd_strategy_kind: how it is set up and how it lays a batch out. */
static const struct {
    const char *name;
    herd_status (*setup)(herd_strategy *s, herd_error *err);
    herd_status (*layout)(const herd_strategy_config *cfg, int world, int *groups, int *reuse, herd_error *err);
} kinds[] = {
    [HERD_STRATEGY_DP] = {"dp", herdi_data_parallel_setup, herdi_data_parallel_layout},
    [HERD_STRATEGY_PS] = {"ps", herdi_param_server_setup, herdi_param_server_layout},
    [HERD_STRATEGY_PIPELINE] = {"pipeline", herdi_pipeline_setup, herdi_pipeline_layout},
};
_Static_assert(sizeof kinds / sizeof kinds[0] == HERD_STRATEGY_PIPELINE + 1, "one row per strategy kind");

static int kind_ok(herd_strategy_kind k) { return (int)k >= 0 && (int)k < (int)(sizeof kinds / sizeof kinds[0]); }

herd_strategy_config herd_strategy_defaults(herd_strategy_kind kind) {
    herd_strategy_config c;
    memset(&c, 0, sizeof c);
    c.kind = kind;
    c.servers = 1;
    c.groups = 4;
    c.stages = 2;
    c.microbatches = 4;
    return c;
}

herd_status herd_strategy_layout_for(const herd_strategy_config *cfg, int world, int batch, herd_strategy_layout *out,
                                     herd_error *err) {
    if (!kind_ok(cfg->kind)) return herd_fail(err, HERD_EARG, "unknown strategy kind %d", (int)cfg->kind);
    if (world < 1) return herd_fail(err, HERD_EARG, "a world of %d ranks", world);
    int groups = 1, reuse = 1;
    herd_status st = kinds[cfg->kind].layout(cfg, world, &groups, &reuse, err);
    if (st) return st;
    if (batch < groups)
        return herd_fail(err, HERD_EARG, "--batch %d is smaller than the %d %s", batch, groups,
                         cfg->deterministic ? "deterministic groups"
                         : cfg->kind == HERD_STRATEGY_PIPELINE ? "pipelines" : "workers");
    out->rows = (batch + groups - 1) / groups;
    out->memory_reuse = reuse;
    out->fixed_reduction = cfg->deterministic != 0;
    return HERD_OK;
}

/* SyncBatchNorm sums over the ranks of one data-parallel batch: a pipeline's micro-batches run
 * their forwards at different times, parameter-server workers at their own pace, and the fixed
 * groups of --deterministic one after the other on a rank. */
herd_status herd_strategy_check_model(const herd_strategy_config *cfg, const herd_model *m, herd_error *err) {
    if (herd_model_batch_sync_layers(m) && (cfg->kind != HERD_STRATEGY_DP || cfg->deterministic))
        return herd_fail(err, HERD_EARG, "batchnorm sync=1 is for --strategy dp without --deterministic (%s); "
                         "use sync=0 there", cfg->deterministic ? "--deterministic's groups each normalise alone"
                         : cfg->kind == HERD_STRATEGY_PS ? "parameter-server workers step at their own pace"
                                                         : "micro-batches run their forwards at different times");
    return HERD_OK;
}

static herd_status strategy_setup(herd_strategy **out, herd_comm *c, herd_model *m, const herd_strategy_config *cfg,
                                  herd_error *err) {
    if (!kind_ok(cfg->kind)) return herd_fail(err, HERD_EARG, "unknown strategy kind %d", (int)cfg->kind);
    herd_status st = herd_strategy_check_model(cfg, m, err);
    if (st) return st;
    herd_strategy *s = calloc(1, sizeof *s);
    if (!s) return herd_fail(err, HERD_ENOMEM, "out of memory");
    s->comm = s->metrics = c, s->m = m, s->cfg = *cfg;
    s->rank = s->eval_rank = herd_comm_rank(c), s->world = s->eval_world = herd_comm_size(c);
    s->update_lo = 0, s->update_hi = herd_model_dense_params(m);
    st = kinds[cfg->kind].setup(s, err);
    if (st) {
        free(s);
        return st;
    }
    *out = s;
    return HERD_OK;
}

herd_status herd_strategy_create(herd_strategy **out, herd_comm *c, herd_model *m, const herd_strategy_config *cfg,
                                 herd_error *err) {
    herd_status st = strategy_setup(out, c, m, cfg, err);
    if (!st && (st = herd_strategy_sync_params(*out, err))) { /* every rank starts from rank 0's model */
        herd_strategy_destroy(*out);
        *out = NULL;
    }
    return st;
}

herd_status herd_strategy_create_local(herd_strategy **out, herd_model *m, herd_error *err) {
    herd_comm *c = NULL;
    herd_status st = herd_comm_open_self(&c, err);
    if (st) return st;
    herd_strategy_config cfg = herd_strategy_defaults(HERD_STRATEGY_DP);
    if ((st = herd_strategy_create(out, c, m, &cfg, err))) {
        herd_comm_close(c);
        return st;
    }
    (*out)->owned_comm = c;
    return HERD_OK;
}

void herd_strategy_destroy(herd_strategy *s) {
    if (!s) return;
    herd_comm *owned = s->owned_comm;
    herd_embedding_shard_destroy(s->shard);
    if (s->ops) s->ops->destroy(s);
    free(s);
    herd_comm_close(owned);
}

int herd_strategy_is_server(const herd_strategy *s) { return s->serves; }
int herd_strategy_writer(const herd_strategy *s) { return herd_comm_rank(s->comm) == 0; }
int herd_strategy_world_rank(const herd_strategy *s) { return herd_comm_rank(s->comm); }
int herd_strategy_world_size(const herd_strategy *s) { return herd_comm_size(s->comm); }
int herd_strategy_deterministic_groups(const herd_strategy *s) { return s->cfg.deterministic ? s->cfg.groups : 0; }
void herd_strategy_set_trace(herd_strategy *s, struct herd_trace *t) { s->trace = t; }
double herd_strategy_wait_seconds(const herd_strategy *s) { return s->wait_seconds; }

void herd_strategy_update_range(const herd_strategy *s, int64_t *lo, int64_t *hi) {
    *lo = s->update_lo, *hi = s->update_hi;
}

void herd_strategy_eval_shard(const herd_strategy *s, int *rank, int *world) {
    *rank = s->eval_rank, *world = s->eval_world;
}

void herd_strategy_set_shard(herd_strategy *s, herd_embedding_shard *x) {
    if (s->shard != x) herd_embedding_shard_destroy(s->shard);
    s->shard = x;
}

herd_embedding_shard *herd_strategy_shard(const herd_strategy *s) { return s->shard; }

/* ---- the table ---- */
int herd_strategy_parts(const herd_strategy *s) { return s->ops->parts(s); }

void herd_strategy_part_rows(const herd_strategy *s, int B, int p, int *lo, int *count, int *id) {
    s->ops->part(s, B, p, lo, count, id);
}

void herd_strategy_rows(void *ctx, int B, int *lo, int *hi) {
    const herd_strategy *s = ctx;
    *lo = B, *hi = 0;
    for (int p = 0; p < herd_strategy_parts(s); p++) {
        int l, count, id;
        herd_strategy_part_rows(s, B, p, &l, &count, &id);
        if (count > 0 && l < *lo) *lo = l;
        if (count > 0 && l + count > *hi) *hi = l + count;
    }
    if (*hi < *lo) *lo = *hi = 0;
}

herd_status herd_strategy_begin_step(herd_strategy *s, int64_t t, herd_error *err) {
    return s->ops->begin_step(s, t, err);
}

herd_status herd_strategy_compute(herd_strategy *s, const herd_strategy_part *p, float *loss, herd_metrics *acc,
                                  herd_error *err) {
    return s->ops->compute(s, p, loss, acc, err);
}

herd_status herd_strategy_after_backward(herd_strategy *s, int samples, herd_error *err) {
    return s->ops->after_backward(s, samples, err);
}

herd_status herd_strategy_grad_sq(herd_strategy *s, double *sq, herd_error *err) { return s->ops->grad_sq(s, sq, err); }

herd_status herd_strategy_apply(herd_strategy *s, const herd_strategy_update *u, herd_error *err) {
    return s->ops->apply(s, u, err);
}

herd_status herd_strategy_sync_model(herd_strategy *s, int64_t t, herd_error *err) {
    return s->ops->sync_model(s, t, err);
}

herd_status herd_strategy_gather_state(herd_strategy *s, herd_strategy_state *st, herd_error *err) {
    return s->ops->gather_state(s, st, err);
}

herd_status herd_strategy_restore_state(herd_strategy *s, const herd_strategy_state *st, int64_t step,
                                        herd_error *err) {
    return s->ops->restore_state ? s->ops->restore_state(s, st, step, err) : HERD_OK;
}

herd_status herd_strategy_server_load(herd_strategy *s, double *load, int max_servers, int *servers,
                                      herd_error *err) {
    *servers = 0;
    return s->ops->server_load ? s->ops->server_load(s, load, max_servers, servers, err) : HERD_OK;
}

herd_status herd_strategy_finish(herd_strategy *s, herd_error *err) { return s->ops->finish(s, err); }

/* ---- common to all ---- */
herd_status herd_strategy_sync_params(herd_strategy *s, herd_error *err) {
    if (herd_comm_size(s->comm) == 1) return HERD_OK;
    int64_t np, nb;
    /* tables still to be written from the seed are not sent: every rank writes the same values
     * (sharded training only its own rows) */
    float *p = herd_model_params_ready(s->m, &np);
    float *b = herd_model_buffers(s->m, &nb);
    herd_status st = herd_comm_broadcast(s->comm, p, np, 0, err);
    if (st == HERD_OK && nb) st = herd_comm_broadcast(s->comm, b, nb, 0, err);
    return st;
}

herd_status herd_strategy_reduce(herd_strategy *s, double *v, int n, herd_error *err) {
    return herd_comm_size(s->metrics) == 1 ? HERD_OK : herd_comm_allreduce_f64(s->metrics, v, n, err);
}

herd_status herd_strategy_gather(herd_strategy *s, const double *mine, int n, double *all, int max_ranks, int *ranks,
                                 herd_error *err) {
    herd_comm *c = s->metrics;
    int size = herd_comm_size(c), rank = herd_comm_rank(c);
    if (size > max_ranks) return herd_fail(err, HERD_EARG, "%d ranks do not fit a gather of %d", size, max_ranks);
    *ranks = size;
    memset(all, 0, (size_t)size * (size_t)n * sizeof *all);
    memcpy(all + (size_t)rank * (size_t)n, mine, (size_t)n * sizeof *all);
    return size == 1 ? HERD_OK : herd_comm_allreduce_f64(c, all, size * n, err); /* a sum of disjoint rows */
}
