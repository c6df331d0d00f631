/* herd bench: training-step, inference or data-loader throughput of a model, with an optional
 * per-layer forward/backward profile; under MPI (-n N, mpirun, srun) the data-parallel
 * step with its exposed communication time, and a bucketed-vs-single allreduce timing.
 * Figures come from the same code herd train runs. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include "cli/cli.h"
#include "cli/options.h"
#include "dist/strategy.h"
#include "herd/data.h"
#include "herd/train.h"

/* Samples in --data synthetic: random u8 images drawn at random, as many as bench/torch_resnet.py
 * holds (512), so a peak-RSS comparison weighs the frameworks, not the data sets (8192 images
 * of 3x64x64 were 100 MB of herd's 480 MB at batch 128). Speed does not depend on it. */
#define SYNTHETIC_SAMPLES 512

/* user + system CPU seconds of the whole process (every thread): on a shared machine, the figure
 * that A/B comparisons can trust when wall time is disturbed by other work */
static double process_cpu_seconds(void) {
    struct rusage r;
    getrusage(RUSAGE_SELF, &r);
    return (double)r.ru_utime.tv_sec + 1e-6 * r.ru_utime.tv_usec + (double)r.ru_stime.tv_sec + 1e-6 * r.ru_stime.tv_usec;
}

static herd_status synthetic_dataset(herd_dataset **out, const herd_model *m, int64_t n, herd_error *err) {
    int c, h, w;
    herd_model_input_shape(m, &c, &h, &w);
    /* targets as the model's loss takes them: classes below the last dim (per sample or per
     * position), or values in [0, 1) */
    herd_layer_info last;
    herd_model_layer(m, herd_model_layer_count(m) - 1, &last);
    int K = (int)last.dims[last.ndim - 1];
    const herd_tensor *t = herd_model_target(m);
    int64_t tn = herd_tensor_numel(t);
    size_t per = (size_t)c * h * w;
    uint8_t *images = malloc((size_t)n * per);
    void *targets = malloc((size_t)n * herd_model_target_bytes(m));
    if (!images || !targets) {
        free(images);
        free(targets);
        return herd_fail(err, HERD_ENOMEM, "out of memory");
    }
    herd_rng r;
    herd_rng_init(&r, 1, 0);
    /* four pixels a draw: one a draw took seconds of a short run at 3x224x224 (77 M pixels) */
    for (size_t i = 0; i < (size_t)n * per; i += 4) {
        uint32_t v = herd_rng_u32(&r);
        for (size_t k = i; k < i + 4 && k < (size_t)n * per; k++, v >>= 8) images[k] = (uint8_t)v;
    }
    for (int64_t i = 0; i < n * tn; i++) {
        if (t->dtype == HERD_I32) ((int32_t *)targets)[i] = (int32_t)herd_rng_below(&r, (uint32_t)K);
        else ((float *)targets)[i] = herd_rng_uniform(&r);
    }
    int64_t xd[4] = {n, c, h, w}, yd[5] = {n};
    for (int d = 0; d < t->ndim; d++) yd[1 + d] = t->dims[d];
    return herd_dataset_from_memory(out, herd_tensor_make(HERD_U8, 4, xd, images),
                                    herd_tensor_make(t->dtype, 1 + t->ndim, yd, targets), K, "synthetic", err);
}

/* `steps` gradient exchanges as a training step makes them (every bucket), without the compute. */
static herd_status bench_exchanges(herd_strategy *s, int steps, herd_error *err) {
    herd_status st = HERD_OK;
    for (int i = 0; i < steps && !st; i++)
        if (!(st = herd_strategy_begin_step(s, i, err))) st = herd_strategy_after_backward(s, 1, err);
    return st;
}

/* Times reducing the whole gradient buffer: herd's buckets against one allreduce of the same bytes;
 * *bucketed_cpu: this process's CPU seconds per bucketed exchange. */
