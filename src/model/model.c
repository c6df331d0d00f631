/* The graph executor: parameter registry, deterministic init, the one-time memory plan,
 * and forward / loss / backward over the nodes in order, each op on the node's backend. */
#include <math.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "herd/data.h"
#include "herd/trace.h"
#include "core/pool.h"
#include "model/model_internal.h"

herd_status herdi_model_alloc_params(herd_model *m, herd_error *err) {
    int64_t np = 0, nb = 0;
    int n_sparse = 0;
    /* dense trainable parameters, then the sparse tables (which have no slice of grads), in
     * registry order each; buffers apart */
    for (int pass = 0; pass < 3; pass++)
        for (int i = 0; i < m->n_reg; i++) {
            herd_param_info *p = &m->params_reg[i].info;
            if (pass != (!p->trainable ? 2 : p->sparse ? 1 : 0)) continue;
            int64_t *total = p->trainable ? &np : &nb;
            p->offset = *total;
            *total += p->numel;
            n_sparse += pass == 1;
            if (*total > ((int64_t)1 << 31))
                return herd_fail(err, HERD_ESPEC, "%s: the model has more than 2^31 parameters", m->source);
            if (pass == 0) m->n_dense = *total;
        }
    m->n_params = np, m->n_buffers = nb;
    int64_t ready = m->n_dense;
    for (int i = m->n_nodes - 1; i >= 0; i--) {
        const node *n = &m->nodes[i];
        for (int s = 0; s < LAYER_MAX_SLOTS; s++) {
            const herd_param_info *p = n->param[s] >= 0 ? &m->params_reg[n->param[s]].info : NULL;
            /* a parameter two nodes share (dense tie=) is final after its owner's backward, the earlier node */
            if (p && p->trainable && !p->sparse && p->offset < ready && m->params_reg[n->param[s]].node == i)
                ready = p->offset;
        }
        m->grad_ready[i] = ready;
    }
    m->params = herd_aligned_calloc((size_t)(np ? np : 1) * sizeof(float));
    m->grads = herd_aligned_calloc((size_t)(m->n_dense ? m->n_dense : 1) * sizeof(float));
    m->buffers = herd_aligned_calloc((size_t)(nb ? nb : 1) * sizeof(float));
    m->sparse = n_sparse ? calloc((size_t)n_sparse, sizeof *m->sparse) : NULL;
    if (!m->params || !m->grads || !m->buffers || (n_sparse && !m->sparse))
        return herd_fail(err, HERD_ENOMEM, "%s: cannot allocate %lld parameters", m->source, (long long)np);
    /* the tables (after the dense parameters) are read at random rows: 2 MiB pages, before init touches them */
    if (n_sparse) herd_advise_huge_pages(m->params + m->n_dense, (size_t)(np - m->n_dense) * sizeof(float));
    for (int i = 0; i < m->n_reg; i++)
        if (m->params_reg[i].info.sparse) {
            sparse_grad *g = &m->sparse[m->n_sparse++];
            g->reg = i;
            g->dim = m->params_reg[i].info.shape[1];
        }
    return HERD_OK;
}

/* A table herd_model_init_params leaves to the first access (layer.h's init_rows): a row-sparse one. */
static int init_deferred(const herd_model *m, const node *n) {
    return n->kind->init_rows && n->param[0] >= 0 && m->params_reg[n->param[0]].info.sparse;
}

void herdi_model_tables_ready(herd_model *m) {
    if (!m->tables_pending) return;
    m->tables_pending = 0; /* first: the inits read their tables through herdi_model_param_data */
    for (int i = 0; i < m->n_nodes; i++)
        if (init_deferred(m, &m->nodes[i])) m->nodes[i].kind->init(m, &m->nodes[i], m->table_seed);
}

int herd_model_tables_pending(const herd_model *m) { return m->tables_pending; }

void herd_model_tables_elsewhere(herd_model *m) { m->tables_pending = 0; }

float *herd_model_params_ready(herd_model *m, int64_t *n) {
    herdi_model_params_changed(m);
    *n = m->tables_pending ? m->n_dense : m->n_params;
    return m->params;
}

herd_status herd_model_table_init_rows(herd_model *m, int param, int64_t lo, int64_t hi, float *dst, herd_error *err) {
    for (int i = 0; i < m->n_nodes; i++) {
        const node *n = &m->nodes[i];
        if (n->param[0] != param || !init_deferred(m, n)) continue;
        if (lo < 0 || hi < lo || hi > m->params_reg[param].info.shape[0]) break;
        n->kind->init_rows(m, n, m->table_seed, lo, hi, dst);
        return HERD_OK;
    }
    return herd_fail(err, HERD_EINTERNAL, "%s: rows [%lld, %lld) of '%s' are not rows of a table whose init is pending",
                     m->source, (long long)lo, (long long)hi, m->params_reg[param].info.name);
}

float *herdi_model_param_data(herd_model *m, int i) {
    herdi_model_tables_ready(m);
    const herd_param_info *p = &m->params_reg[i].info;
    return (p->trainable ? m->params : m->buffers) + p->offset;
}

float *herdi_node_param(herd_model *m, const node *n, int slot) {
    return n->param[slot] < 0 ? NULL : herdi_model_param_data(m, n->param[slot]);
}

static float *node_grad(herd_model *m, const node *n, int slot) {
    if (n->param[slot] < 0) return NULL;
    const herd_param_info *p = &m->params_reg[n->param[slot]].info;
    return p->trainable && !p->sparse ? m->grads + p->offset : NULL;
}

static sparse_grad *node_sparse_grad(herd_model *m, const node *n, int slot) {
    if (n->param[slot] < 0 || !m->params_reg[n->param[slot]].info.sparse) return NULL;
    for (int k = 0; k < m->n_sparse; k++)
        if (m->sparse[k].reg == n->param[slot]) return &m->sparse[k];
    return NULL;
}

float *herdi_layer_sparse_row(sparse_grad *g, int32_t id) {
    HERD_ASSERT(g->n < g->cap); /* the kind declared at most ids_per_sample rows a sample */
    g->ids[g->n] = id;
    g->coalesced = 0;
    return g->vals + g->n++ * g->dim;
}

/* A new gradient: no row gathered yet. */
static void sparse_reset(herd_model *m) {
    for (int k = 0; k < m->n_sparse; k++) m->sparse[k].n = 0, m->sparse[k].coalesced = 0;
}

/* Sorts the entries by (id, entry) and sums each id's rows in entry order: the same sums
 * whatever the chunking or thread count. The keys (id << 32 | entry) start in entry order, so a
 * stable LSD radix sort on the id's bytes (as many passes as the largest id has bytes) gives the
 * (id, entry) order: O(n + n dim) for n gathered entries. */
static void sparse_coalesce(sparse_grad *g) {
    uint32_t top = 0;
    for (int64_t e = 0; e < g->n; e++) {
        g->keys[e] = (uint64_t)(uint32_t)g->ids[e] << 32 | (uint64_t)e;
        top |= (uint32_t)g->ids[e];
    }
    uint64_t *from = g->keys, *to = g->keys + g->cap;
    for (int shift = 32; shift < 64 && (top >> (shift - 32)); shift += 8) {
        int64_t count[257] = {0};
        for (int64_t e = 0; e < g->n; e++) count[((from[e] >> shift) & 255) + 1]++;
        for (int b = 0; b < 256; b++) count[b + 1] += count[b];
        for (int64_t e = 0; e < g->n; e++) to[count[(from[e] >> shift) & 255]++] = from[e];
        uint64_t *t = from;
        from = to, to = t;
    }
    if (from != g->keys) memcpy(g->keys, from, (size_t)g->n * sizeof *g->keys);
    g->n_rows = 0;
    for (int64_t k = 0; k < g->n; k++) {
        int32_t id = (int32_t)(g->keys[k] >> 32);
        const float *v = g->vals + (int64_t)(uint32_t)g->keys[k] * g->dim;
        float *s;
        if (g->n_rows && g->rows[g->n_rows - 1] == id) {
            s = g->sums + (g->n_rows - 1) * g->dim;
            for (int64_t d = 0; d < g->dim; d++) s[d] += v[d];
        } else {
            g->rows[g->n_rows] = id;
            s = g->sums + g->n_rows++ * g->dim;
            memcpy(s, v, (size_t)g->dim * sizeof *s);
        }
    }
    g->coalesced = 1;
}

int herd_model_sparse_count(const herd_model *m) { return m->n_sparse; }

