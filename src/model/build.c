/* Building a model: inputs, nodes appended in topological order through their kind's build
 * function, default names, the parameter registry, and the final checks. The spec parser,
 * the ONNX importer and the public builder API are front-ends over these calls. */
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model/model_internal.h"

herd_status herdi_model_create(herd_model **out, const char *source, herd_error *err) {
    herd_model *m = calloc(1, sizeof *m);
    if (m) {
        m->nodes = calloc(HERD_MAX_NODES, sizeof *m->nodes);
        m->params_reg = calloc(HERD_MAX_PARAMS, sizeof *m->params_reg);
        m->grad_ready = calloc(HERD_MAX_NODES, sizeof *m->grad_ready);
        m->scratch = calloc(HERD_MAX_NODES, sizeof *m->scratch);
        m->live = herdi_model_live_tables(&m->live_order, &m->live_placed);
    }
    if (!m || !m->nodes || !m->params_reg || !m->grad_ready || !m->scratch || !m->live) {
        herd_model_destroy(m);
        return herd_fail(err, HERD_ENOMEM, "%s: out of memory", source);
    }
    snprintf(m->source, sizeof m->source, "%s", source);
    m->memory_reuse = 1;
    *out = m;
    return HERD_OK;
}

int herdi_model_find(const herd_model *m, const char *name) {
    for (int i = m->n_nodes - 1; i >= 0; i--)
        if (strcmp(m->nodes[i].name, name) == 0) return i;
    for (int k = 0; k < m->n_inputs; k++)
        if (strcmp(m->inputs[k].name, name) == 0) return -1 - k;
    return HERD_MAX_NODES;
}

void herdi_model_default_name(const herd_model *m, const char *prefix, char *out, size_t size) {
    for (int k = 1;; k++) {
        snprintf(out, size, "%s%d", prefix, k);
        if (herdi_model_find(m, out) == HERD_MAX_NODES) return;
    }
}

herd_status herdi_model_add_input(herd_model *m, const char *name, herd_dtype dtype, int ndim, const int64_t *dims,
                            herd_error *err) {
    if (m->n_inputs >= HERD_MAX_MODEL_INPUTS)
        return herd_fail(err, HERD_ESPEC, "%s: more than %d inputs", m->source, HERD_MAX_MODEL_INPUTS);
    if (dtype != HERD_F32 && dtype != HERD_I32)
        return herd_fail(err, HERD_ESPEC, "%s: input '%s' is %s; inputs are f32 or i32", m->source, name,
                         herd_dtype_name(dtype));
    model_input *in = &m->inputs[m->n_inputs];
    memset(in, 0, sizeof *in);
    snprintf(in->name, sizeof in->name, "%s", name);
    in->dtype = dtype;
    in->ndim = ndim;
    in->numel = 1;
    for (int d = 0; d < ndim; d++) in->dims[d] = dims[d], in->numel *= dims[d];
    if (m->n_inputs++ == 0) {
        m->in_c = (int)dims[0];
        m->in_h = ndim == 3 ? (int)dims[1] : 1;
        m->in_w = ndim == 3 ? (int)dims[2] : 1;
    }
    return HERD_OK;
}

/* ---- inputs of a node ---- */

int herdi_node_in_ndim(const herd_model *m, const node *n, int k) {
    int i = n->in[k];
    return i >= 0 ? m->nodes[i].ndim : m->inputs[-1 - i].ndim;
}

const int64_t *herdi_node_in_dims(const herd_model *m, const node *n, int k) {
    int i = n->in[k];
    return i >= 0 ? m->nodes[i].dims : m->inputs[-1 - i].dims;
}

herd_dtype herdi_node_in_dtype(const herd_model *m, const node *n, int k) {
    int i = n->in[k];
    return i >= 0 ? HERD_F32 : m->inputs[-1 - i].dtype;
}

int64_t herdi_node_in_numel(const herd_model *m, const node *n, int k) {
    int i = n->in[k];
    return i >= 0 ? m->nodes[i].numel : m->inputs[-1 - i].numel;
}

/* ---- what kinds call while building ---- */

static struct layer_arg *find_arg(layer_build *b, const char *key) {
    for (int i = 0; i < b->n_args; i++)
        if (strcmp(b->args[i].key, key) == 0) return &b->args[i];
    return NULL;
}

