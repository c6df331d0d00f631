/* Optimizer steps, LR schedules and clipping against hand-computed values; the
 * 20-step comparison with torch.optim lives in test_optim_vs_torch.py. */
#include <string.h>

#include "check.h"
#include "optim/optim.h"

#define TOL 1e-6 /* relative and absolute, float32 arithmetic on O(1) values */

/* Runs `steps` whole-buffer steps of a one-parameter optimizer from p = 1 with the
 * gradients in gs and returns p. */
static float run1(herd_optim_config cfg, float lr, const float *gs, int steps) {
    herd_optimizer o;
    herd_error err;
    float p = 1.0f;
    if (herd_optimizer_init(&o, &cfg, 1, &err) != HERD_OK) return NAN;
    for (int i = 0; i < steps; i++) herd_optimizer_step(&o, &p, &gs[i], lr);
    herd_optimizer_free(&o);
    return p;
}

static void test_sgd_family(void) {
    const float gs[2] = {0.5f, 0.5f};
    herd_optim_config c = herd_optim_defaults(HERD_OPT_SGD);
    CHECK_CLOSE(run1(c, 0.1f, gs, 1), 0.95, TOL, TOL, "sgd: 1 - 0.1*0.5");
    c.weight_decay = 0.1f;
    CHECK_CLOSE(run1(c, 0.1f, gs, 1), 0.94, TOL, TOL, "sgd wd: 1 - 0.1*(0.5 + 0.1*1)");

    c = herd_optim_defaults(HERD_OPT_MOMENTUM);
    CHECK_CLOSE(run1(c, 0.1f, gs, 1), 0.95, TOL, TOL, "momentum step 1: buf = g");
    CHECK_CLOSE(run1(c, 0.1f, gs, 2), 0.855, TOL, TOL, "momentum step 2: buf = 0.9*0.5 + 0.5");
    c.weight_decay = 0.1f; /* d1 = 0.6, p1 = 0.94; d2 = 0.5 + 0.094 = 0.594, b2 = 0.54 + 0.594 */
    CHECK_CLOSE(run1(c, 0.1f, gs, 2), 0.94 - 0.1 * (0.9 * 0.6 + 0.594), TOL, TOL, "momentum wd step 2");

    c = herd_optim_defaults(HERD_OPT_NESTEROV);
    CHECK_CLOSE(run1(c, 0.1f, gs, 1), 0.905, TOL, TOL, "nesterov step 1: 1 - 0.1*(0.5 + 0.9*0.5)");
    CHECK_CLOSE(run1(c, 0.1f, gs, 2), 0.7695, TOL, TOL, "nesterov step 2: 0.905 - 0.1*(0.5 + 0.9*0.95)");
}

static void test_adam_family(void) {
    const float gs[2] = {0.5f, -0.25f};
    /* reference values from the torch formula evaluated in double */
    herd_optim_config c = herd_optim_defaults(HERD_OPT_ADAM);
    CHECK_CLOSE(run1(c, 0.1f, gs, 1), 0.900000002, TOL, TOL, "adam step 1: p - lr*g/(|g|+eps)");
    CHECK_CLOSE(run1(c, 0.1f, gs, 2), 0.8733662987078463, TOL, TOL, "adam step 2");
    c.weight_decay = 0.1f;
    CHECK_CLOSE(run1(c, 0.1f, gs, 2), 0.8544413674617625, TOL, TOL, "adam L2 wd step 2");

    c = herd_optim_defaults(HERD_OPT_ADAMW);
    CHECK(c.weight_decay == 1e-2f, "adamw default weight_decay %g", (double)c.weight_decay);
    c.weight_decay = 0.1f;
    CHECK_CLOSE(run1(c, 0.1f, gs, 2), 0.8544662986878463, TOL, TOL, "adamw decoupled wd step 2");
    c.weight_decay = 0.0f;
    CHECK_CLOSE(run1(c, 0.1f, gs, 2), 0.8733662987078463, TOL, TOL, "adamw wd 0 == adam");
}

