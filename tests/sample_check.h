/* Dataset helpers for the reader tests: a sample as the model's f32 input, and the check of
 * a dataset's sample descriptors (stored dtype and dims, i32 scalar labels). */
#ifndef HERD_TEST_SAMPLE_CHECK_H
#define HERD_TEST_SAMPLE_CHECK_H

#include <string.h>

#include "herd/data.h"

/* Sample i converted as a batch is (herd_dataset_batch): x gets numel(ds->x) floats. */
static inline herd_status get_f32(const herd_dataset *ds, int64_t i, float *x, int32_t *y, herd_error *err) {
    return herd_dataset_batch(ds, &i, 1, x, y, err);
}

/* 1 when ds's samples are `dtype` of dims `shape` ("3x32x32", "20") with one i32 label each. */
static inline int sample_is(const herd_dataset *ds, herd_dtype dtype, const char *shape) {
    char buf[96];
    return ds && ds->x.dtype == dtype && strcmp(herd_tensor_shape_str(&ds->x, buf, sizeof buf), shape) == 0 &&
           ds->y.dtype == HERD_I32 && ds->y.ndim == 0;
}

/* "u8 1x28x28" for messages (a static buffer: one call per message). */
static inline const char *sample_desc(const herd_dataset *ds) {
    static char buf[128];
    char shape[96];
    if (!ds) return "(none)";
    snprintf(buf, sizeof buf, "%s %s, y %s ndim %d", herd_dtype_name(ds->x.dtype),
             herd_tensor_shape_str(&ds->x, shape, sizeof shape), herd_dtype_name(ds->y.dtype), ds->y.ndim);
    return buf;
}

#endif