void herd_model_sparse_grad(herd_model *m, int k, herd_sparse_grad *out) {
    HERD_ASSERT(k >= 0 && k < m->n_sparse);
    sparse_grad *g = &m->sparse[k];
    if (!g->coalesced) sparse_coalesce(g);
    *out = (herd_sparse_grad){.param = g->reg, .rows = g->n_rows, .dim = g->dim, .ids = g->rows, .values = g->sums};
}

void herd_model_sparse_table(herd_model *m, int k, herd_sparse_table *out) {
    HERD_ASSERT(k >= 0 && k < m->n_sparse);
    const param_entry *e = &m->params_reg[m->sparse[k].reg];
    const model_input *in = e->ids_input >= 0 ? &m->inputs[e->ids_input] : NULL;
    *out = (herd_sparse_table){.param = m->sparse[k].reg, .rows = e->info.shape[0], .dim = e->info.shape[1],
                               .pad = e->pad, .input = e->ids_input, .ids = in ? (int32_t *)in->data : NULL,
                               .per_sample = in ? in->numel : 0};
}

int64_t herd_model_dense_params(const herd_model *m) { return m->n_dense; }

void herd_model_destroy(herd_model *m) {
    if (!m) return;
    herd_pool_destroy(m->pool);
    herd_arena_destroy(m->arena);
    herd_aligned_free(m->params);
    herd_aligned_free(m->grads);
    herd_aligned_free(m->buffers);
    free(m->input_norm);
    free(m->nodes);
    free(m->params_reg);
    free(m->sparse);
    free(m->grad_ready);
    free(m->scratch);
    free(m->live);
    free(m->live_order);
    free(m->live_placed);
    free(m->lane_out);
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
    if (m->input_norm && m->inputs[0].dtype == HERD_F32 && !m->input_planned) /* never a lent input */
        herd_normalize_samples(m->input, B, m->in_c, (int64_t)m->in_h * m->in_w, m->input_norm,
                               m->input_norm + m->in_c);
}

const herd_spec_train *herd_model_spec_train(const herd_model *m) { return &m->train; }

void herd_model_init_params(herd_model *m, uint64_t seed) {
    int defer = 0;
    herdi_model_params_changed(m);
    m->tables_pending = 0; /* a table pending from an earlier call takes this seed */
    for (int i = 0; i < m->n_nodes; i++)
        if (init_deferred(m, &m->nodes[i])) defer = 1;
        else if (m->nodes[i].kind->init) m->nodes[i].kind->init(m, &m->nodes[i], seed);
    m->tables_pending = defer, m->table_seed = seed;
    herd_rng_init(&m->dropout_rng, seed, 1);
}

/* The planning pass that fuses: a ReLU (conv, dense, add, batchnorm) or ReLU6 (conv, batchnorm) whose producer can
 * apply it and is read by nothing else runs inside that producer, on its buffers (the cpu backend applies it per
 * image while the image is in cache; a training batch norm as it stores each normalised value, and its backward
 * masks the gradient as it reads it). Views (flatten) share their input's buffers. That saves
 * two activation-sized buffers per pair, a zeroing pass and a pass over memory. An inference
 * plan also folds a batch norm (an eval_affine kind) into the conv it alone reads: the conv
 * applies its scale and shift to each sum as it stores it, then the ReLU after the batch norm
 * (the same multiply and add as the batch norm's own pass, so the same bits, one pass over
 * memory instead of three). A training plan keeps them apart: the batch norm then normalises
 * by the batch, and its backward reads the conv's output. */
/* The one node reading node i's output (consumers[i] == 1). */
static node *sole_reader(herd_model *m, int i) {
    for (int j = i + 1; j < m->n_nodes; j++)
        for (int k = 0; k < m->nodes[j].n_in; k++)
            if (m->nodes[j].in[k] == i) return &m->nodes[j];
    return NULL;
}

static void plan_fusions(herd_model *m) {
    int *consumers = m->scratch;
    memset(consumers, 0, (size_t)m->n_nodes * sizeof *consumers);
    for (int i = 0; i < m->n_nodes; i++) {
        node *n = &m->nodes[i];
        n->fused_act = HERD_ACT_NONE;
        n->alias = n->fused_affine = -1;
        for (int k = 0; k < n->n_in; k++)
            if (n->in[k] >= 0) consumers[n->in[k]]++;
    }
    for (int i = 0; i < m->n_nodes; i++) {
        node *n = &m->nodes[i];
        node *p = n->in[0] >= 0 ? &m->nodes[n->in[0]] : NULL;
        if ((n->kind->flags & LAYER_VIEW) && p) n->alias = n->in[0];
        int sole = p && consumers[n->in[0]] == 1;
        if (m->inference_only && sole && n->kind->eval_affine && (p->kind->flags & LAYER_FUSES_AFFINE) && p->alias < 0 &&
            p->fused_affine < 0 && p->fused_act == HERD_ACT_NONE && n->kind->eval_affine(n, NULL, NULL, NULL)) {
            p->fused_affine = i;
            n->alias = n->in[0];
            continue;
        }
        /* the node that applies an activation after p: p, or the producer p was folded into */
        node *q = p && p->alias >= 0 && m->nodes[p->alias].fused_affine == n->in[0] ? &m->nodes[p->alias] : p;
        herd_act act = herdi_layer_fusable_act(n);
        int can = act == HERD_ACT_RELU ? LAYER_FUSES_RELU : act == HERD_ACT_RELU6 ? LAYER_FUSES_RELU6 : 0;
        /* training: a ReLU read only by a max pool, of an input read only by it, moves after the
         * pool (LAYER_FUSES_RELU_BEFORE): its activation-sized output is no longer kept for its
         * backward (ResNet's stem: 32 MiB at batch 128 on 3x64x64), nor its pass run. A batch
         * norm before it leaves it to the pool (the batch norm's backward reads its input, so
         * fused it would keep its output alive too); a conv keeps it (it applies it per image). */
        node *r = act == HERD_ACT_RELU && sole && !m->inference_only && consumers[i] == 1 ? sole_reader(m, i) : NULL;
        int to_pool = r && (r->kind->flags & LAYER_FUSES_RELU_BEFORE) && r->fused_act == HERD_ACT_NONE;
        if (can && sole && (q->kind->flags & can) && q->alias < 0 && q->fused_act == HERD_ACT_NONE &&
            !(to_pool && (q->kind->flags & LAYER_BATCH_STATS))) {
            q->fused_act = act;
            n->alias = n->in[0];
            continue;
        }
        if (to_pool) {
            r->fused_act = act;
            n->alias = n->in[0];
        }
    }
}

/* The node whose buffers node i's are (i itself unless it is a view). */
static int buffer_owner(const herd_model *m, int i) {
    while (i >= 0 && m->nodes[i].alias >= 0) i = m->nodes[i].alias;
    return i;
}

/* For each buffer owner: the last node that reads it (or a view of it) in forward, and the
 * first backward that writes its gradient (the reader with the highest index that has a
 * backward of its own; -1 when none, as for the model's output). */
static int backward_reads(const node *n) {
    if (n->alias >= 0 || !n->kind->backward) return 0;
    return n->kind->backward_reads ? n->kind->backward_reads(n) : LAYER_READS_INPUT | LAYER_READS_OUTPUT;
}

/* ... and, for a training step, the last time its output is needed (schedule of plan_buffers):
 * its last reader's forward, its own backward if that reads its output, and the backward of
 * every reader that reads its input. */
static void plan_readers(herd_model *m) {
    int N = m->n_nodes;
    for (int i = 0; i < N; i++) {
        node *n = &m->nodes[i];
        n->last_reader = n->first_grad_writer = -1;
        n->out_death = backward_reads(n) & LAYER_READS_OUTPUT ? 2 * N - i : i;
    }
    for (int i = 0; i < N; i++) {
        const node *n = &m->nodes[i];
        if (n->alias >= 0) continue; /* a view runs nothing; its readers are counted below */
        for (int k = 0; k < n->n_in; k++) {
            int o = buffer_owner(m, n->in[k]);
            if (o < 0) continue;
            node *p = &m->nodes[o];
            if (i > p->last_reader) p->last_reader = i;
            if (i > p->out_death) p->out_death = i;
            if ((backward_reads(n) & LAYER_READS_INPUT) && 2 * N - i > p->out_death) p->out_death = 2 * N - i;
            if (n->kind->backward && i > p->first_grad_writer) p->first_grad_writer = i;
        }
    }
    /* gradients written whole by their only writer (layer_kind.sets_grad): not zeroed first */
    int *writers = m->scratch;
    memset(writers, 0, (size_t)N * sizeof *writers);
    for (int i = 0; i < N; i++) {
        const node *n = &m->nodes[i];
        m->nodes[i].grad_set = 0;
        for (int k = 0; k < n->n_in && n->alias < 0 && n->kind->backward; k++)
            if (buffer_owner(m, n->in[k]) >= 0) writers[buffer_owner(m, n->in[k])]++;
    }
    for (int i = 0; i < N; i++) {
        const node *n = &m->nodes[i];
        int o = n->n_in == 1 ? buffer_owner(m, n->in[0]) : -1;
        if (o >= 0 && n->alias < 0 && n->kind->sets_grad && writers[o] == 1 && n->kind->sets_grad(n))
            m->nodes[o].grad_set = 1;
    }
}

