/* Text generation from a language model: the prompt's ids, then new ids drawn one at a time from
 * the logits of the last position (greedy, or softmax(logits / temperature) over the top k), by
 * the decoder (one position a token) or, as the oracle the tests compare it with, by running the
 * whole window through the model for every token. The model sees a window of at most T ids: when
 * the text fills it, the window moves on by T/2 (its second half is read again as the start of
 * the next; learned position embeddings leave no cheaper exact way), the same in both paths. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "model/model_internal.h"

typedef struct ranked {
    float v;
    int32_t id;
} ranked;

static int by_logit(const void *a, const void *b) {
    const ranked *x = a, *y = b;
    if (x->v != y->v) return x->v > y->v ? -1 : 1;
    return (x->id > y->id) - (x->id < y->id);
}

/* The next id from logits[0..V); work holds V entries. One uniform draw a token whatever k is. */
static int32_t pick(const float *logits, int V, const herd_generate_options *o, herd_rng *r, ranked *work) {
    float u = herd_rng_uniform(r);
    if (o->temperature <= 0) {
        int32_t best = 0;
        for (int i = 1; i < V; i++)
            if (logits[i] > logits[best]) best = i;
        return best;
    }
    for (int i = 0; i < V; i++) work[i] = (ranked){logits[i], i};
    qsort(work, (size_t)V, sizeof *work, by_logit);
    int k = o->top_k > 0 && o->top_k < V ? o->top_k : V;
    double sum = 0;
    for (int i = 0; i < k; i++) sum += exp(((double)work[i].v - work[0].v) / o->temperature);
    double at = u * sum, acc = 0;
    for (int i = 0; i < k; i++) {
        acc += exp(((double)work[i].v - work[0].v) / o->temperature);
        if (at < acc) return work[i].id;
    }
    return work[k - 1].id;
}

herd_status herd_generate(herd_model *m, const int32_t *prompt, int64_t n_prompt, const herd_generate_options *o,
                          int32_t *out, herd_error *err) {
    herd_decoder *d = NULL;
    herd_status st = herd_decoder_create(&d, m, err); /* also checks the model can generate */
    if (st) return st;
    int T = herd_decoder_context(d), V = (int)(m->nodes[m->n_nodes - 1].dims[1]);
    if (o->tokens < 1 || n_prompt < 1 || n_prompt > T) {
        herd_decoder_destroy(d);
        if (o->tokens < 1) return herd_fail(err, HERD_EARG, "%s: %d tokens to generate (at least 1)", m->source, o->tokens);
        if (n_prompt < 1) return herd_fail(err, HERD_EARG, "%s: the prompt holds no token", m->source);
        return herd_fail(err, HERD_EARG, "%s: a prompt of %lld tokens is longer than the model's context of %d",
                         m->source, (long long)n_prompt, T);
    }
    for (int64_t i = 0; i < n_prompt; i++)
        if (prompt[i] < 0 || prompt[i] >= V) {
            herd_decoder_destroy(d);
            return herd_fail(err, HERD_EARG, "%s: prompt token %lld is id %d, outside the model's vocabulary of %d",
                             m->source, (long long)i, prompt[i], V);
        }
    ranked *work = malloc((size_t)V * sizeof *work);
    int32_t *ctx = malloc((size_t)(n_prompt + o->tokens) * sizeof *ctx);
    if (!work || !ctx) {
        free(work), free(ctx), herd_decoder_destroy(d);
        return herd_fail(err, HERD_ENOMEM, "%s: out of memory", m->source);
    }
    memcpy(ctx, prompt, (size_t)n_prompt * sizeof *ctx);
    herd_rng r;
    herd_rng_init(&r, o->seed, 0x67656e);
    const float *logits = NULL;
    int64_t len = n_prompt, start = 0; /* the window: ctx[start, len) */
    for (int64_t p = 0; !st && p < len - 1 && !o->recompute; p++) st = herd_decoder_step(d, ctx[p], &logits, err);
    for (int k = 0; !st && k < o->tokens; k++) {
        if (len - start > T) { /* full: move on by half a window, the decoder reads the kept half again */
            start += T / 2 > 0 ? T / 2 : 1;
            herd_decoder_reset(d);
            for (int64_t p = start; !st && p < len - 1 && !o->recompute; p++) st = herd_decoder_step(d, ctx[p], &logits, err);
            if (st) break;
        }
        if (o->recompute) { /* the whole window: positions after it hold id 0 and cannot reach back (causal) */
            int32_t *in = (int32_t *)herd_model_input(m);
            memset(in, 0, (size_t)T * sizeof *in);
            memcpy(in, ctx + start, (size_t)(len - start) * sizeof *in);
            if (!(st = herd_model_forward(m, 1, 0, err))) logits = herd_model_output(m) + (len - 1 - start) * V;
        } else {
            st = herd_decoder_step(d, ctx[len - 1], &logits, err);
        }
        if (!st) out[k] = ctx[len++] = pick(logits, V, o, &r, work);
    }
    free(work), free(ctx);
    herd_decoder_destroy(d);
    return st;
}