static herd_status bench_allreduce(herd_strategy *s, herd_comm *c, herd_model *m, int steps, double *bucketed,
                                   double *bucketed_cpu, double *single, herd_error *err) {
    int64_t n = herd_model_dense_params(m); /* the gradient buffer */
    float *g = herd_model_grads(m);
    herd_status st = HERD_OK;
    for (int round = 0; round < 2 && !st; round++) { /* round 0 warms up */
        double t0 = herd_now(), cpu0 = process_cpu_seconds();
        st = bench_exchanges(s, steps, err);
        *bucketed = (herd_now() - t0) / steps;
        *bucketed_cpu = (process_cpu_seconds() - cpu0) / steps;
        t0 = herd_now();
        for (int i = 0; i < steps && !st; i++) {
            herd_comm_request *req;
            if (!(st = herd_comm_iallreduce(c, g, n, NULL, &req, err))) st = herd_comm_wait(c, req, err);
        }
        *single = (herd_now() - t0) / steps;
    }
    return st;
}

/* One timed step: training (t: the data-parallel trainer, or --apart's trainer of this rank alone)
 * on `global` random rows, or the forward of this rank's `batch` of them. */
static herd_status bench_step(herd_trainer *t, herd_model *m, const herd_dataset *ds, herd_rng *rng, int64_t *idx,
                              int global, int offset, int batch, int32_t *labels, herd_error *err) {
    for (int b = 0; b < global; b++) idx[b] = (int64_t)herd_rng_below(rng, (uint32_t)ds->n);
    if (t) {
        herd_step_result res;
        return herd_trainer_step(t, ds, idx, global, &res, err);
    }
    herd_status st = herd_dataset_batch(ds, idx + offset, batch, herd_model_batch_buffer(m), labels, err);
    if (st) return st;
    herd_model_set_inputs(m, 0, batch);
    return herd_model_forward(m, batch, 0, err);
}

/* Every rank here before any goes on (--apart: the blocks start together). */
static herd_status barrier(herd_comm *c, herd_error *err) {
    double x = 0;
    return herd_comm_allreduce_f64(c, &x, 1, err);
}

/* Images/s of the loader alone: `steps` batches of a seeded shuffle, copied out as training would. */
static herd_status bench_loader(const herd_dataset *ds, int batch, int steps, int warmup,
                                const herd_loader_config *lc, float *x, int32_t *y, double *ips, herd_error *err) {
    herd_loader *l = NULL;
    herd_sampler smp;
    herd_status st = herd_sampler_init(&smp, ds->n, 1, 1, err);
    if (st) return st;
    if (batch > ds->n) batch = (int)ds->n;
    int64_t per_epoch = (ds->n + batch - 1) / batch, done = 0;
    double t0 = herd_now();
    if (!(st = herd_loader_create(&l, ds, batch, lc, NULL, NULL, err))) {
        for (int64_t e = 0; done < warmup + steps && !st; e++) {
            herd_sampler_set_epoch(&smp, e);
            if ((st = herd_loader_start_epoch(l, e, smp.perm, ds->n, batch, 0, err))) break;
            for (int64_t k = 0; k < per_epoch && done < warmup + steps && !st; k++, done++) {
                if (done == warmup) t0 = herd_now();
                int B = (int)(ds->n - k * batch < batch ? ds->n - k * batch : batch);
                st = herd_loader_rows(l, k, 0, B, x, y, err);
            }
        }
    }
    *ips = (double)steps * batch / (herd_now() - t0);
    herd_loader_destroy(l);
    herd_sampler_free(&smp);
    return st;
}

