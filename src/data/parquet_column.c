/* Column chunk decoding (parquet_column.h): a page loop, the RLE/bit-packed hybrid for levels,
 * dictionary indices and booleans, the value encodings, and the row assembly of flat and
 * one-level list columns. Every read is bounded by the page's bytes. */
#include "data/parquet_column.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "data/parquet_codec.h"
#include "herd/data.h"
#include "io/thrift_compact.h"

enum { PAGE_DATA = 0, PAGE_INDEX = 1, PAGE_DICTIONARY = 2, PAGE_DATA_V2 = 3 };

int herdi_pq_leaf_numeric(const pq_leaf *l) {
    if (l->as == PQ_AS_STRING || l->as == PQ_AS_BYTES) return 0;
    if (l->as == PQ_AS_FLOAT16) return l->physical == PQ_FIXED_LEN_BYTE_ARRAY && l->type_length == 2;
    if (l->as == PQ_AS_DECIMAL) /* the kinds parquet_meta.c lets through */
        return l->physical != PQ_FIXED_LEN_BYTE_ARRAY || l->type_length <= 32;
    return l->physical != PQ_BYTE_ARRAY && l->physical != PQ_FIXED_LEN_BYTE_ARRAY;
}

int herdi_pq_leaf_u8(const pq_leaf *l) {
    return l->physical == PQ_INT32 && l->as == PQ_AS_UNSIGNED && l->int_bits == 8;
}

static uint64_t le_n(const uint8_t *p, int n) {
    uint64_t v = 0;
    for (int i = 0; i < n; i++) v |= (uint64_t)p[i] << (8 * i);
    return v;
}

/* ---- the RLE / bit-packed hybrid ---- */

typedef struct rle_dec {
    const uint8_t *p, *end;
    int bw;
    int64_t left;        /* values left in the current run */
    int packed;          /* the run is bit-packed */
    uint32_t value;      /* an RLE run's value */
    const uint8_t *bits; /* a bit-packed run's bytes */
    uint64_t bit;        /* next bit in it */
} rle_dec;

static void rle_init(rle_dec *d, const uint8_t *p, size_t n, int bw) {
    static const uint8_t none[1];
    memset(d, 0, sizeof *d);
    if (!p) p = none, n = 0; /* no levels: NULL + 0 is not C */
    d->p = p, d->end = p + n, d->bw = bw;
}

static int read_uvarint(const uint8_t **p, const uint8_t *end, uint64_t *v) {
    uint64_t x = 0;
    for (int shift = 0; shift < 64; shift += 7) {
        if (*p >= end) return 0;
        uint8_t b = *(*p)++;
        x |= (uint64_t)(b & 0x7f) << shift;
        if (!(b & 0x80)) {
            *v = x;
            return 1;
        }
    }
    return 0;
}

/* w (<= 64) bits at bit offset `bit` of base, least significant first. */
static uint64_t unpack_bits(const uint8_t *base, uint64_t bit, int w) {
    uint64_t v = 0;
    int got = 0;
    const uint8_t *b = base + bit / 8;
    int shift = (int)(bit % 8);
    while (got < w) {
        uint64_t byte = (uint64_t)(*b++ >> shift);
        v |= byte << got;
        got += 8 - shift;
        shift = 0;
    }
    return w == 64 ? v : v & (((uint64_t)1 << w) - 1);
}

/* The next value: 1, or 0 when the data runs out or is malformed. */
static int rle_next(rle_dec *d, uint32_t *out) {
    while (d->left == 0) {
        uint64_t h;
        if (!read_uvarint(&d->p, d->end, &h)) return 0;
        if (h & 1) {
            uint64_t groups = h >> 1, avail = (uint64_t)(d->end - d->p);
            uint64_t bytes = groups > avail ? avail : groups * (uint64_t)d->bw; /* groups*bw: bw <= 32 */
            if (bytes > avail) bytes = avail;
            /* a writer may end the last run early: only the values present count */
            uint64_t count = d->bw ? bytes * 8 / (uint64_t)d->bw : groups * 8;
            if (count > groups * 8) count = groups * 8;
            d->packed = 1, d->bits = d->p, d->bit = 0, d->left = (int64_t)count;
            d->p += bytes;
        } else {
            int vb = (d->bw + 7) / 8;
            if (d->end - d->p < vb) return 0;
            d->packed = 0, d->value = (uint32_t)le_n(d->p, vb), d->left = (int64_t)(h >> 1);
            d->p += vb;
        }
    }
    d->left--;
    if (!d->packed) {
        *out = d->value;
        return 1;
    }
    *out = d->bw ? (uint32_t)unpack_bits(d->bits, d->bit, d->bw) : 0;
    d->bit += (uint64_t)d->bw;
    return 1;
}

