/* safetensors reader and writer (https://github.com/huggingface/safetensors): the
 * reader trusts nothing in the header; the writer replaces files atomically. */
#include "herd/io.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "io/atomic_file.h"
#include "io/json.h"
#include "io/input_file.h"

/* The reference implementation's cap on the JSON header. */
#define HEADER_MAX (100u * 1000u * 1000u)
#define MAX_NDIM 8
/* Header nesting is 3 deep (root, entry, shape); a little slack for metadata. */
#define HEADER_MAX_DEPTH 8
/* ~100 bytes per JSON node: caps parse memory near 100 MB, room for ~100k tensors. */
#define HEADER_MAX_NODES (1 << 20)
#define META_KEY "__metadata__"

typedef struct dtype_info {
    const char *name;
    herd_dtype dtype;
    size_t size;
} dtype_info;

static const dtype_info dtypes[] = {
    {"F32", HERD_F32, 4}, {"I32", HERD_I32, 4}, {"I64", HERD_I64, 8}, {"U8", HERD_U8, 1}, {"F64", HERD_F64, 8},
};
#define N_DTYPES (sizeof dtypes / sizeof dtypes[0])

/* Valid in the format but not representable in herd_dtype: reported as unsupported,
 * not as a malformed file. */
static const char *const other_dtypes[] = {"BOOL", "I8",  "U16",     "I16",     "F16", "BF16",
                                           "U32",  "U64", "F8_E4M3", "F8_E5M2", "C64"};

typedef struct meta_pair {
    const char *key, *value;
} meta_pair;

static int cmp_meta(const void *a, const void *b) {
    return strcmp(((const meta_pair *)a)->key, ((const meta_pair *)b)->key);
}

struct herd_safetensors {
    char *path;
    uint8_t *block; /* the allocation holding the file */
    uint8_t *file;  /* the file inside block, placed so that the data section is 64-byte aligned */
    herd_json *doc; /* owns the name and metadata strings */
    herd_tensor_ref *tensors;
    int n;
    const herd_tensor_ref **by_name; /* sorted by name, for find and the duplicate check */
    meta_pair *meta;                 /* sorted by key, for lookup and the duplicate check */
    int n_meta;
    void **copies; /* tensors whose offset was not a multiple of their element size */
    int n_copies;
};

static const dtype_info *dtype_by_enum(herd_dtype d) {
    for (size_t i = 0; i < N_DTYPES; i++)
        if (dtypes[i].dtype == d) return &dtypes[i];
    return NULL;
}

static int host_little_endian(void) {
    const uint16_t one = 1;
    return *(const uint8_t *)&one == 1;
}

/* ------------------------------------------------------------------ writer */

static herd_status tensor_bytes(const herd_tensor_ref *t, const char *path, size_t *bytes, herd_error *err) {
    const dtype_info *di = dtype_by_enum(t->dtype);
    if (!di) return herd_fail(err, HERD_EARG, "%s: tensor '%s': invalid dtype %d", path, t->name, (int)t->dtype);
    if (t->ndim < 0 || t->ndim > MAX_NDIM)
        return herd_fail(err, HERD_EARG, "%s: tensor '%s': ndim %d outside 0..%d", path, t->name, t->ndim, MAX_NDIM);
    size_t n = di->size;
    for (int d = 0; d < t->ndim; d++) {
        if (t->shape[d] < 0)
            return herd_fail(err, HERD_EARG, "%s: tensor '%s': negative dimension %lld", path, t->name,
                             (long long)t->shape[d]);
        if (!herd_mul_size(n, (size_t)t->shape[d], &n) || n > (size_t)INT64_MAX)
            return herd_fail(err, HERD_EARG, "%s: tensor '%s': size overflows", path, t->name);
    }
    if (n > 0 && !t->data) return herd_fail(err, HERD_EARG, "%s: tensor '%s': no data", path, t->name);
    *bytes = n;
    return HERD_OK;
}

