/* data_dump SPEC [C H W]: opens a --data source (with an optional model input shape) and
 * prints, per split, n, the samples' stored dtype and dims, classes, the sum of all values
 * (as the model's f32 input) in sample order
 * (double, %.17g), the first sample's first values and the first labels, so that tests can
 * compare a reader with what Python wrote. Errors: one line on stderr, exit 1. */
#include <stdio.h>
#include <stdlib.h>

#include "herd/data.h"
#include "sample_check.h"

static int dump(const char *name, const herd_dataset *ds) {
    if (!ds) {
        printf("%s none\n", name);
        return 0;
    }
    size_t sample = (size_t)herd_tensor_numel(&ds->x);
    float *x = malloc(sample * sizeof *x);
    if (!x) return 1;
    double sum = 0;
    long long label_sum = 0;
    char first[256] = "";
    herd_error err = {0};
    char shape[96];
    printf("%s n=%lld x=%s %s classes=%d\n%s labels=", name, (long long)ds->n, herd_dtype_name(ds->x.dtype),
           herd_tensor_shape_str(&ds->x, shape, sizeof shape), ds->num_classes, name);
    for (int64_t i = 0; i < ds->n; i++) {
        int32_t y;
        if (get_f32(ds, i, x, &y, &err) != HERD_OK) {
            fprintf(stderr, "data_dump: %s\n", err.msg);
            free(x);
            return 1;
        }
        for (size_t k = 0; k < sample; k++) sum += x[k];
        label_sum += y;
        if (i < 20) printf("%s%d", i ? " " : "", y);
        for (size_t k = 0, at = 0; i == 0 && k < sample && k < 8; k++)
            at += (size_t)snprintf(first + at, sizeof first - at, "%s%.9g", k ? " " : "", (double)x[k]);
    }
    printf("\n%s label_sum=%lld\n%s sum=%.17g\n%s first=%s\n", name, label_sum, name, sum, name, first);
    free(x);
    return 0;
}

int main(int argc, char **argv) {
    if (argc != 2 && argc != 5) {
        fprintf(stderr, "usage: data_dump SPEC [C H W]\n");
        return 2;
    }
    herd_image_options o = {0};
    if (argc == 5) o.c = atoi(argv[2]), o.h = atoi(argv[3]), o.w = atoi(argv[4]);
    herd_dataset *tr = NULL, *te = NULL;
    herd_error err = {0};
    if (herd_data_open_with(argv[1], &o, &tr, &te, &err) != HERD_OK) {
        fprintf(stderr, "data_dump: %s\n", err.msg);
        return 1;
    }
    int rc = dump("train", tr) || dump("test", te);
    herd_dataset_close(tr);
    herd_dataset_close(te);
    return rc;
}
