/* Steps shared by subcommands: opening and preparing a model (a spec or an ONNX file). */
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"
#include "cli/options.h"
#include "dist/comm.h"
#include "herd/onnx.h"

int cli_is_onnx(const char *path) {
    size_t n = strlen(path);
    return n > 5 && strcmp(path + n - 5, ".onnx") == 0;
}

herd_status cli_load_model(const char *path, uint64_t seed, herd_model **out, herd_error *err) {
    if (cli_is_onnx(path)) return herd_model_import_onnx(out, path, err); /* weights come with it */
    herd_status st = herd_model_load_spec(out, path, err);
    if (st == HERD_OK) herd_model_init_params(*out, seed);
    return st;
}

int cli_open_model(const char *spec, const char *weights, const char *backend, int batch, int threads, uint64_t seed,
                   herd_model **out) {
    herd_error err = {0};
    herd_model *m = NULL;
    if (cli_load_model(spec, seed, &m, &err)) goto fail;
    if (weights && herd_model_load(m, weights, &err)) goto fail;
    if (herd_model_prepare(m, backend, batch, threads, &err)) goto fail;
    const char *notes = herd_model_notes(m);
    if (*notes) fprintf(stderr, "herd: note: %s", notes);
    *out = m;
    return 0;
fail:
    cli_error("%s", err.msg);
    herd_model_destroy(m);
    return 1;
}

herd_status cli_comm_sum(void *ctx, double *buf, int n, herd_error *err) {
    return herd_comm_allreduce_f64(ctx, buf, n, err);
}
