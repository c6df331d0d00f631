/* The loader's per-sample transforms (data/augment.h): torchvision's RandomResizedCrop,
 * RandomHorizontalFlip and ColorJitter, herd's pad-4 random crop, then Normalize, in that
 * order, each from its own Philox stream keyed by (seed, epoch, sample index). */
#include "data/augment.h"

#include <math.h>
#include <string.h>

#include "data/resample.h"

/* Keep the draws of each transform apart from each other and from other users of the seed. */
#define AUGMENT_TAG 0x4155474DULL /* "AUGM": crop and flip (the draws herd has always made) */
#define RRC_TAG 0x52524350ULL     /* "RRCP" */
#define JITTER_TAG 0x4A495454ULL  /* "JITT" */
#define CROP_PAD 4

static const float default_scale[2] = {0.08f, 1.0f}, default_ratio[2] = {3.0f / 4.0f, 4.0f / 3.0f};

static void stream(herd_rng *r, const herd_loader_config *cfg, uint64_t tag, int64_t epoch, int64_t index) {
    herd_rng_init(r, cfg->seed ^ (tag << 32), ((uint64_t)epoch << 32) ^ (uint64_t)index);
}

static int jitter_on(const herd_loader_config *cfg) {
    return cfg->brightness > 0 || cfg->contrast > 0 || cfg->saturation > 0;
}

int herd_augment_active(const herd_loader_config *cfg) { return cfg->augment || jitter_on(cfg) || cfg->mean; }

herd_status herd_augment_check(const herd_loader_config *cfg, int c, herd_error *err) {
    const float *s = cfg->rrc_scale[1] > 0 ? cfg->rrc_scale : default_scale;
    const float *r = cfg->rrc_ratio[1] > 0 ? cfg->rrc_ratio : default_ratio;
    if (cfg->augment & ~(HERD_AUGMENT_CROP | HERD_AUGMENT_FLIP | HERD_AUGMENT_RRC))
        return herd_fail(err, HERD_EARG, "augment: unknown bits %#x", (unsigned)cfg->augment);
    if (!(s[0] > 0 && s[0] <= s[1] && s[1] <= 1) || !(r[0] > 0 && r[0] <= r[1] && r[1] < 1e3f))
        return herd_fail(err, HERD_EARG, "random_resized_crop: scale (%g, %g) or ratio (%g, %g) out of range "
                         "(0 < min <= max, scale <= 1)", s[0], s[1], r[0], r[1]);
    const float j[3] = {cfg->brightness, cfg->contrast, cfg->saturation};
    for (int k = 0; k < 3; k++)
        if (!(j[k] >= 0 && j[k] <= 100))
            return herd_fail(err, HERD_EARG, "colour jitter strength %g outside [0, 100]", j[k]);
    if (!cfg->mean != !cfg->std) return herd_fail(err, HERD_EARG, "normalisation needs both mean and std");
    for (int k = 0; cfg->std && k < c; k++)
        if (!isfinite(cfg->mean[k]) || !(cfg->std[k] > 0) || !isfinite(cfg->std[k]))
            return herd_fail(err, HERD_EARG, "normalisation of channel %d: mean %g, std %g (finite, std > 0)", k,
                             cfg->mean[k], cfg->std[k]);
    return HERD_OK;
}

void herd_augment_rrc_box(herd_rng *r, int h, int w, const float scale[2], const float ratio[2], int box[4]) {
    double area = (double)h * w, lr0 = log(ratio[0]), lr1 = log(ratio[1]);
    for (int t = 0; t < 10; t++) {
        double target = area * (scale[0] + (scale[1] - scale[0]) * (double)herd_rng_uniform(r));
        double aspect = exp(lr0 + (lr1 - lr0) * (double)herd_rng_uniform(r));
        int cw = (int)lround(sqrt(target * aspect)), ch = (int)lround(sqrt(target / aspect));
        if (cw > 0 && cw <= w && ch > 0 && ch <= h) {
            box[0] = (int)herd_rng_below(r, (uint32_t)(h - ch + 1));
            box[1] = (int)herd_rng_below(r, (uint32_t)(w - cw + 1));
            box[2] = ch, box[3] = cw;
            return;
        }
    }
    /* torchvision's fallback: the whole image, cut to the nearest allowed aspect ratio */
    double in_ratio = (double)w / h;
    int cw = w, ch = h;
    if (in_ratio < ratio[0]) ch = (int)lround(cw / (double)ratio[0]);
    else if (in_ratio > ratio[1]) cw = (int)lround(ch * (double)ratio[1]);
    if (ch < 1) ch = 1;
    if (cw < 1) cw = 1;
    box[0] = (h - ch) / 2, box[1] = (w - cw) / 2, box[2] = ch, box[3] = cw;
}