/* ---- memory planned by liveness ----
 * One step is a schedule: forward of node i at time i, the loss at N, backward of node i at
 * 2N - i. Each activation and gradient buffer lives from the time it is first written to the
 * time it is last read; buffers whose lives do not overlap share arena space (greedy by size,
 * lowest free offset first, as TFLite's arena planner). A training plan keeps an activation
 * as long as a forward or a backward reads it (each kind says what its backward reads: a
 * batch norm's output, read only by the ReLU after it, dies in the forward pass), and a
 * gradient from its first writer's backward (where it is zeroed) to its layer's backward; an
 * inference plan frees an activation after its last reader. The model's inputs and output
 * live through the whole step. */
typedef struct live_buf {
    float **dst;
    size_t bytes, offset;
    int birth, death;
    int workspace; /* a node's workspace for one call */
} live_buf;

static int cmp_live(const void *a, const void *b) {
    const live_buf *x = *(live_buf *const *)a, *y = *(live_buf *const *)b;
    if (x->bytes != y->bytes) return x->bytes < y->bytes ? 1 : -1;
    return x < y ? -1 : x > y;
}

static int cmp_offset(const void *a, const void *b) {
    const live_buf *x = *(live_buf *const *)a, *y = *(live_buf *const *)b;
    return x->offset < y->offset ? -1 : x->offset > y->offset;
}

/* Assigns offsets; returns the bytes the shared region needs. reuse = 0: no sharing. */
static size_t assign_offsets(live_buf *b, int n, live_buf **order, live_buf **placed, int reuse) {
    for (int i = 0; i < n; i++) order[i] = &b[i];
    qsort(order, (size_t)n, sizeof *order, cmp_live);
    size_t total = 0;
    for (int i = 0; i < n; i++) {
        live_buf *x = order[i];
        int np = 0;
        for (int j = 0; j < i; j++) /* the placed buffers alive at the same time */
            if (!reuse || (order[j]->birth <= x->death && x->birth <= order[j]->death)) placed[np++] = order[j];
        qsort(placed, (size_t)np, sizeof *placed, cmp_offset);
        size_t at = 0;
        for (int j = 0; j < np; j++) {
            if (placed[j]->offset >= at + x->bytes) break;
            if (placed[j]->offset + placed[j]->bytes > at) at = placed[j]->offset + placed[j]->bytes;
        }
        x->offset = at;
        if (at + x->bytes > total) total = at + x->bytes;
    }
    return total;
}

#define LIVE_MAX (4 * HERD_MAX_NODES + HERD_MAX_MODEL_INPUTS) /* out, dout, two workspaces a node */

struct live_buf *herdi_model_live_tables(struct live_buf ***order, struct live_buf ***placed) {
    live_buf *t = calloc(LIVE_MAX, sizeof *t);
    *order = calloc(LIVE_MAX, sizeof **order);
    *placed = calloc(LIVE_MAX, sizeof **placed);
    if (!t || !*order || !*placed) {
        free(t), free(*order), free(*placed);
        *order = *placed = NULL;
        return NULL;
    }
    return t;
}

static size_t align64(size_t n) { return (n + 63) & ~(size_t)63; }

/* Each node's workspace for a call of call_B rows in a plan for B (n->ws_floats), from its kind's
 * plan run against a planner arena; *most gets the largest. */
static herd_status node_workspaces(herd_model *m, int B, int call_B, int parts, size_t *most) {
    herd_arena *planner = herd_arena_create_planner();
    if (!planner) return HERD_ENOMEM;
    herd_status st = HERD_OK;
    *most = 0;
    for (int i = 0; i < m->n_nodes && !st; i++) {
        node *n = &m->nodes[i];
        layer_plan p = {.arena = planner, .B = B, .call_B = call_B, .threads = parts, .workspace_floats = 0,
                        .inference = m->inference_only};
        n->ws_floats = 0, n->ws_forward = n->ws_backward = NULL;
        if (n->alias >= 0 || !n->kind->plan) continue;
        st = n->kind->plan(n, &p);
        n->ws_floats = p.workspace_floats;
        if (n->ws_floats > *most) *most = n->ws_floats;
    }
    herd_arena_destroy(planner);
    return st;
}

static herd_status plan_lanes(herd_model *m, herd_arena *a, int B);

/* Carves every buffer out of `a` (with a planner arena it only measures). The activations and
 * gradients are one region laid out by liveness; saved buffers, probabilities and workspace
 * follow it. *plain gets the bytes that region would take without sharing. */
static herd_status plan_buffers(herd_model *m, herd_arena *a, int B, size_t *plain) {
    int N = m->n_nodes, nb = 0, training = !m->inference_only, end = 2 * N + 1;
    live_buf *bufs = m->live, **order = m->live_order, **placed = m->live_placed;
    /* fixed reduction parts each take a slot of workspace, however many threads run them */
    int parts = herd_pool_threads(m->pool);
    if (m->ex.fixed_parts > parts) parts = m->ex.fixed_parts;
    /* a training plan with reuse gives each node its own workspace, for its forward and for its
     * backward, in the region with the activations (the scratch of a call lives only during it);
     * otherwise every node shares one block after the region */
    int own_ws = training && m->memory_reuse;
    /* an inference-only model runs its nodes m->eval_chunk rows at a time (herd_model_forward_range) */
    int call_B = m->inference_only && m->eval_chunk > 0 && m->eval_chunk < B ? m->eval_chunk : B;
    size_t ws_max = 0;
    herd_status st = node_workspaces(m, B, call_B, parts, &ws_max);
    if (st) return st;
    for (int k = 0; k < m->n_inputs; k++)
        bufs[nb++] = (live_buf){&m->inputs[k].data, align64((size_t)B * (size_t)m->inputs[k].numel * 4), 0, 0, end, 0};
    int out_owner = buffer_owner(m, N - 1);
    for (int i = 0; i < N; i++) {
        node *n = &m->nodes[i];
        n->out = n->dout = NULL;
        if (n->alias >= 0) continue;
        size_t bytes = align64((size_t)B * (size_t)n->numel * sizeof(float));
        int last = i == out_owner ? end : training ? n->out_death : (n->last_reader > i ? n->last_reader : i);
        if (!(n->kind->flags & LAYER_VIEW)) bufs[nb++] = (live_buf){&n->out, bytes, 0, i, last, 0};
        if (training) {
            int born = n->first_grad_writer >= 0 ? 2 * N - n->first_grad_writer : N;
            bufs[nb++] = (live_buf){&n->dout, bytes, 0, born, 2 * N - i, 0};
        }
        if (own_ws && n->ws_floats) {
            size_t ws = align64(n->ws_floats * sizeof(float));
            bufs[nb++] = (live_buf){&n->ws_forward, ws, 0, i, i, 1};
            bufs[nb++] = (live_buf){&n->ws_backward, ws, 0, 2 * N - i, 2 * N - i, 1};
        }
    }
    if (plain) { /* without sharing every buffer sits after the others: the sum of their sizes (the
                  * workspace as one block, as a plan without reuse has it) */
        *plain = own_ws ? align64(ws_max * sizeof(float)) : 0;
        for (int k = 0; k < nb; k++) *plain += bufs[k].workspace ? 0 : bufs[k].bytes;
    }
    size_t region = assign_offsets(bufs, nb, order, placed, m->memory_reuse);
    char *base = herd_arena_alloc(a, region ? region : 64);
    if (!base) return HERD_ENOMEM;
    for (int k = 0; k < nb; k++) *bufs[k].dst = (float *)(base + bufs[k].offset);
    m->input = m->inputs[0].data;
    m->input_planned = NULL;
    m->activation_bytes = region;
    layer_plan plan = {.arena = a, .B = B, .call_B = call_B, .threads = parts, .workspace_floats = 0,
                       .inference = m->inference_only};
    for (int i = 0; i < N; i++) {
        node *n = &m->nodes[i];
        memset(n->saved, 0, sizeof n->saved);
        n->prep = NULL, n->prep_floats = 0, n->prep_tag = 0;
        if (n->alias >= 0) { /* a view: the same memory as its producer */
            n->out = m->nodes[n->alias].out;
            n->dout = m->nodes[n->alias].dout;
            continue;
        }
        if (n->kind->flags & LAYER_VIEW) n->out = m->inputs[-1 - n->in[0]].data; /* a view of a model input */
        if ((st = n->kind->plan ? n->kind->plan(n, &plan) : HERD_OK)) return st;
        n->affine = NULL; /* a folded batch norm's scale and shift, per channel of the output */
        if (n->fused_affine >= 0 && !(n->affine = herd_arena_floats(a, 2 * (size_t)n->dims[0]))) return HERD_ENOMEM;
    }
    if (!(m->probs = herd_arena_floats(a, (size_t)B * (size_t)herd_model_output_size(m)))) return HERD_ENOMEM;
    for (int k = 0; k < m->n_sparse; k++) { /* the row-sparse gradients of the planned batch */
        sparse_grad *g = &m->sparse[k];
        g->cap = (int64_t)B * m->params_reg[g->reg].ids_per_sample;
        g->n = g->n_rows = 0;
        size_t cap = (size_t)(g->cap ? g->cap : 1), vals = cap * (size_t)g->dim;
        if (!(g->ids = herd_arena_alloc(a, cap * sizeof *g->ids)) || !(g->vals = herd_arena_floats(a, vals)) ||
            !(g->keys = herd_arena_alloc(a, 2 * cap * sizeof *g->keys)) ||
            !(g->rows = herd_arena_alloc(a, cap * sizeof *g->rows)) || !(g->sums = herd_arena_floats(a, vals)))
            return HERD_ENOMEM;
    }
    m->packed = NULL; /* several inputs: batches arrive packed, one sample's inputs after the other */
    if (m->n_inputs > 1 && !(m->packed = herd_arena_floats(a, (size_t)B * (size_t)herd_model_input_slots(m))))
        return HERD_ENOMEM;
    m->ex.workspace = NULL, m->ex.workspace_floats = 0;
    if (!own_ws && ws_max && !(m->ex.workspace = herd_arena_floats(a, ws_max))) return HERD_ENOMEM;
    if (!own_ws) m->ex.workspace_floats = ws_max;
    return plan_lanes(m, a, B);
}

