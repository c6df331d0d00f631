/* u8 pixels to the model's f32 input (b / 255), the step every u8 sample goes through when a
 * batch is formed: vectorised (AVX2 + FMA, chosen at run time) and exact, the same bits as the
 * scalar division. */
#ifndef HERD_DATA_PIXELS_H
#define HERD_DATA_PIXELS_H

#include <stddef.h>
#include <stdint.h>

/* out[k] = (float)in[k] / 255.0f for k < n; in and out must not overlap. Stores that bypass
 * the cache are used for large outputs (a batch is read once, later, by the model). */
void herd_pixels_u8_to_f32(float *out, const uint8_t *in, size_t n);

typedef enum herd_pixels_impl {
    HERD_PIXELS_AUTO = 0, /* what herd_pixels_u8_to_f32 uses */
    HERD_PIXELS_SCALAR,   /* the plain loop: the reference */
    HERD_PIXELS_AVX2      /* 8 lanes: q = b * (1/255) corrected by one FMA step to the rounded quotient */
} herd_pixels_impl;

/* herd_pixels_u8_to_f32 through one implementation (tests, benchmarks); 0 when this CPU or
 * build lacks it, else 1. stream: 1 forces cache-bypassing stores, 0 normal ones, -1 by size. */
int herd_pixels_u8_to_f32_with(herd_pixels_impl which, int stream, float *out, const uint8_t *in, size_t n);

#endif
