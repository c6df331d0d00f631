/* herd convert: any --data source into herd shards (train-0000k-of-0000N.herd, test-... when
 * the source has a test split), memory-mappable and ready to train. */
#include <glob.h>
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

/* text:FILES (a comma list of files or globs) into one token file */
static int convert_tokens(const char *src, const char *dst, const char *tokenizer, int vocab, int threads) {
    herd_tokens_options o = {.vocab = vocab, .threads = cli_threads(threads, 0, 1)};
    if (!herd_text_tokenizer_parse(tokenizer, &o.tokenizer)) {
        cli_error("--tokenizer expects byte, char or word, found '%s'", tokenizer);
        return 2;
    }
    if (strncmp(src, "text:", 5) || !src[5] || strchr(src, '?')) {
        cli_error("%s: --tokenizer converts text:FILE[,FILE...] (the files, one text, in order; no ?options)", src);
        return 2;
    }
    glob_t g = {0};
    char item[4096];
    for (const char *p = src + 5; *p;) {
        size_t len = strcspn(p, ",");
        if (len >= sizeof item) {
            cli_error("%.200s: path too long", p);
            globfree(&g);
            return 2;
        }
        memcpy(item, p, len);
        item[len] = 0;
        if (len && glob(item, GLOB_NOCHECK | (g.gl_pathc ? GLOB_APPEND : 0), NULL, &g)) {
            cli_error("%s: cannot expand the pattern", item);
            globfree(&g);
            return 1;
        }
        p += len + (p[len] == ',');
    }
    herd_error err = {0};
    herd_tokens_info info;
    double t0 = herd_now();
    int rc = 0;
    if (!g.gl_pathc) {
        cli_error("%s: no files", src);
        rc = 2;
    } else if (herd_tokens_write(dst, (const char *const *)g.gl_pathv, (int)g.gl_pathc, &o, &info, &err)) {
        cli_error("%s", err.msg);
        rc = 1;
    } else {
        double dt = herd_now() - t0;
        printf("herd: wrote %lld %s tokens (vocabulary %d", (long long)info.tokens, tokenizer, info.vocab);
        if (info.unknown) printf(", %lld outside it as the unknown id", (long long)info.unknown);
        printf(") from %zu file%s to %s in %.1f s (%d thread%s)\n", g.gl_pathc, g.gl_pathc == 1 ? "" : "s", dst, dt,
               o.threads, o.threads == 1 ? "" : "s");
    }
    globfree(&g);
    return rc;
}

int cmd_convert(int argc, char **argv) {
    const char *dtype = "auto", *shape_s = NULL, *model = NULL, *tokenizer = NULL;
    int shards = 1, test_shards = 0, threads = 0, resume = 0, skip_bad = 0, vocab = 0, hash_rows = -1;
    cli_option opts[] = {
        {"--shards", OPT_INT, &shards, 1, 99999, "N", "train shards (default 1); shard k holds the contiguous records [n*k/N, n*(k+1)/N)", 0},
        {"--test-shards", OPT_INT, &test_shards, 1, 99999, "N", "test shards (default: as --shards)", 0},
        {"--dtype", OPT_STR, &dtype, 0, 0, "KIND", "auto (default: u8 for image sources and when every value is k/255, else f32), u8 or f32", 0},
        {"--shape", OPT_STR, &shape_s, 0, 0, "CxHxW", "decode image sources (PNG/JPEG folders, TFRecord images) to this shape; images need it or --model", 0},
        {"--model", OPT_STR, &model, 0, 0, "SPEC", "decode image sources to this model's input shape (a spec or .onnx file)", 0},
        {"--threads", OPT_INT, &threads, 1, 1024, "N", "threads reading and decoding samples (default: all cores)", 0},
        {"--resume", OPT_FLAG, &resume, 0, 0, NULL, "keep the shards an interrupted run of the same conversion completed; write the rest", 0},
        {"--tokenizer", OPT_STR, &tokenizer, 0, 0, "KIND", "text:FILES into one token file DST for language models (lm:DST): byte, char (UTF-8 code points) or word", 0},
        {"--vocab", OPT_INT, &vocab, 2, 1 << 30, "N", "with --tokenizer char|word: the N-1 most frequent tokens and one id for the rest (default: every token)", 0},
        {"--hash-rows", OPT_INT, &hash_rows, 0, INT32_MAX, "R", "criteo: sources: hash each categorical feature into R rows (the source's hash=R)", 0},
        {"--skip-bad", OPT_FLAG, &skip_bad, 0, 0, NULL, "leave out samples that cannot be read (each named on stderr) instead of stopping at the first", 0},
        {0},
    };
    static const cli_command cmd = {"convert", "herd convert SRC DST [--shards N] [options]",
                                    "Write a --data source as herd shards in the directory DST (docs/DATA.md).", 2,
                                    NULL};
    const char *pos[2];
    int r = cli_parse(argc, argv, 2, opts, &cmd, pos);
    if (r) return r == 1 ? 0 : r;
    if (tokenizer) return convert_tokens(pos[0], pos[1], tokenizer, vocab, threads);
    if (vocab) {
        cli_error("--vocab goes with --tokenizer");
        return 2;
    }
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
    char src[8192];
    const char *spec = pos[0];
    if (hash_rows >= 0) { /* the source's own option, so that train --data reads the same ids */
        if (strncmp(spec, "criteo:", 7) != 0) {
            cli_error("--hash-rows is for criteo: sources (%s is not one)", spec);
            return 2;
        }
        if (snprintf(src, sizeof src, "%s%chash=%d", spec, strchr(spec, '?') ? '&' : '?', hash_rows) >= (int)sizeof src) {
            cli_error("%.200s: too long", spec);
            return 2;
        }
        spec = src;
    }
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
    if (herd_data_open_with(spec, &shape, &train, &test, &err)) {
        /* a test split that is missing or broken leaves the train split to convert */
        herd_error test_err = err;
        if (herd_data_open_with(spec, &shape, &train, NULL, &err)) goto fail;
        printf("herd: note: converting the train split only (%s)\n", test_err.msg);
    }
    if (herd_shards_write(train, pos[1], "train", shards, &wo, &err)) goto fail;
    int64_t train_records = ui.records;
    if (test && herd_shards_write(test, pos[1], "test", test_shards ? test_shards : shards, &wo, &err)) goto fail;
    double dt = herd_now() - t0;
    char xs[96], fields[HERD_MAX_FIELDS * 100] = "";
    for (int k = 0, at = 0; k < herd_dataset_field_count(train); k++) { /* "f32 13 + i32 26" */
        const herd_tensor *t = herd_dataset_field(train, k);
        at += snprintf(fields + at, sizeof fields - (size_t)at, "%s%s %s", k ? " + " : "", herd_dtype_name(t->dtype),
                       herd_tensor_shape_str(t, xs, sizeof xs));
    }
    printf("herd: wrote %lld train records (%s, %d classes) to %s/train-*.herd%s in %.1f s (%.0f samples/s, "
           "%d thread%s)%s\n", (long long)train_records, fields, train->num_classes, pos[1], test ? " and test-*.herd" : "",
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
