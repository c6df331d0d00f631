/* Generation one position at a time: every layer of a language model ((T) ids in, (T, F) per
 * position all the way to (T, V) logits) runs its kind's decode entry on the new position only,
 * with the state the kind keeps across positions (causal attention's keys and values), so a new
 * token costs one position of work instead of a pass over the window. */
#include <stdlib.h>
#include <string.h>

#include "model/model_internal.h"

struct herd_decoder {
    herd_model *m;
    int T;
    int64_t pos;
    float **out;     /* per node: one position's output (an alias shares its owner's) */
    float **cache;   /* per node: its kind's state, or NULL */
    int32_t *ids;    /* the model input's slots: T ids, the current one first (id checks read T) */
    float *block;    /* everything above, one allocation */
};

herd_status herd_decoder_create(herd_decoder **out, herd_model *m, herd_error *err) {
    *out = NULL;
    if (!m->be) return herd_fail(err, HERD_EARG, "%s: prepare the model before generating", m->source);
    const model_input *in = &m->inputs[0];
    if (m->n_inputs != 1 || in->dtype != HERD_I32 || in->numel < 1)
        return herd_fail(err, HERD_EARG, "%s: generation needs one i32 input of token ids (`input T dtype=i32`)",
                         m->source);
    int T = (int)in->numel;
    int64_t floats = T;
    for (int i = 0; i < m->n_nodes; i++) {
        const node *n = &m->nodes[i];
        if (n->ndim != 2 || n->dims[0] != T)
            return herd_fail(err, HERD_EARG, "%s: layer '%s' (%s) is not per position (%lld values a sample, not (%d, F)): "
                             "generation runs layers that map each of the T positions alone", m->source, n->name,
                             n->kind->name, (long long)n->numel, T);
        if (n->alias >= 0) continue;
        int64_t c = n->kind->decode_cache ? n->kind->decode_cache(n) : 0;
        if (!n->kind->decode || c < 0)
            return herd_fail(err, HERD_EUNSUPPORTED, "%s: layer '%s' (%s%s) cannot generate one position at a time",
                             m->source, n->name, n->kind->name, c < 0 ? ", not causal" : "");
        floats += n->dims[1] + c;
    }
    herd_decoder *d = calloc(1, sizeof *d);
    if (d) {
        d->out = calloc((size_t)m->n_nodes, sizeof *d->out);
        d->cache = calloc((size_t)m->n_nodes, sizeof *d->cache);
        d->block = calloc((size_t)floats, sizeof *d->block);
    }
    if (!d || !d->out || !d->cache || !d->block) {
        if (d) free(d->out), free(d->cache), free(d->block);
        free(d);
        return herd_fail(err, HERD_ENOMEM, "%s: out of memory for generation", m->source);
    }
    d->m = m, d->T = T;
    d->ids = (int32_t *)d->block;
    float *p = d->block + T;
    for (int i = 0; i < m->n_nodes; i++) {
        const node *n = &m->nodes[i];
        if (n->alias >= 0) continue;
        d->out[i] = p, p += n->dims[1];
        int64_t c = n->kind->decode_cache ? n->kind->decode_cache(n) : 0;
        if (c > 0) d->cache[i] = p, p += c;
    }
    for (int i = 0; i < m->n_nodes; i++) {
        int o = i;
        while (m->nodes[o].alias >= 0) o = m->nodes[o].alias;
        d->out[i] = d->out[o];
    }
    *out = d;
    return HERD_OK;
}

int64_t herd_decoder_position(const herd_decoder *d) { return d->pos; }
int herd_decoder_context(const herd_decoder *d) { return d->T; }

void herd_decoder_reset(herd_decoder *d) { d->pos = 0; }

herd_status herd_decoder_step(herd_decoder *d, int32_t id, const float **logits, herd_error *err) {
    herd_model *m = d->m;
    if (d->pos >= d->T)
        return herd_fail(err, HERD_EARG, "%s: position %lld is past the model's context of %d", m->source,
                         (long long)d->pos, d->T);
    memset(d->ids, 0, (size_t)d->T * sizeof *d->ids);
    d->ids[0] = id;
    for (int i = 0; i < m->n_nodes; i++) {
        node *n = &m->nodes[i];
        if (n->alias >= 0) continue;
        layer_call c;
        memset(&c, 0, sizeof c);
        c.ex = herdi_node_exec(m, n, 0, &c.exn), c.be = n->be, c.n = n, c.B = 1, c.row0 = d->pos;
        for (int k = 0; k < n->n_in; k++) {
            int j = n->in[k];
            c.in[k] = j >= 0 ? d->out[j] : (const float *)d->ids;
            c.in_dims[k] = j >= 0 ? m->nodes[j].dims : m->inputs[-1 - j].dims;
            c.in_ndim[k] = j >= 0 ? m->nodes[j].ndim : m->inputs[-1 - j].ndim;
        }
        c.out = d->out[i];
        for (int s = 0; s < LAYER_MAX_SLOTS; s++) c.w[s] = herdi_node_param(m, n, s);
        herd_status st = n->kind->check ? n->kind->check(&c, err) : HERD_OK; /* ids within the table */
        if (st) return st;
        n->kind->decode(&c, d->cache[i]);
    }
    d->pos++;
    *logits = d->out[m->n_nodes - 1];
    return HERD_OK;
}

void herd_decoder_destroy(herd_decoder *d) {
    if (!d) return;
    free(d->out), free(d->cache), free(d->block), free(d);
}
