/* Software prefetch of table rows read at random (embedding tables and their optimizer state):
 * rows a few ahead of the one being worked on are asked for, so their cache misses overlap
 * instead of each stalling the loop in turn. A hint only: results are the same with or without. */
#ifndef HERD_CORE_PREFETCH_H
#define HERD_CORE_PREFETCH_H

#include <stddef.h>
#include <stdint.h>

/* rows this far ahead: enough misses in flight to cover a DRAM latency at a row's work of ~100 ns */
#define HERD_PREFETCH_ROWS 8

/* Every cache line of bytes at p, for reading (write 0) or writing (write 1). */
static inline void herd_prefetch(const void *p, size_t bytes, int write) {
    const char *c = (const char *)p;
    for (size_t i = 0; i < bytes; i += 64) {
        if (write) __builtin_prefetch(c + i, 1, 3);
        else __builtin_prefetch(c + i, 0, 3);
    }
}

/* Whether a pass over rows read at random is worth splitting over threads: only when the rows it
 * reads live in memory bigger than the caches (bytes: the table and any state read with it), so
 * each core's misses overlap the other's, and the call has min_elems or more values to move. On a
 * cache-resident table the second core mostly pulls the lines the first one just wrote: the text
 * classifier of examples/fasttext_fortunes.spec (65536 x 32 table) trained 1.3-2.4x slower on 2
 * threads than on 1 when its bag sums and lazy-Adam rows were split. */
#define HERD_TABLE_SPLIT_BYTES ((int64_t)32 << 20)
static inline int herd_table_split(int threads, int64_t bytes, int64_t elems, int64_t min_elems) {
    return threads > 1 && bytes > HERD_TABLE_SPLIT_BYTES && elems >= min_elems;
}

#endif
