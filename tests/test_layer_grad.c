/* The graph-era layer kinds through whole models on the reference backend: every parameter
 * gradient of layernorm, concat (images and vectors), a three-way add and projection
 * shortcuts against central differences of the model's loss, which also checks the input
 * gradients each kind passes back (they reach the parameters of the layers before it). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "herd/model.h"

typedef struct fd_ctx {
    herd_model *m;
    const int32_t *labels;
    int B, P, K; /* P positions of K logits per sample */
} fd_ctx;

/* mean cross-entropy in double over every position of the logits of a fresh forward
 * (training mode, no dropout) */
static double model_loss(fd_ctx *c) {
    herd_error err = {0};
    if (herd_model_forward(c->m, c->B, 1, &err)) return NAN;
    const float *y = herd_model_output(c->m);
    int K = c->K, rows = c->B * c->P;
    double total = 0;
    for (int r = 0; r < rows; r++) {
        double mx = -INFINITY, s = 0;
        for (int k = 0; k < K; k++) mx = fmax(mx, y[r * K + k]);
        for (int k = 0; k < K; k++) s += exp(y[r * K + k] - mx);
        total += log(s) + mx - y[r * K + c->labels[r]];
    }
    return total / rows;
}

static void check_spec(const char *name, const char *spec, int B, const char *backend) {
    printf("%s\n", name);
    herd_error err = {0};
    herd_model *m = NULL;
    CHECK(herd_model_parse(&m, spec, name, &err) == HERD_OK, "%s", err.msg);
    if (!m) return;
    herd_model_init_params(m, 5);
    CHECK(herd_model_prepare(m, backend, B, 2, &err) == HERD_OK, "%s", err.msg);
    int c, h, w;
    herd_layer_info last; /* a class per sample, or per position of (T,K) logits */
    herd_model_layer(m, herd_model_layer_count(m) - 1, &last);
    int K = (int)last.dims[last.ndim - 1], P = (int)(herd_model_target_bytes(m) / sizeof(int32_t));
    herd_model_input_shape(m, &c, &h, &w);
    herd_rng r;
    herd_rng_init(&r, 11, 0);
    float *x = herd_model_input(m);
    for (int64_t i = 0; i < (int64_t)B * c * h * w; i++) x[i] = 2.0f * herd_rng_uniform(&r) - 1.0f;
    int32_t *labels = malloc((size_t)(B * P) * sizeof *labels);
    for (int i = 0; i < B * P; i++) labels[i] = (int32_t)herd_rng_below(&r, (uint32_t)K);
    /* batch-norm-free models: the running statistics do not move between evaluations */
    herd_model_forward(m, B, 1, &err);
    herd_model_loss(m, labels, B, NULL);
    herd_model_backward(m, labels, B, 1.0f);
    int64_t np;
    float *p = herd_model_params(m, &np);
    float *g = malloc((size_t)np * sizeof *g);
    memcpy(g, herd_model_grads(m), (size_t)np * sizeof *g);
    fd_ctx ctx = {m, labels, B, P, K};
    double worst = 0;
    const float eps = 3e-3f;
    for (int i = 0; i < herd_model_param_count(m); i++) {
        const herd_param_info *pi = herd_model_param(m, i);
        for (int64_t k = 0; k < pi->numel; k++) {
            float *v = p + pi->offset + k, orig = *v;
            *v = orig + eps;
            double up = *v, lp = model_loss(&ctx);
            *v = orig - eps;
            double dn = *v, lm = model_loss(&ctx);
            *v = orig;
            double fd = (lp - lm) / (up - dn), an = g[pi->offset + k], e = fabs(an - fd);
            if (e > worst) worst = e;
            char label[160];
            snprintf(label, sizeof label, "%s %s[%lld]: backward vs finite difference", name, pi->name, (long long)k);
            CHECK_CLOSE(an, fd, 2e-3, 2e-2, label);
        }
    }
    printf("  %lld parameters, max |analytic - fd| = %.3g (atol 2e-3 rtol 2e-2, eps %g)\n", (long long)np, worst,
           (double)eps);
    free(g);
    free(labels);
    herd_model_destroy(m);
}

int main(void) {
    check_spec("layernorm", "input 2x3x5\nconv 4 3 pad=1\nlayernorm tanh\nflatten\ndense 7\nlayernorm eps=1e-3\n"
               "dense 3\n", 3, "ref");
    check_spec("concat and add", "input 2x6x6\nconv 3 3 pad=1 tanh name=a\nconv 2 1 from=a name=b\n"
               "conv 4 3 pad=1 from=a sigmoid name=c\nconcat b,c,a\nconv 3 1 stride=2 name=main\n"
               "conv 3 1 stride=2 from=a name=proj\navgpool 2 from=a\nadd main,proj,avgpool1 tanh\ngap name=g\n"
               "dense 4 from=g name=v1\ndense 2 from=g tanh name=v2\nconcat v1,v2\ndense 3\n", 2, "ref");
    /* attention (all keys, and causal) on both backends, dense per position, per-position labels */
    const char *attn = "input 40\nreshape 5x8\nposemb std=0.5 name=x\ndense 24\nattention 2\ndense 8 tanh name=p\nadd x,p\n"
                       "layernorm\ndense 18\nattention 3 causal=1\ndense 4\n";
    check_spec("attention (ref)", attn, 2, "ref");
    check_spec("attention (cpu)", attn, 3, "cpu");
    /* the mobile kinds: depthwise, grouped and dilated convs, relu6, hardswish, silu, hardsigmoid and
     * a squeeze-and-excitation gate (gap -> 1x1 convs on the vector -> per-channel mul), a mul of one
     * shape */
    static const char *mobile = "input 3x7x7\nconv 4 3 pad=1 relu6 name=a\nconv 4 3 pad=1 groups=4 hardswish name=dw\n"
               "gap\nconv 2 1 relu\nconv 4 1 hardsigmoid name=gate\nmul dw,gate name=se\n"
               "conv 6 3 pad=2 dilation=2 groups=2 tanh name=dl\nconv 6 1 sigmoid name=p\nconv 6 1 from=dl\n"
               "mul p name=m\nslice 0 2 name=s1\nslice 2 6 from=m\nconv 4 1 tanh name=c9\nconcat s1,c9\nshuffle 3\n"
               "gap\ndense 3\n";
    check_spec("mobile", mobile, 2, "ref");
    check_spec("mobile (cpu backend, 2 threads)", mobile, 4, "cpu");
    /* ConvNeXt's kinds: channels-last permutes around a layer norm and per-position dense layers, a
     * layer scale, the head's layer norm on a permuted (C,1,1) vector */
    static const char *convnext = "input 3x5x4\nconv 4 3 pad=1 groups=1 name=a\npermute 1,2,0\nlayernorm eps=1e-6\n"
               "dense 6 positions=1 gelu\ndense 4 positions=1\npermute 2,0,1\nscale init=0.5\nadd a tanh\ngap\n"
               "permute 1,2,0\nlayernorm\npermute 2,0,1\nflatten\nscale\ndense 3\n";
    check_spec("convnext kinds", convnext, 2, "ref");
    check_spec("convnext kinds (cpu backend, 2 threads)", convnext, 3, "cpu");
    return check_summary();
}
