/* The model spec parser: one layer per line, positional arguments, key=value options and
 * activation flags, dispatched by a table; every error names file:line:col. Shapes are
 * inferred line by line, so a mismatch is reported at the line that causes it. */
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model/model_internal.h"

#define MAX_TOKENS 32

typedef struct token {
    char text[128];
    int col;
    const char *key;   /* for key=value: points into text (text is split at '=') */
    const char *value; /* NULL for positionals / flags */
    int used;
} token;

typedef struct line_ctx {
    herd_model *m;
    const char *file;
    int line;
    token tok[MAX_TOKENS];
    int n;
    herd_error *err;
} line_ctx;

static herd_status spec_fail(line_ctx *L, int col, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;

static herd_status spec_fail(line_ctx *L, int col, const char *fmt, ...) {
    char msg[768];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return herd_fail(L->err, HERD_ESPEC, "%s:%d:%d: %s", L->file, L->line, col, msg);
}

/* ---- token access ---- */

/* i-th positional argument after the layer keyword, or NULL. */
static token *positional(line_ctx *L, int i) {
    for (int t = 1; t < L->n; t++)
        if (!L->tok[t].value && !L->tok[t].used && i-- == 0) return &L->tok[t];
    return NULL;
}

static token *option(line_ctx *L, const char *key) {
    for (int t = 1; t < L->n; t++)
        if (L->tok[t].value && strcmp(L->tok[t].key, key) == 0) return &L->tok[t];
    return NULL;
}

static herd_status parse_int(line_ctx *L, token *t, const char *s, const char *what, int lo, int hi, int *out) {
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (!*s || *end || errno || v < lo || v > hi)
        return spec_fail(L, t->col, "expected %s as an integer in %d..%d, found '%s'", what, lo, hi, s);
    *out = (int)v;
    t->used = 1;
    return HERD_OK;
}

static herd_status parse_float(line_ctx *L, token *t, const char *s, const char *what, double lo, double hi,
                               float *out) {
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (!*s || *end || errno || !isfinite(v) || v < lo || v > hi)
        return spec_fail(L, t->col, "expected %s as a number in [%g, %g], found '%s'", what, lo, hi, s);
    *out = (float)v;
    t->used = 1;
    return HERD_OK;
}

/* "3" -> 3,3 ; "3x5" -> 3,5 */
static herd_status parse_pair(line_ctx *L, token *t, const char *s, const char *what, int lo, int *a, int *b) {
    char buf[64];
    snprintf(buf, sizeof buf, "%s", s);
    char *x = strchr(buf, 'x');
    if (x) {
        *x = 0;
        herd_status st = parse_int(L, t, buf, what, lo, 4096, a);
        if (st) return st;
        return parse_int(L, t, x + 1, what, lo, 4096, b);
    }
    herd_status st = parse_int(L, t, buf, what, lo, 4096, a);
    *b = *a;
    return st;
}

static int is_activation(const char *s, herd_act *act) {
    static const struct {
        const char *name;
        herd_act act;
    } acts[] = {{"relu", HERD_ACT_RELU},       {"leaky_relu", HERD_ACT_LEAKY_RELU}, {"sigmoid", HERD_ACT_SIGMOID},
                {"tanh", HERD_ACT_TANH},       {"gelu", HERD_ACT_GELU}};
    for (size_t i = 0; i < sizeof acts / sizeof acts[0]; i++)
        if (strcmp(s, acts[i].name) == 0) {
            *act = acts[i].act;
            return 1;
        }
    return 0;
}

/* ---- graph building ---- */

static int find_node(const herd_model *m, const char *name) {
    for (int i = m->n_nodes - 1; i >= 0; i--)
        if (strcmp(m->nodes[i].name, name) == 0) return i;
    return -1;
}

/* Shape of the current tip of the graph (the last node, or the input). */
static void tip_shape(const herd_model *m, int *c, int *h, int *w) {
    if (m->n_nodes == 0) {
        *c = m->in_c, *h = m->in_h, *w = m->in_w;
    } else {
        const node *n = &m->nodes[m->n_nodes - 1];
        *c = n->c, *h = n->h, *w = n->w;
    }
}

static const char *kind_prefix(node_kind k, herd_act act) {
    switch (k) {
    case NODE_CONV: return "conv";
    case NODE_MAXPOOL: return "maxpool";
    case NODE_AVGPOOL: return "avgpool";
    case NODE_GAP: return "gap";
    case NODE_DENSE: return "dense";
    case NODE_FLATTEN: return "flatten";
    case NODE_DROPOUT: return "dropout";
    case NODE_BATCHNORM: return "bn";
    case NODE_SOFTMAX: return "softmax";
    case NODE_ADD: return "add";
    case NODE_ACT:
        switch (act) {
        case HERD_ACT_RELU: return "relu";
        case HERD_ACT_LEAKY_RELU: return "leaky_relu";
        case HERD_ACT_SIGMOID: return "sigmoid";
        case HERD_ACT_TANH: return "tanh";
        case HERD_ACT_GELU: return "gelu";
        case HERD_ACT_NONE: break;
        }
    }
    return "layer";
}

/* Appends a node reading the current tip; names it kind<k> unless the caller renames it. */
static node *push_node(line_ctx *L, node_kind kind, herd_act act) {
    herd_model *m = L->m;
    if (m->n_nodes >= HERD_MAX_NODES) {
        spec_fail(L, 1, "too many layers (at most %d)", HERD_MAX_NODES);
        return NULL;
    }
    node *n = &m->nodes[m->n_nodes];
    memset(n, 0, sizeof *n);
    n->kind = kind;
    n->act = act;
    n->line = L->line;
    n->col = L->tok[0].col;
    n->in = m->n_nodes - 1;
    n->in2 = -1;
    n->p_weight = n->p_bias = n->p_mean = n->p_var = -1;
    tip_shape(m, &n->c, &n->h, &n->w);
    /* default name: prefix + per-prefix counter, skipping names already taken */
    const char *prefix = kind_prefix(kind, act);
    for (int k = 1;; k++) {
        snprintf(n->name, sizeof n->name, "%s%d", prefix, k);
        if (find_node(m, n->name) < 0) break;
    }
    m->n_nodes++;
    return n;
}

static herd_status add_params(line_ctx *L, node *n, int64_t w0, int64_t w1, int64_t w2, int64_t w3, int wdims,
                              int64_t nbias) {
    int64_t shape[4] = {w0, w1, w2, w3};
    n->p_weight = model_add_param(L->m, n->name, "weight", 1, wdims, shape);
    if (nbias > 0) n->p_bias = model_add_param(L->m, n->name, "bias", 1, 1, &nbias);
    if (n->p_weight < 0 || (nbias > 0 && n->p_bias < 0))
        return spec_fail(L, n->col, "too many parameter tensors (at most %d)", HERD_MAX_PARAMS);
    return HERD_OK;
}

/* Trailing flags and options common to layers: name=, an activation flag. The
 * activation becomes its own node after `n`. */
static herd_status finish_line(line_ctx *L, node *n, int allow_act) {
    token *t = option(L, "name");
    herd_act act = HERD_ACT_NONE;
    float alpha = 0.01f;
    if (t) {
        t->used = 1;
        const char *v = t->value;
        int ok = *v && strlen(v) < HERD_NAME_MAX && (isalpha((unsigned char)*v) || *v == '_');
        for (const char *p = v; ok && *p; p++) ok = isalnum((unsigned char)*p) || *p == '_';
        if (!ok) return spec_fail(L, t->col, "bad name '%s' (letters, digits and _, starting with a letter)", v);
        if (find_node(L->m, v) >= 0) return spec_fail(L, t->col, "name '%s' is already used", v);
    }
    token *act_tok = NULL;
    for (int i = 1; i < L->n; i++) {
        token *a = &L->tok[i];
        if (!a->value && !a->used && is_activation(a->text, &act)) {
            if (!allow_act) return spec_fail(L, a->col, "%s takes no activation", L->tok[0].text);
            a->used = 1;
            act_tok = a;
            break;
        }
    }
    if (act_tok) {
        token *al = option(L, "alpha");
        if (al) {
            herd_status st = parse_float(L, al, al->value, "alpha", 0, 1e6, &alpha);
            if (st) return st;
        }
    }
    for (int i = 1; i < L->n; i++) {
        token *u = &L->tok[i];
        if (u->used) continue;
        if (u->value) return spec_fail(L, u->col, "unknown option '%s' for %s", u->key, L->tok[0].text);
        return spec_fail(L, u->col, "unexpected argument '%s' for %s", u->text, L->tok[0].text);
    }
    /* the line's name goes to its last node, so `add NAME` refers to the line's output */
    node *last = n;
    if (act_tok) {
        n->he_init = act == HERD_ACT_RELU || act == HERD_ACT_LEAKY_RELU || act == HERD_ACT_GELU;
        last = push_node(L, NODE_ACT, act);
        if (!last) return HERD_ESPEC;
        last->alpha = alpha;
    }
    if (t) snprintf(last->name, sizeof last->name, "%s", t->value);
    return HERD_OK;
}

/* ---- one parse function per layer kind ---- */

static herd_status need_positional(line_ctx *L, int i, const char *what, token **out) {
    *out = positional(L, i);
    if (!*out) return spec_fail(L, L->tok[L->n - 1].col + (int)strlen(L->tok[L->n - 1].text), "%s: missing %s",
                                L->tok[0].text, what);
    return HERD_OK;
}

static herd_status parse_conv(line_ctx *L) {
    int c, h, w, oc = 0, kh = 0, kw = 0, sh = 1, sw = 1, ph = 0, pw = 0, bias = 1;
    tip_shape(L->m, &c, &h, &w);
    token *t;
    herd_status st;
    if ((st = need_positional(L, 0, "number of filters", &t))) return st;
    if ((st = parse_int(L, t, t->text, "number of filters", 1, 65536, &oc))) return st;
    if ((st = need_positional(L, 0, "kernel size", &t))) return st;
    if ((st = parse_pair(L, t, t->text, "kernel size", 1, &kh, &kw))) return st;
    if ((t = option(L, "stride")) && (st = parse_pair(L, t, t->value, "stride", 1, &sh, &sw))) return st;
    if ((t = option(L, "pad"))) {
        if (strcmp(t->value, "same") == 0) {
            if (kh % 2 == 0 || kw % 2 == 0) return spec_fail(L, t->col, "pad=same needs an odd kernel size");
            ph = kh / 2, pw = kw / 2, t->used = 1;
        } else if (strcmp(t->value, "valid") == 0) {
            t->used = 1;
        } else if ((st = parse_pair(L, t, t->value, "padding", 0, &ph, &pw))) {
            return st;
        }
    }
    if ((t = option(L, "bias")) && (st = parse_int(L, t, t->value, "bias (0 or 1)", 0, 1, &bias))) return st;
    node *n = push_node(L, NODE_CONV, HERD_ACT_NONE);
    if (!n) return HERD_ESPEC;
    n->conv = (conv2d_dims){.B = 1, .C = c, .H = h, .W = w, .OC = oc, .KH = kh, .KW = kw,
                            .SH = sh, .SW = sw, .PH = ph, .PW = pw};
    if (!conv2d_dims_finish(&n->conv))
        return herd_fail(L->err, HERD_ESHAPE, "%s:%d:%d: %s: a %dx%d kernel with stride %dx%d and padding %dx%d "
                         "does not fit the input %dx%dx%d",
                         L->file, L->line, n->col, n->name, kh, kw, sh, sw, ph, pw, c, h, w);
    n->c = oc, n->h = n->conv.OH, n->w = n->conv.OW, n->has_bias = bias;
    if ((st = add_params(L, n, oc, c, kh, kw, 4, bias ? oc : 0))) return st;
    return finish_line(L, n, 1);
}

static herd_status parse_pool(line_ctx *L, node_kind kind) {
    int c, h, w, kh = 0, kw = 0, sh, sw, ph = 0, pw = 0;
    tip_shape(L->m, &c, &h, &w);
    token *t;
    herd_status st;
    if ((st = need_positional(L, 0, "pool size", &t))) return st;
    if ((st = parse_pair(L, t, t->text, "pool size", 1, &kh, &kw))) return st;
    sh = kh, sw = kw;
    if ((t = option(L, "stride")) && (st = parse_pair(L, t, t->value, "stride", 1, &sh, &sw))) return st;
    if ((t = option(L, "pad")) && (st = parse_pair(L, t, t->value, "padding", 0, &ph, &pw))) return st;
    node *n = push_node(L, kind, HERD_ACT_NONE);
    if (!n) return HERD_ESPEC;
    if (ph * 2 > kh || pw * 2 > kw)
        return spec_fail(L, n->col, "%s: padding must be at most half the pool size", n->name);
    n->pool = (pool2d_dims){.B = 1, .C = c, .H = h, .W = w, .KH = kh, .KW = kw, .SH = sh, .SW = sw, .PH = ph, .PW = pw};
    if (!pool2d_dims_finish(&n->pool))
        return herd_fail(L->err, HERD_ESHAPE, "%s:%d:%d: %s: a %dx%d pool does not fit the input %dx%dx%d", L->file,
                         L->line, n->col, n->name, kh, kw, c, h, w);
    n->h = n->pool.OH, n->w = n->pool.OW;
    return finish_line(L, n, 0);
}

static herd_status parse_maxpool(line_ctx *L) { return parse_pool(L, NODE_MAXPOOL); }
static herd_status parse_avgpool(line_ctx *L) { return parse_pool(L, NODE_AVGPOOL); }

static herd_status parse_gap(line_ctx *L) {
    node *n = push_node(L, NODE_GAP, HERD_ACT_NONE);
    if (!n) return HERD_ESPEC;
    n->h = n->w = 1;
    return finish_line(L, n, 0);
}

static herd_status parse_flatten(line_ctx *L) {
    node *n = push_node(L, NODE_FLATTEN, HERD_ACT_NONE);
    if (!n) return HERD_ESPEC;
    int64_t flat = (int64_t)n->c * n->h * n->w; /* each factor fits an int, the product need not */
    if (flat > INT32_MAX)
        return herd_fail(L->err, HERD_ESHAPE, "%s:%d:%d: flatten: %dx%dx%d is more than 2^31-1 values", L->file,
                         L->line, n->col, n->c, n->h, n->w);
    n->c = (int)flat, n->h = n->w = 1;
    return finish_line(L, n, 0);
}

static herd_status parse_dense(line_ctx *L) {
    int c, h, w, units = 0, bias = 1;
    tip_shape(L->m, &c, &h, &w);
    token *t;
    herd_status st;
    if ((st = need_positional(L, 0, "number of units", &t))) return st;
    if ((st = parse_int(L, t, t->text, "number of units", 1, 1 << 24, &units))) return st;
    if ((t = option(L, "bias")) && (st = parse_int(L, t, t->value, "bias (0 or 1)", 0, 1, &bias))) return st;
    if (h != 1 || w != 1)
        return herd_fail(L->err, HERD_ESHAPE, "%s:%d:%d: dense expects a flat input but gets %dx%dx%d; put `flatten` "
                         "(or `gap`) before it", L->file, L->line, L->tok[0].col, c, h, w);
    node *n = push_node(L, NODE_DENSE, HERD_ACT_NONE);
    if (!n) return HERD_ESPEC;
    n->dense_in = c, n->dense_out = units, n->c = units, n->has_bias = bias;
    if ((st = add_params(L, n, units, c, 1, 1, 2, bias ? units : 0))) return st;
    return finish_line(L, n, 1);
}

static herd_status parse_dropout(line_ctx *L) {
    token *t;
    float p = 0;
    herd_status st;
    if ((st = need_positional(L, 0, "drop probability", &t))) return st;
    if ((st = parse_float(L, t, t->text, "drop probability", 0.0, 0.99, &p))) return st;
    node *n = push_node(L, NODE_DROPOUT, HERD_ACT_NONE);
    if (!n) return HERD_ESPEC;
    n->p = p;
    return finish_line(L, n, 0);
}

static herd_status parse_batchnorm(line_ctx *L) {
    float eps = 1e-5f, momentum = 0.1f;
    token *t;
    herd_status st;
    if ((t = option(L, "eps")) && (st = parse_float(L, t, t->value, "eps", 1e-12, 1, &eps))) return st;
    if ((t = option(L, "momentum")) && (st = parse_float(L, t, t->value, "momentum", 0, 1, &momentum))) return st;
    node *n = push_node(L, NODE_BATCHNORM, HERD_ACT_NONE);
    if (!n) return HERD_ESPEC;
    n->eps = eps, n->momentum = momentum;
    int64_t C = n->c;
    n->p_weight = model_add_param(L->m, n->name, "weight", 1, 1, &C);
    n->p_bias = model_add_param(L->m, n->name, "bias", 1, 1, &C);
    n->p_mean = model_add_param(L->m, n->name, "running_mean", 0, 1, &C);
    n->p_var = model_add_param(L->m, n->name, "running_var", 0, 1, &C);
    if (n->p_var < 0) return spec_fail(L, n->col, "too many parameter tensors (at most %d)", HERD_MAX_PARAMS);
    return finish_line(L, n, 1);
}

static herd_status parse_act_layer(line_ctx *L) {
    herd_act act = HERD_ACT_NONE;
    is_activation(L->tok[0].text, &act);
    node *n = push_node(L, NODE_ACT, act);
    if (!n) return HERD_ESPEC;
    n->alpha = 0.01f;
    token *t;
    herd_status st;
    if (act == HERD_ACT_LEAKY_RELU && (t = positional(L, 0)) &&
        (st = parse_float(L, t, t->text, "negative slope", 0, 1e6, &n->alpha)))
        return st;
    if (act == HERD_ACT_LEAKY_RELU && (t = option(L, "alpha")) &&
        (st = parse_float(L, t, t->value, "negative slope", 0, 1e6, &n->alpha)))
        return st;
    /* a stand-alone ReLU after conv/dense asks for He init of that layer, as an inline one does */
    if (n->in >= 0 && act != HERD_ACT_SIGMOID && act != HERD_ACT_TANH) L->m->nodes[n->in].he_init = 1;
    return finish_line(L, n, 0);
}

static herd_status parse_softmax(line_ctx *L) {
    int c, h, w;
    tip_shape(L->m, &c, &h, &w);
    if (h != 1 || w != 1)
        return herd_fail(L->err, HERD_ESHAPE, "%s:%d:%d: softmax expects a flat input but gets %dx%dx%d", L->file,
                         L->line, L->tok[0].col, c, h, w);
    node *n = push_node(L, NODE_SOFTMAX, HERD_ACT_NONE);
    if (!n) return HERD_ESPEC;
    return finish_line(L, n, 0);
}

static herd_status parse_add(line_ctx *L) {
    token *t;
    herd_status st;
    if ((st = need_positional(L, 0, "the name of the layer to add", &t))) return st;
    int from = find_node(L->m, t->text);
    if (from < 0) return spec_fail(L, t->col, "add: no earlier layer is named '%s'", t->text);
    t->used = 1;
    int c, h, w;
    tip_shape(L->m, &c, &h, &w);
    const node *f = &L->m->nodes[from];
    if (f->c != c || f->h != h || f->w != w)
        return herd_fail(L->err, HERD_ESHAPE, "%s:%d:%d: add: the input is %dx%dx%d but '%s' is %dx%dx%d", L->file,
                         L->line, t->col, c, h, w, f->name, f->c, f->h, f->w);
    if (from == L->m->n_nodes - 1) return spec_fail(L, t->col, "add: '%s' is the input itself", t->text);
    node *n = push_node(L, NODE_ADD, HERD_ACT_NONE);
    if (!n) return HERD_ESPEC;
    n->in2 = from;
    return finish_line(L, n, 1);
}

static herd_status parse_train(line_ctx *L) {
    herd_spec_train *tr = &L->m->train;
    herd_status st;
    for (int i = 1; i < L->n; i++) {
        token *t = &L->tok[i];
        if (!t->value) return spec_fail(L, t->col, "train: expected key=value, found '%s'", t->text);
        if (strcmp(t->key, "optimizer") == 0) {
            if (strlen(t->value) >= sizeof tr->optimizer)
                return spec_fail(L, t->col, "train: unknown optimizer '%s'", t->value);
            snprintf(tr->optimizer, sizeof tr->optimizer, "%s", t->value);
        } else if (strcmp(t->key, "lr") == 0) {
            if ((st = parse_float(L, t, t->value, "lr", 1e-12, 1e3, &tr->lr))) return st;
        } else if (strcmp(t->key, "batch") == 0) {
            if ((st = parse_int(L, t, t->value, "batch", 1, 1 << 20, &tr->batch))) return st;
        } else if (strcmp(t->key, "epochs") == 0) {
            if ((st = parse_int(L, t, t->value, "epochs", 1, 1 << 20, &tr->epochs))) return st;
        } else if (strcmp(t->key, "weight_decay") == 0) {
            if ((st = parse_float(L, t, t->value, "weight_decay", 0, 10, &tr->weight_decay))) return st;
        } else {
            return spec_fail(L, t->col, "train: unknown key '%s' (expected optimizer, lr, batch, epochs, weight_decay)",
                             t->key);
        }
    }
    return HERD_OK;
}

static herd_status parse_loss(line_ctx *L) {
    token *t = positional(L, 0);
    if (!t || L->n != 2) return spec_fail(L, L->tok[0].col, "loss: expected exactly one of xent, mse");
    if (strcmp(t->text, "xent") == 0 || strcmp(t->text, "cross_entropy") == 0)
        L->m->loss = LOSS_XENT;
    else if (strcmp(t->text, "mse") == 0)
        L->m->loss = LOSS_MSE;
    else
        return spec_fail(L, t->col, "loss: unknown loss '%s' (expected xent or mse)", t->text);
    return HERD_OK;
}

typedef herd_status (*line_parser)(line_ctx *L);

static const struct {
    const char *keyword;
    line_parser parse;
} layer_table[] = {
    {"conv", parse_conv},       {"maxpool", parse_maxpool}, {"avgpool", parse_avgpool}, {"gap", parse_gap},
    {"flatten", parse_flatten}, {"dense", parse_dense},     {"dropout", parse_dropout}, {"batchnorm", parse_batchnorm},
    {"relu", parse_act_layer},  {"leaky_relu", parse_act_layer}, {"sigmoid", parse_act_layer},
    {"tanh", parse_act_layer},  {"gelu", parse_act_layer},  {"softmax", parse_softmax}, {"add", parse_add},
    {"train", parse_train},     {"loss", parse_loss},
};

static herd_status parse_input(line_ctx *L) {
    token *t = positional(L, 0);
    herd_model *m = L->m;
    if (!t || L->n != 2)
        return spec_fail(L, L->tok[0].col, "input: expected one shape like 1x28x28 (CxHxW) or 784");
    int dims[3] = {1, 1, 1}, nd = 0;
    const char *s = t->text;
    while (*s && nd < 3) {
        char *end;
        errno = 0;
        long v = strtol(s, &end, 10);
        if (end == s || errno || v < 1 || v > 1 << 20) break;
        dims[nd++] = (int)v;
        s = end;
        if (*s == 'x') s++;
        else break;
    }
    if (*s || nd == 0 || nd == 2)
        return spec_fail(L, t->col, "input: expected a shape like 1x28x28 (CxHxW) or 784, found '%s'", t->text);
    if ((int64_t)dims[0] * dims[1] * dims[2] > (1 << 26))
        return spec_fail(L, t->col, "input: %s is too large", t->text);
    m->in_c = dims[0], m->in_h = dims[1], m->in_w = dims[2];
    return HERD_OK;
}

/* Splits one line into tokens; returns the count (0 for blank/comment). */
static herd_status tokenize(line_ctx *L, const char *line, size_t len) {
    L->n = 0;
    size_t i = 0;
    while (i < len) {
        while (i < len && (line[i] == ' ' || line[i] == '\t' || line[i] == '\r')) i++;
        if (i >= len || line[i] == '#') break;
        size_t start = i;
        while (i < len && line[i] != ' ' && line[i] != '\t' && line[i] != '\r' && line[i] != '#') i++;
        if (L->n >= MAX_TOKENS) return spec_fail(L, (int)start + 1, "too many words on one line");
        token *t = &L->tok[L->n];
        memset(t, 0, sizeof *t);
        t->col = (int)start + 1;
        size_t n = i - start;
        if (n >= sizeof t->text) return spec_fail(L, t->col, "word too long");
        memcpy(t->text, line + start, n);
        for (size_t k = 0; k < n; k++)
            if ((unsigned char)t->text[k] < 0x20 || (unsigned char)t->text[k] >= 0x7f)
                return spec_fail(L, t->col + (int)k, "unexpected byte 0x%02x", (unsigned char)t->text[k]);
        char *eq = strchr(t->text, '=');
        if (eq) {
            *eq = 0;
            t->key = t->text;
            t->value = eq + 1;
            if (!*t->key || !*t->value) return spec_fail(L, t->col, "expected key=value");
        }
        L->n++;
    }
    if (L->n > 0 && L->tok[0].value) return spec_fail(L, L->tok[0].col, "expected a layer name, found an option");
    return HERD_OK;
}

herd_status herd_model_parse(herd_model **out, const char *text, const char *filename, herd_error *err) {
    herd_model *m = calloc(1, sizeof *m);
    if (!m) return herd_fail(err, HERD_ENOMEM, "%s: out of memory", filename);
    snprintf(m->source, sizeof m->source, "%s", filename);
    line_ctx *L = calloc(1, sizeof *L);
    if (!L) {
        free(m);
        return herd_fail(err, HERD_ENOMEM, "%s: out of memory", filename);
    }
    L->m = m, L->file = filename, L->err = err;
    herd_status st = HERD_OK;
    int have_input = 0;
    const char *p = text;
    while (*p && st == HERD_OK) {
        const char *nl = strchr(p, '\n');
        size_t len = nl ? (size_t)(nl - p) : strlen(p);
        L->line++;
        if ((st = tokenize(L, p, len))) break;
        p += len + (nl ? 1 : 0);
        if (L->n == 0) continue;
        const char *kw = L->tok[0].text;
        if (!have_input) {
            if (strcmp(kw, "input") != 0) {
                st = spec_fail(L, L->tok[0].col, "the first layer must be `input CxHxW`, found '%s'", kw);
                break;
            }
            st = parse_input(L);
            have_input = 1;
            continue;
        }
        line_parser parse = NULL;
        for (size_t k = 0; k < sizeof layer_table / sizeof layer_table[0]; k++)
            if (strcmp(kw, layer_table[k].keyword) == 0) parse = layer_table[k].parse;
        if (!parse) {
            st = spec_fail(L, L->tok[0].col, "unknown layer '%s' (expected conv, maxpool, avgpool, gap, flatten, dense, "
                           "dropout, batchnorm, relu, leaky_relu, sigmoid, tanh, gelu, softmax, add, train or loss)", kw);
            break;
        }
        st = parse(L);
    }
    if (st == HERD_OK && !have_input) st = herd_fail(err, HERD_ESPEC, "%s: empty model spec (no `input` line)", filename);
    if (st == HERD_OK && m->n_nodes == 0) st = herd_fail(err, HERD_ESPEC, "%s: the model has no layers", filename);
    if (st == HERD_OK) {
        const node *last = &m->nodes[m->n_nodes - 1];
        if (last->h != 1 || last->w != 1)
            st = herd_fail(err, HERD_ESHAPE, "%s: the model's output is %dx%dx%d; it must be a vector (end with "
                           "flatten/gap and dense)", filename, last->c, last->h, last->w);
        else if (m->loss == LOSS_XENT && last->kind == NODE_SOFTMAX)
            st = herd_fail(err, HERD_ESPEC, "%s:%d: the last layer is softmax, but the cross-entropy loss already "
                           "applies it to the logits; remove it", filename, last->line);
    }
    if (st == HERD_OK) st = model_alloc_params(m, err);
    free(L);
    if (st != HERD_OK) {
        herd_model_destroy(m);
        return st;
    }
    *out = m;
    return HERD_OK;
}

herd_status herd_model_load_spec(herd_model **out, const char *path, herd_error *err) {
    FILE *f = fopen(path, "rb");
    if (!f) return herd_fail(err, HERD_EIO, "%s: cannot open model spec: %s", path, strerror(errno));
    enum { MAX_SPEC = 1 << 20 };
    char *buf = malloc(MAX_SPEC + 1);
    if (!buf) {
        fclose(f);
        return herd_fail(err, HERD_ENOMEM, "%s: out of memory", path);
    }
    size_t n = fread(buf, 1, MAX_SPEC + 1, f);
    int bad = ferror(f);
    fclose(f);
    if (bad || n > MAX_SPEC) {
        free(buf);
        return herd_fail(err, bad ? HERD_EIO : HERD_ESPEC, "%s: %s", path,
                         bad ? "read error" : "model spec larger than 1 MiB");
    }
    if (memchr(buf, 0, n)) {
        free(buf);
        return herd_fail(err, HERD_ESPEC, "%s: not a text file (contains a NUL byte)", path);
    }
    buf[n] = 0;
    herd_status st = herd_model_parse(out, buf, path, err);
    free(buf);
    return st;
}
