/* herd data: datasets behind one interface (length, get(i)), readers for IDX
 * (MNIST/Fashion-MNIST, plain or gzip) and CIFAR-10 binary, and the seeded sampler. */
#ifndef HERD_DATA_H
#define HERD_DATA_H

#include <stdint.h>

#include "herd/core.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct herd_dataset herd_dataset;

typedef struct herd_dataset_ops {
    /* x: c*h*w floats (NCHW, one sample), y: class label. Errors name the source and sample. */
    herd_status (*get)(const herd_dataset *ds, int64_t i, float *x, int32_t *y, herd_error *err);
    /* Releases ds->impl only; herd_dataset_close then frees ds itself. */
    void (*close)(herd_dataset *ds);
} herd_dataset_ops;

struct herd_dataset {
    const herd_dataset_ops *ops;
    int64_t n;           /* number of samples */
    int c, h, w;         /* sample shape */
    int num_classes;     /* labels are in [0, num_classes) */
    char source[512];    /* what was opened, for messages */
    void *impl;          /* reader-specific */
};

/* In-memory dataset of 8-bit images scaled to [0,1] by get(); takes ownership of
 * images (n*c*h*w bytes, NCHW) and labels (n), both malloc'd. */
herd_status herd_dataset_from_u8(herd_dataset **out, uint8_t *images, int32_t *labels, int64_t n, int c, int h,
                                 int w, int num_classes, const char *source, herd_error *err);

/* A view of samples [begin, end) of base (base must outlive it): used for --val-split. */
herd_status herd_dataset_slice(herd_dataset **out, herd_dataset *base, int64_t begin, int64_t end, herd_error *err);

/* Calls ops->close, then frees ds; NULL is a no-op. */
void herd_dataset_close(herd_dataset *ds);

/* Fills x (B*c*h*w floats) and y (B) with samples idx[0..B). */
herd_status herd_dataset_batch(const herd_dataset *ds, const int64_t *idx, int B, float *x, int32_t *y,
                               herd_error *err);

/* Generic IDX file (http://yann.lecun.com/exdb/mnist/ format), gzip or plain (detected by
 * content, not name). Only unsigned-byte data (type 0x08) is accepted. On success *data is
 * malloc'd (product of dims bytes) and dims[0..*ndim) are filled (ndim <= 4). */
herd_status herd_idx_read(const char *path, uint8_t **data, int *ndim, int64_t dims[4], herd_error *err);

/* An IDX images file (N,H,W) or (N,C,H,W) plus an IDX labels file (N). num_classes = max label + 1
 * (at least 2). */
herd_status herd_idx_open(herd_dataset **out, const char *images_path, const char *labels_path, herd_error *err);

/* CIFAR-10 binary batches: records of 1 label byte + 3072 bytes (3x32x32). */
herd_status herd_cifar10_open(herd_dataset **out, const char *const *paths, int npaths, herd_error *err);

/* Resolves --data: "fashion-mnist" or "mnist" (Debian's dataset packages under
 * /usr/share/datasets/<name>; when $HERD_DATA_DIR is set, $HERD_DATA_DIR/<name> or else
 * $HERD_DATA_DIR itself), a directory holding IDX files
 * (train-images-idx3-ubyte[.gz], train-labels-idx1-ubyte[.gz], t10k-*), or a
 * CIFAR-10 binary directory (data_batch_1..5.bin, test_batch.bin). Either output may
 * be NULL when not wanted; on failure neither is left open. */
herd_status herd_data_open(const char *spec, herd_dataset **train, herd_dataset **test, herd_error *err);

/* Seeded shuffling sampler: the order of epoch e is a pure function of (seed, e). */
typedef struct herd_sampler {
    int64_t n;
    uint64_t seed;
    int shuffle;
    int64_t *perm; /* n indices of the current epoch */
    int64_t epoch;
} herd_sampler;

herd_status herd_sampler_init(herd_sampler *s, int64_t n, uint64_t seed, int shuffle, herd_error *err);
/* Computes the order of epoch e into s->perm. */
void herd_sampler_set_epoch(herd_sampler *s, int64_t epoch);
void herd_sampler_free(herd_sampler *s);

#ifdef __cplusplus
}
#endif
#endif
