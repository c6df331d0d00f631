/* u8 pixels to f32 (data/pixels.h). Dividing by 255 is what herd has always done (255 stays
 * exactly 1.0f); a vector division costs ~4x a multiply, and b * (1/255) alone is one ulp off
 * for 126 of the 256 values, so the AVX2 path corrects the product with one FMA step
 * (e = b - q*255 exactly, q + e/255 rounded once), which gives the rounded quotient for every
 * byte (tests/test_pixels.c checks all 256 on both paths). */
#include "data/pixels.h"

#include <pthread.h>
#include <string.h>

/* Outputs of at least this many floats (1 MiB) are written with streaming stores: a batch
 * is far larger than the caches, and normal stores would first read every line they fill. */
#define STREAM_MIN ((size_t)1 << 18)

static void u8_to_f32_scalar(float *restrict out, const uint8_t *restrict in, size_t n, int stream) {
    (void)stream;
    for (size_t k = 0; k < n; k++) out[k] = (float)in[k] / 255.0f;
}

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>
#define HAVE_AVX2 1

__attribute__((target("avx2,fma"))) static void u8_to_f32_avx2(float *restrict out, const uint8_t *restrict in,
                                                              size_t n, int stream) {
    const __m256 r = _mm256_set1_ps(1.0f / 255.0f), c = _mm256_set1_ps(255.0f);
    size_t k = 0;
    if (stream) /* streaming stores need 32-byte aligned addresses */
        for (; k < n && ((uintptr_t)(out + k) & 31); k++) out[k] = (float)in[k] / 255.0f;
    for (; k + 8 <= n; k += 8) {
        __m128i v;
        memcpy(&v, in + k, 8); /* the upper half is not read */
        __m256 b = _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(v));
        __m256 q = _mm256_mul_ps(b, r);
        __m256 e = _mm256_fnmadd_ps(q, c, b); /* b - q*255, exact */
        __m256 x = _mm256_fmadd_ps(e, r, q);
        if (stream) _mm256_stream_ps(out + k, x);
        else _mm256_storeu_ps(out + k, x);
    }
    if (stream) _mm_sfence(); /* the streamed lines are visible before another thread reads them */
    for (; k < n; k++) out[k] = (float)in[k] / 255.0f;
}
#else
#define HAVE_AVX2 0
#endif

typedef void (*convert_fn)(float *, const uint8_t *, size_t, int);
static convert_fn chosen = u8_to_f32_scalar;
static pthread_once_t choose_once = PTHREAD_ONCE_INIT;

static void choose(void) {
#if HAVE_AVX2
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) chosen = u8_to_f32_avx2;
#endif
}

static convert_fn impl(herd_pixels_impl which) {
    pthread_once(&choose_once, choose);
    switch (which) {
    case HERD_PIXELS_SCALAR: return u8_to_f32_scalar;
#if HAVE_AVX2
    case HERD_PIXELS_AVX2: return chosen == u8_to_f32_avx2 ? u8_to_f32_avx2 : NULL;
#else
    case HERD_PIXELS_AVX2: return NULL;
#endif
    default: return chosen;
    }
}

void herd_pixels_u8_to_f32(float *out, const uint8_t *in, size_t n) {
    impl(HERD_PIXELS_AUTO)(out, in, n, n >= STREAM_MIN);
}

int herd_pixels_u8_to_f32_with(herd_pixels_impl which, int stream, float *out, const uint8_t *in, size_t n) {
    convert_fn f = impl(which);
    if (!f) return 0;
    f(out, in, n, stream < 0 ? n >= STREAM_MIN : stream);
    return 1;
}