/* Inference lanes: with several threads and a batch of at least two chunks, each pool thread
 * runs whole chunks through the network (herd_model_forward), so no op hands off to the pool
 * and waits for the other threads at its end: a chunk's activations stay in its core's caches.
 * Each lane gets the activations of one chunk, planned by liveness as the batch's (a lane's
 * chunk is at a layer of its own while the other lanes are at others, so the batch's shared
 * buffers cannot hold them), and a workspace of the batch's size (lane 0 uses the batch's).
 * The model's inputs and output stay the planned buffers, the lanes writing their own rows. */
static herd_status plan_lanes(herd_model *m, herd_arena *a, int B) {
    int N = m->n_nodes, T = herd_pool_threads(m->pool), chunk = m->eval_chunk;
    m->lanes = 0;
    m->lane_ws = NULL;
    if (!m->inference_only || T < 2 || !m->lane_out || chunk < 1 || B < 2 * chunk) return HERD_OK;
    live_buf *bufs = m->live, **order = m->live_order, **placed = m->live_placed;
    int out_owner = buffer_owner(m, N - 1);
    for (int t = 0; t < T; t++) {
        float **tab = m->lane_out + (size_t)t * N;
        int nb = 0;
        for (int i = 0; i < N; i++) {
            node *n = &m->nodes[i];
            tab[i] = NULL;
            if (n->alias >= 0 || (n->kind->flags & LAYER_VIEW) || i == out_owner) continue;
            size_t bytes = align64((size_t)chunk * (size_t)n->numel * sizeof(float));
            bufs[nb++] = (live_buf){&tab[i], bytes, 0, i, n->last_reader > i ? n->last_reader : i, 0};
        }
        size_t region = assign_offsets(bufs, nb, order, placed, m->memory_reuse);
        char *base = herd_arena_alloc(a, region ? region : 64);
        if (!base) return HERD_ENOMEM;
        for (int k = 0; k < nb; k++) *bufs[k].dst = (float *)(base + bufs[k].offset);
        for (int i = 0; i < N; i++)
            if (m->nodes[i].alias >= 0) tab[i] = tab[buffer_owner(m, i)];
    }
    size_t ws = m->ex.workspace_floats;
    if (ws && !(m->lane_ws = herd_arena_floats(a, (size_t)(T - 1) * ws))) return HERD_ENOMEM;
    m->lanes = T;
    return HERD_OK;
}

/* Bytes plan_buffers takes for batch B (measured with a planner arena). */
static herd_status planned_bytes(herd_model *m, int B, size_t *bytes) {
    herd_arena *planner = herd_arena_create_planner();
    if (!planner) return HERD_ENOMEM;
    herd_status st = plan_buffers(m, planner, B, NULL);
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
        if (m->nodes[i].kind->flags & LAYER_BATCH_STATS) return 0;
    const char *knob = getenv("HERD_TRAIN_CHUNK"); /* tuning knob: rows per chunk, 0 = whole batch */
    if (knob) return atoi(knob) > 0 ? atoi(knob) : 0;
    size_t rows = per_sample ? TRAIN_CHUNK_BYTES / per_sample : 0;
    if (rows > (1u << 20)) rows = 1u << 20;
    return rows < 8 ? 8 : (int)(rows / 8 * 8);
}

/* Rows per inference chunk: as many as keep the largest activation of a chunk within
 * EVAL_CHUNK_BYTES (a quarter of the dev VM's 32 MB L3, which also holds the layer's input and
 * weights), but enough that a chunk's activations outweigh its pass over the weights (each
 * chunk reads every weight again: ResNet-18's 46 MB do not stay in L3), and at least one row per
 * thread (each op of a chunk is one hand-off to the pool: with a row per thread the convs give
 * each thread its own image, where one row in all would split every product across the threads,
 * a hand-off per op per image), at most EVAL_CHUNK_MAX. MobileNetV2 at 224x224 (4.8 MB a sample
 * after its first expansion, 14 MB of weights) runs 2 images at a time with 2 threads; small
 * models keep the 32 rows they always had. */
#define EVAL_CHUNK_BYTES (8u << 20)
#define EVAL_CHUNK_MAX 32

static int eval_chunk(const herd_model *m, int threads) {
    size_t largest = 1, all = 1;
    for (int i = 0; i < m->n_nodes; i++) {
        size_t bytes = (size_t)m->nodes[i].numel * sizeof(float);
        if (m->nodes[i].alias >= 0) continue;
        all += bytes;
        if (bytes > largest) largest = bytes;
    }
    size_t rows = EVAL_CHUNK_BYTES / largest, weights = (size_t)m->n_params * sizeof(float);
    if (rows < (weights + all - 1) / all) rows = (weights + all - 1) / all;
    if (rows < (size_t)threads) rows = (size_t)threads;
    return rows < 1 ? 1 : rows > EVAL_CHUNK_MAX ? EVAL_CHUNK_MAX : (int)rows;
}

