/* herd_model_forward_backward cuts a training batch into chunks of rows (forward and
 * backward of one chunk while its activations are in cache). Checks, on both backends:
 * the same loss, hits and gradients as one piece (including a short last chunk and
 * dropout masks), the gradient hook firing only when the gradients are final, batch
 * norm never cut, and the automatic chunk size. */
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "herd/core.h"
#include "herd/model.h"

static const char *SPEC = "input 2x12x12\n"
                          "conv 8 3 pad=1 relu\n"
                          "maxpool 2\n"
                          "conv 8 3 pad=1 relu\n"
                          "flatten\n"
                          "dense 16 relu\n"
                          "dropout 0.3\n"
                          "dense 5\n";

enum { B = 40, IN = 2 * 12 * 12, K = 5 };

static herd_model *make(const char *spec, const char *backend, const char *chunk) {
    if (chunk) setenv("HERD_TRAIN_CHUNK", chunk, 1);
    else unsetenv("HERD_TRAIN_CHUNK");
    herd_model *m = NULL;
    herd_error err = {0};
    if (herd_model_parse(&m, spec, "chunk.spec", &err) || herd_model_prepare(m, backend, B, 2, &err)) {
        fprintf(stderr, "setup: %s\n", err.msg);
        exit(1);
    }
    unsetenv("HERD_TRAIN_CHUNK");
    herd_model_init_params(m, 7);
    herd_rng rng;
    herd_rng_init(&rng, 11, 0);
    float *x = herd_model_input(m);
    for (int i = 0; i < B * IN; i++) x[i] = herd_rng_uniform(&rng) * 2.0f - 1.0f;
    herd_model_set_dropout_stream(m, 3, 5);
    return m;
}

typedef struct hook_log {
    const float *final_grads; /* the one-piece gradients */
    const float *grads;
    int64_t n, last_ready;
    int calls, early;
    double worst;
} hook_log;

/* Each call says grads[ready_from, n) are final: compare them with the one-piece result. */
static void on_ready(void *user, int64_t ready_from) {
    hook_log *h = user;
    h->calls++;
    if (ready_from >= h->last_ready) h->early++; /* must move towards 0 */
    h->last_ready = ready_from;
    for (int64_t i = ready_from; i < h->n; i++) {
        double d = fabs((double)h->grads[i] - h->final_grads[i]) / (1e-6 + fabs((double)h->final_grads[i]));
        if (d > h->worst) h->worst = d;
    }
}

static void compare(const char *backend) {
    int32_t labels[B];
    for (int i = 0; i < B; i++) labels[i] = (i * 7 + 3) % K;
    herd_model *whole = make(SPEC, backend, "0"), *cut = make(SPEC, backend, "16");
    CHECK(herd_model_train_chunk(whole) == 0 && herd_model_train_chunk(cut) == 16, "%s: chunks %d and %d", backend,
          herd_model_train_chunk(whole), herd_model_train_chunk(cut));
    herd_error err = {0};
    float loss_w, loss_c;
    static herd_metrics mw, mc;
    herd_metrics_clear(&mw), herd_metrics_clear(&mc);
    CHECK(herd_model_forward_backward(whole, labels, B, 0.5f, &loss_w, &mw, &err) == HERD_OK, "%s", err.msg);
    int64_t n;
    herd_model_params(cut, &n);
    hook_log h = {.final_grads = herd_model_grads(whole), .grads = herd_model_grads(cut), .n = n, .last_ready = n + 1};
    herd_model_set_grad_hook(cut, on_ready, &h);
    CHECK(herd_model_forward_backward(cut, labels, B, 0.5f, &loss_c, &mc, &err) == HERD_OK, "%s", err.msg);
    int hits_w = (int)mw.hits, hits_c = (int)mc.hits;
    CHECK(mw.counted == B && mc.counted == B && mw.samples == B && mc.samples == B, "%s: every sample measured",
          backend);
    CHECK_CLOSE(herd_metrics_loss(&mc), loss_c, 1e-6, 1e-6, "the metrics' loss is the step's");
    printf("%s: loss %.7f / %.7f, hits %d / %d, hook calls %d\n", backend, loss_w, loss_c, hits_w, hits_c, h.calls);
    CHECK_CLOSE(loss_c, loss_w, 1e-6, 1e-5, "loss in chunks vs whole");
    CHECK(hits_c == hits_w, "%s: hits %d vs %d", backend, hits_c, hits_w);
    const float *gw = herd_model_grads(whole), *gc = herd_model_grads(cut);
    double worst = 0, scale = 0;
    for (int64_t i = 0; i < n; i++) {
        double d = fabs((double)gc[i] - gw[i]);
        if (d > worst) worst = d;
        if (fabs(gw[i]) > scale) scale = fabs(gw[i]);
    }
    printf("%s: max |grad difference| %.3g (largest gradient %.3g)\n", backend, worst, scale);
    CHECK(scale > 0 && worst <= 1e-5 * scale, "%s: gradients differ by %g", backend, worst);
    /* one call per layer with parameters, each when its gradients were already final */
    CHECK(h.calls == 4, "%s: hook called %d times, expected once per layer with parameters (4)", backend, h.calls);
    CHECK(h.early == 0 && h.last_ready == 0, "%s: hook order (%d out of order, last %lld)", backend, h.early,
          (long long)h.last_ready);
    CHECK(h.worst <= 1e-4, "%s: hook saw gradients %.3g away from final", backend, h.worst);
    /* a second pass starts from zero gradients: the same result again */
    herd_model_set_grad_hook(cut, NULL, NULL);
    float *first = malloc(sizeof(float) * (size_t)n);
    memcpy(first, gc, sizeof(float) * (size_t)n);
    herd_model_set_dropout_stream(cut, 3, 5);
    herd_model_forward_backward(cut, labels, B, 0.5f, &loss_c, NULL, &err);
    CHECK(memcmp(first, gc, sizeof(float) * (size_t)n) == 0, "%s: a repeated pass gives other gradients", backend);
    free(first);
    herd_model_destroy(whole);
    herd_model_destroy(cut);
}

int main(void) {
    compare("ref");
    compare("cpu");
    /* batch norm needs the whole batch's statistics: never cut, whatever the knob says */
    char bn[512];
    snprintf(bn, sizeof bn, "%s", "input 2x12x12\nconv 8 3 pad=1\nbatchnorm\nrelu\nflatten\ndense 5\n");
    herd_model *m = make(bn, "cpu", NULL);
    CHECK(herd_model_train_chunk(m) == 0, "batch norm model cut into %d rows", herd_model_train_chunk(m));
    herd_model_destroy(m);
    /* automatic size: a multiple of 8 rows, at least 8; this small model's 40 rows fit in one */
    m = make(SPEC, "cpu", NULL);
    int c = herd_model_train_chunk(m);
    CHECK(c >= B && c % 8 == 0, "automatic chunk %d", c);
    herd_model_destroy(m);
    return check_summary();
}
