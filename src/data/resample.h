/* Antialiased separable resampling of float planes, as PIL's resize with BILINEAR does it: a
 * triangle filter whose footprint widens with the scale when shrinking (every source pixel
 * under an output pixel contributes), plain bilinear (half-pixel centers) when enlarging. Used
 * by image decoding (cover + center crop) and by random_resized_crop. */
#ifndef HERD_DATA_RESAMPLE_H
#define HERD_DATA_RESAMPLE_H

#include "herd/core.h"

/* The region [x0, x1) x [y0, y1) of src (in pixel units, fractional allowed; the filter may
 * read pixels outside it, within the image, as PIL's box= does) scaled to dw x dh. src is
 * `planes` planes of sh x sw floats, dst `planes` planes of dh x dw. A region the size of the
 * output at integer offsets copies pixels exactly. Fails only for lack of memory. */
herd_status herd_resample(float *dst, int dw, int dh, const float *src, int sw, int sh, int planes, double x0,
                          double y0, double x1, double y1, herd_error *err);

#endif
