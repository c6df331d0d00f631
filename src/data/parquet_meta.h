/* Parquet's file metadata as herd uses it: the footer (FileMetaData, Thrift compact) read
 * into the schema's leaf columns (with their definition/repetition levels and logical types)
 * and each row group's column chunks (codec, value count, byte range), every offset and size
 * checked against the file. */
#ifndef HERD_DATA_PARQUET_META_H
#define HERD_DATA_PARQUET_META_H

#include <stddef.h>
#include <stdint.h>

#include "herd/core.h"

/* parquet.thrift enums (the numbers are the format's) */
enum { PQ_BOOLEAN = 0, PQ_INT32 = 1, PQ_INT64 = 2, PQ_INT96 = 3, PQ_FLOAT = 4, PQ_DOUBLE = 5, PQ_BYTE_ARRAY = 6,
       PQ_FIXED_LEN_BYTE_ARRAY = 7 };
enum { PQ_REQUIRED = 0, PQ_OPTIONAL = 1, PQ_REPEATED = 2 };
enum { PQ_UNCOMPRESSED = 0, PQ_SNAPPY = 1, PQ_GZIP = 2, PQ_LZO = 3, PQ_BROTLI = 4, PQ_LZ4 = 5, PQ_ZSTD = 6,
       PQ_LZ4_RAW = 7 };
enum { PQ_ENC_PLAIN = 0, PQ_ENC_PLAIN_DICTIONARY = 2, PQ_ENC_RLE = 3, PQ_ENC_BIT_PACKED = 4,
       PQ_ENC_DELTA_BINARY_PACKED = 5, PQ_ENC_DELTA_LENGTH_BYTE_ARRAY = 6, PQ_ENC_DELTA_BYTE_ARRAY = 7,
       PQ_ENC_RLE_DICTIONARY = 8, PQ_ENC_BYTE_STREAM_SPLIT = 9 };

/* How a leaf's stored values read as numbers (from its logical or converted type). */
enum { PQ_AS_PLAIN = 0, /* the physical type as is (INT32/INT64 signed, FLOAT, DOUBLE, BOOLEAN 0/1) */
       PQ_AS_UNSIGNED,  /* INT(8|16|32|64, false) / UINT_*: the bits as an unsigned integer */
       PQ_AS_DECIMAL,   /* DECIMAL(precision, scale): the integer (or big-endian bytes) / 10^scale */
       PQ_AS_FLOAT16,   /* FIXED_LEN_BYTE_ARRAY(2) FLOAT16 */
       PQ_AS_STRING,    /* STRING / UTF8 / ENUM / JSON bytes: text, not a number */
       PQ_AS_BYTES };   /* other byte arrays: raw bytes (images) */

typedef struct pq_leaf {
    char *path;         /* dotted path from the root, e.g. "pixels.list.element" */
    char *top;          /* the top-level field it belongs to ("pixels") */
    int physical;       /* PQ_BOOLEAN .. PQ_FIXED_LEN_BYTE_ARRAY */
    int type_length;    /* FIXED_LEN_BYTE_ARRAY bytes */
    int as;             /* PQ_AS_* */
    int int_bits;       /* INT(bits, signed) logical type, 0 when none */
    int scale;          /* DECIMAL scale */
    int max_def, max_rep;
    int rep_def;        /* definition level of the innermost repeated ancestor (0 without one): a
                           slot with def >= rep_def is an element of the list */
    int top_leaves;     /* leaves under the same top-level field */
} pq_leaf;

typedef struct pq_chunk {
    int codec;          /* PQ_UNCOMPRESSED .. */
    int64_t num_values; /* value slots (with nulls) */
    uint64_t start, len; /* the pages' byte range in the file */
} pq_chunk;

typedef struct pq_rowgroup {
    int64_t num_rows;
    pq_chunk *chunks;   /* one per leaf, in leaf order */
} pq_rowgroup;

typedef struct pq_meta {
    pq_leaf *leaves;
    int nleaves;
    pq_rowgroup *rgs;
    int nrg;
    int64_t num_rows;
} pq_meta;

/* Reads the footer of a whole Parquet file in memory (file, size): magic at both ends,
 * FileMetaData, the schema and the row groups. Errors are one line starting with path. */
herd_status herdi_pq_meta_read(pq_meta *m, const uint8_t *file, size_t size, const char *path, herd_error *err);
void herdi_pq_meta_free(pq_meta *m);
/* Names for messages. */
const char *herdi_pq_physical_name(int physical);
const char *herdi_pq_codec_name(int codec);
const char *herdi_pq_encoding_name(int encoding);

#endif
