/* herd train: options → model → data → training loop with progress → test accuracy → save. */
#include <errno.h>
#include <math.h>
#include <signal.h>
#include <sys/resource.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli/cli.h"
#include "cli/options.h"
#include "cli/progress.h"
#include "dist/strategy.h"
#include "optim/optim.h"
#include "herd/data.h"
#include "herd/tensorboard.h"
#include "herd/trace.h"
#include "herd/train.h"
#include "io/atomic_file.h"

typedef struct train_ui {
    progress bar;
    FILE *json;
    herd_tb_writer *tb;  /* --tensorboard: scalars per epoch (and per --tb-every steps) */
    int tb_every;
    herd_model *tb_grads; /* --tb-grad-norms: the model whose gradient norms go with each --tb-every step */
    int64_t tb_steps;    /* steps per epoch, for the global step of per-step scalars */
    int epoch;
    int show;
    /* --test-each-epoch */
    herd_model *m;
    herd_dataset *test;
    herd_metrics *test_metrics; /* the test set's, each time it is evaluated */
    herd_strategy *strategy;
    int batch;
    int rank;
    double elapsed; /* training seconds so far, without evaluation */
    const char *json_path;
    char last_checkpoint[4096]; /* written or resumed from; "" when none */
    herd_error output_err;      /* the first output that could not be written (status != 0) */
} train_ui;

/* Stop requests, looked at by herd_train after each step: the signal (SIGINT, SIGTERM) that
 * asked, or -1 when an output could not be written. */
static volatile sig_atomic_t g_stop;
static int g_alone = 1; /* the signal handler prints only in a one-process run: under MPI the
                          * launcher's SIGTERM is how a job is ended, and rank 0 reports the end */

static void say(const char *msg) {
    if (g_alone) {
        ssize_t k = write(STDERR_FILENO, msg, strlen(msg));
        (void)k;
    }
}

/* First SIGINT/SIGTERM: stop after the step in progress (and the checkpoint due with it).
 * Second: remove the temp file of a write in progress and stop at once. */
static void on_signal(int sig) {
    if (g_stop) {
        herdi_io_atomic_remove_inflight();
        say("herd: stopped at once (second signal); the last complete checkpoint stays\n");
        _exit(128 + sig);
    }
    g_stop = sig;
    say("herd: stopping after the current step (press Ctrl-C again to stop at once)\n");
}

static void catch_stop_signals(void) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
}

/* The rule for every output herd writes (--log-json, --tensorboard, --trace, --save, checkpoints):
 * a write error stops the run after the current step with one line naming the file, exit 1;
 * what was written before stays. */
static void output_failed(train_ui *ui, const herd_error *err) {
    if (!ui->output_err.status) ui->output_err = *err;
    g_stop = -1;
}

/* A failed event write stops the run (output_failed) and TensorBoard logging. */
static void tb_check(train_ui *ui, herd_status st, const herd_error *err) {
    if (st == HERD_OK) return;
    output_failed(ui, err);
    herd_tb_close(ui->tb, NULL);
    ui->tb = NULL;
}

static void on_notice(void *user, const char *msg) {
    (void)user;
    cli_error("note: %s", msg);
}

static void on_checkpoint(void *user, const char *path, int resumed) {
    train_ui *ui = user;
    snprintf(ui->last_checkpoint, sizeof ui->last_checkpoint, "%s", path);
    if (resumed && ui->show) printf("herd: resuming from %s\n", path);
}

/* grad_norm/LAYER (the L2 norm of all of that layer's parameter gradients) for every layer with
 * parameters, in layer order, then grad_norm/total: the step's gradients as the optimizer took
 * them (after the exchange between ranks). */
static herd_status tb_grad_norms(herd_tb_writer *tb, herd_model *m, int64_t step, herd_error *err) {
    const float *g = herd_model_grads(m);
    double total = 0;
    herd_status st = HERD_OK;
    for (int i = 0; i < herd_model_layer_count(m) && !st; i++) {
        int64_t plo, phi, blo, bhi;
        herd_model_layer_param_range(m, i, i, &plo, &phi, &blo, &bhi);
        if (phi > herd_model_dense_params(m)) phi = herd_model_dense_params(m); /* row-sparse tables: no dense grads */
        if (phi <= plo) continue;
        herd_layer_info li;
        herd_model_layer(m, i, &li);
        double layer = herd_grad_sq_sum(g + plo, phi - plo);
        char tag[160];
        snprintf(tag, sizeof tag, "grad_norm/%s", li.name);
        st = herd_tb_scalar(tb, tag, step, (float)sqrt(layer), 0, err);
        total += layer;
    }
    return st ? st : herd_tb_scalar(tb, "grad_norm/total", step, (float)sqrt(total), 0, err);
}

/* v as JSON: null when it was not measured (-1) */
static const char *json_num(double v, char *buf, size_t size) {
    if (v < 0) snprintf(buf, size, "null");
    else snprintf(buf, size, "%.6f", v);
    return buf;
}

static void on_epoch_begin(void *user, int epoch, int epochs, int64_t steps) {
    train_ui *ui = user;
    ui->epoch = epoch, ui->tb_steps = steps;
    if (ui->show) progress_begin_epoch(&ui->bar, epoch, epochs, steps);
}

