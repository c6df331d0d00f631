/* herd_resample's AVX-512 passes (data/resample.c: vertical, horizontal 16 or 8 outputs at a time,
 * RGB rows split into planes, rounding to u8) give the scalar loops' bits: the same resamplings
 * hashed with and without HERD_CPU=avx2 (which keeps herd on the scalar loops) must agree. Float
 * planes (3 and 1) and u8 pixels (RGB and gray), enlarging (random_resized_crop's case),
 * shrinking (up to ~3x in vectors, wider taps per block in the scalar loop) and fractional
 * regions at the image's edges. Skipped (77) on CPUs without AVX-512. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "data/resample.h"

static unsigned long long hash = 1469598103934665603ULL;

static void mix(const void *p, size_t n) {
    const unsigned char *b = p;
    for (size_t i = 0; i < n; i++) hash = (hash ^ b[i]) * 1099511628211ULL;
}

static void hash_cases(void) {
    srand(7);
    herd_error err;
    for (int t = 0; t < 600; t++) {
        int planes = t % 3 == 2 ? 1 : 3, sw = 1 + rand() % 240, sh = 1 + rand() % 240;
        int dw = t % 2 ? 224 : 1 + rand() % 240, dh = t % 2 ? 224 : 1 + rand() % 240;
        double x0 = (rand() % (sw * 4)) / 4.0, y0 = (rand() % (sh * 4)) / 4.0;
        double x1 = x0 + (1 + rand() % (sw * 4)) / 4.0, y1 = y0 + (1 + rand() % (sh * 4)) / 4.0;
        x1 = x1 > sw ? sw : x1, y1 = y1 > sh ? sh : y1;
        size_t n = (size_t)planes * sw * sh, m = (size_t)planes * dw * dh;
        float *src = malloc(n * sizeof *src), *dst = malloc(m * sizeof *dst);
        uint8_t *u = malloc(n), *ud = malloc(m);
        CHECK(src && dst && u && ud, "out of memory");
        for (size_t i = 0; i < n; i++) u[i] = (uint8_t)(rand() % 256), src[i] = u[i] / 255.0f;
        CHECK(herd_resample(dst, dw, dh, src, sw, sh, planes, x0, y0, x1, y1, &err) == HERD_OK, "%s", err.msg);
        mix(dst, m * sizeof *dst);
        CHECK(herd_resample_u8(ud, dw, dh, u, sw, sh, planes, x0, y0, x1, y1, &err) == HERD_OK, "%s", err.msg);
        mix(ud, m);
        free(src), free(dst), free(u), free(ud);
    }
}

int main(int argc, char **argv) {
    if (argc > 1 && !strcmp(argv[1], "--hash")) {
        hash_cases();
        printf("%016llx\n", hash);
        return check_summary() ? 1 : 0;
    }
    if (!__builtin_cpu_supports("avx512f")) return 77;
    char cmd[4200], got[2][64] = {"", ""};
    for (int k = 0; k < 2; k++) {
        snprintf(cmd, sizeof cmd, "%s '%s' --hash", k ? "env HERD_CPU=avx2" : "env -u HERD_CPU", argv[0]);
        FILE *f = popen(cmd, "r");
        CHECK(f && fgets(got[k], sizeof got[k], f), "running %s", cmd);
        CHECK(f && pclose(f) == 0, "%s failed", cmd);
    }
    CHECK(got[0][0] && strcmp(got[0], got[1]) == 0, "AVX-512 pass %s differs from the scalar loop's %s", got[0], got[1]);
    printf("resample paths: %s", got[0]);
    return check_summary();
}