static int bit_width(int max_level) {
    int w = 0;
    while ((1 << w) <= max_level) w++;
    return w;
}

/* ---- DELTA_BINARY_PACKED ---- */

typedef struct delta_dec {
    const uint8_t *p, *end;
    uint64_t block, minis, per_mini, left;
    uint64_t last;
    int64_t min_delta;
    const uint8_t *widths; /* one byte a miniblock of the current block */
    uint64_t mini, in_mini; /* current miniblock, values read from it */
    const uint8_t *mini_data;
    int started;
} delta_dec;

static int delta_init(delta_dec *d, const uint8_t *p, size_t n) {
    memset(d, 0, sizeof *d);
    d->p = p, d->end = p + n;
    uint64_t first;
    if (!read_uvarint(&d->p, d->end, &d->block) || !read_uvarint(&d->p, d->end, &d->minis) ||
        !read_uvarint(&d->p, d->end, &d->left) || !read_uvarint(&d->p, d->end, &first))
        return 0;
    if (d->block == 0 || d->block % 128 || d->block > (1 << 20) || d->minis == 0 || d->block % d->minis ||
        (d->block / d->minis) % 32)
        return 0;
    d->per_mini = d->block / d->minis;
    d->last = (first >> 1) ^ -(first & 1);
    d->mini = d->minis; /* no block read yet */
    return 1;
}

static int delta_next(delta_dec *d, uint64_t *out) {
    if (d->left == 0) return 0;
    d->left--;
    if (!d->started) {
        d->started = 1;
        *out = d->last;
        return 1;
    }
    if (d->mini < d->minis && d->in_mini == d->per_mini) { /* the next miniblock */
        d->mini_data += d->per_mini * d->widths[d->mini] / 8;
        d->mini++, d->in_mini = 0;
    }
    if (d->mini >= d->minis) { /* the next block: min delta, widths, then its miniblocks */
        uint64_t z;
        if (d->mini_data) d->p = d->mini_data;
        if (!read_uvarint(&d->p, d->end, &z) || (uint64_t)(d->end - d->p) < d->minis) return 0;
        d->min_delta = (int64_t)((z >> 1) ^ -(z & 1));
        d->widths = d->p;
        d->p += d->minis;
        d->mini_data = d->p;
        d->mini = 0, d->in_mini = 0;
    }
    int w = d->widths[d->mini];
    if (w > 64) return 0;
    uint64_t bit = d->in_mini * (uint64_t)w;
    if ((uint64_t)(d->end - d->mini_data) < (bit + (uint64_t)w + 7) / 8) return 0;
    uint64_t delta = w ? unpack_bits(d->mini_data, bit, w) : 0;
    d->in_mini++;
    d->last += (uint64_t)d->min_delta + delta; /* wraps, as the format intends */
    *out = d->last;
    return 1;
}

/* Where the bytes after a DELTA_BINARY_PACKED run start, once all its values were read: the
 * end of the current miniblock (padded to full length; later miniblocks have no bodies). */
static const uint8_t *delta_end(const delta_dec *d) {
    if (!d->mini_data) return d->p;
    uint64_t bytes = d->per_mini * d->widths[d->mini] / 8;
    return (uint64_t)(d->end - d->mini_data) < bytes ? NULL : d->mini_data + bytes;
}

/* The most values one page of DELTA_LENGTH_BYTE_ARRAY / DELTA_BYTE_ARRAY may hold (their
 * lengths are decoded up front). */
#define DELTA_BYTES_CAP ((int64_t)1 << 24)

/* ---- values ---- */

typedef struct pq_value {
    double num;
    const uint8_t *ptr; /* byte arrays */
    size_t len;
} pq_value;

/* A number from a byte array (DECIMAL: big-endian two's complement; FLOAT16: little-endian half). */
static double bytes_number(const pq_leaf *l, const uint8_t *p, size_t n) {
    if (l->as == PQ_AS_FLOAT16) {
        unsigned h = (unsigned)(p[0] | p[1] << 8), e = (h >> 10) & 31, m = h & 1023;
        double v = e == 0 ? ldexp(m, -24) : e == 31 ? (m ? NAN : INFINITY) : ldexp(m + 1024, (int)e - 25);
        return h & 0x8000 ? -v : v;
    }
    double v = 0;
    for (size_t i = 0; i < n; i++) v = v * 256 + p[i];
    if (n && (p[0] & 0x80)) v -= ldexp(1, (int)(8 * n)); /* negative */
    return v / pow(10, l->scale);
}

