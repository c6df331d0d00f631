/* lm: sources: windows of a token file for language models. Sample i of the train split is the
 * window starting at i * stride, x its ctx ids and y the ctx ids after them (the next id at each
 * position); the validation split tiles the held-out tail with windows of its own. Which windows
 * a step trains on is the trainer's seeded shuffle: a pure function of the seed and epoch, each
 * rank taking its rows of the global batch, so every rank reads different windows and the same
 * seed reads the same ones. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "data/mapped_read.h"
#include "herd/data.h"

typedef struct lm_impl {
    herd_tokens *tokens;
    int64_t first, stride; /* window i starts at first + i * stride */
    int ctx;
} lm_impl;

static herd_status lm_get_mapped(const herd_dataset *ds, int64_t i, void *x, void *y, herd_error *err) {
    const lm_impl *im = ds->impl;
    int64_t s = im->first + i * im->stride;
    herd_status st = herd_tokens_read(im->tokens, s, im->ctx, x, err);
    if (st) return st;
    /* y is x shifted by one: the last id only is new */
    memcpy(y, (const int32_t *)x + 1, (size_t)(im->ctx - 1) * sizeof(int32_t));
    return herd_tokens_read(im->tokens, s + im->ctx, 1, (int32_t *)y + im->ctx - 1, err);
}

static herd_status lm_get(const herd_dataset *ds, int64_t i, void *x, void *y, herd_error *err) {
    if (i < 0 || i >= ds->n)
        return herd_fail(err, HERD_EARG, "%s: sample %lld out of range [0, %lld)", ds->source, (long long)i,
                         (long long)ds->n);
    const lm_impl *im = ds->impl;
    return herdi_mapped_get_guarded(herd_tokens_path(im->tokens), lm_get_mapped, ds, i, x, y, err);
}

static void lm_close(herd_dataset *ds) {
    lm_impl *im = ds->impl;
    if (im) herd_tokens_close(im->tokens);
    free(im);
    ds->impl = NULL;
}

static const herd_dataset_ops lm_ops = {lm_get, lm_close, NULL, NULL};

/* ids [first, end) as windows every stride */
static herd_status lm_split(herd_dataset **out, const char *path, int ctx, int64_t first, int64_t end, int64_t stride,
                            const char *what, herd_error *err) {
    *out = NULL;
    herd_tokens *t = NULL;
    herd_status st = herd_tokens_open(&t, path, err);
    if (st) return st;
    int64_t n = end - first > ctx ? (end - first - ctx - 1) / stride + 1 : 0;
    if (n < 1) {
        st = herd_fail(err, HERD_EARG, "%s: the %s part holds %lld ids, too few for one window of %d (+1 for the "
                       "next-id labels)", path, what, (long long)(end - first), ctx);
        herd_tokens_close(t);
        return st;
    }
    herd_dataset *ds = calloc(1, sizeof *ds);
    lm_impl *im = calloc(1, sizeof *im);
    if (!ds || !im) {
        free(ds), free(im);
        herd_tokens_close(t);
        return herd_fail(err, HERD_ENOMEM, "%s: out of memory", path);
    }
    *im = (lm_impl){t, first, stride, ctx};
    int64_t d = ctx;
    ds->ops = &lm_ops, ds->impl = im, ds->n = n;
    ds->x = herd_tensor_make(HERD_I32, 1, &d, NULL);
    ds->y = herd_tensor_make(HERD_I32, 1, &d, NULL);
    ds->num_classes = herd_tokens_vocab(t);
    snprintf(ds->source, sizeof ds->source, "lm:%.500s", path);
    snprintf(ds->note, sizeof ds->note, "%s: %lld windows of %d %s tokens over ids [%lld, %lld) (every %lld), "
             "vocabulary %d", what, (long long)n, ctx, herd_tokens_tokenizer(t) == HERD_TOKENIZE_BYTE ? "byte"
             : herd_tokens_tokenizer(t) == HERD_TOKENIZE_CHAR ? "char" : "word", (long long)first, (long long)end,
             (long long)stride, herd_tokens_vocab(t));
    *out = ds;
    return HERD_OK;
}

herd_status herd_lm_open(herd_dataset **train, herd_dataset **val, const char *path, const herd_lm_options *opt,
                         herd_error *err) {
    if (train) *train = NULL;
    if (val) *val = NULL;
    if (opt->ctx < 1 || opt->ctx > (1 << 20) || !(opt->val >= 0 && opt->val <= 0.5))
        return herd_fail(err, HERD_EARG, "%s: ctx=%d, val=%g: a window takes 1 to 2^20 ids and val a fraction in [0, "
                         "0.5]", path, opt->ctx, opt->val);
    herd_tokens *t = NULL;
    herd_status st = herd_tokens_open(&t, path, err);
    if (st) return st;
    int64_t n = herd_tokens_count(t);
    herd_tokens_close(t);
    int64_t cut = n - (int64_t)((double)n * opt->val), stride = opt->stride > 0 ? opt->stride : opt->ctx;
    if (train && (st = lm_split(train, path, opt->ctx, 0, cut, stride, "train", err))) return st;
    if (val && opt->val > 0 && (st = lm_split(val, path, opt->ctx, cut, n, opt->ctx, "validation", err))) {
        if (train) herd_dataset_close(*train), *train = NULL;
        return st;
    }
    return HERD_OK;
}