static int cmp_names(const void *a, const void *b) { return strcmp(*(const char *const *)a, *(const char *const *)b); }

static herd_status check_name(const char *s, const char *what, const char *path, herd_error *err) {
    if (!s) return herd_fail(err, HERD_EARG, "%s: %s is NULL", path, what);
    if (!herd_json_utf8_valid(s, strlen(s)))
        return herd_fail(err, HERD_EARG, "%s: %s '%s' is not valid UTF-8", path, what, s);
    return HERD_OK;
}

/* Builds the header in the reference layout: __metadata__ first, then tensors in the
 * given order with consecutive offsets, padded with spaces to a multiple of 8 so the
 * data section starts 8-byte aligned. */
static herd_status build_header(herd_json_writer *w, const herd_tensor_ref *t, int n, const size_t *bytes,
                                const char *const *meta_kv, int n_meta, const char *path, herd_error *err) {
    herd_json_put_raw(w, "{", 1);
    if (n_meta > 0) {
        herd_json_put_string(w, META_KEY);
        herd_json_put_raw(w, ":{", 2);
        for (int i = 0; i < n_meta; i++) {
            if (i) herd_json_put_raw(w, ",", 1);
            herd_json_put_string(w, meta_kv[2 * i]);
            herd_json_put_raw(w, ":", 1);
            herd_json_put_string(w, meta_kv[2 * i + 1]);
        }
        herd_json_put_raw(w, "}", 1);
    }
    int64_t off = 0;
    for (int i = 0; i < n; i++) {
        if (i || n_meta > 0) herd_json_put_raw(w, ",", 1);
        herd_json_put_string(w, t[i].name);
        herd_json_put_raw(w, ":{\"dtype\":", 10);
        herd_json_put_string(w, dtype_by_enum(t[i].dtype)->name);
        herd_json_put_raw(w, ",\"shape\":[", 10);
        for (int d = 0; d < t[i].ndim; d++) {
            if (d) herd_json_put_raw(w, ",", 1);
            herd_json_put_i64(w, t[i].shape[d]);
        }
        herd_json_put_raw(w, "],\"data_offsets\":[", 18);
        herd_json_put_i64(w, off);
        herd_json_put_raw(w, ",", 1);
        if (bytes[i] > (size_t)(INT64_MAX - off))
            return herd_fail(err, HERD_EARG, "%s: total tensor size overflows", path);
        off += (int64_t)bytes[i];
        herd_json_put_i64(w, off);
        herd_json_put_raw(w, "]}", 2);
    }
    herd_json_put_raw(w, "}", 1);
    while (!w->failed && w->len % 8 != 0) herd_json_put_raw(w, " ", 1);
    if (w->failed) return herd_fail(err, HERD_ENOMEM, "%s: out of memory building the header", path);
    return HERD_OK;
}

