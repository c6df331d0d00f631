/* herd export: a model (spec + weights, or random init from a seed) written as ONNX, and/or its
 * weights as safetensors (the random init another framework starts from, bench/gpt_converge). */
#include <stdio.h>

#include "cli/cli.h"
#include "cli/options.h"
#include "herd/onnx.h"

int cmd_export(int argc, char **argv) {
    const char *weights = NULL, *onnx = NULL, *safetensors = NULL;
    uint64_t seed = 0;
    cli_option opts[] = {
        {"--weights", OPT_STR, &weights, 0, 0, "FILE",
         "weights (safetensors) to export; default: random init from --seed", 0},
        {"--onnx", OPT_STR, &onnx, 0, 0, "FILE", "the ONNX file to write (required)", 0},
        {"--safetensors", OPT_STR, &safetensors, 0, 0, "FILE",
         "also (or only) write the weights as safetensors under herd's names (e.g. the init from --seed)", 0},
        {"--seed", OPT_U64, &seed, 0, 0, "N", "seed for the random init when no --weights are given (default 0)", 0},
        {0},
    };
    static const cli_command cmd = {"export", "herd export MODEL.spec [--weights FILE | --seed N] [--onnx OUT.onnx] [--safetensors OUT]",
                                    "Write the model and its weights as an ONNX file (opset 13), or its weights as safetensors.", 1, NULL};
    const char *pos[1];
    int r = cli_parse(argc, argv, 2, opts, &cmd, pos);
    if (r) return r == 1 ? 0 : r;
    if (!onnx && !safetensors) {
        cli_error("export needs --onnx FILE or --safetensors FILE (usage: %s)", cmd.usage);
        return 2;
    }
    herd_error err = {0};
    herd_model *m = NULL;
    int rc = 1;
    if (cli_load_model(pos[0], seed, &m, &err)) goto fail;
    if (weights && herd_model_load(m, weights, &err)) goto fail;
    if (onnx && herd_model_export_onnx(m, onnx, &err)) goto fail;
    if (onnx) printf("wrote %s\n", onnx);
    if (safetensors && herd_model_save(m, safetensors, &err)) goto fail;
    if (safetensors) printf("wrote %s\n", safetensors);
    rc = 0;
fail:
    if (rc) cli_error("%s", err.msg);
    herd_model_destroy(m);
    return rc;
}