int cmd_bench(int argc, char **argv) {
    const char *backend = "cpu", *precision = "fp32", *mode = "train", *data = "fashion-mnist", *optimizer = "adam", *compress = "none";
    int batch = 32, threads = 0, steps = 0, warmup = 5, profile = 0, workers = 1, zero = 0, apart = 0;
    float bucket_mb = 0, cache_mb = 1024;
    int prefetch = 2, loader_threads = 1, cache = 0;
    const char *augment = "none", *normalize = "none";
    cli_option opts[] = {
        {"--mode", OPT_STR, &mode, 0, 0, "MODE", "train (forward, backward, update; default), eval (forward only), allreduce (gradient exchange only) or loader (reading, decoding, augmenting batches only)", 0},
        {"--batch", OPT_INT, &batch, 1, 65536, "N", "batch size per rank (default 32)", 0},
        {"--steps", OPT_INT, &steps, 1, 1e7, "N", "timed steps (default: about 20000 images' worth)", 0},
        {"--warmup", OPT_INT, &warmup, 0, 1e6, "N", "untimed steps first (default 5)", 0},
        {"--threads", OPT_INT, &threads, 1, 1024, "N", "threads per rank (default: all cores / ranks)", 0},
        {"--backend", OPT_STR, &backend, 0, 0, "NAME", "cpu (default) | ref", 0},
        {"--precision", OPT_STR, &precision, 0, 0, "NAME", "fp32 (default) | bf16: conv and dense products in bfloat16 with fp32 accumulation (CPUs with AVX512_BF16)", 0},
        {"--optimizer", OPT_STR, &optimizer, 0, 0, "NAME", "optimizer for train mode (default adam)", 0},
        {"--data", OPT_STR, &data, 0, 0, "SRC", "fashion-mnist (default), any --data source, or synthetic", 0},
        {"--profile", OPT_FLAG, &profile, 0, 0, NULL, "print forward/backward time per layer", 0},
        {"--workers", OPT_INT, &workers, 1, 4096, "N", "-n N: local data-parallel ranks (herd runs mpirun)", 0},
        {"--bucket-mb", OPT_FLOAT, &bucket_mb, 0, 4096, "MB", "data parallel: gradient bucket size (default auto: 25 as PyTorch DDP, at most a quarter of the model)", 0},
        {"--grad-compress", OPT_STR, &compress, 0, 0, "KIND", "data parallel: none or bf16", 0},
        {"--zero", OPT_INT, &zero, 0, 1, "N", "data parallel: 1 = ZeRO-1 (sharded optimizer state), as herd train", 0},
        {"--apart", OPT_INT, &apart, 1, 1e6, "N", "data parallel: also time the step's parts in the same processes: blocks of N steps, N steps of each rank alone (no exchange) and N exchanges alone (no compute), in turn (--profile: of the steps alone)", 0},
        {"--prefetch", OPT_INT, &prefetch, 0, 1024, "N", "loader mode: batches prepared ahead (default 2; 0 = in this thread)", 0},
        {"--loader-threads", OPT_INT, &loader_threads, 1, 256, "N", "loader mode: loader threads (default 1)", 0},
        {"--cache", OPT_FLAG, &cache, 0, 0, NULL, "loader mode: cache decoded samples", 0},
        {"--cache-mb", OPT_FLOAT, &cache_mb, 0.1, 1e7, "MB", "loader mode: cache bound (default 1024)", 0},
        {"--augment", OPT_STR, &augment, 0, 0, "LIST", "loader mode: augmentation as herd train's (e.g. rrc,flip)", 0},
        {"--normalize", OPT_STR, &normalize, 0, 0, "MODE", "loader mode: none (default), imagenet or mean=..:std=.. after augmentation", 0},
        {0},
    };
    static const cli_command cmd = {"bench", "herd bench MODEL.spec [--mode train|eval|allreduce|loader] [--batch N] [options]",
                                    "Measure images/s of training steps or inference (per layer with --profile); "
                                    "under MPI, data-parallel steps with their exposed communication time.", 1, NULL};
    const char *pos[1];
    int r = cli_parse(argc, argv, 2, opts, &cmd, pos);
    if (r) return r == 1 ? 0 : r;
    static const char *const modes[] = {"train", "eval", "allreduce", "loader", NULL},
                             *const compressions[] = {"none", "bf16", NULL};
    int mode_i = cli_choice("--mode", mode, modes), bf16 = cli_choice("--grad-compress", compress, compressions);
    herd_loader_config lc = {0};
    double norm_mean[16], norm_std[16];
    int norm_n = 0, norm = cli_normalize_mode(normalize, norm_mean, norm_std, 16, &norm_n);
    if (mode_i < 0 || bf16 < 0 || cli_augment(augment, &lc) < 0 || norm < 0) return 2;
    if (norm == 1) {
        cli_error("herd bench: --normalize auto is not offered (give the constants)");
        return 2;
    }
    int train_mode = mode_i == 0, allreduce_mode = mode_i == 2;
    if (cli_launch_local(argc, argv, workers, &r)) return r;
    herd_model *m = NULL;
    herd_dataset *ds = NULL;
    herd_trainer *t = NULL, *alone = NULL; /* --apart: this rank's steps alone */
    double *times = NULL;                  /* --profile: per layer, forward and backward seconds */
    herd_comm *comm = NULL;
    herd_strategy *strategy = NULL;
    int64_t *idx = NULL;
    int32_t *labels = NULL;
    herd_error err = {0};
    if (herd_comm_open(&comm, 60, &err)) {
        cli_error("%s", err.msg);
        return 1;
    }
    int rank = herd_comm_rank(comm), world = herd_comm_size(comm);
    if (apart && (world < 2 || !train_mode || zero)) {
        if (rank == 0) /* every rank finds it; one says it */
            cli_error("herd bench: --apart times a data-parallel training step's parts: it needs several ranks, --mode "
                      "train and --zero 0");
        herd_comm_close(comm);
        return 2;
    }
    threads = cli_threads(threads, rank, herd_comm_local_size(comm));
    if (!steps) steps = 20000 / batch > 10 ? 20000 / batch : 10;
    int rc = cli_open_model(pos[0], NULL, backend, precision, batch, threads, 0, mode_i == 1 ? CLI_PLAN_INFERENCE : CLI_PLAN_TRAIN, &m);
    if (rc) goto fail_quiet;
    rc = 1;
    herd_strategy_config scfg = {.kind = HERD_STRATEGY_DP, .bucket_mb = bucket_mb, .bf16 = bf16 == 1, .zero = zero};
    if (herd_strategy_create(&strategy, comm, m, &scfg, &err)) goto fail;
    if (allreduce_mode) {
        double bucketed, bucketed_cpu, single;
        if (bench_allreduce(strategy, comm, m, steps, &bucketed, &bucketed_cpu, &single, &err) ||
            herd_comm_allreduce_f64(comm, &bucketed_cpu, 1, &err)) /* the CPU time of all ranks */
            goto fail;
        int64_t n;
        herd_model_params(m, &n);
        if (rank == 0)
            printf("bench: mode=allreduce ranks=%d floats=%lld bucket_mb=%g bucketed_ms=%.3f bucketed_cpu_ms=%.3f "
                   "single_allreduce_ms=%.3f overhead=%.1f%%\n", world, (long long)n, bucket_mb, 1e3 * bucketed,
                   1e3 * bucketed_cpu, 1e3 * single, 100.0 * (bucketed / single - 1.0));
        rc = 0;
        goto fail;
    }
    herd_image_options shape = {0}; /* image sources decode to the model's input */
    herd_model_input_shape(m, &shape.c, &shape.h, &shape.w);
    if (strcmp(data, "synthetic") == 0 ? synthetic_dataset(&ds, m, SYNTHETIC_SAMPLES, &err)
                                       : herd_data_open_with(data, &shape, &ds, NULL, &err))
        goto fail;
    if (herd_model_check_data(m, ds, &err)) goto fail;
    if (mode_i == 3) {
        lc.prefetch = prefetch, lc.threads = loader_threads, lc.seed = 1;
        lc.cache_bytes = cache ? (size_t)((double)cache_mb * 1048576.0) : 0;
        int64_t channels, plane;
        herd_dataset_channels(ds, &channels, &plane);
        if (norm == 2 && norm_n != channels) {
            herd_fail(&err, HERD_EARG, "--normalize gives %d values each, the data has %lld channels", norm_n,
                      (long long)channels);
            goto fail;
        }
        if (norm == 2) lc.mean = norm_mean, lc.std = norm_std;
        double ips;
        if (!(labels = malloc((size_t)batch * herd_model_target_bytes(m)))) { /* per-position labels: T a sample */
            herd_fail(&err, HERD_ENOMEM, "out of memory");
            goto fail;
        }
        if (bench_loader(ds, batch, steps, warmup, &lc, herd_model_batch_buffer(m), labels, &ips, &err)) goto fail;
        if (rank == 0)
            printf("bench: mode=loader source=%s batch=%d prefetch=%d loader_threads=%d cache=%d augment=%s steps=%d "
                   "warmup=%d images_per_second=%.1f\n", ds->source, batch, prefetch, prefetch ? loader_threads : 0,
                   cache, augment, steps, warmup, ips);
        rc = 0;
        goto fail;
    }
    int global = batch * world; /* weak scaling: every rank computes `batch` samples per step */
    herd_train_config cfg = herd_train_defaults();
    cfg.batch = global;
    cfg.optimizer = optimizer;
    cfg.strategy = strategy;
    if (train_mode && herd_trainer_create(&t, m, &cfg, 1000, &err)) goto fail;
    idx = malloc((size_t)global * sizeof *idx);
    labels = malloc((size_t)batch * herd_model_target_bytes(m)); /* a label per position of a sequence model */
    if (!idx || !labels) {
        herd_fail(&err, HERD_ENOMEM, "out of memory");
        goto fail;
    }
    herd_rng rng;
    herd_rng_init(&rng, 5, 0);
    herd_trainer *t_step = train_mode ? t : NULL;
    for (int s = 0; s < warmup; s++)
        if (bench_step(t_step, m, ds, &rng, idx, global, rank * batch, batch, labels, &err)) goto fail;
    /* --apart N: the step's parts timed in the same processes, within seconds of the step: blocks
     * of N steps, N steps of each rank alone (a trainer of its own on the same model, no exchange:
     * the ranks' compute sharing the cores, with the progress thread polling as in a step: its
     * wake-ups take CPU from compute on shared cores) and N exchanges alone (no compute), each
     * block started together; bench/scaling --predict predicts the step from them (separate runs
     * a minute apart disagreed by up to 35% on a VM whose speed swings) */
    int n_layers = herd_model_layer_count(m);
    if (apart) {
        herd_train_config one = cfg;
        one.batch = batch, one.strategy = NULL;
        if (herd_trainer_create(&alone, m, &one, 1000, &err)) goto fail;
        for (int s = 0; s < 2; s++) /* first uses, untimed */
            if (bench_step(alone, m, ds, &rng, idx, batch, 0, batch, labels, &err)) goto fail;
        if (bench_exchanges(strategy, 2, &err)) goto fail;
    }
    if (profile && !(times = calloc(2 * (size_t)n_layers, sizeof *times))) {
        herd_fail(&err, HERD_ENOMEM, "out of memory");
        goto fail;
    }
    double secs = 0, wait = 0, cpu = 0, parts[4] = {0}; /* alone: wall, CPU; exchanges alone: wall, CPU */
    int n_apart = 0;
    herd_model_profile(m, profile && !apart);
    for (int done = 0; done < steps;) {
        int n = apart && apart < steps - done ? apart : steps - done;
        if (apart && barrier(comm, &err)) goto fail;
        double t0 = herd_now(), cpu0 = process_cpu_seconds(), wait0 = herd_strategy_wait_seconds(strategy);
        for (int s = 0; s < n; s++)
            if (bench_step(t_step, m, ds, &rng, idx, global, rank * batch, batch, labels, &err)) goto fail;
        secs += herd_now() - t0, cpu += process_cpu_seconds() - cpu0;
        wait += herd_strategy_wait_seconds(strategy) - wait0;
        done += n;
        if (!apart) continue;
        if (barrier(comm, &err)) goto fail;
        herd_model_profile(m, profile);
        herd_comm_progress(comm, 1); /* polling as it does through a step's forward and backward */
        t0 = herd_now(), cpu0 = process_cpu_seconds();
        for (int s = 0; s < n; s++)
            if (bench_step(alone, m, ds, &rng, idx, batch, 0, batch, labels, &err)) goto fail;
        parts[0] += herd_now() - t0, parts[1] += process_cpu_seconds() - cpu0;
        herd_comm_progress(comm, 0);
        for (int i = 0; i < n_layers && profile; i++) {
            double f, b;
            herd_model_layer_times(m, i, &f, &b);
            times[2 * i] += f, times[2 * i + 1] += b;
        }
        herd_model_profile(m, 0);
        if (barrier(comm, &err)) goto fail;
        t0 = herd_now(), cpu0 = process_cpu_seconds();
        if (bench_exchanges(strategy, n, &err)) goto fail;
        parts[2] += herd_now() - t0, parts[3] += process_cpu_seconds() - cpu0;
        n_apart += n;
    }
    double t_fin = herd_now();
    if (herd_strategy_finish(strategy, &err)) goto fail; /* ZeRO-1: the last step's parameters arrive */
    secs += herd_now() - t_fin;
    for (int i = 0; i < n_layers && profile && !apart; i++) herd_model_layer_times(m, i, &times[2 * i], &times[2 * i + 1]);
    /* every rank's exchange wait and CPU time (and --apart's parts), summed (a collective: all ranks call it) */
    double all[6] = {wait, cpu, parts[0], parts[1], parts[2], parts[3]};
    if (world > 1 && herd_comm_allreduce_f64(comm, all, 6, &err)) goto fail;
    /* useful FLOPs a sample: forward; training adds the weight gradient (as much again) and the
     * input gradient (again) where a layer computes one: not for a layer that reads only the
     * model's inputs (the first convolution), whose input gradient nothing needs */
    double flops = 0;
    for (int i = 0; i < herd_model_layer_count(m); i++) {
        herd_layer_info li;
        herd_model_layer(m, i, &li);
        int ins[8], n_in = herd_model_layer_inputs(m, i, ins, 8), din = 0;
        for (int k = 0; k < n_in && k < 8; k++) din |= ins[k] >= 0;
        flops += (double)li.flops * (train_mode ? (din ? 3.0 : 2.0) : 1.0);
    }
    double step_flops = flops * global;
    if (rank == 0) {
        printf("bench: mode=%s ranks=%d batch=%d threads=%d backend=%s precision=%s steps=%d images_per_second=%.1f "
               "ms_per_step=%.3f gflops=%.2f cpu_ms_per_step=%.3f",
               mode, world, batch, threads, backend, precision, steps, steps * (double)global / secs, 1e3 * secs / steps,
               step_flops * steps / secs * 1e-9, 1e3 * cpu / steps);
        if (world > 1)
            printf(" comm_wait_ms_per_step=%.3f comm_wait_mean_ms=%.3f cpu_ms_all_ranks=%.3f", 1e3 * wait / steps,
                   1e3 * all[0] / world / steps, 1e3 * all[1] / steps);
        if (apart) /* wall: the ranks' mean; CPU: all ranks' */
            printf(" compute_apart_ms=%.3f compute_apart_cpu_ms=%.3f exchange_apart_ms=%.3f exchange_apart_cpu_ms=%.3f",
                   1e3 * all[2] / world / n_apart, 1e3 * all[3] / n_apart, 1e3 * all[4] / world / n_apart,
                   1e3 * all[5] / n_apart);
        printf("\n");
    }
    if (profile && rank == 0) {
        printf("%-20s %12s %12s %8s\n", "layer", "forward ms", "backward ms", "share");
        /* --apart: the steps of this rank alone */
        double total = 0, per = apart ? n_apart : steps, step_s = apart ? parts[0] / n_apart : secs / steps;
        for (int i = 0; i < n_layers; i++) total += times[2 * i] + times[2 * i + 1];
        for (int i = 0; i < n_layers; i++) {
            herd_layer_info li;
            herd_model_layer(m, i, &li);
            printf("%-20s %12.3f %12.3f %7.1f%%\n", li.name, 1e3 * times[2 * i] / per, 1e3 * times[2 * i + 1] / per,
                   total > 0 ? 100 * (times[2 * i] + times[2 * i + 1]) / total : 0);
        }
        printf("  %.3f ms of %.3f ms per step in layers (rest: data, loss, gradient exchange, optimizer)\n",
               1e3 * total / per, 1e3 * step_s);
    }
    rc = 0;
fail:
    if (rc) cli_error(world > 1 ? "rank %d: %s" : "%.0d%s", world > 1 ? rank : 0, err.msg);
fail_quiet:
    cli_bound_shutdown(rank, world);
    if (rc && world > 1) herd_comm_abort(comm, rc);
    free(idx);
    free(labels);
    free(times);
    herd_trainer_destroy(alone);
    herd_trainer_destroy(t);
    if (ds) herd_dataset_close(ds);
    herd_strategy_destroy(strategy);
    herd_model_destroy(m);
    herd_comm_close(comm);
    return rc;
}
