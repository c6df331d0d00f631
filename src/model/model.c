/* The graph executor: parameter registry, deterministic init, the one-time memory plan,
 * and forward / loss / backward over the nodes in order, each op on the node's backend. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "herd/data.h"
#include "herd/trace.h"
#include "model/model_internal.h"

int model_add_param(herd_model *m, const char *layer, const char *suffix, int trainable, int ndim,
                    const int64_t *shape) {
    if (m->n_reg >= HERD_MAX_PARAMS) return -1;
    param_entry *e = &m->params_reg[m->n_reg];
    memset(e, 0, sizeof *e);
    snprintf(e->name, sizeof e->name, "%s.%s", layer, suffix);
    e->info.name = e->name;
    e->info.trainable = trainable;
    e->info.ndim = ndim;
    e->info.numel = 1;
    for (int d = 0; d < ndim; d++) {
        e->info.shape[d] = shape[d];
        e->info.numel *= shape[d]; /* bounded by the parser's limits: no overflow */
    }
    return m->n_reg++;
}

herd_status model_alloc_params(herd_model *m, herd_error *err) {
    /* Registry names follow the node names, which the spec may have changed after the
     * parameters were added (name=...): refresh them here, once the graph is final. */
    for (int i = 0; i < m->n_nodes; i++) {
        node *n = &m->nodes[i];
        int idx[4] = {n->p_weight, n->p_bias, n->p_mean, n->p_var};
        const char *suffix[4] = {"weight", "bias", "running_mean", "running_var"};
        for (int k = 0; k < 4; k++)
            if (idx[k] >= 0) snprintf(m->params_reg[idx[k]].name, sizeof m->params_reg[idx[k]].name, "%s.%s", n->name,
                                      suffix[k]);
    }
    int64_t np = 0, nb = 0;
    for (int i = 0; i < m->n_reg; i++) {
        herd_param_info *p = &m->params_reg[i].info;
        int64_t *total = p->trainable ? &np : &nb;
        p->offset = *total;
        *total += p->numel;
        if (*total > ((int64_t)1 << 31))
            return herd_fail(err, HERD_ESPEC, "%s: the model has more than 2^31 parameters", m->source);
    }
    m->n_params = np, m->n_buffers = nb;
    int64_t ready = np;
    for (int i = m->n_nodes - 1; i >= 0; i--) {
        const node *n = &m->nodes[i];
        const int idx[2] = {n->p_weight, n->p_bias};
        for (int k = 0; k < 2; k++)
            if (idx[k] >= 0 && m->params_reg[idx[k]].info.trainable && m->params_reg[idx[k]].info.offset < ready)
                ready = m->params_reg[idx[k]].info.offset;
        m->grad_ready[i] = ready;
    }
    m->params = herd_aligned_alloc((size_t)(np ? np : 1) * sizeof(float));
    m->grads = herd_aligned_alloc((size_t)(np ? np : 1) * sizeof(float));
    m->buffers = herd_aligned_alloc((size_t)(nb ? nb : 1) * sizeof(float));
    if (!m->params || !m->grads || !m->buffers)
        return herd_fail(err, HERD_ENOMEM, "%s: cannot allocate %lld parameters", m->source, (long long)np);
    memset(m->params, 0, (size_t)np * sizeof(float));
    memset(m->grads, 0, (size_t)np * sizeof(float));
    memset(m->buffers, 0, (size_t)nb * sizeof(float));
    return HERD_OK;
}

float *model_param_data(herd_model *m, int i) {
    const herd_param_info *p = &m->params_reg[i].info;
    return (p->trainable ? m->params : m->buffers) + p->offset;
}

static float *grad_of(herd_model *m, int i) { return i < 0 ? NULL : m->grads + m->params_reg[i].info.offset; }
static float *data_of(herd_model *m, int i) { return i < 0 ? NULL : model_param_data(m, i); }

void herd_model_destroy(herd_model *m) {
    if (!m) return;
    herd_pool_destroy(m->pool);
    herd_arena_destroy(m->arena);
    herd_aligned_free(m->params);
    herd_aligned_free(m->grads);
    herd_aligned_free(m->buffers);
    free(m->input_norm);
    free(m);
}

