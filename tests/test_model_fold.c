/* Batch norm folded into the conv before it in an inference plan (plan_fusions): the outputs
 * are the bits of the training plan's eval forward (conv, batch norm pass, activation pass) on
 * every conv path the cpu backend has (im2col + gemm, Winograd, depthwise, pointwise, tiny-map
 * taps) with 1-3 threads; the folded node shares its conv's buffer; a batch norm whose conv has
 * another reader, or one after a dense layer, stays a pass; parameters changed after prepare
 * are used by the next forward; a folded model refuses a training forward. */
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "herd/model.h"

/* Every path: conv1 im2col (K = 27), conv2 Winograd (64 channels on 8x8), a depthwise conv with
 * bias + ReLU6, a pointwise conv into an add, a 3x3 conv on 2x2 maps (taps), a batch norm after
 * a dense layer (not folded: no conv before it). */
static const char *const paths =
    "input 3x8x8\n"
    "conv 64 3 pad=1 bias=0\nbatchnorm\nrelu\n"
    "conv 64 3 pad=1 bias=0\nbatchnorm\nrelu name=r2\n"
    "conv 64 3 pad=1 groups=64\nbatchnorm\nrelu6\n"
    "conv 64 1 bias=0\nbatchnorm name=bnp\nadd bnp,r2\nrelu\n"
    "maxpool 4 stride=4\n"
    "conv 40 3 pad=1 bias=0\nbatchnorm\nrelu\n"
    "gap\ndense 12\nbatchnorm\ndense 5\n";
/* The conv is also read by the add: its batch norm cannot be folded. */
static const char *const shared = "input 4x6x6\nconv 6 3 pad=1 name=c\nbatchnorm name=b\nadd b,c\nrelu\ngap\ndense 3\n";

static herd_model *make(const char *spec, int inference, int threads, int B) {
    herd_error err = {0};
    herd_model *m = NULL;
    CHECK(herd_model_parse(&m, spec, "spec", &err) == HERD_OK, "%s", err.msg);
    if (!m) return NULL;
    herd_model_init_params(m, 7);
    herd_model_set_inference_only(m, inference);
    CHECK(herd_model_prepare(m, "cpu", B, threads, &err) == HERD_OK, "%s", err.msg);
    return m;
}

/* Parameters and running statistics away from init's 1 and 0 (variances positive). */
static void fill(herd_model *m, unsigned salt) {
    int64_t np, nb;
    float *p = herd_model_params(m, &np), *b = herd_model_buffers(m, &nb);
    for (int64_t i = 0; i < np; i++) p[i] = (float)((i * 37 + salt) % 101) / 101.0f - 0.45f;
    for (int64_t i = 0; i < nb; i++) b[i] = 0.3f + (float)((i * 53 + salt) % 89) / 89.0f;
}

static void forward(herd_model *m, int B, float *out, herd_error *err) {
    float *x = herd_model_input(m);
    int c, h, w;
    herd_model_input_shape(m, &c, &h, &w);
    for (int i = 0; i < B * c * h * w; i++) x[i] = (float)((i * 29) % 31) / 31.0f - 0.5f;
    CHECK(herd_model_forward(m, B, 0, err) == HERD_OK, "%s", err->msg);
    memcpy(out, herd_model_output(m), (size_t)B * herd_model_output_size(m) * sizeof(float));
}

/* The layers whose output buffer is another layer's (views, folded or fused layers). */
static int shared_buffers(herd_model *m) {
    int n = 0;
    for (int i = 1; i < herd_model_layer_count(m); i++) {
        float *o, *p, *d;
        int64_t ps;
        herd_model_layer_buffers(m, i, &o, &d, &ps);
        herd_model_layer_buffers(m, i - 1, &p, &d, &ps);
        n += o == p;
    }
    return n;
}

static void compare(const char *spec, const char *name, int threads, int folds) {
    const int B = 5;
    herd_error err = {0};
    herd_model *t = make(spec, 0, threads, B), *f = make(spec, 1, threads, B);
    if (!t || !f) goto done;
    int K = herd_model_output_size(t);
    float *want = malloc((size_t)B * K * sizeof(float)), *got = malloc((size_t)B * K * sizeof(float));
    for (unsigned salt = 1; salt <= 2; salt++) { /* the second round changes the parameters after prepare */
        fill(t, salt), fill(f, salt);
        forward(t, B, want, &err);
        forward(f, B, got, &err);
        CHECK(!memcmp(want, got, (size_t)B * K * sizeof(float)),
              "%s, %d threads, parameters %u: the inference plan's outputs are not the training plan's eval bits", name,
              threads, salt);
    }
    /* a folded batch norm and the ReLU after it take the conv's buffer: 2 more shared per fold */
    int extra = shared_buffers(f) - shared_buffers(t);
    CHECK(extra >= folds && extra <= 2 * folds, "%s: %d more layers share a buffer in the inference plan, %d folds expected",
          name, extra, folds);
    if (folds) CHECK(herd_model_forward(f, B, 1, &err) != HERD_OK, "%s: a training forward of a folded model must fail", name);
    free(want), free(got);
done:
    herd_model_destroy(t);
    herd_model_destroy(f);
}

int main(void) {
    for (int threads = 1; threads <= 3; threads++) {
        compare(paths, "every conv path", threads, 5);
        compare(shared, "conv read twice", threads, 0);
    }
    return check_summary();
}
