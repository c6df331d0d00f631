/* Criteo click logs (criteo: sources): TSV lines of a 0/1 label, 13 integer counts and 26
 * hexadecimal categorical ids, any of the features empty when missing. Counts become
 * log(1 + max(x, 0)) (missing 0) as the DLRM reference does; categorical feature k's value is
 * hashed (seeded, per feature) into R rows and offset by k * R, so the 26 features index one
 * table of 26 R rows in disjoint ranges. Open reads every file once, checking every line, and
 * keeps 8 bytes a line (its offset); get() reads and parses the line again (pread), so memory
 * does not grow with the data and files larger than memory train. */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "herd/data.h"
#include "io/input_file.h"

#define LINE_CAP 4096                 /* longest line accepted (Criteo's are ~150-300 bytes) */
#define READ_CHUNK ((size_t)1 << 20) /* open reads the files this much at a time */

typedef struct criteo_file {
    char *path;
    int fd;
    int64_t first; /* global index of its line 1 */
    int64_t count;
    uint64_t end;  /* byte after its last line's text (its newline, or the end of the file) */
} criteo_file;

typedef struct criteo_impl {
    criteo_file *files;
    int nfiles;
    uint64_t *start; /* byte offset of each line in its file */
    herd_criteo_options opt;
} criteo_impl;

