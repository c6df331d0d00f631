/* u8 pixels to f32 on every path (data/pixels.h): all 256 values equal (float)b / 255.0f bit
 * for bit on the scalar and the AVX2 path, with normal and streaming stores; buffers of every
 * length and misalignment around the 8-lane blocks; herd_samples_to_f32 apart and in place. */
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "data/pixels.h"
#include "herd/data.h"

static const herd_pixels_impl impls[] = {HERD_PIXELS_AUTO, HERD_PIXELS_SCALAR, HERD_PIXELS_AVX2};
static const char *const impl_names[] = {"auto", "scalar", "avx2"};

static void every_value(void) {
    uint8_t in[256];
    float out[256 + 8];
    for (int b = 0; b < 256; b++) in[b] = (uint8_t)b;
    for (int k = 0; k < 3; k++)
        for (int stream = 0; stream <= 1; stream++) {
            memset(out, 0, sizeof out);
            if (!herd_pixels_u8_to_f32_with(impls[k], stream, out, in, 256)) continue;
            int bad = 0;
            for (int b = 0; b < 256; b++) {
                float want = (float)b / 255.0f;
                if (memcmp(&out[b], &want, sizeof want) != 0 && bad++ < 3)
                    CHECK(0, "%s (stream %d): %d -> %.9g, expected %.9g", impl_names[k], stream, b, out[b], want);
            }
            CHECK(bad == 0, "%s (stream %d): %d of 256 values differ from b / 255", impl_names[k], stream, bad);
        }
    CHECK(herd_pixels_u8_to_f32_with(HERD_PIXELS_SCALAR, 0, out, in, 1), "the scalar path always exists");
}

/* Lengths around the 8-lane blocks, outputs at every 4-byte offset of a 32-byte line (the
 * streaming prologue), nothing written outside [0, n). */
static void lengths_and_offsets(void) {
    size_t cap = 300000; /* above the streaming threshold too */
    uint8_t *in = malloc(cap + 8);
    float *out = aligned_alloc(64, (cap + 64) * sizeof *out);
    uint64_t s = 88172645463325252ull;
    for (size_t i = 0; i < cap + 8; i++) {
        s ^= s << 13, s ^= s >> 7, s ^= s << 17;
        in[i] = (uint8_t)s;
    }
    size_t lens[] = {0, 1, 7, 8, 9, 15, 16, 17, 100, 4099, cap};
    int bad = 0;
    for (size_t li = 0; li < sizeof lens / sizeof lens[0]; li++)
        for (size_t off = 0; off < 8; off++)
            for (int k = 0; k < 3; k++)
                for (int stream = -1; stream <= 1; stream++) {
                    size_t n = lens[li];
                    for (size_t i = 0; i < n + 16; i++) out[i] = -1.0f;
                    if (!herd_pixels_u8_to_f32_with(impls[k], stream, out + off, in + off, n)) continue;
                    for (size_t i = 0; i < n + 16; i++) {
                        float want = i >= off && i < off + n ? (float)in[i] / 255.0f : -1.0f;
                        if (memcmp(&out[i], &want, sizeof want) != 0) {
                            if (bad++ < 3)
                                CHECK(0, "%s (stream %d), %zu values at offset %zu: out[%zu] = %.9g, expected %.9g",
                                      impl_names[k], stream, n, off, i, out[i], want);
                            break;
                        }
                    }
                }
    CHECK(bad == 0, "%d conversions wrote a wrong value or outside their range", bad);
    free(in);
    free(out);
}

/* The public conversion: apart, and in place (a sample converted where get() wrote it). */
static void samples_to_f32(void) {
    size_t n = 5000;
    float *buf = malloc(n * sizeof *buf), *ref = malloc(n * sizeof *ref);
    uint8_t *bytes = (uint8_t *)buf;
    for (size_t i = 0; i < n; i++) bytes[i] = (uint8_t)(i * 7 + 3);
    for (size_t i = 0; i < n; i++) ref[i] = (float)(uint8_t)(i * 7 + 3) / 255.0f;
    float *apart = malloc(n * sizeof *apart);
    herd_samples_to_f32(HERD_U8, bytes, n, apart);
    CHECK(memcmp(apart, ref, n * sizeof *ref) == 0, "u8 -> f32 into another buffer differs from b / 255");
    herd_samples_to_f32(HERD_U8, bytes, n, buf);
    CHECK(memcmp(buf, ref, n * sizeof *ref) == 0, "u8 -> f32 in place differs from b / 255");
    free(buf);
    free(ref);
    free(apart);
}

int main(void) {
    every_value();
    lengths_and_offsets();
    samples_to_f32();
    return check_summary();
}
