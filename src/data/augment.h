/* Training-time transforms of one sample, as the loader applies them after reading (or the
 * cache): random_resized_crop, the padded random crop, horizontal flip, colour jitter, then
 * normalisation by given mean/std. Every draw comes from Philox keyed by (seed, epoch, sample
 * index), so the result does not depend on which thread computes it or when. */
#ifndef HERD_DATA_AUGMENT_H
#define HERD_DATA_AUGMENT_H

#include "herd/data.h"

/* Checks cfg's augmentation fields (bits, ranges, strengths) for samples of c channels. */
herd_status herd_augment_check(const herd_loader_config *cfg, int c, herd_error *err);
/* 1 when herd_augment_sample changes anything. */
int herd_augment_active(const herd_loader_config *cfg);
/* Transforms x (c x h x w floats, pixels in [0, 1] unless normalised before) in place for
 * sample `index` of epoch `epoch`; tmp: c*h*w floats of scratch. Fails only for lack of memory. */
herd_status herd_augment_sample(const herd_loader_config *cfg, int c, int h, int w, int64_t epoch, int64_t index,
                                float *x, float *tmp, herd_error *err);
/* The window {top, left, height, width} of an h x w sample that herd_augment_sample reads for
 * sample `index` of epoch `epoch` (random_resized_crop's box and its filter's reach): 1, or 0
 * when it needs the whole sample. */
int herd_augment_window(const herd_loader_config *cfg, int h, int w, int64_t epoch, int64_t index, int win[4]);
/* torchvision's RandomResizedCrop.get_params on an h x w image: up to 10 tries of an area
 * fraction in scale and a log-uniform aspect ratio in ratio, else the center crop clipped to
 * ratio. box = {top, left, height, width}. */
void herd_augment_rrc_box(herd_rng *r, int h, int w, const float scale[2], const float ratio[2], int box[4]);

#endif
