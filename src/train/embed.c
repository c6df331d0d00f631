/* The embedding API's conveniences (include/herd/herd.h): build, fit on arrays, predict. */
#include <math.h>
#include <stdio.h>
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

/* x[0..inputs): one (N, input dims...) array per model input, in order; checked against the
 * model's inputs through a dataset descriptor of their rows (no data), N into *n. */
static herd_status check_arrays(const herd_model *m, const herd_tensor *x, const char *who, int64_t *n,
                                herd_error *err) {
    int nx = herd_model_input_count(m);
    herd_dataset d;
    memset(&d, 0, sizeof d);
    snprintf(d.source, sizeof d.source, "%s", who);
    *n = x[0].ndim >= 1 ? x[0].dims[0] : 0;
    for (int k = 0; k < nx; k++) {
        if (x[k].ndim < 1 || x[k].dims[0] != *n || *n < 1 || !x[k].data || herd_tensor_numel(&x[k]) < 0)
            return herd_fail(err, HERD_EARG, "%s: x[%d] must be (N, sample dims...) with the same N >= 1 as x[0], and "
                             "data", who, k);
        herd_tensor row = herd_tensor_make(x[k].dtype, x[k].ndim - 1, x[k].dims + 1, NULL);
        if (k) d.more[k - 1] = row;
        else d.x = row;
    }
    d.n_more = nx - 1;
    return herd_model_check_data(m, &d, err);
}

herd_status herd_fit(herd_model *m, const herd_tensor *x, const herd_tensor *y, const herd_train_config *cfg,
                     const herd_train_callbacks *cb, herd_error *err) {
    int64_t n;
    herd_status st = check_arrays(m, x, "herd_fit", &n, err);
    if (st) return st;
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
    int nx = herd_model_input_count(m);
    herd_tensor xc[HERD_MAX_FIELDS], yc = *y;
    int ok = (yc.data = malloc(herd_tensor_bytes(y))) != NULL;
    for (int k = 0; k < nx; k++) {
        xc[k] = x[k];
        size_t bytes = herd_tensor_bytes(&x[k]);
        xc[k].data = ok && bytes ? malloc(bytes) : NULL;
        if (xc[k].data) memcpy(xc[k].data, x[k].data, bytes);
        else ok = 0;
    }
    if (!ok) {
        for (int k = 0; k < nx; k++) free(xc[k].data);
        free(yc.data);
        return herd_fail(err, HERD_ENOMEM, "herd_fit: out of memory copying %lld samples", (long long)n);
    }
    memcpy(yc.data, y->data, herd_tensor_bytes(y));
    herd_dataset *ds = NULL;
    st = herd_dataset_from_memory_fields(&ds, xc, nx, yc, classes < 2 ? 2 : classes, "arrays", err);
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
    int64_t n;
    herd_status st = check_arrays(m, x, "herd_predict", &n, err);
    if (st) return st;
    int K = herd_model_output_size(m), nx = herd_model_input_count(m);
    int max_batch = herd_model_max_batch(m);
    if (max_batch < 1) return herd_fail(err, HERD_EARG, "herd_predict: the model is not prepared (herd_model_prepare)");
    for (int64_t off = 0; off < n; off += max_batch) {
        int B = (int)(n - off < max_batch ? n - off : max_batch);
        for (int k = 0; k < nx; k++) { /* each array straight into its input: f32 values or int32 ids */
            herd_tensor in = herd_model_input_desc(m, k, NULL), row = herd_tensor_make(x[k].dtype, x[k].ndim - 1, x[k].dims + 1, NULL);
            int64_t per = herd_tensor_numel(&row);
            const uint8_t *from = (const uint8_t *)x[k].data + (size_t)off * herd_tensor_bytes(&row);
            if (in.dtype == HERD_I32) memcpy(in.data, from, (size_t)B * (size_t)per * 4);
            else herd_samples_to_f32(x[k].dtype, from, (size_t)B * (size_t)per, in.data);
        }
        herd_model_normalize_input(m, B);
        if ((st = herd_model_forward(m, B, 0, err))) return st;
        herd_model_predictions(m, B, probs + off * K);
    }
    return HERD_OK;
}
