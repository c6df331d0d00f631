/* The input normalisation a model's weights carry (herd_model_set_input_norm): exact round
 * trip through herd_model_save/load (safetensors metadata), cleared by a file without it,
 * bad values refused, and herd_predict applying it to raw inputs exactly as a model without
 * it fed with (x - mean) / std by hand. */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "herd/herd.h"

static const char *SPEC = "input 2x6x6\nconv 4 3 relu\nflatten\ndense 3\n";
enum { N = 5, C = 2, PER = 2 * 6 * 6, K = 3 };

static herd_model *make(void) {
    herd_model *m = NULL;
    herd_error err = {0};
    if (herd_model_create(&m, SPEC, N, 1, 9, &err)) {
        fprintf(stderr, "setup: %s\n", err.msg);
        exit(1);
    }
    return m;
}

int main(void) {
    char dir[] = "/tmp/herd_norm_XXXXXX", with[64], without[64];
    if (!mkdtemp(dir)) return 1;
    snprintf(with, sizeof with, "%s/with.st", dir);
    snprintf(without, sizeof without, "%s/without.st", dir);
    herd_error err = {0};
    const double mean[C] = {0.1234567890123, -2.5}, std[C] = {0.3333333333333333, 0.0}; /* std 0 divides by 1 */
    herd_model *a = make(), *b = make(), *plain = make();
    CHECK(herd_model_input_norm(a) == NULL, "a new model has no normalisation");
    CHECK(herd_model_set_input_norm(a, mean, std, &err) == HERD_OK, "%s", err.msg);
    const double bad_std[C] = {0.5, -1.0}, bad_mean[C] = {NAN, 0.0};
    CHECK(herd_model_set_input_norm(b, mean, bad_std, &err) == HERD_EARG, "a negative std is refused");
    CHECK(herd_model_set_input_norm(b, bad_mean, std, &err) == HERD_EARG, "a NaN mean is refused");
    CHECK(herd_model_input_norm(b) == NULL, "a refused normalisation leaves none");

    CHECK(herd_model_save(a, with, &err) == HERD_OK, "%s", err.msg);
    CHECK(herd_model_save(plain, without, &err) == HERD_OK, "%s", err.msg);
    CHECK(herd_model_load(b, with, &err) == HERD_OK, "%s", err.msg);
    const double *got = herd_model_input_norm(b);
    CHECK(got && memcmp(got, mean, sizeof mean) == 0 && memcmp(got + C, std, sizeof std) == 0,
          "save/load does not give back the same doubles");

    /* herd_predict on raw x == a model without normalisation on (x - mean) / std */
    float x[N * PER], xn[N * PER], pa[N * K], pp[N * K];
    herd_rng rng;
    herd_rng_init(&rng, 4, 0);
    for (int i = 0; i < N * PER; i++) x[i] = herd_rng_uniform(&rng);
    for (int n = 0; n < N; n++)
        for (int c = 0; c < C; c++)
            for (int i = 0; i < PER / C; i++) {
                int k = (n * C + c) * (PER / C) + i;
                xn[k] = (x[k] - (float)mean[c]) * (std[c] > 0 ? (float)(1.0 / std[c]) : 1.0f);
            }
    CHECK(herd_model_load(plain, with, &err) == HERD_OK, "%s", err.msg); /* same weights as a and b */
    CHECK(herd_model_set_input_norm(plain, NULL, NULL, &err) == HERD_OK, "clearing");
    const int64_t dims[4] = {N, C, 6, 6};
    herd_tensor xt = herd_tensor_make(HERD_F32, 4, dims, x), xnt = herd_tensor_make(HERD_F32, 4, dims, xn);
    CHECK(herd_predict(b, &xt, pa, &err) == HERD_OK, "%s", err.msg);
    CHECK(herd_predict(plain, &xnt, pp, &err) == HERD_OK, "%s", err.msg);
    CHECK(memcmp(pa, pp, sizeof pa) == 0, "herd_predict does not normalise as stated");
    CHECK(herd_predict(plain, &xt, pp, &err) == HERD_OK, "%s", err.msg);
    CHECK(memcmp(pa, pp, sizeof pa) != 0, "the normalisation changes nothing here: the check above cannot fail");
    /* samples that do not fit the model's input: one line naming both shapes */
    const int64_t wrong[4] = {N, C, 6, 5};
    herd_tensor bad = herd_tensor_make(HERD_F32, 4, wrong, x);
    CHECK(herd_predict(plain, &bad, pp, &err) == HERD_ESHAPE &&
              strcmp(err.msg, "herd_predict: samples are 2x6x5 but the model's input is 2x6x6") == 0,
          "wrong shape: %s", err.msg);
    /* u8 samples: k/255 as the readers give */
    uint8_t xu[N * PER];
    for (int i = 0; i < N * PER; i++) xu[i] = (uint8_t)(i * 37 % 256), x[i] = (float)xu[i] / 255.0f;
    herd_tensor xut = herd_tensor_make(HERD_U8, 4, dims, xu);
    CHECK(herd_predict(plain, &xut, pa, &err) == HERD_OK && herd_predict(plain, &xt, pp, &err) == HERD_OK &&
              memcmp(pa, pp, sizeof pa) == 0,
          "u8 samples do not predict as their k/255 floats: %s", err.msg);

    /* weights without the metadata clear it */
    CHECK(herd_model_load(b, without, &err) == HERD_OK, "%s", err.msg);
    CHECK(herd_model_input_norm(b) == NULL, "loading weights without a normalisation keeps the old one");

    herd_model_destroy(a);
    herd_model_destroy(b);
    herd_model_destroy(plain);
    unlink(with);
    unlink(without);
    rmdir(dir);
    return check_summary();
}
