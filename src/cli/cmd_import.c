/* herd import: an ONNX file imported once, then written as a herd spec (rendered from the built
 * model) and a safetensors weights file. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "cli/options.h"
#include "herd/onnx.h"
#include "io/atomic_file.h"

/* --check: each refusal on its own line of stdout */
static void print_refusal(void *ctx, const char *line) {
    (void)ctx;
    printf("refused: %s\n", line);
}

/* herd import --check: what would be refused and why, nothing written; exit 0 when the file
 * would import, 1 when not */
static int check_only(const char *path) {
    herd_error err = {0};
    herd_onnx_check_result res;
    herd_status st = herd_onnx_check(path, print_refusal, NULL, &res, &err);
    if (!st) {
        printf("%s: imports: %d ONNX nodes as %d herd layers, %lld trainable parameters\n", path, res.nodes,
               res.layers, (long long)res.params);
        return 0;
    }
    if (res.refused || res.unchecked || res.nodes)
        printf("%s: would be refused: %d node%s refused, %d after them not checked, of %d\n", path, res.refused,
               res.refused == 1 ? "" : "s", res.unchecked, res.nodes);
    cli_error("%s", err.msg);
    return 1;
}

int cmd_import(int argc, char **argv) {
    const char *spec_out = NULL, *weights_out = NULL;
    int check = 0;
    cli_option opts[] = {
        {"--spec-out", OPT_STR, &spec_out, 0, 0, "FILE", "write the equivalent model spec here (- for stdout)", 0},
        {"--weights-out", OPT_STR, &weights_out, 0, 0, "FILE", "write the weights (safetensors) here", 0},
        {"--check", OPT_FLAG, &check, 0, 0, NULL,
         "only say whether the file imports: every node herd would refuse, one per line, and why (writes nothing)", 0},
        {0},
    };
    static const cli_command cmd = {
        "import", "herd import MODEL.onnx --spec-out MODEL.spec --weights-out W.safetensors | --check",
        "Translate an ONNX model into a herd spec and a weights file (either may be left out), or check it.", 1, NULL};
    const char *pos[1];
    int r = cli_parse(argc, argv, 2, opts, &cmd, pos);
    if (r) return r == 1 ? 0 : r;
    if (check) {
        if (spec_out || weights_out) {
            cli_error("import --check writes nothing: leave out --spec-out and --weights-out (usage: %s)", cmd.usage);
            return 2;
        }
        return check_only(pos[0]);
    }
    if (!spec_out && !weights_out) {
        cli_error("import needs --spec-out FILE and/or --weights-out FILE, or --check (usage: %s)", cmd.usage);
        return 2;
    }
    herd_error err = {0};
    herd_model *m = NULL;
    char *text = NULL;
    int rc = 1;
    /* import fully first: a file herd cannot load leaves no spec behind; then the weights, the
     * large file (a full disk stops there, before the spec is replaced), then the spec */
    if (herd_model_import_onnx(&m, pos[0], &err)) goto fail;
    if (spec_out && herd_model_write_spec(m, &text, &err)) goto fail;
    if (weights_out) {
        if (herd_model_save(m, weights_out, &err)) goto fail;
        printf("wrote %s\n", weights_out);
    }
    if (spec_out) {
        const void *chunk = text;
        size_t len = strlen(text);
        if (strcmp(spec_out, "-") == 0) {
            fputs(text, stdout);
        } else {
            if (herdi_io_write_file_atomic(spec_out, &chunk, &len, 1, NULL, &err)) goto fail;
            printf("wrote %s\n", spec_out);
        }
    }
    rc = 0;
fail:
    if (rc) cli_error("%s", err.msg);
    free(text);
    herd_model_destroy(m);
    return rc;
}
