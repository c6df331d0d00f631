/* An inference-only model keeps weights prepared across forward passes (herd_exec.prep:
 * Winograd-transformed kernels at batch 1, panels of w^T for the narrow batch-1 convs): its
 * outputs must follow every change of the parameters made through herd_model_params, giving
 * the bits of a model prepared fresh with those parameters; and they agree with a training-planned model within float rounding
 * (the dense dot products sum in another order at a few rows). 1 and 2 threads. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "herd/model.h"

/* Winograd F(4x4) on 8x8 with 64 channels (its kernels prepared at batch 1), a stride-2 3x3 onto
 * 4x4 and a pointwise conv there (the narrow form, output channels not a multiple of 32), a dense */
static const char *SPEC = "input 64x8x8\nconv 64 3 pad=1 relu\nconv 96 3 stride=2 pad=1\nconv 70 1 relu\ngap\ndense 10\n";
#define OUTS 10

static herd_model *make(int inference, int threads) {
    herd_error err = {0};
    herd_model *m = NULL;
    CHECK(herd_model_parse(&m, SPEC, "spec", &err) == HERD_OK, "%s", err.msg);
    if (!m) return NULL;
    herd_model_init_params(m, 11);
    herd_model_set_inference_only(m, inference);
    CHECK(herd_model_prepare(m, "cpu", 1, threads, &err) == HERD_OK, "%s", err.msg);
    float *x = herd_model_batch_buffer(m);
    for (int i = 0; i < 64 * 8 * 8; i++) x[i] = (float)((i * 37) % 101) / 101.0f - 0.5f;
    return m;
}

static void forward(herd_model *m, float *out) {
    herd_error err = {0};
    CHECK(herd_model_forward(m, 1, 0, &err) == HERD_OK, "%s", err.msg);
    memcpy(out, herd_model_output(m), OUTS * sizeof(float));
}

/* every parameter times s (through herd_model_params) */
static void scale(herd_model *m, float s) {
    int64_t n;
    float *p = herd_model_params(m, &n);
    for (int64_t i = 0; i < n; i++) p[i] *= s;
}

int main(void) {
    for (int threads = 1; threads <= 2; threads++) {
        herd_model *inf = make(1, threads), *train = make(0, threads);
        if (!inf || !train) return check_summary();
        float a[OUTS], again[OUTS], t[OUTS], b[OUTS], fresh[OUTS];
        forward(inf, a);
        forward(inf, again); /* the prepared weights read back */
        CHECK(!memcmp(a, again, sizeof a), "%d threads: a second pass differs from the first", threads);
        forward(train, t);
        for (int k = 0; k < OUTS; k++)
            CHECK(fabsf(a[k] - t[k]) <= 1e-5f * (1.0f + fabsf(t[k])), "%d threads: output %d: inference %.9g, training plan %.9g",
                  threads, k, a[k], t[k]);
        /* new parameters through herd_model_params: the next pass must use them */
        scale(inf, 1.5f);
        forward(inf, b);
        herd_model *ref = make(1, threads);
        if (!ref) return check_summary();
        scale(ref, 1.5f);
        forward(ref, fresh);
        CHECK(!memcmp(b, fresh, sizeof b), "%d threads: after new parameters the outputs are not a fresh model's", threads);
        CHECK(memcmp(a, b, sizeof a) != 0, "%d threads: new parameters left the outputs unchanged", threads);
        /* and back: scaling by 1/1.5 is not exact, so compare with a fresh model again */
        scale(inf, 1.0f / 1.5f), scale(ref, 1.0f / 1.5f);
        forward(inf, b), forward(ref, fresh);
        CHECK(!memcmp(b, fresh, sizeof b), "%d threads: a second change was not seen", threads);
        herd_model_destroy(inf), herd_model_destroy(train), herd_model_destroy(ref);
    }
    return check_summary();
}
