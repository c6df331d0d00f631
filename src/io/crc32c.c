/* CRC-32C (Castagnoli, reflected polynomial 0x82F63B78) for shards, TFRecord and TensorBoard:
 * the SSE4.2 crc32 instruction (three interleaved streams) where the CPU has it, chosen at run
 * time, else slicing by 8; the byte-at-a-time loop stays as the reference the others are tested
 * against. HERD_CRC32C=sw|bytewise in the environment forces a slower path (tests, benchmarks). */
#include "io/crc32c.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#define POLY 0x82F63B78u

static uint32_t table8[8][256]; /* table8[0] is the byte-at-a-time table */
static pthread_once_t table_once = PTHREAD_ONCE_INIT; /* loader threads may be the first callers */

static void table_init(void) {
    for (uint32_t i = 0; i < 256; i++) {
        uint32_t c = i;
        for (int k = 0; k < 8; k++) c = (c >> 1) ^ (POLY & (0u - (c & 1u)));
        table8[0][i] = c;
    }
    for (int t = 1; t < 8; t++)
        for (int i = 0; i < 256; i++) table8[t][i] = (table8[t - 1][i] >> 8) ^ table8[0][table8[t - 1][i] & 0xFFu];
}

/* The raw (uncomplemented) register over n bytes, one byte at a time. */
static uint32_t raw_bytewise(uint32_t crc, const unsigned char *p, size_t n) {
    for (size_t i = 0; i < n; i++) crc = table8[0][(crc ^ p[i]) & 0xFFu] ^ (crc >> 8);
    return crc;
}

static uint64_t load_le64(const unsigned char *p) {
    uint64_t v = 0;
    for (int i = 0; i < 8; i++) v |= (uint64_t)p[i] << (8 * i);
    return v;
}

static uint32_t raw_slice8(uint32_t crc, const unsigned char *p, size_t n) {
    for (; n >= 8; n -= 8, p += 8) {
        uint64_t v = load_le64(p) ^ crc;
        crc = table8[7][v & 0xFF] ^ table8[6][(v >> 8) & 0xFF] ^ table8[5][(v >> 16) & 0xFF] ^
              table8[4][(v >> 24) & 0xFF] ^ table8[3][(v >> 32) & 0xFF] ^ table8[2][(v >> 40) & 0xFF] ^
              table8[1][(v >> 48) & 0xFF] ^ table8[0][v >> 56];
    }
    return raw_bytewise(crc, p, n);
}

/* ---- zeros operators: the register after `len` more zero bytes, as a GF(2) 32x32 matrix ---- */

static uint32_t gf2_times(const uint32_t *mat, uint32_t vec) {
    uint32_t sum = 0;
    for (int i = 0; vec; vec >>= 1, i++)
        if (vec & 1) sum ^= mat[i];
    return sum;
}

static void gf2_square(uint32_t *out, const uint32_t *mat) {
    for (int i = 0; i < 32; i++) out[i] = gf2_times(mat, mat[i]);
}

/* A byte table per byte of the register for "append len zero bytes" (zlib's crc32_combine idea). */
static void zeros_table(uint32_t tab[4][256], size_t len) {
    uint32_t odd[32], even[32], op[32];
    odd[0] = POLY; /* one zero bit */
    for (int i = 1; i < 32; i++) odd[i] = 1u << (i - 1);
    gf2_square(even, odd); /* 2 bits */
    gf2_square(odd, even); /* 4 bits: odd now is the 4-bit operator */
    for (int i = 0; i < 32; i++) op[i] = 1u << i;
    /* op = (8 * len zero bits) by squaring the 1-byte operator */
    gf2_square(even, odd); /* 8 bits = one byte */
    uint32_t *cur = even, *tmp = odd;
    for (size_t k = len; k; k >>= 1) {
        if (k & 1) {
            uint32_t r[32];
            for (int i = 0; i < 32; i++) r[i] = gf2_times(cur, op[i]);
            memcpy(op, r, sizeof r);
        }
        gf2_square(tmp, cur);
        uint32_t *s = cur;
        cur = tmp, tmp = s;
    }
    for (int b = 0; b < 4; b++)
        for (uint32_t v = 0; v < 256; v++) tab[b][v] = gf2_times(op, v << (8 * b));
}

static uint32_t zeros_apply(const uint32_t tab[4][256], uint32_t crc) {
    return tab[0][crc & 0xFF] ^ tab[1][(crc >> 8) & 0xFF] ^ tab[2][(crc >> 16) & 0xFF] ^ tab[3][crc >> 24];
}

/* ---- SSE4.2: three independent crc32 chains over consecutive blocks (the instruction's
 * latency is 3 cycles, its throughput 1), joined by the zeros operators ---- */
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <nmmintrin.h>
#define HAVE_HW 1
#define HW_BLOCK 4096u /* bytes per chain in one round; 3 chains = 12 KiB */

