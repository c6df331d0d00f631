/* A tiny bounded protobuf wire-format decoder (varint, fixed32/64, length-delimited): it
 * walks the fields of one message buffer and never reads outside it. For TFRecord's
 * tf.train.Example and, later, ONNX. */
#ifndef HERD_IO_PROTOBUF_H
#define HERD_IO_PROTOBUF_H

#include <stddef.h>
#include <stdint.h>

enum { HERD_PB_VARINT = 0, HERD_PB_FIXED64 = 1, HERD_PB_LEN = 2, HERD_PB_FIXED32 = 5 };

typedef struct herd_pb_reader {
    const uint8_t *start, *p, *end;
    const char *error; /* set when herd_pb_next returns -1: what was wrong */
    size_t error_at;   /* byte offset of the bad field in the buffer */
} herd_pb_reader;

typedef struct herd_pb_field {
    uint32_t number;
    int wire;             /* HERD_PB_* */
    uint64_t value;       /* VARINT, FIXED64, FIXED32 (zero-extended) */
    const uint8_t *data;  /* LEN: payload inside the reader's buffer */
    size_t len;
} herd_pb_field;

void herd_pb_init(herd_pb_reader *r, const void *buf, size_t len);
/* Next field: 1 and *f filled, 0 at the end of the buffer, -1 on malformed input (r->error,
 * r->error_at; the reader then stays at the error). Groups (wire types 3, 4) are errors. */
int herd_pb_next(herd_pb_reader *r, herd_pb_field *f);
/* One varint from *p (< end), advancing *p; 0 if it runs past end or over 10 bytes. */
int herd_pb_varint(const uint8_t **p, const uint8_t *end, uint64_t *v);
/* The float whose bits a FIXED32 field holds. */
float herd_pb_float(uint64_t fixed32);

#endif
