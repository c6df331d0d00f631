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

/* Winograd F(4x4) on 16x16 with 64 channels (its kernels prepared at batch 1: 16 tiles), a
 * stride-2 3x3 onto 8x8 and a pointwise conv there (the narrow form, output channels not a
 * multiple of 32), a dense */
static const char *SPEC = "input 64x16x16\nconv 64 3 pad=1 relu\nconv 96 3 stride=2 pad=1\nconv 70 1 relu\ngap\ndense 10\n";
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
    for (int i = 0; i < 64 * 16 * 16; i++) x[i] = (float)((i * 37) % 101) / 101.0f - 0.5f;
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

/* An inference-only model runs a batch in chunks of rows and sizes its workspace and prepared weights
 * for a chunk's calls: planned for 80 rows (chunks of 32, 32, 16), every row must have the bits of
 * a model planned for 32 rows fed the same chunks. The max pooling keeps its argmax for the planned
 * rows; Winograd's kernels are prepared for the 32-row calls. */
static const char *SPEC_CHUNKS = "input 64x16x16\nconv 64 3 pad=1 relu\nmaxpool 2\nconv 64 3 pad=1\ngap\ndense 10\n";

static herd_model *make_rows(int rows, int threads) {
    herd_error err = {0};
    herd_model *m = NULL;
    CHECK(herd_model_parse(&m, SPEC_CHUNKS, "spec", &err) == HERD_OK, "%s", err.msg);
    if (!m) return NULL;
    herd_model_init_params(m, 5);
    herd_model_set_inference_only(m, 1);
    CHECK(herd_model_prepare(m, "cpu", rows, threads, &err) == HERD_OK, "%s", err.msg);
    return m;
}

static void check_chunks(int threads) {
    enum { ROWS = 80, CHUNK = 32, IN = 64 * 16 * 16 };
    herd_model *big = make_rows(ROWS, threads), *small = make_rows(CHUNK, threads);
    if (!big || !small) return;
    herd_error err = {0};
    float *x = herd_model_batch_buffer(big);
    for (int i = 0; i < ROWS * IN; i++) x[i] = (float)((i * 29) % 97) / 97.0f - 0.5f;
    CHECK(herd_model_forward(big, ROWS, 0, &err) == HERD_OK, "%s", err.msg);
    for (int r = 0; r < ROWS; r += CHUNK) {
        int n = ROWS - r < CHUNK ? ROWS - r : CHUNK;
        memcpy(herd_model_batch_buffer(small), x + (size_t)r * IN, (size_t)n * IN * sizeof(float));
        CHECK(herd_model_forward(small, n, 0, &err) == HERD_OK, "%s", err.msg);
        CHECK(!memcmp(herd_model_output(small), herd_model_output(big) + (size_t)r * OUTS, (size_t)n * OUTS * sizeof(float)),
              "%d threads: rows %d..%d of a batch of %d differ from a %d-row model's", threads, r, r + n, ROWS, CHUNK);
    }
    herd_model_destroy(big), herd_model_destroy(small);
}

int main(void) {
    for (int threads = 1; threads <= 2; threads++) check_chunks(threads);
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
