/* Pipeline parallelism: the model's layers are cut into stages, one per rank; each batch is
 * split into micro-batches that flow forward through the stages and backward. A cut is a cut
 * of the graph: every layer output read by a later stage is sent to it (a residual block may
 * span stages), and the gradients with respect to it come back and are summed. GPipe runs all forwards,
 * then all backwards; 1F1B starts backwards as soon as the last stage can, keeping fewer
 * micro-batches in flight. Micro-batch k lives in rows [k*b, (k+1)*b) of the stage's
 * planned buffers. Replicas of a stage (pipelines side by side) sum their gradients. A weight
 * used on two stages (the token embedding and the output projection tied to it, dense tie=)
 * lives on both: after backward each stage's share of its gradient is summed between them
 * (Megatron's embedding-group allreduce), both apply the same update, so the copies stay
 * identical, and only the owner's (the embedding's stage) counts in the norm and checkpoints. */
#include <stdlib.h>
#include <string.h>

#include "dist/pipeline.h"
#include "dist/strategy.h"
#include "optim/optim.h"

enum { TAG_ACT = 300, TAG_GRAD = 301 };

struct pipe_state {
    herd_comm *world, *replicas, *pipeline; /* replicas: same stage; pipeline: same replica */
    herd_model *m;
    int stages, stage, replica, n_replicas, micro, one_f_one_b;
    int first, last;        /* this stage's layers */
    int64_t plo, phi;       /* this stage's parameter range */
    int64_t blo, bhi;       /* and buffer range */
    float *scratch;         /* gather buffer */
    int *stage_of;          /* per layer */
    int *recv, n_recv;      /* layers of earlier stages this stage reads, ascending */
    int *send_node, *send_stage, n_send; /* (layer of this stage, later stage reading it), ascending */
    float *grad_in;         /* one incoming gradient, max_batch rows of the largest sent layer */
    int64_t *tied, n_tied;  /* (offset, floats) of each parameter used on more than one stage */
    int borrows;            /* this stage uses a tied parameter another stage owns */
    double wait, total;
    herd_comm_request *sends[1024];
    int n_sends;
};

/* The parameters whose users fall on more than one stage: the same list on every stage (the
 * sums over them are collective over the pipeline). */
static herd_status find_tied(pipe_state *p, herd_error *err) {
    herd_model *m = p->m;
    int R = herd_model_param_count(m);
    if (!(p->tied = malloc((size_t)(2 * R + 1) * sizeof *p->tied))) return herd_fail(err, HERD_ENOMEM, "out of memory");
    for (int r = 0; r < R; r++) {
        int users[64], n = herd_model_param_users(m, r, users, 64), owner = p->stage_of[herd_model_param_owner(m, r)];
        int elsewhere = 0, here = 0;
        for (int k = 0; k < n && k < 64; k++) {
            elsewhere |= p->stage_of[users[k]] != owner;
            here |= p->stage_of[users[k]] == p->stage;
        }
        if (!elsewhere) continue;
        const herd_param_info *pi = herd_model_param(m, r);
        if (!pi->trainable || pi->sparse)
            return herd_fail(err, HERD_EUNSUPPORTED, "pipeline: parameter '%s' is used on two stages but has no dense "
                             "gradient to sum between them: put the layers that use it in one stage", pi->name);
        p->tied[2 * p->n_tied] = pi->offset, p->tied[2 * p->n_tied + 1] = pi->numel, p->n_tied++;
        p->borrows |= here && owner != p->stage;
    }
    return HERD_OK;
}

