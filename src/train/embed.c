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

/* The rows of x (N, sample dims...) as one sample's descriptor, checked against m's input. */
static herd_status sample_of(const herd_model *m, const herd_tensor *x, const char *who, herd_tensor *row,
                             herd_error *err) {
    int c, h, w;
    herd_model_input_shape(m, &c, &h, &w);
    if (herd_model_input_count(m) != 1)
        return herd_fail(err, HERD_EUNSUPPORTED, "%s: the model has %d inputs; x feeds one", who,
                         herd_model_input_count(m));
    if (x->ndim < 1 || x->dims[0] < 1 || !x->data || herd_tensor_numel(x) < 0)
        return herd_fail(err, HERD_EARG, "%s: x must be (N, sample dims...) with N >= 1 and data", who);
    *row = herd_tensor_make(x->dtype, x->ndim - 1, x->dims + 1, NULL);
    return herd_data_check_input(row, who, c, h, w, err);
}

herd_status herd_fit(herd_model *m, const herd_tensor *x, const herd_tensor *y, const herd_train_config *cfg,
                     const herd_train_callbacks *cb, herd_error *err) {
    herd_tensor row;
    herd_status st = sample_of(m, x, "herd_fit", &row, err);
    if (st) return st;
    int64_t n = x->dims[0];
    if (y->ndim < 1 || y->dims[0] != n || !y->data || (y->dtype != HERD_I32 && y->dtype != HERD_F32))
        return herd_fail(err, HERD_EARG, "herd_fit: y must be (%lld, target dims...) of i32 class ids or f32 values",
                         (long long)n);
    const int32_t *labels = y->data;
    int32_t classes = 0;
    for (int64_t i = 0; y->dtype == HERD_I32 && y->ndim == 1 && i < n; i++) { /* one class id per sample */
        if (labels[i] < 0 || labels[i] >= herd_model_output_size(m))
            return herd_fail(err, HERD_EARG, "herd_fit: label %d of sample %lld is outside [0, %d)", (int)labels[i],
                             (long long)i, herd_model_output_size(m));
        if (labels[i] + 1 > classes) classes = labels[i] + 1;
    }
    size_t xbytes = herd_tensor_bytes(x), ybytes = herd_tensor_bytes(y);
    if (!xbytes) return herd_fail(err, HERD_EARG, "herd_fit: %lld samples overflow", (long long)n);
    herd_tensor xc = *x, yc = *y;
    xc.data = malloc(xbytes);
    yc.data = malloc(ybytes);
    if (!xc.data || !yc.data) {
        free(xc.data);
        free(yc.data);
        return herd_fail(err, HERD_ENOMEM, "herd_fit: out of memory copying %lld samples", (long long)n);
    }
    memcpy(xc.data, x->data, xbytes);
    memcpy(yc.data, y->data, ybytes);
    herd_dataset *ds = NULL;
    st = herd_dataset_from_memory(&ds, xc, yc, classes < 2 ? 2 : classes, "arrays", err);
    if (st) return st; /* the dataset owns the copies from here, also on failure */
    const double *norm = herd_model_input_norm(m); /* weights trained on normalised inputs keep them */
    herd_dataset *view = NULL;
    int c, h, w;
    herd_model_input_shape(m, &c, &h, &w);
    if (norm) st = herd_dataset_normalize(&view, ds, c, norm, norm + c, err);
    if (!st) st = herd_train(m, view ? view : ds, NULL, cfg, cb, err);
    if (view) herd_dataset_close(view);
    herd_dataset_close(ds);
    return st;
}

herd_status herd_predict(herd_model *m, const herd_tensor *x, float *probs, herd_error *err) {
    herd_tensor sample;
    herd_status st = sample_of(m, x, "herd_predict", &sample, err);
    if (st) return st;
    int K = herd_model_output_size(m);
    int64_t n = x->dims[0], per = herd_tensor_numel(&sample);
    size_t row_bytes = herd_tensor_bytes(&sample);
    int max_batch = herd_model_max_batch(m);
    if (max_batch < 1) return herd_fail(err, HERD_EARG, "herd_predict: the model is not prepared (herd_model_prepare)");
    for (int64_t off = 0; off < n; off += max_batch) {
        int B = (int)(n - off < max_batch ? n - off : max_batch);
        herd_samples_to_f32(x->dtype, (const uint8_t *)x->data + (size_t)off * row_bytes, (size_t)B * (size_t)per,
                            herd_model_input(m));
        herd_model_normalize_input(m, B);
        if ((st = herd_model_forward(m, B, 0, err))) return st;
        herd_model_predictions(m, B, probs + off * K);
    }
    return HERD_OK;
}
