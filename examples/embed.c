/* Embedding herd in a C program: build a model from spec text, train it on arrays in memory,
 * predict. Two noisy rings (inner = class 0, outer = class 1), a small MLP, Adam.
 * Build: cc embed.c $(pkg-config --cflags --libs herd) -o embed */
#include <herd/herd.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#define N 2000

int main(void) {
    static float x[N * 2], probs[N * 2];
    static int32_t y[N];
    herd_rng rng;
    herd_rng_init(&rng, 42, 0);
    for (int i = 0; i < N; i++) { /* class = which ring the point lies on */
        float angle = 6.2831853f * herd_rng_uniform(&rng), radius;
        y[i] = i % 2;
        radius = (y[i] ? 2.0f : 1.0f) + 0.2f * herd_rng_normal(&rng);
        x[2 * i] = radius * cosf(angle), x[2 * i + 1] = radius * sinf(angle);
    }
    herd_error err = {0};
    herd_model *m = NULL;
    if (herd_model_create(&m, "input 2\ndense 32 relu\ndense 32 relu\ndense 2\n", 64, 1, 7, &err)) goto fail;
    herd_train_config cfg = herd_train_defaults();
    cfg.epochs = 20, cfg.batch = 64, cfg.lr = 3e-3f, cfg.seed = 1;
    herd_tensor xt = herd_tensor_make(HERD_F32, 2, (int64_t[]){N, 2}, x); /* N samples of 2 features */
    herd_tensor yt = herd_tensor_make(HERD_I32, 1, (int64_t[]){N}, y);
    if (herd_fit(m, &xt, &yt, &cfg, NULL, &err)) goto fail;
    if (herd_predict(m, &xt, probs, &err)) goto fail;
    int hits = 0;
    for (int i = 0; i < N; i++) hits += (probs[2 * i + 1] > probs[2 * i]) == y[i];
    printf("training accuracy: %.3f\n", (double)hits / N);
    if (herd_model_save(m, "embed.safetensors", &err)) goto fail;
    herd_model_destroy(m);
    return hits > N * 9 / 10 ? 0 : 1;
fail:
    fprintf(stderr, "embed: %s\n", err.msg);
    herd_model_destroy(m);
    return 1;
}