herd_status herdi_pipe_create(pipe_state **out, herd_comm *world, herd_model *m, int stages, const int *cuts,
                        int microbatches, int one_f_one_b, herd_error *err) {
    int size = herd_comm_size(world), rank = herd_comm_rank(world), L = herd_model_layer_count(m);
    if (stages < 2 || size % stages != 0)
        return herd_fail(err, HERD_EARG, "--stages %d must be at least 2 and divide the %d ranks", stages, size);
    if (microbatches < 1 || microbatches > 512)
        return herd_fail(err, HERD_EARG, "--microbatches %d is out of range 1..512", microbatches);
    if (herd_model_memory_reuse(m))
        return herd_fail(err, HERD_EARG, "pipeline: micro-batches interleave forward and backward passes; prepare the "
                         "model with herd_model_set_memory_reuse(m, 0)");
    pipe_state *p = calloc(1, sizeof *p);
    if (!p) return herd_fail(err, HERD_ENOMEM, "out of memory");
    p->world = world, p->m = m, p->stages = stages, p->micro = microbatches, p->one_f_one_b = one_f_one_b;
    p->stage = rank % stages, p->replica = rank / stages, p->n_replicas = size / stages;
    p->first = p->stage == 0 ? 0 : cuts[p->stage - 1] + 1;
    p->last = p->stage == stages - 1 ? L - 1 : cuts[p->stage];
    herd_status st = HERD_OK;
    if (p->first > p->last || p->last >= L) {
        st = herd_fail(err, HERD_EARG, "stage %d would have no layers (cuts must be increasing and inside the model)",
                       p->stage);
        goto fail;
    }
    herd_model_layer_param_range(m, p->first, p->last, &p->plo, &p->phi, &p->blo, &p->bhi);
    /* the tensors that cross cuts into and out of this stage */
    p->stage_of = malloc((size_t)L * sizeof *p->stage_of);
    p->recv = malloc((size_t)L * sizeof *p->recv);
    p->send_node = malloc((size_t)L * (size_t)stages * sizeof *p->send_node);
    p->send_stage = malloc((size_t)L * (size_t)stages * sizeof *p->send_stage);
    if (!p->stage_of || !p->recv || !p->send_node || !p->send_stage) {
        st = herd_fail(err, HERD_ENOMEM, "out of memory");
        goto fail;
    }
    for (int l = 0, s = 0; l < L; l++) {
        while (s < stages - 1 && l > cuts[s]) s++;
        p->stage_of[l] = s;
    }
    if ((st = find_tied(p, err))) goto fail;
    int64_t max_send = 0;
    for (int j = 0; j < L && !st; j++) {
        int read_here = 0;
        for (int t = 0; t < stages; t++) {
            int reads = 0; /* does a layer of stage t read layer j? */
            for (int l = j + 1; l < L && !reads; l++) {
                if (p->stage_of[l] != t) continue;
                int ins[64], n_in = herd_model_layer_inputs(m, l, ins, 64);
                for (int k = 0; k < n_in && k < 64; k++) reads |= ins[k] == j;
            }
            if (!reads || t == p->stage_of[j]) continue;
            if (t == p->stage) read_here = 1;
            if (p->stage_of[j] == p->stage) {
                p->send_node[p->n_send] = j, p->send_stage[p->n_send++] = t;
                float *o, *d;
                int64_t per;
                herd_model_layer_buffers(m, j, &o, &d, &per);
                if (per > max_send) max_send = per;
            }
        }
        if (read_here) p->recv[p->n_recv++] = j;
    }
    for (int l = p->first; l <= p->last && !st; l++) { /* only stage 0 loads the data */
        int ins[64], n_in = herd_model_layer_inputs(m, l, ins, 64);
        for (int k = 0; k < n_in && k < 64 && !st; k++)
            if (ins[k] < 0 && p->stage > 0) {
                herd_layer_info a;
                herd_model_layer(m, l, &a);
                st = herd_fail(err, HERD_EARG, "stage %d: layer '%s' reads the model's input, which only the first stage "
                               "loads; cut elsewhere (--split)", p->stage, a.name);
            }
    }
    if (st) goto fail;
    if (max_send && !(p->grad_in = malloc((size_t)herd_model_max_batch(m) * (size_t)max_send * sizeof(float)))) {
        st = herd_fail(err, HERD_ENOMEM, "out of memory");
        goto fail;
    }
    if (p->blo > p->bhi) p->blo = p->bhi = 0;
    int64_t np, nb;
    herd_model_params(m, &np);
    herd_model_buffers(m, &nb);
    p->scratch = malloc((size_t)(np > nb ? np : nb) * sizeof(float) + 1);
    if (!p->scratch) {
        st = herd_fail(err, HERD_ENOMEM, "out of memory");
        goto fail;
    }
    if ((st = herd_comm_split(world, p->stage, &p->replicas, err))) goto fail;
    if ((st = herd_comm_split(world, 1000 + p->replica, &p->pipeline, err))) goto fail;
    *out = p;
    return HERD_OK;
fail:
    herdi_pipe_destroy(p);
    return st;
}