herd_status herd_safetensors_write(const char *path, const herd_tensor_ref *tensors, int n, const char *const *meta_kv,
                                   int n_meta, herd_error *err) {
    herd_json_writer w = {0};
    size_t *bytes = NULL;
    const char **names = NULL;
    const void **chunks = NULL;
    size_t *lens = NULL;
    herd_status st;

    if (!host_little_endian()) {
        st = herd_fail(err, HERD_EUNSUPPORTED, "%s: safetensors writing needs a little-endian host", path);
        goto fail;
    }
    if (n < 0 || n_meta < 0 || (n > 0 && !tensors) || (n_meta > 0 && !meta_kv)) {
        st = herd_fail(err, HERD_EARG, "%s: bad tensor or metadata list (n=%d, n_meta=%d)", path, n, n_meta);
        goto fail;
    }
    bytes = herd_calloc_array((size_t)n, sizeof *bytes);
    names = herd_calloc_array((size_t)n, sizeof *names);
    if (!bytes || !names) {
        st = herd_fail(err, HERD_ENOMEM, "%s: out of memory", path);
        goto fail;
    }
    for (int i = 0; i < n; i++) {
        st = check_name(tensors[i].name, "tensor name", path, err);
        if (st != HERD_OK) goto fail;
        if (strcmp(tensors[i].name, META_KEY) == 0) {
            st = herd_fail(err, HERD_EARG, "%s: tensor name '%s' is reserved", path, META_KEY);
            goto fail;
        }
        st = tensor_bytes(&tensors[i], path, &bytes[i], err);
        if (st != HERD_OK) goto fail;
        names[i] = tensors[i].name;
    }
    qsort(names, (size_t)n, sizeof *names, cmp_names);
    for (int i = 1; i < n; i++)
        if (strcmp(names[i - 1], names[i]) == 0) {
            st = herd_fail(err, HERD_EARG, "%s: duplicate tensor name '%s'", path, names[i]);
            goto fail;
        }
    for (int i = 0; i < 2 * n_meta; i++) {
        st = check_name(meta_kv[i], i % 2 ? "metadata value" : "metadata key", path, err);
        if (st != HERD_OK) goto fail;
    }
    /* Quadratic, but metadata is a handful of pairs written by herd itself. */
    for (int i = 0; i < n_meta; i++)
        for (int j = 0; j < i; j++)
            if (strcmp(meta_kv[2 * i], meta_kv[2 * j]) == 0) {
                st = herd_fail(err, HERD_EARG, "%s: duplicate metadata key '%s'", path, meta_kv[2 * i]);
                goto fail;
            }
    st = build_header(&w, tensors, n, bytes, meta_kv, n_meta, path, err);
    if (st != HERD_OK) goto fail;

    {
        uint8_t le[8];
        for (int k = 0; k < 8; k++) le[k] = (uint8_t)((uint64_t)w.len >> (8 * k));
        chunks = herd_calloc_array((size_t)n + 2, sizeof *chunks);
        lens = herd_calloc_array((size_t)n + 2, sizeof *lens);
        if (!chunks || !lens) {
            st = herd_fail(err, HERD_ENOMEM, "%s: out of memory", path);
            goto fail;
        }
        chunks[0] = le, lens[0] = 8;
        chunks[1] = w.buf, lens[1] = w.len;
        for (int i = 0; i < n; i++) chunks[i + 2] = tensors[i].data, lens[i + 2] = bytes[i];
        st = herdi_io_write_file_atomic(path, chunks, lens, n + 2, "safetensors.before_rename", err);
        if (st != HERD_OK) goto fail;
    }
    herd_json_writer_free(&w);
    free(bytes);
    free(names);
    free(chunks);
    free(lens);
    return HERD_OK;
fail:
    free(chunks);
    free(lens);
    herd_json_writer_free(&w);
    free(bytes);
    free(names);
    return st;
}

/* ------------------------------------------------------------------ reader */

static herd_status read_all(int fd, void *buf, size_t n, const char *path, herd_error *err) {
    char *p = buf;
    size_t got = 0;
    while (got < n) {
        ssize_t k = read(fd, p + got, n - got > (1u << 30) ? (1u << 30) : n - got);
        if (k < 0) {
            if (errno == EINTR) continue;
            return herd_fail(err, HERD_EIO, "%s: read failed: %s", path, strerror(errno));
        }
        if (k == 0) return herd_fail(err, HERD_EIO, "%s: file shrank while reading (%zu of %zu bytes)", path, got, n);
        got += (size_t)k;
    }
    return HERD_OK;
}

/* A non-negative JSON integer, or an error naming the tensor and field. */
static herd_status get_u64(const herd_json_node *v, const char *path, const char *name, const char *what, int64_t *out,
                           herd_error *err) {
    if (!v || v->type != HERD_JSON_NUMBER || !v->is_int || v->ival < 0)
        return herd_fail(err, HERD_EFORMAT, "%s: tensor '%s': %s must be a non-negative integer", path, name, what);
    *out = v->ival;
    return HERD_OK;
}

