/* Thrift's compact protocol, reading only, without a schema (for Parquet's footer and page
 * headers): a bounded reader that checks every length and element count against the bytes
 * that remain, skips fields it is not asked about, and limits nesting. */
#ifndef HERD_IO_THRIFT_COMPACT_H
#define HERD_IO_THRIFT_COMPACT_H

#include <stddef.h>
#include <stdint.h>

/* Compact-protocol type codes (a field header's low nibble, a list's element type). */
enum {
    TC_STOP = 0,
    TC_TRUE = 1,
    TC_FALSE = 2,
    TC_BYTE = 3,
    TC_I16 = 4,
    TC_I32 = 5,
    TC_I64 = 6,
    TC_DOUBLE = 7,
    TC_BINARY = 8,
    TC_LIST = 9,
    TC_SET = 10,
    TC_MAP = 11,
    TC_STRUCT = 12
};

/* A reader over [p, end). The first error sets why (a short reason) and at (its offset from
 * start); every later read then fails too, so callers may check once at the end. */
typedef struct tc_reader {
    const uint8_t *p, *end, *start;
    const char *why; /* NULL while all is well */
    size_t at;
    int depth;       /* structs and containers open now */
    int16_t last_id[64]; /* previous field id of each open struct (field ids are deltas) */
} tc_reader;

void herdi_tc_init(tc_reader *r, const uint8_t *data, size_t n);
/* Enters a struct (call before its first herdi_tc_field) and leaves it (after TC_STOP). 0 when
 * structs nest deeper than 64 (sets the error). */
int herdi_tc_struct_begin(tc_reader *r);
void herdi_tc_struct_end(tc_reader *r);
/* The next field header of the open struct: its id and type; returns 0 at TC_STOP or on an
 * error. A TC_TRUE/TC_FALSE field carries its value in the type: tc_bool_field tells it. */
int herdi_tc_field(tc_reader *r, int16_t *id, int *type);
static inline int tc_bool_field(int type) { return type == TC_TRUE; }
/* Values: each returns 0 and sets the error when the bytes run out or are malformed. */
int herdi_tc_i64(tc_reader *r, int64_t *v);      /* TC_I16, TC_I32, TC_I64: zigzag varints */
int herdi_tc_i32(tc_reader *r, int32_t *v);      /* as herdi_tc_i64, refusing values outside int32 */
int herdi_tc_byte(tc_reader *r, int8_t *v);
int herdi_tc_double(tc_reader *r, double *v);
int herdi_tc_binary(tc_reader *r, const uint8_t **data, size_t *len); /* points into the buffer */
/* A list or set header: element type and count; the count is bounded by the bytes left (every
 * element takes at least one byte). */
int herdi_tc_list(tc_reader *r, int *elem_type, int64_t *count);
/* A list of bool elements encodes each as one byte: 1 true, else false. */
int herdi_tc_list_bool(tc_reader *r, int *v);
/* Skips one value of `type` (with everything inside it). */
int herdi_tc_skip(tc_reader *r, int type);
/* Reads a value of `type` as an integer when it is one (TC_BYTE/I16/I32/I64, TC_TRUE/FALSE as
 * 1/0); other types are skipped and give 0 with *ok = 0. For fields whose type a writer may
 * choose differently from the spec. */
int herdi_tc_int_field(tc_reader *r, int type, int64_t *v, int *ok);
/* Reads a whole struct whose fields of interest are integers: on(ctx, id, value) for each
 * integer (or bool) field, every other field skipped. 0 on an error. */
int herdi_tc_struct_ints(tc_reader *r, void (*on)(void *ctx, int16_t id, int64_t v), void *ctx);

#endif
