/* herd predict: class and probability for each sample of any data source (or an IDX images
 * file), or every output row written to an NPY file. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "cli/options.h"
#include "herd/data.h"

static const char *fashion_names[] = {"T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                                      "Sandal",      "Shirt",   "Sneaker",  "Bag",   "Ankle boot"};

/* Rows [off, off + B) of the source into the model's input: an IDX images file (pixels) or a
 * dataset (any --data source). */
typedef struct predict_src {
    const uint8_t *pixels; /* --images */
    int64_t per;
    herd_dataset *ds; /* --data */
    int64_t *idx;
    int32_t *labels;
} predict_src;

static herd_status load_rows(predict_src *s, herd_model *m, int64_t off, int B, herd_error *err) {
    float *x = herd_model_batch_buffer(m);
    if (s->pixels) {
        herd_samples_to_f32(HERD_U8, s->pixels + off * s->per, (size_t)B * (size_t)s->per, x); /* as training reads them */
        herd_model_normalize_input(m, B); /* as the weights were trained, if they say so */
        return HERD_OK;
    }
    for (int b = 0; b < B; b++) s->idx[b] = off + b;
    herd_status st = herd_dataset_batch(s->ds, s->idx, B, x, s->labels, err);
    if (!st) herd_model_set_inputs(m, 0, B);
    if (!st) herd_model_normalize_input(m, B);
    return st;
}

