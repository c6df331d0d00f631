/* Steps shared by subcommands: opening and preparing a model (a spec or an ONNX file). */
#include <errno.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli/cli.h"
#include "cli/options.h"
#include "dist/comm.h"
#include "herd/data.h"
#include "herd/onnx.h"

int cli_is_onnx(const char *path) { return herd_model_path_is_onnx(path); }

herd_status cli_load_model(const char *path, uint64_t seed, herd_model **out, herd_error *err) {
    return herd_model_open(out, path, seed, err);
}

int cli_prepare_model(herd_model *m, const char *weights, const char *backend, const char *precision, int batch,
                      int threads, int plan) {
    herd_error err = {0};
    if (weights && herd_model_load(m, weights, &err)) goto fail;
    if (herd_model_set_precision(m, precision, &err)) goto fail;
    herd_model_set_inference_only(m, plan == CLI_PLAN_INFERENCE);
    herd_model_set_memory_reuse(m, plan != CLI_PLAN_NO_REUSE);
    if (herd_model_prepare(m, backend, batch, threads, &err)) goto fail;
    const char *notes = herd_model_notes(m);
    if (*notes) fprintf(stderr, "herd: note: %s", notes);
    return 0;
fail:
    cli_error("%s", err.msg);
    return 1;
}

int cli_open_model(const char *spec, const char *weights, const char *backend, const char *precision, int batch,
                   int threads, uint64_t seed, int plan, herd_model **out) {
    herd_error err = {0};
    herd_model *m = NULL;
    if (cli_load_model(spec, seed, &m, &err)) {
        cli_error("%s", err.msg);
        return 1;
    }
    if (cli_prepare_model(m, weights, backend, precision, batch, threads, plan)) {
        herd_model_destroy(m);
        return 1;
    }
    *out = m;
    return 0;
}

herd_status cli_comm_sum(void *ctx, double *buf, int n, herd_error *err) {
    return herd_comm_allreduce_f64(ctx, buf, n, err);
}

/* One strength "NAME=X" of --augment into *v; 1 if the item is NAME=..., -1 if X is bad. */
static int augment_strength(const char *item, size_t len, const char *name, float *v) {
    size_t n = strlen(name);
    if (len <= n + 1 || strncmp(item, name, n) != 0 || item[n] != '=') return 0;
    char buf[32], *end;
    if (len - n - 1 >= sizeof buf) return -1;
    memcpy(buf, item + n + 1, len - n - 1);
    buf[len - n - 1] = '\0';
    double x = strtod(buf, &end);
    if (*end || !(x >= 0 && x <= 100)) return -1;
    *v = (float)x;
    return 1;
}

int cli_augment(const char *list, herd_loader_config *cfg) {
    static const struct {
        const char *name;
        int bit;
    } kinds[] = {{"none", 0}, {"crop", HERD_AUGMENT_CROP}, {"flip", HERD_AUGMENT_FLIP}, {"rrc", HERD_AUGMENT_RRC},
                 {"random_resized_crop", HERD_AUGMENT_RRC}};
    for (const char *p = list; *p;) {
        size_t len = strcspn(p, ","), i;
        for (i = 0; i < sizeof kinds / sizeof kinds[0]; i++)
            if (strlen(kinds[i].name) == len && strncmp(p, kinds[i].name, len) == 0) break;
        if (i < sizeof kinds / sizeof kinds[0]) {
            cfg->augment |= kinds[i].bit;
        } else {
            float j = -1;
            int k = augment_strength(p, len, "brightness", &cfg->brightness);
            if (!k) k = augment_strength(p, len, "contrast", &cfg->contrast);
            if (!k) k = augment_strength(p, len, "saturation", &cfg->saturation);
            if (!k && (k = augment_strength(p, len, "jitter", &j)) == 1)
                cfg->brightness = cfg->contrast = cfg->saturation = j;
            if (k != 1) {
                cli_error("--augment expects a list of none, crop, flip, rrc (random_resized_crop), brightness=X, "
                          "contrast=X, saturation=X, jitter=X (X in [0, 100]), found '%s'", list);
                return -1;
            }
        }
        p += len + (p[len] == ',');
    }
    return 0;
}

int cli_normalize_mode(const char *s, double *mean, double *std, int max, int *n) {
    static const double in_mean[3] = {0.485, 0.456, 0.406}, in_std[3] = {0.229, 0.224, 0.225};
    if (!strcmp(s, "none")) return 0;
    if (!strcmp(s, "auto")) return 1;
    if (!strcmp(s, "imagenet")) {
        memcpy(mean, in_mean, sizeof in_mean);
        memcpy(std, in_std, sizeof in_std);
        *n = 3;
        return 2;
    }
    /* mean=A,B,C:std=X,Y,Z */
    int counts[2] = {0, 0};
    const char *p = s;
    for (int part = 0; part < 2; part++) {
        const char *key = part ? "std=" : "mean=";
        if (strncmp(p, key, strlen(key)) != 0) goto bad;
        p += strlen(key);
        for (;;) {
            char *end;
            double v = strtod(p, &end);
            if (end == p || !isfinite(v) || counts[part] >= max || (part && !(v > 0))) goto bad;
            (part ? std : mean)[counts[part]++] = v;
            p = end;
            if (*p != ',') break;
            p++;
        }
        if (part == 0 && *p++ != ':') goto bad;
    }
    if (*p || counts[0] != counts[1]) goto bad;
    *n = counts[0];
    return 2;
bad:
    cli_error("--normalize expects none, auto, imagenet or mean=M1,M2,..:std=S1,S2,.. (as many of each, std > 0), "
              "found '%s'", s);
    return -1;
}

