/* Reading herd's shard format (.herd; written by shard_writer.c): a fixed header, an index of
 * (offset, length, label, CRC32C) per record, then records stored ready to train (u8 or f32
 * NCHW). Shards are memory-mapped; open checks the header and the index only, get() checks one
 * record's CRC. */
#include "herd/data.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "data/mapped_read.h"
#include "data/shard_format.h"
#include "io/crc32c.h"
#include "io/input_file.h"

/* Little-endian fields, read byte by byte so the format is the same on any host. */
static uint64_t get_le(const uint8_t *p, int bytes) {
    uint64_t v = 0;
    for (int i = 0; i < bytes; i++) v |= (uint64_t)p[i] << (8 * i);
    return v;
}

/* ---- reading ---- */

typedef struct shard_file {
    char *path;
    uint8_t *map;
    size_t map_len;
    const uint8_t *index;
    int64_t first; /* global index of its record 0 */
    int64_t count;
    int dtype;
    shard_fields fields; /* version 2 (dtype SHARD_FIELDS): its fields and target */
} shard_file;

typedef struct shard_impl {
    shard_file *files;
    int nfiles;
    size_t sample;
} shard_impl;

static void shard_impl_free(shard_impl *im) {
    if (!im) return;
    for (int i = 0; i < im->nfiles; i++) {
        if (im->files[i].map) munmap(im->files[i].map, im->files[i].map_len);
        free(im->files[i].path);
    }
    free(im->files);
    free(im);
}

/* Maps one shard and checks its header and index (never its records). */
static herd_status shard_map(shard_file *f, const char *path, int shape[4], herd_error *err) {
    struct stat sb;
    int fd;
    herd_status st = herdi_input_open(path, &fd, &sb, err);
    if (st) return st;
    if (sb.st_size < (off_t)HEADER_BYTES) {
        close(fd);
        return herd_fail(err, HERD_EFORMAT, "%s: %lld bytes is too short for a shard header (%u)", path,
                         (long long)sb.st_size, HEADER_BYTES);
    }
    f->map_len = (size_t)sb.st_size;
    void *map = mmap(NULL, f->map_len, PROT_READ, MAP_PRIVATE, fd, 0);
    close(fd);
    if (map == MAP_FAILED) return herd_fail(err, HERD_EIO, "%s: cannot map: %s", path, strerror(errno));
    f->map = map;
    const uint8_t *h = f->map;
    if (memcmp(h, SHARD_MAGIC, 8) != 0)
        return herd_fail(err, HERD_EFORMAT, "%s: bad magic '%.8s' (expected %s: not a herd shard)", path,
                         (const char *)h, SHARD_MAGIC);
    uint32_t crc = herd_crc32c(0, h, 60);
    if (crc != (uint32_t)get_le(h + 60, 4))
        return herd_fail(err, HERD_EFORMAT, "%s: header CRC mismatch (stored %08x, computed %08x)", path,
                         (unsigned)get_le(h + 60, 4), (unsigned)crc);
    uint32_t version = (uint32_t)get_le(h + 8, 4);
    if (version != SHARD_VERSION && version != SHARD_VERSION_FIELDS)
        return herd_fail(err, HERD_EUNSUPPORTED, "%s: shard version %u (expected %u, or %u for several fields)", path,
                         (unsigned)version, SHARD_VERSION, SHARD_VERSION_FIELDS);
    int dtype = (int)get_le(h + 12, 4);
    uint64_t index_want = HEADER_BYTES; /* where the index starts: after version 2's fields block */
    size_t rec_bytes;
    uint64_t count = get_le(h + 16, 8), index_at = get_le(h + 40, 8), data_at = get_le(h + 48, 8);
    int c = (int)get_le(h + 24, 4), hh = (int)get_le(h + 28, 4), w = (int)get_le(h + 32, 4);
    int classes = (int)get_le(h + 36, 4);
    if (version == SHARD_VERSION_FIELDS) {
        char why[256];
        if (dtype != SHARD_FIELDS || c != 0 || hh != 0 || w != 0 || classes < 0)
            return herd_fail(err, HERD_EFORMAT, "%s: version 2 shard with dtype %d, shape %dx%dx%d and %d classes "
                             "(expected 3, 0x0x0 and >= 0)", path, dtype, c, hh, w, classes);
        if (herdi_shard_fields_decode(h + HEADER_BYTES, f->map_len - HEADER_BYTES, &f->fields, why, sizeof why))
            return herd_fail(err, HERD_EFORMAT, "%s: %s", path, why);
        if ((f->fields.y.dtype == HERD_F32) != (classes == 0))
            return herd_fail(err, HERD_EFORMAT, "%s: %s targets with %d classes (expected 0 for f32 targets, >= 1 for "
                             "i32 labels)", path, herd_dtype_name(f->fields.y.dtype), classes);
        index_want += herdi_shard_fields_block_bytes(f->fields.n);
        rec_bytes = f->fields.sample_bytes + f->fields.target_bytes;
    } else {
        if (dtype != HERD_SHARD_U8 && dtype != HERD_SHARD_F32)
            return herd_fail(err, HERD_EFORMAT, "%s: dtype %d (expected 1 = u8 or 2 = f32)", path, dtype);
        /* a sample fits the file (or, in a shard of no records, 2^31 values), by division: no overflow */
        uint64_t shape_cap = count > 0 ? f->map_len - HEADER_BYTES : (uint64_t)INT32_MAX;
        if (c <= 0 || hh <= 0 || w <= 0 || classes <= 0 || (uint64_t)c * hh > shape_cap ||
            (uint64_t)w > shape_cap / ((uint64_t)c * hh))
            return herd_fail(err, HERD_EFORMAT, "%s: bad sample shape %dx%dx%d or %d classes", path, c, hh, w, classes);
        rec_bytes = (size_t)c * hh * w * (dtype == HERD_SHARD_U8 ? 1 : 4);
    }
    /* every length from the file is bounded by the file size before it is trusted */
    if (index_at != index_want || index_at > f->map_len || count > (f->map_len - index_at) / ENTRY_BYTES ||
        data_at < index_at + count * ENTRY_BYTES || data_at > f->map_len)
        return herd_fail(err, HERD_EFORMAT, "%s: truncated index: %llu records need %llu bytes, the file has %zu",
                         path, (unsigned long long)count, (unsigned long long)(index_want + count * ENTRY_BYTES),
                         f->map_len);
    f->index = h + index_at;
    crc = herd_crc32c(0, f->index, (size_t)count * ENTRY_BYTES);
    if (crc != (uint32_t)get_le(h + 56, 4))
        return herd_fail(err, HERD_EFORMAT, "%s: index CRC mismatch (stored %08x, computed %08x)", path,
                         (unsigned)get_le(h + 56, 4), (unsigned)crc);
    for (uint64_t r = 0; r < count; r++) {
        const uint8_t *e = f->index + r * ENTRY_BYTES;
        uint64_t off = get_le(e, 8), len = get_le(e + 8, 4), label = get_le(e + 12, 4);
        if (len != rec_bytes || off < data_at || off > f->map_len || len > f->map_len - off)
            return herd_fail(err, HERD_EFORMAT, "%s: record %llu: %llu bytes at %llu (expected %zu within %zu bytes)",
                             path, (unsigned long long)r, (unsigned long long)len, (unsigned long long)off, rec_bytes,
                             f->map_len);
        if (version == SHARD_VERSION && label >= (uint64_t)classes)
            return herd_fail(err, HERD_EFORMAT, "%s: record %llu: label %llu outside [0, %d)", path,
                             (unsigned long long)r, (unsigned long long)label, classes);
    }
    f->count = (int64_t)count;
    f->dtype = dtype;
    shape[0] = c, shape[1] = hh, shape[2] = w, shape[3] = classes;
    return HERD_OK;
}

