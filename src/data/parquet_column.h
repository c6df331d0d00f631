/* Decoding one Parquet column chunk: its pages (data page v1 and v2, dictionary pages; page
 * CRCs checked when present), decompressed (parquet_codec.h), repetition and definition levels
 * (RLE/bit-packed hybrid), values in PLAIN, PLAIN_DICTIONARY/RLE_DICTIONARY, RLE (booleans) or
 * DELTA_BINARY_PACKED, converted by the leaf's logical type and written row by row. */
#ifndef HERD_DATA_PARQUET_COLUMN_H
#define HERD_DATA_PARQUET_COLUMN_H

#include <stddef.h>
#include <stdint.h>

#include "data/parquet_meta.h"

/* The most bytes one page may decompress to: a bound on what a length field can allocate. */
#define PQ_PAGE_CAP ((size_t)1 << 28)

enum {
    PQ_SINK_F32,   /* numbers as float */
    PQ_SINK_U8,    /* integers in [0, 255] as bytes (UINT_8 pixels); others are an error */
    PQ_SINK_F64,   /* numbers as double (labels, targets) */
    PQ_SINK_BYTES, /* each row's one byte-array value handed to sink->bytes */
    PQ_SINK_WIDTH, /* nothing written: row 0's element count into found_width, then stop */
    PQ_SINK_BAG    /* integer ids >= 0 as int32, 1 to `width` a row (a list or one value), the unused
                      slots HERD_NO_ID (-1): a bag for embedding_bag */
};

/* Where a column chunk's values go. Every row must hold `width` elements (1 for a flat
 * column, the list length for a list column; a bag 1 to `width`); a null value or list is an
 * error. */
typedef struct pq_sink {
    int kind;
    uint8_t *base;  /* row r's element j at base + r * stride + j * (4 F32, 1 U8, 8 F64) */
    size_t stride;
    int64_t width;
    herd_status (*bytes)(void *ctx, int64_t row, const uint8_t *v, size_t len, herd_error *err);
    void *ctx;
    int64_t found_width;
} pq_sink;

/* 1 when the leaf's values are numbers (not text or raw bytes). */
int herdi_pq_leaf_numeric(const pq_leaf *leaf);
/* 1 when every value of the leaf is an integer in [0, 255] by its type (UINT_8). */
int herdi_pq_leaf_u8(const pq_leaf *leaf);

/* Decodes the chunk's `rows` rows (the row group's count) from file (the whole file, mapped;
 * the chunk's range was checked against it) into sink. what names the chunk in messages
 * ("data/part-0.parquet: row group 3, column 'pixels'"). */
herd_status herdi_pq_column_read(const uint8_t *file, const pq_leaf *leaf, const pq_chunk *chunk, int64_t rows,
                           pq_sink *sink, const char *what, herd_error *err);

#endif
