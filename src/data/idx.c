/* IDX reader (the MNIST/Fashion-MNIST container), plain or gzip: zlib's gzread passes
 * plain files through, so one path reads both and the bounds checks differ only in how
 * many data bytes the file can possibly hold. */
#include "herd/data.h"
#include "io/input_file.h"

#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <zlib.h>

/* Deflate cannot expand data by more than about 1032:1, so a gzip file of S bytes
 * never yields more than this many bytes: the bound applied before allocating. */
#define DEFLATE_MAX_RATIO 1032u
#define GZ_CHUNK (1u << 30)

static const char *idx_type_name(int t) {
    switch (t) {
    case 0x09: return "signed byte";
    case 0x0B: return "int16";
    case 0x0C: return "int32";
    case 0x0D: return "float32";
    case 0x0E: return "float64";
    default: return NULL;
    }
}

/* Reads up to n bytes; *got is what arrived. Distinguishes a cut-off gzip stream and
 * corrupt data from a plain short file so that the messages say which it was. */
static herd_status gz_read_full(gzFile gz, const char *path, void *buf, size_t n, size_t *got, const char *what,
                                herd_error *err) {
    *got = 0;
    while (*got < n) {
        size_t want = n - *got;
        unsigned chunk = want > GZ_CHUNK ? GZ_CHUNK : (unsigned)want;
        int r = gzread(gz, (char *)buf + *got, chunk);
        if (r < 0) break;
        if (r == 0) break;
        *got += (size_t)r;
    }
    int errnum = Z_OK;
    const char *zmsg = gzerror(gz, &errnum);
    if (errnum == Z_BUF_ERROR)
        return herd_fail(err, HERD_EFORMAT, "%s: truncated gzip stream: expected %zu bytes of %s, found %zu", path, n,
                         what, *got);
    if (errnum == Z_ERRNO) return herd_fail(err, HERD_EIO, "%s: read error: %s", path, strerror(errno));
    if (errnum != Z_OK)
        return herd_fail(err, HERD_EFORMAT, "%s: corrupt gzip data: %s", path, zmsg ? zmsg : "unknown error");
    return HERD_OK;
}