/* The number an integer of the physical type means. */
static double int_number(const pq_leaf *l, uint64_t bits) {
    if (l->physical == PQ_INT32) {
        uint32_t u = (uint32_t)bits;
        double v = l->as == PQ_AS_UNSIGNED ? (double)u : (double)(int32_t)u;
        return l->as == PQ_AS_DECIMAL ? v / pow(10, l->scale) : v;
    }
    double v = l->as == PQ_AS_UNSIGNED ? (double)bits : (double)(int64_t)bits;
    return l->as == PQ_AS_DECIMAL ? v / pow(10, l->scale) : v;
}

/* One PLAIN value at *p (bounded by end); booleans are bits, *bit counting them. */
static int plain_value(const pq_leaf *l, const uint8_t **p, const uint8_t *end, uint64_t *bit, pq_value *v) {
    size_t left = (size_t)(end - *p), n;
    switch (l->physical) {
    case PQ_BOOLEAN:
        if (*bit / 8 >= left) return 0;
        v->num = ((*p)[*bit / 8] >> (*bit % 8)) & 1;
        ++*bit;
        return 1;
    case PQ_INT32:
    case PQ_FLOAT:
        if (left < 4) return 0;
        if (l->physical == PQ_FLOAT) {
            uint32_t u = (uint32_t)le_n(*p, 4);
            float f;
            memcpy(&f, &u, 4);
            v->num = f;
        } else {
            v->num = int_number(l, le_n(*p, 4));
        }
        *p += 4;
        return 1;
    case PQ_INT64:
    case PQ_DOUBLE:
        if (left < 8) return 0;
        if (l->physical == PQ_DOUBLE) {
            uint64_t u = le_n(*p, 8);
            memcpy(&v->num, &u, 8);
        } else {
            v->num = int_number(l, le_n(*p, 8));
        }
        *p += 8;
        return 1;
    case PQ_INT96: /* Spark's legacy timestamps: nanoseconds of the day, then the Julian day */
        if (left < 12) return 0;
        v->num = ((double)(int32_t)le_n(*p + 8, 4) - 2440588.0) * 86400.0 + (double)le_n(*p, 8) * 1e-9;
        *p += 12;
        return 1;
    case PQ_BYTE_ARRAY:
        if (left < 4) return 0;
        n = (size_t)le_n(*p, 4);
        if (n > left - 4) return 0;
        v->ptr = *p + 4, v->len = n;
        *p += 4 + n;
        break;
    default: /* FIXED_LEN_BYTE_ARRAY */
        n = (size_t)l->type_length;
        if (left < n) return 0;
        v->ptr = *p, v->len = n;
        *p += n;
        break;
    }
    if (herdi_pq_leaf_numeric(l)) v->num = bytes_number(l, v->ptr, v->len);
    return 1;
}

/* ---- one chunk ---- */

typedef struct dictionary {
    pq_value *v;
    int64_t n;
    uint8_t *buf; /* the decompressed page the byte-array values point into */
} dictionary;

typedef struct chunk_state {
    const pq_leaf *leaf;
    pq_sink *sink;
    int64_t rows, row, elems; /* row being filled (-1 before the first), its elements so far */
    int done;                 /* PQ_SINK_WIDTH has what it wants */
    dictionary dict;
    const char *what;
    int page;
    herd_error *err;
} chunk_state;

#define PAGE_FAIL(s, st, fmt, ...) herd_fail((s)->err, st, "%s: page %d: " fmt, (s)->what, (s)->page, __VA_ARGS__)

/* The row before is complete: it must hold `width` elements. */
static herd_status end_row(chunk_state *s) {
    if (s->row < 0) return HERD_OK;
    if (s->sink->kind == PQ_SINK_WIDTH) {
        s->sink->found_width = s->elems;
        s->done = 1;
        return HERD_OK;
    }
    if (s->sink->kind == PQ_SINK_BAG) {
        if (s->elems == 0)
            return herd_fail(s->err, HERD_EFORMAT, "%s: row %lld: an empty bag (a null or empty list)", s->what,
                             (long long)s->row);
        if (s->elems > s->sink->width)
            return herd_fail(s->err, HERD_EFORMAT, "%s: row %lld: %lld ids, more than the bag's %lld (bags=COL:L)",
                             s->what, (long long)s->row, (long long)s->elems, (long long)s->sink->width);
        uint8_t *ids = s->sink->base + (size_t)s->row * s->sink->stride;
        for (int64_t j = s->elems; j < s->sink->width; j++) memcpy(ids + 4 * j, &(int32_t){HERD_NO_ID}, 4);
        return HERD_OK;
    }
    if (s->elems != s->sink->width) {
        if (s->elems == 0)
            return herd_fail(s->err, HERD_EFORMAT, "%s: row %lld is null or an empty list (herd needs a value)",
                             s->what, (long long)s->row);
        return herd_fail(s->err, HERD_EFORMAT, "%s: row %lld holds %lld values, row 0 of the data %lld", s->what,
                         (long long)s->row, (long long)s->elems, (long long)s->sink->width);
    }
    return HERD_OK;
}

