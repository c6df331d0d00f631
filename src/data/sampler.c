/* Seeded shuffling sampler: epoch e's order is a pure function of (seed, e), so a run
 * resumed mid-training reproduces the order without saving the permutation. */
#include "herd/data.h"

#include <stdlib.h>

/* Keeps the sampler's RNG streams apart from other users of the same seed ("SMPL"). */
#define SAMPLER_STREAM_TAG 0x534D504CULL

herd_status herd_sampler_init(herd_sampler *s, int64_t n, uint64_t seed, int shuffle, herd_error *err) {
    s->perm = NULL;
    s->n = 0;
    /* herd_rng_below draws 32-bit indices. */
    if (n < 0 || (uint64_t)n > UINT32_MAX)
        return herd_fail(err, HERD_EARG, "sampler: dataset size %lld outside [0, 2^32)", (long long)n);
    s->perm = herd_malloc_array((size_t)n, sizeof *s->perm);
    if (!s->perm) return herd_fail(err, HERD_ENOMEM, "sampler: out of memory for %lld indices", (long long)n);
    s->n = n;
    s->seed = seed;
    s->shuffle = shuffle;
    herd_sampler_set_epoch(s, 0);
    return HERD_OK;
}

void herd_sampler_set_epoch(herd_sampler *s, int64_t epoch) {
    s->epoch = epoch;
    for (int64_t i = 0; i < s->n; i++) s->perm[i] = i;
    if (!s->shuffle || s->n < 2) return;
    herd_rng r;
    herd_rng_init(&r, s->seed, (SAMPLER_STREAM_TAG << 32) ^ (uint64_t)epoch);
    /* Fisher-Yates from the top: slot i takes a uniform pick among [0, i]. */
    for (int64_t i = s->n - 1; i > 0; i--) {
        int64_t j = (int64_t)herd_rng_below(&r, (uint32_t)(i + 1));
        int64_t t = s->perm[i];
        s->perm[i] = s->perm[j];
        s->perm[j] = t;
    }
}

void herd_sampler_free(herd_sampler *s) {
    free(s->perm);
    s->perm = NULL;
    s->n = 0;
}
