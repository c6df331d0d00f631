/* ImageNet-style augmentation (data/augment.h): random_resized_crop boxes as torchvision draws
 * them (inside the image, area and aspect ratio in range, the center-crop fallback), an
 * identity crop that changes nothing, colour jitter's bounds and fixed points, normalisation
 * applied last, and every transform the same for any loader thread count, prefetch depth and
 * cache, and the same as the sample transformed alone (a pure function of seed, epoch, index). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "data/augment.h"

enum { N = 60, C = 3, H = 24, W = 20, PER = C * H * W, BATCH = 8, EPOCHS = 2 };

static herd_dataset *make_ds(void) {
    uint8_t *img = malloc((size_t)N * PER);
    int32_t *lab = malloc(N * sizeof *lab);
    for (int i = 0; i < N * PER; i++) img[i] = (uint8_t)((i * 37) ^ (i / 7));
    for (int i = 0; i < N; i++) lab[i] = i % 4;
    herd_dataset *ds;
    herd_error err = {0};
    herd_tensor x = herd_tensor_make(HERD_U8, 4, (int64_t[]){N, C, H, W}, img);
    herd_tensor y = herd_tensor_make(HERD_I32, 1, (int64_t[]){N}, lab);
    if (herd_dataset_from_memory(&ds, x, y, 4, "mem", &err)) exit(2);
    return ds;
}

/* Sample i as the model's f32 input (what the loader augments). */
static void sample_f32(const herd_dataset *ds, int64_t i, float *x) {
    uint8_t stored[PER];
    int32_t y;
    herd_error err = {0};
    ds->ops->get(ds, i, stored, &y, &err);
    herd_dataset_to_f32(ds, stored, 1, x);
}

static void rrc_boxes(void) {
    const float scale[2] = {0.08f, 1.0f}, ratio[2] = {3.0f / 4, 4.0f / 3};
    const int sizes[2][2] = {{224, 224}, {375, 500}};
    for (int s = 0; s < 2; s++) {
        int h = sizes[s][0], w = sizes[s][1], bad = 0;
        double area_sum = 0;
        for (int i = 0; i < 20000; i++) {
            herd_rng r;
            herd_rng_init(&r, 7, (uint64_t)i);
            int b[4];
            herd_augment_rrc_box(&r, h, w, scale, ratio, b);
            double frac = (double)b[2] * b[3] / ((double)h * w), asp = (double)b[3] / b[2];
            /* rounding each side to an integer moves area and ratio by about one pixel's worth */
            double slack = 2.5 / (b[2] < b[3] ? b[2] : b[3]);
            int ok = b[0] >= 0 && b[1] >= 0 && b[0] + b[2] <= h && b[1] + b[3] <= w && frac >= 0.08 * (1 - slack) &&
                     frac <= 1 && asp >= 0.75 * (1 - slack) && asp <= 4.0 / 3 * (1 + slack);
            if (!ok && bad++ < 3)
                CHECK(0, "%dx%d: box top %d left %d %dx%d (area %.3f, ratio %.3f) out of range", h, w, b[0], b[1], b[2],
                      b[3], frac, asp);
            area_sum += frac;
        }
        /* area uniform in [0.08, 1] (mean 0.54) where the box fits: less where large boxes miss */
        CHECK(bad == 0 && area_sum / 20000 > 0.4 && area_sum / 20000 < 0.6, "%dx%d: %d bad boxes, mean area %.3f", h,
              w, bad, area_sum / 20000);
    }
    /* 10 misses on a 4x400 strip: torchvision's fallback, the center crop at ratio 4/3 */
    herd_rng r;
    herd_rng_init(&r, 1, 2);
    int b[4];
    herd_augment_rrc_box(&r, 4, 400, scale, ratio, b);
    CHECK(b[0] == 0 && b[1] == 197 && b[2] == 4 && b[3] == 5, "fallback box %d %d %d %d, expected 0 197 4 5", b[0], b[1],
          b[2], b[3]);
}