herd_status herd_model_prepare(herd_model *m, const char *backend, int max_batch, int threads, herd_error *err) {
    const herd_backend *be = herd_backend_find(backend);
    if (!be) return herd_fail(err, HERD_EARG, "unknown backend '%s' (expected ref or cpu)", backend);
    if (m->bf16) {
        if (be != &herd_backend_cpu)
            return herd_fail(err, HERD_EARG, "precision bf16 runs on the cpu backend, not %s", be->name);
        be = herd_backend_cpu_bf16();
    }
    const char *unavailable = be->unavailable ? be->unavailable() : NULL;
    if (unavailable) return herd_fail(err, HERD_EARG, "%s", unavailable);
    if (max_batch < 1 || max_batch > (1 << 20))
        return herd_fail(err, HERD_EARG, "batch size %d is out of range 1..%d", max_batch, 1 << 20);
    herd_pool_destroy(m->pool);
    m->pool = NULL;
    herd_arena_destroy(m->arena);
    m->arena = NULL;
    herd_status st = herd_pool_create(&m->pool, threads, err);
    if (st) return st;
    herd_backend_set_threads(threads);
    free(m->lane_out);
    m->lane_out = NULL;
    m->lanes = 0, m->lanes_warm = 0;
    if (m->inference_only && threads > 1 && !(m->lane_out = calloc((size_t)threads * (size_t)m->n_nodes, sizeof(float *))))
        return herd_fail(err, HERD_ENOMEM, "%s: out of memory planning %d threads", m->source, threads);
    m->be = be;
    m->ex.pool = m->pool;
    m->ex.fixed_parts = m->fixed_reduction ? HERD_FIXED_PARTS : 0;
    m->ex.inference = m->inference_only;
    m->notes[0] = 0;
    for (int i = 0; i < m->n_nodes; i++) {
        node *n = &m->nodes[i];
        n->be = be;
        const char *why;
        /* down the fallback chain (cpu-bf16 -> cpu -> ref) to a backend that runs the layer */
        while (n->be != &herd_backend_ref && (why = n->kind->unsupported ? n->kind->unsupported(n, n->be) : NULL)) {
            const herd_backend *next = n->be->fallback ? n->be->fallback : &herd_backend_ref;
            size_t len = strlen(m->notes);
            snprintf(m->notes + len, sizeof m->notes - len, "%s: %s backend cannot run it (%s); using %s\n", n->name,
                     n->be->name, why, next->name);
            n->be = next;
        }
    }
    plan_fusions(m);
    plan_readers(m);
    /* the training chunk comes from the bytes a sample takes with every buffer on its own, as
     * before memory was shared: the chunk size sets the order gradients are summed in */
    m->eval_chunk = eval_chunk(m, herd_pool_threads(m->pool)); /* before planning: the lanes' buffers hold a chunk */
    size_t need = 0, one = 0, two = 0;
    int reuse = m->memory_reuse;
    m->memory_reuse = 0;
    m->eval_chunk = eval_chunk(m, herd_pool_threads(m->pool));
    st = planned_bytes(m, 1, &one) || planned_bytes(m, 2, &two) ? HERD_ENOMEM : HERD_OK;
    m->memory_reuse = reuse;
    if (st || planned_bytes(m, max_batch, &need))
        return herd_fail(err, HERD_ENOMEM, "%s: memory plan overflows", m->source);
    m->train_chunk = train_chunk(m, two - one);
    if ((st = herd_arena_create(&m->arena, need, err)))
        return herd_fail_prefix(err, "%s: planning activations for batch %d", m->source, max_batch);
    if (plan_buffers(m, m->arena, max_batch, &m->activation_bytes_plain) != HERD_OK)
        return herd_fail(err, HERD_EINTERNAL, "%s: the memory plan of %zu bytes does not fit its own arena", m->source,
                         need);
    m->max_batch = max_batch;
    return HERD_OK;
}

const char *herd_model_notes(const herd_model *m) { return m->notes; }
const char *herd_model_import_note(const herd_model *m) { return m->import_note; }

void herd_model_input_shape(const herd_model *m, int *c, int *h, int *w) {
    *c = m->in_c, *h = m->in_h, *w = m->in_w;
}

int herd_model_input_count(const herd_model *m) { return m->n_inputs; }

herd_tensor herd_model_input_desc(const herd_model *m, int k, const char **name) {
    HERD_ASSERT(k >= 0 && k < m->n_inputs);
    const model_input *in = &m->inputs[k];
    if (name) *name = in->name;
    return herd_tensor_make(in->dtype, in->ndim, in->dims, in->data);
}

int64_t herd_model_input_slots(const herd_model *m) {
    int64_t n = 0;
    for (int k = 0; k < m->n_inputs; k++) n += m->inputs[k].numel;
    return n;
}

int herd_model_use_input(herd_model *m, const float *x) {
    if (!x) { /* back to the planned buffer */
        if (m->input_planned) m->inputs[0].data = m->input = m->input_planned, m->input_planned = NULL;
        return 1;
    }
    /* only where no layer keeps the planned address: one f32 input that no layer views (a view's
     * output is fixed when planned); layers never write their inputs */
    if (m->n_inputs != 1 || m->inputs[0].dtype != HERD_F32) return 0;
    for (int i = 0; i < m->n_nodes; i++)
        if ((m->nodes[i].kind->flags & LAYER_VIEW) && m->nodes[i].in[0] < 0) return 0;
    if (!m->input_planned) m->input_planned = m->inputs[0].data;
    m->inputs[0].data = m->input = (float *)x; /* read only: the conditions above */
    return 1;
}

float *herd_model_batch_buffer(herd_model *m) {
    return m->n_inputs > 1 ? m->packed : m->input_planned ? m->input_planned : m->input;
}

void herd_model_set_inputs(herd_model *m, int64_t row0, int B) {
    if (m->n_inputs < 2) return;
    int64_t slots = herd_model_input_slots(m), at = 0;
    const float *packed = m->packed + row0 * slots;
    for (int k = 0; k < m->n_inputs; k++) { /* int32 ids travel as their 4 bytes, copied, never converted */
        const model_input *in = &m->inputs[k];
        for (int b = 0; b < B; b++)
            memcpy(in->data + (row0 + b) * in->numel, packed + (int64_t)b * slots + at, (size_t)in->numel * 4);
        at += in->numel;
    }
}

herd_status herd_model_check_data(const herd_model *m, const herd_dataset *ds, herd_error *err) {
    int nf = herd_dataset_field_count(ds);
    if (nf != m->n_inputs)
        return herd_fail(err, HERD_ESHAPE, "%s: samples have %d field%s but the model has %d input%s", ds->source, nf,
                         nf == 1 ? "" : "s", m->n_inputs, m->n_inputs == 1 ? "" : "s");
    for (int k = 0; k < nf; k++) {
        const herd_tensor *f = herd_dataset_field(ds, k);
        const model_input *in = &m->inputs[k];
        herd_tensor want = herd_tensor_make(in->dtype, in->ndim, in->dims, NULL);
        int64_t h = in->ndim == 3 ? in->dims[1] : 1, w = in->ndim == 3 ? in->dims[2] : 1;
        int fits = herd_tensor_numel(f) == in->numel &&
                   (f->ndim != 3 || (f->dims[0] == in->dims[0] && f->dims[1] == h && f->dims[2] == w));
        int dtype_ok = in->dtype == HERD_I32 ? f->dtype == HERD_I32 : herd_dtype_to_f32_ok(f->dtype);
        if (fits && dtype_ok) continue;
        char fs[96], ms[96];
        herd_tensor_shape_str(f, fs, sizeof fs);
        herd_tensor_shape_str(&want, ms, sizeof ms);
        if (nf == 1 && in->dtype == HERD_F32) /* the messages herd has always given */
            return herd_data_check_input(f, ds->source, m->in_c, m->in_h, m->in_w, err);
        return herd_fail(err, HERD_ESHAPE, "%s: field %d of the samples is %s %s but the model's input '%s' is %s %s",
                         ds->source, k + 1, herd_dtype_name(f->dtype), fs, in->name, herd_dtype_name(in->dtype), ms);
    }
    return HERD_OK;
}

int herd_model_max_batch(const herd_model *m) { return m->arena ? m->max_batch : 0; }

int herd_model_output_size(const herd_model *m) { return (int)m->nodes[m->n_nodes - 1].numel; }
float *herd_model_input(herd_model *m) { return m->input; }
const float *herd_model_output(const herd_model *m) { return m->nodes[m->n_nodes - 1].out; }

/* Rows [row0, row0 + B) of a buffer of `per_sample` floats a row: micro-batches of a pipeline
 * stage live side by side in the same planned buffers. */
static float *rows(float *base, int64_t per_sample, int64_t row0) { return base ? base + row0 * per_sample : NULL; }

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

/* Everything node n's forward or backward sees for rows [row0, row0 + B). */
/* The exec a call of node n runs with: base (the model's, or an inference lane's), with the node's
 * own prepared weights and, in a training plan, its own workspace for its forward or (backward)
 * its backward. */
static const herd_exec *node_exec_on(herd_model *m, const herd_exec *base, node *n, int backward, herd_exec *own) {
    if (!n->prep && !n->ws_forward) return base;
    *own = *base;
    if (n->prep) { /* the node's own prepared weights, stale once the parameters may have changed */
        if (n->prep_gen != m->params_gen) n->prep_tag = 0, n->prep_gen = m->params_gen;
        own->prep = n->prep, own->prep_floats = n->prep_floats, own->prep_tag = &n->prep_tag;
    }
    if (n->ws_forward) own->workspace = backward ? n->ws_backward : n->ws_forward, own->workspace_floats = n->ws_floats;
    return own;
}