void herdi_pipe_destroy(pipe_state *p) {
    if (!p) return;
    herd_comm_close(p->replicas);
    herd_comm_close(p->pipeline);
    free(p->scratch);
    free(p->stage_of);
    free(p->recv);
    free(p->send_node);
    free(p->send_stage);
    free(p->grad_in);
    free(p->tied);
    free(p);
}

int herdi_pipe_replica(const pipe_state *p) { return p->replica; }
int herdi_pipe_replicas(const pipe_state *p) { return p->n_replicas; }
int herdi_pipe_stage(const pipe_state *p) { return p->stage; }

void herdi_pipe_times(const pipe_state *p, double *wait, double *total) {
    *wait = p->wait;
    *total = p->total;
}

/* Micro-batch k of a local batch of `count`: rows [*row0, *row0 + *n). */
static void micro_rows(const pipe_state *p, int count, int k, int64_t *row0, int *n) {
    int64_t a = (int64_t)count * k / p->micro, b = (int64_t)count * (k + 1) / p->micro;
    *row0 = a, *n = (int)(b - a);
}

static herd_status wait_timed(pipe_state *p, herd_comm *c, herd_comm_request *r, herd_error *err) {
    double t0 = herd_now();
    herd_status st = herd_comm_wait(c, r, err);
    p->wait += herd_now() - t0;
    return st;
}

static herd_status send_rows(pipe_state *p, float *buf, int64_t floats, int dest, int tag, herd_error *err) {
    if (p->n_sends == (int)(sizeof p->sends / sizeof p->sends[0]))
        return herd_fail(err, HERD_EINTERNAL, "too many pipeline sends in flight");
    return herd_comm_isend(p->pipeline, buf, floats * (int64_t)sizeof(float), dest, tag, &p->sends[p->n_sends++], err);
}

static herd_status recv_rows(pipe_state *p, float *buf, int64_t floats, int src, int tag, herd_error *err) {
    herd_comm_request *r;
    herd_status st = herd_comm_irecv(p->pipeline, buf, floats * (int64_t)sizeof(float), src, tag, &r, err);
    return st ? st : wait_timed(p, p->pipeline, r, err);
}

typedef struct step_ctx {
    pipe_state *p;
    int count, B;
    const void *targets; /* the replica's count targets */
    size_t target_bytes;
    uint64_t seed;
    int64_t step;
    herd_metrics *acc;
} step_ctx;

/* Layer j's output or output gradient, rows [row0, row0 + n), and floats in them. */
static float *layer_rows(herd_model *m, int j, int grad, int64_t row0, int n, int64_t *floats) {
    float *out, *dout;
    int64_t per;
    herd_model_layer_buffers(m, j, &out, &dout, &per);
    *floats = per * n;
    return (grad ? dout : out) + row0 * per;
}

/* Messages between two stages go in ascending layer order under one tag per micro-batch and
 * direction, so each pair of ranks matches them in order. */
