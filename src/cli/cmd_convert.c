/* herd convert: any --data source into herd shards (train-0000k-of-0000N.herd, test-... when
 * the source has a test split), memory-mappable and ready to train. */
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"
#include "cli/options.h"
#include "herd/data.h"

typedef struct convert_ui {
    int64_t skipped, kept, records;
} convert_ui;

static void on_skip(void *ctx, const herd_error *why) {
    convert_ui *ui = ctx;
    ui->skipped++;
    fprintf(stderr, "herd: skipped (--skip-bad): %s\n", why->msg);
}

static void on_shard(void *ctx, const char *path, int64_t records, int kept) {
    convert_ui *ui = ctx;
    ui->records += records;
    if (kept) {
        ui->kept++;
        printf("herd: kept %s (%lld records, complete from an earlier run)\n", path, (long long)records);
    }
}

int cmd_convert(int argc, char **argv) {
    const char *dtype = "auto", *shape_s = NULL, *model = NULL;
    int shards = 1, test_shards = 0, threads = 0, resume = 0, skip_bad = 0;
    cli_option opts[] = {
        {"--shards", OPT_INT, &shards, 1, 99999, "N", "train shards (default 1); shard k holds the contiguous records [n*k/N, n*(k+1)/N)", 0},
        {"--test-shards", OPT_INT, &test_shards, 1, 99999, "N", "test shards (default: as --shards)", 0},
        {"--dtype", OPT_STR, &dtype, 0, 0, "KIND", "auto (default: u8 for image sources and when every value is k/255, else f32), u8 or f32", 0},
        {"--shape", OPT_STR, &shape_s, 0, 0, "CxHxW", "decode image sources (PNG/JPEG folders, TFRecord images) to this shape; images need it or --model", 0},
        {"--model", OPT_STR, &model, 0, 0, "SPEC", "decode image sources to this model's input shape (a spec or .onnx file)", 0},
        {"--threads", OPT_INT, &threads, 1, 1024, "N", "threads reading and decoding samples (default: all cores)", 0},
        {"--resume", OPT_FLAG, &resume, 0, 0, NULL, "keep the shards an interrupted run of the same conversion completed; write the rest", 0},
        {"--skip-bad", OPT_FLAG, &skip_bad, 0, 0, NULL, "leave out samples that cannot be read (each named on stderr) instead of stopping at the first", 0},
        {0},
    };
    static const cli_command cmd = {"convert", "herd convert SRC DST [--shards N] [options]",
                                    "Write a --data source as herd shards in the directory DST (docs/DATA.md).", 2,
                                    NULL};
    const char *pos[2];
    int r = cli_parse(argc, argv, 2, opts, &cmd, pos);
    if (r) return r == 1 ? 0 : r;
    static const char *const dtypes[] = {"auto", "u8", "f32", NULL};
    int kind = cli_choice("--dtype", dtype, dtypes);
    if (kind < 0) return 2;
    herd_image_options shape = {.need_shape = 1}; /* never the first image's size */
    if (shape_s && (sscanf(shape_s, "%dx%dx%d", &shape.c, &shape.h, &shape.w) != 3 || shape.c <= 0 || shape.h <= 0 ||
                    shape.w <= 0)) {
        cli_error("--shape expects CxHxW (e.g. 3x224x224), found '%s'", shape_s);
        return 2;
    }
    if (shape_s && model) {
        cli_error("give --shape or --model, not both");
        return 2;
    }
    herd_dataset *train = NULL, *test = NULL;
    herd_error err = {0};
    if (model) {
        herd_model *m = NULL;
        if (cli_load_model(model, 0, &m, &err)) {
            cli_error("%s", err.msg);
            return 1;
        }
        herd_model_input_shape(m, &shape.c, &shape.h, &shape.w);
        herd_model_destroy(m);
    }
    int rc = 1;
    convert_ui ui = {0};
    herd_shard_write_options wo = {.dtype = kind == 1 ? HERD_SHARD_U8 : kind == 2 ? HERD_SHARD_F32 : 0,
                                   .threads = cli_threads(threads, 0, 1), .resume = resume, .skip_bad = skip_bad,
                                   .on_skip = on_skip, .on_shard = on_shard, .ctx = &ui};
    double t0 = herd_now();
    if (herd_data_open_with(pos[0], &shape, &train, &test, &err)) {
        /* a test split that is missing or broken leaves the train split to convert */
        herd_error test_err = err;
        if (herd_data_open_with(pos[0], &shape, &train, NULL, &err)) goto fail;
        printf("herd: note: converting the train split only (%s)\n", test_err.msg);
    }
    if (herd_shards_write(train, pos[1], "train", shards, &wo, &err)) goto fail;
    int64_t train_records = ui.records;
    if (test && herd_shards_write(test, pos[1], "test", test_shards ? test_shards : shards, &wo, &err)) goto fail;
    double dt = herd_now() - t0;
    char xs[96];
    printf("herd: wrote %lld train records (%s %s, %d classes) to %s/train-*.herd%s in %.1f s (%.0f samples/s, "
           "%d thread%s)%s\n", (long long)train_records, herd_dtype_name(train->x.dtype),
           herd_tensor_shape_str(&train->x, xs, sizeof xs), train->num_classes, pos[1], test ? " and test-*.herd" : "",
           dt, (double)(train->n + (test ? test->n : 0)) / (dt > 0 ? dt : 1e-9), wo.threads, wo.threads == 1 ? "" : "s",
           ui.kept ? " (resumed)" : "");
    if (ui.skipped) printf("herd: left out %lld samples that could not be read (--skip-bad)\n", (long long)ui.skipped);
    rc = 0;
fail:
    if (rc && strstr(err.msg, "without a sample shape"))
        cli_error("%s: give --shape CxHxW or --model SPEC", err.msg);
    else if (rc)
        cli_error("%s", err.msg);
    herd_dataset_close(train);
    herd_dataset_close(test);
    return rc;
}
