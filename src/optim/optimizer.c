/* SGD, heavy-ball and Nesterov momentum, Adam and AdamW over flat float buffers,
 * following torch.optim 1.13 (single-tensor path) operation by operation. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "optim/optim.h"

static const struct {
    const char *name;
    herd_opt_kind kind;
} opt_kind_names[] = {
    {"sgd", HERD_OPT_SGD},   {"momentum", HERD_OPT_MOMENTUM}, {"nesterov", HERD_OPT_NESTEROV},
    {"adam", HERD_OPT_ADAM}, {"adamw", HERD_OPT_ADAMW},
};
#define N_OPT_KINDS (sizeof opt_kind_names / sizeof opt_kind_names[0])

int herd_opt_kind_parse(const char *name, herd_opt_kind *out) {
    if (!name) return 0;
    for (size_t i = 0; i < N_OPT_KINDS; i++)
        if (strcmp(name, opt_kind_names[i].name) == 0) {
            if (out) *out = opt_kind_names[i].kind;
            return 1;
        }
    return 0;
}

const char *herd_opt_kind_name(herd_opt_kind kind) {
    for (size_t i = 0; i < N_OPT_KINDS; i++)
        if (opt_kind_names[i].kind == kind) return opt_kind_names[i].name;
    return "unknown";
}

herd_optim_config herd_optim_defaults(herd_opt_kind kind) {
    herd_optim_config c;
    c.kind = kind;
    c.momentum = 0.9f;
    c.beta1 = 0.9f;
    c.beta2 = 0.999f;
    c.eps = 1e-8f;
    /* torch.optim.AdamW is the only one whose default weight decay is not 0 */
    c.weight_decay = kind == HERD_OPT_ADAMW ? 1e-2f : 0.0f;
    return c;
}

static int in_unit(float x) { return isfinite(x) && x >= 0.0f && x < 1.0f; }

static herd_status check_config(const herd_optim_config *c, herd_error *err) {
    if (strcmp(herd_opt_kind_name(c->kind), "unknown") == 0)
        return herd_fail(err, HERD_EARG, "optimizer: unknown kind %d", (int)c->kind);
    if (!(isfinite(c->weight_decay) && c->weight_decay >= 0.0f))
        return herd_fail(err, HERD_EARG, "optimizer: weight_decay must be finite and >= 0, got %g",
                         (double)c->weight_decay);
    if (c->kind == HERD_OPT_MOMENTUM || c->kind == HERD_OPT_NESTEROV) {
        if (!in_unit(c->momentum))
            return herd_fail(err, HERD_EARG, "optimizer: momentum must be in [0, 1), got %g", (double)c->momentum);
        if (c->kind == HERD_OPT_NESTEROV && c->momentum == 0.0f) /* torch refuses this too */
            return herd_fail(err, HERD_EARG, "optimizer: nesterov needs momentum > 0");
    }
    if (c->kind == HERD_OPT_ADAM || c->kind == HERD_OPT_ADAMW) {
        if (!in_unit(c->beta1) || !in_unit(c->beta2))
            return herd_fail(err, HERD_EARG, "optimizer: betas must be in [0, 1), got %g, %g", (double)c->beta1,
                             (double)c->beta2);
        if (!(isfinite(c->eps) && c->eps >= 0.0f))
            return herd_fail(err, HERD_EARG, "optimizer: eps must be finite and >= 0, got %g", (double)c->eps);
    }
    return HERD_OK;
}

static float *zeroed_floats(int64_t n) {
    size_t bytes;
    if (!herd_mul_size((size_t)n, sizeof(float), &bytes)) return NULL;
    float *p = herd_aligned_alloc(bytes);
    if (p) memset(p, 0, bytes);
    return p;
}

