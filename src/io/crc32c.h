/* CRC-32C (Castagnoli), as shards, TFRecord framing and TensorBoard use it, and TFRecord's
 * masking of it. */
#ifndef HERD_IO_CRC32C_H
#define HERD_IO_CRC32C_H

#include <stddef.h>
#include <stdint.h>

/* Continues crc (0 to start) over data[0..n). crc32c("123456789") == 0xE3069283. Uses the
 * CPU's crc32 instruction when it has SSE4.2 (checked once, at the first call), else slicing
 * by 8; HERD_CRC32C=sw (slicing by 8) or bytewise (the one-table loop) in the environment
 * forces a software path. Thread-safe. */
uint32_t herd_crc32c(uint32_t crc, const void *data, size_t n);

/* Copies src[0..n) to dst (not overlapping) and returns herd_crc32c(crc, src, n), reading the
 * data once on the SSE4.2 path (a record copied out of a mapped shard and checked). */
uint32_t herd_crc32c_copy(uint32_t crc, void *dst, const void *src, size_t n);

typedef enum herd_crc32c_impl {
    HERD_CRC32C_AUTO = 0, /* what herd_crc32c uses */
    HERD_CRC32C_BYTEWISE, /* one table, one byte a step: the reference */
    HERD_CRC32C_SLICE8,   /* eight tables, eight bytes a step: the fallback */
    HERD_CRC32C_SSE42     /* the crc32 instruction, three interleaved streams */
} herd_crc32c_impl;

/* herd_crc32c through one implementation (tests, benchmarks); 0 when this CPU or build lacks
 * it (or HERD_CRC32C forced a software path), 1 with *out set. */
int herd_crc32c_with(herd_crc32c_impl which, uint32_t crc, const void *data, size_t n, uint32_t *out);
/* "sse4.2", "slice8" or "bytewise": what herd_crc32c uses in this process. */
const char *herd_crc32c_impl_name(void);

/* TFRecord's stored form: ((crc >> 15) | (crc << 17)) + 0xa282ead8. */
uint32_t herd_crc32c_mask(uint32_t crc);

#endif
