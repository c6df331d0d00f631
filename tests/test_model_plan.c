/* Training plans: (1) a ReLU read only by a max pool moves after the pool (the pool applies it to
 * its output and masks its gradient by it): the loss and every gradient keep the bits of the
 * same network written with the ReLU after the pool, on both backends, and the ReLU's buffers
 * are its input's (nothing ReLU'd is kept for its backward); (2) each node's workspace planned
 * by liveness with the activations: the same bits as a plan without reuse (one shared block
 * after the region), in less memory, and the region's size without sharing counts the workspace. The convs after the pool are on Winograd's and the tap path's shapes, whose
 * workspace is the largest. */
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "herd/core.h"
#include "herd/model.h"

#define STEM "input 3x16x16\nconv 64 3 pad=1 bias=0\nbatchnorm\n"
#define TAIL                                                                                                         \
    "conv 64 3 pad=1 bias=0\nbatchnorm\nrelu\nconv 64 3 stride=2 pad=1 bias=0\nbatchnorm\nrelu\nconv 64 3 pad=1 "  \
    "bias=0\nrelu\ngap\ndense 5\n"
static const char *RELU_POOL = STEM "relu\nmaxpool 3 stride=2 pad=1\n" TAIL; /* ResNet's stem order */
static const char *POOL_RELU = STEM "maxpool 3 stride=2 pad=1\nrelu\n" TAIL;

enum { B = 6, IN = 3 * 16 * 16, K = 5 };

static herd_model *make(const char *spec, const char *backend, int reuse) {
    herd_model *m = NULL;
    herd_error err = {0};
    if (herd_model_parse(&m, spec, "plan.spec", &err)) {
        fprintf(stderr, "setup: %s\n", err.msg);
        exit(1);
    }
    herd_model_set_memory_reuse(m, reuse);
    if (herd_model_prepare(m, backend, B, 2, &err)) {
        fprintf(stderr, "setup: %s\n", err.msg);
        exit(1);
    }
    herd_model_init_params(m, 7);
    herd_rng rng;
    herd_rng_init(&rng, 11, 0);
    float *x = herd_model_input(m);
    for (int i = 0; i < B * IN; i++) x[i] = herd_rng_uniform(&rng) * 2.0f - 1.0f;
    return m;
}

/* One training pass of each; 1 when the losses and gradients are the same bits. */
static int same_step(herd_model *a, herd_model *b, const char *what) {
    int32_t labels[B];
    for (int i = 0; i < B; i++) labels[i] = (i * 3 + 1) % K;
    herd_error err = {0};
    float la, lb;
    CHECK(herd_model_forward_backward(a, labels, B, 1.0f, &la, NULL, &err) == HERD_OK, "%s: %s", what, err.msg);
    CHECK(herd_model_forward_backward(b, labels, B, 1.0f, &lb, NULL, &err) == HERD_OK, "%s: %s", what, err.msg);
    int64_t n, nb;
    herd_model_params(a, &n), herd_model_params(b, &nb);
    CHECK(n == nb, "%s: %lld vs %lld parameters", what, (long long)n, (long long)nb);
    const float *ga = herd_model_grads(a), *gb = herd_model_grads(b);
    int64_t nonzero = 0;
    for (int64_t i = 0; i < n; i++) nonzero += ga[i] != 0.0f;
    printf("%s: loss %.7f / %.7f, %lld of %lld gradients non-zero\n", what, la, lb, (long long)nonzero, (long long)n);
    CHECK(nonzero > n / 2, "%s: the step reached most parameters", what);
    return memcmp(&la, &lb, sizeof la) == 0 && memcmp(ga, gb, (size_t)n * sizeof(float)) == 0;
}

static void relu_before_pool(const char *backend) {
    herd_model *a = make(RELU_POOL, backend, 1), *b = make(POOL_RELU, backend, 1);
    char what[64];
    snprintf(what, sizeof what, "%s: relu before maxpool", backend);
    CHECK(same_step(a, b, what), "%s: the loss or gradients differ from the pool-then-ReLU network", what);
    float *bn_out, *bn_dout, *relu_out, *relu_dout;
    int64_t per;
    herd_model_layer_buffers(a, 1, &bn_out, &bn_dout, &per);
    herd_model_layer_buffers(a, 2, &relu_out, &relu_dout, &per);
    CHECK(relu_out == bn_out && relu_dout == bn_dout, "%s: the ReLU kept buffers of its own", what);
    herd_model_destroy(a), herd_model_destroy(b);
}

static void workspace_by_liveness(void) {
    herd_model *a = make(RELU_POOL, "cpu", 1), *b = make(RELU_POOL, "cpu", 0);
    CHECK(same_step(a, b, "cpu: workspace per node vs shared"), "workspace per node: other bits than one shared block");
    size_t ra, pa, rb, pb;
    herd_model_activation_bytes(a, &ra, &pa);
    herd_model_activation_bytes(b, &rb, &pb);
    printf("planned region: %zu bytes with reuse, %zu without\n", ra, rb);
    CHECK(ra < rb && pa > pb, "reuse plans %zu bytes (%zu plain), no reuse %zu (%zu plain)", ra, pa, rb, pb);
    herd_model_destroy(a), herd_model_destroy(b);
}

int main(void) {
    relu_before_pool("ref");
    relu_before_pool("cpu");
    workspace_by_liveness();
    return check_summary();
}