static void test_update_range(void) {
    enum { N = 10 };
    const herd_opt_kind kinds[] = {HERD_OPT_SGD, HERD_OPT_MOMENTUM, HERD_OPT_NESTEROV, HERD_OPT_ADAM, HERD_OPT_ADAMW};
    for (size_t k = 0; k < sizeof kinds / sizeof kinds[0]; k++) {
        herd_optim_config c = herd_optim_defaults(kinds[k]);
        c.weight_decay = 0.05f;
        herd_optimizer o, whole;
        herd_error err;
        CHECK(herd_optimizer_init(&o, &c, N, &err) == HERD_OK, "init %s", herd_opt_kind_name(kinds[k]));
        CHECK(herd_optimizer_init(&whole, &c, N, &err) == HERD_OK, "init %s", herd_opt_kind_name(kinds[k]));
        float p[N], q[N], g[N];
        for (int i = 0; i < N; i++) {
            p[i] = q[i] = 1.0f + 0.1f * (float)i;
            g[i] = 0.3f - 0.07f * (float)i;
        }
        herd_optimizer_update_range(&o, p, g, 3, 7, 0.1f, 1);
        herd_optimizer_step(&whole, q, g, 0.1f);
        int outside_same = 1, inside_same = 1, state_clean = 1;
        for (int i = 0; i < N; i++) {
            int in = i >= 3 && i < 7;
            if (!in && p[i] != 1.0f + 0.1f * (float)i) outside_same = 0;
            if (in && p[i] != q[i]) inside_same = 0;
            if (!in && o.m && o.m[i] != 0.0f) state_clean = 0;
            if (!in && o.v && o.v[i] != 0.0f) state_clean = 0;
        }
        CHECK(outside_same, "%s: update_range changed params outside [3,7)", herd_opt_kind_name(kinds[k]));
        CHECK(inside_same, "%s: update_range differs from a whole step inside [3,7)", herd_opt_kind_name(kinds[k]));
        CHECK(state_clean, "%s: update_range changed state outside [3,7)", herd_opt_kind_name(kinds[k]));
        CHECK(o.t == 0 && whole.t == 1, "%s: t is counted by step only (%lld, %lld)", herd_opt_kind_name(kinds[k]),
              (long long)o.t, (long long)whole.t);
        herd_optimizer_free(&o);
        herd_optimizer_free(&whole);
    }
}

static void test_init_errors(void) {
    herd_optimizer o;
    herd_error err;
    herd_optim_config c = herd_optim_defaults(HERD_OPT_ADAM);
    CHECK(herd_optimizer_init(&o, &c, -1, &err) == HERD_EARG, "negative n");
    CHECK(o.m == NULL && o.v == NULL, "failed init leaves no state");
    herd_optimizer_free(&o); /* safe after a failed init */
    c.beta2 = 1.0f;
    CHECK(herd_optimizer_init(&o, &c, 4, &err) == HERD_EARG, "beta2 = 1");
    CHECK(strstr(err.msg, "betas") != NULL, "message names betas: %s", err.msg);
    c = herd_optim_defaults(HERD_OPT_NESTEROV);
    c.momentum = 0.0f;
    CHECK(herd_optimizer_init(&o, &c, 4, &err) == HERD_EARG, "nesterov without momentum");
    c = herd_optim_defaults(HERD_OPT_SGD);
    c.weight_decay = -1.0f;
    CHECK(herd_optimizer_init(&o, &c, 4, &err) == HERD_EARG, "negative weight decay");
    c.kind = (herd_opt_kind)42;
    c.weight_decay = 0.0f;
    CHECK(herd_optimizer_init(&o, &c, 4, &err) == HERD_EARG, "unknown kind");
    c = herd_optim_defaults(HERD_OPT_SGD);
    CHECK(herd_optimizer_init(&o, &c, 4, &err) == HERD_OK && o.m == NULL && o.v == NULL, "sgd keeps no state");
    herd_optimizer_free(&o);
    c = herd_optim_defaults(HERD_OPT_MOMENTUM);
    CHECK(herd_optimizer_init(&o, &c, 0, &err) == HERD_OK, "empty parameter set is fine");
    herd_optimizer_free(&o);
}