static herd_status put_value(chunk_state *s, const pq_value *v) {
    pq_sink *k = s->sink;
    int64_t j = s->elems++;
    if (k->kind == PQ_SINK_WIDTH || j >= k->width) return HERD_OK; /* too many: end_row says so */
    if (k->kind == PQ_SINK_BYTES) return k->bytes(k->ctx, s->row, v->ptr, v->len, s->err);
    uint8_t *at = k->base + (size_t)s->row * k->stride;
    switch (k->kind) {
    case PQ_SINK_F32: ((float *)at)[j] = (float)v->num; return HERD_OK;
    case PQ_SINK_F64: ((double *)at)[j] = v->num; return HERD_OK;
    case PQ_SINK_BAG:
        if (!(v->num >= 0 && v->num <= INT32_MAX && v->num == floor(v->num)))
            return herd_fail(s->err, HERD_EFORMAT, "%s: row %lld: %g is not an id (an integer in [0, 2^31))", s->what,
                             (long long)s->row, v->num);
        memcpy(at + 4 * j, &(int32_t){(int32_t)v->num}, 4); /* after a u8 field: not 4-byte aligned */
        return HERD_OK;
    case PQ_SINK_U8:
        if (!(v->num >= 0 && v->num <= 255 && v->num == floor(v->num)))
            return herd_fail(s->err, HERD_EFORMAT, "%s: row %lld: value %g is not a byte (0..255)", s->what,
                             (long long)s->row, v->num);
        at[j] = (uint8_t)v->num;
        return HERD_OK;
    default: return HERD_OK;
    }
}

/* Values of one data page (after its levels): a reader by encoding. */
typedef struct value_reader {
    int encoding;
    const uint8_t *p, *end;
    uint64_t bit;
    rle_dec rle;
    delta_dec delta;
    /* DELTA_LENGTH_BYTE_ARRAY / DELTA_BYTE_ARRAY: lengths (and prefix lengths) decoded up front,
     * the value rebuilt in buf (a prefix of the one before, then its suffix) */
    int64_t *lens, *prefix, count, k;
    uint8_t *buf;
    size_t cap, cur;
} value_reader;

static void values_free(value_reader *vr) {
    free(vr->lens);
    free(vr->prefix);
    free(vr->buf);
}

/* All the values of a DELTA_BINARY_PACKED run at *p into a new array; *p moves past it. */
static int delta_all(const uint8_t **p, const uint8_t *end, int64_t max, int64_t **out, int64_t *count) {
    delta_dec d;
    if (!delta_init(&d, *p, (size_t)(end - *p)) || (int64_t)d.left < 0 || (int64_t)d.left > max) return 0;
    *count = (int64_t)d.left;
    *out = herd_malloc_array((size_t)*count + 1, sizeof **out);
    if (!*out) return 0;
    for (int64_t i = 0; i < *count; i++) {
        uint64_t v;
        if (!delta_next(&d, &v)) return 0;
        (*out)[i] = (int64_t)v;
    }
    const uint8_t *e = delta_end(&d);
    if (!e) return 0;
    *p = e;
    return 1;
}

static herd_status values_init(chunk_state *s, value_reader *vr, int encoding, const uint8_t *p, size_t n,
                               int64_t num_values) {
    const pq_leaf *l = s->leaf;
    memset(vr, 0, sizeof *vr);
    vr->encoding = encoding, vr->p = p, vr->end = p + n;
    switch (encoding) {
    case PQ_ENC_PLAIN: return HERD_OK;
    case PQ_ENC_PLAIN_DICTIONARY:
    case PQ_ENC_RLE_DICTIONARY:
        if (!s->dict.v && s->dict.n == 0)
            return PAGE_FAIL(s, HERD_EFORMAT, "%s-encoded values but no dictionary page before them",
                             herdi_pq_encoding_name(encoding));
        if (n < 1 || p[0] > 32) return PAGE_FAIL(s, HERD_EFORMAT, "dictionary index bit width %d", n ? p[0] : -1);
        rle_init(&vr->rle, p + 1, n - 1, p[0]);
        return HERD_OK;
    case PQ_ENC_RLE:
        if (l->physical != PQ_BOOLEAN) break;
        if (n < 4 || le_n(p, 4) > n - 4) return PAGE_FAIL(s, HERD_EFORMAT, "RLE booleans of %zu bytes", n);
        rle_init(&vr->rle, p + 4, (size_t)le_n(p, 4), 1);
        return HERD_OK;
    case PQ_ENC_DELTA_BINARY_PACKED:
        if (l->physical != PQ_INT32 && l->physical != PQ_INT64) break;
        if (!delta_init(&vr->delta, p, n)) return PAGE_FAIL(s, HERD_EFORMAT, "bad DELTA_BINARY_PACKED header%s", "");
        return HERD_OK;
    case PQ_ENC_DELTA_BYTE_ARRAY:
    case PQ_ENC_DELTA_LENGTH_BYTE_ARRAY: {
        if (l->physical != PQ_BYTE_ARRAY && l->physical != PQ_FIXED_LEN_BYTE_ARRAY) break;
        int64_t np = 0, max = num_values < DELTA_BYTES_CAP ? num_values : DELTA_BYTES_CAP;
        if ((encoding == PQ_ENC_DELTA_BYTE_ARRAY && !delta_all(&vr->p, vr->end, max, &vr->prefix, &np)) ||
            !delta_all(&vr->p, vr->end, max, &vr->lens, &vr->count) ||
            (encoding == PQ_ENC_DELTA_BYTE_ARRAY && np != vr->count))
            return PAGE_FAIL(s, HERD_EFORMAT, "bad %s lengths (at most %lld values a page)", herdi_pq_encoding_name(encoding),
                             (long long)max);
        return HERD_OK;
    }
    default: break;
    }
    return PAGE_FAIL(s, HERD_EUNSUPPORTED, "encoding %s of %s values is not supported (herd reads PLAIN, "
                     "PLAIN_DICTIONARY, RLE_DICTIONARY, RLE booleans, DELTA_BINARY_PACKED integers and "
                     "DELTA_LENGTH_BYTE_ARRAY / DELTA_BYTE_ARRAY bytes)",
                     herdi_pq_encoding_name(encoding), herdi_pq_physical_name(l->physical));
}