herd_status herd_model_set_input_norm(herd_model *m, const double *mean, const double *std, herd_error *err) {
    if (!mean || !std) {
        free(m->input_norm);
        m->input_norm = NULL;
        return HERD_OK;
    }
    for (int c = 0; c < m->in_c; c++)
        if (!isfinite(mean[c]) || !isfinite(std[c]) || std[c] < 0)
            return herd_fail(err, HERD_EARG, "input normalisation of channel %d: mean %g, std %g (finite, std >= 0)",
                             c, mean[c], std[c]);
    double *v = m->input_norm ? m->input_norm : malloc(2 * (size_t)m->in_c * sizeof *v);
    if (!v) return herd_fail(err, HERD_ENOMEM, "out of memory");
    memcpy(v, mean, (size_t)m->in_c * sizeof *v);
    memcpy(v + m->in_c, std, (size_t)m->in_c * sizeof *v);
    m->input_norm = v;
    return HERD_OK;
}

const double *herd_model_input_norm(const herd_model *m) { return m->input_norm; }

void herd_model_normalize_input(herd_model *m, int B) {
    if (m->input_norm)
        herd_normalize_samples(m->input, B, m->in_c, (int64_t)m->in_h * m->in_w, m->input_norm,
                               m->input_norm + m->in_c);
}

const herd_spec_train *herd_model_spec_train(const herd_model *m) { return &m->train; }

void herd_model_init_params(herd_model *m, uint64_t seed) {
    for (int i = 0; i < m->n_nodes; i++) {
        node *n = &m->nodes[i];
        if (n->kind == NODE_CONV || n->kind == NODE_DENSE) {
            int64_t fan_in, fan_out;
            if (n->kind == NODE_CONV) {
                fan_in = (int64_t)n->conv.C * n->conv.KH * n->conv.KW;
                fan_out = (int64_t)n->conv.OC * n->conv.KH * n->conv.KW;
            } else {
                fan_in = n->dense_in, fan_out = n->dense_out;
            }
            float *w = data_of(m, n->p_weight);
            int64_t numel = m->params_reg[n->p_weight].info.numel;
            herd_rng r;
            herd_rng_init(&r, seed, 1000 + (uint64_t)n->p_weight); /* one stream per tensor */
            if (n->he_init) {
                float std = sqrtf(2.0f / (float)fan_in);
                for (int64_t k = 0; k < numel; k++) w[k] = std * herd_rng_normal(&r);
            } else {
                float limit = sqrtf(6.0f / (float)(fan_in + fan_out));
                for (int64_t k = 0; k < numel; k++) w[k] = limit * (2.0f * herd_rng_uniform(&r) - 1.0f);
            }
            if (n->p_bias >= 0) memset(data_of(m, n->p_bias), 0, (size_t)n->c * sizeof(float));
        } else if (n->kind == NODE_BATCHNORM) {
            for (int c = 0; c < n->c; c++) {
                data_of(m, n->p_weight)[c] = 1.0f;
                data_of(m, n->p_bias)[c] = 0.0f;
                data_of(m, n->p_mean)[c] = 0.0f;
                data_of(m, n->p_var)[c] = 1.0f;
            }
        }
    }
    herd_rng_init(&m->dropout_rng, seed, 1);
}

static int64_t node_numel(const node *n) { return (int64_t)n->c * n->h * n->w; }

/* Marks the ReLUs that can run in place on their producer's buffers: the producer is a conv
 * or dense layer whose output nothing else reads (its own backward needs only its input).
 * That saves two activation-sized buffers per pair, a zeroing pass and, for conv, the ReLU's
 * own pass over memory (the cpu backend applies it per image while the image is in cache). */
static void mark_inplace_relus(herd_model *m) {
    int consumers[HERD_MAX_NODES] = {0};
    for (int i = 0; i < m->n_nodes; i++) {
        const node *n = &m->nodes[i];
        if (n->in >= 0) consumers[n->in]++;
        if (n->kind == NODE_ADD && n->in2 >= 0) consumers[n->in2]++;
    }
    for (int i = 0; i < m->n_nodes; i++) {
        node *n = &m->nodes[i];
        const node *p = n->in >= 0 ? &m->nodes[n->in] : NULL;
        n->inplace = n->kind == NODE_ACT && n->act == HERD_ACT_RELU && p && consumers[n->in] == 1 &&
                     (p->kind == NODE_CONV || p->kind == NODE_DENSE);
    }
}