static void on_step(void *user, int64_t step, double loss, double acc) {
    train_ui *ui = user;
    if (ui->tb && ui->tb_every > 0 && step % ui->tb_every == 0) {
        herd_error err = {0};
        int64_t global = (ui->epoch - 1) * ui->tb_steps + step;
        herd_status st = herd_tb_scalar(ui->tb, "train/running_loss", global, (float)loss, 0, &err);
        if (!st && ui->tb_grads) st = tb_grad_norms(ui->tb, ui->tb_grads, global, &err);
        tb_check(ui, st, &err);
    }
    if (ui->show) progress_update(&ui->bar, step, loss, acc);
}

static void on_epoch_end(void *user, const herd_epoch_stats *s) {
    train_ui *ui = user;
    ui->elapsed += s->seconds;
    if (s->skipped_steps && ui->rank == 0)
        fprintf(stderr, "herd: warning: epoch %d: %lld step(s) skipped for non-finite gradients (--on-nan skip-step)\n",
                s->epoch, (long long)s->skipped_steps);
    if (ui->show)
        progress_end_epoch(&ui->bar, s->loss, s->accuracy, s->val_loss, s->val_accuracy, s->seconds,
                           s->images_per_second);
    char test[320] = "";
    double test_loss = -1, test_acc = -1, test_rmse = -1, test_auc = -1;
    if (ui->test && ui->test_metrics) {
        herd_error err = {0};
        herd_metrics *a = ui->test_metrics;
        if (herd_evaluate(ui->m, ui->test, ui->batch, ui->strategy, a, &err) == HERD_OK) {
            int has = herd_model_metrics(ui->m);
            test_loss = herd_metrics_loss(a);
            if (has & HERD_METRIC_ACCURACY) test_acc = herd_metrics_value(a, HERD_METRIC_ACCURACY);
            if (has & HERD_METRIC_RMSE) test_rmse = herd_metrics_value(a, HERD_METRIC_RMSE);
            if (has & HERD_METRIC_AUC) test_auc = herd_metrics_value(a, HERD_METRIC_AUC);
            char ta[32], tr[32], tu[32], text[128];
            snprintf(test, sizeof test, ", \"test_loss\": %.6f, \"test_accuracy\": %s, \"test_rmse\": %s, "
                     "\"test_auc\": %s, \"train_seconds\": %.3f", test_loss, json_num(test_acc, ta, sizeof ta),
                     json_num(test_rmse, tr, sizeof tr), json_num(test_auc, tu, sizeof tu), ui->elapsed);
            if (ui->show)
                printf("epoch %d test %s (loss %.4f) after %.1f s of training\n", s->epoch,
                       cli_metrics_text(ui->m, a, ", ", text, sizeof text), test_loss, ui->elapsed);
        }
    }
    if (ui->json) {
        char vl[32], va[32], a[32], r[32], u[32], vr[32], vu[32];
        fprintf(ui->json,
                "{\"epoch\": %d, \"loss\": %.6f, \"accuracy\": %s, \"rmse\": %s, \"auc\": %s, \"val_loss\": %s, "
                "\"val_accuracy\": %s, \"val_rmse\": %s, \"val_auc\": %s, \"seconds\": %.3f, "
                "\"images_per_second\": %.1f, \"lr\": %.6g%s}\n",
                s->epoch, s->loss, json_num(s->accuracy, a, sizeof a), json_num(s->rmse, r, sizeof r),
                json_num(s->auc, u, sizeof u), json_num(s->val_loss, vl, sizeof vl),
                json_num(s->val_accuracy, va, sizeof va), json_num(s->val_rmse, vr, sizeof vr),
                json_num(s->val_auc, vu, sizeof vu), s->seconds, s->images_per_second, s->lr, test);
        if (fflush(ui->json) != 0 || ferror(ui->json)) {
            herd_error err;
            herd_fail(&err, HERD_EIO, "%s: cannot write the JSON log: %s", ui->json_path, strerror(errno));
            output_failed(ui, &err);
            fclose(ui->json);
            ui->json = NULL;
        }
    }
    if (ui->tb) {
        const struct {
            const char *tag;
            double v;
        } scalars[] = {{"train/loss", s->loss},       {"train/accuracy", s->accuracy}, {"train/rmse", s->rmse},
                       {"train/auc", s->auc},         {"val/loss", s->val_loss},       {"val/accuracy", s->val_accuracy},
                       {"val/rmse", s->val_rmse},     {"val/auc", s->val_auc},         {"test/loss", test_loss},
                       {"test/accuracy", test_acc},   {"test/rmse", test_rmse},        {"test/auc", test_auc},
                       {"lr", s->lr},                 {"images_per_second", s->images_per_second}};
        herd_error err = {0};
        herd_status st = HERD_OK;
        for (size_t i = 0; i < sizeof scalars / sizeof scalars[0] && st == HERD_OK; i++)
            if (scalars[i].v >= 0) st = herd_tb_scalar(ui->tb, scalars[i].tag, s->epoch, (float)scalars[i].v, 0, &err);
        if (st == HERD_OK) st = herd_tb_flush(ui->tb, &err);
        tb_check(ui, st, &err);
    }
}

/* The one-screen summary at the end: where the time went, throughput, memory (rank 0's view).
 * feeders: the ranks whose samples add up to the images trained (a pipeline's stages all count
 * the same rows; parameter servers count none), so rank 0's samples times feeders is the total. */