static herd_status next_value(chunk_state *s, value_reader *vr, pq_value *v) {
    uint32_t u;
    uint64_t x;
    switch (vr->encoding) {
    case PQ_ENC_PLAIN:
        if (plain_value(s->leaf, &vr->p, vr->end, &vr->bit, v)) return HERD_OK;
        break;
    case PQ_ENC_RLE:
        if (rle_next(&vr->rle, &u)) {
            v->num = u & 1;
            return HERD_OK;
        }
        break;
    case PQ_ENC_DELTA_BINARY_PACKED:
        if (delta_next(&vr->delta, &x)) {
            v->num = int_number(s->leaf, x);
            return HERD_OK;
        }
        break;
    case PQ_ENC_DELTA_LENGTH_BYTE_ARRAY:
    case PQ_ENC_DELTA_BYTE_ARRAY: {
        if (vr->k >= vr->count) break;
        int64_t len = vr->lens[vr->k], pre = vr->prefix ? vr->prefix[vr->k] : 0;
        vr->k++;
        if (len < 0 || (uint64_t)len > (uint64_t)(vr->end - vr->p) || pre < 0 || (size_t)pre > vr->cur)
            return PAGE_FAIL(s, HERD_EFORMAT, "%s value of %lld bytes (prefix %lld) past the page",
                             herdi_pq_encoding_name(vr->encoding), (long long)len, (long long)pre);
        if (!vr->prefix) { /* the bytes as they are in the page */
            v->ptr = vr->p, v->len = (size_t)len;
        } else {
            size_t need = (size_t)pre + (size_t)len;
            if (need > vr->cap) {
                uint8_t *g = realloc(vr->buf, need);
                if (!g) return PAGE_FAIL(s, HERD_ENOMEM, "out of memory for a value of %zu bytes", need);
                vr->buf = g, vr->cap = need;
            }
            if (len) memcpy(vr->buf + pre, vr->p, (size_t)len);
            vr->cur = need;
            v->ptr = vr->buf, v->len = need;
        }
        vr->p += len;
        if (s->leaf->physical == PQ_FIXED_LEN_BYTE_ARRAY && v->len != (size_t)s->leaf->type_length)
            return PAGE_FAIL(s, HERD_EFORMAT, "a value of %zu bytes in a column of %d", v->len, s->leaf->type_length);
        if (herdi_pq_leaf_numeric(s->leaf)) v->num = bytes_number(s->leaf, v->ptr, v->len);
        return HERD_OK;
    }
    default: /* dictionary indices */
        if (!rle_next(&vr->rle, &u)) break;
        if ((int64_t)u >= s->dict.n)
            return PAGE_FAIL(s, HERD_EFORMAT, "dictionary index %u, the dictionary has %lld values", u,
                             (long long)s->dict.n);
        *v = s->dict.v[u];
        return HERD_OK;
    }
    return PAGE_FAIL(s, HERD_EFORMAT, "%s values run out before the page's value count",
                     herdi_pq_encoding_name(vr->encoding));
}

/* The levels and values of one data page: levels (may be NULL when the max level is 0) are
 * RLE/bit-packed hybrid over the given bytes. */
