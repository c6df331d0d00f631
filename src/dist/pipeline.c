/* Pipeline parallelism: the model's layers are cut into stages, one per rank; each batch is
 * split into micro-batches that flow forward through the stages (activations sent to the
 * next rank) and backward (gradients sent to the previous one). GPipe runs all forwards,
 * then all backwards; 1F1B starts backwards as soon as the last stage can, keeping fewer
 * micro-batches in flight. Micro-batch k lives in rows [k*b, (k+1)*b) of the stage's
 * planned buffers. Replicas of a stage (pipelines side by side) sum their gradients. */
#include <stdlib.h>
#include <string.h>

#include "dist/pipeline.h"

enum { TAG_ACT = 300, TAG_GRAD = 301 };

struct pipe_state {
    herd_comm *world, *replicas, *pipeline; /* replicas: same stage; pipeline: same replica */
    herd_model *m;
    int stages, stage, replica, n_replicas, micro, one_f_one_b;
    int first, last;        /* this stage's layers */
    int64_t plo, phi;       /* this stage's parameter range */
    int64_t blo, bhi;       /* and buffer range */
    float *scratch;         /* gather buffer */
    double wait, total;
    herd_comm_request *sends[1024];
    int n_sends;
};

herd_status pipe_create(pipe_state **out, herd_comm *world, herd_model *m, int stages, const int *cuts,
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
    /* parameters are registered in layer order, so a stage's parameters are one range */
    p->plo = p->blo = INT64_MAX, p->phi = p->bhi = 0;
    for (int i = 0; i < herd_model_param_count(m); i++) {
        const herd_param_info *pi = herd_model_param(m, i);
        const char *dot = strrchr(pi->name, '.');
        for (int l = p->first; l <= p->last; l++) {
            herd_layer_info li;
            herd_model_layer(m, l, &li);
            if (dot && (size_t)(dot - pi->name) == strlen(li.name) && !strncmp(pi->name, li.name, strlen(li.name))) {
                int64_t *lo = pi->trainable ? &p->plo : &p->blo, *hi = pi->trainable ? &p->phi : &p->bhi;
                if (pi->offset < *lo) *lo = pi->offset;
                if (pi->offset + pi->numel > *hi) *hi = pi->offset + pi->numel;
            }
        }
    }
    if (p->plo > p->phi) p->plo = p->phi = 0;
    /* a stage receives only the output of the layer before it: a layer may not read anything older */
    for (int l = p->first; l <= p->last && !st; l++) {
        int ins[64], n_in = herd_model_layer_inputs(m, l, ins, 64);
        for (int k = 0; k < n_in && k < 64 && !st; k++) {
            if (ins[k] >= p->first - 1 || (ins[k] < 0 && p->first == 0)) continue;
            herd_layer_info a, b;
            herd_model_layer(m, l, &a);
            if (ins[k] >= 0) herd_model_layer(m, ins[k], &b);
            st = herd_fail(err, HERD_EARG, "stage %d starts inside a residual block: '%s' reads '%s' of an earlier "
                           "stage; cut elsewhere (--split)", p->stage, a.name, ins[k] >= 0 ? b.name : "the input");
        }
    }
    if (st) goto fail;
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
    pipe_destroy(p);
    return st;
}

void pipe_destroy(pipe_state *p) {
    if (!p) return;
    herd_comm_close(p->replicas);
    herd_comm_close(p->pipeline);
    free(p->scratch);
    free(p);
}

int pipe_replica(const pipe_state *p) { return p->replica; }
int pipe_replicas(const pipe_state *p) { return p->n_replicas; }
int pipe_stage(const pipe_state *p) { return p->stage; }

void pipe_times(const pipe_state *p, double *wait, double *total) {
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
    const int32_t *labels;
    pipe_load_fn load;
    void *user;
    uint64_t seed;
    int64_t step;
    double loss_sum;
    int correct, samples;
} step_ctx;

