/* Software prefetch of table rows read at random (embedding tables and their optimizer state):
 * rows a few ahead of the one being worked on are asked for, so their cache misses overlap
 * instead of each stalling the loop in turn. A hint only: results are the same with or without. */
#ifndef HERD_CORE_PREFETCH_H
#define HERD_CORE_PREFETCH_H

#include <stddef.h>

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

#endif
