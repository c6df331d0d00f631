/* Bounded protobuf wire-format decoding (protobuf.h): every length is compared with the
 * bytes left before anything is read, so hostile input ends in an error, not a read overrun. */
#include "io/protobuf.h"

#include <string.h>

void herd_pb_init(herd_pb_reader *r, const void *buf, size_t len) {
    r->start = r->p = buf;
    r->end = r->p + len;
    r->error = NULL;
    r->error_at = 0;
}

int herd_pb_varint(const uint8_t **p, const uint8_t *end, uint64_t *v) {
    uint64_t x = 0;
    const uint8_t *q = *p;
    for (int shift = 0; shift < 70; shift += 7) {
        if (q >= end) return 0;
        uint8_t b = *q++;
        if (shift == 63 && (b & 0x7E)) return 0; /* the tenth byte holds only bit 63 */
        x |= (uint64_t)(b & 0x7F) << shift;
        if (!(b & 0x80)) {
            *p = q;
            *v = x;
            return 1;
        }
    }
    return 0;
}

static int pb_error(herd_pb_reader *r, const uint8_t *at, const char *what) {
    r->error = what;
    r->error_at = (size_t)(at - r->start);
    return -1;
}

int herd_pb_next(herd_pb_reader *r, herd_pb_field *f) {
    if (r->error) return -1;
    if (r->p >= r->end) return 0;
    const uint8_t *at = r->p, *q = r->p;
    uint64_t key;
    if (!herd_pb_varint(&q, r->end, &key)) return pb_error(r, at, "truncated or overlong field key");
    if ((key >> 3) == 0 || (key >> 3) > 0x1FFFFFFFu) return pb_error(r, at, "field number out of range");
    memset(f, 0, sizeof *f);
    f->number = (uint32_t)(key >> 3);
    f->wire = (int)(key & 7);
    size_t left = (size_t)(r->end - q);
    switch (f->wire) {
    case HERD_PB_VARINT:
        if (!herd_pb_varint(&q, r->end, &f->value)) return pb_error(r, at, "truncated varint");
        break;
    case HERD_PB_FIXED64:
    case HERD_PB_FIXED32: {
        size_t n = f->wire == HERD_PB_FIXED64 ? 8 : 4;
        if (left < n) return pb_error(r, at, "truncated fixed-width value");
        for (size_t i = 0; i < n; i++) f->value |= (uint64_t)q[i] << (8 * i);
        q += n;
        break;
    }
    case HERD_PB_LEN: {
        uint64_t len;
        if (!herd_pb_varint(&q, r->end, &len)) return pb_error(r, at, "truncated length");
        if (len > (uint64_t)(r->end - q)) return pb_error(r, at, "length runs past the end of the message");
        f->data = q;
        f->len = (size_t)len;
        q += len;
        break;
    }
    default: return pb_error(r, at, "unsupported wire type (groups are not supported)");
    }
    r->p = q;
    return 1;
}

float herd_pb_float(uint64_t fixed32) {
    uint32_t u = (uint32_t)fixed32;
    float v;
    memcpy(&v, &u, sizeof v);
    return v;
}