static uint32_t zeros_block[4][256];     /* HW_BLOCK zero bytes */
static uint32_t zeros_two_block[4][256]; /* 2 * HW_BLOCK */

/* The register over p[0..n), also storing each word read into d when d is not NULL (one pass
 * over the data for a copy that is checked; inlined with d = NULL for the plain CRC). */
__attribute__((target("sse4.2"), always_inline)) static inline uint32_t hw_pass(uint32_t crc, unsigned char *d,
                                                                               const unsigned char *p, size_t n) {
    uint64_t c0 = crc;
    while (n >= 3 * HW_BLOCK) {
        uint64_t c1 = 0, c2 = 0;
        const unsigned char *p1 = p + HW_BLOCK, *p2 = p + 2 * HW_BLOCK;
        for (size_t i = 0; i < HW_BLOCK; i += 8) {
            uint64_t a, b, c;
            memcpy(&a, p + i, 8);
            memcpy(&b, p1 + i, 8);
            memcpy(&c, p2 + i, 8);
            c0 = _mm_crc32_u64(c0, a);
            c1 = _mm_crc32_u64(c1, b);
            c2 = _mm_crc32_u64(c2, c);
            if (d) {
                memcpy(d + i, &a, 8);
                memcpy(d + HW_BLOCK + i, &b, 8);
                memcpy(d + 2 * HW_BLOCK + i, &c, 8);
            }
        }
        /* crc(A B C) = shift(shift(cA) over B) ^ cB, then over C; raw registers combine linearly */
        c0 = zeros_apply(zeros_two_block, (uint32_t)c0) ^ zeros_apply(zeros_block, (uint32_t)c1) ^ (uint32_t)c2;
        p += 3 * HW_BLOCK, n -= 3 * HW_BLOCK;
        if (d) d += 3 * HW_BLOCK;
    }
    for (; n >= 8; n -= 8, p += 8) {
        uint64_t v;
        memcpy(&v, p, 8);
        c0 = _mm_crc32_u64(c0, v);
        if (d) memcpy(d, &v, 8), d += 8;
    }
    uint32_t c = (uint32_t)c0;
    for (; n; n--, p++) {
        c = _mm_crc32_u8(c, *p);
        if (d) *d++ = *p;
    }
    return c;
}

__attribute__((target("sse4.2"))) static uint32_t raw_hw(uint32_t crc, const unsigned char *p, size_t n) {
    return hw_pass(crc, NULL, p, n);
}

__attribute__((target("sse4.2"))) static uint32_t raw_hw_copy(uint32_t crc, unsigned char *d, const unsigned char *p,
                                                              size_t n) {
    return hw_pass(crc, d, p, n);
}
#else
#define HAVE_HW 0
#endif

typedef uint32_t (*raw_fn)(uint32_t, const unsigned char *, size_t);
static raw_fn chosen = raw_slice8;
static const char *chosen_name = "slice8";

static void choose(void) {
    table_init();
    const char *force = getenv("HERD_CRC32C");
#if HAVE_HW
    if (__builtin_cpu_supports("sse4.2") && !(force && (!strcmp(force, "sw") || !strcmp(force, "bytewise")))) {
        zeros_table(zeros_block, HW_BLOCK);
        zeros_table(zeros_two_block, 2 * HW_BLOCK);
        chosen = raw_hw, chosen_name = "sse4.2";
        return;
    }
#endif
    if (force && !strcmp(force, "bytewise")) chosen = raw_bytewise, chosen_name = "bytewise";
}

static raw_fn impl(herd_crc32c_impl which) {
    pthread_once(&table_once, choose);
    switch (which) {
    case HERD_CRC32C_BYTEWISE: return raw_bytewise;
    case HERD_CRC32C_SLICE8: return raw_slice8;
#if HAVE_HW
    case HERD_CRC32C_SSE42: return chosen == raw_hw ? raw_hw : NULL;
#else
    case HERD_CRC32C_SSE42: return NULL;
#endif
    default: return chosen;
    }
}

uint32_t herd_crc32c(uint32_t crc, const void *data, size_t n) {
    return ~impl(HERD_CRC32C_AUTO)(~crc, data, n);
}

uint32_t herd_crc32c_copy(uint32_t crc, void *dst, const void *src, size_t n) {
    raw_fn f = impl(HERD_CRC32C_AUTO);
#if HAVE_HW
    if (f == raw_hw) return ~raw_hw_copy(~crc, dst, src, n);
#endif
    memcpy(dst, src, n);
    return ~f(~crc, dst, n);
}

int herd_crc32c_with(herd_crc32c_impl which, uint32_t crc, const void *data, size_t n, uint32_t *out) {
    raw_fn f = impl(which);
    if (!f) return 0;
    *out = ~f(~crc, data, n);
    return 1;
}

const char *herd_crc32c_impl_name(void) {
    pthread_once(&table_once, choose);
    return chosen_name;
}

uint32_t herd_crc32c_mask(uint32_t crc) { return ((crc >> 15) | (crc << 17)) + 0xa282ead8u; }