const herd_exec *herdi_node_exec(herd_model *m, node *n, int backward, herd_exec *own) {
    return node_exec_on(m, &m->ex, n, backward, own);
}

static void make_call(herd_model *m, node *n, int64_t row0, int B, int training, int backward, layer_call *c) {
    c->ex = herdi_node_exec(m, n, backward, &c->exn);
    c->be = n->be;
    c->n = n;
    c->B = B;
    c->row0 = row0;
    c->training = training;
    c->rng = &m->dropout_rng;
    for (int k = 0; k < n->n_in; k++) {
        int j = n->in[k];
        if (j >= 0) {
            const node *p = &m->nodes[j];
            c->in[k] = rows(p->out, p->numel, row0);
            c->din[k] = rows(p->dout, p->numel, row0);
            c->in_dims[k] = p->dims;
            c->in_ndim[k] = p->ndim;
        } else {
            const model_input *p = &m->inputs[-1 - j];
            c->in[k] = rows(p->data, p->numel, row0);
            c->din[k] = NULL; /* nothing needs the gradient of the data */
            c->in_dims[k] = p->dims;
            c->in_ndim[k] = p->ndim;
        }
    }
    const node *o = n->n_in == 1 && buffer_owner(m, n->in[0]) >= 0 ? &m->nodes[buffer_owner(m, n->in[0])] : NULL;
    c->din_set = o && o->grad_set;
    c->din_act = c->din_set ? o->fused_act : HERD_ACT_NONE;
    c->out = rows(n->out, n->numel, row0);
    c->dout = rows(n->dout, n->numel, row0);
    c->scale = c->shift = NULL;
    for (int s = 0; s < LAYER_MAX_SLOTS; s++) {
        c->w[s] = herdi_node_param(m, n, s);
        c->dw[s] = node_grad(m, n, s);
        c->sg[s] = node_sparse_grad(m, n, s);
    }
}

/* A folded batch norm's scale and shift into its conv's n->affine, from its parameters as they are now. */
static void fold_affine(herd_model *m, node *n) {
    node *f = &m->nodes[n->fused_affine];
    layer_call fc;
    make_call(m, f, 0, 1, 0, 0, &fc);
    f->kind->eval_affine(f, &fc, n->affine, n->affine + n->dims[0]);
}

/* Rows [row0, row0 + B) through every layer on lane t's buffers and exec (plan_lanes); the
 * folded affines are computed. Profile times are lane 0's. */
static herd_status lane_chunk(herd_model *m, int t, const herd_exec *ex, int64_t row0, int B, herd_error *err) {
    float **tab = m->lane_out + (size_t)t * m->n_nodes;
    for (int i = 0; i < m->n_nodes; i++) {
        node *n = &m->nodes[i];
        if (n->alias >= 0 || !n->kind->forward) continue;
        double t0 = t == 0 && (m->profile || m->trace) ? herd_now() : 0;
        layer_call c;
        make_call(m, n, row0, B, 0, 0, &c);
        c.ex = node_exec_on(m, ex, n, 0, &c.exn);
        for (int k = 0; k < n->n_in; k++)
            if (n->in[k] >= 0 && tab[n->in[k]]) c.in[k] = tab[n->in[k]], c.din[k] = NULL;
        if (tab[i]) c.out = tab[i], c.dout = NULL;
        herd_status st = n->kind->check ? n->kind->check(&c, err) : HERD_OK;
        if (st) return st;
        if (n->fused_affine >= 0) c.scale = n->affine, c.shift = n->affine + n->dims[0];
        n->kind->forward(&c);
        if (t == 0 && m->profile) n->t_forward += herd_now() - t0;
        if (t == 0 && m->trace) herd_trace_add(m->trace, n->name, "forward", HERD_TRACE_COMPUTE, t0, herd_now());
    }
    return HERD_OK;
}

typedef struct lane_job {
    herd_model *m;
    int64_t B;
    atomic_int_fast64_t next; /* the first row of the next chunk to take */
    atomic_int failed;
    herd_status st;
    herd_error *err;
} lane_job;

static void lane_run(void *ctx, int64_t t0, int64_t t1, int thread) {
    (void)t1, (void)thread;
    lane_job *j = ctx;
    herd_model *m = j->m;
    const int t = (int)t0, chunk = m->eval_chunk;
    herd_exec ex = m->ex; /* the model's, without the pool, on the lane's own workspace */
    ex.pool = NULL;
    if (t > 0) ex.workspace = m->lane_ws + (size_t)(t - 1) * m->ex.workspace_floats;
    herd_error err = {0};
    for (;;) {
        int64_t r = atomic_fetch_add(&j->next, chunk);
        if (r >= j->B || atomic_load(&j->failed)) break;
        herd_status st = lane_chunk(m, t, &ex, r, (int)(j->B - r < chunk ? j->B - r : chunk), &err);
        if (st && !atomic_exchange(&j->failed, 1)) { /* the first failure's message */
            j->st = st;
            if (j->err) *j->err = err;
        }
    }
}

/* Rows [r, B) a chunk at a time, each pool thread taking the next chunk when it has finished one
 * (the chunks are the same as without lanes: every row's outputs keep their bits). */
static herd_status forward_lanes(herd_model *m, int64_t r, int B, herd_error *err) {
    for (int i = 0; i < m->n_nodes; i++) /* once, before the lanes share them */
        if (m->nodes[i].alias < 0 && m->nodes[i].kind->forward && m->nodes[i].fused_affine >= 0) fold_affine(m, &m->nodes[i]);
    lane_job j = {.m = m, .B = B, .st = HERD_OK, .err = err};
    atomic_init(&j.next, r);
    atomic_init(&j.failed, 0);
    herd_pool_for(m->pool, m->lanes, lane_run, &j);
    return j.st;
}

/* Inference with lanes (plan_lanes): the chunks of the batch handed out to the pool threads, each
 * running whole chunks; otherwise herd_model_forward_range, which runs inference a chunk at a time. */
herd_status herd_model_forward(herd_model *m, int B, int training, herd_error *err) {
    int chunk = m->eval_chunk, last = m->n_nodes - 1;
    if (training || !m->lanes || B < 2 * chunk || m->params_hook)
        return herd_model_forward_range(m, 0, last, 0, B, training, err);
    herd_status st = check_range(m, 0, last, 0, B, err);
    if (st) return st;
    int r = 0;
    herdi_pool_hot(m->pool, 1);
    if (m->lanes_warm != m->params_gen + 1) { /* a pooled chunk first: it fills the nodes' prep */
        st = herd_model_forward_range(m, 0, last, 0, chunk, 0, err);
        if (!st) m->lanes_warm = m->params_gen + 1, r = chunk;
    }
    if (!st) st = forward_lanes(m, r, B, err);
    herdi_pool_hot(m->pool, -1);
    return st;
}

/* The span of the dense parameters node n reads, [*lo, *hi); empty when none. */
static void node_params_span(const herd_model *m, const node *n, int64_t *lo, int64_t *hi) {
    *lo = m->n_dense, *hi = 0;
    for (int s = 0; s < LAYER_MAX_SLOTS; s++) {
        const herd_param_info *p = n->param[s] >= 0 ? &m->params_reg[n->param[s]].info : NULL;
        if (!p || !p->trainable || p->sparse) continue;
        if (p->offset < *lo) *lo = p->offset;
        if (p->offset + p->numel > *hi) *hi = p->offset + p->numel;
    }
}

static herd_status forward_nodes(herd_model *m, int first, int last, int64_t row0, int B, int training,
                                 herd_error *err);

herd_status herd_model_forward_range(herd_model *m, int first, int last, int64_t row0, int B, int training,
                                     herd_error *err) {
    herd_status st = check_range(m, first, last, row0, B, err);
    if (st) return st;
    herdi_pool_hot(m->pool, 1);
    /* Inference runs the rows m->eval_chunk at a time: every eval op is per sample, and each layer
     * then reads its input while the previous layer's output is still in L2/L3 (at batch 1000
     * conv1's output alone is 100 MB, a round trip through DRAM per layer). Rows keep their
     * planned places. */
    int chunk = !training && m->eval_chunk > 0 ? m->eval_chunk : B;
    for (int r = 0; r < B && !st; r += chunk)
        st = forward_nodes(m, first, last, row0 + r, B - r < chunk ? B - r : chunk, training, err);
    herdi_pool_hot(m->pool, -1);
    return st;
}