herd_status herdi_lb_fail(layer_build *b, herd_status st, const char *key, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    herd_failv(b->err, st, fmt, ap);
    va_end(ap);
    const struct layer_arg *a = key ? find_arg(b, key) : NULL;
    int col = a && a->col ? a->col : b->n->col;
    if (!b->err) return st;
    if (b->n->line) herd_fail_prefix(b->err, "%s:%d:%d", b->file, b->n->line, col);
    else herd_fail_prefix(b->err, "%s: layer '%s'", b->file, b->n->name);
    return st;
}

const char *herdi_lb_arg(layer_build *b, const char *key) {
    struct layer_arg *a = find_arg(b, key);
    if (!a) return NULL;
    a->used = 1;
    return a->value;
}

static herd_status missing(layer_build *b, const char *what) {
    int end = 0; /* the column after the line's last argument, where the missing one would go */
    for (int i = 0; i < b->n_args; i++)
        if (b->args[i].end_col > end) end = b->args[i].end_col;
    if (!end && b->n->line) end = b->n->col + (int)strlen(b->keyword);
    if (b->n->line) return herd_fail(b->err, HERD_ESPEC, "%s:%d:%d: %s: missing %s", b->file, b->n->line, end, b->keyword, what);
    return herdi_lb_fail(b, HERD_ESPEC, NULL, "%s: missing %s", b->keyword, what);
}

int herdi_model_parse_int(const char *s, int lo, int hi, int *out) {
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (!*s || *end || errno || v < lo || v > hi) return 0;
    *out = (int)v;
    return 1;
}

int herdi_model_parse_float(const char *s, double lo, double hi, float *out) {
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (!*s || *end || errno || !isfinite(v) || v < lo || v > hi) return 0;
    *out = (float)v;
    return 1;
}

static herd_status int_value(layer_build *b, const char *key, const char *s, const char *what, int lo, int hi,
                             int *out) {
    if (!herdi_model_parse_int(s, lo, hi, out))
        return herdi_lb_fail(b, HERD_ESPEC, key, "expected %s as an integer in %d..%d, found '%s'", what, lo, hi, s);
    return HERD_OK;
}

herd_status herdi_lb_int(layer_build *b, const char *key, const char *what, int required, int lo, int hi, int *out) {
    const char *v = herdi_lb_arg(b, key);
    if (!v) return required ? missing(b, what) : HERD_OK;
    return int_value(b, key, v, what, lo, hi, out);
}

herd_status herdi_lb_pair(layer_build *b, const char *key, const char *what, int required, int lo, int hi, int *x, int *y) {
    const char *v = herdi_lb_arg(b, key);
    if (!v) return required ? missing(b, what) : HERD_OK;
    char buf[64];
    snprintf(buf, sizeof buf, "%s", v);
    char *sep = strchr(buf, 'x');
    if (!sep) {
        herd_status st = int_value(b, key, buf, what, lo, hi, x);
        *y = *x;
        return st;
    }
    *sep = 0;
    herd_status st = int_value(b, key, buf, what, lo, hi, x);
    return st ? st : int_value(b, key, sep + 1, what, lo, hi, y);
}

herd_status herdi_lb_float(layer_build *b, const char *key, const char *what, int required, double lo, double hi,
                     float *out) {
    const char *v = herdi_lb_arg(b, key);
    if (!v) return required ? missing(b, what) : HERD_OK;
    if (!herdi_model_parse_float(v, lo, hi, out))
        return herdi_lb_fail(b, HERD_ESPEC, key, "expected %s as a number in [%g, %g], found '%s'", what, lo, hi, v);
    return HERD_OK;
}

herd_status herdi_lb_param(layer_build *b, int slot, const char *suffix, int trainable, int ndim, const int64_t *shape) {
    herd_model *m = b->m;
    if (m->n_reg >= HERD_MAX_PARAMS)
        return herdi_lb_fail(b, HERD_ESPEC, NULL, "too many parameter tensors (at most %d)", HERD_MAX_PARAMS);
    param_entry *e = &m->params_reg[m->n_reg];
    memset(e, 0, sizeof *e);
    snprintf(e->name, sizeof e->name, "%s.%s", b->n->name, suffix);
    e->info.name = e->name;
    e->info.trainable = trainable;
    e->info.ndim = ndim;
    e->info.numel = 1;
    e->node = (int)(b->n - m->nodes);
    for (int d = 0; d < ndim; d++) {
        e->info.shape[d] = shape[d];
        e->info.numel *= shape[d]; /* bounded by the kinds' argument limits: no overflow */
    }
    b->n->param[slot] = m->n_reg++;
    return HERD_OK;
}

