/* Decompression of Parquet pages by codec: snappy (libsnappy), gzip (zlib), zstd (libzstd),
 * and none. Other codecs are one error naming them. */
#ifndef HERD_DATA_PARQUET_CODEC_H
#define HERD_DATA_PARQUET_CODEC_H

#include <stddef.h>
#include <stdint.h>

#include "herd/core.h"

/* Decompresses src (n bytes) into out, which must become exactly want bytes (the page
 * header's uncompressed size). what names the page for messages. */
herd_status herdi_pq_decompress(int codec, const uint8_t *src, size_t n, uint8_t *out, size_t want, const char *what,
                          herd_error *err);

#endif
