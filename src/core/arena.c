/* A bump allocator over one block planned up front, so a training step never mallocs. */
#include "herd/core.h"

#include <stdlib.h>

struct herd_arena {
    unsigned char *base; /* NULL for a planner */
    size_t capacity;
    size_t used;
};

static size_t align64(size_t n) { return (n + 63) & ~(size_t)63; }

herd_status herd_arena_create(herd_arena **out, size_t capacity, herd_error *err) {
    herd_arena *a = calloc(1, sizeof *a);
    if (!a) return herd_fail(err, HERD_ENOMEM, "arena: cannot allocate handle");
    capacity = align64(capacity);
    a->base = herd_aligned_alloc(capacity);
    if (!a->base) {
        free(a);
        return herd_fail(err, HERD_ENOMEM, "arena: cannot allocate the planned %zu bytes (%.1f MiB)",
                         capacity, capacity / 1048576.0);
    }
    a->capacity = capacity;
    *out = a;
    return HERD_OK;
}

herd_arena *herd_arena_create_planner(void) { return calloc(1, sizeof(herd_arena)); }

void *herd_arena_alloc(herd_arena *a, size_t bytes) {
    size_t n = align64(bytes ? bytes : 1);
    if (n < bytes) return NULL;
    if (!a->base) { /* planner: count only, hand back a recognisable non-NULL pointer */
        a->used += n;
        return (void *)(uintptr_t)64;
    }
    if (n > a->capacity - a->used) return NULL;
    void *p = a->base + a->used;
    a->used += n;
    return p;
}

float *herd_arena_floats(herd_arena *a, size_t n) {
    size_t bytes;
    if (!herd_mul_size(n, sizeof(float), &bytes)) return NULL;
    return herd_arena_alloc(a, bytes);
}

void herd_arena_reset(herd_arena *a) { a->used = 0; }
size_t herd_arena_used(const herd_arena *a) { return a->used; }
size_t herd_arena_capacity(const herd_arena *a) { return a->capacity; }

void herd_arena_destroy(herd_arena *a) {
    if (!a) return;
    herd_aligned_free(a->base);
    free(a);
}
