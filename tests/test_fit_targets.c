/* herd_fit and herd_predict with the targets each loss takes: f32 values (mse: a linear
 * regression is learnt), f32 probabilities (bce: predictions are probabilities near the
 * targets' rule), and a target the loss cannot take refused in one line. */
#include <math.h>
#include <string.h>

#include "check.h"
#include "herd/herd.h"

#define N 1024

static float x[N * 2], y[N], pred[N];

static herd_model *fit(const char *spec, const herd_tensor *yt, herd_error *err) {
    herd_model *m = NULL;
    if (herd_model_create(&m, spec, 64, 1, 3, err)) return NULL;
    herd_train_config cfg = herd_train_defaults();
    cfg.epochs = 30, cfg.batch = 64, cfg.lr = 0.05f, cfg.seed = 1, cfg.optimizer = "sgd";
    herd_tensor xt = herd_tensor_make(HERD_F32, 2, (int64_t[]){N, 2}, x);
    if (herd_fit(m, &xt, yt, &cfg, NULL, err) || herd_predict(m, &xt, pred, err)) {
        herd_model_destroy(m);
        return NULL;
    }
    return m;
}

int main(void) {
    herd_rng rng;
    herd_rng_init(&rng, 9, 0);
    for (int i = 0; i < 2 * N; i++) x[i] = herd_rng_normal(&rng);
    herd_error err = {0};
    /* regression: y = 2 x0 - x1 + 0.5 */
    for (int i = 0; i < N; i++) y[i] = 2 * x[2 * i] - x[2 * i + 1] + 0.5f;
    herd_tensor yt = herd_tensor_make(HERD_F32, 1, (int64_t[]){N}, y);
    herd_model *m = fit("input 2\ndense 1\nloss mse\n", &yt, &err);
    CHECK(m != NULL, "mse fit: %s", err.msg);
    double se = 0;
    for (int i = 0; i < N; i++) se += (pred[i] - y[i]) * (pred[i] - y[i]);
    CHECK(sqrt(se / N) < 0.05, "regression rmse %.4f (want < 0.05)", sqrt(se / N));
    herd_model_destroy(m);
    /* binary targets as f32 probabilities: predictions are P(y = 1) */
    for (int i = 0; i < N; i++) y[i] = x[2 * i] + x[2 * i + 1] > 0 ? 1.0f : 0.0f;
    m = fit("input 2\ndense 1\nloss bce\n", &yt, &err);
    CHECK(m != NULL, "bce fit: %s", err.msg);
    int right = 0;
    for (int i = 0; i < N; i++) right += (pred[i] >= 0.5f) == (y[i] > 0.5f) && pred[i] >= 0 && pred[i] <= 1;
    CHECK(right > 0.97 * N, "bce: %d of %d right", right, N);
    herd_model_destroy(m);
    /* f32 values for the cross-entropy: one line saying what the loss takes */
    m = fit("input 2\ndense 2\n", &yt, &err);
    CHECK(m == NULL && strstr(err.msg, "targets are f32") && strstr(err.msg, "cross-entropy loss takes an i32 class") &&
              !strchr(err.msg, '\n'), "xent on f32 targets: '%s'", err.msg);
    return check_summary();
}