static uint64_t mix64(uint64_t z) { /* splitmix64's finaliser */
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

static int hex_digit(unsigned char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

int32_t herd_criteo_hash(const herd_criteo_options *opt, int feature, int missing, uint64_t value) {
    uint64_t h = mix64(opt->seed ^ mix64(0x9e3779b97f4a7c15ULL * (uint64_t)(feature + 1)));
    h = missing ? mix64(h ^ 0x6d697373696e6721ULL) : mix64(h + value);
    return (int32_t)((int64_t)feature * opt->hash_rows + (int64_t)(h % (uint64_t)opt->hash_rows));
}

/* The column named as Criteo's documentation does: label, I1..I13, C1..C26. */
static void column_name(int c, char *buf, size_t size) {
    if (c == 0) snprintf(buf, size, "label");
    else if (c <= HERD_CRITEO_DENSE) snprintf(buf, size, "I%d", c);
    else snprintf(buf, size, "C%d", c - HERD_CRITEO_DENSE);
}

herd_status herd_criteo_parse(const herd_criteo_options *opt, const char *line, size_t n, float *dense, int32_t *ids,
                              float *label, char *why, size_t why_size) {
    if (n && line[n - 1] == '\r') n--; /* CRLF */
    size_t at = 0;
    char name[8];
    for (int c = 0; c < HERD_CRITEO_COLUMNS; c++) {
        size_t b = at;
        while (at < n && line[at] != '\t') at++;
        const unsigned char *v = (const unsigned char *)line + b;
        size_t len = at - b;
        if (c < HERD_CRITEO_COLUMNS - 1 && at >= n) {
            int cols = c + 1;
            snprintf(why, why_size, "%d column%s (expected %d: label, I1..I13, C1..C26)", cols, cols == 1 ? "" : "s",
                     HERD_CRITEO_COLUMNS);
            return HERD_EFORMAT;
        }
        if (c == 0) {
            if (len != 1 || (v[0] != '0' && v[0] != '1')) {
                snprintf(why, why_size, "label '%.*s' is not 0 or 1", (int)(len < 32 ? len : 32), (const char *)v);
                return HERD_EFORMAT;
            }
            if (label) *label = (float)(v[0] - '0');
        } else if (c <= HERD_CRITEO_DENSE) {
            int neg = len && v[0] == '-';
            uint64_t x = 0;
            size_t i = (size_t)neg;
            if (len == (size_t)neg && len) i = len + 1; /* a lone '-' */
            for (; i < len && v[i] >= '0' && v[i] <= '9' && x < (1ULL << 53); i++) x = x * 10 + (uint64_t)(v[i] - '0');
            if (i != len) {
                column_name(c, name, sizeof name);
                snprintf(why, why_size, "column %s: '%.*s' is not an integer (below 2^53)", name,
                         (int)(len < 32 ? len : 32), (const char *)v);
                return HERD_EFORMAT;
            }
            if (dense) dense[c - 1] = neg ? 0.0f : (float)log1p((double)x); /* missing: log(1 + 0) = 0 */
        } else {
            uint64_t x = 0;
            int bad = len > 16;
            for (size_t i = 0; i < len && !bad; i++) {
                int d = hex_digit(v[i]);
                bad = d < 0;
                x = x << 4 | (uint64_t)(d & 15);
            }
            if (bad) {
                column_name(c, name, sizeof name);
                snprintf(why, why_size, "column %s: '%.*s' is not a hexadecimal id (1 to 16 digits)", name,
                         (int)(len < 32 ? len : 32), (const char *)v);
                return HERD_EFORMAT;
            }
            if (ids) ids[c - 1 - HERD_CRITEO_DENSE] = herd_criteo_hash(opt, c - 1 - HERD_CRITEO_DENSE, len == 0, x);
        }
        if (c == HERD_CRITEO_COLUMNS - 1 && at < n) {
            int cols = HERD_CRITEO_COLUMNS + 1;
            for (size_t i = at + 1; i < n; i++) cols += line[i] == '\t';
            snprintf(why, why_size, "%d columns (expected %d: label, I1..I13, C1..C26)", cols, HERD_CRITEO_COLUMNS);
            return HERD_EFORMAT;
        }
        at++;
    }
    return HERD_OK;
}

herd_status herd_criteo_check_options(const herd_criteo_options *opt, const char *source, herd_error *err) {
    if (opt->hash_rows < 1 || opt->hash_rows > INT32_MAX / HERD_CRITEO_SPARSE)
        return herd_fail(err, HERD_EARG, "%s: hash rows %lld: expected 1..%d (26 features of R rows each index one table "
                         "of 26 R rows, ids below 2^31)", source, (long long)opt->hash_rows,
                         INT32_MAX / HERD_CRITEO_SPARSE);
    return HERD_OK;
}

static void criteo_impl_free(criteo_impl *im) {
    if (!im) return;
    for (int i = 0; im->files && i < im->nfiles; i++) {
        if (im->files[i].fd >= 0) close(im->files[i].fd);
        free(im->files[i].path);
    }
    free(im->files);
    free(im->start);
    free(im);
}

/* Appends a line's offset, doubling the array. */
static herd_status push_start(criteo_impl *im, int64_t n, int64_t *cap, uint64_t off, const char *path,
                              herd_error *err) {
    if (n == *cap) {
        int64_t nc = *cap ? *cap * 2 : 4096;
        uint64_t *s = realloc(im->start, (size_t)nc * sizeof *s);
        if (!s) return herd_fail(err, HERD_ENOMEM, "%s: out of memory for the offsets of %lld lines", path, (long long)n);
        im->start = s, *cap = nc;
    }
    im->start[n] = off;
    return HERD_OK;
}

/* Line lineno (n bytes at p, starting at byte `at` of f) checked and its offset kept. */
static herd_status scan_line(criteo_impl *im, criteo_file *f, const char *p, size_t n, uint64_t at, int64_t lineno,
                             int64_t *count, int64_t *cap, herd_error *err) {
    char why[256];
    if (n > LINE_CAP)
        return herd_fail(err, HERD_EFORMAT, "%s:%lld: line longer than %d bytes", f->path, (long long)lineno, LINE_CAP);
    if (herd_criteo_parse(&im->opt, p, n, NULL, NULL, NULL, why, sizeof why) != HERD_OK)
        return herd_fail(err, HERD_EFORMAT, "%s:%lld: %s", f->path, (long long)lineno, why);
    herd_status st = push_start(im, *count, cap, at, f->path, err);
    if (st) return st;
    (*count)++;
    f->end = at + n;
    return HERD_OK;
}

/* Reads file f once: every line checked (values not computed), its offset kept. Lines inside a
 * chunk are checked where they lie; a line cut by the chunk's end is carried in `line`. */
static herd_status scan_file(criteo_impl *im, criteo_file *f, int64_t *n, int64_t *cap, char *buf, char *line,
                             herd_error *err) {
    uint64_t off = 0;     /* file offset of buf[0] */
    uint64_t line_at = 0; /* file offset of the line being read */
    size_t carried = 0;   /* its bytes held in line (from earlier chunks) */
    int64_t lineno = 0;
    herd_status st;
    for (;;) {
        ssize_t got = read(f->fd, buf, READ_CHUNK);
        if (got < 0 && errno == EINTR) continue;
        if (got < 0) return herd_fail(err, HERD_EIO, "%s: read failed: %s", f->path, strerror(errno));
        if (got == 0) break;
        const char *p = buf, *end = buf + got;
        for (const char *nl; (nl = memchr(p, '\n', (size_t)(end - p)));) {
            size_t k = (size_t)(nl - p);
            lineno++;
            if (carried) { /* the line began in an earlier chunk */
                if (carried + k > LINE_CAP) k = LINE_CAP + 1 - carried; /* refused as too long below */
                memcpy(line + carried, p, k);
                st = scan_line(im, f, line, carried + k, line_at, lineno, n, cap, err);
                carried = 0;
            } else {
                st = scan_line(im, f, p, k, line_at, lineno, n, cap, err);
            }
            if (st) return st;
            line_at = off + (uint64_t)(nl - buf) + 1;
            p = nl + 1;
        }
        size_t rest = (size_t)(end - p); /* a line the next chunk goes on with */
        if (carried + rest > LINE_CAP)
            return herd_fail(err, HERD_EFORMAT, "%s:%lld: line longer than %d bytes", f->path, (long long)lineno + 1,
                             LINE_CAP);
        memcpy(line + carried, p, rest);
        carried += rest;
        off += (uint64_t)got;
    }
    if (carried && (st = scan_line(im, f, line, carried, line_at, ++lineno, n, cap, err))) return st;
    f->count = lineno;
    return HERD_OK;
}

static const criteo_file *file_of(const criteo_impl *im, int64_t i) {
    int lo = 0, hi = im->nfiles - 1;
    while (lo < hi) {
        int mid = (lo + hi + 1) / 2;
        if (im->files[mid].first <= i) lo = mid;
        else hi = mid - 1;
    }
    return &im->files[lo];
}

static herd_status criteo_get(const herd_dataset *ds, int64_t i, void *x, void *y, herd_error *err) {
    const criteo_impl *im = ds->impl;
    if (i < 0 || i >= ds->n)
        return herd_fail(err, HERD_EARG, "%s: sample %lld out of range [0, %lld)", ds->source, (long long)i,
                         (long long)ds->n);
    const criteo_file *f = file_of(im, i);
    int64_t r = i - f->first;
    uint64_t a = im->start[i], b = r + 1 < f->count ? im->start[i + 1] - 1 : f->end;
    char line[LINE_CAP + 1], why[256];
    size_t len = (size_t)(b - a), got = 0;
    while (got < len) {
        ssize_t k = pread(f->fd, line + got, len - got, (off_t)(a + got));
        if (k < 0 && errno == EINTR) continue;
        if (k <= 0)
            return herd_fail(err, HERD_EIO, "%s:%lld: %s", f->path, (long long)r + 1,
                             k < 0 ? strerror(errno) : "the file shrank since it was opened");
        got += (size_t)k;
    }
    float *dense = x;
    int32_t *ids = (int32_t *)(dense + HERD_CRITEO_DENSE);
    if (herd_criteo_parse(&im->opt, line, len, dense, ids, (float *)y, why, sizeof why) != HERD_OK)
        return herd_fail(err, HERD_EFORMAT, "%s:%lld: %s (the file changed since it was opened)", f->path,
                         (long long)r + 1, why);
    return HERD_OK;
}

static void criteo_close(herd_dataset *ds) {
    criteo_impl_free(ds->impl);
    ds->impl = NULL;
}

static const herd_dataset_ops criteo_ops = {criteo_get, criteo_close, NULL, NULL};

herd_status herd_criteo_open(herd_dataset **out, const char *const *paths, int npaths, const herd_criteo_options *opt,
                             herd_error *err) {
    *out = NULL;
    if (npaths < 1) return herd_fail(err, HERD_EARG, "criteo: no files given");
    herd_status st = herd_criteo_check_options(opt, paths[0], err);
    if (st) return st;
    herd_dataset *ds = NULL;
    char *buf = NULL, *line = NULL;
    criteo_impl *im = calloc(1, sizeof *im);
    if (!im || !(im->files = calloc((size_t)npaths, sizeof *im->files)) || !(ds = calloc(1, sizeof *ds)) ||
        !(buf = malloc(READ_CHUNK)) || !(line = malloc(LINE_CAP + 1))) {
        st = herd_fail(err, HERD_ENOMEM, "%s: out of memory", paths[0]);
        goto fail;
    }
    im->opt = *opt;
    int64_t n = 0, cap = 0;
    for (int k = 0; k < npaths; k++) {
        criteo_file *f = &im->files[k];
        im->nfiles = k + 1;
        f->fd = -1;
        if (!(f->path = strdup(paths[k]))) {
            st = herd_fail(err, HERD_ENOMEM, "%s: out of memory", paths[k]);
            goto fail;
        }
        if ((st = herdi_input_open(paths[k], &f->fd, NULL, err))) goto fail;
        f->first = n;
        if ((st = scan_file(im, f, &n, &cap, buf, line, err))) goto fail;
    }
    if (n == 0) {
        st = herd_fail(err, HERD_EFORMAT, "%s: no lines%s", paths[0], npaths > 1 ? " in any of the files" : "");
        goto fail;
    }
    ds->ops = &criteo_ops;
    ds->n = n;
    ds->x = herd_tensor_make(HERD_F32, 1, (int64_t[]){HERD_CRITEO_DENSE}, NULL);
    ds->n_more = 1;
    ds->more[0] = herd_tensor_make(HERD_I32, 1, (int64_t[]){HERD_CRITEO_SPARSE}, NULL);
    ds->y = herd_tensor_make(HERD_F32, 0, NULL, NULL);
    ds->num_classes = 0; /* f32 0/1 targets (bce) */
    snprintf(ds->note, sizeof ds->note, "%lld lines; C1..C26 hashed into %lld rows each (feature k's ids in "
             "[k*%lld, (k+1)*%lld), %lld in all), seed %llu", (long long)n, (long long)opt->hash_rows,
             (long long)opt->hash_rows, (long long)opt->hash_rows, (long long)opt->hash_rows * HERD_CRITEO_SPARSE,
             (unsigned long long)opt->seed);
    if (npaths == 1) snprintf(ds->source, sizeof ds->source, "%s", paths[0]);
    else snprintf(ds->source, sizeof ds->source, "%.400s (+%d files)", paths[0], npaths - 1);
    ds->impl = im;
    free(buf);
    free(line);
    *out = ds;
    return HERD_OK;
fail:
    criteo_impl_free(im);
    free(ds);
    free(buf);
    free(line);
    return st;
}