static herd_status forward_nodes(herd_model *m, int first, int last, int64_t row0, int B, int training,
                                 herd_error *err) {
    herd_status st;
    for (int i = first; i <= last; i++) {
        node *n = &m->nodes[i];
        if (n->alias >= 0 || !n->kind->forward) continue; /* a view, or a ReLU its producer applies */
        double t0 = m->profile || m->trace ? herd_now() : 0;
        layer_call c;
        make_call(m, n, row0, B, training, 0, &c);
        if (n->kind->check && (st = n->kind->check(&c, err))) return st;
        if (n->fused_affine >= 0) { /* the folded batch norm's scale and shift from its parameters as they are now */
            if (training)
                return herd_fail(err, HERD_EARG, "%s: the model was prepared for inference only ('%s' is folded into '%s')",
                                 m->source, m->nodes[n->fused_affine].name, n->name);
            fold_affine(m, n);
            c.scale = n->affine, c.shift = n->affine + n->dims[0];
        }
        if (m->params_hook) {
            int64_t lo, hi;
            node_params_span(m, n, &lo, &hi);
            if (hi > lo) m->params_hook(m->params_hook_user, lo, hi);
        }
        n->kind->forward(&c);
        if (m->profile) n->t_forward += herd_now() - t0;
        if (m->trace) herd_trace_add(m->trace, n->name, "forward", HERD_TRACE_COMPUTE, t0, herd_now());
    }
    return HERD_OK;
}

/* ---- the loss node ---- */

static void make_loss_call(const herd_model *m, int64_t row0, const void *targets, int B, loss_call *c) {
    const node *last = &m->nodes[m->n_nodes - 1];
    c->cfg = &m->loss;
    c->K = last->dims[last->ndim - 1];
    c->P = last->numel / c->K;
    c->out = last->out + row0 * last->numel;
    c->scratch = m->probs + row0 * last->numel;
    c->target = targets;
    c->B = B;
}

herd_status herd_model_set_target(herd_model *m, const herd_tensor *y, const char *source, herd_error *err) {
    const node *last = &m->nodes[m->n_nodes - 1];
    model_loss cfg = m->loss;
    char msg[256], ys[96], os[64];
    if (y->ndim < 0 || y->ndim > 4 || !m->loss.kind->check(&cfg, last->ndim, last->dims, y, msg, sizeof msg))
        return herd_fail(err, HERD_ESHAPE, "%s: targets are %s %s, but the model's output is %s and %s",
                         source ? source : m->source, herd_dtype_name(y->dtype), herd_tensor_shape_str(y, ys, sizeof ys),
                         herdi_lb_shape_str(last->ndim, last->dims, os, sizeof os), msg);
    cfg.target = herd_tensor_make(y->dtype, y->ndim, y->dims, NULL);
    m->loss = cfg;
    return HERD_OK;
}

const herd_tensor *herd_model_target(const herd_model *m) { return &m->loss.target; }
size_t herd_model_target_bytes(const herd_model *m) { return herd_tensor_bytes(&m->loss.target); }
int herd_model_metrics(const herd_model *m) {
    return m->loss.classes ? m->loss.kind->metrics : m->loss.kind->value_metrics;
}

void herd_model_predictions(const herd_model *m, int B, float *out) {
    loss_call c;
    make_loss_call(m, 0, NULL, B, &c);
    m->loss.kind->predict(&c, out);
}

int herd_model_predicts_classes(const herd_model *m) {
    const node *last = &m->nodes[m->n_nodes - 1];
    return last->ndim == 1 && (m->loss.kind == &herdi_loss_xent || (m->loss.kind == &herdi_loss_bce && last->numel == 1));
}

float herd_model_loss(herd_model *m, const void *targets, int B, herd_metrics *acc) {
    return herd_model_loss_rows(m, 0, targets, B, acc);
}

int64_t herd_model_loss_units(const herd_model *m, const void *targets, int B) {
    loss_call c;
    make_loss_call(m, 0, targets, B, &c);
    return m->loss.kind->units(&c);
}

float herd_model_loss_rows(herd_model *m, int64_t row0, const void *targets, int B, herd_metrics *acc) {
    loss_call c;
    make_loss_call(m, row0, targets, B, &c);
    char msg[256];
    if (m->loss.kind->bad_target(&c, msg, sizeof msg) >= 0) return NAN; /* nothing is read or written out of bounds */
    float loss = m->loss.kind->forward(&c);
    if (acc) {
        double units = (double)m->loss.kind->units(&c);
        acc->loss_sum += (double)loss * units;
        acc->loss_units += units;
        acc->samples += B;
        m->loss.kind->measure(&c, acc);
    }
    return loss;
}

herd_status herd_model_forward_backward(herd_model *m, const void *targets, int B, float grad_scale, float *loss,
                                        herd_metrics *acc, herd_error *err) {
    int chunk = m->train_chunk > 0 && m->train_chunk < B ? m->train_chunk : B, last = m->n_nodes - 1;
    if (m->inference_only) return herd_fail(err, HERD_EARG, "%s: the model was prepared for inference only", m->source);
    loss_call all;
    make_loss_call(m, 0, targets, B, &all);
    char msg[256];
    if (m->loss.kind->bad_target(&all, msg, sizeof msg) >= 0) return herd_fail(err, HERD_EARG, "%s: %s", m->source, msg);
    /* the batch's loss is the mean over its units (samples, or positions counted): each chunk's
     * mean weighs units/total, so chunking does not change the gradient */
    int64_t total = m->loss.kind->units(&all);
    size_t tb = herd_model_target_bytes(m);
    herd_grad_ready_fn hook = m->grad_hook;
    double loss_sum = 0;
    herdi_pool_hot(m->pool, 1);
    memset(m->grads, 0, (size_t)m->n_dense * sizeof(float));
    sparse_reset(m);
    for (int r = 0; r < B; r += chunk) {
        int n = B - r < chunk ? B - r : chunk;
        const void *rows = (const char *)targets + (size_t)r * tb;
        herd_status st = herd_model_forward_range(m, 0, last, r, n, 1, err);
        if (st) {
            m->grad_hook = hook;
            herdi_pool_hot(m->pool, -1);
            return st;
        }
        int64_t units = herd_model_loss_units(m, rows, n);
        loss_sum += (double)herd_model_loss_rows(m, r, rows, n, acc) * (double)units;
        herd_model_zero_dout_rows(m, 0, last, r, n);
        if (units > 0) herd_model_seed_loss_grad(m, r, rows, n, grad_scale * (float)units / (float)total);
        m->grad_hook = r + n < B ? NULL : hook; /* gradients are final only in the last chunk */
        herd_model_backward_range(m, 0, last, r, n);
    }
    herdi_pool_hot(m->pool, -1);
    m->grad_hook = hook;
    *loss = total > 0 ? (float)(loss_sum / (double)total) : 0.0f;
    return HERD_OK;
}

int herd_model_train_chunk(const herd_model *m) { return m->train_chunk; }

void herd_model_backward(herd_model *m, const void *targets, int B, float grad_scale) {
    memset(m->grads, 0, (size_t)m->n_dense * sizeof(float));
    sparse_reset(m);
    herd_model_zero_dout_rows(m, 0, m->n_nodes - 1, 0, B);
    herd_model_seed_loss_grad(m, 0, targets, B, grad_scale);
    herd_model_backward_range(m, 0, m->n_nodes - 1, 0, B);
}

static void zero_rows(node *n, int64_t row0, int B) {
    if (n->dout) memset(n->dout + row0 * n->numel, 0, (size_t)B * (size_t)n->numel * sizeof(float));
}

void herd_model_zero_dout_rows(herd_model *m, int first, int last, int64_t row0, int B) {
    /* gradients no backward in the range writes first: what the caller seeds (the output's, a
     * stage's last layer's) and those of layers nothing reads; the rest are zeroed by the
     * backward that writes them first (their buffers may hold other data until then) */
    for (int i = first; i <= last; i++) {
        node *n = &m->nodes[i];
        if (n->alias < 0 && (n->first_grad_writer < 0 || n->first_grad_writer > last))
            zero_rows(n, row0, B); /* grad_set included: its writer is past the range (a later pipeline stage) */
    }
}

