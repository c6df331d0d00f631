/* Prints herd's optimizer trajectories, LR schedules and clipped gradients for
 * test_optim_vs_torch.py, which rebuilds the same inputs in float32 for torch.
 *   optim_trace opt KIND LR WD MOMENTUM BETA1 BETA2 EPS STEPS N CHUNKS   -> N final params
 *   optim_trace sched KIND BASE WARMUP STEP_SIZE GAMMA TOTAL MIN NSTEPS -> NSTEPS lrs
 *   optim_trace clip MAX_NORM N                                         -> norm, then N grads */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "optim/optim.h"

/* The inputs, exact in float32 so python reproduces them bit for bit:
 * p0[i] = ((i % 17) - 8) / 8 and grad(step k) = 0.3*p + ((7i + 3k) % 11 - 5) / 16. */
static float init_param(int64_t i) { return (float)((i % 17) - 8) / 8.0f; }
static float grad_offset(int64_t i, int64_t k) { return (float)((7 * i + 3 * k) % 11 - 5) / 16.0f; }
static float clip_grad(int64_t i) { return (float)((13 * i) % 29 - 14) / 8.0f; }

static int usage(void) {
    fprintf(stderr, "usage: optim_trace opt|sched|clip ARGS... (see the file's header)\n");
    return 2;
}

static int run_opt(char **a) {
    herd_opt_kind kind;
    if (!herd_opt_kind_parse(a[0], &kind)) return usage();
    herd_optim_config c = herd_optim_defaults(kind);
    float lr = strtof(a[1], NULL);
    c.weight_decay = strtof(a[2], NULL);
    c.momentum = strtof(a[3], NULL);
    c.beta1 = strtof(a[4], NULL);
    c.beta2 = strtof(a[5], NULL);
    c.eps = strtof(a[6], NULL);
    int64_t steps = atoll(a[7]), n = atoll(a[8]), chunks = atoll(a[9]);
    if (n <= 0 || steps < 0 || chunks < 1) return usage();
    float *p = malloc((size_t)n * sizeof *p), *g = malloc((size_t)n * sizeof *g);
    herd_optimizer o;
    herd_error err;
    if (!p || !g || herd_optimizer_init(&o, &c, n, &err) != HERD_OK) {
        fprintf(stderr, "optim_trace: init failed: %s\n", p && g ? err.msg : "out of memory");
        return 1;
    }
    for (int64_t i = 0; i < n; i++) p[i] = init_param(i);
    for (int64_t k = 0; k < steps; k++) {
        for (int64_t i = 0; i < n; i++) g[i] = 0.3f * p[i] + grad_offset(i, k);
        if (chunks == 1) {
            herd_optimizer_step(&o, p, g, lr);
        } else { /* as a parameter-server shard would: ranges, same t */
            for (int64_t j = 0; j < chunks; j++)
                herd_optimizer_update_range(&o, p, g, n * j / chunks, n * (j + 1) / chunks, lr, k + 1);
        }
    }
    for (int64_t i = 0; i < n; i++) printf("%.9g\n", (double)p[i]);
    herd_optimizer_free(&o);
    free(p);
    free(g);
    return 0;
}

static int run_sched(char **a) {
    herd_schedule s;
    memset(&s, 0, sizeof s);
    if (!herd_sched_kind_parse(a[0], &s.kind)) return usage();
    s.base_lr = strtof(a[1], NULL);
    s.warmup_steps = atoll(a[2]);
    s.step_size = atoll(a[3]);
    s.gamma = strtof(a[4], NULL);
    s.total_steps = atoll(a[5]);
    s.min_lr = strtof(a[6], NULL);
    int64_t steps = atoll(a[7]);
    for (int64_t k = 0; k < steps; k++) printf("%.9g\n", (double)herd_schedule_lr(&s, k));
    return 0;
}

static int run_clip(char **a) {
    float max_norm = strtof(a[0], NULL);
    int64_t n = atoll(a[1]);
    if (n <= 0) return usage();
    float *g = malloc((size_t)n * sizeof *g);
    if (!g) return 1;
    for (int64_t i = 0; i < n; i++) g[i] = clip_grad(i);
    printf("%.17g\n", herd_clip_grad_norm(g, n, max_norm));
    for (int64_t i = 0; i < n; i++) printf("%.9g\n", (double)g[i]);
    free(g);
    return 0;
}

int main(int argc, char **argv) {
    if (argc == 12 && strcmp(argv[1], "opt") == 0) return run_opt(argv + 2);
    if (argc == 10 && strcmp(argv[1], "sched") == 0) return run_sched(argv + 2);
    if (argc == 4 && strcmp(argv[1], "clip") == 0) return run_clip(argv + 2);
    return usage();
}
