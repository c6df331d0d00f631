/* Test helper for tests/test_safetensors_python.py: "write PATH" writes known F32 tensors
 * with herd's writer; "dump PATH" reads a file with herd's reader and prints each tensor. */
#include <stdio.h>
#include <string.h>

#include "herd/io.h"

static const char *dtype_name(herd_dtype d) {
    switch (d) {
    case HERD_F32: return "F32";
    case HERD_I32: return "I32";
    case HERD_I64: return "I64";
    case HERD_U8: return "U8";
    case HERD_F64: return "F64";
    default: return "?";
    }
}

static double element(const herd_tensor_ref *t, int64_t i) {
    switch (t->dtype) {
    case HERD_F32: return ((const float *)t->data)[i];
    case HERD_I32: return ((const int32_t *)t->data)[i];
    case HERD_I64: return (double)((const int64_t *)t->data)[i];
    case HERD_U8: return ((const uint8_t *)t->data)[i];
    case HERD_F64: return ((const double *)t->data)[i];
    default: return 0;
    }
}

/* Values the python side recomputes: beta[i] = i * 0.25 - 3. */
static int write_known(const char *path) {
    static float alpha[3] = {0.0f, 0.5f, -1.25f}, beta[24], gamma = 42.5f, delta[1];
    for (int i = 0; i < 24; i++) beta[i] = (float)i * 0.25f - 3.0f;
    herd_tensor_ref t[] = {
        {"alpha", HERD_F32, 1, {3}, alpha},
        {"beta.weight", HERD_F32, 3, {2, 3, 4}, beta},
        {"gamma", HERD_F32, 0, {0}, &gamma},
        {"delta", HERD_F32, 2, {0, 5}, delta},
    };
    const char *meta[] = {"producer", "herd", "format", "pt"};
    herd_error err = {0};
    if (herd_safetensors_write(path, t, 4, meta, 2, &err) != HERD_OK) {
        fprintf(stderr, "st_tool: %s\n", err.msg);
        return 1;
    }
    return 0;
}

/* One line per tensor: name<TAB>dtype<TAB>d0,d1,..<TAB>sum; then meta<TAB>key<TAB>value for known keys. */
static int dump(const char *path, int argc, char **keys) {
    herd_error err = {0};
    herd_safetensors *st = NULL;
    if (herd_safetensors_open(&st, path, &err) != HERD_OK) {
        fprintf(stderr, "st_tool: %s\n", err.msg);
        return 1;
    }
    for (int i = 0; i < herd_safetensors_count(st); i++) {
        const herd_tensor_ref *t = herd_safetensors_get(st, i);
        int64_t n = 1;
        printf("%s\t%s\t", t->name, dtype_name(t->dtype));
        for (int d = 0; d < t->ndim; d++) {
            printf(d ? ",%lld" : "%lld", (long long)t->shape[d]);
            n *= t->shape[d];
        }
        double sum = 0;
        for (int64_t k = 0; k < n; k++) sum += element(t, k);
        printf("\t%.17g\n", sum);
    }
    for (int k = 0; k < argc; k++) {
        const char *v = herd_safetensors_meta(st, keys[k]);
        printf("meta\t%s\t%s\n", keys[k], v ? v : "(absent)");
    }
    herd_safetensors_close(st);
    return 0;
}

int main(int argc, char **argv) {
    if (argc >= 3 && strcmp(argv[1], "write") == 0) return write_known(argv[2]);
    if (argc >= 3 && strcmp(argv[1], "dump") == 0) return dump(argv[2], argc - 3, argv + 3);
    fprintf(stderr, "usage: st_tool write PATH | st_tool dump PATH [META_KEY...]\n");
    return 2;
}
