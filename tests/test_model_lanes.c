/* Inference lanes (herd_model_forward in an inference-only model, 2-3 threads, a batch of two
 * chunks or more): each pool thread runs whole chunks through the network on buffers of its
 * own. The outputs are the bits of one thread running the same chunks (a lane's ops run
 * without the pool), except the first pass's first chunk, which runs pooled to fill the prepared
 * weights (within float rounding of it); the batch's own intermediate buffers are left alone (the
 * lanes ran); parameters changed after prepare are used; batches under two chunks and uneven
 * last chunks (the narrow batch-1 form, the dense dot product at a few rows) work; a batch past
 * the planned one is refused. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "herd/model.h"

/* A folded batch norm, max pooling (its argmax rows), Winograd on 8x8 with 64 channels, 3x3 on
 * 4x4 (the narrow form with prepared panels in a chunk of a few rows), a flatten view, dense. */
static const char *const SPEC = "input 3x16x16\n"
                                "conv 64 3 pad=1 bias=0\nbatchnorm\nrelu\nmaxpool 2\n"
                                "conv 64 3 pad=1 relu\nmaxpool 2 name=p2\n"
                                "conv 40 3 pad=1 relu\nflatten\ndense 24 relu\ndense 10\n";
#define OUTS 10
#define CHUNK 32 /* the model's rows per chunk (eval_chunk: small models take 32) */

static herd_model *make(int threads, int B) {
    herd_error err = {0};
    herd_model *m = NULL;
    CHECK(herd_model_parse(&m, SPEC, "spec", &err) == HERD_OK, "%s", err.msg);
    if (!m) return NULL;
    herd_model_init_params(m, 5);
    herd_model_set_inference_only(m, 1);
    CHECK(herd_model_prepare(m, "cpu", B, threads, &err) == HERD_OK, "%s", err.msg);
    float *x = herd_model_batch_buffer(m);
    for (int i = 0; i < B * 3 * 16 * 16; i++) x[i] = (float)((i * 37) % 101) / 101.0f - 0.5f;
    return m;
}

static void forward(herd_model *m, int B, float *out) {
    herd_error err = {0};
    CHECK(herd_model_forward(m, B, 0, &err) == HERD_OK, "%s", err.msg);
    memcpy(out, herd_model_output(m), (size_t)B * OUTS * sizeof(float));
}

static void scale(herd_model *m, float s) {
    int64_t n;
    float *p = herd_model_params(m, &n);
    for (int64_t i = 0; i < n; i++) p[i] *= s;
}

/* rows [r0, B) equal bit for bit; rows [0, r0) within float rounding */
static void same(const float *a, const float *b, int B, int r0, const char *what, int threads) {
    CHECK(!memcmp(a + r0 * OUTS, b + r0 * OUTS, (size_t)(B - r0) * OUTS * sizeof(float)),
          "%d threads, batch %d: %s: rows %d.. differ from one thread's", threads, B, what, r0);
    for (int k = 0; k < r0 * OUTS; k++)
        CHECK(fabsf(a[k] - b[k]) <= 1e-5f * (1.0f + fabsf(b[k])), "%d threads, batch %d: %s: output %d %.9g vs %.9g",
              threads, B, what, k, a[k], b[k]);
}

int main(void) {
    const int batches[] = {2 * CHUNK + 7, 3 * CHUNK + 3, 2 * CHUNK, CHUNK + 9};
    for (int threads = 2; threads <= 3; threads++) {
        for (size_t bi = 0; bi < sizeof batches / sizeof *batches; bi++) {
            const int B = batches[bi], lanes = B >= 2 * CHUNK;
            herd_model *m = make(threads, B), *one = make(1, B);
            float *a = malloc((size_t)B * OUTS * sizeof(float)), *b = malloc((size_t)B * OUTS * sizeof(float)),
                  *ref = malloc((size_t)B * OUTS * sizeof(float));
            if (!m || !one || !a || !b || !ref) return check_summary();
            forward(one, B, ref);
            forward(m, B, a);
            const int r0 = lanes ? CHUNK : B; /* pooled chunks: within rounding of one thread */
            same(a, ref, B, r0, "first pass", threads);
            /* a pooled pass writes every row of p2's planned buffer; the lanes write their own */
            float *p2, *dp2;
            int64_t per;
            int p2i = -1;
            for (int i = 0; i < herd_model_layer_count(m); i++) {
                herd_layer_info info;
                herd_model_layer(m, i, &info);
                if (!strcmp(info.name, "p2")) p2i = i;
            }
            CHECK(p2i >= 0, "no layer p2");
            if (p2i < 0) return check_summary();
            herd_model_layer_buffers(m, p2i, &p2, &dp2, &per);
            for (int64_t i = 0; i < B * per; i++) p2[i] = NAN;
            forward(m, B, b);
            same(b, ref, B, lanes ? 0 : B, "second pass", threads);
            int untouched = 1;
            for (int64_t i = 0; i < B * per; i++) untouched &= isnan(p2[i]);
            CHECK(untouched == lanes, "%d threads, batch %d: the batch's buffer of p2 was %s", threads, B,
                  lanes ? "written: no lanes ran" : "not written");
            /* new parameters: the next pass fills the prep again, then uses them */
            scale(m, 1.5f), scale(one, 1.5f);
            forward(one, B, ref);
            forward(m, B, a);
            same(a, ref, B, r0, "after new parameters", threads);
            CHECK(memcmp(a, b, (size_t)B * OUTS * sizeof(float)) != 0, "%d threads, batch %d: new parameters unseen",
                  threads, B);
            forward(m, B, a);
            same(a, ref, B, lanes ? 0 : B, "after new parameters, again", threads);
            herd_error err = {0}; /* past the planned batch: refused, as without lanes */
            CHECK(herd_model_forward(m, B + 1, 0, &err) == HERD_EARG && strstr(err.msg, "planned batch"),
                  "%d threads: batch %d of %d planned: '%s'", threads, B + 1, B, err.msg);
            free(a), free(b), free(ref);
            herd_model_destroy(m), herd_model_destroy(one);
        }
    }
    return check_summary();
}
