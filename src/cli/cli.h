/* The herd command's subcommands and the steps they share. */
#ifndef HERD_CLI_H
#define HERD_CLI_H

#include <stdint.h>

#include "herd/model.h"

int cmd_train(int argc, char **argv);
int cmd_eval(int argc, char **argv);
int cmd_predict(int argc, char **argv);
int cmd_summary(int argc, char **argv);
int cmd_bench(int argc, char **argv);
int cmd_export(int argc, char **argv);
int cmd_import(int argc, char **argv);
int cmd_convert(int argc, char **argv);
int cmd_stats(int argc, char **argv);
int cmd_generate(int argc, char **argv);

/* The metrics m measures in a, as "accuracy: 0.8421" joined by sep ("accuracy: 0.7712, auc:
 * 0.8011"); "" when it measures none. */
const char *cli_metrics_text(const herd_model *m, const herd_metrics *a, const char *sep, char *buf, size_t size);

/* herd_sum_fn over a herd_comm (ctx): herd_comm_allreduce_f64, for map-reduces like stats. */
herd_status cli_comm_sum(void *ctx, double *buf, int n, herd_error *err);

/* --augment LIST (comma-separated: none, crop, flip, rrc or random_resized_crop, brightness=X,
 * contrast=X, saturation=X, jitter=X for all three) into cfg's augment bits and jitter
 * strengths; 0, or -1 after printing the usage error. */
struct herd_loader_config;
int cli_augment(const char *list, struct herd_loader_config *cfg);
/* --normalize MODE: 0 none, 1 auto (stats of the training data), 2 given constants ("imagenet",
 * or "mean=M1,..:std=S1,..") written to mean/std (at most max each, *n of them); -1 after
 * printing the usage error. */
int cli_normalize_mode(const char *mode, double *mean, double *std, int max, int *n);

/* --normalize auto: per-channel stats of *sets[0] (the training data) over the ranks of comm
 * (a herd_comm), then every non-NULL *sets[i] becomes a normalised view; its base goes to
 * base[i] (close the view, then the base). Prints the stats on rank 0 unless quiet. The stats
 * also become m's input normalisation, saved with its weights. */
struct herd_dataset;
herd_status cli_normalize(herd_model *m, struct herd_dataset **const *sets, struct herd_dataset **base, int n,
                          int rank, int world, void *comm, int quiet, herd_error *err);
/* When m has an input normalisation (from its weights, or set by cli_normalize): every
 * non-NULL *sets[i] becomes a normalised view, its base going to base[i], and unless quiet a
 * note says so on stderr; otherwise nothing changes. */
herd_status cli_apply_model_norm(herd_model *m, struct herd_dataset **const *sets, struct herd_dataset **base, int n,
                                 int quiet, herd_error *err);

/* With workers > 1 and no MPI launcher around us: re-executes this command under
 * `mpirun -np workers` and never returns, except on failure with an exit code in *rc.
 * Returns 0 when this process should go on itself. */
int cli_launch_local(int argc, char **argv, int workers, int *rc);

/* Pipeline cut points (last layer of each stage but the last) from --split names or balanced by FLOPs. */
herd_status cli_pipeline_cuts(const herd_model *m, int stages, const char *split, int microbatches, int *cuts,
                              herd_error *err);

/* 1 if path names an ONNX model (ends in .onnx), which every command takes in place of a spec. */
int cli_is_onnx(const char *path);
/* Called before the end of an MPI job (herd_comm_close or herd_comm_abort): if the launcher does
 * not let it finish within 10 s (mpirun stopped), rank 0 says so and the process exits with 1.
 * A no-op for one process. */
void cli_bound_shutdown(int rank, int world);
/* An output file the run will write at its end (--save, --trace): checked at start by creating
 * and removing a file in its directory, so a missing or read-only place fails before training. */
herd_status cli_check_output(const char *path, const char *option, herd_error *err);
/* A spec initialised from seed, or an ONNX model with its weights. */
herd_status cli_load_model(const char *path, uint64_t seed, herd_model **out, herd_error *err);

/* Gathers every rank's trace on rank 0 and writes it to path (a collective: all ranks call it). */
struct herd_trace;
struct herd_comm;
herd_status cli_write_trace(const char *path, struct herd_trace *t, struct herd_comm *c, herd_error *err);

/* How cli_open_model plans memory: for training (default), forward passes only, or training
 * with every buffer on its own (pipeline stages interleave micro-batches). */
enum { CLI_PLAN_TRAIN = 0, CLI_PLAN_INFERENCE = 1, CLI_PLAN_NO_REUSE = 2 };
/* Loads a spec (or an ONNX model, weights included), initialises it from seed, loads weights (if not NULL) and prepares it for
 * batches up to `batch`. Prints the error and returns an exit code (0 = ok). */
int cli_open_model(const char *spec, const char *weights, const char *backend, const char *precision, int batch,
                   int threads, uint64_t seed, int plan, herd_model **out);
/* The second half of cli_open_model, for a model already loaded (herd train reads the spec's
 * train line first): weights, plan, prepare. Prints the error; returns an exit code. */
int cli_prepare_model(herd_model *m, const char *weights, const char *backend, const char *precision, int batch,
                      int threads, int plan);

#endif
