/* Learning-rate schedules as closed forms of a 0-based step number, so any step
 * (e.g. after resuming from a checkpoint) is computed without replaying history. */
#include <math.h>
#include <string.h>

#include "optim/optim.h"

static const struct {
    const char *name;
    herd_sched_kind kind;
} sched_kind_names[] = {
    {"constant", HERD_SCHED_CONSTANT},
    {"step", HERD_SCHED_STEP},
    {"cosine", HERD_SCHED_COSINE},
};

int herd_sched_kind_parse(const char *name, herd_sched_kind *out) {
    if (!name) return 0;
    for (size_t i = 0; i < sizeof sched_kind_names / sizeof sched_kind_names[0]; i++)
        if (strcmp(name, sched_kind_names[i].name) == 0) {
            if (out) *out = sched_kind_names[i].kind;
            return 1;
        }
    return 0;
}

static const double pi = 3.14159265358979323846;

/* The schedule after warm-up, at 0-based step s >= 0, in double. */
static double main_lr(const herd_schedule *sc, int64_t s) {
    double base = sc->base_lr;
    switch (sc->kind) {
    case HERD_SCHED_CONSTANT: return base;
    case HERD_SCHED_STEP:
        if (sc->step_size <= 0) return base;
        return base * pow((double)sc->gamma, (double)(s / sc->step_size));
    case HERD_SCHED_COSINE: {
        if (sc->total_steps <= 0) return base;
        /* torch's closed form is periodic past T_max; we hold min_lr instead */
        if (s > sc->total_steps) s = sc->total_steps;
        double min = sc->min_lr;
        return min + (base - min) * (1.0 + cos(pi * (double)s / (double)sc->total_steps)) / 2.0;
    }
    }
    return base;
}

float herd_schedule_lr(const herd_schedule *s, int64_t step) {
    if (step < 0) step = 0;
    if (step < s->warmup_steps) return (float)((double)s->base_lr * (double)(step + 1) / (double)s->warmup_steps);
    int64_t after = s->warmup_steps > 0 ? step - s->warmup_steps : step;
    return (float)main_lr(s, after);
}
