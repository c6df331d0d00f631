/* herd eval: accuracy and loss of trained weights on a dataset's test (or train) split. */
#include <stdlib.h>
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"
#include "cli/options.h"
#include "herd/data.h"
#include "herd/train.h"

int cmd_eval(int argc, char **argv) {
    const char *data = "fashion-mnist", *weights = NULL, *split = "test", *backend = "cpu", *precision = "fp32";
    int batch = 1000, threads = 0;
    cli_option opts[] = {
        {"--weights", OPT_STR, &weights, 0, 0, "FILE", "trained weights (safetensors; required unless the model is an .onnx file)", 0},
        {"--data", OPT_STR, &data, 0, 0, "SRC", "fashion-mnist (default), mnist, or a directory, file or SQL query (docs/DATA.md)", 0},
        {"--split", OPT_STR, &split, 0, 0, "NAME", "test (default) or train", 0},
        {"--batch", OPT_INT, &batch, 1, 65536, "N", "evaluation batch size (default 1000)", 0},
        {"--threads", OPT_INT, &threads, 1, 1024, "N", "threads (default: all cores)", 0},
        {"--backend", OPT_STR, &backend, 0, 0, "NAME", "cpu (default) | ref", 0},
        {"--precision", OPT_STR, &precision, 0, 0, "NAME", "fp32 (default) | bf16: conv and dense products in bfloat16 with fp32 accumulation (CPUs with AVX512_BF16)", 0},
        {0},
    };
    static const cli_command cmd = {"eval", "herd eval MODEL.spec --weights FILE [--data SRC] [options]",
                                    "Print the loss and accuracy of trained weights on a dataset.", 1, NULL};
    const char *pos[1];
    int r = cli_parse(argc, argv, 2, opts, &cmd, pos);
    if (r) return r == 1 ? 0 : r;
    if (!weights && !cli_is_onnx(pos[0])) {
        cli_error("eval needs --weights FILE (usage: %s)", cmd.usage);
        return 2;
    }
    static const char *const splits[] = {"test", "train", NULL};
    if (cli_choice("--split", split, splits) < 0) return 2;
    herd_model *m = NULL;
    herd_dataset *train = NULL, *test = NULL, *raw = NULL;
    herd_error err = {0};
    int rc = cli_open_model(pos[0], weights, backend, precision, batch, cli_threads(threads, 0, 1), 0, CLI_PLAN_INFERENCE, &m);
    if (rc) return rc;
    rc = 1;
    int want_test = strcmp(split, "test") == 0;
    herd_image_options shape = {0}; /* image sources decode to the model's input */
    herd_model_input_shape(m, &shape.c, &shape.h, &shape.w);
    if (herd_data_open_with(data, &shape, want_test ? NULL : &train, want_test ? &test : NULL, &err)) goto fail;
    herd_dataset *ds = want_test ? test : train;
    if (!ds) {
        herd_fail(&err, HERD_EIO, "%s: no %s split found", data, split);
        goto fail;
    }
    if (herd_model_check_data(m, ds, &err)) goto fail;
    herd_dataset **sets[1] = {&ds};
    if (cli_apply_model_norm(m, sets, &raw, 1, 0, &err)) goto fail;
    double t0 = herd_now();
    herd_metrics *acc = malloc(sizeof *acc);
    if (!acc) {
        herd_fail(&err, HERD_ENOMEM, "out of memory");
        goto fail;
    }
    herd_status st = herd_evaluate(m, ds, batch, NULL, acc, &err);
    double secs = herd_now() - t0;
    char text[128];
    if (!st) {
        cli_metrics_text(m, acc, "  ", text, sizeof text);
        printf("%s%sloss: %.4f  (%lld samples of %s, %.0f samples/s)\n", text, text[0] ? "  " : "", herd_metrics_loss(acc), (long long)ds->n, ds->source,
               ds->n / (secs > 0 ? secs : 1e-9));
    }
    free(acc);
    if (st) goto fail;
    rc = 0;
fail:
    if (rc) cli_error("%s", err.msg);
    if (raw) herd_dataset_close(ds); /* the normalised view; its base is train or test */
    if (train) herd_dataset_close(train);
    if (test) herd_dataset_close(test);
    herd_model_destroy(m);
    return rc;
}
