/* Thrift compact protocol reader (thrift_compact.h): zigzag varints, field-id deltas, list
 * headers; everything bounded by the bytes present and by a nesting limit. */
#include "io/thrift_compact.h"

#include <string.h>

#define MAX_DEPTH 64

void herdi_tc_init(tc_reader *r, const uint8_t *data, size_t n) {
    memset(r, 0, sizeof *r);
    r->p = r->start = data;
    r->end = data + n;
}

static int bad(tc_reader *r, const char *why) {
    if (!r->why) {
        r->why = why;
        r->at = (size_t)(r->p - r->start);
    }
    r->p = r->end; /* nothing more is read */
    return 0;
}

static int varint(tc_reader *r, uint64_t *v) {
    uint64_t x = 0;
    if (r->why) return 0;
    for (int shift = 0; shift < 70; shift += 7) {
        if (r->p >= r->end) return bad(r, "truncated varint");
        uint8_t b = *r->p++;
        if (shift == 63 && b > 1) return bad(r, "varint overflows 64 bits");
        x |= (uint64_t)(b & 0x7f) << shift;
        if (!(b & 0x80)) {
            *v = x;
            return 1;
        }
    }
    return bad(r, "varint longer than 10 bytes");
}

static int64_t unzigzag(uint64_t u) { return (int64_t)(u >> 1) ^ -(int64_t)(u & 1); }

int herdi_tc_struct_begin(tc_reader *r) {
    if (r->why) return 0;
    if (r->depth >= MAX_DEPTH) return bad(r, "structures nested too deep");
    r->last_id[r->depth++] = 0;
    return 1;
}

void herdi_tc_struct_end(tc_reader *r) {
    if (r->depth > 0) r->depth--;
}

int herdi_tc_field(tc_reader *r, int16_t *id, int *type) {
    if (r->why || r->depth == 0) return 0;
    if (r->p >= r->end) return bad(r, "truncated structure (no stop field)");
    uint8_t b = *r->p++;
    *type = b & 0x0f;
    if (*type == TC_STOP) return 0;
    int delta = b >> 4;
    if (delta) {
        *id = (int16_t)(r->last_id[r->depth - 1] + delta);
    } else {
        int64_t v;
        if (!herdi_tc_i64(r, &v)) return 0;
        if (v < INT16_MIN || v > INT16_MAX) return bad(r, "field id outside int16");
        *id = (int16_t)v;
    }
    if (*type > TC_STRUCT) return bad(r, "unknown field type");
    r->last_id[r->depth - 1] = *id;
    return 1;
}

int herdi_tc_i64(tc_reader *r, int64_t *v) {
    uint64_t u;
    if (!varint(r, &u)) return 0;
    *v = unzigzag(u);
    return 1;
}

int herdi_tc_i32(tc_reader *r, int32_t *v) {
    int64_t x;
    if (!herdi_tc_i64(r, &x)) return 0;
    if (x < INT32_MIN || x > INT32_MAX) return bad(r, "i32 value out of range");
    *v = (int32_t)x;
    return 1;
}

int herdi_tc_byte(tc_reader *r, int8_t *v) {
    if (r->why) return 0;
    if (r->p >= r->end) return bad(r, "truncated byte");
    *v = (int8_t)*r->p++;
    return 1;
}

int herdi_tc_double(tc_reader *r, double *v) {
    if (r->why) return 0;
    if (r->end - r->p < 8) return bad(r, "truncated double");
    uint64_t u = 0;
    for (int i = 0; i < 8; i++) u |= (uint64_t)r->p[i] << (8 * i);
    memcpy(v, &u, 8);
    r->p += 8;
    return 1;
}

int herdi_tc_binary(tc_reader *r, const uint8_t **data, size_t *len) {
    uint64_t n;
    if (!varint(r, &n)) return 0;
    if (n > (uint64_t)(r->end - r->p)) return bad(r, "string or binary longer than the bytes left");
    *data = r->p, *len = (size_t)n;
    r->p += n;
    return 1;
}

