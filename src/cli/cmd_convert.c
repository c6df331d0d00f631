/* herd convert: any --data source into herd shards (train-0000k-of-0000N.herd, test-... when
 * the source has a test split), memory-mappable and ready to train. */
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"
#include "cli/options.h"
#include "herd/data.h"

int cmd_convert(int argc, char **argv) {
    const char *dtype = "auto", *shape_s = NULL;
    int shards = 1, test_shards = 0;
    cli_option opts[] = {
        {"--shards", OPT_INT, &shards, 1, 99999, "N", "train shards (default 1); shard k holds the contiguous records [n*k/N, n*(k+1)/N)", 0},
        {"--test-shards", OPT_INT, &test_shards, 1, 99999, "N", "test shards (default: as --shards)", 0},
        {"--dtype", OPT_STR, &dtype, 0, 0, "KIND", "auto (u8 when every value is k/255, else f32; default), u8 or f32", 0},
        {"--shape", OPT_STR, &shape_s, 0, 0, "CxHxW", "decode image sources (PNG/JPEG folders, TFRecord) to this shape (default: the first image's)", 0},
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
    herd_image_options shape = {0};
    if (shape_s && (sscanf(shape_s, "%dx%dx%d", &shape.c, &shape.h, &shape.w) != 3 || shape.c <= 0 || shape.h <= 0 ||
                    shape.w <= 0)) {
        cli_error("--shape expects CxHxW (e.g. 1x28x28), found '%s'", shape_s);
        return 2;
    }
    herd_dataset *train = NULL, *test = NULL;
    herd_error err = {0};
    int rc = 1;
    int dt = kind == 1 ? HERD_SHARD_U8 : kind == 2 ? HERD_SHARD_F32 : 0;
    double t0 = herd_now();
    const herd_image_options *opt = shape_s ? &shape : NULL;
    if (herd_data_open_with(pos[0], opt, &train, &test, &err)) {
        /* a test split that is missing or broken leaves the train split to convert */
        herd_error test_err = err;
        if (herd_data_open_with(pos[0], opt, &train, NULL, &err)) goto fail;
        printf("herd: note: converting the train split only (%s)\n", test_err.msg);
    }
    if (herd_shards_write(train, pos[1], "train", shards, dt, &err)) goto fail;
    if (test && herd_shards_write(test, pos[1], "test", test_shards ? test_shards : shards, dt, &err)) goto fail;
    char xs[96];
    printf("herd: wrote %lld train records (%s %s, %d classes) to %s/train-*.herd%s in %.1f s\n",
           (long long)train->n, herd_dtype_name(train->x.dtype), herd_tensor_shape_str(&train->x, xs, sizeof xs),
           train->num_classes, pos[1],
           test ? " and test-*.herd" : "", herd_now() - t0);
    rc = 0;
fail:
    if (rc) cli_error("%s", err.msg);
    herd_dataset_close(train);
    herd_dataset_close(test);
    return rc;
}