int cmd_predict(int argc, char **argv) {
    const char *weights = NULL, *images = NULL, *data = NULL, *split = "test", *out_path = NULL, *output = "probs",
               *backend = "cpu", *precision = "fp32", *names = NULL;
    int batch = 256, threads = 0, limit = 0;
    cli_option opts[] = {
        {"--weights", OPT_STR, &weights, 0, 0, "FILE", "trained weights (safetensors; required unless the model is an .onnx file)", 0},
        {"--data", OPT_STR, &data, 0, 0, "SRC", "what to predict: any source herd train reads (docs/DATA.md)", 0},
        {"--split", OPT_STR, &split, 0, 0, "NAME", "--data: test (default; the train split when there is none) or train", 0},
        {"--images", OPT_STR, &images, 0, 0, "FILE", "or an IDX images file, plain or .gz", 0},
        {"--out", OPT_STR, &out_path, 0, 0, "FILE.npy", "write every output row to a NumPy file (N, outputs) instead of printing", 0},
        {"--output", OPT_STR, &output, 0, 0, "KIND", "probs (softmax of the outputs, default) or logits (the outputs as they are)", 0},
        {"--limit", OPT_INT, &limit, 1, 1e9, "N", "predict only the first N samples", 0},
        {"--class-names", OPT_STR, &names, 0, 0, "LIST", "fashion-mnist, or comma-separated names to print", 0},
        {"--batch", OPT_INT, &batch, 1, 65536, "N", "batch size (default 256)", 0},
        {"--threads", OPT_INT, &threads, 1, 1024, "N", "threads (default: all cores)", 0},
        {"--backend", OPT_STR, &backend, 0, 0, "NAME", "cpu (default) | ref", 0},
        {"--precision", OPT_STR, &precision, 0, 0, "NAME", "fp32 (default) | bf16: conv and dense products in bfloat16 with fp32 accumulation (CPUs with AVX512_BF16)", 0},
        {0},
    };
    static const cli_command cmd = {"predict", "herd predict MODEL --weights FILE (--data SRC | --images FILE.idx) [options]",
                                    "Print 'index<TAB>class<TAB>probability' for each sample (softmax of the outputs), "
                                    "or write every output to an NPY file with --out.",
                                    1, NULL};
    const char *pos[1];
    int r = cli_parse(argc, argv, 2, opts, &cmd, pos);
    if (r) return r == 1 ? 0 : r;
    static const char *const outputs[] = {"probs", "logits", NULL}, *const splits[] = {"test", "train", NULL};
    int logits = cli_choice("--output", output, outputs), want_train = cli_choice("--split", split, splits);
    if (logits < 0 || want_train < 0) return 2;
    if ((!weights && !cli_is_onnx(pos[0])) || !images == !data) {
        cli_error("predict needs --weights FILE and one of --data SRC or --images FILE (usage: %s)", cmd.usage);
        return 2;
    }
    const char *custom[256];
    int n_names = 0;
    char names_buf[4096];
    if (names && strcmp(names, "fashion-mnist") == 0) {
        n_names = 10;
        memcpy(custom, fashion_names, sizeof fashion_names);
    } else if (names) {
        snprintf(names_buf, sizeof names_buf, "%s", names);
        for (char *tok = strtok(names_buf, ","); tok && n_names < 256; tok = strtok(NULL, ",")) custom[n_names++] = tok;
    }
    herd_model *m = NULL;
    herd_dataset *train = NULL, *test = NULL;
    uint8_t *pixels = NULL;
    float *rows = NULL;
    predict_src src = {0};
    herd_error err = {0};
    int rc = cli_open_model(pos[0], weights, backend, precision, batch, cli_threads(threads, 0, 1), 0, CLI_PLAN_INFERENCE, &m);
    if (rc) return rc;
    rc = 1;
    int c, h, w;
    int64_t n;
    herd_model_input_shape(m, &c, &h, &w);
    const char *what = images ? images : data;
    if (images) {
        int ndim;
        int64_t dims[4];
        if (herd_idx_read(images, &pixels, &ndim, dims, &err)) goto fail;
        if (ndim != 3 && ndim != 4) {
            herd_fail(&err, HERD_EFORMAT, "%s: %d dimensions; images are (N,H,W) or (N,C,H,W)", images, ndim);
            goto fail;
        }
        /* one u8 sample: (1,H,W) or (C,H,W), as herd_idx_open gives */
        int64_t sdims[3] = {ndim == 4 ? dims[1] : 1, dims[ndim - 2], dims[ndim - 1]};
        herd_tensor sample = herd_tensor_make(HERD_U8, 3, sdims, NULL);
        if (herd_model_input_count(m) != 1) {
            herd_fail(&err, HERD_ESHAPE, "%s: images feed one input, but the model has %d", images,
                      herd_model_input_count(m));
            goto fail;
        }
        if (herd_data_check_input(&sample, images, c, h, w, &err)) goto fail;
        src.pixels = pixels, src.per = (int64_t)c * h * w, n = dims[0];
    } else {
        herd_image_options shape = {.c = c, .h = h, .w = w, .labels_optional = 1}; /* image sources decode to the model's input; labels unused */
        if (herd_data_open_with(data, &shape, &train, want_train ? NULL : &test, &err)) goto fail;
        src.ds = want_train || !test ? train : test;
        if (!src.ds) {
            herd_fail(&err, HERD_EIO, "%s: no %s split found", data, split);
            goto fail;
        }
        if (herd_model_check_data(m, src.ds, &err)) goto fail;
        src.idx = malloc((size_t)batch * sizeof *src.idx);
        src.labels = malloc((size_t)batch * (herd_tensor_bytes(&src.ds->y) ? herd_tensor_bytes(&src.ds->y) : 1));
        if (!src.idx || !src.labels) {
            herd_fail(&err, HERD_ENOMEM, "out of memory");
            goto fail;
        }
        n = src.ds->n;
    }
    if (limit > 0 && limit < n) n = limit;
    int K = herd_model_output_size(m);
    if (n_names && n_names != K) {
        herd_fail(&err, HERD_EARG, "--class-names gives %d names but the model has %d outputs", n_names, K);
        goto fail;
    }
    if (out_path && !(rows = herd_malloc_array((size_t)(n ? n : 1) * (size_t)K, sizeof *rows))) {
        herd_fail(&err, HERD_ENOMEM, "%s: %lld x %d outputs do not fit in memory", out_path, (long long)n, K);
        goto fail;
    }
    /* the table: a class and its probability per sample, a value (one regression output), or the
     * values of a feature map (C,H,W) in that order; anything else (per-position predictions,
     * several values) goes to --out */
    herd_layer_info last;
    herd_model_layer(m, herd_model_layer_count(m) - 1, &last);
    int classes = herd_model_predicts_classes(m), value = !classes && K == 1, map = !classes && !value && last.ndim == 3;
    if (!out_path && !classes && !value && !map) {
        herd_fail(&err, HERD_EARG, "the model predicts %d values per sample; write them with --out FILE.npy", K);
        goto fail;
    }
    float *pred = herd_malloc_array((size_t)batch * (size_t)K, sizeof *pred);
    if (!pred) {
        herd_fail(&err, HERD_ENOMEM, "out of memory");
        goto fail;
    }
    if (!out_path && map)
        printf("index\tvalues (%lldx%lldx%lld, channel by channel, row by row)\n", (long long)last.dims[0],
               (long long)last.dims[1], (long long)last.dims[2]);
    else if (!out_path)
        printf(value ? "index\tvalue\n" : "index\tclass\tprobability%s\n", n_names ? "\tname" : "");
    for (int64_t off = 0; off < n; off += batch) {
        int B = (int)(n - off < batch ? n - off : batch);
        if (load_rows(&src, m, off, B, &err) || herd_model_forward(m, B, 0, &err)) {
            free(pred);
            goto fail;
        }
        herd_model_predictions(m, B, pred);
        if (rows) {
            memcpy(rows + off * K, logits ? herd_model_output(m) : pred, (size_t)B * (size_t)K * sizeof(float));
            continue;
        }
        for (int b = 0; b < B; b++) {
            const float *p = pred + (int64_t)b * K;
            if (map) {
                printf("%lld", (long long)(off + b));
                for (int k = 0; k < K; k++) printf("\t%.6g", (double)p[k]);
                printf("\n");
                continue;
            }
            if (value) {
                printf("%lld\t%.6g\n", (long long)(off + b), (double)p[0]);
                continue;
            }
            int best = 0;
            float prob = p[0];
            if (K == 1) { /* bce: class 1 when its probability is at least one half */
                best = p[0] >= 0.5f;
                prob = best ? p[0] : 1.0f - p[0];
            } else {
                for (int k = 1; k < K; k++)
                    if (p[k] > p[best]) best = k;
                prob = p[best];
            }
            printf("%lld\t%d\t%.4f%s%s\n", (long long)(off + b), best, (double)prob, n_names ? "\t" : "",
                   n_names && best < n_names ? custom[best] : "");
        }
    }
    free(pred);
    if (rows) {
        herd_layer_info li; /* (N, the output's dims): per-position predictions keep their positions */
        herd_model_layer(m, herd_model_layer_count(m) - 1, &li);
        int64_t dims[5] = {n, K};
        int nd = 2;
        if (li.ndim > 1)
            for (int d = 0; d < li.ndim; d++) dims[1 + d] = li.dims[d], nd = 2 + d;
        if (herd_npy_write_f32(out_path, rows, nd, dims, &err)) goto fail;
        printf("wrote %lld x %d %s of %s to %s\n", (long long)n, K, logits ? "logits" : "probabilities", what, out_path);
    }
    rc = 0;
fail:
    if (rc) cli_error("%s", err.msg);
    free(pixels);
    free(rows);
    free(src.idx);
    free(src.labels);
    herd_dataset_close(train);
    herd_dataset_close(test);
    herd_model_destroy(m);
    return rc;
}