static herd_status page_rows(chunk_state *s, int64_t num_values, const uint8_t *rep, size_t rep_n,
                             const uint8_t *def, size_t def_n, value_reader *vr) {
    const pq_leaf *l = s->leaf;
    rle_dec rd, dd;
    rle_init(&rd, rep, rep_n, bit_width(l->max_rep));
    rle_init(&dd, def, def_n, bit_width(l->max_def));
    for (int64_t k = 0; k < num_values && !s->done; k++) {
        uint32_t r = 0, d = (uint32_t)l->max_def;
        if (l->max_rep > 0 && !rle_next(&rd, &r))
            return PAGE_FAIL(s, HERD_EFORMAT, "repetition levels run out at value %lld of %lld", (long long)k,
                             (long long)num_values);
        if (l->max_def > 0 && !rle_next(&dd, &d))
            return PAGE_FAIL(s, HERD_EFORMAT, "definition levels run out at value %lld of %lld", (long long)k,
                             (long long)num_values);
        if (r > (uint32_t)l->max_rep || d > (uint32_t)l->max_def)
            return PAGE_FAIL(s, HERD_EFORMAT, "level (%u, %u) above the column's maximum (%d, %d)", r, d, l->max_rep,
                             l->max_def);
        herd_status st;
        if (r != 0 && s->row < 0)
            return PAGE_FAIL(s, HERD_EFORMAT, "the chunk's first value has repetition level %u (a row must start "
                             "at 0)", r);
        if (r == 0) { /* a new row */
            if ((st = end_row(s)) != HERD_OK) return st;
            if (s->done) break;
            if (++s->row >= s->rows)
                return PAGE_FAIL(s, HERD_EFORMAT, "more rows than the row group's %lld", (long long)s->rows);
            s->elems = 0;
        }
        if ((int)d == l->max_def) {
            pq_value v = {0, NULL, 0};
            if ((st = next_value(s, vr, &v)) != HERD_OK || (st = put_value(s, &v)) != HERD_OK) return st;
        } else if (l->max_rep == 0 || (int)d >= l->rep_def) {
            return herd_fail(s->err, HERD_EFORMAT, "%s: row %lld: null value (herd needs every value)", s->what,
                             (long long)s->row);
        } /* else: a null or empty list, which end_row refuses unless the width is 0 */
    }
    return HERD_OK;
}

static herd_status read_dictionary(chunk_state *s, uint8_t *buf, size_t n, int64_t count, int encoding) {
    if (encoding != PQ_ENC_PLAIN && encoding != PQ_ENC_PLAIN_DICTIONARY)
        return PAGE_FAIL(s, HERD_EUNSUPPORTED, "dictionary page encoding %s is not supported (PLAIN only)",
                         herdi_pq_encoding_name(encoding));
    if (s->dict.buf) return PAGE_FAIL(s, HERD_EFORMAT, "a second dictionary page%s", "");
    /* every value takes at least one bit: a bound on the count from the bytes present */
    if (count < 0 || (uint64_t)count > (uint64_t)n * 8 + 1)
        return PAGE_FAIL(s, HERD_EFORMAT, "dictionary of %lld values in %zu bytes", (long long)count, n);
    s->dict.buf = buf;
    s->dict.v = herd_malloc_array((size_t)count + 1, sizeof *s->dict.v);
    if (!s->dict.v) return PAGE_FAIL(s, HERD_ENOMEM, "out of memory for a dictionary of %lld values", (long long)count);
    const uint8_t *p = buf;
    uint64_t bit = 0;
    for (int64_t i = 0; i < count; i++) {
        pq_value v = {0, NULL, 0};
        if (!plain_value(s->leaf, &p, buf + n, &bit, &v))
            return PAGE_FAIL(s, HERD_EFORMAT, "dictionary values run out at %lld of %lld", (long long)i,
                             (long long)count);
        s->dict.v[i] = v;
    }
    s->dict.n = count;
    return HERD_OK;
}

typedef struct page_header {
    int type;
    int64_t uncompressed, compressed, crc;
    int has_crc;
    int64_t num_values;
    int encoding, def_encoding, rep_encoding;
    int64_t def_len, rep_len;
    int is_compressed;
} page_header;

/* DataPageHeader (5), DictionaryPageHeader (7) or DataPageHeaderV2 (8) fields into h. */
typedef struct sub_header {
    page_header *h;
    int which;
} sub_header;

static void on_sub_header(void *ctx, int16_t id, int64_t v) {
    const sub_header *sh = ctx;
    page_header *h = sh->h;
    int iv = v < 0 || v > INT32_MAX ? -1 : (int)v;
    if (id == 1) h->num_values = v;
    if (sh->which == 5) {
        if (id == 2) h->encoding = iv;
        if (id == 3) h->def_encoding = iv;
        if (id == 4) h->rep_encoding = iv;
    } else if (sh->which == 7) {
        if (id == 2) h->encoding = iv;
    } else {
        if (id == 4) h->encoding = iv;
        if (id == 5) h->def_len = v;
        if (id == 6) h->rep_len = v;
        if (id == 7) h->is_compressed = (int)v;
    }
}