static void single_transforms(const herd_dataset *ds) {
    herd_error err = {0};
    float x[PER], orig[PER], tmp[PER];
    sample_f32(ds, 3, orig);
    /* a crop of the whole sample (scale 1, ratio W/H) is the sample */
    herd_loader_config id = {.augment = HERD_AUGMENT_RRC, .rrc_scale = {1, 1}, .rrc_ratio = {(float)W / H, (float)W / H}};
    memcpy(x, orig, sizeof x);
    CHECK(herd_augment_sample(&id, C, H, W, 0, 3, x, tmp, &err) == HERD_OK, "%s", err.msg);
    CHECK(memcmp(x, orig, sizeof x) == 0, "a full-size random_resized_crop changed the sample");
    /* a real crop changes it and stays in [0, 1] */
    herd_loader_config rrc = {.augment = HERD_AUGMENT_RRC, .seed = 4};
    memcpy(x, orig, sizeof x);
    herd_augment_sample(&rrc, C, H, W, 0, 3, x, tmp, &err);
    int in01 = 1;
    for (int i = 0; i < PER; i++) in01 &= x[i] >= 0 && x[i] <= 1.0f;
    CHECK(in01 && memcmp(x, orig, sizeof x) != 0, "random_resized_crop: in [0,1] %d, changed %d", in01,
          memcmp(x, orig, sizeof x) != 0);
    /* brightness alone scales every pixel by one factor in [0.6, 1.4] (then clamps) */
    herd_loader_config br = {.brightness = 0.4f, .seed = 9};
    int ok = 1, clamped = 0;
    for (int64_t s = 0; s < 20; s++) {
        memcpy(x, orig, sizeof x);
        herd_augment_sample(&br, C, H, W, 1, s, x, tmp, &err);
        double f = -1;
        for (int i = 0; i < PER; i++) {
            if (orig[i] < 0.05f) continue;
            if (x[i] >= 1.0f) {
                clamped++;
                continue;
            }
            double g = x[i] / orig[i];
            if (f < 0) f = g;
            ok &= fabs(g - f) < 1e-4 && g >= 0.6 - 1e-6 && g <= 1.4 + 1e-6;
        }
    }
    CHECK(ok && clamped > 0, "brightness: one factor in [0.6, 1.4] per sample %d (clamped %d)", ok, clamped);
    /* saturation leaves gray pixels alone; contrast leaves a flat image alone */
    float g[PER];
    for (int i = 0; i < H * W; i++) g[i] = g[H * W + i] = g[2 * H * W + i] = (float)(i % 17) / 16;
    herd_loader_config sat = {.saturation = 0.9f, .seed = 2};
    memcpy(x, g, sizeof x);
    herd_augment_sample(&sat, C, H, W, 0, 1, x, tmp, &err);
    double dev = 0;
    for (int i = 0; i < PER; i++) dev = fmax(dev, fabs(x[i] - g[i]));
    CHECK(dev < 1e-5, "saturation moved a gray image by %g", dev);
    for (int i = 0; i < PER; i++) g[i] = 0.3f;
    herd_loader_config con = {.contrast = 0.9f, .seed = 2};
    memcpy(x, g, sizeof x);
    herd_augment_sample(&con, C, H, W, 0, 1, x, tmp, &err);
    dev = 0;
    for (int i = 0; i < PER; i++) dev = fmax(dev, fabs(x[i] - g[i]));
    CHECK(dev < 1e-5, "contrast moved a flat image by %g", dev);
    /* normalisation alone: (x - mean) / std per channel, herd_normalize_samples' formula */
    const double mean[3] = {0.485, 0.456, 0.406}, sd[3] = {0.229, 0.224, 0.225};
    herd_loader_config nm = {.mean = mean, .std = sd};
    memcpy(x, orig, sizeof x);
    herd_augment_sample(&nm, C, H, W, 0, 3, x, tmp, &err);
    herd_normalize_samples(orig, 1, C, H * W, mean, sd);
    CHECK(memcmp(x, orig, sizeof x) == 0, "normalisation differs from herd_normalize_samples");
    /* bad settings are refused */
    herd_loader_config bad = {.augment = HERD_AUGMENT_RRC, .rrc_scale = {0.5f, 0.2f}};
    CHECK(herd_augment_check(&bad, C, &err) == HERD_EARG, "scale (0.5, 0.2) accepted");
    herd_loader_config bad2 = {.mean = mean};
    CHECK(herd_augment_check(&bad2, C, &err) == HERD_EARG, "mean without std accepted");
}

