/* CIFAR-10 binary batches: each record is one label byte then 3072 pixel bytes as
 * R, G, B planes of 32x32, which is already the NCHW layout herd uses. */
#include "herd/data.h"
#include "io/input_file.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/stat.h>

#define CIFAR_PIXELS 3072
#define CIFAR_RECORD (1 + CIFAR_PIXELS)
#define CIFAR_CLASSES 10

/* Sizes every file first so that one allocation holds all of them and the
 * total is known to be backed by real bytes. */
static herd_status cifar_file_records(const char *path, int64_t *records, herd_error *err) {
    struct stat sb;
    int fd;
    herd_status st = herdi_input_open(path, &fd, &sb, err);
    if (st) return st;
    close(fd);
    if (sb.st_size <= 0 || sb.st_size % CIFAR_RECORD != 0)
        return herd_fail(err, HERD_EFORMAT,
                         "%s: size %lld bytes is not a positive multiple of the %d-byte CIFAR-10 record", path,
                         (long long)sb.st_size, CIFAR_RECORD);
    *records = (int64_t)(sb.st_size / CIFAR_RECORD);
    return HERD_OK;
}

static herd_status cifar_read_file(const char *path, int64_t records, uint8_t *images, int32_t *labels,
                                   herd_error *err) {
    FILE *f;
    herd_status st = herdi_input_fopen(path, &f, err);
    if (st) return st;
    for (int64_t r = 0; r < records; r++) {
        uint8_t label;
        if (fread(&label, 1, 1, f) != 1 ||
            fread(images + (size_t)r * CIFAR_PIXELS, 1, CIFAR_PIXELS, f) != CIFAR_PIXELS) {
            st = herd_fail(err, ferror(f) ? HERD_EIO : HERD_EFORMAT, "%s: short read in record %lld (file changed?)",
                           path, (long long)r);
            break;
        }
        if (label >= CIFAR_CLASSES) {
            st = herd_fail(err, HERD_EFORMAT, "%s: record %lld has label %d; CIFAR-10 labels are 0..9", path,
                           (long long)r, label);
            break;
        }
        labels[r] = label;
    }
    fclose(f);
    return st;
}

herd_status herd_cifar10_open(herd_dataset **out, const char *const *paths, int npaths, herd_error *err) {
    int64_t *counts = NULL;
    uint8_t *images = NULL;
    int32_t *labels = NULL;
    herd_status st;
    *out = NULL;
    if (npaths <= 0) {
        st = herd_fail(err, HERD_EARG, "CIFAR-10: no batch files given");
        goto fail;
    }
    counts = herd_calloc_array((size_t)npaths, sizeof *counts);
    if (!counts) {
        st = herd_fail(err, HERD_ENOMEM, "%s: out of memory", paths[0]);
        goto fail;
    }
    int64_t n = 0;
    for (int i = 0; i < npaths; i++) {
        st = cifar_file_records(paths[i], &counts[i], err);
        if (st != HERD_OK) goto fail;
        n += counts[i]; /* each count is bounded by a real file size, so no overflow */
    }
    images = herd_malloc_array((size_t)n, CIFAR_PIXELS);
    labels = herd_malloc_array((size_t)n, sizeof *labels);
    if (!images || !labels) {
        st = herd_fail(err, HERD_ENOMEM, "%s: out of memory for %lld CIFAR-10 records", paths[0], (long long)n);
        goto fail;
    }
    int64_t at = 0;
    for (int i = 0; i < npaths; i++) {
        st = cifar_read_file(paths[i], counts[i], images + (size_t)at * CIFAR_PIXELS, labels + at, err);
        if (st != HERD_OK) goto fail;
        at += counts[i];
    }
    free(counts);
    char source[512];
    if (npaths == 1)
        snprintf(source, sizeof source, "%s", paths[0]);
    else
        snprintf(source, sizeof source, "%.480s (+%d more)", paths[0], npaths - 1);
    int64_t xd[4] = {n, 3, 32, 32};
    return herd_dataset_from_memory(out, herd_tensor_make(HERD_U8, 4, xd, images),
                                    herd_tensor_make(HERD_I32, 1, &n, labels), CIFAR_CLASSES, source, err);
fail:
    free(counts);
    free(images);
    free(labels);
    return st;
}