/* dst = src shifted by (dy, dx) with zero fill and optionally mirrored, then, with norm, each
 * plane k mapped to (v - mean[k]) * (1 / std[k]) as herd_normalize_samples does (the zero fill
 * too): one pass instead of a copy, the shift and the normalisation apart. dst != src. Row by row
 * over the columns that land inside the sample, so the loops carry no per-pixel test. */
static void shift_flip_norm(float *restrict dst, const float *restrict src, int c, int h, int w, int dy, int dx,
                            int flip, const double *mean, const double *std) {
    /* output column xx reads source column flip ? w - 1 - xx + dx : xx + dx: [lo, hi) inside */
    int lo = flip ? dx : -dx, hi = flip ? w + dx : w - dx;
    lo = lo < 0 ? 0 : lo > w ? w : lo;
    hi = hi > w ? w : hi < lo ? lo : hi;
    for (int k = 0; k < c; k++) {
        const float shift = mean ? (float)mean[k] : 0.0f, scale = mean && std[k] > 0 ? (float)(1.0 / std[k]) : 1.0f;
        const float zero = mean ? (0.0f - shift) * scale : 0.0f;
        for (int y = 0; y < h; y++) {
            float *o = dst + ((size_t)k * h + y) * w;
            int sy = y + dy;
            if (sy < 0 || sy >= h) {
                for (int xx = 0; xx < w; xx++) o[xx] = zero;
                continue;
            }
            const float *r = src + ((size_t)k * h + sy) * w;
            for (int xx = 0; xx < lo; xx++) o[xx] = zero;
            for (int xx = hi; xx < w; xx++) o[xx] = zero;
            if (flip) {
                const float *rr = r + (w - 1) + dx; /* o[xx] = rr[-xx] */
                if (mean)
                    for (int xx = lo; xx < hi; xx++) o[xx] = (rr[-xx] - shift) * scale;
                else
                    for (int xx = lo; xx < hi; xx++) o[xx] = rr[-xx];
            } else {
                const float *rr = r + dx;
                if (mean)
                    for (int xx = lo; xx < hi; xx++) o[xx] = (rr[xx] - shift) * scale;
                else
                    for (int xx = lo; xx < hi; xx++) o[xx] = rr[xx];
            }
        }
    }
}

/* torchvision's rgb_to_grayscale weights */
static float gray_at(const float *x, size_t plane, size_t i, int c) {
    return c == 3 ? 0.2989f * x[i] + 0.587f * x[plane + i] + 0.114f * x[2 * plane + i] : x[i];
}

static float clamp01(float v) { return v < 0.0f ? 0.0f : v > 1.0f ? 1.0f : v; }

/* torchvision's ColorJitter (brightness, contrast, saturation; hue is not offered): the
 * factors uniform in [max(0, 1 - s), 1 + s], applied in a random order, clamped to [0, 1]. */
static void jitter(const herd_loader_config *cfg, herd_rng *r, float *x, int c, size_t plane) {
    int order[3] = {0, 1, 2};
    for (int k = 2; k > 0; k--) { /* Fisher-Yates */
        int j = (int)herd_rng_below(r, (uint32_t)(k + 1)), t = order[k];
        order[k] = order[j], order[j] = t;
    }
    const float strength[3] = {cfg->brightness, cfg->contrast, cfg->saturation};
    float factor[3];
    for (int k = 0; k < 3; k++) {
        float lo = 1 - strength[k] > 0 ? 1 - strength[k] : 0, hi = 1 + strength[k];
        factor[k] = lo + (hi - lo) * herd_rng_uniform(r); /* drawn whether used or not: stable streams */
    }
    size_t n = (size_t)c * plane;
    for (int o = 0; o < 3; o++) {
        int kind = order[o];
        float f = factor[kind];
        if (strength[kind] <= 0) continue;
        if (kind == 0) {
            for (size_t i = 0; i < n; i++) x[i] = clamp01(f * x[i]);
        } else if (kind == 1) {
            double sum = 0;
            for (size_t i = 0; i < plane; i++) sum += gray_at(x, plane, i, c);
            float mean = (float)(sum / (double)plane), add = (1 - f) * mean;
            for (size_t i = 0; i < n; i++) x[i] = clamp01(f * x[i] + add);
        } else if (c == 3) {
            for (size_t i = 0; i < plane; i++) {
                float add = (1 - f) * gray_at(x, plane, i, c);
                for (int k = 0; k < 3; k++) x[k * plane + i] = clamp01(f * x[k * plane + i] + add);
            }
        }
    }
}