/* The page header at p (at most n bytes); *used: its length. */
static herd_status read_page_header(chunk_state *s, const uint8_t *p, size_t n, page_header *h, size_t *used) {
    tc_reader r;
    int16_t id;
    int t;
    memset(h, 0, sizeof *h);
    h->type = h->num_values = h->uncompressed = h->compressed = -1;
    h->encoding = h->def_encoding = h->rep_encoding = PQ_ENC_RLE;
    h->is_compressed = 1;
    herdi_tc_init(&r, p, n);
    if (herdi_tc_struct_begin(&r)) {
        while (herdi_tc_field(&r, &id, &t)) {
            if (t == TC_STRUCT && (id == 5 || id == 7 || id == 8)) {
                sub_header sh = {h, id};
                herdi_tc_struct_ints(&r, on_sub_header, &sh);
                continue;
            }
            int64_t v;
            int ok;
            if (!herdi_tc_int_field(&r, t, &v, &ok)) break;
            if (!ok) continue;
            if (id == 1) h->type = (int)(v < 0 || v > 3 ? 99 : v);
            if (id == 2) h->uncompressed = v;
            if (id == 3) h->compressed = v;
            if (id == 4) h->crc = v, h->has_crc = 1;
        }
        herdi_tc_struct_end(&r);
    }
    if (r.why) return PAGE_FAIL(s, HERD_EFORMAT, "bad page header: %s at byte %zu", r.why, r.at);
    *used = (size_t)(r.p - p);
    if (h->compressed < 0 || (uint64_t)h->compressed > n - *used)
        return PAGE_FAIL(s, HERD_EFORMAT, "page of %lld bytes, the column chunk has %zu left", (long long)h->compressed,
                         n - *used);
    if (h->uncompressed < 0 || (uint64_t)h->uncompressed > PQ_PAGE_CAP || (uint64_t)h->compressed > PQ_PAGE_CAP)
        return PAGE_FAIL(s, HERD_EFORMAT, "page of %lld bytes decompressing to %lld (herd's limit is %zu)",
                         (long long)h->compressed, (long long)h->uncompressed, PQ_PAGE_CAP);
    if (h->num_values < 0 && h->type != PAGE_INDEX)
        return PAGE_FAIL(s, HERD_EFORMAT, "page of %lld values", (long long)h->num_values);
    return HERD_OK;
}

/* buf (grown in *buf / *cap) receives n bytes. */
static herd_status reserve(chunk_state *s, uint8_t **buf, size_t *cap, size_t n) {
    if (n <= *cap && *buf) return HERD_OK;
    uint8_t *g = realloc(*buf, n ? n : 1);
    if (!g) return PAGE_FAIL(s, HERD_ENOMEM, "out of memory for %zu bytes", n);
    *buf = g, *cap = n;
    return HERD_OK;
}

static herd_status data_page(chunk_state *s, const page_header *h, const uint8_t *body, int codec, uint8_t **buf,
                             size_t *cap) {
    const pq_leaf *l = s->leaf;
    size_t n = (size_t)h->uncompressed, rep_n = 0, def_n = 0;
    const uint8_t *rep = NULL, *def = NULL, *vals;
    herd_status st;
    if (h->type == PAGE_DATA) {
        if ((st = reserve(s, buf, cap, n)) != HERD_OK ||
            (st = herdi_pq_decompress(codec, body, (size_t)h->compressed, *buf, n, s->what, s->err)) != HERD_OK)
            return st;
        const uint8_t *p = *buf, *end = *buf + n;
        for (int which = 0; which < 2; which++) { /* repetition levels, then definition levels */
            int max = which ? l->max_def : l->max_rep, enc = which ? h->def_encoding : h->rep_encoding;
            if (max == 0) continue;
            if (enc != PQ_ENC_RLE)
                return PAGE_FAIL(s, HERD_EUNSUPPORTED, "%s levels in %s encoding are not supported (RLE only)",
                                 which ? "definition" : "repetition", herdi_pq_encoding_name(enc));
            if (end - p < 4 || le_n(p, 4) > (uint64_t)(end - p - 4))
                return PAGE_FAIL(s, HERD_EFORMAT, "%s levels longer than the page", which ? "definition" : "repetition");
            size_t len = (size_t)le_n(p, 4);
            if (which) def = p + 4, def_n = len;
            else rep = p + 4, rep_n = len;
            p += 4 + len;
        }
        vals = p, n = (size_t)(end - p);
    } else { /* v2: levels uncompressed before the (maybe compressed) values */
        if (h->def_len < 0 || h->rep_len < 0 || (uint64_t)h->rep_len > (uint64_t)h->compressed ||
            (uint64_t)h->def_len > (uint64_t)h->compressed - (uint64_t)h->rep_len ||
            (uint64_t)h->def_len + (uint64_t)h->rep_len > (uint64_t)h->uncompressed)
            return PAGE_FAIL(s, HERD_EFORMAT, "level lengths %lld + %lld outside the page's %lld bytes",
                             (long long)h->rep_len, (long long)h->def_len, (long long)h->compressed);
        rep = body, rep_n = (size_t)h->rep_len;
        def = body + rep_n, def_n = (size_t)h->def_len;
        size_t levels = rep_n + def_n, stored = (size_t)h->compressed - levels;
        n = (size_t)h->uncompressed - levels;
        if ((st = reserve(s, buf, cap, n)) != HERD_OK ||
            (st = herdi_pq_decompress(h->is_compressed ? codec : PQ_UNCOMPRESSED, body + levels, stored, *buf, n, s->what,
                                s->err)) != HERD_OK)
            return st;
        vals = *buf;
    }
    value_reader vr;
    if ((st = values_init(s, &vr, h->encoding, vals, n, h->num_values)) == HERD_OK)
        st = page_rows(s, h->num_values, rep, rep_n, def, def_n, &vr);
    values_free(&vr);
    return st;
}

