/* How many samples the loader's --cache holds: one epoch of SRC through a loader with a cache
 * of CACHE_MB MiB, then the samples cached, the bytes allocated and the bytes per sample. For
 * a 3x224x224 u8 source (issue 21: "--cache stores float32, 602 KB per image") this shows
 * the u8 cache holding 4x the images of the f32 one. Uses only the loader's public API, so
 * the same file builds against an older libherd for a before/after comparison.
 * usage: cache_fill SRC [CACHE_MB=1024]   (SRC: any --data source of samples up to 1M values,
 * e.g. a (N,3,224,224) u8 .npy with N above what the budget holds) */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "herd/data.h"

static void print_cpu(void) {
    char line[512];
    FILE *f = fopen("/proc/cpuinfo", "r");
    while (f && fgets(line, sizeof line, f))
        if (strncmp(line, "model name", 10) == 0) {
            printf("cpu: %s", strchr(line, ':') ? strchr(line, ':') + 2 : line);
            break;
        }
    if (f) fclose(f);
}

int main(int argc, char **argv) {
    if (argc < 2 || argc > 3) {
        fprintf(stderr, "usage: cache_fill SRC [CACHE_MB=1024]\n");
        return 2;
    }
    double mb = argc > 2 ? atof(argv[2]) : 1024;
    herd_dataset *ds = NULL;
    herd_loader *l = NULL;
    herd_sampler s;
    herd_error err = {0};
    if (herd_data_open(argv[1], &ds, NULL, &err)) goto fail;
    enum { BATCH = 8, MAX_SAMPLE = 1 << 20 }; /* samples of up to 1M values (3x224x224 is 150528) */
    int64_t n = ds->n;
    float *x = malloc((size_t)BATCH * MAX_SAMPLE * sizeof *x);
    int32_t y[BATCH];
    herd_loader_config cfg = {.prefetch = 0, .cache_bytes = (size_t)(mb * 1048576.0)};
    if (!x || herd_loader_create(&l, ds, BATCH, &cfg, NULL, NULL, &err) || herd_sampler_init(&s, n, 1, 0, &err))
        goto fail;
    herd_sampler_set_epoch(&s, 0);
    if (herd_loader_start_epoch(l, 0, s.perm, n, BATCH, 0, &err)) goto fail;
    for (int64_t k = 0; k * BATCH < n; k++) {
        int B = n - k * BATCH < BATCH ? (int)(n - k * BATCH) : BATCH;
        if (herd_loader_rows(l, k, 0, B, x, y, &err)) goto fail;
    }
    int64_t cached = herd_loader_cached_samples(l);
    size_t bytes = herd_loader_cache_bytes(l), index = (size_t)n * sizeof(int);
    print_cpu();
    printf("cache_fill: source=%s samples=%lld cache_mb=%g cached_samples=%lld cache_bytes=%zu "
           "bytes_per_sample=%.0f%s\n",
           ds->source, (long long)n, mb, (long long)cached, bytes,
           cached ? (double)(bytes - index) / (double)cached : 0.0,
           cached == n ? " (every sample: give a larger source to fill the budget)" : "");
    herd_sampler_free(&s);
    herd_loader_destroy(l);
    herd_dataset_close(ds);
    free(x);
    return 0;
fail:
    fprintf(stderr, "cache_fill: %s\n", err.msg);
    herd_loader_destroy(l);
    herd_dataset_close(ds);
    return 1;
}
