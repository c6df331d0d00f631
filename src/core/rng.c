/* Philox4x32-10 (Salmon et al., "Parallel random numbers: as easy as 1, 2, 3", SC'11):
 * a counter-based generator, so any draw is a pure function of (key, counter). */
#include "herd/core.h"

#include <math.h>

static uint64_t splitmix64(uint64_t x) {
    x += 0x9E3779B97F4A7C15ULL;
    x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ULL;
    x = (x ^ (x >> 27)) * 0x94D049BB133111EBULL;
    return x ^ (x >> 31);
}

void herd_philox(uint64_t key, uint64_t counter, uint32_t out[4]) {
    uint32_t c0 = (uint32_t)counter, c1 = (uint32_t)(counter >> 32), c2 = 0, c3 = 0;
    uint32_t k0 = (uint32_t)key, k1 = (uint32_t)(key >> 32);
    for (int r = 0; r < 10; r++) {
        uint64_t p0 = (uint64_t)0xD2511F53u * c0;
        uint64_t p1 = (uint64_t)0xCD9E8D57u * c2;
        uint32_t n0 = (uint32_t)(p1 >> 32) ^ c1 ^ k0;
        uint32_t n1 = (uint32_t)p1;
        uint32_t n2 = (uint32_t)(p0 >> 32) ^ c3 ^ k1;
        uint32_t n3 = (uint32_t)p0;
        c0 = n0; c1 = n1; c2 = n2; c3 = n3;
        k0 += 0x9E3779B9u;
        k1 += 0xBB67AE85u;
    }
    out[0] = c0; out[1] = c1; out[2] = c2; out[3] = c3;
}

void herd_rng_init(herd_rng *r, uint64_t seed, uint64_t stream) {
    r->key = splitmix64(splitmix64(seed) ^ (stream * 0xD6E8FEB86659FD93ULL));
    r->counter = 0;
}

uint32_t herd_rng_u32(herd_rng *r) {
    uint32_t w[4];
    herd_philox(r->key, r->counter >> 2, w);
    return w[r->counter++ & 3];
}

float herd_rng_uniform(herd_rng *r) { return (float)(herd_rng_u32(r) >> 8) * (1.0f / 16777216.0f); }

/* Box-Muller on two 32-bit words; u1 in (0, 1] so log is finite */
static float normal_of(uint32_t a, uint32_t b) {
    double u1 = ((double)a + 1.0) / 4294967296.0;
    double u2 = (double)b / 4294967296.0;
    return (float)(sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2));
}

float herd_rng_normal(herd_rng *r) {
    uint32_t a = herd_rng_u32(r);
    return normal_of(a, herd_rng_u32(r));
}

/* out[i] = scale * the normal drawn from words counter + 2i, counter + 2i + 1: one Philox block
 * gives two values, where herd_rng_normal computes the block for each word */
static void normals_at(uint64_t key, uint64_t counter, float *out, int64_t n, float scale) {
    uint32_t w[4];
    uint64_t block = UINT64_MAX;
    for (int64_t i = 0; i < n; i++, counter += 2) {
        uint32_t a, b;
        if ((counter & 3) != 3) { /* both words in one block */
            if (counter >> 2 != block) herd_philox(key, block = counter >> 2, w);
            a = w[counter & 3], b = w[(counter & 3) + 1];
        } else {
            if (counter >> 2 != block) herd_philox(key, block = counter >> 2, w);
            a = w[3];
            herd_philox(key, block = (counter >> 2) + 1, w);
            b = w[0];
        }
        out[i] = scale * normal_of(a, b);
    }
}

typedef struct normals_job {
    uint64_t key, counter;
    float *out, scale;
} normals_job;

static void normals_range(void *ctx, int64_t begin, int64_t end, int thread) {
    (void)thread;
    const normals_job *j = ctx;
    normals_at(j->key, j->counter + 2 * (uint64_t)begin, j->out + begin, end - begin, j->scale);
}

void herd_rng_normals(herd_rng *r, float *out, int64_t n, float scale, herd_pool *pool) {
    normals_job j = {r->key, r->counter, out, scale};
    herd_pool_for(pool, n, normals_range, &j); /* counter-based: the same values for any split */
    r->counter += 2 * (uint64_t)n;
}

uint32_t herd_rng_below(herd_rng *r, uint32_t n) {
    /* Lemire's multiply-shift with rejection: unbiased. */
    uint64_t m = (uint64_t)herd_rng_u32(r) * n;
    uint32_t lo = (uint32_t)m;
    if (lo < n) {
        uint32_t t = (uint32_t)(-n) % n;
        while (lo < t) {
            m = (uint64_t)herd_rng_u32(r) * n;
            lo = (uint32_t)m;
        }
    }
    return (uint32_t)(m >> 32);
}