herd_status herdi_lb_param_sparse(layer_build *b, int slot, const char *suffix, int64_t rows, int64_t dim,
                            int64_t ids_per_sample, int pad) {
    int64_t shape[2] = {rows, dim};
    herd_status st = herdi_lb_param(b, slot, suffix, 1, 2, shape);
    if (st) return st;
    param_entry *e = &b->m->params_reg[b->n->param[slot]];
    e->info.sparse = 1;
    e->ids_per_sample = ids_per_sample;
    e->pad = pad;
    e->ids_input = b->n->in[0] < 0 ? -1 - b->n->in[0] : -1; /* -1: ids the model computes */
    return HERD_OK;
}

herd_dtype herdi_lb_in_dtype(const layer_build *b, int k) { return herdi_node_in_dtype(b->m, b->n, k); }

int herdi_lb_in_ndim(const layer_build *b, int k) { return herdi_node_in_ndim(b->m, b->n, k); }
const int64_t *herdi_lb_in_dims(const layer_build *b, int k) { return herdi_node_in_dims(b->m, b->n, k); }
node *herdi_lb_in_node(layer_build *b, int k) { return b->n->in[k] >= 0 ? &b->m->nodes[b->n->in[k]] : NULL; }

void herdi_lb_set_shape(layer_build *b, int ndim, const int64_t *dims) {
    node *n = b->n;
    n->ndim = ndim;
    n->numel = 1;
    for (int d = 0; d < ndim; d++) n->dims[d] = dims[d], n->numel *= dims[d];
}

const char *herdi_lb_shape_str(int ndim, const int64_t *dims, char *buf, size_t size) {
    /* images print as CxHxW, vectors as Fx1x1, as herd always has; other ranks as their dims */
    if (ndim == 1 || ndim == 3) {
        int64_t d3[3] = {dims[0], ndim == 3 ? dims[1] : 1, ndim == 3 ? dims[2] : 1};
        snprintf(buf, size, "%lldx%lldx%lld", (long long)d3[0], (long long)d3[1], (long long)d3[2]);
        return buf;
    }
    size_t len = 0;
    buf[0] = 0;
    for (int d = 0; d < ndim && len < size; d++)
        len += (size_t)snprintf(buf + len, size - len, "%s%lld", d ? "x" : "", (long long)dims[d]);
    return buf;
}

/* ---- appending a node ---- */

herd_status herdi_model_add_node(herd_model *m, const layer_kind *kind, const char *keyword, const char *name,
                           const int *inputs, int n_in, struct layer_arg *args, int n_args, const char *file,
                           int line, int col, herd_error *err) {
    if (!file) file = m->source;
    if (m->n_nodes >= HERD_MAX_NODES) {
        if (line) return herd_fail(err, HERD_ESPEC, "%s:%d:%d: too many layers (at most %d)", file, line, col,
                                   HERD_MAX_NODES);
        return herd_fail(err, HERD_ESPEC, "%s: too many layers (at most %d)", file, HERD_MAX_NODES);
    }
    node *n = &m->nodes[m->n_nodes];
    memset(n, 0, sizeof *n);
    n->kind = kind;
    n->line = line, n->col = col;
    n->alias = n->fused_affine = -1;
    for (int s = 0; s < LAYER_MAX_SLOTS; s++) n->param[s] = -1;
    snprintf(n->name, sizeof n->name, "%s", name);
    layer_build b = {.m = m, .n = n, .keyword = keyword, .err = err, .n_args = n_args, .args = args, .file = file};
    if (n_in < kind->min_inputs || n_in > kind->max_inputs || n_in > HERD_MAX_INPUTS) {
        if (kind->min_inputs == kind->max_inputs)
            return herdi_lb_fail(&b, HERD_ESPEC, NULL, "%s takes %d input(s), not %d", keyword, kind->min_inputs, n_in);
        return herdi_lb_fail(&b, HERD_ESPEC, NULL, "%s takes %d to %d inputs, not %d", keyword, kind->min_inputs,
                       kind->max_inputs < HERD_MAX_INPUTS ? kind->max_inputs : HERD_MAX_INPUTS, n_in);
    }
    for (int k = 0; k < n_in; k++) {
        if (inputs[k] >= m->n_nodes || inputs[k] < -m->n_inputs)
            return herdi_lb_fail(&b, HERD_EINTERNAL, NULL, "input %d refers to no earlier layer", k);
        n->in[k] = inputs[k];
        if (inputs[k] < 0 && m->inputs[-1 - inputs[k]].dtype == HERD_I32 && !(kind->flags & LAYER_READS_IDS))
            return herdi_lb_fail(&b, HERD_ESPEC, NULL, "%s reads input '%s', which holds i32 ids; only %s take ids", keyword,
                           m->inputs[-1 - inputs[k]].name, herdi_layer_id_keywords());
    }
    n->n_in = n_in;
    int reg0 = m->n_reg;
    herd_status st = kind->build(&b);
    for (int i = 0; st == HERD_OK && i < n_args; i++)
        if (!args[i].used) st = herdi_lb_fail(&b, HERD_ESPEC, args[i].key, "unknown option '%s' for %s", args[i].key, keyword);
    if (st == HERD_OK && (n->numel < 1 || n->numel > INT32_MAX)) {
        char s[64];
        st = herdi_lb_fail(&b, HERD_ESHAPE, NULL, "%s: an output of %s values per sample is out of range", n->name,
                     herdi_lb_shape_str(n->ndim, n->dims, s, sizeof s));
    }
    if (st != HERD_OK) {
        m->n_reg = reg0; /* the node never happened */
        return st;
    }
    m->n_nodes++;
    return HERD_OK;
}

