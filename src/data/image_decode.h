/* PNG (libpng) and JPEG (libjpeg-turbo) decoding from memory, and the conversion of a
 * decoded image to a model's c x h x w input (see herd_image_options in herd/data.h). */
#ifndef HERD_DATA_IMAGE_DECODE_H
#define HERD_DATA_IMAGE_DECODE_H

#include <stddef.h>
#include <stdint.h>

#include "herd/core.h"

typedef struct herd_image {
    uint8_t *pix; /* h*w*c bytes, interleaved (HWC), malloc'd */
    int w, h, c;  /* c is 1 (gray) or 3 (RGB); alpha is dropped */
} herd_image;

/* 1 if buf starts like a PNG or a JPEG file. */
int herd_image_is_encoded(const uint8_t *buf, size_t len);
/* Decodes a PNG or JPEG (by signature). Corrupt or truncated data (JPEG warnings included)
 * is an error "<what>: ..."; the pixel count is bounded by what len bytes can encode. */
herd_status herd_image_decode(const uint8_t *buf, size_t len, const char *what, herd_image *img, herd_error *err);
/* The same, allowed to decode a JPEG reduced (libjpeg's DCT scaling by 1/2, 1/4 or 1/8) while
 * it still covers cover_w x cover_h (PIL's draft()); 0, 0: full size. Decoded pixels are
 * capped at 1 GiB (a larger image is HERD_EUNSUPPORTED, named). */
herd_status herd_image_decode_reduced(const uint8_t *buf, size_t len, const char *what, int cover_w, int cover_h,
                                      herd_image *img, herd_error *err);
/* herd_image_decode_to_u8 for the window win = {top, left, height, width} of the h x w sample
 * only: its pixels come out bit for bit as herd_image_decode_to_u8 makes them; the rest of out
 * is unspecified. A JPEG of c components is decoded in part (the rows outside the window's reach
 * are entropy-decoded only, the columns outside it not transformed, and out is written in the
 * window only); other images whole. Every byte of the file is still checked, unless *sound (in/out,
 * may be NULL) is nonzero on entry: the caller vouches that an earlier call found these bytes
 * sound, and a JPEG's rows below the window's reach are then not decoded at all. On success
 * *sound is set to whether this call checked every byte (the image readers keep it per file,
 * so that from an image's second use on its tail is skipped; docs/DATA.md). */
herd_status herd_image_decode_window_to_u8(const uint8_t *buf, size_t len, const char *what, int c, int h, int w,
                                           const int win[4], int *sound, uint8_t *out, herd_error *err);
void herd_image_free(herd_image *img);
/* Writes c*h*w bytes (NCHW, a u8 sample): channel conversion, scaling to cover h x w with the
 * aspect ratio kept (antialiased when shrinking, bilinear when enlarging: data/resample.h),
 * center crop, rounding to the nearest level (an image already c x h x w, or gray to RGB, is
 * copied exactly). c must be 1 or 3. Fails only for lack of memory. */
herd_status herd_image_to_u8(const herd_image *img, int c, int h, int w, uint8_t *out, herd_error *err);
/* herd_image_decode_reduced for an h x w target, then herd_image_to_u8. */
herd_status herd_image_decode_to_u8(const uint8_t *buf, size_t len, const char *what, int c, int h, int w,
                                    uint8_t *out, herd_error *err);

#endif