/* Carves every buffer out of `a`; with a planner arena it only measures. */
static herd_status plan_buffers(herd_model *m, herd_arena *a, int B) {
    int64_t in_numel = (int64_t)m->in_c * m->in_h * m->in_w;
    size_t ws = 0;
    int threads = herd_pool_threads(m->pool);
#define TAKE(dst, count)                                  \
    do {                                                  \
        (dst) = herd_arena_floats(a, (size_t)(count));    \
        if (!(dst)) return HERD_ENOMEM;                   \
    } while (0)
    TAKE(m->input, (int64_t)B * in_numel);
    for (int i = 0; i < m->n_nodes; i++) {
        node *n = &m->nodes[i];
        int64_t numel = (int64_t)B * node_numel(n);
        n->save_a = n->save_b = NULL;
        n->argmax = NULL;
        if ((n->kind == NODE_FLATTEN || n->inplace) && n->in >= 0) { /* a view: same memory as its input */
            n->out = m->nodes[n->in].out;
            n->dout = m->nodes[n->in].dout;
            continue;
        }
        if (n->kind == NODE_FLATTEN) { /* of the model input: its output is the input, its gradient its own */
            n->out = m->input;
            TAKE(n->dout, numel);
            continue;
        }
        TAKE(n->out, numel);
        TAKE(n->dout, numel);
        switch (n->kind) {
        case NODE_DROPOUT: TAKE(n->save_a, numel); break;
        case NODE_BATCHNORM:
            TAKE(n->save_a, n->c);
            TAKE(n->save_b, n->c);
            break;
        case NODE_MAXPOOL:
            n->argmax = herd_arena_alloc(a, (size_t)numel * sizeof(int32_t));
            if (!n->argmax) return HERD_ENOMEM;
            break;
        case NODE_CONV: {
            conv2d_dims d = n->conv;
            d.B = B;
            size_t w = n->be->conv2d_workspace ? n->be->conv2d_workspace(&d, threads) : 0;
            if (w > ws) ws = w;
            break;
        }
        default: break;
        }
    }
    TAKE(m->probs, (int64_t)B * herd_model_output_size(m));
    if (ws) TAKE(m->ex.workspace, ws);
    else m->ex.workspace = NULL;
    m->ex.workspace_floats = ws;
#undef TAKE
    return HERD_OK;
}

/* Bytes plan_buffers takes for batch B (measured with a planner arena). */
static herd_status planned_bytes(herd_model *m, int B, size_t *bytes) {
    herd_arena *planner = herd_arena_create_planner();
    if (!planner) return HERD_ENOMEM;
    herd_status st = plan_buffers(m, planner, B);
    *bytes = herd_arena_used(planner);
    herd_arena_destroy(planner);
    return st;
}

/* Training runs a batch through forward and backward TRAIN_CHUNK_BYTES of activations at a
 * time (herd_model_forward_backward): each chunk's backward then reads the activations its
 * forward just left in L2/L3 instead of fetching the whole batch back from DRAM. Measured on
 * the example CNN (480 KB per sample) at batch 256, 2 threads: chunks of 16-32 rows train
 * 5-15% faster than the whole batch, chunks of 64 (30 MB) no faster. Batch norm needs the
 * statistics of the whole batch, so a model with it is never cut. */
#define TRAIN_CHUNK_BYTES (16u << 20)

static int train_chunk(const herd_model *m, size_t per_sample) {
    for (int i = 0; i < m->n_nodes; i++)
        if (m->nodes[i].kind == NODE_BATCHNORM) return 0;
    const char *knob = getenv("HERD_TRAIN_CHUNK"); /* tuning knob: rows per chunk, 0 = whole batch */
    if (knob) return atoi(knob) > 0 ? atoi(knob) : 0;
    size_t rows = per_sample ? TRAIN_CHUNK_BYTES / per_sample : 0;
    if (rows > (1u << 20)) rows = 1u << 20;
    return rows < 8 ? 8 : (int)(rows / 8 * 8);
}