static herd_status forward_micro(step_ctx *c, int k, herd_error *err) {
    pipe_state *p = c->p;
    herd_model *m = p->m;
    int64_t row0, floats;
    int n;
    micro_rows(p, c->count, k, &row0, &n);
    if (n == 0) return HERD_OK;
    herd_status st;
    for (int i = 0; i < p->n_recv; i++) {
        int j = p->recv[i];
        float *buf = layer_rows(m, j, 0, row0, n, &floats);
        if ((st = recv_rows(p, buf, floats, p->stage_of[j], TAG_ACT + 2 * k, err))) return st;
    }
    /* dropout masks depend on (step, micro-batch of the global batch), not on the split */
    herd_model_set_dropout_stream(m, c->seed, 1000003ULL * (uint64_t)c->step + (uint64_t)(p->replica * p->micro + k));
    if ((st = herd_model_forward_range(m, p->first, p->last, row0, n, 1, err))) return st;
    for (int i = 0; i < p->n_send; i++) {
        float *buf = layer_rows(m, p->send_node[i], 0, row0, n, &floats);
        if ((st = send_rows(p, buf, floats, p->send_stage[i], TAG_ACT + 2 * k, err))) return st;
    }
    if (p->stage < p->stages - 1) return HERD_OK;
    herd_model_loss_rows(m, row0, (const char *)c->targets + (size_t)row0 * c->target_bytes, n, c->acc);
    return HERD_OK;
}

static herd_status backward_micro(step_ctx *c, int k, herd_error *err) {
    pipe_state *p = c->p;
    herd_model *m = p->m;
    int64_t row0, floats;
    int n;
    micro_rows(p, c->count, k, &row0, &n);
    if (n == 0) return HERD_OK;
    herd_status st;
    herd_model_zero_dout_rows(m, p->first, p->last, row0, n);
    for (int i = 0; i < p->n_recv; i++) { /* this stage's share of the gradients it sends back */
        float *g = layer_rows(m, p->recv[i], 1, row0, n, &floats);
        memset(g, 0, (size_t)floats * sizeof(float));
    }
    if (p->stage == p->stages - 1) herd_model_seed_loss_grad(m, row0, (const char *)c->targets + (size_t)row0 * c->target_bytes, n,
                                  (float)n / (float)c->B);
    for (int i = 0; i < p->n_send; i++) { /* gradients of what later stages read, summed */
        float *g = layer_rows(m, p->send_node[i], 1, row0, n, &floats);
        if ((st = recv_rows(p, p->grad_in, floats, p->send_stage[i], TAG_GRAD + 2 * k, err))) return st;
        for (int64_t e = 0; e < floats; e++) g[e] += p->grad_in[e];
    }
    herd_model_backward_range(m, p->first, p->last, row0, n);
    for (int i = 0; i < p->n_recv; i++) {
        float *g = layer_rows(m, p->recv[i], 1, row0, n, &floats);
        if ((st = send_rows(p, g, floats, p->stage_of[p->recv[i]], TAG_GRAD + 2 * k, err))) return st;
    }
    return HERD_OK;
}

