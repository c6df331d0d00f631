/* The layout constants of herd's shard format (docs/DATA.md), shared by the reader (shard.c)
 * and the writer (shard_writer.c). */
#ifndef HERD_DATA_SHARD_FORMAT_H
#define HERD_DATA_SHARD_FORMAT_H

#define SHARD_MAGIC "HERDSHD1"
#define SHARD_VERSION 1u
#define HEADER_BYTES 64u
#define ENTRY_BYTES 24u

#endif