/* Every row of EPOCHS epochs through a loader with cfg. */
static herd_status run(const herd_dataset *ds, const herd_loader_config *cfg, float *x, int32_t *y, herd_error *err) {
    herd_loader *l;
    herd_sampler s;
    herd_status st = herd_loader_create(&l, ds, BATCH, cfg, NULL, NULL, err);
    if (st) return st;
    herd_sampler_init(&s, N, 11, 1, err);
    size_t at = 0;
    for (int e = 0; e < EPOCHS && !st; e++) {
        herd_sampler_set_epoch(&s, e);
        st = herd_loader_start_epoch(l, e, s.perm, N, BATCH, 0, err);
        for (int64_t k = 0; k * BATCH < N && !st; k++) {
            int B = N - k * BATCH < BATCH ? (int)(N - k * BATCH) : BATCH;
            st = herd_loader_rows(l, k, 0, B, x + at * PER, y + at, err);
            at += (size_t)B;
        }
    }
    herd_sampler_free(&s);
    herd_loader_destroy(l);
    return st;
}

static void determinism(const herd_dataset *ds) {
    herd_error err = {0};
    size_t total = (size_t)N * EPOCHS;
    float *ref = malloc(total * PER * sizeof(float)), *got = malloc(total * PER * sizeof(float));
    int32_t *ry = malloc(total * sizeof *ry), *gy = malloc(total * sizeof *gy);
    const double mean[3] = {0.485, 0.456, 0.406}, sd[3] = {0.229, 0.224, 0.225};
    herd_loader_config all = {.augment = HERD_AUGMENT_RRC | HERD_AUGMENT_FLIP, .seed = 21, .brightness = 0.4f,
                              .contrast = 0.4f, .saturation = 0.4f, .mean = mean, .std = sd};
    CHECK(run(ds, &all, ref, ry, &err) == HERD_OK, "prefetch 0: %s", err.msg);
    const int settings[][3] = {{1, 1, 0}, {2, 2, 0}, {4, 4, 1}, {0, 0, 1}, {7, 3, 1}}; /* prefetch, threads, cache */
    for (size_t v = 0; v < sizeof settings / sizeof settings[0]; v++) {
        herd_loader_config c = all;
        c.prefetch = settings[v][0], c.threads = settings[v][1], c.cache_bytes = settings[v][2] ? 1u << 20 : 0;
        memset(got, 0, total * PER * sizeof(float));
        CHECK(run(ds, &c, got, gy, &err) == HERD_OK, "setting %zu: %s", v, err.msg);
        CHECK(memcmp(ref, got, total * PER * sizeof(float)) == 0 && memcmp(ry, gy, total * sizeof *ry) == 0,
              "prefetch %d, threads %d, cache %d differs from prefetch 0", settings[v][0], settings[v][1],
              settings[v][2]);
    }
    /* each row is its sample transformed alone, keyed by (seed, epoch, index) */
    herd_sampler s;
    herd_sampler_init(&s, N, 11, 1, &err);
    int alone = 1;
    float x[PER], tmp[PER];
    for (int e = 0; e < EPOCHS; e++) {
        herd_sampler_set_epoch(&s, e);
        for (int i = 0; i < N; i++) {
            sample_f32(ds, s.perm[i], x);
            herd_augment_sample(&all, C, H, W, e, s.perm[i], x, tmp, &err);
            alone &= memcmp(x, ref + ((size_t)e * N + i) * PER, sizeof x) == 0;
        }
    }
    CHECK(alone, "a loaded row differs from its sample transformed alone");
    /* epochs differ */
    CHECK(memcmp(ref, ref + (size_t)N * PER, (size_t)N * PER * sizeof(float)) != 0, "epoch 1 repeats epoch 0");
    herd_sampler_free(&s);
    free(ref), free(got), free(ry), free(gy);
}

int main(void) {
    herd_dataset *ds = make_ds();
    rrc_boxes();
    single_transforms(ds);
    determinism(ds);
    herd_dataset_close(ds);
    return check_summary();
}