herd_status cli_apply_model_norm(herd_model *m, herd_dataset **const *sets, herd_dataset **base, int n, int quiet,
                                 herd_error *err) {
    const double *norm = herd_model_input_norm(m);
    if (!norm) return HERD_OK;
    int c, h, w;
    herd_model_input_shape(m, &c, &h, &w);
    herd_status st = HERD_OK;
    for (int i = 0; i < n && !st; i++) {
        if (!*sets[i]) continue;
        herd_dataset *view;
        if ((st = herd_dataset_normalize(&view, *sets[i], c, norm, norm + c, err))) break;
        base[i] = *sets[i];
        *sets[i] = view;
    }
    if (!st && !quiet)
        fprintf(stderr, "herd: normalising inputs as the weights were trained (mean %.6g, std %.6g%s)\n", norm[0],
                norm[c], c > 1 ? " for channel 0" : "");
    return st;
}

herd_status cli_normalize(herd_model *m, herd_dataset **const *sets, herd_dataset **base, int n, int rank, int world,
                          void *comm, int quiet, herd_error *err) {
    herd_data_stats s;
    herd_status st = herd_data_stats_compute(&s, *sets[0], rank, world, cli_comm_sum, comm, err);
    if (st) return st;
    int mc, mh, mw, channels = s.channels;
    herd_model_input_shape(m, &mc, &mh, &mw);
    if (channels != mc) { /* samples that fit by element count may still split into other channels */
        herd_data_stats_free(&s);
        return herd_fail(err, HERD_ESHAPE, "%s: --normalize auto: the samples have %d channels, the model's input %d",
                         (*sets[0])->source, channels, mc);
    }
    if ((st = herd_model_set_input_norm(m, s.mean, s.std, err))) { /* saved with the weights */
        herd_data_stats_free(&s);
        return st;
    }
    if (rank == 0 && !quiet) {
        printf("herd: normalising inputs by the training data's stats:");
        for (int c = 0; c < s.channels && c < 8; c++) printf(" mean %.6g std %.6g%s", s.mean[c], s.std[c],
                                                             c + 1 < s.channels ? "," : "");
        printf("%s\n", s.channels > 8 ? " ..." : "");
    }
    st = cli_apply_model_norm(m, sets, base, n, 1, err);
    herd_data_stats_free(&s);
    return st;
}

herd_status cli_check_output(const char *path, const char *option, herd_error *err) {
    struct stat sb;
    if (stat(path, &sb) == 0 && S_ISDIR(sb.st_mode))
        return herd_fail(err, HERD_EIO, "%s: is a directory (%s takes a file name)", path, option);
    const char *slash = strrchr(path, '/');
    char probe[4096 + 32];
    if (!slash) snprintf(probe, sizeof probe, ".herd-probe-XXXXXX");
    else snprintf(probe, sizeof probe, "%.*s/.herd-probe-XXXXXX", (int)(slash - path), path);
    int fd = mkstemp(probe); /* a file really created there: permissions, read-only mounts, missing dirs alike */
    if (fd < 0)
        return herd_fail(err, HERD_EIO, "%s: cannot write there (%s): %s", path, option, strerror(errno));
    close(fd);
    unlink(probe);
    return HERD_OK;
}

/* The end of an MPI job waits for the launcher (MPI_Finalize's fence through mpirun, or
 * MPI_Abort); a stopped launcher would keep every rank there forever. */
#define SHUTDOWN_BOUND_S 10
static volatile sig_atomic_t shutdown_rank;

static void on_shutdown_alarm(int sig) {
    (void)sig;
    static const char msg[] = "herd: the MPI launcher gave no answer at shutdown within 10 s (is mpirun stopped?); "
                              "exiting without it (everything herd writes was already written)\n";
    if (shutdown_rank == 0) {
        ssize_t k = write(STDERR_FILENO, msg, sizeof msg - 1);
        (void)k;
    }
    _exit(1);
}

void cli_bound_shutdown(int rank, int world) {
    if (world < 2) return;
    shutdown_rank = rank;
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_shutdown_alarm;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGALRM, &sa, NULL);
    alarm(SHUTDOWN_BOUND_S);
}

const char *cli_metrics_text(const herd_model *m, const herd_metrics *a, const char *sep, char *buf, size_t size) {
    static const struct {
        int flag;
        const char *name;
    } metrics[] = {{HERD_METRIC_ACCURACY, "accuracy"}, {HERD_METRIC_AUC, "auc"}, {HERD_METRIC_RMSE, "rmse"}};
    size_t len = 0;
    buf[0] = 0;
    for (size_t i = 0; i < sizeof metrics / sizeof metrics[0]; i++) {
        double v = herd_metrics_value(a, metrics[i].flag);
        if (!(herd_model_metrics(m) & metrics[i].flag) || v < 0 || len >= size) continue;
        len += (size_t)snprintf(buf + len, size - len, "%s%s: %.4f", len ? sep : "", metrics[i].name, v);
    }
    return buf;
}