typedef struct span {
    int64_t begin, end;
    int idx;
} span;

static int cmp_span(const void *a, const void *b) {
    const span *x = a, *y = b;
    if (x->begin != y->begin) return x->begin < y->begin ? -1 : 1;
    if (x->end != y->end) return x->end < y->end ? -1 : 1;
    return 0;
}

static int cmp_by_name(const void *a, const void *b) {
    return strcmp((*(const herd_tensor_ref *const *)a)->name, (*(const herd_tensor_ref *const *)b)->name);
}

static herd_status parse_entry(const herd_json *doc, const herd_json_node *e, const char *path, size_t data_len,
                               herd_tensor_ref *t, int64_t *begin, int64_t *end, herd_error *err) {
    const char *name = e->key;
    if (e->type != HERD_JSON_OBJECT)
        return herd_fail(err, HERD_EFORMAT, "%s: tensor '%s': entry must be an object, found %s", path, name,
                         herd_json_type_name(e->type));
    const herd_json_node *dt = NULL, *shape = NULL, *offs = NULL;
    for (const herd_json_node *m = herd_json_at(doc, e->first); m; m = herd_json_at(doc, m->next)) {
        const herd_json_node **slot = strcmp(m->key, "dtype") == 0          ? &dt
                                      : strcmp(m->key, "shape") == 0        ? &shape
                                      : strcmp(m->key, "data_offsets") == 0 ? &offs
                                                                            : NULL;
        if (!slot || m->key_len != strlen(m->key))
            return herd_fail(err, HERD_EFORMAT, "%s: tensor '%s': unknown key '%s'", path, name, m->key);
        if (*slot) return herd_fail(err, HERD_EFORMAT, "%s: tensor '%s': duplicate key '%s'", path, name, m->key);
        *slot = m;
    }
    if (!dt || !shape || !offs)
        return herd_fail(err, HERD_EFORMAT, "%s: tensor '%s': missing '%s'", path, name,
                         !dt      ? "dtype"
                         : !shape ? "shape"
                                  : "data_offsets");

    if (dt->type != HERD_JSON_STRING)
        return herd_fail(err, HERD_EFORMAT, "%s: tensor '%s': dtype must be a string", path, name);
    const dtype_info *di = NULL;
    for (size_t i = 0; i < N_DTYPES; i++)
        if (strcmp(dt->str, dtypes[i].name) == 0) di = &dtypes[i];
    if (!di) {
        for (size_t i = 0; i < sizeof other_dtypes / sizeof other_dtypes[0]; i++)
            if (strcmp(dt->str, other_dtypes[i]) == 0)
                return herd_fail(err, HERD_EUNSUPPORTED, "%s: tensor '%s': dtype %s is not supported by herd", path,
                                 name, dt->str);
        return herd_fail(err, HERD_EFORMAT, "%s: tensor '%s': unknown dtype '%s'", path, name, dt->str);
    }
    t->dtype = di->dtype;

    if (shape->type != HERD_JSON_ARRAY)
        return herd_fail(err, HERD_EFORMAT, "%s: tensor '%s': shape must be an array", path, name);
    if (shape->count > MAX_NDIM)
        return herd_fail(err, HERD_EUNSUPPORTED, "%s: tensor '%s': %d dimensions, herd supports at most %d", path, name,
                         (int)shape->count, MAX_NDIM);
    t->ndim = (int)shape->count;
    size_t nbytes = di->size;
    int d = 0;
    for (const herd_json_node *v = herd_json_at(doc, shape->first); v; v = herd_json_at(doc, v->next), d++) {
        herd_status st = get_u64(v, path, name, "shape entry", &t->shape[d], err);
        if (st != HERD_OK) return st;
        if (!herd_mul_size(nbytes, (size_t)t->shape[d], &nbytes) || nbytes > (size_t)INT64_MAX)
            return herd_fail(err, HERD_EFORMAT, "%s: tensor '%s': shape size overflows", path, name);
    }

    if (offs->type != HERD_JSON_ARRAY || offs->count != 2)
        return herd_fail(err, HERD_EFORMAT, "%s: tensor '%s': data_offsets must be an array of 2 integers", path, name);
    const herd_json_node *b = herd_json_at(doc, offs->first);
    herd_status st = get_u64(b, path, name, "data_offsets[0]", begin, err);
    if (st == HERD_OK) st = get_u64(herd_json_at(doc, b->next), path, name, "data_offsets[1]", end, err);
    if (st != HERD_OK) return st;
    if (*begin > *end || (uint64_t)*end > data_len)
        return herd_fail(err, HERD_EFORMAT,
                         "%s: tensor '%s': data_offsets [%lld, %lld] outside the %zu-byte data section", path, name,
                         (long long)*begin, (long long)*end, data_len);
    if ((uint64_t)(*end - *begin) != nbytes)
        return herd_fail(err, HERD_EFORMAT,
                         "%s: tensor '%s': data_offsets span %lld bytes but dtype %s and shape need %zu", path, name,
                         (long long)(*end - *begin), di->name, nbytes);
    return HERD_OK;
}