int herdi_tc_list(tc_reader *r, int *elem_type, int64_t *count) {
    if (r->why) return 0;
    if (r->p >= r->end) return bad(r, "truncated list header");
    uint8_t b = *r->p++;
    uint64_t n = b >> 4;
    *elem_type = b & 0x0f;
    if (n == 15 && !varint(r, &n)) return 0;
    if (*elem_type == TC_STOP || *elem_type > TC_STRUCT) return bad(r, "unknown list element type");
    /* every element takes at least one byte */
    if (n > (uint64_t)(r->end - r->p)) return bad(r, "list count larger than the bytes left");
    *count = (int64_t)n;
    return 1;
}

int herdi_tc_list_bool(tc_reader *r, int *v) {
    int8_t b;
    if (!herdi_tc_byte(r, &b)) return 0;
    *v = b == 1;
    return 1;
}

static int skip_n(tc_reader *r, size_t n) {
    if ((size_t)(r->end - r->p) < n) return bad(r, "truncated value");
    r->p += n;
    return 1;
}

int herdi_tc_skip(tc_reader *r, int type) {
    int64_t v;
    const uint8_t *d;
    size_t n;
    if (r->why) return 0;
    switch (type) {
    case TC_TRUE:
    case TC_FALSE: return 1; /* a bool field's value is in its type */
    case TC_BYTE: return skip_n(r, 1);
    case TC_I16:
    case TC_I32:
    case TC_I64: return herdi_tc_i64(r, &v);
    case TC_DOUBLE: return skip_n(r, 8);
    case TC_BINARY: return herdi_tc_binary(r, &d, &n);
    case TC_LIST:
    case TC_SET: {
        int et;
        int64_t count;
        if (!herdi_tc_list(r, &et, &count)) return 0;
        if (r->depth >= MAX_DEPTH) return bad(r, "structures nested too deep");
        r->depth++;
        for (int64_t i = 0; i < count && !r->why; i++)
            if (et == TC_TRUE || et == TC_FALSE ? !skip_n(r, 1) : !herdi_tc_skip(r, et)) break;
        r->depth--;
        return !r->why;
    }
    case TC_MAP: {
        uint64_t count;
        if (!varint(r, &count)) return 0;
        if (count == 0) return 1;
        if (r->p >= r->end) return bad(r, "truncated map header");
        uint8_t kv = *r->p++;
        int kt = kv >> 4, vt = kv & 0x0f;
        if (kt == TC_STOP || kt > TC_STRUCT || vt == TC_STOP || vt > TC_STRUCT) return bad(r, "unknown map types");
        if (count > (uint64_t)(r->end - r->p)) return bad(r, "map count larger than the bytes left");
        if (r->depth >= MAX_DEPTH) return bad(r, "structures nested too deep");
        r->depth++;
        for (uint64_t i = 0; i < count && !r->why; i++) {
            if (kt == TC_TRUE || kt == TC_FALSE ? !skip_n(r, 1) : !herdi_tc_skip(r, kt)) break;
            if (vt == TC_TRUE || vt == TC_FALSE ? !skip_n(r, 1) : !herdi_tc_skip(r, vt)) break;
        }
        r->depth--;
        return !r->why;
    }
    case TC_STRUCT: {
        int16_t id;
        int t;
        if (!herdi_tc_struct_begin(r)) return 0;
        while (herdi_tc_field(r, &id, &t))
            if (!herdi_tc_skip(r, t)) break;
        herdi_tc_struct_end(r);
        return !r->why;
    }
    default: return bad(r, "unknown type");
    }
}

int herdi_tc_int_field(tc_reader *r, int type, int64_t *v, int *ok) {
    int8_t b;
    *ok = 1;
    switch (type) {
    case TC_TRUE: *v = 1; return 1;
    case TC_FALSE: *v = 0; return 1;
    case TC_BYTE:
        if (!herdi_tc_byte(r, &b)) return 0;
        *v = b;
        return 1;
    case TC_I16:
    case TC_I32:
    case TC_I64: return herdi_tc_i64(r, v);
    default: *ok = 0; return herdi_tc_skip(r, type);
    }
}

int herdi_tc_struct_ints(tc_reader *r, void (*on)(void *ctx, int16_t id, int64_t v), void *ctx) {
    int16_t id;
    int t, ok;
    int64_t v;
    if (!herdi_tc_struct_begin(r)) return 0;
    while (herdi_tc_field(r, &id, &t)) {
        if (!herdi_tc_int_field(r, t, &v, &ok)) break;
        if (ok) on(ctx, id, v);
    }
    herdi_tc_struct_end(r);
    return !r->why;
}