herd_status herd_optimizer_init(herd_optimizer *o, const herd_optim_config *cfg, int64_t n, herd_error *err) {
    memset(o, 0, sizeof *o);
    herd_status st = check_config(cfg, err);
    if (st != HERD_OK) return st;
    if (n < 0) return herd_fail(err, HERD_EARG, "optimizer: negative parameter count %lld", (long long)n);
    o->cfg = *cfg;
    o->n = n;
    if (cfg->kind != HERD_OPT_SGD) {
        /* Zero-initialised on purpose: with dampening 0, momentum*0 + g == g exactly,
         * which is torch's "buf = clone(grad)" on the first step without a flag. */
        o->m = zeroed_floats(n);
        if (!o->m) goto fail;
    }
    if (cfg->kind == HERD_OPT_ADAM || cfg->kind == HERD_OPT_ADAMW) {
        o->v = zeroed_floats(n);
        if (!o->v) goto fail;
    }
    return HERD_OK;
fail:
    herd_optimizer_free(o);
    return herd_fail(err, HERD_ENOMEM, "optimizer: cannot allocate state for %lld parameters", (long long)n);
}

void herd_optimizer_free(herd_optimizer *o) {
    if (!o) return;
    herd_aligned_free(o->m);
    herd_aligned_free(o->v);
    free(o->decay);
    o->m = NULL;
    o->v = NULL;
    o->decay = NULL;
    o->n_decay = 0;
}

herd_status herd_optimizer_set_decay_ranges(herd_optimizer *o, const int64_t *ranges, int n_ranges, herd_error *err) {
    for (int i = 0; i < n_ranges; i++)
        if (ranges[2 * i] < (i ? ranges[2 * i - 1] : 0) || ranges[2 * i + 1] < ranges[2 * i] || ranges[2 * i + 1] > o->n)
            return herd_fail(err, HERD_EARG, "optimizer: decay range %d [%lld, %lld) is not sorted within [0, %lld)", i,
                             (long long)ranges[2 * i], (long long)ranges[2 * i + 1], (long long)o->n);
    int64_t *copy = malloc((size_t)(n_ranges > 0 ? n_ranges : 1) * 2 * sizeof *copy);
    if (!copy) return herd_fail(err, HERD_ENOMEM, "out of memory");
    if (n_ranges) memcpy(copy, ranges, (size_t)n_ranges * 2 * sizeof *copy);
    free(o->decay);
    o->decay = copy, o->n_decay = n_ranges;
    return HERD_OK;
}

/* Each kernel below is one pass over [0, n) of already-offset pointers, with the
 * per-step scalars hoisted, so the loops vectorise. Operation order and float
 * roundings follow torch's single-tensor code: e.g. SGD's weight decay is
 * d = g + wd*p, then p = p + (-lr)*d. */

static void sgd_kernel(float *restrict p, const float *restrict g, int64_t n, float lr, float wd) {
    for (int64_t i = 0; i < n; i++) {
        float d = g[i] + wd * p[i];
        p[i] = p[i] - lr * d;
    }
}

static void momentum_kernel(float *restrict p, const float *restrict g, float *restrict buf, int64_t n, float lr,
                            float wd, float mu) {
    for (int64_t i = 0; i < n; i++) {
        float d = g[i] + wd * p[i];
        float b = mu * buf[i] + d;
        buf[i] = b;
        p[i] = p[i] - lr * b;
    }
}

static void nesterov_kernel(float *restrict p, const float *restrict g, float *restrict buf, int64_t n, float lr,
                            float wd, float mu) {
    for (int64_t i = 0; i < n; i++) {
        float d = g[i] + wd * p[i];
        float b = mu * buf[i] + d;
        buf[i] = b;
        p[i] = p[i] - lr * (d + mu * b);
    }
}

/* decay is 1 - lr*wd for AdamW (applied to p before the moments, as torch does)
 * and 1 for Adam; l2 is wd for Adam (added to the gradient) and 0 for AdamW. */
static void adam_kernel(float *restrict p, const float *restrict g, float *restrict m, float *restrict v, int64_t n,
                        float decay, float l2, float beta1, float beta2, float step_size, float bc2_sqrt, float eps) {
    const float a1 = 1.0f - beta1, a2 = 1.0f - beta2;
    for (int64_t i = 0; i < n; i++) {
        float pi = p[i] * decay;
        float gi = g[i] + l2 * pi;
        float mi = beta1 * m[i] + a1 * gi;
        float vi = beta2 * v[i] + a2 * (gi * gi);
        m[i] = mi;
        v[i] = vi;
        float denom = sqrtf(vi) / bc2_sqrt + eps;
        p[i] = pi - step_size * (mi / denom);
    }
}

