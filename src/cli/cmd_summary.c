/* herd summary: a Keras-like table of layers, output shapes, parameters and FLOPs, and the planned memory;
 * with -n N and embedding tables, the bytes of them each rank holds under --embedding-shard's plan. */
#include <stdio.h>
#include <stdlib.h>

#include "cli/cli.h"
#include "cli/options.h"
#include "dist/embedding_shard.h"

/* Each rank's table bytes under the plan named (train's --embedding-shard) on `world` ranks: 0, or 2 */
static int shard_table(herd_model *m, int world, const char *name) {
    herd_shard_plan plan, chosen;
    herd_error err = {0};
    int n = herd_model_sparse_count(m);
    int64_t *lo_hi = malloc((size_t)(n ? n : 1) * (size_t)world * 2 * sizeof *lo_hi);
    char why[256];
    if (!herd_shard_plan_parse(name, &plan)) herd_fail(&err, HERD_EARG, "--embedding-shard %s: unknown plan (expected "
                                                      "table, row or auto)", name);
    else if (!lo_hi) herd_fail(&err, HERD_ENOMEM, "out of memory");
    else herd_shard_plan_make(m, world, plan, &chosen, lo_hi, why, sizeof why, &err);
    if (err.status) {
        free(lo_hi);
        cli_error("%s", err.msg);
        return 2;
    }
    double total = 0;
    for (int k = 0; k < n; k++) {
        herd_sparse_table t;
        herd_model_sparse_table(m, k, &t);
        total += (double)(t.rows * t.dim) * 4;
    }
    printf("Embedding tables (%.2f MB) sharded %s-wise over %d ranks%s%s%s:\n", total / 1e6, herd_shard_plan_name(chosen),
           world, why[0] ? " (" : "", why, why[0] ? ")" : "");
    for (int r = 0; r < world; r++) {
        double bytes = 0;
        for (int k = 0; k < n; k++) {
            herd_sparse_table t;
            herd_model_sparse_table(m, k, &t);
            const int64_t *span = lo_hi + ((size_t)k * (size_t)world + (size_t)r) * 2;
            bytes += (double)((span[1] - span[0]) * t.dim) * 4;
        }
        printf("  rank %-4d %12.0f bytes (%.1f%%)\n", r, bytes, total > 0 ? 100 * bytes / total : 0);
    }
    free(lo_hi);
    return 0;
}

static void human(char *buf, size_t size, double x) {
    const char *unit[] = {"", "K", "M", "G", "T"};
    int u = 0;
    while (x >= 1000 && u < 4) x /= 1000, u++;
    snprintf(buf, size, u ? "%.2f %s" : "%.0f%s", x, unit[u]);
}

int cmd_summary(int argc, char **argv) {
    const char *backend = "cpu", *shard = NULL;
    int batch = 32, threads = 0, workers = 1;
    cli_option opts[] = {
        {"--batch", OPT_INT, &batch, 1, 65536, "N", "batch size to plan memory for (default 32)", 0},
        {"--threads", OPT_INT, &threads, 1, 1024, "N", "threads to plan workspace for (default: all cores)", 0},
        {"--backend", OPT_STR, &backend, 0, 0, "NAME", "cpu (default) | ref", 0},
        {"--workers", OPT_INT, &workers, 1, 4096, "N", "-n N: also print the embedding table bytes each of N data-parallel ranks holds under --embedding-shard's plan (nothing is launched)", 0},
        {"--embedding-shard", OPT_STR, &shard, 0, 0, "PLAN", "with -n N: table | row | auto (default auto, as herd train chooses)", 0},
        {0},
    };
    static const cli_command cmd = {"summary", "herd summary MODEL.spec [--batch N]",
                                    "Print each layer's output shape, parameters and forward FLOPs, and the memory "
                                    "planned for training at a batch size.", 1, NULL};
    const char *pos[1];
    int r = cli_parse(argc, argv, 2, opts, &cmd, pos);
    if (r) return r == 1 ? 0 : r;
    herd_model *m = NULL;
    int rc = cli_open_model(pos[0], NULL, backend, "fp32", batch, cli_threads(threads, 0, 1), 0, CLI_PLAN_TRAIN, &m);
    if (rc) return rc;
    /* every input as the model reads it: per-sample dims, dtype when not f32, names when several */
    int inputs = herd_model_input_count(m);
    printf("Model: %s (input%s", pos[0], inputs > 1 ? "s" : "");
    for (int k = 0; k < inputs; k++) {
        const char *name = NULL;
        herd_tensor t = herd_model_input_desc(m, k, &name);
        int named = inputs > 1 && name && *name;
        printf("%s%s%s", k ? ", " : " ", named ? name : "", named ? " " : "");
        for (int d = 0; d < t.ndim; d++) printf("%s%lld", d ? "x" : "", (long long)t.dims[d]);
        if (t.ndim == 0) printf("1");
        if (t.dtype != HERD_F32) printf(" %s", herd_dtype_name(t.dtype));
    }
    printf(")\n");
    printf("%-28s %-16s %-14s %12s %12s\n", "Layer (type)", "Config", "Output shape", "Params", "FLOPs");
    printf("==========================================================================================\n");
    int64_t total_params = 0, total_flops = 0;
    for (int i = 0; i < herd_model_layer_count(m); i++) {
        herd_layer_info li;
        herd_model_layer(m, i, &li);
        char name[64], shape[32], fl[32];
        snprintf(name, sizeof name, "%s (%s)", li.name, li.kind);
        size_t len = 0;
        for (int d = 0; d < li.ndim && len < sizeof shape; d++)
            len += (size_t)snprintf(shape + len, sizeof shape - len, "%s%lld", d ? "x" : "", (long long)li.dims[d]);
        human(fl, sizeof fl, (double)li.flops);
        printf("%-28s %-16s %-14s %12lld %12s\n", name, li.detail, shape, (long long)li.params, fl);
        total_params += li.params;
        total_flops += li.flops;
    }
    printf("==========================================================================================\n");
    int64_t n_params, n_buffers;
    herd_model_params(m, &n_params);
    herd_model_buffers(m, &n_buffers);
    char fl[32];
    human(fl, sizeof fl, (double)total_flops);
    printf("Total params: %lld (%.2f MiB)", (long long)total_params, total_params * 4.0 / 1048576.0);
    if (n_buffers) printf(" + %lld buffer values", (long long)n_buffers);
    printf("\nForward FLOPs per sample: %s (a training step is about 3x)\n", fl);
    double weights_mib = (2.0 * n_params + n_buffers) * 4.0 / 1048576.0;
    printf("Planned memory at batch %d (%s backend): activations, gradients and workspace %.2f MiB; "
           "parameters and gradients %.2f MiB (+ optimizer state: 2x parameters for Adam)\n",
           batch, backend, herd_model_planned_bytes(m) / 1048576.0, weights_mib);
    size_t reused, plain;
    herd_model_activation_bytes(m, &reused, &plain);
    printf("Activations and their gradients (and the layers' workspace when training), planned by liveness: %.2f MiB "
           "(%.2f MiB if every buffer had its own memory: %.2fx)\n", reused / 1048576.0, plain / 1048576.0, plain ? (double)reused / (double)plain : 1.0);
    int chunk = herd_model_train_chunk(m);
    if (chunk == 0) printf("Training runs each batch as one piece (batch norm needs its statistics)\n");
    else printf("Training runs forward and backward %d samples at a time, while they are in cache\n", chunk);
    if ((workers > 1 && herd_model_sparse_count(m)) || shard) rc = shard_table(m, workers, shard ? shard : "auto");
    herd_model_destroy(m);
    return rc;
}