herd_status herdi_pipe_step(pipe_state *p, int count, int B, const void *targets, uint64_t seed, int64_t step,
                      herd_metrics *acc, herd_error *err) {
    double t0 = herd_now();
    step_ctx c = {p, count, B, targets, herd_model_target_bytes(p->m), seed, step, acc};
    int64_t np;
    float *grads = herd_model_grads(p->m);
    herd_model_params(p->m, &np);
    memset(grads, 0, (size_t)np * sizeof(float));
    herd_status st = HERD_OK;
    int M = p->micro;
    if (!p->one_f_one_b) { /* GPipe */
        for (int k = 0; k < M && !st; k++) st = forward_micro(&c, k, err);
        for (int k = 0; k < M && !st; k++) st = backward_micro(&c, k, err);
    } else { /* 1F1B: warm-up forwards, then one forward one backward, then the remaining backwards */
        int warm = p->stages - p->stage - 1 < M ? p->stages - p->stage - 1 : M, f = 0, b = 0;
        for (; f < warm && !st; f++) st = forward_micro(&c, f, err);
        while (f < M && !st) {
            if (!(st = forward_micro(&c, f++, err))) st = backward_micro(&c, b++, err);
        }
        while (b < M && !st) st = backward_micro(&c, b++, err);
    }
    for (int i = 0; i < p->n_sends && !st; i++) st = wait_timed(p, p->pipeline, p->sends[i], err); /* else abandoned */
    p->n_sends = 0;
    /* replicas of this stage: sum the stage's gradients (scaled n/B, so the sum is the global mean) */
    if (!st && p->n_replicas > 1 && p->phi > p->plo) {
        herd_comm_request *r;
        if (!(st = herd_comm_iallreduce(p->replicas, grads + p->plo, p->phi - p->plo, NULL, &r, err)))
            st = wait_timed(p, p->replicas, r, err);
    }
    for (int i = 0; i < p->n_tied && !st && p->n_replicas > 1 && p->borrows; i++) { /* and what it borrows */
        herd_comm_request *r;
        if (!(st = herd_comm_iallreduce(p->replicas, grads + p->tied[2 * i], p->tied[2 * i + 1], NULL, &r, err)))
            st = wait_timed(p, p->replicas, r, err);
    }
    /* tied weights: the owner's and the borrowers' shares summed (over every stage of this
     * pipeline; the others add zeros), after the replicas, so each copy sums the same two values */
    for (int i = 0; i < p->n_tied && !st; i++) {
        herd_comm_request *r;
        if (!(st = herd_comm_iallreduce(p->pipeline, grads + p->tied[2 * i], p->tied[2 * i + 1], NULL, &r, err)))
            st = wait_timed(p, p->pipeline, r, err);
    }
    p->total += herd_now() - t0;
    return st;
}

/* dst[lo, hi) from each stage, summed over a zeroed buffer: every range is someone's own. */
static herd_status gather_range(pipe_state *p, float *dst, int64_t n, int64_t lo, int64_t hi, herd_error *err) {
    if (n == 0) return HERD_OK;
    memset(p->scratch, 0, (size_t)n * sizeof(float));
    memcpy(p->scratch + lo, dst + lo, (size_t)(hi - lo) * sizeof(float));
    herd_comm_request *r;
    herd_status st = herd_comm_iallreduce(p->pipeline, p->scratch, n, NULL, &r, err);
    if (!st) st = herd_comm_wait(p->pipeline, r, err);
    if (!st) memcpy(dst, p->scratch, (size_t)n * sizeof(float));
    return st;
}

herd_status herdi_pipe_gather_params(pipe_state *p, herd_error *err) {
    int64_t np, nb;
    float *params = herd_model_params(p->m, &np);
    float *buffers = herd_model_buffers(p->m, &nb);
    herd_status st = gather_range(p, params, np, p->plo, p->phi, err);
    return st ? st : gather_range(p, buffers, nb, p->blo, p->bhi, err);
}

herd_status herdi_pipe_gather_state(pipe_state *p, float *m, float *v, herd_error *err) {
    int64_t np;
    herd_model_params(p->m, &np);
    herd_status st = herdi_pipe_gather_params(p, err);
    if (!st && m) st = gather_range(p, m, np, p->plo, p->phi, err);
    if (!st && v) st = gather_range(p, v, np, p->plo, p->phi, err);
    return st;
}

/* ---- the strategy: stages of one pipeline side by side with the replicas of the others ---- */

static herd_status pipe_nothing(herd_strategy *s, herd_error *err) {
    (void)s, (void)err;
    return HERD_OK;
}

static herd_status pipe_begin_step(herd_strategy *s, int64_t t, herd_error *err) {
    (void)t;
    return pipe_nothing(s, err);
}

static herd_status pipe_compute(herd_strategy *s, const herd_strategy_part *part, float *loss, herd_metrics *acc,
                                herd_error *err) {
    *loss = 0; /* non-finite losses show in the gradient norm, the same on every stage */
    return herdi_pipe_step(s->impl, part->count, part->B, part->targets, part->seed, part->step, acc, err);
}

