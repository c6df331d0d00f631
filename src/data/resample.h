/* Antialiased separable resampling of float planes, as PIL's resize with BILINEAR does it: a
 * triangle filter whose footprint widens with the scale when shrinking (every source pixel
 * under an output pixel contributes), plain bilinear (half-pixel centers) when enlarging. Used
 * by image decoding (cover + center crop) and by random_resized_crop. */
#ifndef HERD_DATA_RESAMPLE_H
#define HERD_DATA_RESAMPLE_H

#include <stdint.h>

#include "herd/core.h"

/* The region [x0, x1) x [y0, y1) of src (in pixel units, fractional allowed; the filter may
 * read pixels outside it, within the image, as PIL's box= does) scaled to dw x dh. src is
 * `planes` planes of sh x sw floats, dst `planes` planes of dh x dw. A region the size of the
 * output at integer offsets copies pixels exactly. Fails only for lack of memory. */
herd_status herd_resample(float *dst, int dw, int dh, const float *src, int sw, int sh, int planes, double x0,
                          double y0, double x1, double y1, herd_error *err);
/* herd_resample from decoded pixels to u8 planes: src is sh x sw pixels of `channels` (1 or 3)
 * interleaved bytes, dst `channels` planes of dh x dw rounded to the nearest level (clamped to
 * [0, 255]). The same sums as herd_resample on the pixels as float planes, then rounding, bit
 * for bit, without the float copy of the image. */
herd_status herd_resample_u8(uint8_t *dst, int dw, int dh, const uint8_t *src, int sw, int sh, int channels,
                             double x0, double y0, double x1, double y1, herd_error *err);
/* herd_resample_u8 for the window win = {top, left, height, width} of the dh x dw output only
 * (dst holds every plane whole; pixels outside win are left as they are), from the part
 * part = {top, left, height, width} of the sh x sw image that src holds (rows of part[3]
 * pixels): the window's pixels come out bit for bit as herd_resample_u8 makes them, provided
 * part contains what herd_resample_reach says the window reads. */
herd_status herd_resample_u8_part(uint8_t *dst, int dw, int dh, const int win[4], const uint8_t *src, int sw, int sh,
                                  const int part[4], int channels, double x0, double y0, double x1, double y1,
                                  herd_error *err);
/* The rectangle reach = {top, left, height, width} of an sw x sh source that the window win of
 * a dw x dh output of the region [x0, x1) x [y0, y1) reads (the filter's taps). */
herd_status herd_resample_reach(int sw, int sh, double x0, double y0, double x1, double y1, int dw, int dh,
                                const int win[4], int reach[4], herd_error *err);

/* out[i] = v[i] rounded to the nearest level in [0, 255], as PIL's resize and convert('L') do;
 * the filter weights sum to 1 only up to rounding (and luma's 0.299+0.587+0.114 to 1.0000001),
 * so a white pixel may come out a hair above 255 (found by the image fuzz target). */
void herd_round_to_u8(uint8_t *restrict out, const float *restrict v, size_t n);

#endif