static herd_status parse_metadata(herd_safetensors *s, const herd_json_node *m, herd_error *err) {
    if (m->type != HERD_JSON_OBJECT)
        return herd_fail(err, HERD_EFORMAT, "%s: %s must be an object of strings, found %s", s->path, META_KEY,
                         herd_json_type_name(m->type));
    s->meta = herd_calloc_array((size_t)m->count, sizeof *s->meta);
    if (!s->meta) return herd_fail(err, HERD_ENOMEM, "%s: out of memory", s->path);
    for (const herd_json_node *v = herd_json_at(s->doc, m->first); v; v = herd_json_at(s->doc, v->next)) {
        if (v->type != HERD_JSON_STRING)
            return herd_fail(err, HERD_EFORMAT, "%s: %s['%s'] must be a string, found %s", s->path, META_KEY, v->key,
                             herd_json_type_name(v->type));
        if (v->key_len != strlen(v->key) || v->str_len != strlen(v->str))
            return herd_fail(err, HERD_EFORMAT, "%s: %s['%s']: NUL character in key or value", s->path, META_KEY,
                             v->key);
        s->meta[s->n_meta].key = v->key;
        s->meta[s->n_meta].value = v->str;
        s->n_meta++;
    }
    /* JSON readers disagree on which duplicate wins, so a duplicate is an error. */
    qsort(s->meta, (size_t)s->n_meta, sizeof *s->meta, cmp_meta);
    for (int i = 1; i < s->n_meta; i++)
        if (strcmp(s->meta[i - 1].key, s->meta[i].key) == 0)
            return herd_fail(err, HERD_EFORMAT, "%s: duplicate %s key '%s'", s->path, META_KEY, s->meta[i].key);
    return HERD_OK;
}

