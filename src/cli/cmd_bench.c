/* herd bench: training-step or inference throughput of a model, with an optional
 * per-layer forward/backward profile. Figures come from the same code herd train runs. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "cli/options.h"
#include "herd/data.h"
#include "herd/train.h"

static herd_status synthetic_dataset(herd_dataset **out, const herd_model *m, int64_t n, herd_error *err) {
    int c, h, w;
    herd_model_input_shape(m, &c, &h, &w);
    int K = herd_model_output_size(m);
    size_t per = (size_t)c * h * w;
    uint8_t *images = malloc((size_t)n * per);
    int32_t *labels = malloc((size_t)n * sizeof *labels);
    if (!images || !labels) {
        free(images);
        free(labels);
        return herd_fail(err, HERD_ENOMEM, "out of memory");
    }
    herd_rng r;
    herd_rng_init(&r, 1, 0);
    for (size_t i = 0; i < (size_t)n * per; i++) images[i] = (uint8_t)herd_rng_below(&r, 256);
    for (int64_t i = 0; i < n; i++) labels[i] = (int32_t)herd_rng_below(&r, (uint32_t)K);
    return herd_dataset_from_u8(out, images, labels, n, c, h, w, K, "synthetic", err);
}

int cmd_bench(int argc, char **argv) {
    const char *backend = "cpu", *mode = "train", *data = "fashion-mnist", *optimizer = "adam";
    int batch = 32, threads = 0, steps = 0, warmup = 5, profile = 0;
    cli_option opts[] = {
        {"--mode", OPT_STR, &mode, 0, 0, "MODE", "train (forward, backward, update; default) or eval (forward only)", 0},
        {"--batch", OPT_INT, &batch, 1, 65536, "N", "batch size (default 32)", 0},
        {"--steps", OPT_INT, &steps, 1, 1e7, "N", "timed steps (default: about 20000 images' worth)", 0},
        {"--warmup", OPT_INT, &warmup, 0, 1e6, "N", "untimed steps first (default 5)", 0},
        {"--threads", OPT_INT, &threads, 1, 1024, "N", "threads (default: all cores)", 0},
        {"--backend", OPT_STR, &backend, 0, 0, "NAME", "cpu (default) | ref", 0},
        {"--optimizer", OPT_STR, &optimizer, 0, 0, "NAME", "optimizer for train mode (default adam)", 0},
        {"--data", OPT_STR, &data, 0, 0, "SRC", "fashion-mnist (default), any --data source, or synthetic", 0},
        {"--profile", OPT_FLAG, &profile, 0, 0, NULL, "print forward/backward time per layer", 0},
        {0},
    };
    static const cli_command cmd = {"bench", "herd bench MODEL.spec [--mode train|eval] [--batch N] [options]",
                                    "Measure images/s of training steps or inference, optionally per layer.", 1, NULL};
    const char *pos[1];
    int r = cli_parse(argc, argv, 2, opts, &cmd, pos);
    if (r) return r == 1 ? 0 : r;
    int train_mode = strcmp(mode, "train") == 0;
    if (!train_mode && strcmp(mode, "eval") != 0) {
        cli_error("--mode expects train or eval, found '%s'", mode);
        return 2;
    }
    threads = cli_threads(threads);
    if (!steps) steps = 20000 / batch > 10 ? 20000 / batch : 10;
    herd_model *m = NULL;
    herd_dataset *ds = NULL;
    herd_trainer *t = NULL;
    int64_t *idx = NULL;
    int32_t *labels = NULL;
    herd_error err = {0};
    int rc = cli_open_model(pos[0], NULL, backend, batch, threads, 0, &m);
    if (rc) return rc;
    rc = 1;
    if (strcmp(data, "synthetic") == 0 ? synthetic_dataset(&ds, m, 8192, &err) : herd_data_open(data, &ds, NULL, &err))
        goto fail;
    herd_train_config cfg = herd_train_defaults();
    cfg.batch = batch;
    cfg.optimizer = optimizer;
    if (train_mode && herd_trainer_create(&t, m, &cfg, 1000, &err)) goto fail;
    idx = malloc((size_t)batch * sizeof *idx);
    labels = malloc((size_t)batch * sizeof *labels);
    if (!idx || !labels) {
        herd_fail(&err, HERD_ENOMEM, "out of memory");
        goto fail;
    }
    herd_rng rng;
    herd_rng_init(&rng, 5, 0);
    double t0 = 0;
    for (int s = 0; s < warmup + steps; s++) {
        if (s == warmup) {
            herd_model_profile(m, profile);
            t0 = herd_now();
        }
        for (int b = 0; b < batch; b++) idx[b] = (int64_t)herd_rng_below(&rng, (uint32_t)ds->n);
        if (train_mode) {
            herd_step_result res;
            if (herd_trainer_step(t, ds, idx, batch, &res, &err)) goto fail;
        } else {
            if (herd_dataset_batch(ds, idx, batch, herd_model_input(m), labels, &err)) goto fail;
            if (herd_model_forward(m, batch, 0, &err)) goto fail;
        }
    }
    double secs = herd_now() - t0;
    int64_t flops = 0;
    for (int i = 0; i < herd_model_layer_count(m); i++) {
        herd_layer_info li;
        herd_model_layer(m, i, &li);
        flops += li.flops;
    }
    double step_flops = (double)flops * batch * (train_mode ? 3.0 : 1.0);
    printf("bench: mode=%s batch=%d threads=%d backend=%s steps=%d images_per_second=%.1f ms_per_step=%.3f "
           "gflops=%.2f\n",
           mode, batch, threads, backend, steps, steps * (double)batch / secs, 1e3 * secs / steps,
           step_flops * steps / secs * 1e-9);
    if (profile) {
        printf("%-20s %12s %12s %8s\n", "layer", "forward ms", "backward ms", "share");
        double total = 0;
        for (int i = 0; i < herd_model_layer_count(m); i++) {
            double f, b;
            herd_model_layer_times(m, i, &f, &b);
            total += f + b;
        }
        for (int i = 0; i < herd_model_layer_count(m); i++) {
            herd_layer_info li;
            double f, b;
            herd_model_layer(m, i, &li);
            herd_model_layer_times(m, i, &f, &b);
            printf("%-20s %12.3f %12.3f %7.1f%%\n", li.name, 1e3 * f / steps, 1e3 * b / steps,
                   total > 0 ? 100 * (f + b) / total : 0);
        }
        printf("  %.3f ms of %.3f ms per step in layers (rest: data, loss, optimizer)\n", 1e3 * total / steps,
               1e3 * secs / steps);
    }
    rc = 0;
fail:
    if (rc) cli_error("%s", err.msg);
    free(idx);
    free(labels);
    herd_trainer_destroy(t);
    if (ds) herd_dataset_close(ds);
    herd_model_destroy(m);
    return rc;
}
