/* Test-only encoding of tf.train.Example protobufs by hand and TFRecord framing, for the
 * TFRecord reader tests and fuzzers. Buffers are fixed-size: tests keep records small. */
#ifndef HERD_TEST_TFRECORD_WRITE_H
#define HERD_TEST_TFRECORD_WRITE_H

#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "io/crc32c.h"

typedef struct pbuf {
    uint8_t b[1 << 16];
    size_t n;
} pbuf;

static inline void pb_byte(pbuf *p, uint8_t v) {
    if (p->n < sizeof p->b) p->b[p->n++] = v;
}
static inline void pb_varint(pbuf *p, uint64_t v) {
    do {
        pb_byte(p, (uint8_t)((v & 0x7F) | (v > 0x7F ? 0x80 : 0)));
        v >>= 7;
    } while (v);
}
static inline void pb_bytes(pbuf *p, uint32_t field, const void *data, size_t n) {
    pb_varint(p, (uint64_t)field << 3 | 2);
    pb_varint(p, n);
    for (size_t i = 0; i < n; i++) pb_byte(p, ((const uint8_t *)data)[i]);
}

/* One Features map entry { key, value: Feature { <kind> { list } } } appended to *feats. */
static inline void ex_feature(pbuf *feats, const char *key, int kind, const pbuf *list) {
    static pbuf feature, entry;
    feature.n = entry.n = 0;
    pb_bytes(&feature, (uint32_t)kind, list->b, list->n);
    pb_bytes(&entry, 1, key, strlen(key));
    pb_bytes(&entry, 2, feature.b, feature.n);
    pb_bytes(feats, 1, entry.b, entry.n);
}
static inline void ex_bytes(pbuf *feats, const char *key, const void *data, size_t n) {
    static pbuf list;
    list.n = 0;
    pb_bytes(&list, 1, data, n);
    ex_feature(feats, key, 1, &list);
}
static inline void ex_int64(pbuf *feats, const char *key, int64_t v, int packed) {
    static pbuf list, packed_values;
    list.n = packed_values.n = 0;
    if (packed) {
        pb_varint(&packed_values, (uint64_t)v);
        pb_bytes(&list, 1, packed_values.b, packed_values.n);
    } else {
        pb_varint(&list, 1 << 3 | 0);
        pb_varint(&list, (uint64_t)v);
    }
    ex_feature(feats, key, 3, &list);
}
static inline void ex_floats(pbuf *feats, const char *key, const float *v, size_t n, int packed) {
    static pbuf list;
    list.n = 0;
    if (packed) {
        pb_bytes(&list, 1, v, n * 4); /* little-endian host */
    } else {
        for (size_t i = 0; i < n; i++) {
            pb_varint(&list, 1 << 3 | 5);
            uint8_t b[4];
            memcpy(b, &v[i], 4);
            for (int k = 0; k < 4; k++) pb_byte(&list, b[k]);
        }
    }
    ex_feature(feats, key, 2, &list);
}
/* Example { features = 1 } around the accumulated entries. */
static inline void ex_finish(pbuf *example, const pbuf *feats) {
    example->n = 0;
    pb_bytes(example, 1, feats->b, feats->n);
}

static inline void le_put(uint8_t *p, uint64_t v, int bytes) {
    for (int i = 0; i < bytes; i++) p[i] = (uint8_t)(v >> (8 * i));
}

/* One framed record: u64 length, masked CRC of it, data, masked CRC of the data. */
static inline int tfr_write(FILE *f, const void *data, size_t n) {
    uint8_t hdr[12], tail[4];
    le_put(hdr, n, 8);
    le_put(hdr + 8, herd_crc32c_mask(herd_crc32c(0, hdr, 8)), 4);
    le_put(tail, herd_crc32c_mask(herd_crc32c(0, data, n)), 4);
    return fwrite(hdr, 1, 12, f) == 12 && fwrite(data, 1, n, f) == n && fwrite(tail, 1, 4, f) == 4;
}

#endif