herd_status herdi_model_finish(herd_model *m, herd_error *err) {
    if (m->n_inputs == 0) return herd_fail(err, HERD_ESPEC, "%s: empty model spec (no `input` line)", m->source);
    if (m->n_nodes == 0) return herd_fail(err, HERD_ESPEC, "%s: the model has no layers", m->source);
    const node *last = &m->nodes[m->n_nodes - 1];
    if (!m->loss.kind) m->loss.kind = &herdi_loss_xent;
    if (m->loss.kind == &herdi_loss_xent && last->ndim > 2) {
        char s[64];
        return herd_fail(err, HERD_ESHAPE, "%s: the model's output is %s; it must be a vector (end with "
                         "flatten/gap and dense), or (T,K) logits per position for the cross-entropy loss", m->source,
                         herdi_lb_shape_str(last->ndim, last->dims, s, sizeof s));
    }
    if (m->loss.kind == &herdi_loss_xent && !strcmp(last->kind->name, "softmax")) {
        if (last->line > 0)
            return herd_fail(err, HERD_ESPEC, "%s:%d: the last layer is softmax, but the cross-entropy loss already "
                             "applies it to the logits; remove it", m->source, last->line);
        /* built by other means (an ONNX graph that is a Softmax alone): no spec line to point at */
        return herd_fail(err, HERD_EUNSUPPORTED, "%s: the model's last layer '%s' is a softmax; "
                         "herd's models end in logits (the cross-entropy loss applies the softmax)", m->source,
                         last->name);
    }
    m->loss.kind->default_target(&m->loss, last->ndim, last->dims);
    return herdi_model_alloc_params(m, err);
}

/* ---- the public builder ---- */

herd_status herd_model_begin(herd_model **out, const char *source, herd_error *err) {
    return herdi_model_create(out, source ? source : "model", err);
}

herd_status herd_model_add_input(herd_model *m, const char *name, herd_dtype dtype, int ndim, const int64_t *dims,
                                 herd_error *err) {
    if (m->n_nodes) return herd_fail(err, HERD_EARG, "%s: inputs come before the layers", m->source);
    if (ndim != 1 && ndim != 3) return herd_fail(err, HERD_EARG, "%s: an input is (C,H,W) or (F), not %d-D", m->source, ndim);
    int64_t d3[3] = {dims[0], ndim == 3 ? dims[1] : 1, ndim == 3 ? dims[2] : 1}, numel = d3[0] * d3[1] * d3[2];
    if (d3[0] < 1 || d3[1] < 1 || d3[2] < 1 || d3[0] > (1 << 20) || d3[1] > (1 << 20) || d3[2] > (1 << 20) ||
        numel > (1 << 26))
        return herd_fail(err, HERD_EARG, "%s: input shape out of range", m->source);
    char def[HERD_NAME_MAX];
    if (!name) {
        if (m->n_inputs == 0) snprintf(def, sizeof def, "input");
        else herdi_model_default_name(m, "input", def, sizeof def);
        name = def;
    } else if (!*name || strlen(name) >= HERD_NAME_MAX || herdi_model_find(m, name) != HERD_MAX_NODES) {
        return herd_fail(err, HERD_EARG, "%s: input name '%s' is empty, too long or already used", m->source, name);
    }
    return herdi_model_add_input(m, name, dtype, d3[1] == 1 && d3[2] == 1 ? 1 : 3, d3, err);
}

