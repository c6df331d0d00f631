/* The loss table, the loss node's arguments, and the metrics kinds measure. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "model/loss.h"

#define HERD_LOSS_ROW(k) &herdi_loss_##k,
static const loss_kind *const kinds[] = {HERD_LOSS_KINDS(HERD_LOSS_ROW)};
#undef HERD_LOSS_ROW
#define HERD_LOSS_COUNT(k) +1
_Static_assert(sizeof kinds / sizeof kinds[0] == 0 HERD_LOSS_KINDS(HERD_LOSS_COUNT), "one table row per loss kind");
#undef HERD_LOSS_COUNT

const loss_kind *herdi_loss_kind_by_name(const char *name) {
    if (name && !strcmp(name, "cross_entropy")) name = "xent"; /* the long name specs have used */
    for (size_t i = 0; name && i < sizeof kinds / sizeof kinds[0]; i++)
        if (!strcmp(kinds[i]->name, name)) return kinds[i];
    return NULL;
}

const char *herdi_loss_names(void) {
    static char buf[128];
    if (!buf[0])
        for (size_t i = 0; i < sizeof kinds / sizeof kinds[0]; i++)
            snprintf(buf + strlen(buf), sizeof buf - strlen(buf), "%s%s", i ? ", " : "", kinds[i]->name);
    return buf;
}

int herdi_loss_configure(model_loss *cfg, const loss_kind *kind, const herd_layer_arg *args, int n_args, char *msg,
                   size_t size) {
    model_loss c;
    memset(&c, 0, sizeof c);
    c.kind = kind;
    for (int i = 0; i < n_args; i++) {
        int known = 0;
        for (const char *const *k = kind->keys; k && *k && !known; k++) known = !strcmp(*k, args[i].key);
        if (!known) {
            snprintf(msg, size, "loss %s: unknown argument '%s'%s", kind->name, args[i].key,
                     kind->keys ? "" : " (it takes none)");
            return 0;
        }
        if (!kind->configure(&c, args[i].key, args[i].value, msg, size)) return 0;
    }
    *cfg = c;
    return 1;
}

int herdi_loss_bad_class(const loss_call *c, char *msg, size_t size) {
    const int32_t *y = c->target;
    for (int64_t i = 0; i < (int64_t)c->B * c->P; i++) {
        if ((y[i] >= 0 && y[i] < c->K) || (c->cfg->ignore && y[i] == c->cfg->ignore_index)) continue;
        if (c->P > 1)
            snprintf(msg, size, "label %d at position %lld of sample %lld is outside the model's %lld classes",
                     (int)y[i], (long long)(i % c->P), (long long)(i / c->P), (long long)c->K);
        else
            snprintf(msg, size, "label %d of sample %lld is outside the model's %lld outputs", (int)y[i], (long long)i,
                     (long long)c->K);
        return (int)(i / c->P);
    }
    return -1;
}

int herdi_loss_values_fit(int ndim, const int64_t *dims, const herd_tensor *y) {
    int64_t n = 1;
    for (int d = 0; d < ndim; d++) n *= dims[d];
    return y->dtype == HERD_F32 && herd_tensor_numel(y) == n &&
           (y->ndim == ndim ? !memcmp(y->dims, dims, (size_t)ndim * sizeof *dims) : n == 1);
}

/* ---- metrics ---- */

void herdi_metric_classes(const loss_call *c, herd_metrics *acc) {
    const int32_t *labels = c->target;
    int64_t n = (int64_t)c->B * c->P, K = c->K;
    for (int64_t i = 0; i < n; i++) {
        if (c->cfg->ignore && labels[i] == c->cfg->ignore_index) continue;
        const float *row = c->out + i * K;
        int64_t best = 0;
        for (int64_t k = 1; k < K; k++)
            if (row[k] > row[best]) best = k;
        acc->hits += best == labels[i];
        acc->counted += 1;
    }
}

void herdi_metric_sq_err(const float *pred, const float *target, int64_t n, float (*fn)(float), herd_metrics *acc) {
    double s = 0;
    for (int64_t i = 0; i < n; i++) {
        double e = (double)(fn ? fn(pred[i]) : pred[i]) - target[i];
        s += e * e;
    }
    acc->sq_err += s;
    acc->values += (double)n;
}

void herdi_metric_binary(const float *logits, const float *target, int64_t n, herd_metrics *acc) {
    for (int64_t i = 0; i < n; i++) {
        int pos = target[i] >= 0.5f;
        acc->hits += (logits[i] > 0) == pos;
        acc->counted += 1;
        double u = ((double)logits[i] + 16.0) / 32.0 * HERD_AUC_BINS;
        int bin = !(u > 0) ? 0 : u >= HERD_AUC_BINS ? HERD_AUC_BINS - 1 : (int)u; /* NaN: bin 0 */
        (pos ? acc->pos : acc->neg)[bin] += 1;
    }
}

void herd_metrics_clear(herd_metrics *a) { memset(a, 0, sizeof *a); }

void herd_metrics_add(herd_metrics *a, const herd_metrics *b) {
    double *x = (double *)a;
    const double *y = (const double *)b;
    for (int i = 0; i < HERD_METRICS_DOUBLES; i++) x[i] += y[i];
}

double herd_metrics_loss(const herd_metrics *a) { return a->loss_units > 0 ? a->loss_sum / a->loss_units : -1; }

double herd_metrics_value(const herd_metrics *a, int metric) {
    if (metric == HERD_METRIC_ACCURACY) return a->counted > 0 ? a->hits / a->counted : -1;
    if (metric == HERD_METRIC_RMSE) return a->values > 0 ? sqrt(a->sq_err / a->values) : -1;
    if (metric != HERD_METRIC_AUC) return -1;
    /* P(score of a positive > score of a negative), ties (the same bin) counting one half */
    double npos = 0, nneg = 0, below = 0, area = 0;
    for (int i = 0; i < HERD_AUC_BINS; i++) {
        area += a->pos[i] * (below + 0.5 * a->neg[i]);
        below += a->neg[i];
        npos += a->pos[i];
        nneg += a->neg[i];
    }
    return npos > 0 && nneg > 0 ? area / (npos * nneg) : -1;
}