herd_status herd_idx_read(const char *path, uint8_t **data, int *ndim, int64_t dims[4], herd_error *err) {
    gzFile gz = NULL;
    uint8_t *buf = NULL;
    herd_status st;
    struct stat sb;
    size_t got;
    *data = NULL;
    *ndim = 0;

    int fd;
    if ((st = herdi_input_open(path, &fd, &sb, err))) goto fail;
    if (sb.st_size == 0) {
        close(fd);
        st = herd_fail(err, HERD_EFORMAT, "%s: empty file (expected an IDX header)", path);
        goto fail;
    }
    gz = gzdopen(fd, "rb");
    if (!gz) {
        close(fd);
        st = herd_fail(err, HERD_EIO, "%s: cannot open: %s", path, errno ? strerror(errno) : "out of memory");
        goto fail;
    }

    uint8_t magic[4];
    st = gz_read_full(gz, path, magic, 4, &got, "header", err);
    if (st != HERD_OK) goto fail;
    if (got < 4) {
        st = herd_fail(err, HERD_EFORMAT, "%s: truncated: expected a 4-byte IDX magic, found %zu bytes", path, got);
        goto fail;
    }
    if (magic[0] != 0 || magic[1] != 0) {
        st = herd_fail(err, HERD_EFORMAT, "%s: not an IDX file: magic starts 0x%02X 0x%02X, expected 0x00 0x00", path,
                       magic[0], magic[1]);
        goto fail;
    }
    if (magic[2] != 0x08) {
        const char *tn = idx_type_name(magic[2]);
        if (tn)
            st = herd_fail(err, HERD_EUNSUPPORTED,
                           "%s: unsupported IDX data type 0x%02X (%s); only 0x08 (unsigned byte) is supported", path,
                           magic[2], tn);
        else
            st = herd_fail(err, HERD_EFORMAT, "%s: unknown IDX data type 0x%02X", path, magic[2]);
        goto fail;
    }
    int nd = magic[3];
    if (nd < 1 || nd > 4) {
        st = herd_fail(err, HERD_EFORMAT, "%s: IDX header has %d dimensions; expected 1 to 4", path, nd);
        goto fail;
    }
    uint8_t raw[16];
    size_t dim_bytes = 4 * (size_t)nd;
    st = gz_read_full(gz, path, raw, dim_bytes, &got, "header", err);
    if (st != HERD_OK) goto fail;
    if (got < dim_bytes) {
        st = herd_fail(err, HERD_EFORMAT, "%s: truncated header: expected %zu bytes of dimensions, found %zu", path,
                       dim_bytes, got);
        goto fail;
    }
    size_t total = 1;
    int overflow = 0;
    for (int k = 0; k < nd; k++) {
        const uint8_t *p = raw + 4 * k;
        uint32_t d = (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | (uint32_t)p[3];
        if (d == 0) {
            st = herd_fail(err, HERD_EFORMAT, "%s: dimension %d is 0", path, k);
            goto fail;
        }
        dims[k] = (int64_t)d;
        if (!overflow && (!herd_mul_size(total, d, &total) || total > (size_t)INT64_MAX)) overflow = 1;
    }
    if (overflow) {
        st = herd_fail(err, HERD_EFORMAT, "%s: product of the %d dimensions overflows", path, nd);
        goto fail;
    }

    /* Bound the allocation by what the file can hold before trusting the header. */
    size_t header = 4 + dim_bytes, fsize = (size_t)sb.st_size;
    if (gzdirect(gz)) {
        size_t avail = fsize > header ? fsize - header : 0;
        if (total > avail) {
            st = herd_fail(err, HERD_EFORMAT, "%s: truncated: expected %zu bytes of data, found %zu", path, total,
                           avail);
            goto fail;
        }
        if (total < avail) {
            st = herd_fail(err, HERD_EFORMAT, "%s: %zu trailing bytes after the %zu bytes of data the header declares",
                           path, avail - total, total);
            goto fail;
        }
    } else {
        size_t bound;
        if (herd_mul_size(fsize, DEFLATE_MAX_RATIO, &bound) && total > bound) {
            st = herd_fail(err, HERD_EFORMAT,
                           "%s: truncated: expected %zu bytes of data, more than a %zu-byte gzip file can hold", path,
                           total, fsize);
            goto fail;
        }
    }

    buf = malloc(total);
    if (!buf) {
        st = herd_fail(err, HERD_ENOMEM, "%s: out of memory for %zu bytes of data", path, total);
        goto fail;
    }
    st = gz_read_full(gz, path, buf, total, &got, "data", err);
    if (st != HERD_OK) goto fail;
    if (got < total) {
        st = herd_fail(err, HERD_EFORMAT, "%s: truncated: expected %zu bytes of data, found %zu", path, total, got);
        goto fail;
    }
    uint8_t extra;
    st = gz_read_full(gz, path, &extra, 1, &got, "trailing data", err);
    if (st != HERD_OK) goto fail;
    if (got != 0) {
        st = herd_fail(err, HERD_EFORMAT, "%s: trailing bytes after the %zu bytes of data the header declares", path,
                       total);
        goto fail;
    }
    gzclose_r(gz);
    *data = buf;
    *ndim = nd;
    return HERD_OK;
fail:
    if (gz) gzclose_r(gz);
    free(buf);
    return st;
}

herd_status herd_idx_open(herd_dataset **out, const char *images_path, const char *labels_path, herd_error *err) {
    uint8_t *images = NULL, *raw_labels = NULL;
    int32_t *labels = NULL;
    int ind, lnd;
    int64_t idims[4], ldims[4];
    herd_status st;
    *out = NULL;

    st = herd_idx_read(images_path, &images, &ind, idims, err);
    if (st != HERD_OK) goto fail;
    if (ind != 3 && ind != 4) {
        st = herd_fail(err, HERD_EFORMAT, "%s: images file has %d dimensions; expected 3 (N,H,W) or 4 (N,C,H,W)",
                       images_path, ind);
        goto fail;
    }
    st = herd_idx_read(labels_path, &raw_labels, &lnd, ldims, err);
    if (st != HERD_OK) goto fail;
    if (lnd != 1) {
        st = herd_fail(err, HERD_EFORMAT, "%s: labels file has %d dimensions; expected 1 (N)", labels_path, lnd);
        goto fail;
    }
    int64_t n = idims[0];
    if (ldims[0] != n) {
        st = herd_fail(err, HERD_EFORMAT, "%s: %lld labels but %s has %lld images", labels_path, (long long)ldims[0],
                       images_path, (long long)n);
        goto fail;
    }
    int64_t c = ind == 4 ? idims[1] : 1, h = idims[ind - 2], w = idims[ind - 1];
    if (c > INT_MAX || h > INT_MAX || w > INT_MAX) {
        st = herd_fail(err, HERD_EFORMAT, "%s: sample shape %lldx%lldx%lld too large", images_path, (long long)c,
                       (long long)h, (long long)w);
        goto fail;
    }
    labels = herd_malloc_array((size_t)n, sizeof *labels);
    if (!labels) {
        st = herd_fail(err, HERD_ENOMEM, "%s: out of memory for %lld labels", labels_path, (long long)n);
        goto fail;
    }
    int max_label = 0;
    for (int64_t i = 0; i < n; i++) {
        labels[i] = raw_labels[i];
        if (raw_labels[i] > max_label) max_label = raw_labels[i];
    }
    free(raw_labels);
    raw_labels = NULL;
    int classes = max_label + 1 < 2 ? 2 : max_label + 1;
    /* the dataset owns images and labels from here on, on success and on failure */
    int64_t xd[4] = {n, c, h, w};
    return herd_dataset_from_memory(out, herd_tensor_make(HERD_U8, 4, xd, images),
                                    herd_tensor_make(HERD_I32, 1, &n, labels), classes, images_path, err);
fail:
    free(images);
    free(raw_labels);
    free(labels);
    return st;
}