static void test_schedules(void) {
    herd_schedule s = {.kind = HERD_SCHED_CONSTANT, .base_lr = 0.1f};
    CHECK_CLOSE(herd_schedule_lr(&s, 0), 0.1, 0, TOL, "constant at 0");
    CHECK_CLOSE(herd_schedule_lr(&s, 12345), 0.1, 0, TOL, "constant at 12345");

    s = (herd_schedule){.kind = HERD_SCHED_STEP, .base_lr = 0.1f, .step_size = 3, .gamma = 0.5f};
    CHECK_CLOSE(herd_schedule_lr(&s, 2), 0.1, 0, TOL, "step: before first drop");
    CHECK_CLOSE(herd_schedule_lr(&s, 3), 0.05, 0, TOL, "step: first drop at step_size");
    CHECK_CLOSE(herd_schedule_lr(&s, 7), 0.025, 0, TOL, "step: floor(7/3) = 2 drops");

    s = (herd_schedule){.kind = HERD_SCHED_COSINE, .base_lr = 1.0f, .total_steps = 10, .min_lr = 0.1f};
    CHECK_CLOSE(herd_schedule_lr(&s, 0), 1.0, 0, TOL, "cosine: base at 0");
    CHECK_CLOSE(herd_schedule_lr(&s, 5), 0.55, 0, TOL, "cosine: midpoint (min+base)/2");
    CHECK_CLOSE(herd_schedule_lr(&s, 10), 0.1, 0, TOL, "cosine: min at T");
    CHECK_CLOSE(herd_schedule_lr(&s, 30), 0.1, 0, TOL, "cosine: held at min past T");
    CHECK_CLOSE(herd_schedule_lr(&s, 2), 0.1 + 0.9 * (1 + cos(3.14159265358979 * 0.2)) / 2, 0, TOL, "cosine at 2");

    /* warm-up: base*(step+1)/W, then the main schedule restarts from s = step - W */
    s.warmup_steps = 4;
    s.base_lr = 0.4f;
    CHECK_CLOSE(herd_schedule_lr(&s, 0), 0.1, 0, TOL, "warm-up step 0: base/W");
    CHECK_CLOSE(herd_schedule_lr(&s, 2), 0.3, 0, TOL, "warm-up step 2: 3*base/W");
    CHECK_CLOSE(herd_schedule_lr(&s, 3), 0.4, 0, TOL, "warm-up last step reaches base");
    CHECK_CLOSE(herd_schedule_lr(&s, 4), 0.4, 0, TOL, "after warm-up: main schedule at 0");
    CHECK_CLOSE(herd_schedule_lr(&s, 9), 0.1 + 0.3 * 0.5, 0, TOL, "after warm-up: cosine midpoint at 4+5");
    CHECK_CLOSE(herd_schedule_lr(&s, 14), 0.1, 0, TOL, "after warm-up: min at 4+T");
    s = (herd_schedule){.kind = HERD_SCHED_STEP, .base_lr = 1.0f, .step_size = 2, .gamma = 0.1f, .warmup_steps = 2};
    CHECK_CLOSE(herd_schedule_lr(&s, 1), 1.0, 0, TOL, "step + warm-up: last warm-up step");
    CHECK_CLOSE(herd_schedule_lr(&s, 3), 1.0, 0, TOL, "step + warm-up: s = 1");
    CHECK_CLOSE(herd_schedule_lr(&s, 4), 0.1, 0, TOL, "step + warm-up: s = 2, first drop");
}

static void test_clip(void) {
    float g[2] = {3.0f, 4.0f};
    double norm = herd_clip_grad_norm(g, 2, 1.0f);
    CHECK_CLOSE(norm, 5.0, 0, 1e-12, "norm returned before clipping");
    CHECK_CLOSE(g[0], 3.0 / (5.0 + 1e-6), 0, TOL, "clipped g[0] = 3*max/(norm+1e-6)");
    CHECK_CLOSE(g[1], 4.0 / (5.0 + 1e-6), 0, TOL, "clipped g[1]");
    CHECK_CLOSE(herd_clip_grad_norm(g, 2, 1.0f), 1.0, 0, 1e-6, "norm after clipping is max_norm");

    float h[3] = {1.0f, -2.0f, 2.0f};
    CHECK_CLOSE(herd_clip_grad_norm(h, 3, 10.0f), 3.0, 0, 1e-12, "norm below max");
    CHECK(h[0] == 1.0f && h[1] == -2.0f && h[2] == 2.0f, "below max_norm grads are untouched");
    CHECK_CLOSE(herd_clip_grad_norm(h, 3, 0.0f), 3.0, 0, 1e-12, "max_norm 0 only measures");
    CHECK(h[0] == 1.0f && h[1] == -2.0f && h[2] == 2.0f, "max_norm 0 leaves grads untouched");

    /* long buffer: exercises the 8-way partial sums and the tail */
    enum { N = 1003 };
    static float big[N];
    for (int i = 0; i < N; i++) big[i] = 0.5f;
    CHECK_CLOSE(herd_clip_grad_norm(big, N, 0.0f), 0.5 * sqrt((double)N), 0, 1e-12, "norm of 1003 x 0.5");
    CHECK_CLOSE(herd_clip_grad_norm(NULL, 0, 1.0f), 0.0, 0, 0, "empty buffer has norm 0");
}

