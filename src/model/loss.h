/* The loss table: what one loss kind knows (its arguments, which targets fit which outputs,
 * forward, backward, the metrics it measures). Each kind lives in one file under src/losses/
 * and is one name in HERD_LOSS_KINDS (src/losses/losses.c); the model holds one loss node
 * reading its last layer's output and the sample's target. */
#ifndef HERD_LOSS_H
#define HERD_LOSS_H

#include <stddef.h>
#include <stdint.h>

#include "herd/model.h"

typedef struct loss_kind loss_kind;

/* The model's loss node: its kind, its arguments and the target it reads. */
typedef struct model_loss {
    const loss_kind *kind;
    int ignore;          /* xent: positions labelled ignore_index are skipped */
    int32_t ignore_index;
    int classes;         /* the target is i32 class labels (else values of the output's shape) */
    herd_tensor target;  /* one sample's target (data NULL) */
} model_loss;

/* Rows [0, B) of one call: out holds B x P x K values (P positions of K; K is the output's
 * last dim), target B targets, scratch B x P x K floats the kind keeps for backward. */
typedef struct loss_call {
    const model_loss *cfg;
    const float *out;
    const void *target;
    float *scratch;
    int B;
    int64_t P, K;
} loss_call;

struct loss_kind {
    const char *name;             /* "xent": the spec keyword */
    const char *const *keys;      /* the keys its arguments may use (NULL-terminated; NULL: none) */
    int metrics;                  /* HERD_METRIC_* measured when the target is class labels / values */
    int value_metrics;
    /* reads the arguments already checked against keys; a bad value is an error (msg filled) */
    int (*configure)(model_loss *cfg, const char *key, const char *value, char *msg, size_t size);
    /* whether target y fits an output of per-sample dims (sets cfg->classes); else msg says why */
    int (*check)(model_loss *cfg, int ndim, const int64_t *dims, const herd_tensor *y, char *msg, size_t size);
    /* the target the model takes until told otherwise */
    void (*default_target)(model_loss *cfg, int ndim, const int64_t *dims);
    /* the first sample whose target is out of range (a class outside [0, K)), or -1; msg then
     * says which value ("label 7 of sample 1 is outside the model's 3 outputs") */
    int (*bad_target)(const loss_call *c, char *msg, size_t size);
    /* what the mean is over: samples, or the positions counted */
    int64_t (*units)(const loss_call *c);
    /* the mean loss of these rows; keeps what backward needs in scratch */
    float (*forward)(const loss_call *c);
    /* adds scale * d(mean loss of these rows)/d(out) to dout */
    void (*backward)(const loss_call *c, float *dout, float scale);
    /* what the model predicts from out (into pred, B x P x K): probabilities, or values */
    void (*predict)(const loss_call *c, float *pred);
    /* adds these rows to the metrics (after forward) */
    void (*measure)(const loss_call *c, herd_metrics *acc);
    /* the arguments as spec text after the keyword (" ignore=-100"; "" when none) */
    void (*spec)(const model_loss *cfg, char *buf, size_t size);
};

const loss_kind *herdi_loss_kind_by_name(const char *name);
/* Values a loss reads in these rows: B x P x K. */
static inline int64_t loss_values(const loss_call *c) { return (int64_t)c->B * c->P * c->K; }
/* Whether f32 targets y fit an output of per-sample dims value for value: the output's shape,
 * or a scalar (or any one-value shape) for an output of one value. */
int herdi_loss_values_fit(int ndim, const int64_t *dims, const herd_tensor *y);
/* the first class label of B samples of P positions outside [0, K) (labels equal to ignore_index
 * pass when cfg->ignore), or -1, with msg as bad_target says */
int herdi_loss_bad_class(const loss_call *c, char *msg, size_t size);
/* "xent, mse, bce" for messages */
const char *herdi_loss_names(void);
/* Sets cfg to kind with its arguments; a message (without the file) in msg on failure. */
int herdi_loss_configure(model_loss *cfg, const loss_kind *kind, const herd_layer_arg *args, int n_args, char *msg,
                   size_t size);

/* ---- metrics the kinds measure (src/losses/metrics.c) ---- */
/* argmax over K of each of B*P positions against i32 labels; ignore: positions labelled
 * ignore_index are not counted */
void herdi_metric_classes(const loss_call *c, herd_metrics *acc);
/* squared error of pred (transformed by fn when not NULL) against f32 targets, n values */
void herdi_metric_sq_err(const float *pred, const float *target, int64_t n, float (*fn)(float), herd_metrics *acc);
/* logits against binary targets (>= 0.5 positive): accuracy (logit > 0) and the AUC bins */
void herdi_metric_binary(const float *logits, const float *target, int64_t n, herd_metrics *acc);

#define HERD_LOSS_KINDS(X) X(xent) X(mse) X(bce)
#define HERD_LOSS_DECLARE(k) extern const loss_kind herdi_loss_##k;
HERD_LOSS_KINDS(HERD_LOSS_DECLARE)
#undef HERD_LOSS_DECLARE

#endif
