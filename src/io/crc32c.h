/* CRC-32C (Castagnoli), as TFRecord framing uses it, and TFRecord's masking of it. */
#ifndef HERD_IO_CRC32C_H
#define HERD_IO_CRC32C_H

#include <stddef.h>
#include <stdint.h>

/* Continues crc (0 to start) over data[0..n). crc32c("123456789") == 0xE3069283. */
uint32_t herd_crc32c(uint32_t crc, const void *data, size_t n);
/* TFRecord's stored form: ((crc >> 15) | (crc << 17)) + 0xa282ead8. */
uint32_t herd_crc32c_mask(uint32_t crc);

#endif