herd_status herd_model_prepare(herd_model *m, const char *backend, int max_batch, int threads, herd_error *err) {
    const herd_backend *be = herd_backend_find(backend);
    if (!be) return herd_fail(err, HERD_EARG, "unknown backend '%s' (expected ref or cpu)", backend);
    if (max_batch < 1 || max_batch > (1 << 20))
        return herd_fail(err, HERD_EARG, "batch size %d is out of range 1..%d", max_batch, 1 << 20);
    herd_pool_destroy(m->pool);
    m->pool = NULL;
    herd_arena_destroy(m->arena);
    m->arena = NULL;
    herd_status st = herd_pool_create(&m->pool, threads, err);
    if (st) return st;
    herd_backend_set_threads(threads);
    m->be = be;
    m->ex.pool = m->pool;
    m->notes[0] = 0;
    for (int i = 0; i < m->n_nodes; i++) {
        node *n = &m->nodes[i];
        n->be = be;
        const char *why = NULL;
        if (n->kind == NODE_CONV && be->conv2d_unsupported && (why = be->conv2d_unsupported(&n->conv))) {
            n->be = &herd_backend_ref;
            size_t len = strlen(m->notes);
            snprintf(m->notes + len, sizeof m->notes - len, "%s: %s backend cannot run it (%s); using ref\n", n->name,
                     be->name, why);
        }
    }
    mark_inplace_relus(m);
    size_t need = 0, one = 0, two = 0;
    if (planned_bytes(m, 1, &one) || planned_bytes(m, 2, &two) || planned_bytes(m, max_batch, &need))
        return herd_fail(err, HERD_ENOMEM, "%s: memory plan overflows", m->source);
    m->train_chunk = train_chunk(m, two - one);
    if ((st = herd_arena_create(&m->arena, need, err)))
        return herd_fail_prefix(err, "%s: planning activations for batch %d", m->source, max_batch);
    if (plan_buffers(m, m->arena, max_batch) != HERD_OK)
        return herd_fail(err, HERD_EINTERNAL, "%s: the memory plan of %zu bytes does not fit its own arena", m->source,
                         need);
    m->max_batch = max_batch;
    return HERD_OK;
}

const char *herd_model_notes(const herd_model *m) { return m->notes; }

void herd_model_input_shape(const herd_model *m, int *c, int *h, int *w) {
    *c = m->in_c, *h = m->in_h, *w = m->in_w;
}

int herd_model_max_batch(const herd_model *m) { return m->arena ? m->max_batch : 0; }

int herd_model_output_size(const herd_model *m) { return m->nodes[m->n_nodes - 1].c; }
float *herd_model_input(herd_model *m) { return m->input; }
const float *herd_model_output(const herd_model *m) { return m->nodes[m->n_nodes - 1].out; }

/* Spatial size of a node's input. */
static int input_hw(const herd_model *m, const node *n) {
    return n->in < 0 ? m->in_h * m->in_w : m->nodes[n->in].h * m->nodes[n->in].w;
}

/* Buffers of rows [row0, row0 + B) of the planned batch: micro-batches of a pipeline stage
 * live side by side in the same planned buffers. */
static float *rows(float *base, const node *n, int64_t row0) { return base ? base + row0 * node_numel(n) : NULL; }

static const float *input_rows(const herd_model *m, const node *n, int64_t row0) {
    if (n->in >= 0) return rows(m->nodes[n->in].out, &m->nodes[n->in], row0);
    return m->input + row0 * (int64_t)m->in_c * m->in_h * m->in_w;
}

static herd_status check_range(const herd_model *m, int first, int last, int64_t row0, int B, herd_error *err) {
    if (!m->arena) return herd_fail(err, HERD_EARG, "%s: forward before prepare", m->source);
    if (B < 1 || row0 < 0 || row0 + B > m->max_batch)
        return herd_fail(err, HERD_EARG, "%s: rows %lld..%lld exceed the planned batch %d", m->source,
                         (long long)row0, (long long)(row0 + B), m->max_batch);
    if (first < 0 || last >= m->n_nodes || first > last)
        return herd_fail(err, HERD_EARG, "%s: layer range %d..%d is out of 0..%d", m->source, first, last,
                         m->n_nodes - 1);
    return HERD_OK;
}

/* Inference runs a large batch through the whole network EVAL_CHUNK rows at a time: every
 * eval op is per sample, and each layer then reads its input while the previous layer's
 * few MB are still in L2/L3 (at batch 1000 conv1's output alone is 100 MB, a round trip
 * through DRAM per layer). Rows keep their planned places, so outputs are unchanged. */
#define EVAL_CHUNK 32

herd_status herd_model_forward(herd_model *m, int B, int training, herd_error *err) {
    if (training || B <= EVAL_CHUNK) return herd_model_forward_range(m, 0, m->n_nodes - 1, 0, B, training, err);
    for (int r = 0; r < B; r += EVAL_CHUNK) {
        herd_status st = herd_model_forward_range(m, 0, m->n_nodes - 1, r, B - r < EVAL_CHUNK ? B - r : EVAL_CHUNK, 0, err);
        if (st) return st;
    }
    return HERD_OK;
}