/* random_resized_crop's box for sample index of epoch */
static void rrc_draw(const herd_loader_config *cfg, int h, int w, int64_t epoch, int64_t index, int box[4]) {
    herd_rng r;
    stream(&r, cfg, RRC_TAG, epoch, index);
    herd_augment_rrc_box(&r, h, w, cfg->rrc_scale[1] > 0 ? cfg->rrc_scale : default_scale,
                         cfg->rrc_ratio[1] > 0 ? cfg->rrc_ratio : default_ratio, box);
}

int herd_augment_window(const herd_loader_config *cfg, int h, int w, int64_t epoch, int64_t index, int win[4]) {
    if (!(cfg->augment & HERD_AUGMENT_RRC)) return 0;
    int box[4];
    rrc_draw(cfg, h, w, epoch, index, box);
    if (box[2] == h && box[3] == w) return 0;
    const int all[4] = {0, 0, h, w};
    herd_error err;
    return herd_resample_reach(w, h, box[1], box[0], box[1] + box[3], box[0] + box[2], w, h, all, win, &err) ==
           HERD_OK; /* out of memory: the whole sample, which needs no more */
}

herd_status herd_augment_sample(const herd_loader_config *cfg, int c, int h, int w, int64_t epoch, int64_t index,
                                float *x, float *tmp, herd_error *err) {
    herd_rng r;
    size_t plane = (size_t)h * w;
    int in_tmp = 0; /* the sample so far lies in tmp (random_resized_crop's output), not x */
    if (cfg->augment & HERD_AUGMENT_RRC) {
        int box[4];
        rrc_draw(cfg, h, w, epoch, index, box);
        if (box[2] != h || box[3] != w) {
            herd_status st = herd_resample(tmp, w, h, x, w, h, c, box[1], box[0], box[1] + box[3], box[0] + box[2], err);
            if (st != HERD_OK) return st;
            in_tmp = 1;
        }
    }
    int dy = 0, dx = 0, flip = 0;
    if (cfg->augment & (HERD_AUGMENT_CROP | HERD_AUGMENT_FLIP)) {
        /* always the same draws in the same order, so crop alone and flip alone agree with both */
        stream(&r, cfg, AUGMENT_TAG, epoch, index);
        dy = (int)herd_rng_below(&r, 2 * CROP_PAD + 1) - CROP_PAD;
        dx = (int)herd_rng_below(&r, 2 * CROP_PAD + 1) - CROP_PAD;
        flip = (int)herd_rng_below(&r, 2);
        if (!(cfg->augment & HERD_AUGMENT_CROP)) dx = dy = 0;
        if (!(cfg->augment & HERD_AUGMENT_FLIP)) flip = 0;
    }
    /* the last steps fused into one pass back into x where they can be: shift/flip, then
     * (without jitter between) the normalisation */
    const int jit = jitter_on(cfg), norm_now = cfg->mean && !jit;
    if (dx || dy || flip || in_tmp) {
        if (!in_tmp) memcpy(tmp, x, (size_t)c * plane * sizeof *x);
        shift_flip_norm(x, tmp, c, h, w, dy, dx, flip, norm_now ? cfg->mean : NULL, cfg->std);
    } else if (norm_now) {
        herd_normalize_samples(x, 1, c, (int64_t)plane, cfg->mean, cfg->std);
    }
    if (jit) {
        stream(&r, cfg, JITTER_TAG, epoch, index);
        jitter(cfg, &r, x, c, plane);
        if (cfg->mean) herd_normalize_samples(x, 1, c, (int64_t)plane, cfg->mean, cfg->std);
    }
    return HERD_OK;
}
