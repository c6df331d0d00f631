/* herd import: an ONNX file imported once, then written as a herd spec (rendered from the built
 * model) and a safetensors weights file. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "cli/options.h"
#include "herd/onnx.h"
#include "io/atomic_file.h"

int cmd_import(int argc, char **argv) {
    const char *spec_out = NULL, *weights_out = NULL;
    cli_option opts[] = {
        {"--spec-out", OPT_STR, &spec_out, 0, 0, "FILE", "write the equivalent model spec here (- for stdout)", 0},
        {"--weights-out", OPT_STR, &weights_out, 0, 0, "FILE", "write the weights (safetensors) here", 0},
        {0},
    };
    static const cli_command cmd = {
        "import", "herd import MODEL.onnx --spec-out MODEL.spec --weights-out W.safetensors",
        "Translate an ONNX model into a herd spec and a weights file (either may be left out).", 1, NULL};
    const char *pos[1];
    int r = cli_parse(argc, argv, 2, opts, &cmd, pos);
    if (r) return r == 1 ? 0 : r;
    if (!spec_out && !weights_out) {
        cli_error("import needs --spec-out FILE and/or --weights-out FILE (usage: %s)", cmd.usage);
        return 2;
    }
    herd_error err = {0};
    herd_model *m = NULL;
    char *text = NULL;
    int rc = 1;
    /* import fully first: a file herd cannot load leaves no spec behind */
    if (herd_model_import_onnx(&m, pos[0], &err)) goto fail;
    if (spec_out) {
        if (herd_model_write_spec(m, &text, &err)) goto fail;
        const void *chunk = text;
        size_t len = strlen(text);
        if (strcmp(spec_out, "-") == 0) {
            fputs(text, stdout);
        } else {
            if (io_write_file_atomic(spec_out, &chunk, &len, 1, NULL, &err)) goto fail;
            printf("wrote %s\n", spec_out);
        }
    }
    if (weights_out) {
        if (herd_model_save(m, weights_out, &err)) goto fail;
        printf("wrote %s\n", weights_out);
    }
    rc = 0;
fail:
    if (rc) cli_error("%s", err.msg);
    free(text);
    herd_model_destroy(m);
    return rc;
}
