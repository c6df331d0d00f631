/* herd's side of bench/embeddings: the training step time of an embedding_bag model (batch B
 * of bags of L ids into a ROWS x 64 table, sum, then a dense classifier) with lazy Adam on the
 * table and Adam on the dense layer, for each ROWS given, in one run: a row-sparse gradient
 * makes the step cost the batch's rows, not the table's. Also the peak RSS after each size.
 * usage: embedding_step B L STEPS ROWS...   (prints one "rows=... step_ms=..." line per size) */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include "herd/herd.h"

static void print_cpu(void) {
    char line[512];
    FILE *f = fopen("/proc/cpuinfo", "r");
    while (f && fgets(line, sizeof line, f))
        if (strncmp(line, "model name", 10) == 0) {
            printf("cpu: %s", strchr(line, ':') ? strchr(line, ':') + 2 : line);
            break;
        }
    if (f) fclose(f);
}

static double peak_rss_mib(void) {
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_maxrss / 1024.0;
}

int main(int argc, char **argv) {
    if (argc < 5) {
        fprintf(stderr, "usage: embedding_step B L STEPS ROWS...\n");
        return 2;
    }
    int B = atoi(argv[1]), L = atoi(argv[2]), steps = atoi(argv[3]);
    print_cpu();
    for (int a = 4; a < argc; a++) {
        long long rows = atoll(argv[a]);
        char spec[256];
        snprintf(spec, sizeof spec, "input %d dtype=i32\nembedding_bag %lld 64 mode=sum\ndense 2\n", L, rows);
        herd_error err = {0};
        herd_model *m = NULL;
        if (herd_model_create(&m, spec, B, 1, 1, &err)) {
            fprintf(stderr, "embedding_step: %s\n", err.msg);
            return 1;
        }
        int64_t n = (int64_t)B * (steps + 5), xd[2] = {n, L}, yd[1] = {n};
        int32_t *x = malloc((size_t)(n * L) * 4), *y = malloc((size_t)n * 4);
        herd_rng r;
        herd_rng_init(&r, 5, 0);
        for (int64_t i = 0; i < n * L; i++) x[i] = (int32_t)herd_rng_below(&r, (uint32_t)rows);
        for (int64_t i = 0; i < n; i++) y[i] = (int32_t)(x[i * L] % 2);
        herd_dataset *ds = NULL;
        if (herd_dataset_from_memory(&ds, herd_tensor_make(HERD_I32, 2, xd, x), herd_tensor_make(HERD_I32, 1, yd, y), 2,
                                     "synthetic", &err)) {
            fprintf(stderr, "embedding_step: %s\n", err.msg);
            return 1;
        }
        herd_train_config cfg = herd_train_defaults();
        cfg.batch = B, cfg.optimizer = "adam", cfg.sparse_optimizer = "adam", cfg.lr = 1e-3f;
        herd_trainer *t = NULL;
        if (herd_trainer_create(&t, m, &cfg, steps, &err)) {
            fprintf(stderr, "embedding_step: %s\n", err.msg);
            return 1;
        }
        int64_t *idx = malloc((size_t)n * sizeof *idx);
        for (int64_t i = 0; i < n; i++) idx[i] = i;
        double t0 = 0;
        for (int s = 0; s < steps + 5; s++) {
            if (s == 5) t0 = herd_now(); /* after 5 warm-up steps */
            herd_step_result res;
            if (herd_trainer_step(t, ds, idx + (int64_t)s * B, B, &res, &err)) {
                fprintf(stderr, "embedding_step: %s\n", err.msg);
                return 1;
            }
        }
        double ms = (herd_now() - t0) * 1e3 / steps;
        printf("rows=%lld dim=64 batch=%d ids=%d step_ms=%.3f peak_rss_mib=%.0f table_mib=%.0f\n", rows, B, L, ms,
               peak_rss_mib(), (double)rows * 64 * 4 / 1048576.0);
        fflush(stdout);
        herd_trainer_destroy(t);
        herd_dataset_close(ds);
        herd_model_destroy(m);
        free(idx);
    }
    return 0;
}