herd_status herd_model_add_layer(herd_model *m, const char *keyword, const char *name, const char *const *inputs,
                                 int n_inputs, const herd_layer_arg *args, int n_args, herd_error *err) {
    const layer_kind *kind = keyword ? herdi_layer_kind_by_keyword(keyword) : NULL;
    if (!kind)
        return herd_fail(err, HERD_ESPEC, "%s: unknown layer '%s' (expected %s)", m->source, keyword ? keyword : "",
                         herdi_layer_keywords());
    if (!m->n_inputs) return herd_fail(err, HERD_ESPEC, "%s: add an input before the layers", m->source);
    if (n_inputs < 0 || n_inputs > HERD_MAX_INPUTS || n_args < 0 || n_args > 32)
        return herd_fail(err, HERD_EARG, "%s: %s: %d inputs and %d arguments are out of range", m->source, keyword,
                         n_inputs, n_args);
    int ids[HERD_MAX_INPUTS];
    for (int k = 0; k < n_inputs; k++) {
        ids[k] = inputs[k] ? herdi_model_find(m, inputs[k]) : HERD_MAX_NODES;
        if (ids[k] == HERD_MAX_NODES)
            return herd_fail(err, HERD_ESPEC, "%s: %s: no earlier layer or input is named '%s'", m->source, keyword,
                             inputs[k] ? inputs[k] : "(null)");
    }
    if (n_inputs == 0) ids[0] = m->n_nodes ? m->n_nodes - 1 : -m->n_inputs, n_inputs = 1;
    char def[HERD_NAME_MAX];
    if (!name) {
        herdi_model_default_name(m, kind->prefix ? kind->prefix : keyword, def, sizeof def);
        name = def;
    } else {
        int ok = *name && strlen(name) < HERD_NAME_MAX && (isalpha((unsigned char)*name) || *name == '_');
        for (const char *p = name; ok && *p; p++) ok = isalnum((unsigned char)*p) || *p == '_' || *p == '.';
        if (!ok) return herd_fail(err, HERD_ESPEC, "%s: bad layer name '%s' (letters, digits, _ and .)", m->source, name);
        if (herdi_model_find(m, name) != HERD_MAX_NODES)
            return herd_fail(err, HERD_ESPEC, "%s: layer name '%s' is already used", m->source, name);
    }
    struct layer_arg a[32];
    for (int i = 0; i < n_args; i++) {
        if (!args[i].key || !args[i].value)
            return herd_fail(err, HERD_EARG, "%s: %s: argument %d has no key or value", m->source, keyword, i);
        a[i] = (struct layer_arg){.key = args[i].key, .value = args[i].value};
    }
    return herdi_model_add_node(m, kind, keyword, name, ids, n_inputs, a, n_args, NULL, 0, 0, err);
}

herd_status herd_model_set_loss(herd_model *m, const char *loss, const herd_layer_arg *args, int n_args,
                                herd_error *err) {
    const loss_kind *kind = herdi_loss_kind_by_name(loss);
    if (!kind)
        return herd_fail(err, HERD_ESPEC, "%s: unknown loss '%s' (expected %s)", m->source, loss ? loss : "",
                         herdi_loss_names());
    if (m->params) return herd_fail(err, HERD_EARG, "%s: the loss is set before herd_model_finish", m->source);
    if (n_args < 0 || (n_args > 0 && !args)) return herd_fail(err, HERD_EARG, "%s: loss %s: bad arguments", m->source, loss);
    for (int i = 0; i < n_args; i++)
        if (!args[i].key || !args[i].value)
            return herd_fail(err, HERD_EARG, "%s: loss %s: argument %d has no key or value", m->source, loss, i);
    char msg[256];
    if (!herdi_loss_configure(&m->loss, kind, args, n_args, msg, sizeof msg))
        return herd_fail(err, HERD_ESPEC, "%s: %s", m->source, msg);
    return HERD_OK;
}

herd_status herd_model_finish(herd_model *m, herd_error *err) {
    if (m->params) return herd_fail(err, HERD_EARG, "%s: the model is already finished", m->source);
    return herdi_model_finish(m, err);
}