/* The shard holding sample i (0 <= i < n): the last file whose first record is <= i. */
static const shard_file *shard_file_of(const shard_impl *im, int64_t i) {
    int lo = 0, hi = im->nfiles - 1;
    while (lo < hi) {
        int mid = (lo + hi + 1) / 2;
        if (im->files[mid].first <= i) lo = mid;
        else hi = mid - 1;
    }
    return &im->files[lo];
}

/* get() proper, reading the mapped shard: shard_get runs it under the SIGBUS guard. */
static herd_status shard_get_mapped(const herd_dataset *ds, int64_t i, void *x, void *y, herd_error *err) {
    const shard_impl *im = ds->impl;
    const shard_file *f = shard_file_of(im, i);
    int64_t r = i - f->first;
    const uint8_t *e = f->index + (size_t)r * ENTRY_BYTES;
    const uint8_t *rec = f->map + get_le(e, 8);
    size_t len = (size_t)get_le(e + 8, 4);
    int widen = f->dtype == HERD_SHARD_U8 && ds->x.dtype == HERD_F32; /* a u8 shard among f32 ones */
    /* version 2: the record holds the target after the fields, more than x takes */
    uint32_t crc = widen || f->dtype == SHARD_FIELDS ? herd_crc32c(0, rec, len)
                                                     : herd_crc32c_copy(0, x, rec, len); /* x: ruined on a mismatch */
    if (crc != (uint32_t)get_le(e + 16, 4))
        return herd_fail(err, HERD_EFORMAT, "%s: record %lld: CRC mismatch (stored %08x, computed %08x)", f->path,
                         (long long)r, (unsigned)get_le(e + 16, 4), (unsigned)crc);
    if (f->dtype == SHARD_FIELDS) { /* the fields as get() writes them, then the target */
        memcpy(x, rec, f->fields.sample_bytes);
        memcpy(y, rec + f->fields.sample_bytes, f->fields.target_bytes);
        int32_t label;
        memcpy(&label, y, sizeof label);
        if (f->fields.y.dtype == HERD_I32 && f->fields.y.ndim == 0 && (label < 0 || label >= ds->num_classes))
            return herd_fail(err, HERD_EFORMAT, "%s: record %lld: label %d outside [0, %d)", f->path, (long long)r,
                             (int)label, ds->num_classes);
        return HERD_OK;
    }
    if (widen) herd_samples_to_f32(HERD_U8, rec, im->sample, x);
    int32_t label = (int32_t)get_le(e + 12, 4);
    memcpy(y, &label, sizeof label);
    return HERD_OK;
}

