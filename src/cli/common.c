/* Steps shared by subcommands: opening and preparing a model. */
#include <stdio.h>

#include "cli/cli.h"
#include "cli/options.h"

int cli_open_model(const char *spec, const char *weights, const char *backend, int batch, int threads, uint64_t seed,
                   herd_model **out) {
    herd_error err = {0};
    herd_model *m = NULL;
    if (herd_model_load_spec(&m, spec, &err)) goto fail;
    herd_model_init_params(m, seed);
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
