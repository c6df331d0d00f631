/* parquet_check DIR: for each line of DIR/manifest.tsv (SPEC, expected columns, dtype, expected
 * labels; written by tests/parquet/write.cjs) opens parquet:DIR/SPEC and compares every sample
 * with the values the writer was given (DIR/<column>.f64, float64 row-major): u8 samples
 * exactly, f32 samples as (float) of the value, labels exactly (f32 targets as (float) of the
 * value). Prints one line per case and
 * "N passed, M failed"; exit 1 when any failed. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "herd/data.h"

typedef struct expect {
    double *v;
    long n; /* values */
} expect;

static int load(const char *dir, const char *name, expect *e) {
    char p[4096];
    snprintf(p, sizeof p, "%s/%s.f64", dir, name);
    FILE *f = fopen(p, "rb");
    if (!f) return 0;
    fseek(f, 0, SEEK_END);
    long bytes = ftell(f);
    fseek(f, 0, SEEK_SET);
    e->v = malloc((size_t)bytes + 8);
    e->n = bytes / 8;
    int ok = e->v && fread(e->v, 8, (size_t)e->n, f) == (size_t)e->n;
    fclose(f);
    return ok;
}

/* One case: 1 when every value matches. */
static int check(const char *dir, char *spec, char *cols, const char *dtype, const char *labels) {
    char full[8192];
    snprintf(full, sizeof full, "parquet:%s/%s", dir, spec);
    herd_dataset *ds = NULL;
    herd_error err = {0};
    if (herd_data_open_with(full, NULL, &ds, NULL, &err) != HERD_OK) {
        printf("FAIL %s: open: %s\n", spec, err.msg);
        return 0;
    }
    expect ex[16], lab = {0};
    int ncols = 0, ok = 1;
    long width[16], F = 0;
    for (char *c = strtok(cols, ","); c && ncols < 16; c = strtok(NULL, ",")) {
        if (!load(dir, c, &ex[ncols])) {
            printf("FAIL %s: cannot read %s.f64\n", spec, c);
            return 0;
        }
        width[ncols] = ex[ncols].n / ds->n;
        F += width[ncols++];
    }
    if (!load(dir, labels, &lab) || lab.n != ds->n) {
        printf("FAIL %s: %ld expected labels for %lld samples\n", spec, lab.n, (long long)ds->n);
        return 0;
    }
    int u8 = strcmp(dtype, "u8") == 0;
    if (herd_tensor_numel(&ds->x) != F || ds->x.dtype != (u8 ? HERD_U8 : HERD_F32)) {
        printf("FAIL %s: samples of %lld values, dtype %s; expected %ld, %s\n", spec,
               (long long)herd_tensor_numel(&ds->x), herd_dtype_name(ds->x.dtype), F, dtype);
        ok = 0;
    }
    void *x = malloc((size_t)F * 4 + 4);
    long mismatches = 0;
    for (int64_t i = 0; ok && i < ds->n; i++) {
        int32_t y;
        if (herd_dataset_get(ds, i, x, &y, &err) != HERD_OK) {
            printf("FAIL %s: sample %lld: %s\n", spec, (long long)i, err.msg);
            ok = 0;
            break;
        }
        long at = 0;
        for (int c = 0; c < ncols; c++)
            for (long j = 0; j < width[c]; j++, at++) {
                double want = ex[c].v[i * width[c] + j];
                double got = u8 ? ((uint8_t *)x)[at] : ((float *)x)[at];
                if (got != (u8 ? want : (double)(float)want) && mismatches++ < 5)
                    printf("  %s: sample %lld value %ld: read %.9g, written %.9g\n", spec, (long long)i, at, got, want);
            }
        float t;
        memcpy(&t, &y, sizeof t);
        if (ds->y.dtype == HERD_F32 ? t != (float)lab.v[i] : y != (int32_t)lab.v[i]) {
            if (mismatches++ < 5)
                printf("  %s: sample %lld: label %d (as f32 %.9g), written %.9g\n", spec, (long long)i, y, t, lab.v[i]);
        }
    }
    if (mismatches) ok = 0;
    printf("%s %s: %lld samples of %ld %s values, %ld mismatches\n", ok ? "ok" : "FAIL", spec, (long long)ds->n, F,
           dtype, mismatches);
    for (int c = 0; c < ncols; c++) free(ex[c].v);
    free(lab.v);
    free(x);
    herd_dataset_close(ds);
    return ok;
}

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: parquet_check DIR\n");
        return 2;
    }
    char p[4096], line[8192];
    snprintf(p, sizeof p, "%s/manifest.tsv", argv[1]);
    FILE *f = fopen(p, "r");
    if (!f) {
        fprintf(stderr, "parquet_check: cannot open %s\n", p);
        return 2;
    }
    int passed = 0, failed = 0;
    while (fgets(line, sizeof line, f)) {
        line[strcspn(line, "\n")] = 0;
        char *spec = strtok(line, "\t"), *cols = strtok(NULL, "\t"), *dtype = strtok(NULL, "\t"),
             *labels = strtok(NULL, "\t");
        if (!spec || !cols || !dtype || !labels) continue;
        char colbuf[1024];
        snprintf(colbuf, sizeof colbuf, "%s", cols);
        if (check(argv[1], spec, colbuf, dtype, labels)) passed++;
        else failed++;
    }
    fclose(f);
    printf("%d passed, %d failed\n", passed, failed);
    return failed || !passed ? 1 : 0;
}