herd_status herdi_pq_column_read(const uint8_t *file, const pq_leaf *leaf, const pq_chunk *chunk, int64_t rows,
                           pq_sink *sink, const char *what, herd_error *err) {
    chunk_state s = {leaf, sink, rows, -1, 0, 0, {NULL, 0, NULL}, what, 0, err};
    uint8_t *buf = NULL;
    size_t cap = 0;
    herd_status st = HERD_OK;
    const uint8_t *p = file + chunk->start, *end = p + chunk->len;
    int64_t values = 0;
    if (sink->kind != PQ_SINK_BYTES && sink->kind != PQ_SINK_WIDTH && !herdi_pq_leaf_numeric(leaf))
        return herd_fail(err, HERD_EFORMAT, "%s: %s values are not numbers", what,
                         leaf->as == PQ_AS_STRING ? "text" : "byte-array");
    while (values < chunk->num_values && p < end && !s.done) {
        page_header h;
        size_t used = 0;
        if ((st = read_page_header(&s, p, (size_t)(end - p), &h, &used)) != HERD_OK) break;
        const uint8_t *body = p + used;
        if (h.has_crc && (uint32_t)crc32(0, body, (uInt)h.compressed) != (uint32_t)h.crc) {
            st = PAGE_FAIL(&s, HERD_EFORMAT, "page CRC mismatch (stored %08x)", (unsigned)(uint32_t)h.crc);
            break;
        }
        if (h.type == PAGE_DICTIONARY) {
            uint8_t *d = malloc(h.uncompressed ? (size_t)h.uncompressed : 1);
            if (!d) {
                st = PAGE_FAIL(&s, HERD_ENOMEM, "out of memory for %lld bytes", (long long)h.uncompressed);
                break;
            }
            st = herdi_pq_decompress(chunk->codec, body, (size_t)h.compressed, d, (size_t)h.uncompressed, what, err);
            if (st == HERD_OK) st = read_dictionary(&s, d, (size_t)h.uncompressed, h.num_values, h.encoding);
            if (s.dict.buf != d) free(d); /* not taken */
            if (st != HERD_OK) break;
        } else if (h.type == PAGE_DATA || h.type == PAGE_DATA_V2) {
            if (h.num_values > chunk->num_values - values) {
                st = PAGE_FAIL(&s, HERD_EFORMAT, "%lld values, more than the chunk's %lld", (long long)h.num_values,
                               (long long)chunk->num_values);
                break;
            }
            if ((st = data_page(&s, &h, body, chunk->codec, &buf, &cap)) != HERD_OK) break;
            values += h.num_values;
        } else if (h.type != PAGE_INDEX) {
            st = PAGE_FAIL(&s, HERD_EFORMAT, "unknown page type %d", h.type);
            break;
        }
        p = body + h.compressed;
        s.page++;
    }
    if (st == HERD_OK && !s.done) st = end_row(&s);
    if (st == HERD_OK && !s.done && s.row + 1 != rows)
        st = herd_fail(err, HERD_EFORMAT, "%s: %lld rows in the pages, the row group has %lld", what,
                       (long long)(s.row + 1), (long long)rows);
    if (st == HERD_OK && sink->kind == PQ_SINK_WIDTH && !s.done) sink->found_width = -1; /* no rows */
    free(buf);
    free(s.dict.v);
    free(s.dict.buf);
    return st;
}