herd_status herd_safetensors_open(herd_safetensors **out, const char *path, herd_error *err) {
    herd_safetensors *s = NULL;
    span *spans = NULL;
    int fd = -1;
    herd_status st;
    *out = NULL;

    s = calloc(1, sizeof *s);
    if (!s || !(s->path = strdup(path))) {
        st = herd_fail(err, HERD_ENOMEM, "%s: out of memory", path);
        goto fail;
    }
    struct stat sb;
    if ((st = herdi_input_open(path, &fd, &sb, err))) goto fail;
    size_t fsize = (size_t)sb.st_size;
    if (fsize < 8) {
        st = herd_fail(err, HERD_EFORMAT, "%s: truncated: %zu bytes, shorter than the 8-byte header length", path,
                       fsize);
        goto fail;
    }
    uint8_t le[8];
    st = read_all(fd, le, 8, path, err);
    if (st != HERD_OK) goto fail;
    uint64_t hlen = 0;
    for (int k = 7; k >= 0; k--) hlen = hlen << 8 | le[k];
    if (hlen > HEADER_MAX) {
        st = herd_fail(err, HERD_EFORMAT, "%s: header length %llu exceeds the %u-byte limit", path,
                       (unsigned long long)hlen, HEADER_MAX);
        goto fail;
    }
    if (hlen > fsize - 8) {
        st = herd_fail(err, HERD_EFORMAT, "%s: truncated: header length %llu runs past the end of the %zu-byte file",
                       path, (unsigned long long)hlen, fsize);
        goto fail;
    }
    /* Place the file so the data section lands on a 64-byte boundary: tensors whose
     * offsets are multiples of their element size can then be used in place. */
    size_t pad = (64 - (size_t)((8 + hlen) % 64)) % 64;
    s->block = herd_aligned_alloc(pad + fsize);
    if (!s->block) {
        st = herd_fail(err, HERD_ENOMEM, "%s: out of memory for %zu bytes", path, fsize);
        goto fail;
    }
    s->file = s->block + pad;
    memcpy(s->file, le, 8);
    st = read_all(fd, s->file + 8, fsize - 8, path, err);
    if (st != HERD_OK) goto fail;
    close(fd);
    fd = -1;
    const uint8_t *data = s->file + 8 + hlen;
    size_t data_len = fsize - 8 - (size_t)hlen;

    st = herd_json_parse(&s->doc, (const char *)s->file + 8, (size_t)hlen, HEADER_MAX_DEPTH, HEADER_MAX_NODES, err);
    if (st != HERD_OK) {
        herd_fail_prefix(err, "%s: header", path);
        goto fail;
    }
    const herd_json_node *root = herd_json_root(s->doc);
    if (root->type != HERD_JSON_OBJECT) {
        st = herd_fail(err, HERD_EFORMAT, "%s: header must be a JSON object, found %s", path,
                       herd_json_type_name(root->type));
        goto fail;
    }
    s->tensors = herd_calloc_array((size_t)root->count, sizeof *s->tensors);
    spans = herd_calloc_array((size_t)root->count, sizeof *spans);
    s->by_name = herd_calloc_array((size_t)root->count, sizeof *s->by_name);
    s->copies = herd_calloc_array((size_t)root->count, sizeof *s->copies);
    if (!s->tensors || !spans || !s->by_name || !s->copies) {
        st = herd_fail(err, HERD_ENOMEM, "%s: out of memory for %d tensors", path, (int)root->count);
        goto fail;
    }
    int seen_meta = 0;
    for (const herd_json_node *e = herd_json_at(s->doc, root->first); e; e = herd_json_at(s->doc, e->next)) {
        if (e->key_len != strlen(e->key)) {
            st = herd_fail(err, HERD_EFORMAT, "%s: tensor name '%s...' contains a NUL character", path, e->key);
            goto fail;
        }
        if (strcmp(e->key, META_KEY) == 0) {
            if (seen_meta++) {
                st = herd_fail(err, HERD_EFORMAT, "%s: duplicate %s", path, META_KEY);
                goto fail;
            }
            st = parse_metadata(s, e, err);
            if (st != HERD_OK) goto fail;
            continue;
        }
        herd_tensor_ref *t = &s->tensors[s->n];
        t->name = e->key;
        st = parse_entry(s->doc, e, path, data_len, t, &spans[s->n].begin, &spans[s->n].end, err);
        if (st != HERD_OK) goto fail;
        spans[s->n].idx = s->n;
        s->n++;
    }

    for (int i = 0; i < s->n; i++) s->by_name[i] = &s->tensors[i];
    qsort(s->by_name, (size_t)s->n, sizeof *s->by_name, cmp_by_name);
    for (int i = 1; i < s->n; i++) {
        const char *a = s->by_name[i - 1]->name, *b = s->by_name[i]->name;
        if (strcmp(a, b) == 0) {
            st = herd_fail(err, HERD_EFORMAT, "%s: duplicate tensor name '%s'", path, b);
            goto fail;
        }
    }
    /* The spec asks that tensors tile the data section exactly: no overlap, no gap. */
    qsort(spans, (size_t)s->n, sizeof *spans, cmp_span);
    int64_t covered = 0;
    for (int i = 0; i < s->n; i++) {
        const char *name = s->tensors[spans[i].idx].name;
        if (spans[i].begin < covered) {
            st = herd_fail(err, HERD_EFORMAT, "%s: tensor '%s': data_offsets [%lld, %lld] overlap tensor '%s'", path,
                           name, (long long)spans[i].begin, (long long)spans[i].end, s->tensors[spans[i - 1].idx].name);
            goto fail;
        }
        if (spans[i].begin > covered) {
            st = herd_fail(err, HERD_EFORMAT, "%s: tensor '%s': gap of %lld bytes before its data at offset %lld", path,
                           name, (long long)(spans[i].begin - covered), (long long)spans[i].begin);
            goto fail;
        }
        covered = spans[i].end;
    }
    if ((uint64_t)covered != data_len) {
        st = herd_fail(err, HERD_EFORMAT, "%s: %llu bytes at the end of the data section belong to no tensor", path,
                       (unsigned long long)(data_len - (uint64_t)covered));
        goto fail;
    }
    for (int i = 0; i < s->n; i++) {
        herd_tensor_ref *t = &s->tensors[spans[i].idx];
        size_t len = (size_t)(spans[i].end - spans[i].begin);
        const uint8_t *p = data + spans[i].begin;
        size_t esize = dtype_by_enum(t->dtype)->size;
        t->data = p;
        if (len > 0 && (uintptr_t)p % esize != 0) {
            /* Another writer's layout left this tensor misaligned: copy it rather than
             * hand out a pointer that is undefined behaviour to dereference. */
            void *c = herd_aligned_alloc(len);
            if (!c) {
                st = herd_fail(err, HERD_ENOMEM, "%s: tensor '%s': out of memory", path, t->name);
                goto fail;
            }
            memcpy(c, p, len);
            s->copies[s->n_copies++] = c;
            t->data = c;
        }
    }
    if (!host_little_endian()) {
        st = herd_fail(err, HERD_EUNSUPPORTED, "%s: safetensors reading needs a little-endian host", path);
        goto fail;
    }
    free(spans);
    *out = s;
    return HERD_OK;
fail:
    if (fd >= 0) close(fd);
    free(spans);
    herd_safetensors_close(s);
    return st;
}