static herd_status shard_get(const herd_dataset *ds, int64_t i, void *x, void *y, herd_error *err) {
    if (i < 0 || i >= ds->n)
        return herd_fail(err, HERD_EARG, "%s: sample %lld out of range [0, %lld)", ds->source, (long long)i,
                         (long long)ds->n);
    return herdi_mapped_get_guarded(shard_file_of(ds->impl, i)->path, shard_get_mapped, ds, i, x, y, err);
}

static void shard_close(herd_dataset *ds) {
    shard_impl_free(ds->impl);
    ds->impl = NULL;
}

static const herd_dataset_ops shard_ops = {shard_get, shard_close, NULL, NULL};

herd_status herd_shards_open(herd_dataset **out, const char *const *paths, int npaths, herd_error *err) {
    herd_status st;
    herd_dataset *ds = NULL;
    shard_impl *im = calloc(1, sizeof *im);
    *out = NULL;
    if (npaths < 1) {
        free(im);
        return herd_fail(err, HERD_EARG, "no shard files given");
    }
    if (!im || !(im->files = calloc((size_t)npaths, sizeof *im->files)) || !(ds = calloc(1, sizeof *ds))) {
        st = herd_fail(err, HERD_ENOMEM, "%s: out of memory", paths[0]);
        goto fail;
    }
    int64_t total = 0;
    int first_shape[4] = {0, 0, 0, 0}, all_u8 = 1;
    for (int i = 0; i < npaths; i++) {
        shard_file *f = &im->files[i];
        int shape[4];
        im->nfiles = i + 1;
        if (!(f->path = strdup(paths[i]))) {
            st = herd_fail(err, HERD_ENOMEM, "%s: out of memory", paths[i]);
            goto fail;
        }
        if ((st = shard_map(f, paths[i], shape, err))) goto fail;
        if (i == 0) memcpy(first_shape, shape, sizeof shape);
        if ((f->dtype == SHARD_FIELDS) != (im->files[0].dtype == SHARD_FIELDS) ||
            (f->dtype == SHARD_FIELDS && !herdi_shard_fields_same(&f->fields, &im->files[0].fields))) {
            st = herd_fail(err, HERD_EFORMAT, "%s: its samples' fields differ from those of %s", paths[i], paths[0]);
            goto fail;
        }
        if (memcmp(shape, first_shape, 3 * sizeof(int)) != 0) {
            st = herd_fail(err, HERD_EFORMAT, "%s: samples are %dx%dx%d but %s has %dx%dx%d", paths[i], shape[0],
                           shape[1], shape[2], paths[0], first_shape[0], first_shape[1], first_shape[2]);
            goto fail;
        }
        if (shape[3] > first_shape[3]) first_shape[3] = shape[3];
        all_u8 &= f->dtype == HERD_SHARD_U8;
        f->first = total;
        total += f->count;
    }
    im->sample = (size_t)first_shape[0] * first_shape[1] * first_shape[2];
    ds->ops = &shard_ops;
    ds->n = total;
    ds->x = herd_tensor_make(all_u8 ? HERD_U8 : HERD_F32, 3,
                             (int64_t[]){first_shape[0], first_shape[1], first_shape[2]}, NULL);
    ds->y = herd_tensor_make(HERD_I32, 0, NULL, NULL);
    ds->num_classes = first_shape[3];
    if (im->files[0].dtype == SHARD_FIELDS) { /* version 2: the fields and target as written */
        const shard_fields *sf = &im->files[0].fields;
        ds->x = sf->field[0];
        ds->n_more = sf->n - 1;
        for (int k = 1; k < sf->n; k++) ds->more[k - 1] = sf->field[k];
        ds->y = sf->y;
    }
    if (npaths == 1) snprintf(ds->source, sizeof ds->source, "%s", paths[0]);
    else snprintf(ds->source, sizeof ds->source, "%.400s (+%d shards)", paths[0], npaths - 1);
    ds->impl = im;
    *out = ds;
    return HERD_OK;
fail:
    shard_impl_free(im);
    free(ds);
    return st;
}
