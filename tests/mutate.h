/* Shared by the mutation-fuzz tests: seeded edits of a good file (the same mutations in every
 * test) and reading a file back. */
#ifndef HERD_TEST_MUTATE_H
#define HERD_TEST_MUTATE_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "herd/core.h"

static inline size_t fuzz_slurp(const char *p, uint8_t *buf, size_t cap) {
    FILE *f = fopen(p, "rb");
    if (!f) {
        perror(p);
        exit(2);
    }
    size_t n = fread(buf, 1, cap, f);
    fclose(f);
    return n;
}

/* One to four edits: flip a bit, set a byte to an extreme, truncate, or duplicate a span. */
static inline size_t fuzz_mutate(herd_rng *r, const uint8_t *src, size_t n, uint8_t *dst, size_t cap) {
    memcpy(dst, src, n);
    int edits = 1 + (int)herd_rng_below(r, 4);
    for (int e = 0; e < edits && n > 0; e++) {
        size_t at = herd_rng_below(r, (uint32_t)n);
        switch (herd_rng_below(r, 4)) {
        case 0: dst[at] ^= (uint8_t)(1u << herd_rng_below(r, 8)); break;
        case 1: dst[at] = (uint8_t)(herd_rng_below(r, 2) ? 0xFF : 0x00); break;
        case 2: n = at; break;
        default: {
            size_t len = 1 + herd_rng_below(r, 16);
            if (at + len > n) len = n - at;
            if (n + len > cap) break;
            memmove(dst + at + len, dst + at, n - at);
            n += len;
        }
        }
    }
    return n;
}

#endif
