/* The embedding API's conveniences (include/herd/herd.h): build, fit on arrays, predict. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "herd/herd.h"

herd_status herd_model_create(herd_model **out, const char *spec_text, int max_batch, int threads, uint64_t seed,
                              herd_error *err) {
    herd_model *m = NULL;
    herd_status st = herd_model_parse(&m, spec_text, "<spec>", err);
    if (st) return st;
    herd_model_init_params(m, seed);
    if ((st = herd_model_prepare(m, "cpu", max_batch, threads > 0 ? threads : herd_cpu_count(), err))) {
        herd_model_destroy(m);
        return st;
    }
    *out = m;
    return HERD_OK;
}

herd_status herd_fit(herd_model *m, const float *x, const int32_t *y, int64_t n, const herd_train_config *cfg,
                     const herd_train_callbacks *cb, herd_error *err) {
    int c, h, w;
    herd_model_input_shape(m, &c, &h, &w);
    size_t per = (size_t)c * h * w, bytes;
    if (n < 1) return herd_fail(err, HERD_EARG, "herd_fit: no samples");
    if (!herd_mul_size((size_t)n, per * sizeof(float), &bytes))
        return herd_fail(err, HERD_EARG, "herd_fit: %lld samples overflow", (long long)n);
    int32_t classes = 0;
    for (int64_t i = 0; i < n; i++) {
        if (y[i] < 0 || y[i] >= herd_model_output_size(m))
            return herd_fail(err, HERD_EARG, "herd_fit: label %d of sample %lld is outside [0, %d)", (int)y[i],
                             (long long)i, herd_model_output_size(m));
        if (y[i] + 1 > classes) classes = y[i] + 1;
    }
    float *xc = malloc(bytes);
    int32_t *yc = malloc((size_t)n * sizeof *yc);
    if (!xc || !yc) {
        free(xc);
        free(yc);
        return herd_fail(err, HERD_ENOMEM, "herd_fit: out of memory copying %lld samples", (long long)n);
    }
    memcpy(xc, x, bytes);
    memcpy(yc, y, (size_t)n * sizeof *yc);
    herd_dataset *ds = NULL;
    herd_status st = herd_dataset_from_f32(&ds, xc, yc, n, c, h, w, classes < 2 ? 2 : classes, "arrays", err);
    if (st) return st; /* the dataset owns xc and yc from here, also on failure */
    const double *norm = herd_model_input_norm(m); /* weights trained on normalised inputs keep them */
    herd_dataset *view = NULL;
    if (norm) st = herd_dataset_normalize(&view, ds, norm, norm + c, err);
    if (!st) st = herd_train(m, view ? view : ds, NULL, cfg, cb, err);
    if (view) herd_dataset_close(view);
    herd_dataset_close(ds);
    return st;
}

herd_status herd_predict(herd_model *m, const float *x, int64_t n, float *probs, herd_error *err) {
    int c, h, w, K = herd_model_output_size(m);
    herd_model_input_shape(m, &c, &h, &w);
    int64_t per = (int64_t)c * h * w;
    int max_batch = herd_model_max_batch(m);
    if (max_batch < 1) return herd_fail(err, HERD_EARG, "herd_predict: the model is not prepared (herd_model_prepare)");
    for (int64_t off = 0; off < n; off += max_batch) {
        int B = (int)(n - off < max_batch ? n - off : max_batch);
        memcpy(herd_model_input(m), x + off * per, (size_t)B * per * sizeof(float));
        herd_model_normalize_input(m, B);
        herd_status st = herd_model_forward(m, B, 0, err);
        if (st) return st;
        const float *y = herd_model_output(m);
        for (int b = 0; b < B; b++) {
            const float *row = y + (int64_t)b * K;
            float *p = probs + (off + b) * K;
            float mx = row[0];
            for (int k = 1; k < K; k++) mx = row[k] > mx ? row[k] : mx;
            double sum = 0;
            for (int k = 0; k < K; k++) sum += exp((double)row[k] - mx);
            for (int k = 0; k < K; k++) p[k] = (float)(exp((double)row[k] - mx) / sum);
        }
    }
    return HERD_OK;
}
