/* herd predict: class and probability for each image of an IDX file. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "cli/options.h"
#include "herd/data.h"

static const char *fashion_names[] = {"T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                                      "Sandal",      "Shirt",   "Sneaker",  "Bag",   "Ankle boot"};

int cmd_predict(int argc, char **argv) {
    const char *weights = NULL, *images = NULL, *backend = "cpu", *names = NULL;
    int batch = 256, threads = 0, limit = 0;
    cli_option opts[] = {
        {"--weights", OPT_STR, &weights, 0, 0, "FILE", "trained weights (safetensors; required unless the model is an .onnx file)", 0},
        {"--images", OPT_STR, &images, 0, 0, "FILE", "IDX images file, plain or .gz (required)", 0},
        {"--limit", OPT_INT, &limit, 1, 1e9, "N", "predict only the first N images", 0},
        {"--class-names", OPT_STR, &names, 0, 0, "LIST", "fashion-mnist, or comma-separated names to print", 0},
        {"--batch", OPT_INT, &batch, 1, 65536, "N", "batch size (default 256)", 0},
        {"--threads", OPT_INT, &threads, 1, 1024, "N", "threads (default: all cores)", 0},
        {"--backend", OPT_STR, &backend, 0, 0, "NAME", "cpu (default) | ref", 0},
        {0},
    };
    static const cli_command cmd = {"predict", "herd predict MODEL.spec --weights FILE --images FILE.idx [options]",
                                    "Print 'index<TAB>class<TAB>probability' for each image (softmax of the outputs).",
                                    1, NULL};
    const char *pos[1];
    int r = cli_parse(argc, argv, 2, opts, &cmd, pos);
    if (r) return r == 1 ? 0 : r;
    if ((!weights && !cli_is_onnx(pos[0])) || !images) {
        cli_error("predict needs --weights FILE and --images FILE (usage: %s)", cmd.usage);
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
    uint8_t *pixels = NULL;
    float *probs = NULL;
    herd_error err = {0};
    int rc = cli_open_model(pos[0], weights, backend, batch, cli_threads(threads, 0), 0, CLI_PLAN_INFERENCE, &m);
    if (rc) return rc;
    rc = 1;
    int ndim, c, h, w;
    int64_t dims[4];
    if (herd_idx_read(images, &pixels, &ndim, dims, &err)) goto fail;
    herd_model_input_shape(m, &c, &h, &w);
    if (ndim != 3 && ndim != 4) {
        herd_fail(&err, HERD_EFORMAT, "%s: %d dimensions; images are (N,H,W) or (N,C,H,W)", images, ndim);
        goto fail;
    }
    /* one u8 sample: (1,H,W) or (C,H,W), as herd_idx_open gives */
    int64_t sdims[3] = {ndim == 4 ? dims[1] : 1, dims[ndim - 2], dims[ndim - 1]};
    herd_tensor sample = herd_tensor_make(HERD_U8, 3, sdims, NULL);
    if (herd_data_check_input(&sample, images, c, h, w, &err)) goto fail;
    int64_t per = (int64_t)c * h * w, n = dims[0];
    if (limit > 0 && limit < n) n = limit;
    int K = herd_model_output_size(m);
    if (n_names && n_names != K) {
        herd_fail(&err, HERD_EARG, "--class-names gives %d names but the model has %d outputs", n_names, K);
        goto fail;
    }
    printf("index\tclass\tprobability%s\n", n_names ? "\tname" : "");
    for (int64_t off = 0; off < n; off += batch) {
        int B = (int)(n - off < batch ? n - off : batch);
        float *x = herd_model_input(m);
        herd_samples_to_f32(HERD_U8, pixels + off * per, (size_t)B * (size_t)per, x); /* as training reads them */
        herd_model_normalize_input(m, B); /* as the weights were trained, if they say so */
        if (herd_model_forward(m, B, 0, &err)) goto fail;
        const float *y = herd_model_output(m);
        for (int b = 0; b < B; b++) {
            const float *row = y + (int64_t)b * K;
            int best = 0;
            for (int k = 1; k < K; k++)
                if (row[k] > row[best]) best = k;
            double sum = 0;
            for (int k = 0; k < K; k++) sum += exp((double)row[k] - row[best]);
            printf("%lld\t%d\t%.4f%s%s\n", (long long)(off + b), best, 1.0 / sum, n_names ? "\t" : "",
                   n_names ? custom[best] : "");
        }
    }
    rc = 0;
fail:
    if (rc) cli_error("%s", err.msg);
    free(pixels);
    free(probs);
    herd_model_destroy(m);
    return rc;
}
