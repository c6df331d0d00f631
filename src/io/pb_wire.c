/* Protocol Buffers wire format: writer and bounded reader (see pb_wire.h). Multi-byte
 * fixed values are little-endian on the wire whatever the host. */
#include "io/pb_wire.h"

#include <stdlib.h>
#include <string.h>

static void reserve(pb_writer *w, size_t n) {
    if (w->failed) return;
    if (n > SIZE_MAX - w->len) {
        w->failed = 1;
        return;
    }
    if (w->len + n <= w->cap) return;
    size_t cap = w->cap ? w->cap : 256;
    while (cap < w->len + n) {
        if (cap > SIZE_MAX / 2) {
            w->failed = 1;
            return;
        }
        cap *= 2;
    }
    uint8_t *b = realloc(w->buf, cap);
    if (!b) {
        w->failed = 1;
        return;
    }
    w->buf = b, w->cap = cap;
}

void herdi_pb_put_raw(pb_writer *w, const void *data, size_t n) {
    reserve(w, n);
    if (w->failed || n == 0) return;
    memcpy(w->buf + w->len, data, n);
    w->len += n;
}

void herdi_pb_put_varint_raw(pb_writer *w, uint64_t v) {
    uint8_t b[10];
    size_t n = 0;
    do {
        b[n] = (uint8_t)(v & 0x7f);
        v >>= 7;
        if (v) b[n] |= 0x80;
        n++;
    } while (v);
    herdi_pb_put_raw(w, b, n);
}

static void put_tag(pb_writer *w, int field, int wire) {
    herdi_pb_put_varint_raw(w, ((uint64_t)field << 3) | (uint64_t)wire);
}

void herdi_pb_put_varint(pb_writer *w, int field, uint64_t v) {
    put_tag(w, field, PB_VARINT);
    herdi_pb_put_varint_raw(w, v);
}

static void put_le(pb_writer *w, uint64_t v, int bytes) {
    uint8_t b[8];
    for (int i = 0; i < bytes; i++) b[i] = (uint8_t)(v >> (8 * i));
    herdi_pb_put_raw(w, b, (size_t)bytes);
}

void herdi_pb_put_fixed32(pb_writer *w, int field, uint32_t v) {
    put_tag(w, field, PB_FIXED32);
    put_le(w, v, 4);
}

void herdi_pb_put_fixed64(pb_writer *w, int field, uint64_t v) {
    put_tag(w, field, PB_FIXED64);
    put_le(w, v, 8);
}

void herdi_pb_put_float(pb_writer *w, int field, float v) {
    uint32_t u;
    memcpy(&u, &v, 4);
    herdi_pb_put_fixed32(w, field, u);
}

void herdi_pb_put_double(pb_writer *w, int field, double v) {
    uint64_t u;
    memcpy(&u, &v, 8);
    herdi_pb_put_fixed64(w, field, u);
}

void herdi_pb_put_bytes(pb_writer *w, int field, const void *data, size_t n) {
    put_tag(w, field, PB_LEN);
    herdi_pb_put_varint_raw(w, n);
    herdi_pb_put_raw(w, data, n);
}

void herdi_pb_put_string(pb_writer *w, int field, const char *s) { herdi_pb_put_bytes(w, field, s, strlen(s)); }

void herdi_pb_put_message(pb_writer *w, int field, pb_writer *sub) {
    if (sub->failed)
        w->failed = 1;
    else
        herdi_pb_put_bytes(w, field, sub->buf, sub->len);
    herdi_pb_writer_free(sub);
}

void herdi_pb_put_packed_i64(pb_writer *w, int field, const int64_t *v, int n) {
    pb_writer sub = {0};
    for (int i = 0; i < n; i++) herdi_pb_put_varint_raw(&sub, (uint64_t)v[i]);
    herdi_pb_put_message(w, field, &sub);
}

void herdi_pb_writer_free(pb_writer *w) {
    free(w->buf);
    w->buf = NULL;
    w->len = w->cap = 0;
}

/* ------------------------------------------------------------------ reader */

int herdi_pb_read_varint(pb_reader *r, uint64_t *v) {
    uint64_t x = 0;
    for (int i = 0; i < 10; i++) {
        if (r->p >= r->end) return 0;
        uint8_t b = *r->p++;
        if (i == 9 && b > 1) return 0; /* more than 64 bits */
        x |= (uint64_t)(b & 0x7f) << (7 * i);
        if (!(b & 0x80)) {
            *v = x;
            return 1;
        }
    }
    return 0;
}

static uint64_t get_le(const uint8_t *p, int bytes) {
    uint64_t v = 0;
    for (int i = 0; i < bytes; i++) v |= (uint64_t)p[i] << (8 * i);
    return v;
}

int herdi_pb_next(pb_reader *r, pb_field *f, const char **why) {
    if (r->p >= r->end) return 0;
    uint64_t tag;
    if (!herdi_pb_read_varint(r, &tag)) return *why = "truncated field tag", -1;
    if ((tag >> 3) == 0 || (tag >> 3) > 0x1fffffff) return *why = "invalid field number", -1;
    memset(f, 0, sizeof *f);
    f->number = (uint32_t)(tag >> 3);
    f->wire = (int)(tag & 7);
    size_t left;
    switch (f->wire) {
    case PB_VARINT:
        if (!herdi_pb_read_varint(r, &f->u)) return *why = "truncated varint", -1;
        return 1;
    case PB_FIXED64:
    case PB_FIXED32: {
        int n = f->wire == PB_FIXED64 ? 8 : 4;
        if ((size_t)(r->end - r->p) < (size_t)n) return *why = "truncated fixed-size value", -1;
        f->u = get_le(r->p, n);
        r->p += n;
        return 1;
    }
    case PB_LEN: {
        uint64_t n;
        if (!herdi_pb_read_varint(r, &n)) return *why = "truncated length", -1;
        left = (size_t)(r->end - r->p);
        if (n > left) return *why = "length-delimited field runs past the end", -1;
        f->data = r->p;
        f->len = (size_t)n;
        r->p += n;
        return 1;
    }
    default: return *why = "unsupported wire type (group or invalid)", -1;
    }
}

float herdi_pb_as_float(const pb_field *f) {
    uint32_t u = (uint32_t)f->u;
    float v;
    memcpy(&v, &u, 4);
    return v;
}

double herdi_pb_as_double(const pb_field *f) {
    double v;
    memcpy(&v, &f->u, 8);
    return v;
}