herd_status herd_model_forward_range(herd_model *m, int first, int last, int64_t row0, int B, int training,
                                     herd_error *err) {
    herd_status st = check_range(m, first, last, row0, B, err);
    if (st) return st;
    const herd_exec *ex = &m->ex;
    int fused = -1; /* a ReLU already applied inside its conv */
    for (int i = first; i <= last; i++) {
        node *n = &m->nodes[i];
        const herd_backend *be = n->be;
        const float *in = input_rows(m, n, row0);
        float *out = rows(n->out, n, row0);
        int64_t numel = (int64_t)B * node_numel(n);
        if (i == fused) continue;
        double t0 = m->profile || m->trace ? herd_now() : 0;
        switch (n->kind) {
        case NODE_CONV: {
            conv2d_dims d = n->conv;
            d.B = B;
            const node *next = i + 1 <= last ? &m->nodes[i + 1] : NULL;
            if (next && next->inplace && next->in == i && next->be == be && be->conv2d_forward_relu) {
                be->conv2d_forward_relu(ex, out, in, data_of(m, n->p_weight), data_of(m, n->p_bias), &d);
                fused = i + 1; /* the ReLU's buffers are these: nothing left for it to do */
            } else {
                be->conv2d_forward(ex, out, in, data_of(m, n->p_weight), data_of(m, n->p_bias), &d);
            }
            break;
        }
        case NODE_MAXPOOL: {
            pool2d_dims d = n->pool;
            d.B = B;
            be->maxpool2d_forward(ex, out, n->argmax + row0 * node_numel(n), in, &d);
            break;
        }
        case NODE_AVGPOOL: {
            pool2d_dims d = n->pool;
            d.B = B;
            be->avgpool2d_forward(ex, out, in, &d);
            break;
        }
        case NODE_GAP: ref_gap_forward(out, in, B, n->c, input_hw(m, n)); break;
        case NODE_DENSE:
            be->dense_forward(ex, out, in, data_of(m, n->p_weight), data_of(m, n->p_bias), B, n->dense_in,
                              n->dense_out);
            break;
        case NODE_FLATTEN: break;
        case NODE_DROPOUT:
            if (training) ref_dropout_forward(out, rows(n->save_a, n, row0), in, numel, n->p, &m->dropout_rng);
            else memcpy(out, in, (size_t)numel * sizeof(float));
            break;
        case NODE_BATCHNORM:
            if (training)
                be->batchnorm_forward_train(ex, out, n->save_a, n->save_b, data_of(m, n->p_mean),
                                            data_of(m, n->p_var), in, data_of(m, n->p_weight), data_of(m, n->p_bias),
                                            B, n->c, n->h * n->w, n->momentum, n->eps);
            else
                be->batchnorm_forward_eval(ex, out, in, data_of(m, n->p_weight), data_of(m, n->p_bias),
                                           data_of(m, n->p_mean), data_of(m, n->p_var), B, n->c, n->h * n->w, n->eps);
            break;
        case NODE_ACT: be->act_forward(ex, out, in, numel, n->act, n->alpha); break; /* in == out if inplace */
        case NODE_SOFTMAX: ref_softmax_forward(out, in, B, n->c); break;
        case NODE_ADD: ref_add_forward(out, in, rows(m->nodes[n->in2].out, &m->nodes[n->in2], row0), numel); break;
        }
        if (m->profile) n->t_forward += herd_now() - t0;
        if (m->trace) herd_trace_add(m->trace, n->name, "forward", HERD_TRACE_COMPUTE, t0, herd_now());
    }
    return HERD_OK;
}

float herd_model_loss(herd_model *m, const int32_t *labels, int B, int *correct) {
    return herd_model_loss_rows(m, 0, labels, B, correct);
}

float herd_model_loss_rows(herd_model *m, int64_t row0, const int32_t *labels, int B, int *correct) {
    const node *last = &m->nodes[m->n_nodes - 1];
    int K = last->c;
    const float *y = last->out + row0 * K;
    float *probs = m->probs + row0 * K;
    int hits = 0;
    for (int b = 0; b < B; b++) {
        const float *row = y + (int64_t)b * K;
        int best = 0;
        for (int k = 1; k < K; k++)
            if (row[k] > row[best]) best = k;
        hits += best == labels[b];
    }
    if (correct) *correct = hits;
    if (m->loss == LOSS_XENT) return ref_softmax_xent_forward(probs, y, labels, B, K);
    /* MSE against one-hot targets, kept in the probs buffer for backward */
    memset(probs, 0, (size_t)B * K * sizeof(float));
    for (int b = 0; b < B; b++) probs[(int64_t)b * K + labels[b]] = 1.0f;
    return ref_mse_forward(y, probs, (int64_t)B * K);
}