void herd_model_seed_loss_grad(herd_model *m, int64_t row0, const void *targets, int B, float grad_scale) {
    node *last = &m->nodes[m->n_nodes - 1];
    loss_call c;
    make_loss_call(m, row0, targets, B, &c);
    char msg[256];
    if (m->loss.kind->bad_target(&c, msg, sizeof msg) >= 0) return; /* herd_model_loss_rows said NaN */
    m->loss.kind->backward(&c, last->dout ? last->dout + row0 * last->numel : NULL, grad_scale);
}

void herd_model_backward_range(herd_model *m, int first, int last, int64_t row0, int B) {
    HERD_ASSERT(!m->inference_only); /* no gradient buffers were planned */
    herdi_pool_hot(m->pool, 1);
    for (int i = last; i >= first; i--) {
        node *n = &m->nodes[i];
        for (int k = 0; k < n->n_in; k++) { /* the gradients this backward is the first to write */
            int o = buffer_owner(m, n->in[k]);
            if (o >= 0 && m->nodes[o].first_grad_writer == i && !m->nodes[o].grad_set) zero_rows(&m->nodes[o], row0, B);
        }
        if (n->alias < 0 && n->kind->backward) {
            double t0 = m->profile || m->trace ? herd_now() : 0;
            layer_call c;
            make_call(m, n, row0, B, 1, 1, &c);
            n->kind->backward(&c);
            if (m->profile) n->t_backward += herd_now() - t0;
            if (m->trace) herd_trace_add(m->trace, n->name, "backward", HERD_TRACE_COMPUTE, t0, herd_now());
        }
        if (m->grad_hook && m->grad_ready[i] != (i + 1 < m->n_nodes ? m->grad_ready[i + 1] : m->n_dense))
            m->grad_hook(m->grad_hook_user, m->grad_ready[i]);
    }
    herdi_pool_hot(m->pool, -1);
}

int herd_model_layer_inputs(const herd_model *m, int i, int *inputs, int max) {
    const node *n = &m->nodes[i];
    for (int k = 0; k < n->n_in && k < max; k++) inputs[k] = n->in[k];
    return n->n_in;
}

void herd_model_layer_param_range(const herd_model *m, int first, int last, int64_t *plo, int64_t *phi, int64_t *blo,
                                  int64_t *bhi) {
    *plo = *blo = INT64_MAX, *phi = *bhi = 0;
    for (int i = first; i <= last; i++)
        for (int s = 0; s < LAYER_MAX_SLOTS; s++) {
            int r = m->nodes[i].param[s];
            if (r < 0 || m->params_reg[r].node != i) continue; /* a tied weight is its owner's */
            const herd_param_info *p = &m->params_reg[r].info;
            int64_t *lo = p->trainable ? plo : blo, *hi = p->trainable ? phi : bhi;
            if (p->offset < *lo) *lo = p->offset;
            if (p->offset + p->numel > *hi) *hi = p->offset + p->numel;
        }
    if (*plo > *phi) *plo = *phi = 0;
    if (*blo > *bhi) *blo = *bhi = 0;
}

int herd_model_param_users(const herd_model *m, int r, int *layers, int max) {
    int n = 0;
    for (int i = 0; i < m->n_nodes; i++) {
        int uses = 0;
        for (int s = 0; s < LAYER_MAX_SLOTS; s++) uses |= m->nodes[i].param[s] == r;
        if (uses && n < max) layers[n] = i;
        n += uses;
    }
    return n;
}

int herd_model_param_owner(const herd_model *m, int r) { return m->params_reg[r].node; }

void herd_model_layer_buffers(herd_model *m, int i, float **out, float **dout, int64_t *per_sample) {
    *out = m->nodes[i].out;
    *dout = m->nodes[i].dout;
    *per_sample = m->nodes[i].numel;
}

void herd_model_set_batch_sum(herd_model *m, void (*fn)(void *user, double *v, int n), void *user) {
    m->ex.batch_sum = fn;
    m->ex.batch_sum_user = user;
}

int herd_model_batch_sync_layers(const herd_model *m) {
    int k = 0;
    for (int i = 0; i < m->n_nodes; i++) k += m->nodes[i].kind->batch_sync && m->nodes[i].kind->batch_sync(&m->nodes[i]);
    return k;
}

void herd_model_set_params_hook(herd_model *m, herd_params_needed_fn fn, void *user) {
    m->params_hook = fn;
    m->params_hook_user = user;
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

int herd_model_first_nonfinite(herd_model *m, int B, int grads) {
    if (!grads) { /* forward again, checking each output while it exists (memory is reused) */
        for (int i = 0; i < m->n_nodes; i++) {
            if (herd_model_forward_range(m, i, i, 0, B, 1, NULL) != HERD_OK) return -1;
            if (!all_finite(m->nodes[i].out, (int64_t)B * m->nodes[i].numel)) return i;
        }
        return -1;
    }
    /* activation gradients share memory with other buffers once dead: only the parameter
     * gradients are still there after backward */
    for (int i = m->n_nodes - 1; i >= 0; i--) {
        const node *n = &m->nodes[i];
        for (int s = 0; s < LAYER_MAX_SLOTS; s++) {
            const herd_param_info *p = n->param[s] >= 0 ? &m->params_reg[n->param[s]].info : NULL;
            if (p && p->trainable && !p->sparse && !all_finite(m->grads + p->offset, p->numel)) return i;
        }
    }
    return -1;
}

int herd_model_param_count(const herd_model *m) { return m->n_reg; }
const herd_param_info *herd_model_param(const herd_model *m, int i) { return &m->params_reg[i].info; }

void herdi_model_params_changed(herd_model *m) { m->params_gen++; }

float *herd_model_params(herd_model *m, int64_t *n_params) {
    herdi_model_tables_ready(m);
    herdi_model_params_changed(m);
    if (n_params) *n_params = m->n_params;
    return m->params;
}

float *herd_model_grads(herd_model *m) { return m->grads; }
herd_pool *herd_model_pool(herd_model *m) { return m->pool; }

float *herd_model_buffers(herd_model *m, int64_t *n_buffers) {
    herdi_model_params_changed(m);
    if (n_buffers) *n_buffers = m->n_buffers;
    return m->buffers;
}

int herd_model_layer_count(const herd_model *m) { return m->n_nodes; }

void herd_model_layer(const herd_model *m, int i, herd_layer_info *info) {
    const node *n = &m->nodes[i];
    memset(info, 0, sizeof *info);
    info->name = n->name;
    info->kind = n->kind->name;
    info->ndim = n->ndim;
    memcpy(info->dims, n->dims, sizeof info->dims);
    info->c = (int)n->dims[0];
    info->h = n->ndim == 3 ? (int)n->dims[1] : 1;
    info->w = n->ndim == 3 ? (int)n->dims[2] : 1;
    for (int s = 0; s < LAYER_MAX_SLOTS; s++) {
        const herd_param_info *p = n->param[s] >= 0 ? &m->params_reg[n->param[s]].info : NULL;
        if (p && p->trainable && m->params_reg[n->param[s]].node == n - m->nodes) info->params += p->numel; /* a tied weight is its owner's */
    }
    if (n->kind->describe) n->kind->describe(m, n, info->detail, sizeof info->detail);
    info->flops = n->kind->flops ? n->kind->flops(m, n) : 0;
}

size_t herd_model_planned_bytes(const herd_model *m) { return m->arena ? herd_arena_capacity(m->arena) : 0; }

void herd_model_activation_bytes(const herd_model *m, size_t *with_reuse, size_t *without_reuse) {
    *with_reuse = m->arena ? m->activation_bytes : 0;
    *without_reuse = m->arena ? m->activation_bytes_plain : 0;
}

void herd_model_set_memory_reuse(herd_model *m, int enable) { m->memory_reuse = enable; }
void herd_model_set_fixed_reduction(herd_model *m, int enable) { m->fixed_reduction = enable != 0; }
int herd_model_memory_reuse(const herd_model *m) { return m->memory_reuse; }
void herd_model_set_inference_only(herd_model *m, int enable) { m->inference_only = enable; }

herd_status herd_model_set_precision(herd_model *m, const char *precision, herd_error *err) {
    if (!precision || (strcmp(precision, "fp32") != 0 && strcmp(precision, "bf16") != 0))
        return herd_fail(err, HERD_EARG, "unknown precision '%s' (expected fp32 or bf16)", precision ? precision : "");
    m->bf16 = strcmp(precision, "bf16") == 0;
    return HERD_OK;
}