int herd_safetensors_count(const herd_safetensors *st) { return st->n; }

const herd_tensor_ref *herd_safetensors_get(const herd_safetensors *st, int i) {
    return i >= 0 && i < st->n ? &st->tensors[i] : NULL;
}

const herd_tensor_ref *herd_safetensors_find(const herd_safetensors *st, const char *name) {
    int lo = 0, hi = st->n;
    while (lo < hi) {
        int mid = lo + (hi - lo) / 2;
        const herd_tensor_ref *t = st->by_name[mid];
        int c = strcmp(t->name, name);
        if (c == 0) return t;
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return NULL;
}

const char *herd_safetensors_meta(const herd_safetensors *st, const char *key) {
    meta_pair want = {key, NULL};
    const meta_pair *m = st->n_meta ? bsearch(&want, st->meta, (size_t)st->n_meta, sizeof want, cmp_meta) : NULL;
    return m ? m->value : NULL;
}

const char *herd_safetensors_path(const herd_safetensors *st) { return st->path; }

void herd_safetensors_close(herd_safetensors *st) {
    if (!st) return;
    for (int i = 0; i < st->n_copies; i++) herd_aligned_free(st->copies[i]);
    free(st->copies);
    free(st->by_name);
    free(st->tensors);
    free(st->meta);
    herd_json_free(st->doc);
    herd_aligned_free(st->block);
    free(st->path);
    free(st);
}