static void print_run_summary(const herd_train_phases *p, double seconds, int world, int feeders, const herd_model *m) {
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    double total = p->data + p->compute + p->exchange + p->update;
    if (total <= 0) return;
    printf("run summary (rank 0): %lld steps, %.3f s training, %.0f images/s over %d rank%s\n", (long long)p->steps,
           seconds, seconds > 0 ? (double)p->samples * feeders / seconds : 0.0, world, world == 1 ? "" : "s");
    printf("  data %5.1f%%  compute %5.1f%%  gradient exchange %5.1f%%  optimizer %5.1f%%  (of %.3f s in steps)\n",
           100 * p->data / total, 100 * p->compute / total, 100 * p->exchange / total, 100 * p->update / total, total);
    printf("  peak memory %.1f MiB (planned activations %.1f MiB, optimizer state %.2f MiB)\n", ru.ru_maxrss / 1024.0,
           herd_model_planned_bytes(m) / 1048576.0, p->optimizer_floats * 4.0 / 1048576.0);
    if (p->checkpoint > 0 || p->checkpoint_end > 0)
        printf("  checkpoints held the training loop %.3f s (and %.3f s at the end, for the last background "
               "write)\n", p->checkpoint, p->checkpoint_end);
}

/* The job's layout: everything checkable from the options and the spec alone, so the same
 * answer comes before herd launches workers (world = -n) and on every rank of a job that
 * any launcher started. The strategy answers what each rank's model is planned for. */
typedef struct train_layout {
    herd_strategy_config scfg;
    int batch;
    const char *split, *ckpt_dir, *resume;
} train_layout;

static herd_status check_layout(const train_layout *l, herd_model *m, int world, herd_strategy_layout *out,
                                herd_error *err) {
    herd_status st = herd_strategy_layout_for(&l->scfg, world, l->batch, out, err);
    if (!st) st = herd_strategy_check_model(&l->scfg, m, err);
    if (st) return st;
    if (l->scfg.kind == HERD_STRATEGY_PS && l->scfg.staleness < 0 && (l->ckpt_dir || l->resume))
        return herd_fail(err, HERD_EARG, "checkpoints with --strategy ps need a bounded --staleness (a checkpoint "
                         "holds the state after an update count; asynchronous updates have none)");
    herd_strategy_config cuts = l->scfg;
    return l->scfg.kind == HERD_STRATEGY_PIPELINE
               ? cli_pipeline_cuts(m, l->scfg.stages, l->split, l->scfg.microbatches, cuts.cuts, err)
               : HERD_OK;
}

