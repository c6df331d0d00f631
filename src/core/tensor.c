/* The typed tensor descriptor: element sizes, element counts with overflow checks, shapes as text. */
#include <stdio.h>
#include <string.h>

#include "herd/core.h"

size_t herd_dtype_size(herd_dtype t) {
    switch (t) {
    case HERD_F32:
    case HERD_I32: return 4;
    case HERD_I64:
    case HERD_F64: return 8;
    case HERD_U8: return 1;
    case HERD_BF16: return 2;
    default: return 0;
    }
}

const char *herd_dtype_name(herd_dtype t) {
    static const char *names[HERD_DTYPE_COUNT] = {"f32", "i32", "i64", "u8", "f64", "bf16"};
    return (unsigned)t < HERD_DTYPE_COUNT ? names[t] : "?";
}

herd_tensor herd_tensor_make(herd_dtype dtype, int ndim, const int64_t *dims, void *data) {
    herd_tensor t;
    memset(&t, 0, sizeof t);
    HERD_ASSERT(ndim >= 0 && ndim <= HERD_MAX_DIMS);
    t.dtype = dtype;
    t.ndim = ndim;
    for (int d = 0; d < ndim; d++) t.dims[d] = dims[d];
    t.data = data;
    return t;
}

int64_t herd_tensor_numel(const herd_tensor *t) {
    int64_t n = 1;
    for (int d = 0; d < t->ndim; d++) {
        if (t->dims[d] < 0) return -1;
        if (t->dims[d] && n > INT64_MAX / t->dims[d]) return -1;
        n *= t->dims[d];
    }
    return n;
}

size_t herd_tensor_bytes(const herd_tensor *t) {
    int64_t n = herd_tensor_numel(t);
    size_t bytes;
    if (n < 0 || (uint64_t)n > SIZE_MAX || !herd_mul_size((size_t)n, herd_dtype_size(t->dtype), &bytes)) return 0;
    return bytes;
}

int herd_tensor_same(const herd_tensor *a, const herd_tensor *b) {
    if (a->dtype != b->dtype || a->ndim != b->ndim) return 0;
    for (int d = 0; d < a->ndim; d++)
        if (a->dims[d] != b->dims[d]) return 0;
    return 1;
}

char *herd_tensor_shape_str(const herd_tensor *t, char *buf, size_t size) {
    if (!size) return buf;
    buf[0] = 0;
    if (t->ndim == 0) {
        snprintf(buf, size, "scalar");
        return buf;
    }
    size_t len = 0;
    for (int d = 0; d < t->ndim && len < size; d++) {
        int k = snprintf(buf + len, size - len, d ? "x%lld" : "%lld", (long long)t->dims[d]);
        if (k < 0) break;
        len += (size_t)k;
    }
    return buf;
}