static herd_status pipe_after_backward(herd_strategy *s, int samples, herd_error *err) {
    (void)s, (void)samples, (void)err;
    return HERD_OK; /* herdi_pipe_step summed the stage's gradients over its replicas */
}

static herd_status pipe_grad_sq(herd_strategy *s, double *sq, herd_error *err) {
    pipe_state *p = s->impl;
    /* stages hold disjoint parts of the gradient: the norm is the whole model's, so every stage
     * clips by the same factor and takes the same non-finite decision */
    *sq = p->borrows ? herd_grad_sq_sum(herd_model_grads(s->m) + p->plo, p->phi - p->plo) /* a tied weight counts once */
                     : herd_grad_sq_sum(herd_model_grads(s->m), herd_model_dense_params(s->m));
    if (herd_comm_size(s->comm) == 1) return HERD_OK;
    herd_status st = herd_comm_allreduce_f64(s->comm, sq, 1, err); /* every rank: stages x replicas */
    if (st == HERD_OK) *sq /= p->n_replicas;                        /* replicas of a stage hold the same */
    return st;
}

static herd_status pipe_sync_model(herd_strategy *s, int64_t t, herd_error *err) {
    (void)t;
    return herdi_pipe_gather_params(s->impl, err);
}

static herd_status pipe_gather(herd_strategy *s, herd_strategy_state *st, herd_error *err) {
    return herdi_pipe_gather_state(s->impl, st->m, st->v, err);
}

static void pipe_strategy_destroy(herd_strategy *s) { herdi_pipe_destroy(s->impl); }

static const herd_strategy_ops pipe_ops = {
    .name = "pipeline",
    .parts = herdi_data_parallel_parts, /* one per pipeline: its rows of the batch */
    .part = herdi_data_parallel_part,
    .begin_step = pipe_begin_step,
    .compute = pipe_compute,
    .after_backward = pipe_after_backward,
    .grad_sq = pipe_grad_sq,
    .apply = herdi_data_parallel_apply, /* each stage applies the update; its own range is what counts */
    .sync_model = pipe_sync_model,
    .gather_state = pipe_gather,
    .finish = pipe_nothing,
    .destroy = pipe_strategy_destroy,
};

herd_status herdi_pipeline_layout(const herd_strategy_config *cfg, int world, int *groups, int *reuse, herd_error *err) {
    if (cfg->deterministic || cfg->bf16)
        return herd_fail(err, HERD_EARG, "--deterministic and --grad-compress are for --strategy dp");
    if (cfg->zero)
        return herd_fail(err, HERD_EARG, "--zero 1 is for --strategy dp (a pipeline stage updates its own layers only)");
    if (cfg->stages < 2 || world % cfg->stages != 0)
        return herd_fail(err, HERD_EARG, "--strategy pipeline needs a number of ranks (-n %d) that --stages %d divides",
                         world, cfg->stages);
    *groups = world / cfg->stages;
    *reuse = 0; /* micro-batches interleave forward and backward passes */
    return HERD_OK;
}

herd_status herdi_pipeline_setup(herd_strategy *s, herd_error *err) {
    int groups, reuse;
    herd_status st = herdi_pipeline_layout(&s->cfg, herd_comm_size(s->comm), &groups, &reuse, err);
    pipe_state *p = NULL;
    if (!st) st = herdi_pipe_create(&p, s->comm, s->m, s->cfg.stages, s->cfg.cuts, s->cfg.microbatches, s->cfg.one_f_one_b,
                              err);
    if (st) return st;
    s->ops = &pipe_ops, s->impl = p;
    s->rank = p->replica, s->world = p->n_replicas; /* evaluation: every rank, after sync_model */
    return HERD_OK;
}

void herd_strategy_pipeline_times(const herd_strategy *s, double *wait, double *total) {
    if (s->ops == &pipe_ops) herdi_pipe_times(s->impl, wait, total);
    else *wait = *total = 0;
}