/* [begin, end) with weight decay wd (the config's, or 0 outside the decay ranges) */
static void update_segment(herd_optimizer *o, float *params, const float *grads, int64_t begin, int64_t end, float lr,
                           int64_t t, float wd);

void herd_optimizer_update_range(herd_optimizer *o, float *params, const float *grads, int64_t begin, int64_t end,
                                 float lr, int64_t t) {
    HERD_ASSERT(o && params && grads);
    HERD_ASSERT(0 <= begin && begin <= end && end <= o->n);
    float wd = o->cfg.weight_decay;
    if (!o->decay || wd == 0.0f) {
        update_segment(o, params, grads, begin, end, lr, t, wd);
        return;
    }
    int64_t x = begin;
    for (int i = 0; i < o->n_decay && x < end; i++) {
        int64_t lo = o->decay[2 * i], hi = o->decay[2 * i + 1];
        if (hi <= x) continue;
        if (lo > x) update_segment(o, params, grads, x, lo < end ? lo : end, lr, t, 0.0f), x = lo;
        if (x < end) update_segment(o, params, grads, x, hi < end ? hi : end, lr, t, wd), x = hi;
    }
    if (x < end) update_segment(o, params, grads, x, end, lr, t, 0.0f);
}

static void update_segment(herd_optimizer *o, float *params, const float *grads, int64_t begin, int64_t end, float lr,
                           int64_t t, float wd) {
    const herd_optim_config *c = &o->cfg;
    int64_t len = end - begin;
    float *p = params + begin;
    const float *g = grads + begin;
    switch (c->kind) {
    case HERD_OPT_SGD: sgd_kernel(p, g, len, lr, wd); break;
    case HERD_OPT_MOMENTUM: momentum_kernel(p, g, o->m + begin, len, lr, wd, c->momentum); break;
    case HERD_OPT_NESTEROV: nesterov_kernel(p, g, o->m + begin, len, lr, wd, c->momentum); break;
    case HERD_OPT_ADAM:
    case HERD_OPT_ADAMW: {
        HERD_ASSERT(t >= 1);
        /* torch computes these in Python doubles and rounds them to float when the
         * tensor op runs; we do the same. */
        double bc1 = 1.0 - pow((double)c->beta1, (double)t);
        double bc2 = 1.0 - pow((double)c->beta2, (double)t);
        float step_size = (float)((double)lr / bc1);
        float bc2_sqrt = (float)sqrt(bc2);
        int adamw = c->kind == HERD_OPT_ADAMW;
        float decay = adamw ? (float)(1.0 - (double)lr * (double)wd) : 1.0f;
        float l2 = adamw ? 0.0f : wd;
        adam_kernel(p, g, o->m + begin, o->v + begin, len, decay, l2, c->beta1, c->beta2, step_size, bc2_sqrt,
                    c->eps);
        break;
    }
    }
}

void herd_optimizer_step(herd_optimizer *o, float *params, const float *grads, float lr) {
    o->t++;
    herd_optimizer_update_range(o, params, grads, 0, o->n, lr, o->t);
}

typedef struct step_job {
    herd_optimizer *o;
    float *params;
    const float *grads;
    float lr;
} step_job;

/* Chunks of 16 floats, so no two threads share a cache line of p, m or v. */
static void step_chunks(void *ctx, int64_t c0, int64_t c1, int thread) {
    (void)thread;
    step_job *j = ctx;
    int64_t end = c1 * 16 < j->o->n ? c1 * 16 : j->o->n;
    herd_optimizer_update_range(j->o, j->params, j->grads, c0 * 16, end, j->lr, j->o->t);
}

void herd_optimizer_step_pool(herd_optimizer *o, float *params, const float *grads, float lr, herd_pool *pool) {
    /* below ~64k floats the pool's wake-up costs more than the split saves */
    if (!pool || herd_pool_threads(pool) == 1 || o->n < 65536) {
        herd_optimizer_step(o, params, grads, lr);
        return;
    }
    o->t++;
    step_job j = {.o = o, .params = params, .grads = grads, .lr = lr};
    herd_pool_for(pool, (o->n + 15) / 16, step_chunks, &j);
}
