/* The layout constants of herd's shard format (docs/DATA.md), shared by the reader (shard.c)
 * and the writer (shard_writer.c), and the fields block of version 2 shards (shard_fields.c). */
#ifndef HERD_DATA_SHARD_FORMAT_H
#define HERD_DATA_SHARD_FORMAT_H

#include <stddef.h>
#include <stdint.h>

#include "herd/data.h"

#define SHARD_MAGIC "HERDSHD1"
#define SHARD_VERSION 1u
#define HEADER_BYTES 64u
#define ENTRY_BYTES 24u

/* Version 2: samples of several fields, i32 fields or targets other than an i32 class label
 * (criteo: 13 f32 + 26 i32 ids, an f32 target). Its header's dtype is SHARD_FIELDS and its
 * shape 0x0x0; the fields block follows the header, then the index; a record is the sample's
 * fields as get() writes them (stored dtypes, one after the other) followed by its target's
 * bytes, and the index entries' label is 0. */
#define SHARD_VERSION_FIELDS 2u
enum { SHARD_FIELDS = 3 };
#define SHARD_FIELD_BYTES 20u /* u32 dtype (herd_dtype), u32 ndim (0..3), u32 dims[3] (unused 1) */

/* The fields of a version 2 shard: the input fields, then the target. */
typedef struct shard_fields {
    int n;                             /* input fields, 1..HERD_MAX_FIELDS */
    herd_tensor field[HERD_MAX_FIELDS];
    herd_tensor y;
    size_t sample_bytes, target_bytes; /* a record is sample_bytes + target_bytes */
} shard_fields;

/* Bytes of the fields block for n input fields: u32 n, n + 1 descriptors, u32 CRC32C of the rest. */
size_t herdi_shard_fields_block_bytes(int n);
/* ds's fields (1..HERD_MAX_FIELDS of u8/f32/i32 with up to 3 dims, a target of up to 3 dims). */
void herdi_shard_fields_of(shard_fields *sf, const herd_dataset *ds);
/* The block of sf into out (herdi_shard_fields_block_bytes(sf->n) bytes). */
void herdi_shard_fields_encode(uint8_t *out, const shard_fields *sf);
/* The block at p (avail bytes to the end of the file) into sf; HERD_EFORMAT and what is wrong in
 * why when it does not check out. */
herd_status herdi_shard_fields_decode(const uint8_t *p, size_t avail, shard_fields *sf, char *why, size_t why_size);
/* 1 when a and b describe the same fields and target. */
int herdi_shard_fields_same(const shard_fields *a, const shard_fields *b);

#endif
