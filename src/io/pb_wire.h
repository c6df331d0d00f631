/* Protocol Buffers wire format, both ways, without a schema: a growable writer for
 * varint / fixed / length-delimited fields and a bounded reader that checks every length
 * against the bytes that remain (for ONNX today; generic enough for TFRecord/Event). */
#ifndef HERD_IO_PB_WIRE_H
#define HERD_IO_PB_WIRE_H

#include <stddef.h>
#include <stdint.h>

enum { PB_VARINT = 0, PB_FIXED64 = 1, PB_LEN = 2, PB_FIXED32 = 5 };

/* ---- writer: any allocation failure sets failed; later puts are no-ops ---- */
typedef struct pb_writer {
    uint8_t *buf;
    size_t len, cap;
    int failed;
} pb_writer;

void herdi_pb_put_raw(pb_writer *w, const void *data, size_t n);
void herdi_pb_put_varint_raw(pb_writer *w, uint64_t v);
void herdi_pb_put_varint(pb_writer *w, int field, uint64_t v); /* int32/int64/uint64/bool/enum */
void herdi_pb_put_fixed32(pb_writer *w, int field, uint32_t v);
void herdi_pb_put_fixed64(pb_writer *w, int field, uint64_t v);
void herdi_pb_put_float(pb_writer *w, int field, float v);
void herdi_pb_put_double(pb_writer *w, int field, double v);
void herdi_pb_put_bytes(pb_writer *w, int field, const void *data, size_t n); /* bytes, string, sub-message */
void herdi_pb_put_string(pb_writer *w, int field, const char *s);
/* Appends a finished sub-message and frees it (sub->failed propagates). */
void herdi_pb_put_message(pb_writer *w, int field, pb_writer *sub);
/* Packed repeated int64 (varints in one length-delimited field). */
void herdi_pb_put_packed_i64(pb_writer *w, int field, const int64_t *v, int n);
void herdi_pb_writer_free(pb_writer *w);

/* ---- reader ---- */
typedef struct pb_reader {
    const uint8_t *p, *end;
} pb_reader;

typedef struct pb_field {
    uint32_t number;
    int wire;            /* PB_VARINT, PB_FIXED64, PB_LEN or PB_FIXED32 */
    uint64_t u;          /* varint or fixed value */
    const uint8_t *data; /* PB_LEN: the payload, len bytes, inside the reader's buffer */
    size_t len;
} pb_field;

static inline pb_reader pb_reader_of(const uint8_t *data, size_t n) { return (pb_reader){data, data + n}; }

/* Reads the next field. Returns 1 with *f filled, 0 at the clean end of the buffer, -1 on
 * malformed input (truncated varint or fixed value, a length beyond the end, field number 0,
 * or a group / unknown wire type) with a short reason in *why. */
int herdi_pb_next(pb_reader *r, pb_field *f, const char **why);
/* One varint from r; 0 on truncation or a varint longer than 10 bytes. */
int herdi_pb_read_varint(pb_reader *r, uint64_t *v);
/* float / double from a fixed field's bits. */
float herdi_pb_as_float(const pb_field *f);
double herdi_pb_as_double(const pb_field *f);

#endif