herd_status herd_model_forward_backward(herd_model *m, const int32_t *labels, int B, float grad_scale, float *loss,
                                        int *correct, herd_error *err) {
    int chunk = m->train_chunk > 0 && m->train_chunk < B ? m->train_chunk : B, last = m->n_nodes - 1;
    herd_grad_ready_fn hook = m->grad_hook;
    double loss_sum = 0;
    *correct = 0;
    memset(m->grads, 0, (size_t)m->n_params * sizeof(float));
    for (int r = 0; r < B; r += chunk) {
        int n = B - r < chunk ? B - r : chunk, hits;
        herd_status st = herd_model_forward_range(m, 0, last, r, n, 1, err);
        if (st) {
            m->grad_hook = hook;
            return st;
        }
        loss_sum += (double)herd_model_loss_rows(m, r, labels + r, n, &hits) * n;
        *correct += hits;
        herd_model_zero_dout_rows(m, 0, last, r, n);
        herd_model_seed_loss_grad(m, r, labels + r, n, grad_scale * (float)n / (float)B);
        m->grad_hook = r + n < B ? NULL : hook; /* gradients are final only in the last chunk */
        herd_model_backward_range(m, 0, last, r, n);
    }
    m->grad_hook = hook;
    *loss = (float)(loss_sum / B);
    return HERD_OK;
}

int herd_model_train_chunk(const herd_model *m) { return m->train_chunk; }

void herd_model_backward(herd_model *m, const int32_t *labels, int B, float grad_scale) {
    memset(m->grads, 0, (size_t)m->n_params * sizeof(float));
    herd_model_zero_dout_rows(m, 0, m->n_nodes - 1, 0, B);
    herd_model_seed_loss_grad(m, 0, labels, B, grad_scale);
    herd_model_backward_range(m, 0, m->n_nodes - 1, 0, B);
}

void herd_model_zero_dout_rows(herd_model *m, int first, int last, int64_t row0, int B) {
    int lo = first > 0 ? first - 1 : 0; /* first - 1: the gradient this range sends back */
    for (int i = lo; i <= last; i++) {
        node *n = &m->nodes[i];
        if (n->inplace && n->in >= lo) continue; /* its producer's dout, zeroed there */
        if ((n->kind != NODE_FLATTEN || n->in < 0) && n->dout) memset(rows(n->dout, n, row0), 0, (size_t)B * node_numel(n) * sizeof(float));
    }
}

void herd_model_seed_loss_grad(herd_model *m, int64_t row0, const int32_t *labels, int B, float grad_scale) {
    node *last = &m->nodes[m->n_nodes - 1];
    int K = last->c;
    float *dlast = last->dout + row0 * K, *probs = m->probs + row0 * K;
    if (m->loss == LOSS_XENT) ref_softmax_xent_backward(dlast, probs, labels, B, K, grad_scale / (float)B);
    else ref_mse_backward(dlast, last->out + row0 * K, probs, (int64_t)B * K, grad_scale);
}

/* Whether node i is an in-place ReLU whose conv producer is in [first, i) and can run the
 * ReLU's backward inside its own (conv2d_backward_relu). */
static int relu_fused_into_conv_backward(const herd_model *m, int i, int first) {
    const node *n = &m->nodes[i];
    if (!n->inplace || n->in < first || n->in != i - 1) return 0;
    const node *p = &m->nodes[n->in];
    return p->kind == NODE_CONV && p->be == n->be && p->be->conv2d_backward_relu;
}