static void test_names(void) {
    const char *names[] = {"sgd", "momentum", "nesterov", "adam", "adamw"};
    for (int i = 0; i < 5; i++) {
        herd_opt_kind k = (herd_opt_kind)-1;
        CHECK(herd_opt_kind_parse(names[i], &k) == 1, "parse %s", names[i]);
        CHECK(strcmp(herd_opt_kind_name(k), names[i]) == 0, "name round trip %s", names[i]);
    }
    herd_opt_kind k;
    CHECK(herd_opt_kind_parse("Adam", &k) == 0, "names are case-sensitive");
    CHECK(herd_opt_kind_parse("adamax", &k) == 0, "unknown optimizer");
    CHECK(herd_opt_kind_parse("", &k) == 0, "empty name");
    CHECK(herd_opt_kind_parse(NULL, &k) == 0, "NULL name");
    herd_sched_kind s;
    CHECK(herd_sched_kind_parse("constant", &s) == 1 && s == HERD_SCHED_CONSTANT, "parse constant");
    CHECK(herd_sched_kind_parse("step", &s) == 1 && s == HERD_SCHED_STEP, "parse step");
    CHECK(herd_sched_kind_parse("cosine", &s) == 1 && s == HERD_SCHED_COSINE, "parse cosine");
    CHECK(herd_sched_kind_parse("linear", &s) == 0, "unknown schedule");
}

/* Decay ranges: inside them the update is the decayed one, outside it the one without decay,
 * element for element bit-identical, for every kind; ranges covering everything change nothing;
 * bad ranges are refused. */
static void test_decay_ranges(void) {
    enum { N = 50 };
    const char *kinds[] = {"sgd", "momentum", "nesterov", "adam", "adamw"};
    for (size_t k = 0; k < sizeof kinds / sizeof kinds[0]; k++) {
        herd_opt_kind kind;
        herd_opt_kind_parse(kinds[k], &kind);
        herd_optim_config c = herd_optim_defaults(kind), c0;
        c.weight_decay = 0.1f;
        c0 = c;
        c0.weight_decay = 0.0f;
        herd_optimizer full, none, part, all;
        herd_error err = {0};
        CHECK(herd_optimizer_init(&full, &c, N, &err) == HERD_OK && herd_optimizer_init(&none, &c0, N, &err) == HERD_OK &&
                  herd_optimizer_init(&part, &c, N, &err) == HERD_OK && herd_optimizer_init(&all, &c, N, &err) == HERD_OK,
              "%s", err.msg);
        int64_t r[4] = {5, 20, 30, 31}, everything[2] = {0, N};
        CHECK(herd_optimizer_set_decay_ranges(&part, r, 2, &err) == HERD_OK, "%s", err.msg);
        CHECK(herd_optimizer_set_decay_ranges(&all, everything, 1, &err) == HERD_OK, "%s", err.msg);
        float p[4][N], g[N];
        for (int i = 0; i < N; i++) {
            g[i] = 0.01f * (float)((i * 37) % 23 - 11);
            for (int j = 0; j < 4; j++) p[j][i] = 0.5f + 0.01f * (float)((i * 13) % 17);
        }
        for (int step = 0; step < 3; step++) {
            herd_optimizer_step(&full, p[0], g, 0.05f);
            herd_optimizer_step(&none, p[1], g, 0.05f);
            herd_optimizer_step(&part, p[2], g, 0.05f);
            herd_optimizer_step(&all, p[3], g, 0.05f);
        }
        int bad = 0;
        for (int i = 0; i < N; i++) {
            int decayed = (i >= 5 && i < 20) || i == 30;
            bad += memcmp(&p[2][i], decayed ? &p[0][i] : &p[1][i], sizeof(float)) != 0;
            bad += memcmp(&p[3][i], &p[0][i], sizeof(float)) != 0;
        }
        CHECK(bad == 0, "%s: %d elements differ from the decayed / undecayed updates", kinds[k], bad);
        CHECK(memcmp(p[0], p[1], sizeof p[0]) != 0, "%s: the decay changed nothing (the test could not fail)", kinds[k]);
        int64_t unsorted[4] = {10, 20, 5, 8};
        CHECK(herd_optimizer_set_decay_ranges(&part, unsorted, 2, &err) == HERD_EARG && strstr(err.msg, "not sorted"),
              "unsorted ranges: %s", err.msg);
        herd_optimizer_free(&full), herd_optimizer_free(&none), herd_optimizer_free(&part), herd_optimizer_free(&all);
    }
}

int main(void) {
    test_decay_ranges();
    test_sgd_family();
    test_adam_family();
    test_update_range();
    test_init_errors();
    test_schedules();
    test_clip();
    test_names();
    return check_summary();
}