int cmd_train(int argc, char **argv) {
    const char *sparse_optimizer = NULL, *embedding_shard = NULL;
    const char *data = "fashion-mnist", *optimizer = "adam", *schedule = "constant", *backend = "cpu", *precision = "fp32", *decay = "all";
    const char *log_json = NULL, *tensorboard = NULL, *save = NULL, *weights = NULL, *progress_mode = "auto";
    int epochs = 5, batch = 32, threads = 0, warmup = 0, lr_step = 1, quiet = 0, test_each_epoch = 0;
    int workers = 1, deterministic = 0, det_groups = 4, ckpt_every = 0, keep_ckpt = 3, tb_every = 0, tb_grad_norms_on = 0,
        straggler_every = 0, ckpt_sync = 0, zero = 0;
    const char *trace_path = NULL;
    const char *ckpt_dir = NULL, *resume = NULL, *on_nan = "stop", *strategy_name = "dp", *staleness_s = "0";
    int servers = 1, stages = 2, microbatches = 4;
    const char *pipe_schedule = "1f1b", *split = NULL;
    float bucket_mb = 0, timeout = 60;
    const char *compress = "none";
    float lr = 1e-3f, momentum = 0.9f, weight_decay = 0, val_split = 0, lr_gamma = 0.1f, min_lr = 0, clip = 0;
    float sparse_lr = 0; /* 0: --lr */
    uint64_t seed = 0;
    int prefetch = 2, loader_threads = 1, cache = 0;
    float cache_mb = 1024;
    const char *augment = "none", *normalize = "none";
    cli_option opts[] = {
        {"--data", OPT_STR, &data, 0, 0, "SRC", "fashion-mnist (default), mnist, or a directory, file or SQL query (docs/DATA.md)", 0},
        {"--epochs", OPT_INT, &epochs, 0, 1e6, "N", "passes over the training set (default 5, or the spec's train line; 0: no training, --save writes the initial weights, as a comparison with another framework starts from)", 0},
        {"--batch", OPT_INT, &batch, 1, 65536, "N", "global batch size, split across ranks (default 32, or the spec's)", 0},
        {"--lr", OPT_FLOAT, &lr, 1e-12, 1e3, "X", "learning rate (default 1e-3, or the spec's)", 0},
        {"--optimizer", OPT_STR, &optimizer, 0, 0, "NAME", "sgd | momentum | nesterov | adam | adamw (default adam)", 0},
        {"--sparse-optimizer", OPT_STR, &sparse_optimizer, 0, 0, "NAME", "embedding tables: sgd | adagrad | rowwise_adagrad | adam (lazy "
         "Adam; default adam beside adam/adamw, else sgd)", 0},
        {"--sparse-lr", OPT_FLOAT, &sparse_lr, 1e-12, 1e3, "X", "embedding tables: learning rate of their sparse optimizer, on the same schedule as --lr (default: --lr, or the spec's sparse_lr)", 0},
        {"--embedding-shard", OPT_STR, &embedding_shard, 0, 0, "PLAN", "data parallel: shard the embedding tables across the ranks: table (each table on one rank), row (each rank a row range of every table) or auto (table-wise when within 5% of an even split of the bytes, else row-wise); each rank keeps only its rows and their optimizer state, ids and rows travel by alltoallv (default: every rank holds every table)", 0},
        {"--momentum", OPT_FLOAT, &momentum, 0, 0.9999, "X", "momentum for momentum/nesterov (default 0.9)", 0},
        {"--weight-decay", OPT_FLOAT, &weight_decay, 0, 10, "X", "L2 (sgd/adam) or decoupled (adamw) weight decay", 0},
        {"--decay", OPT_STR, &decay, 0, 0, "WHICH", "which parameters --weight-decay applies to: all (default, as torch.optim) or matrices (weights of 2 or more dims: none on biases and norms, as GPT training does)", 0},
        {"--lr-schedule", OPT_STR, &schedule, 0, 0, "NAME", "learning-rate schedule: constant | step | cosine", 0},
        {"--warmup", OPT_INT, &warmup, 0, 1e9, "STEPS", "linear learning-rate warm-up steps (default 0)", 0},
        {"--lr-step", OPT_INT, &lr_step, 1, 1e6, "EPOCHS", "step schedule: decay every EPOCHS epochs (default 1)", 0},
        {"--lr-gamma", OPT_FLOAT, &lr_gamma, 0, 1, "X", "step schedule: decay factor (default 0.1)", 0},
        {"--min-lr", OPT_FLOAT, &min_lr, 0, 1e3, "X", "cosine schedule: final learning rate (default 0)", 0},
        {"--clip-norm", OPT_FLOAT, &clip, 0, 1e9, "X", "clip gradients to this global L2 norm (default off)", 0},
        {"--seed", OPT_U64, &seed, 0, 0, "N", "seed for init, shuffling and dropout (default 0)", 0},
        {"--threads", OPT_INT, &threads, 1, 1024, "N", "threads (default: all cores)", 0},
        {"--backend", OPT_STR, &backend, 0, 0, "NAME", "cpu (fast, default) | ref (reference C, slow)", 0},
        {"--precision", OPT_STR, &precision, 0, 0, "NAME", "fp32 (default) | bf16: conv and dense products in bfloat16 with fp32 accumulation (CPUs with AVX512_BF16)", 0},
        {"--val-split", OPT_FLOAT, &val_split, 0, 0.9, "F", "hold out the last fraction F of the training set for validation", 0},
        {"--log-json", OPT_STR, &log_json, 0, 0, "FILE", "append one JSON object per epoch to FILE", 0},
        {"--tensorboard", OPT_STR, &tensorboard, 0, 0, "DIR", "write TensorBoard scalars per epoch (train/val/test loss and accuracy, lr, images_per_second) to an event file in DIR", 0},
        {"--straggler-report", OPT_INT, &straggler_every, 0, 1e9, "STEPS", "with several ranks: every STEPS steps name the slowest rank (busy time: the wall time less exchange waits) and its excess over the others' median; the per-rank table at the end (default 0: off)", 0},
        {"--tb-every", OPT_INT, &tb_every, 0, 1e9, "STEPS", "--tensorboard: also log train/running_loss (the epoch's running mean) every STEPS steps (default 0: off)", 0},
        {"--tb-grad-norms", OPT_FLAG, &tb_grad_norms_on, 0, 0, NULL, "--tensorboard --tb-every: also log grad_norm/LAYER (L2 norm of each layer's parameter gradients) and grad_norm/total at those steps", 0},
        {"--save", OPT_STR, &save, 0, 0, "FILE", "write the trained weights (safetensors) to FILE", 0},
        {"--weights", OPT_STR, &weights, 0, 0, "FILE", "start from these weights (safetensors) instead of random init", 0},
        {"--progress", OPT_STR, &progress_mode, 0, 0, "MODE", "auto | bar | plain | none (auto: a bar on a terminal, plain lines under mpirun/srun)", 0},
        {"--test-each-epoch", OPT_FLAG, &test_each_epoch, 0, 0, NULL, "also evaluate the test split after every epoch (printed and logged; not used for training)", 0},
        {"--checkpoint-dir", OPT_STR, &ckpt_dir, 0, 0, "DIR", "write checkpoints (safetensors: weights, optimizer state, position) into DIR", 0},
        {"--checkpoint-every", OPT_INT, &ckpt_every, 1, 1e9, "STEPS", "checkpoint every STEPS steps (default: once per epoch when --checkpoint-dir is given)", 0},
        {"--checkpoint-sync", OPT_FLAG, &ckpt_sync, 0, 0, NULL, "write each checkpoint before the next step (default: copy the state at the step boundary and write it in a background thread, one in flight)", 0},
        {"--keep-checkpoints", OPT_INT, &keep_ckpt, 0, 1e6, "K", "keep the newest K checkpoints (default 3, 0 = all)", 0},
        {"--resume", OPT_STR, &resume, 0, 0, "DIR", "continue exactly from the newest checkpoint in DIR (also checkpoints there)", 0},
        {"--on-nan", OPT_STR, &on_nan, 0, 0, "MODE", "a NaN/Inf loss or gradient: stop (default; names the first layer that went non-finite) or skip-step", 0},
        {"--trace", OPT_STR, &trace_path, 0, 0, "FILE", "write a Chrome/Perfetto timeline of every rank (layers, data, optimizer, gradient exchange)", 0},
        {"--quiet", OPT_FLAG, &quiet, 0, 0, NULL, "print only the final result", 0},
        {"--workers", OPT_INT, &workers, 1, 4096, "N", "-n N: train with N local worker processes (herd runs mpirun); under mpirun/srun the job's ranks are used", 0},
        {"--strategy", OPT_STR, &strategy_name, 0, 0, "NAME", "dp: data parallel, synchronous allreduce (default); ps: parameter server; pipeline: layers cut into stages", 0},
        {"--stages", OPT_INT, &stages, 2, 64, "P", "pipeline: stages per pipeline; -n N --stages P runs N/P pipelines side by side (default 2)", 0},
        {"--microbatches", OPT_INT, &microbatches, 1, 512, "M", "pipeline: micro-batches per batch (default 4)", 0},
        {"--schedule", OPT_STR, &pipe_schedule, 0, 0, "NAME", "pipeline: gpipe (all forwards, then all backwards) or 1f1b (default)", 0},
        {"--split", OPT_STR, &split, 0, 0, "A,B,..", "pipeline: cut after these layers (names from herd summary); default: balanced by FLOPs", 0},
        {"--servers", OPT_INT, &servers, 1, 4096, "S", "ps: the last S ranks hold the parameters and optimizer state (default 1)", 0},
        {"--staleness", OPT_STR, &staleness_s, 0, 0, "K", "ps: a worker may run K steps ahead of the slowest (0 = synchronous, inf = asynchronous; default 0)", 0},
        {"--bucket-mb", OPT_FLOAT, &bucket_mb, 0, 4096, "MB", "data parallel: gradient bucket size reduced while backward runs (default auto: 25 as PyTorch DDP, at most a quarter of the model)", 0},
        {"--grad-compress", OPT_STR, &compress, 0, 0, "KIND", "data parallel: none (default) or bf16 gradients on the wire", 0},
        {"--deterministic", OPT_FLAG, &deterministic, 0, 0, NULL, "fixed-order gradient reduction: bit-identical weights for 1, 2 or 4 ranks", 0},
        {"--zero", OPT_INT, &zero, 0, 1, "STAGE", "data parallel: 1 = ZeRO stage 1, each rank keeps and updates 1/N of the optimizer state (gradients reduce-scattered, parameters allgathered); 0 = off (default)", 0},
        {"--det-groups", OPT_INT, &det_groups, 1, 4096, "G", "--deterministic: micro-groups per batch; the world size must divide G (default 4)", 0},
        {"--timeout", OPT_FLOAT, &timeout, 1, 86400, "S", "data parallel: fail when a rank gives no answer within S seconds (default 60)", 0},
        {"--prefetch", OPT_INT, &prefetch, 0, 1024, "N", "batches prepared ahead by loader threads (default 2; 0 = load in the training thread)", 0},
        {"--loader-threads", OPT_INT, &loader_threads, 1, 256, "N", "loader threads when --prefetch > 0 (default 1)", 0},
        {"--cache", OPT_FLAG, &cache, 0, 0, NULL, "keep decoded samples in memory (for sources whose reads are expensive: PNG/JPEG, TFRecord, shards)", 0},
        {"--cache-mb", OPT_FLOAT, &cache_mb, 0.1, 1e7, "MB", "--cache: memory bound in MiB (default 1024); samples beyond it are read each time", 0},
        {"--augment", OPT_STR, &augment, 0, 0, "LIST", "training augmentation, comma-separated: none (default), rrc (random_resized_crop, torchvision's defaults), crop (random crop, zero padding 4), flip (horizontal), brightness=X, contrast=X, saturation=X, jitter=X (all three); seeded by --seed, epoch and sample", 0},
        {"--normalize", OPT_STR, &normalize, 0, 0, "MODE", "(x - mean) / std per channel: none (default), auto (the training data's stats, computed once at start), imagenet, or mean=M1,M2,..:std=S1,S2,..; applied to training samples after augmentation, and to validation and test; saved with the weights", 0},
        {0},
    };
    static const cli_command cmd = {"train", "herd train MODEL.spec [--data SRC] [options]",
                                    "Train the model described by MODEL.spec, then print its test accuracy.", 1, NULL};
    const char *pos[1];
    int r = cli_parse(argc, argv, 2, opts, &cmd, pos);
    if (r) return r == 1 ? 0 : r;

    static const char *const strategies[] = {"dp", "ps", "pipeline", NULL}, *const schedules[] = {"gpipe", "1f1b", NULL},
                             *const on_nans[] = {"stop", "skip-step", NULL}, *const compressions[] = {"none", "bf16", NULL},
                             *const modes[] = {"auto", "bar", "plain", "none", NULL};
    int strat = cli_choice("--strategy", strategy_name, strategies), sched = cli_choice("--schedule", pipe_schedule, schedules);
    int nan_mode = cli_choice("--on-nan", on_nan, on_nans), bf16 = cli_choice("--grad-compress", compress, compressions);
    int mode = cli_choice("--progress", progress_mode, modes);
    static const char *const decays[] = {"all", "matrices", NULL};
    int decay_matrices = cli_choice("--decay", decay, decays);
    double norm_mean[16], norm_std[16];
    int norm_n = 0;
    herd_loader_config aug = {0};
    int norm = cli_normalize_mode(normalize, norm_mean, norm_std, 16, &norm_n);
    if (strat < 0 || sched < 0 || nan_mode < 0 || bf16 < 0 || mode < 0 || decay_matrices < 0 || norm < 0 || cli_augment(augment, &aug) < 0)
        return 2;
    int ps = strat == 1, pipeline = strat == 2, staleness = -1;
    if (strcmp(staleness_s, "inf") != 0) {
        char *end;
        long k = strtol(staleness_s, &end, 10);
        if (!*staleness_s || *end || k < 0 || k > 1000000) {
            cli_error("--staleness expects a number of steps (0..1000000) or inf, found '%s'", staleness_s);
            return 2;
        }
        staleness = (int)k;
    }
    if ((tb_every > 0 || tb_grad_norms_on) && !tensorboard) {
        cli_error("%s needs --tensorboard DIR", tb_grad_norms_on ? "--tb-grad-norms" : "--tb-every");
        return 2;
    }
    if (tb_grad_norms_on && tb_every <= 0) {
        cli_error("--tb-grad-norms needs --tb-every STEPS (the steps at which the norms are logged)");
        return 2;
    }
    herd_model *m = NULL;
    herd_dataset *train = NULL, *test = NULL, *fit = NULL, *val = NULL, *norm_base[3] = {NULL, NULL, NULL};
    herd_comm *comm = NULL;
    herd_strategy *strategy = NULL;
    herd_trace *trace = NULL;
    train_ui ui = {0};
    herd_error err = {0};
    int rc = 1;
    /* the spec's train line gives defaults; explicit options win */
    herd_model *probe = NULL;
    if (cli_load_model(pos[0], seed, &probe, &err)) {
        cli_error("%s", err.msg);
        return 1;
    }
    const herd_spec_train *st = herd_model_spec_train(probe);
    char spec_opt[16];
    snprintf(spec_opt, sizeof spec_opt, "%s", st->optimizer);
    if (!cli_find(opts, "--optimizer")->seen && st->optimizer[0]) optimizer = spec_opt;
    if (!cli_find(opts, "--lr")->seen && st->lr > 0) lr = st->lr;
    if (!cli_find(opts, "--sparse-lr")->seen && st->sparse_lr > 0) sparse_lr = st->sparse_lr;
    if (!cli_find(opts, "--batch")->seen && st->batch > 0) batch = st->batch;
    if (!cli_find(opts, "--epochs")->seen && st->epochs > 0) epochs = st->epochs;
    if (!cli_find(opts, "--weight-decay")->seen && st->weight_decay > 0) weight_decay = st->weight_decay;
    if (resume && !ckpt_dir) ckpt_dir = resume;
    if (resume && strcmp(resume, ckpt_dir) != 0) {
        cli_error("--resume %s and --checkpoint-dir %s differ; give one directory", resume, ckpt_dir);
        herd_model_destroy(probe);
        return 2;
    }
    train_layout layout = {{.kind = ps ? HERD_STRATEGY_PS : pipeline ? HERD_STRATEGY_PIPELINE : HERD_STRATEGY_DP,
                            .servers = servers, .staleness = staleness, .bucket_mb = bucket_mb, .bf16 = bf16 == 1,
                            .deterministic = deterministic, .groups = det_groups, .zero = zero, .stages = stages,
                            .microbatches = microbatches, .one_f_one_b = sched == 1},
                           batch, split, ckpt_dir, resume};
    herd_strategy_layout plan;
    /* before launching workers: one line and exit 2, not one per rank under MPI's abort banner */
    if (workers > 1 && !herd_comm_launched() && check_layout(&layout, probe, workers, &plan, &err)) {
        cli_error("%s", err.msg);
        herd_model_destroy(probe);
        return 2;
    }
    if (cli_launch_local(argc, argv, workers, &r)) {
        herd_model_destroy(probe);
        return r;
    }

    if (herd_comm_open(&comm, timeout, &err)) {
        cli_error("%s", err.msg);
        herd_model_destroy(probe);
        return 1;
    }
    int rank = herd_comm_rank(comm), world = herd_comm_size(comm);
    ui.rank = rank;
    g_alone = world == 1;
    /* under any launcher every rank reaches the same verdict: rank 0 says it, all leave cleanly */
    herd_status layout_st = check_layout(&layout, probe, world, &plan, &err);
    if (layout_st) herd_model_destroy(probe);
    else m = probe; /* the model the spec's train line came from is the one trained: opened once */
    if (layout_st) {
        if (rank == 0) cli_error("%s", err.msg);
        cli_bound_shutdown(rank, world);
        herd_comm_close(comm);
        return 2;
    }
    int saves = save != NULL; /* on every rank: sharded tables are gathered on rank 0 for it, a collective */
    if (rank != 0) quiet = 1, log_json = NULL, tensorboard = NULL, save = NULL; /* rank 0 prints and writes files */
    /* every output location is checked before training, so none fails after it */
    if (save && cli_check_output(save, "--save", &err)) goto fail;
    if (trace_path && rank == 0 && cli_check_output(trace_path, "--trace", &err)) goto fail;
    threads = cli_threads(threads, rank, herd_comm_local_size(comm));
    int local_batch = plan.rows; /* the strategy's answer: this rank's model plans for it */
    herd_model_set_fixed_reduction(m, plan.fixed_reduction);
    if ((rc = cli_prepare_model(m, weights, backend, precision, local_batch, threads,
                                 plan.memory_reuse ? CLI_PLAN_TRAIN : CLI_PLAN_NO_REUSE))) goto fail_quiet;
    if (rank == 0 && *herd_model_import_note(m)) fprintf(stderr, "herd: warning: %s\n", herd_model_import_note(m));
    if (world == 1 && herd_model_batch_sync_layers(m)) /* said once: rank 0 is the only one */
        fprintf(stderr, "herd: note: batchnorm sync=1 in one process: each batch is normalised with its own "
                        "statistics, as with sync=0\n");
    rc = 1;
    herd_strategy_config scfg = layout.scfg;
    if (pipeline && cli_pipeline_cuts(m, stages, split, microbatches, scfg.cuts, &err)) goto fail;
    if (herd_strategy_create(&strategy, comm, m, &scfg, &err)) goto fail;
    if (trace_path) {
        if (herd_trace_create(&trace, (size_t)1 << 20, &err)) goto fail;
        herd_trace_start(trace, herd_now()); /* right after a broadcast: ranks start together */
        herd_model_set_trace(m, trace);
        herd_strategy_set_trace(strategy, trace);
    }
    herd_image_options shape = {0}; /* image sources decode to the model's input */
    herd_model_input_shape(m, &shape.c, &shape.h, &shape.w);
    if (herd_data_open_with(data, &shape, &train, &test, &err)) goto fail;
    if (herd_model_check_data(m, train, &err) || (test && herd_model_check_data(m, test, &err)))
        goto fail; /* before --normalize auto reads the data */
    fit = train;
    if (val_split > 0) {
        int64_t n_val = (int64_t)(train->n * (double)val_split);
        if (n_val < 1 || n_val >= train->n) {
            herd_fail(&err, HERD_EARG, "--val-split %g leaves no training or no validation samples of %lld",
                      val_split, (long long)train->n);
            goto fail;
        }
        if (herd_dataset_slice(&fit, train, 0, train->n - n_val, &err)) goto fail;
        if (herd_dataset_slice(&val, train, train->n - n_val, train->n, &err)) goto fail;
    }
    herd_dataset **normalized[3] = {&fit, &val, &test}; /* views over these bases, restored at the end */
    if (norm == 2 && norm_n != shape.c) {
        herd_fail(&err, HERD_EARG, "--normalize gives %d values each, the model's input has %d channels", norm_n,
                  shape.c);
        goto fail;
    }
    if (norm == 2 && herd_model_set_input_norm(m, norm_mean, norm_std, &err)) goto fail; /* saved with the weights */
    if (norm == 1 ? cli_normalize(m, normalized, norm_base, 3, rank, world, comm, quiet, &err)
                  : cli_apply_model_norm(m, normalized, norm_base, 3, quiet || norm == 2, &err)) /* or --weights' */
        goto fail;
    /* the loader normalises training samples itself, after augmenting them (torchvision's order:
     * colour jitter and a crop's padding see pixels, not normalised values) */
    const double *train_norm = NULL;
    if (norm_base[0]) {
        herd_dataset_close(fit);
        fit = norm_base[0], norm_base[0] = NULL;
        train_norm = herd_model_input_norm(m);
    }
    ui.json_path = log_json;
    if (log_json && !(ui.json = fopen(log_json, "a"))) {
        herd_fail(&err, HERD_EIO, "%s: cannot open for writing: %s", log_json, strerror(errno));
        goto fail;
    }
    if (tensorboard && herd_tb_open(&ui.tb, tensorboard, &err)) goto fail;
    ui.tb_every = tb_every;
    if (tb_grad_norms_on) ui.tb_grads = m;
    ui.show = !quiet && mode != 3;
    if (!(ui.test_metrics = malloc(sizeof *ui.test_metrics))) {
        herd_fail(&err, HERD_ENOMEM, "out of memory");
        goto fail;
    }
    if (test_each_epoch) ui.m = m, ui.test = test, ui.batch = local_batch, ui.strategy = strategy;
    /* auto: a bar on a terminal; under a launcher plain lines (mpirun hands ranks a pseudo-terminal
     * even when its own output goes to a file, which then got one line of carriage returns) */
    int tty = mode == 1 || (mode == 0 && !herd_comm_launched() && isatty(STDOUT_FILENO));
    progress_init(&ui.bar, stdout, tty);
    char tables_lr[48] = "";
    if (sparse_lr > 0 && sparse_lr != lr) snprintf(tables_lr, sizeof tables_lr, ", tables lr %g", sparse_lr);
    if (!quiet)
        printf("herd: training %s on %s (%lld train%s, batch %d, %s lr %g%s, %d rank%s x %d thread%s, %s backend%s%s)\n",
               pos[0], train->source, (long long)fit->n, val ? " + validation split" : "", batch, optimizer, lr,
               tables_lr, world, world == 1 ? "" : "s", threads, threads == 1 ? "" : "s", backend,
               strcmp(precision, "bf16") == 0 ? ", bf16 products" : "", deterministic ? ", deterministic" : "");
    if (!quiet && train->note[0]) printf("herd: %s: %s\n", train->source, train->note);

    herd_train_config cfg = herd_train_defaults();
    cfg.sparse_optimizer = sparse_optimizer;
    cfg.embedding_shard = embedding_shard;
    cfg.shard_tables_stay = !saves; /* nothing reads rank 0's whole tables after training */
    cfg.epochs = epochs, cfg.batch = batch, cfg.optimizer = optimizer, cfg.lr = lr, cfg.momentum = momentum;
    cfg.sparse_lr = sparse_lr;
    cfg.decay_matrices = decay_matrices == 1;
    cfg.weight_decay = weight_decay, cfg.schedule = schedule, cfg.warmup_steps = warmup, cfg.lr_step_epochs = lr_step;
    cfg.lr_gamma = lr_gamma, cfg.min_lr = min_lr, cfg.clip_norm = clip, cfg.seed = seed;
    cfg.strategy = strategy; /* one process is the strategy with one rank */
    cfg.checkpoint_dir = ckpt_dir;
    cfg.checkpoint_every = ckpt_dir ? (ckpt_every > 0 ? ckpt_every : (fit->n + batch - 1) / batch) : 0;
    cfg.keep_checkpoints = keep_ckpt;
    cfg.checkpoint_sync = ckpt_sync;
    cfg.resume = resume != NULL;
    cfg.skip_nonfinite = nan_mode == 1;
    cfg.trace = trace;
    herd_train_phases phases = {0};
    cfg.phases = &phases;
    cfg.straggler_every = straggler_every;
    cfg.loader = aug;
    cfg.loader.prefetch = prefetch, cfg.loader.threads = loader_threads, cfg.loader.seed = seed;
    cfg.loader.cache_bytes = cache ? (size_t)((double)cache_mb * 1048576.0) : 0;
    cfg.loader.mean = train_norm, cfg.loader.std = train_norm ? train_norm + shape.c : NULL;
    if (herd_strategy_is_server(strategy)) { /* a parameter server: apply updates until the workers are done */
        if (herd_train_serve(m, fit, &cfg, &err)) goto fail;
        rc = 0;
        goto fail;
    }
    herd_train_callbacks cb = {&ui, on_epoch_begin, on_step, on_epoch_end, on_notice, on_checkpoint};
    cfg.stop = &g_stop;
    catch_stop_signals();
    double t0 = herd_now();
    herd_status train_st = epochs > 0 ? herd_train(m, fit, val, &cfg, &cb, &err) : HERD_OK; /* 0: the init as it is */
    if (ui.output_err.status) { /* an output failed: that is the error, whatever the training did */
        err = ui.output_err;
        goto fail;
    }
    if (train_st == HERD_ESTOPPED && g_stop > 0) {
        if (rank == 0) {
            char dir[4096 + 64] = "";
            if (ckpt_dir && ui.last_checkpoint[0]) snprintf(dir, sizeof dir, " (continue with --resume %s)", ckpt_dir);
            cli_error("stopped by %s: %s; %s%s%s", g_stop == SIGINT ? "SIGINT" : "SIGTERM", err.msg,
                      ui.last_checkpoint[0] ? "the last checkpoint is " : "no checkpoint was written",
                      ui.last_checkpoint[0] ? ui.last_checkpoint : ckpt_dir ? " yet" : " (no --checkpoint-dir)", dir);
        }
        rc = 128 + g_stop;
        goto fail_quiet;
    }
    if (train_st) goto fail;
    double train_seconds = herd_now() - t0;
    if (trace) {
        herd_model_set_trace(m, NULL); /* the test evaluation below is not part of the timeline */
        if (cli_write_trace(trace_path, trace, comm, &err)) goto fail;
        if (rank == 0 && !quiet)
            printf("trace written to %s (%zu events dropped: buffer full)\n", trace_path, herd_trace_dropped(trace));
    }
    if (pipeline) { /* time each stage spent waiting for its neighbours, against the GPipe/1F1B theory */
        double times[2];
        herd_strategy_pipeline_times(strategy, &times[0], &times[1]);
        if (herd_strategy_reduce(strategy, times, 2, &err)) goto fail;
        if (rank == 0)
            printf("pipeline bubble: measured %.3f of step time waiting (mean over %d ranks); theory (P-1)/(M+P-1) = "
                   "%.3f\n", times[1] > 0 ? times[0] / times[1] : 0.0, world,
                   (double)(stages - 1) / (microbatches + stages - 1));
    }
    if (save && herd_model_save(m, save, &err)) goto fail;
    if (test) {
        char text[128];
        if (herd_evaluate(m, test, local_batch, cfg.strategy, ui.test_metrics, &err)) goto fail;
        if (rank == 0)
            printf("test %s (loss %.4f, %lld samples; trained %d epochs in %.1f s)\n",
                   cli_metrics_text(m, ui.test_metrics, ", ", text, sizeof text), herd_metrics_loss(ui.test_metrics),
                   (long long)test->n, epochs, train_seconds);
    }
    if (save && !quiet) printf("saved weights to %s\n", save);
    double load[3 * 64];
    int load_servers = 0;
    if (herd_strategy_server_load(strategy, load, 64, &load_servers, &err)) goto fail; /* every worker */
    if (!quiet)
        print_run_summary(&phases, train_seconds, world, pipeline ? world / stages : ps ? world - servers : world, m);
    for (int s = 0; s < load_servers && !quiet && rank == 0; s++)
        printf("  server rank %d: %.1f MiB moved, %.0f table rows, %.0f requests (all workers)\n", world - load_servers + s,
               load[3 * s] / 1048576.0, load[3 * s + 1], load[3 * s + 2]);
    rc = 0;
fail:
    if (rc) {
        if (world > 1) cli_error("rank %d: %s", rank, err.msg);
        else cli_error("%s", err.msg);
    }
fail_quiet:
    if (ui.json && fclose(ui.json) != 0 && !rc) {
        cli_error("%s: cannot write the JSON log: %s", log_json, strerror(errno));
        rc = 1;
    }
    cli_bound_shutdown(rank, world);
    if (rc && world > 1) herd_comm_abort(comm, rc); /* one rank's exit would leave the others waiting */
    if (ui.tb) {
        herd_error tb_err = {0};
        if (herd_tb_close(ui.tb, &tb_err)) cli_error("warning: %s", tb_err.msg);
    }
    herd_dataset **views[3] = {&fit, &val, &test};
    for (int i = 0; i < 3; i++)
        if (norm_base[i]) herd_dataset_close(*views[i]), *views[i] = norm_base[i];
    if (val) herd_dataset_close(val);
    if (fit && fit != train) herd_dataset_close(fit);
    if (train) herd_dataset_close(train);
    if (test) herd_dataset_close(test);
    herd_strategy_destroy(strategy);
    herd_model_destroy(m);
    herd_trace_destroy(trace);
    free(ui.test_metrics);
    herd_comm_close(comm);
    return rc;
}