void herd_model_backward_range(herd_model *m, int first, int last, int64_t row0, int B) {
    const herd_exec *ex = &m->ex;
    for (int i = last; i >= first; i--) {
        node *n = &m->nodes[i];
        const herd_backend *be = n->be;
        const float *in = input_rows(m, n, row0);
        float *din = n->in < 0 ? NULL : rows(m->nodes[n->in].dout, &m->nodes[n->in], row0);
        float *dout = rows(n->dout, n, row0);
        const float *out = rows(n->out, n, row0);
        int64_t numel = (int64_t)B * node_numel(n);
        double t0 = m->profile || m->trace ? herd_now() : 0;
        switch (n->kind) {
        case NODE_CONV: {
            conv2d_dims d = n->conv;
            d.B = B;
            if (i + 1 <= last && relu_fused_into_conv_backward(m, i + 1, first))
                be->conv2d_backward_relu(ex, din, grad_of(m, n->p_weight), grad_of(m, n->p_bias), dout, out, in,
                                         data_of(m, n->p_weight), &d);
            else
                be->conv2d_backward(ex, din, grad_of(m, n->p_weight), grad_of(m, n->p_bias), dout, in,
                                    data_of(m, n->p_weight), &d);
            break;
        }
        case NODE_MAXPOOL: {
            pool2d_dims d = n->pool;
            d.B = B;
            if (din) be->maxpool2d_backward(ex, din, dout, n->argmax + row0 * node_numel(n), &d);
            break;
        }
        case NODE_AVGPOOL: {
            pool2d_dims d = n->pool;
            d.B = B;
            if (din) be->avgpool2d_backward(ex, din, dout, &d);
            break;
        }
        case NODE_GAP:
            if (din) ref_gap_backward(din, dout, B, n->c, input_hw(m, n));
            break;
        case NODE_DENSE:
            be->dense_backward(ex, din, grad_of(m, n->p_weight), grad_of(m, n->p_bias), dout, in,
                               data_of(m, n->p_weight), B, n->dense_in, n->dense_out);
            break;
        case NODE_FLATTEN: break; /* dout is its input's dout */
        case NODE_DROPOUT:
            if (din) ref_dropout_backward(din, dout, rows(n->save_a, n, row0), numel);
            break;
        case NODE_BATCHNORM:
            be->batchnorm_backward(ex, din, grad_of(m, n->p_weight), grad_of(m, n->p_bias), dout, in, n->save_a,
                                   n->save_b, data_of(m, n->p_weight), B, n->c, n->h * n->w);
            break;
        case NODE_ACT:
            if (relu_fused_into_conv_backward(m, i, first)) break; /* the conv masks dout itself */
            if (n->inplace) be->relu_backward_inplace(ex, dout, out, numel); /* dout is din */
            else if (din) be->act_backward(ex, din, dout, in, out, numel, n->act, n->alpha);
            break;
        case NODE_SOFTMAX:
            if (din) ref_softmax_backward(din, dout, out, B, n->c);
            break;
        case NODE_ADD:
            if (din) ref_accumulate(din, dout, numel);
            ref_accumulate(rows(m->nodes[n->in2].dout, &m->nodes[n->in2], row0), dout, numel);
            break;
        }
        if (m->profile) n->t_backward += herd_now() - t0;
        if (m->trace) herd_trace_add(m->trace, n->name, "backward", HERD_TRACE_COMPUTE, t0, herd_now());
        if (m->grad_hook && m->grad_ready[i] != (i + 1 < m->n_nodes ? m->grad_ready[i + 1] : m->n_params))
            m->grad_hook(m->grad_hook_user, m->grad_ready[i]);
    }
}

void herd_model_layer_inputs(const herd_model *m, int i, int *in, int *in2) {
    *in = m->nodes[i].in;
    *in2 = m->nodes[i].in2;
}

void herd_model_layer_buffers(herd_model *m, int i, float **out, float **dout, int64_t *per_sample) {
    *out = m->nodes[i].out;
    *dout = m->nodes[i].dout;
    *per_sample = node_numel(&m->nodes[i]);
}

void herd_model_set_grad_hook(herd_model *m, herd_grad_ready_fn fn, void *user) {
    m->grad_hook = fn;
    m->grad_hook_user = user;
}

void herd_model_set_dropout_stream(herd_model *m, uint64_t seed, uint64_t stream) {
    herd_rng_init(&m->dropout_rng, seed, stream);
}

void herd_model_set_trace(herd_model *m, struct herd_trace *t) { m->trace = t; }

void herd_model_profile(herd_model *m, int enable) {
    m->profile = enable;
    for (int i = 0; i < m->n_nodes; i++) m->nodes[i].t_forward = m->nodes[i].t_backward = 0;
}

void herd_model_layer_times(const herd_model *m, int i, double *forward, double *backward) {
    *forward = m->nodes[i].t_forward;
    *backward = m->nodes[i].t_backward;
}