static herd_status forward_micro(step_ctx *c, int k, herd_error *err) {
    pipe_state *p = c->p;
    herd_model *m = p->m;
    int64_t row0;
    int n;
    micro_rows(p, c->count, k, &row0, &n);
    if (n == 0) return HERD_OK;
    herd_status st;
    int prev = p->stage - 1, next = p->stage + 1; /* ranks within the pipeline communicator */
    if ((p->stage == 0 || p->stage == p->stages - 1) && (st = c->load(c->user, row0, (int)row0, n, err))) return st;
    if (p->stage > 0) {
        float *out, *dout;
        int64_t per;
        herd_model_layer_buffers(m, p->first - 1, &out, &dout, &per);
        if ((st = recv_rows(p, out + row0 * per, per * n, prev, TAG_ACT + 2 * k, err))) return st;
    }
    /* dropout masks depend on (step, micro-batch of the global batch), not on the split */
    herd_model_set_dropout_stream(m, c->seed, 1000003ULL * (uint64_t)c->step + (uint64_t)(p->replica * p->micro + k));
    if ((st = herd_model_forward_range(m, p->first, p->last, row0, n, 1, err))) return st;
    if (p->stage < p->stages - 1) {
        float *out, *dout;
        int64_t per;
        herd_model_layer_buffers(m, p->last, &out, &dout, &per);
        return send_rows(p, out + row0 * per, per * n, next, TAG_ACT + 2 * k, err);
    }
    int correct;
    float loss = herd_model_loss_rows(m, row0, c->labels + row0, n, &correct);
    c->loss_sum += (double)loss * n, c->correct += correct, c->samples += n;
    return HERD_OK;
}

static herd_status backward_micro(step_ctx *c, int k, herd_error *err) {
    pipe_state *p = c->p;
    herd_model *m = p->m;
    int64_t row0;
    int n;
    micro_rows(p, c->count, k, &row0, &n);
    if (n == 0) return HERD_OK;
    herd_status st;
    herd_model_zero_dout_rows(m, p->first, p->last, row0, n);
    if (p->stage == p->stages - 1) {
        herd_model_seed_loss_grad(m, row0, c->labels + row0, n, (float)n / (float)c->B);
    } else {
        float *out, *dout;
        int64_t per;
        herd_model_layer_buffers(m, p->last, &out, &dout, &per);
        if ((st = recv_rows(p, dout + row0 * per, per * n, p->stage + 1, TAG_GRAD + 2 * k, err))) return st;
    }
    herd_model_backward_range(m, p->first, p->last, row0, n);
    if (p->stage > 0) {
        float *out, *dout;
        int64_t per;
        herd_model_layer_buffers(m, p->first - 1, &out, &dout, &per);
        return send_rows(p, dout + row0 * per, per * n, p->stage - 1, TAG_GRAD + 2 * k, err);
    }
    return HERD_OK;
}

herd_status pipe_step(pipe_state *p, int count, int B, const int32_t *labels, pipe_load_fn load, void *user,
                      uint64_t seed, int64_t step, double *loss_sum, int *correct, int *samples, herd_error *err) {
    double t0 = herd_now();
    step_ctx c = {p, count, B, labels, load, user, seed, step, 0, 0, 0};
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
    *loss_sum = c.loss_sum, *correct = c.correct, *samples = c.samples;
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

herd_status pipe_gather_params(pipe_state *p, herd_error *err) {
    int64_t np, nb;
    float *params = herd_model_params(p->m, &np);
    float *buffers = herd_model_buffers(p->m, &nb);
    herd_status st = gather_range(p, params, np, p->plo, p->phi, err);
    return st ? st : gather_range(p, buffers, nb, p->blo, p->bhi, err);
}

herd_status pipe_gather_state(pipe_state *p, float *m, float *v, herd_error *err) {
    int64_t np;
    herd_model_params(p->m, &np);
    herd_status st = pipe_gather_params(p, err);
    if (!st && m) st = gather_range(p, m, np, p->plo, p->phi, err);
    if (!st && v) st = gather_range(p, v, np, p->plo, p->phi, err);
    return st;
}
