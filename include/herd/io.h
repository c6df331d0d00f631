/* herd io: safetensors files (https://github.com/huggingface/safetensors):
 * 8-byte little-endian header length, a JSON header, then raw little-endian tensor bytes. */
#ifndef HERD_IO_H
#define HERD_IO_H

#include <stdint.h>

#include "herd/core.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct herd_tensor_ref {
    const char *name;
    herd_dtype dtype;
    int ndim;             /* 0..8 */
    int64_t shape[8];
    const void *data;     /* product(shape) elements of dtype */
} herd_tensor_ref;

/* Writes tensors (in the order given) and optional string metadata pairs
 * (meta_kv[2i] = key, meta_kv[2i+1] = value; n_meta pairs) to path atomically:
 * a temp file beside it, fsync, rename, fsync of the directory. */
herd_status herd_safetensors_write(const char *path, const herd_tensor_ref *tensors, int n, const char *const *meta_kv,
                                   int n_meta, herd_error *err);

typedef struct herd_safetensors herd_safetensors;

/* Reads and validates the whole file: header length bounded by the file size, JSON
 * well-formed, dtypes known, offsets in range, non-overlapping and covering the data.
 * HERD_EFORMAT for a malformed file; HERD_EUNSUPPORTED for valid dtypes herd lacks (F16...). */
herd_status herd_safetensors_open(herd_safetensors **out, const char *path, herd_error *err);
int herd_safetensors_count(const herd_safetensors *st);
/* i-th tensor in header order; data points into the loaded file, aligned for its dtype
 * (a tensor another writer left misaligned is copied). Valid until close. */
const herd_tensor_ref *herd_safetensors_get(const herd_safetensors *st, int i);
/* By name; NULL if absent. */
const herd_tensor_ref *herd_safetensors_find(const herd_safetensors *st, const char *name);
/* Metadata value by key ("__metadata__" string map); NULL if absent. */
const char *herd_safetensors_meta(const herd_safetensors *st, const char *key);
const char *herd_safetensors_path(const herd_safetensors *st);
void herd_safetensors_close(herd_safetensors *st);

#ifdef __cplusplus
}
#endif
#endif