static int all_finite(const float *x, int64_t n) {
    for (int64_t i = 0; i < n; i++)
        if (!isfinite(x[i])) return 0;
    return 1;
}

int herd_model_first_nonfinite(const herd_model *m, int B, int grads) {
    if (!grads) {
        for (int i = 0; i < m->n_nodes; i++)
            if (!all_finite(m->nodes[i].out, (int64_t)B * node_numel(&m->nodes[i]))) return i;
        return -1;
    }
    for (int i = m->n_nodes - 1; i >= 0; i--) {
        const node *n = &m->nodes[i];
        if (n->dout && !all_finite(n->dout, (int64_t)B * node_numel(n))) return i;
        const int idx[2] = {n->p_weight, n->p_bias};
        for (int k = 0; k < 2; k++) {
            const herd_param_info *p = idx[k] >= 0 ? &m->params_reg[idx[k]].info : NULL;
            if (p && p->trainable && !all_finite(m->grads + p->offset, p->numel)) return i;
        }
    }
    return -1;
}

int herd_model_param_count(const herd_model *m) { return m->n_reg; }
const herd_param_info *herd_model_param(const herd_model *m, int i) { return &m->params_reg[i].info; }

float *herd_model_params(herd_model *m, int64_t *n_params) {
    if (n_params) *n_params = m->n_params;
    return m->params;
}

float *herd_model_grads(herd_model *m) { return m->grads; }
herd_pool *herd_model_pool(herd_model *m) { return m->pool; }

float *herd_model_buffers(herd_model *m, int64_t *n_buffers) {
    if (n_buffers) *n_buffers = m->n_buffers;
    return m->buffers;
}

int herd_model_layer_count(const herd_model *m) { return m->n_nodes; }

void herd_model_layer(const herd_model *m, int i, herd_layer_info *info) {
    const node *n = &m->nodes[i];
    static const char *names[] = {"conv2d", "maxpool2d", "avgpool2d", "global_avgpool", "dense", "flatten",
                                  "dropout", "batchnorm", "activation", "softmax", "add"};
    memset(info, 0, sizeof *info);
    info->name = n->name;
    info->kind = names[n->kind];
    info->c = n->c, info->h = n->h, info->w = n->w;
    int64_t out = node_numel(n);
    for (int k = 0; k < m->n_reg; k++) {
        const herd_param_info *p = &m->params_reg[k].info;
        if (p->trainable && (k == n->p_weight || k == n->p_bias)) info->params += p->numel;
    }
    switch (n->kind) {
    case NODE_CONV:
        snprintf(info->detail, sizeof info->detail, "%d %dx%d s%d p%d", n->conv.OC, n->conv.KH, n->conv.KW, n->conv.SH,
                 n->conv.PH);
        info->flops = 2 * out * n->conv.C * n->conv.KH * n->conv.KW + (n->has_bias ? out : 0);
        break;
    case NODE_MAXPOOL:
    case NODE_AVGPOOL:
        snprintf(info->detail, sizeof info->detail, "%dx%d s%d", n->pool.KH, n->pool.KW, n->pool.SH);
        info->flops = out * n->pool.KH * n->pool.KW;
        break;
    case NODE_DENSE:
        snprintf(info->detail, sizeof info->detail, "%d", n->dense_out);
        info->flops = 2 * (int64_t)n->dense_in * n->dense_out + (n->has_bias ? out : 0);
        break;
    case NODE_DROPOUT: snprintf(info->detail, sizeof info->detail, "p=%g", n->p); break;
    case NODE_ACT: {
        static const char *acts[] = {"none", "relu", "leaky_relu", "sigmoid", "tanh", "gelu"};
        snprintf(info->detail, sizeof info->detail, "%s", acts[n->act]);
        info->flops = out;
        break;
    }
    case NODE_ADD:
        snprintf(info->detail, sizeof info->detail, "+ %s", m->nodes[n->in2].name);
        info->flops = out;
        break;
    case NODE_BATCHNORM: info->flops = 2 * out; break;
    case NODE_GAP: info->flops = (int64_t)n->c * input_hw(m, n); break;
    case NODE_SOFTMAX: info->flops = 3 * out; break;
    case NODE_FLATTEN: break;
    }
}

size_t herd_model_planned_bytes(const herd_model *m) { return m->arena ? herd_arena_capacity(m->arena) : 0; }
