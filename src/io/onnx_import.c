/* ONNX import, translation: a decoded graph (io/onnx_decode.h) walked once, node by node,
 * into builder calls (herd_model_add_layer). A node whose operator maps to one layer kind is
 * translated by that kind (its onnx_import entry: arguments, weights, what it refuses); the
 * patterns that span several nodes or make no layer live here: Identity / Dropout / Constant,
 * Pad folded into the next Conv or AveragePool, the input normalisation (Sub then Div or Mul),
 * GELU's erf and tanh formulas, MatMul + Add as a dense layer (per position on (N,T,F), its weight
 * an initializer [in, out] or a Transpose of one [out, in]: a table an embedding gathers from is
 * then a tied head), Add of a (T,C) initializer as a position embedding, the attention subgraph
 * of herd's export (Split ... Reshape), chains of Adds as one N-ary add, a final
 * Softmax (herd's loss applies it), and shape subgraphs (Shape / Gather / Unsqueeze / Concat)
 * feeding a Reshape to (N, -1). After the model is finished the initializers are copied into
 * the registry slots the translation linked them to. No spec text is involved. */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "herd/onnx.h"
#include "io/onnx_decode.h"
#include "model/model_internal.h"

#define MAX_ARGS 16
#define SHAPE_BATCH INT64_MIN /* a shape entry that is the symbolic batch size */

/* What an ONNX tensor name stands for during translation. */
typedef enum value_kind {
    V_LAYER,    /* a herd node's output (layer >= 0) or a model input (-1 - k) */
    V_CONST,    /* an initializer or Constant: tensor */
    V_GELU,     /* part of x * 0.5 * (1 + erf(x / sqrt 2)) over layer: flags say which */
    V_CENTERED, /* the model input minus a per-channel mean (tensor) */
    V_SHAPE,    /* integers computed from shapes: shape[0..n_shape) */
    V_SUM,      /* a sum of layers whose only reader is another Add: sums[sum] */
    V_SPLIT,    /* layer's (N,C,H,W) reshaped to (N,G,C/G,H,W), G in flags: half a channel shuffle */
    V_SPLIT_T,  /* that, transposed to (N,C/G,G,H,W): the shuffle before its last Reshape */
    V_CONST_T,  /* a 2-D initializer (tensor) transposed: a MatMul's weight [out, in] as herd stores it */
    V_BLOCKED   /* written by a node herd refused (or one after it): its readers are not checked */
} value_kind;
enum { G_DIV = 1, G_ERF = 2, G_ERF1 = 4, G_X = 8, G_HALF = 16 };

typedef struct value {
    onnx_str name;
    value_kind kind;
    int layer;
    int rank;         /* V_LAYER: the tensor's rank in ONNX (herd's vectors may be (N,C,1,1) there) */
    int tensor;
    int flags;
    int pad_h, pad_w; /* V_LAYER: zero padding from a Pad node, for the next Conv/AveragePool */
    int n_shape, scalar;
    int64_t shape[ONNX_MAX_DIMS];
    int sum;
} value;

typedef struct weight_link {
    int node, slot, tensor, transpose;
    float scale;   /* every value times this (Gemm's alpha, beta); 1: as stored */
    int broadcast; /* a one-value tensor fills the whole slot (Gemm's scalar bias) */
} weight_link;

typedef struct sum_list {
    int n;
    int in[HERD_MAX_INPUTS];
} sum_list;

struct onnx_importer {
    onnx_graph g;
    const char *path;
    herd_error *err;  /* &own while translating: each refusal is collected from there */
    herd_error own;
    /* refused nodes: their messages (without the file), the first one's status */
    char **refusals;
    int n_refusals, n_unchecked;
    herd_status first_refusal;
    int check;        /* herd_onnx_check: unsupported operators do not stop the walk */
    void (*report)(void *ctx, const char *line);
    void *report_ctx;
    herd_model *m;
    value *values;
    int n_values, cap_values;
    unsigned char *done; /* per ONNX node: taken by a pattern of an earlier node */
    weight_link *links;
    int n_links, cap_links;
    sum_list *sums;
    int n_sums;
    double *norm; /* input normalisation (in_c means, in_c stds) when the graph starts with one */
    /* the node being translated */
    const onnx_node *n;
    int node_index;
    char op[64];
    const char *keyword;
    struct {
        char key[24], value[64];
    } argbuf[MAX_ARGS];
    int n_args;
    struct {
        int slot, tensor, transpose, broadcast;
        float scale;
    } pend[LAYER_MAX_SLOTS];
    int n_pend;
    unsigned char claimed[ONNX_MAX_NODE_IO];
    const value *in0;
    int pad_read, pass_through;
};

/* ------------------------------------------------------------------ messages */

/* "node 'NAME' (OP)"; a node without a name is named by its first output */
static const char *node_label(const onnx_node *n, char *buf, size_t size) {
    char a[96], b[96];
    if (n->name.n) snprintf(buf, size, "node '%s' (%s)", herdi_onnx_show(n->name, a, sizeof a), herdi_onnx_show(n->op, b, sizeof b));
    else if (n->n_out) snprintf(buf, size, "node writing '%s' (%s)", herdi_onnx_show(n->out[0], a, sizeof a), herdi_onnx_show(n->op, b, sizeof b));
    else snprintf(buf, size, "a %s node", herdi_onnx_show(n->op, b, sizeof b));
    return buf;
}

static herd_status fail(onnx_importer *im, herd_status st, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;

static herd_status fail(onnx_importer *im, herd_status st, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    herd_failv(im->err, st, fmt, ap);
    va_end(ap);
    if (im->err) herd_fail_prefix(im->err, "%s", im->path);
    return st;
}

/* "FILE: node 'N' (OP): <msg>" */
static herd_status node_fail(onnx_importer *im, herd_status st, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;

static herd_status node_fail(onnx_importer *im, herd_status st, const char *fmt, ...) {
    char msg[700], label[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return herd_fail(im->err, st, "%s: %s: %s", im->path, node_label(im->n, label, sizeof label), msg);
}

herd_status herdi_onnx_refuse(onnx_importer *im, const char *fmt, ...) {
    char msg[600];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return node_fail(im, HERD_EUNSUPPORTED, "%s", msg);
}

/* ------------------------------------------------------------------ values */

static value *find_value(onnx_importer *im, onnx_str name) {
    for (int i = im->n_values - 1; i >= 0; i--)
        if (herdi_onnx_str_same(im->values[i].name, name)) return &im->values[i];
    return NULL;
}

/* The table is sized once (every initializer, node output and graph input), so value
 * pointers stay valid while a node is translated. */
static herd_status set_value(onnx_importer *im, onnx_str name, value v) {
    if (im->n_values >= im->cap_values) return fail(im, HERD_EINTERNAL, "more than %d tensors", im->cap_values);
    v.name = name;
    im->values[im->n_values++] = v;
    return HERD_OK;
}

/* the value of the node's input k (NULL with an error when nothing produces it) */
static value *input_value(onnx_importer *im, int k, herd_status *st) {
    const onnx_node *n = im->n;
    *st = HERD_OK;
    if (k >= n->n_in || n->in[k].n == 0) {
        *st = node_fail(im, HERD_EFORMAT, "lacks input %d", k);
        return NULL;
    }
    value *v = find_value(im, n->in[k]);
    if (!v) *st = node_fail(im, HERD_EFORMAT, "reads '%s', which nothing produces", ONNX_SHOW(n->in[k]));
    return v;
}

static int is_graph_output(const onnx_importer *im, onnx_str name) {
    for (int i = 0; i < im->g.n_outputs; i++)
        if (herdi_onnx_str_same(im->g.outputs[i].name, name)) return 1;
    return 0;
}

/* The one node after `after` that reads tensor name (once), or -1 (none, several, or a graph output). */
static int sole_consumer(const onnx_importer *im, onnx_str name, int after) {
    if (is_graph_output(im, name)) return -1;
    int found = -1;
    for (int i = after + 1; i < im->g.n_nodes; i++)
        for (int k = 0; k < im->g.nodes[i].n_in; k++)
            if (herdi_onnx_str_same(im->g.nodes[i].in[k], name)) {
                if (found >= 0) return -1;
                found = i;
            }
    return found;
}

static int is_used(const onnx_importer *im, onnx_str name, int after) {
    if (is_graph_output(im, name)) return 1;
    for (int i = after + 1; i < im->g.n_nodes; i++)
        for (int k = 0; k < im->g.nodes[i].n_in; k++)
            if (herdi_onnx_str_same(im->g.nodes[i].in[k], name)) return 1;
    return 0;
}

static const char *layer_name(const herd_model *m, int layer) {
    return layer >= 0 ? m->nodes[layer].name : m->inputs[-1 - layer].name;
}

static int value_ndim(const onnx_importer *im, const value *v) {
    return v->layer >= 0 ? im->m->nodes[v->layer].ndim : im->m->inputs[-1 - v->layer].ndim;
}

static const int64_t *value_dims(const onnx_importer *im, const value *v) {
    return v->layer >= 0 ? im->m->nodes[v->layer].dims : im->m->inputs[-1 - v->layer].dims;
}

static herd_status scalar_of(onnx_importer *im, int t, double *out) {
    if (im->g.tensors[t].numel != 1)
        return node_fail(im, HERD_EUNSUPPORTED, "tensor '%s' should be a scalar", ONNX_SHOW(im->g.tensors[t].name));
    return herdi_onnx_tensor_values(&im->g, &im->g.tensors[t], NULL, out, im->err);
}

/* ------------------------------------------------------------------ the helpers kinds use */

const char *herdi_onnx_op(const onnx_importer *x) { return x->op; }

int64_t herdi_onnx_attr_int(const onnx_importer *x, const char *name, int64_t dflt) {
    const onnx_attr *a = herdi_onnx_node_attr(x->n, name);
    return a && a->has_i ? a->i : dflt;
}

float herdi_onnx_attr_float(const onnx_importer *x, const char *name, float dflt) {
    const onnx_attr *a = herdi_onnx_node_attr(x->n, name);
    return a && a->has_f ? a->f : dflt;
}

int herdi_onnx_attr_ints(const onnx_importer *x, const char *name, int64_t *v, int max) {
    const onnx_attr *a = herdi_onnx_node_attr(x->n, name);
    if (!a || !a->has_ints) return -1;
    for (int i = 0; i < a->n_ints && i < max; i++) v[i] = a->ints[i];
    return a->n_ints;
}

int herdi_onnx_attr_str_in(const onnx_importer *x, const char *name, const char *const *values) {
    const onnx_attr *a = herdi_onnx_node_attr(x->n, name);
    if (!a) return 1;
    for (; *values; values++)
        if (a->has_s && herdi_onnx_str_eq(a->s, *values)) return 1;
    return 0;
}

int herdi_onnx_in_ndim(const onnx_importer *x) { return value_ndim(x, x->in0); }
const int64_t *herdi_onnx_in_dims(const onnx_importer *x) { return value_dims(x, x->in0); }

void herdi_onnx_in_pad(onnx_importer *x, int *ph, int *pw) {
    *ph = x->in0->pad_h, *pw = x->in0->pad_w;
    x->pad_read = 1;
}

static int const_tensor(onnx_importer *x, int k) {
    if (k >= x->n->n_in || x->n->in[k].n == 0) return -1;
    value *v = find_value(x, x->n->in[k]);
    return v && v->kind == V_CONST ? v->tensor : -1;
}

int herdi_onnx_const_dims(const onnx_importer *x, int k, int64_t *dims) {
    int t = const_tensor((onnx_importer *)x, k);
    if (t < 0) return -1;
    const onnx_tensor *T = &x->g.tensors[t];
    memcpy(dims, T->dims, (size_t)T->ndim * sizeof *dims);
    return T->ndim;
}

herd_status herdi_onnx_const_scalar(onnx_importer *x, int k, const char *what, double *v, int *present) {
    *present = 0;
    if (k >= x->n->n_in || x->n->in[k].n == 0) return HERD_OK;
    int t = const_tensor(x, k);
    if (t < 0) return herdi_onnx_refuse(x, "%s (input %d) must be a constant", what, k);
    if (x->g.tensors[t].numel != 1)
        return herdi_onnx_refuse(x, "%s (input %d, '%s') must be one value", what, k, ONNX_SHOW(x->g.tensors[t].name));
    herd_status st = herdi_onnx_tensor_values(&x->g, &x->g.tensors[t], NULL, v, x->err);
    if (st) return st;
    if (k < ONNX_MAX_NODE_IO) x->claimed[k] = 1;
    *present = 1;
    return HERD_OK;
}

/* SAME: ONNX pads each axis of the input by total = (ceil(in/s) - 1) * s + (k - 1) * dil + 1 - in,
 * the odd one after (UPPER) or before (LOWER); herd pads both sides alike: an even total is
 * half each side; LOWER's odd total at stride 2+ is the larger half both sides (the extra one
 * after is never reached by a window, and the output count is the same). */
herd_status herdi_onnx_auto_pad(onnx_importer *x, const int64_t *k, const int64_t *s, const int64_t *dil, int xh, int xw,
                          int has_pads, int64_t *p) {
    static const char *const notset[] = {"NOTSET", NULL}, *const valid[] = {"VALID", NULL},
                             *const upper[] = {"SAME_UPPER", NULL}, *const lower[] = {"SAME_LOWER", NULL};
    if (herdi_onnx_attr_str_in(x, "auto_pad", notset)) return HERD_OK;
    int same = herdi_onnx_attr_str_in(x, "auto_pad", upper) ? 1 : herdi_onnx_attr_str_in(x, "auto_pad", lower) ? 2 : 0;
    if (!same && !herdi_onnx_attr_str_in(x, "auto_pad", valid))
        return herdi_onnx_refuse(x, "auto_pad must be NOTSET, VALID, SAME_UPPER or SAME_LOWER");
    if (has_pads) return herdi_onnx_refuse(x, "pads and auto_pad together");
    memset(p, 0, 4 * sizeof *p);
    if (!same || herdi_onnx_in_ndim(x) != 3) return HERD_OK; /* a vector input is refused by the layer */
    static const char *const axis[2] = {"H", "W"};
    for (int i = 0; i < 2; i++) {
        int64_t in = herdi_onnx_in_dims(x)[1 + i] + 2 * (i ? xw : xh), out = (in + s[i] - 1) / s[i];
        int64_t total = (out - 1) * s[i] + (k[i] - 1) * dil[i] + 1 - in;
        if (total < 0) total = 0;
        int64_t before = same == 2 ? total - total / 2 : total / 2, after = total - before;
        if (before != after && !(same == 2 && s[i] >= 2))
            return herdi_onnx_refuse(x, "auto_pad=%s pads %s by %lld before and %lld after (herd pads both sides alike)",
                               same == 2 ? "SAME_LOWER" : "SAME_UPPER", axis[i], (long long)before, (long long)after);
        p[i] = p[i + 2] = before;
    }
    return HERD_OK;
}

/* Links initializer t to the layer's slot (appended to the pending weights of the layer begun);
 * the caller has checked there is room */
static void pend_weight(onnx_importer *x, int slot, int t, int transpose, float scale, int broadcast) {
    x->pend[x->n_pend].slot = slot, x->pend[x->n_pend].tensor = t, x->pend[x->n_pend].transpose = transpose;
    x->pend[x->n_pend].scale = scale, x->pend[x->n_pend].broadcast = broadcast;
    x->n_pend++;
}

herd_status herdi_onnx_weight(onnx_importer *x, int k, int slot, int transpose) {
    return herdi_onnx_weight_as(x, k, slot, transpose, 1.0f, 0);
}

herd_status herdi_onnx_weight_as(onnx_importer *x, int k, int slot, int transpose, float scale, int broadcast) {
    int t = const_tensor(x, k);
    if (t < 0) return herdi_onnx_refuse(x, "input %d must be an initializer (a weight herd trains)", k);
    if (x->n_pend >= LAYER_MAX_SLOTS) return herdi_onnx_refuse(x, "too many weights");
    pend_weight(x, slot, t, transpose, scale, broadcast);
    x->claimed[k] = 1;
    return HERD_OK;
}

void herdi_onnx_keyword(onnx_importer *x, const char *keyword) { x->keyword = keyword; }

void herdi_onnx_arg(onnx_importer *x, const char *key, const char *fmt, ...) {
    if (x->n_args >= MAX_ARGS) return; /* the kinds add a few; never reached */
    snprintf(x->argbuf[x->n_args].key, sizeof x->argbuf[0].key, "%s", key);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(x->argbuf[x->n_args].value, sizeof x->argbuf[0].value, fmt, ap);
    va_end(ap);
    x->n_args++;
}

void herdi_onnx_pass_through(onnx_importer *x) { x->pass_through = 1; }

/* ------------------------------------------------------------------ making layers */

static void begin_layer(onnx_importer *im, const char *keyword) {
    im->keyword = keyword;
    im->n_args = im->n_pend = im->pad_read = im->pass_through = 0;
    memset(im->claimed, 0, sizeof im->claimed);
}

static int valid_name(const herd_model *m, const char *s, size_t n) {
    if (n == 0 || n >= HERD_NAME_MAX) return 0;
    int ok = (s[0] >= 'a' && s[0] <= 'z') || (s[0] >= 'A' && s[0] <= 'Z') || s[0] == '_';
    for (size_t i = 0; ok && i < n; i++)
        ok = (s[i] >= 'a' && s[i] <= 'z') || (s[i] >= 'A' && s[i] <= 'Z') || (s[i] >= '0' && s[i] <= '9') || s[i] == '_' ||
             s[i] == '.';
    if (!ok) return 0;
    char buf[HERD_NAME_MAX];
    memcpy(buf, s, n);
    buf[n] = 0;
    return herdi_model_find(m, buf) == HERD_MAX_NODES;
}

/* The layer's name: its weight's ("layer1.0.conv1.weight" -> layer1.0.conv1, so herd's own
 * exports come back under the same registry names and PyTorch's keep their state_dict names),
 * else the tensor it writes, else herd's default (NULL); names as the spec parser takes them. */
static const char *pick_name(onnx_importer *im, onnx_str out, char *buf) {
    for (int i = 0; i < im->n_pend; i++) {
        onnx_str w = im->g.tensors[im->pend[i].tensor].name;
        if (im->pend[i].slot == 0 && w.n > 7 && memcmp(w.p + w.n - 7, ".weight", 7) == 0 &&
            valid_name(im->m, w.p, w.n - 7)) {
            memcpy(buf, w.p, w.n - 7);
            buf[w.n - 7] = 0;
            return buf;
        }
    }
    if (!valid_name(im->m, out.p, out.n)) return NULL;
    memcpy(buf, out.p, out.n);
    buf[out.n] = 0;
    return buf;
}

/* Shape check of a linked initializer against the registry slot it fills. */
static herd_status check_link(onnx_importer *im, const weight_link *l) {
    const param_entry *p = &im->m->params_reg[im->m->nodes[l->node].param[l->slot]];
    const onnx_tensor *t = &im->g.tensors[l->tensor];
    int ok;
    if (l->transpose)
        ok = t->ndim == 2 && p->info.ndim == 2 && t->dims[0] == p->info.shape[1] && t->dims[1] == p->info.shape[0];
    else if (p->info.ndim >= 2)
        ok = t->ndim == p->info.ndim && !memcmp(t->dims, p->info.shape, (size_t)t->ndim * sizeof(int64_t));
    else
        ok = t->numel == p->info.numel || (l->broadcast && t->numel == 1);
    if (ok) return HERD_OK;
    char a[96], b[96];
    int64_t want[4];
    for (int d = 0; d < p->info.ndim; d++) want[d] = p->info.shape[l->transpose ? p->info.ndim - 1 - d : d];
    return node_fail(im, HERD_ESHAPE, "initializer '%s' has shape %s but the layer needs %s%s", ONNX_SHOW(t->name),
                     herdi_onnx_dims_str(t->ndim, t->dims, a, sizeof a), herdi_onnx_dims_str(p->info.ndim, want, b, sizeof b),
                     l->transpose ? " ([in, out])" : "");
}

/* herd_model_add_layer with the collected keyword, arguments and weights, reading layers
 * inputs[0..n_in); its output becomes value `out` (rank: its ONNX rank). A builder error is
 * reported for the ONNX node. */
static herd_status make_layer(onnx_importer *im, const int *inputs, int n_in, onnx_str out, int rank, onnx_str name_from) {
    herd_model *m = im->m;
    const char *names[HERD_MAX_INPUTS];
    for (int k = 0; k < n_in; k++) names[k] = layer_name(m, inputs[k]);
    herd_layer_arg args[MAX_ARGS];
    for (int i = 0; i < im->n_args; i++) args[i] = (herd_layer_arg){im->argbuf[i].key, im->argbuf[i].value};
    char namebuf[HERD_NAME_MAX];
    const char *name = pick_name(im, name_from, namebuf);
    herd_error e = {0};
    herd_status st = herd_model_add_layer(m, im->keyword, name, names, n_in, args, im->n_args, &e);
    if (st) {
        size_t pl = strlen(im->path);
        const char *rest = !strncmp(e.msg, im->path, pl) && e.msg[pl] == ':' ? e.msg + pl + 2 : e.msg;
        return node_fail(im, st, "%s", rest);
    }
    int node = m->n_nodes - 1;
    for (int i = 0; i < im->n_pend; i++) {
        if (im->n_links >= im->cap_links) {
            int cap = im->cap_links ? 2 * im->cap_links : 256;
            weight_link *nl = herd_malloc_array((size_t)cap, sizeof *nl);
            if (!nl) return fail(im, HERD_ENOMEM, "out of memory");
            if (im->n_links) memcpy(nl, im->links, (size_t)im->n_links * sizeof *nl);
            free(im->links);
            im->links = nl, im->cap_links = cap;
        }
        weight_link *l = &im->links[im->n_links];
        *l = (weight_link){node, im->pend[i].slot, im->pend[i].tensor, im->pend[i].transpose, im->pend[i].scale,
                           im->pend[i].broadcast};
        if (m->nodes[node].param[l->slot] < 0) return node_fail(im, HERD_EINTERNAL, "no parameter slot %d", l->slot);
        if ((st = check_link(im, l))) return st;
        im->n_links++;
    }
    return set_value(im, out, (value){.kind = V_LAYER, .layer = node, .rank = rank});
}

/* A pending sum becomes an add layer (named after the tensor it was). */
static herd_status materialize(onnx_importer *im, value *v) {
    if (v->kind != V_SUM) return HERD_OK;
    const sum_list *s = &im->sums[v->sum];
    begin_layer(im, "add");
    onnx_str name = v->name;
    herd_status st = make_layer(im, s->in, s->n, name, v->rank, name);
    if (st) return st;
    *v = im->values[--im->n_values]; /* make_layer appended the layer's value: it replaces the sum */
    return HERD_OK;
}

/* ------------------------------------------------------------------ a node of a kind */

static int onnx_rank_of(const herd_model *m, int layer) {
    return (layer >= 0 ? m->nodes[layer].ndim : m->inputs[-1 - layer].ndim) + 1;
}

static herd_status tr_kind(onnx_importer *im, const layer_kind *kind) {
    const onnx_node *n = im->n;
    herd_status st;
    begin_layer(im, kind->keywords[0]);
    int data[HERD_MAX_INPUTS], n_data = 0, is_add = !strcmp(kind->keywords[0], "add");
    value *first = NULL;
    for (int k = 0; k < n->n_in; k++) {
        if (n->in[k].n == 0) continue;
        value *v = input_value(im, k, &st);
        if (!v) return st;
        if (v->kind == V_SUM && !is_add && (st = materialize(im, v))) return st;
        if (v->kind == V_CONST) continue; /* a weight, claimed by the kind (checked below) */
        if (v->kind != V_LAYER && v->kind != V_SUM)
            return herdi_onnx_refuse(im, "input '%s' is %s, which %s cannot take", ONNX_SHOW(n->in[k]),
                               v->kind == V_GELU      ? "part of a GELU"
                               : v->kind == V_SHAPE   ? "a shape"
                               : v->kind == V_CENTERED ? "the centred input"
                               : v->kind == V_CONST_T ? "a transposed constant"
                                                       : "half of a channel shuffle",
                               im->op);
        const int *list = v->kind == V_SUM ? im->sums[v->sum].in : &v->layer;
        int cnt = v->kind == V_SUM ? im->sums[v->sum].n : 1;
        if (n_data + cnt > HERD_MAX_INPUTS) return herdi_onnx_refuse(im, "more than %d inputs", HERD_MAX_INPUTS);
        for (int j = 0; j < cnt; j++) data[n_data++] = list[j];
        if (!first) first = v;
    }
    if (!first) return herdi_onnx_refuse(im, "no input is a layer's output");
    value in0 = *first;
    if (in0.kind == V_SUM) in0 = (value){.kind = V_LAYER, .layer = im->sums[in0.sum].in[0], .rank = in0.rank};
    im->in0 = &in0;
    if ((st = kind->onnx_import(im))) return st;
    for (int k = 0; k < n->n_in && k < ONNX_MAX_NODE_IO; k++)
        if (const_tensor(im, k) >= 0 && !im->claimed[k])
            return herdi_onnx_refuse(im, "input %d ('%s') is a constant; herd's %s reads layer outputs there", k,
                               ONNX_SHOW(n->in[k]), kind->keywords[0]);
    for (int k = 0; k < n->n_in; k++) {
        value *v = n->in[k].n ? find_value(im, n->in[k]) : NULL;
        if (v && v->kind == V_LAYER && (v->pad_h || v->pad_w) && !(v == first && im->pad_read))
            return herdi_onnx_refuse(im, "reads a padded tensor; a Pad is folded into a following Conv or AveragePool only");
    }
    for (int k = 1; k < n->n_out; k++)
        if (n->out[k].n && is_used(im, n->out[k], im->node_index))
            return herdi_onnx_refuse(im, "output %d ('%s') is used; herd computes the first output only", k,
                               ONNX_SHOW(n->out[k]));
    if (n->n_out < 1) return node_fail(im, HERD_EFORMAT, "has no output");
    if (im->pass_through) {
        if (n_data != 1) return herdi_onnx_refuse(im, "an identity of several inputs");
        value v = in0;
        v.rank = v.rank == 4 && value_ndim(im, &v) == 1 ? 2 : v.rank; /* a Flatten of an (N,C,1,1) vector */
        return set_value(im, n->out[0], v);
    }
    /* an Add whose only reader is another Add: joined with it into one N-ary add */
    if (is_add) {
        int c = sole_consumer(im, n->out[0], im->node_index);
        if (c >= 0 && herdi_onnx_str_eq(im->g.nodes[c].op, "Add")) {
            sum_list *s = realloc(im->sums, (size_t)(im->n_sums + 1) * sizeof *s);
            if (!s) return fail(im, HERD_ENOMEM, "out of memory");
            im->sums = s;
            s[im->n_sums].n = n_data;
            memcpy(s[im->n_sums].in, data, (size_t)n_data * sizeof *data);
            return set_value(im, n->out[0], (value){.kind = V_SUM, .sum = im->n_sums++, .rank = in0.rank});
        }
    }
    /* herd's gap is ONNX's GlobalAveragePool + Flatten: the pair's output names the layer */
    onnx_str name_from = n->out[0];
    int c = !strcmp(kind->keywords[0], "gap") ? sole_consumer(im, n->out[0], im->node_index) : -1;
    if (c >= 0 && herdi_onnx_str_eq(im->g.nodes[c].op, "Flatten") && im->g.nodes[c].n_out &&
        !is_graph_output(im, im->g.nodes[c].out[0]))
        name_from = im->g.nodes[c].out[0];
    int rank = !strcmp(kind->keywords[0], "gap") ? 4 : 0;
    st = make_layer(im, data, n_data, n->out[0], rank, name_from);
    if (st) return st;
    value *v = &im->values[im->n_values - 1];
    if (!v->rank) v->rank = onnx_rank_of(im->m, v->layer) == value_ndim(im, &in0) + 1 ? in0.rank
                                                                                    : onnx_rank_of(im->m, v->layer);
    return HERD_OK;
}

/* ------------------------------------------------------------------ patterns */

/* Identity and Dropout (inference): the output is the input (a weight's Identity stays a weight) */
static herd_status tr_identity(onnx_importer *im) {
    herd_status st;
    value *v = input_value(im, 0, &st);
    if (!v) return st;
    if (herdi_onnx_str_eq(im->n->op, "Dropout")) {
        int t = const_tensor(im, 2);
        double train = 0;
        if (im->n->n_in > 2 && im->n->in[2].n && t < 0) return herdi_onnx_refuse(im, "training_mode is not a constant");
        if (t >= 0 && (st = scalar_of(im, t, &train))) return st;
        if (train != 0) return herdi_onnx_refuse(im, "training_mode=true (herd imports models for inference and training "
                                               "as it trains them: a dropout layer would be needed)");
        if (im->n->n_out > 1 && im->n->out[1].n && is_used(im, im->n->out[1], im->node_index))
            return herdi_onnx_refuse(im, "its mask output is used");
    }
    if (im->n->n_out < 1) return node_fail(im, HERD_EFORMAT, "has no output");
    return set_value(im, im->n->out[0], *v);
}

static herd_status tr_constant(onnx_importer *im) {
    const onnx_attr *a = herdi_onnx_node_attr(im->n, "value");
    if (!a || a->tensor < 0 || im->n->n_out < 1) return herdi_onnx_refuse(im, "only a tensor 'value' is supported");
    im->g.tensors[a->tensor].name = im->n->out[0];
    return set_value(im, im->n->out[0], (value){.kind = V_CONST, .tensor = a->tensor});
}

/* Pad with zeros, symmetric over H and W only: folded into the next Conv or AveragePool
 * (PyTorch writes AvgPool2d as Pad + AveragePool); pads from the input (opset 11+) or the
 * attribute (opsets 2 to 10). */
static herd_status tr_pad(onnx_importer *im) {
    herd_status st;
    const onnx_node *n = im->n;
    value *in = input_value(im, 0, &st);
    if (!in) return st;
    if (in->kind != V_LAYER || in->rank != 4 || in->pad_h || in->pad_w)
        return herdi_onnx_refuse(im, "only the zero padding of an (N,C,H,W) layer output, once");
    static const char *const constant[] = {"constant", NULL};
    if (!herdi_onnx_attr_str_in(im, "mode", constant)) return herdi_onnx_refuse(im, "only constant padding");
    double pads[8] = {0}, cv = 0;
    int64_t ap[8];
    int na = herdi_onnx_attr_ints(im, "pads", ap, 8);
    if (na >= 0) {
        if (na != 8) return herdi_onnx_refuse(im, "only 4-D padding");
        for (int i = 0; i < 8; i++) pads[i] = (double)ap[i];
        cv = herdi_onnx_attr_float(im, "value", 0);
    } else {
        int tp = const_tensor(im, 1), tv = const_tensor(im, 2);
        if (tp < 0) return herdi_onnx_refuse(im, "the pads must be a constant");
        if (n->n_in > 2 && n->in[2].n && tv < 0) return herdi_onnx_refuse(im, "the padding value must be a constant");
        if (n->n_in > 3 && n->in[3].n) return herdi_onnx_refuse(im, "an axes input");
        if (im->g.tensors[tp].numel != 8) return herdi_onnx_refuse(im, "only 4-D padding");
        if ((st = herdi_onnx_tensor_values(&im->g, &im->g.tensors[tp], NULL, pads, im->err))) return st;
        if (tv >= 0 && (st = scalar_of(im, tv, &cv))) return st;
    }
    if (cv != 0 || pads[0] || pads[1] || pads[4] || pads[5] || pads[2] != pads[6] || pads[3] != pads[7] ||
        pads[2] < 0 || pads[3] < 0 || pads[2] > 4096 || pads[3] > 4096)
        return herdi_onnx_refuse(im, "only symmetric zero padding of H and W");
    if (n->n_out < 1) return node_fail(im, HERD_EFORMAT, "has no output");
    value v = *in;
    v.pad_h = (int)pads[2], v.pad_w = (int)pads[3];
    return set_value(im, n->out[0], v);
}

/* ---- input normalisation: Sub(input, mean) then Div(., std) or Mul(., 1 / std), each constant
 * holding one value per input channel and broadcasting along the channel axis only (or one
 * value for all), before any layer: it becomes the model's input normalisation
 * (herd_model_input_norm), as herd exports it. ---- */

/* Tensor t as one value per input channel into out (out NULL: only checked). */
static herd_status per_channel(onnx_importer *im, int t, double *out) {
    const onnx_tensor *x = &im->g.tensors[t];
    int C = im->m->in_c, rank = im->m->inputs[0].ndim + 1, ok = x->ndim <= rank;
    for (int d = 0; d < x->ndim && ok; d++) {
        int axis = rank - x->ndim + d; /* numpy broadcasting aligns the trailing dimensions */
        ok = x->dims[d] == 1 || (axis == 1 && x->dims[d] == C);
    }
    if (!ok || (x->numel != C && x->numel != 1)) {
        char s[96];
        return herdi_onnx_refuse(im, "input normalisation needs one value per input channel (%d; e.g. shape [%d, 1, 1]), "
                           "not shape %s", C, C, herdi_onnx_dims_str(x->ndim, x->dims, s, sizeof s));
    }
    if (!out) return HERD_OK;
    double v[1];
    herd_status st = herdi_onnx_tensor_values(&im->g, x, NULL, x->numel == 1 ? v : out, im->err);
    if (x->numel == 1)
        for (int c = 0; c < C; c++) out[c] = v[0];
    return st;
}

static herd_status shape_value_of(onnx_importer *im, int k, value *out);
static herd_status tr_shape_arith(onnx_importer *im);

/* whether input k is integers of a shape subgraph: a shape, or a short integer constant */
static int shape_operand(onnx_importer *im, int k) {
    value *v = k < im->n->n_in && im->n->in[k].n ? find_value(im, im->n->in[k]) : NULL;
    if (!v) return 0;
    if (v->kind == V_SHAPE) return 1;
    if (v->kind != V_CONST) return 0;
    const onnx_tensor *t = &im->g.tensors[v->tensor];
    return (t->dtype == ONNX_T_INT64 || t->dtype == ONNX_T_INT32) && t->ndim <= 1 && t->numel <= ONNX_MAX_DIMS;
}

/* an Add/Sub/Mul/Div of shape integers, or of integer constants with one */
static int is_shape_arith(onnx_importer *im) {
    return im->n->n_in == 2 && shape_operand(im, 0) && shape_operand(im, 1) &&
           ((find_value(im, im->n->in[0])->kind == V_SHAPE) || (find_value(im, im->n->in[1])->kind == V_SHAPE));
}

static herd_status tr_sub(onnx_importer *im) {
    if (is_shape_arith(im)) return tr_shape_arith(im);
    value *a = im->n->n_in == 2 ? find_value(im, im->n->in[0]) : NULL;
    int t = im->n->n_in == 2 ? const_tensor(im, 1) : -1;
    if (!a || a->kind != V_LAYER || a->layer != -1 || im->m->n_nodes || im->norm || t < 0 || im->n->n_out < 1)
        return herdi_onnx_refuse(im, "Sub is only supported as the input normalisation (graph input minus a per-channel "
                               "constant, first)");
    herd_status st = per_channel(im, t, NULL); /* checked here, read when the scale comes */
    return st ? st : set_value(im, im->n->out[0], (value){.kind = V_CENTERED, .tensor = t});
}

/* Div(centered, std) or Mul(centered, inv_std): the model input, normalised. */
static herd_status tr_input_scale(onnx_importer *im, const value *centered, int t, int is_div) {
    if (im->norm || im->m->n_nodes) return herdi_onnx_refuse(im, "the input is normalised once, before any layer");
    int C = im->m->in_c;
    im->norm = malloc(2 * sizeof(double) * (size_t)C);
    if (!im->norm) return fail(im, HERD_ENOMEM, "out of memory");
    double *mean = im->norm, *std = im->norm + C;
    herd_status st = per_channel(im, centered->tensor, mean);
    if (!st) st = per_channel(im, t, std);
    for (int c = 0; c < C && !st; c++) {
        double s = is_div ? std[c] : 1.0 / std[c];
        if (!isfinite(mean[c]) || !isfinite(s) || s <= 0)
            return herdi_onnx_refuse(im, "input normalisation of channel %d is not finite and positive", c);
        std[c] = s;
    }
    return st ? st : set_value(im, im->n->out[0], (value){.kind = V_LAYER, .layer = -1, .rank = onnx_rank_of(im->m, -1)});
}

/* ---- transformer patterns (herd's export of a GPT: layers/posemb.c, activation.c, attention.c) ---- */

/* The value of the one-value constant called name (0: it is not one): an initializer, a
 * translated Constant, or a Constant node later in the graph (PyTorch writes each just before its
 * reader, after the node a pattern starts from) */
static int const_scalar_named(onnx_importer *im, onnx_str name, double *out) {
    value *v = find_value(im, name);
    int t = v ? (v->kind == V_CONST ? v->tensor : -1) : -1;
    for (int i = im->node_index + 1; !v && t < 0 && i < im->g.n_nodes; i++) {
        const onnx_node *c = &im->g.nodes[i];
        const onnx_attr *a = herdi_onnx_str_eq(c->op, "Constant") && c->n_out >= 1 && herdi_onnx_str_same(c->out[0], name)
                                 ? herdi_onnx_node_attr(c, "value") : NULL;
        if (a) t = a->tensor;
    }
    if (t < 0 || im->g.tensors[t].numel != 1) return 0;
    herd_error e = {0};
    return herdi_onnx_tensor_values(&im->g, &im->g.tensors[t], NULL, out, &e) == HERD_OK;
}

static int near(double a, double want) { return fabs(a - want) <= 1e-6 * fabs(want); }

/* whether node c's perm attribute is want[0..4) */
static int perm4_is(const onnx_importer *im, int c, const int64_t *want) {
    const onnx_attr *a = herdi_onnx_node_attr(&im->g.nodes[c], "perm");
    return a && a->has_ints && a->n_ints == 4 && !memcmp(a->ints, want, 4 * sizeof *want);
}

/* The integers of a short 1-D integer constant called name: their count, or -1 */
static int const_ints_named(onnx_importer *im, onnx_str name, int64_t *out, int max) {
    value *v = find_value(im, name);
    if (!v || v->kind != V_CONST) return -1;
    const onnx_tensor *t = &im->g.tensors[v->tensor];
    if ((t->dtype != ONNX_T_INT64 && t->dtype != ONNX_T_INT32) || t->ndim != 1 || t->numel > max) return -1;
    double d[ONNX_MAX_DIMS];
    herd_error e = {0};
    if (t->numel > ONNX_MAX_DIMS || herdi_onnx_tensor_values(&im->g, t, NULL, d, &e)) return -1;
    for (int64_t i = 0; i < t->numel; i++) out[i] = (int64_t)d[i];
    return (int)t->numel;
}

/* The node reading tensor `name` alone, of op type op with that many inputs (-1: none such) */
static int next_node(onnx_importer *im, onnx_str name, const char *op, int n_in) {
    int c = sole_consumer(im, name, im->node_index);
    if (c < 0 || im->done[c] || !herdi_onnx_str_eq(im->g.nodes[c].op, op) || im->g.nodes[c].n_in != n_in ||
        im->g.nodes[c].n_out < 1)
        return -1;
    return c;
}

/* node c's input other than tensor `mine` (a binary node reading it once) */
static onnx_str other_input(const onnx_node *c, onnx_str mine) {
    return herdi_onnx_str_same(c->in[0], mine) ? c->in[1] : c->in[0];
}

/* "node 'N' (OP): <msg>" for node c of a pattern, the translation's message */
static herd_status refuse_at(onnx_importer *im, int c, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;

static herd_status refuse_at(onnx_importer *im, int c, const char *fmt, ...) {
    char msg[600];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    const onnx_node *keep = im->n;
    if (c >= 0) im->n = &im->g.nodes[c];
    herd_status st = herdi_onnx_refuse(im, "%s", msg);
    im->n = keep;
    return st;
}

/* Add(x (N,T,C), W [T,C]): a learned position embedding (posemb) */
static herd_status tr_posemb(onnx_importer *im, value *x, value *w) {
    const onnx_tensor *W = &im->g.tensors[w->tensor];
    const int64_t *d = value_dims(im, x);
    if (value_ndim(im, x) != 2 || W->ndim != 2 || W->dims[0] != d[0] || W->dims[1] != d[1]) {
        char a[96], b[96];
        return herdi_onnx_refuse(im, "adds %s '%s' to %s: a constant is added as a MatMul's bias, inside GELU, or as a "
                           "(T, C) position embedding to (N, T, C) positions", herdi_onnx_dims_str(W->ndim, W->dims, a, sizeof a),
                           ONNX_SHOW(W->name), herdi_onnx_dims_str(value_ndim(im, x), d, b, sizeof b));
    }
    begin_layer(im, "posemb");
    herd_status st = herdi_onnx_weight(im, herdi_onnx_str_same(im->n->in[0], W->name) ? 0 : 1, 0, 0);
    return st ? st : make_layer(im, &x->layer, 1, im->n->out[0], x->rank, im->n->out[0]);
}

/* x * (1 + tanh(k * (x + c * x^3))) * 0.5 as layers/activation.c writes it, from its Mul(x, x) on,
 * each step the only reader of the one before: one gelu_tanh layer (*matched 0: x * x is a mul) */
static herd_status tr_gelu_tanh(onnx_importer *im, value *x, int *matched) {
    static const struct {
        const char *op;
        char other; /* 'x': the input; 'c': a constant of value k; 0: none */
        double k;
    } chain[] = {{"Mul", 'x', 0},        {"Mul", 'c', 0.044715}, {"Add", 'x', 0},   {"Mul", 'c', 0.7978845608028654},
                 {"Tanh", 0, 0},         {"Add", 'c', 1.0},      {"Mul", 'x', 0},   {"Mul", 'c', 0.5}};
    onnx_str xs = im->n->in[0], cur = im->n->out[0];
    int nodes[8];
    for (int i = 0; i < 8; i++) {
        int c = next_node(im, cur, chain[i].op, chain[i].other ? 2 : 1);
        if (c < 0) return HERD_OK;
        if (chain[i].other) {
            onnx_str o = other_input(&im->g.nodes[c], cur);
            double v;
            if (chain[i].other == 'x' ? !herdi_onnx_str_same(o, xs) : !const_scalar_named(im, o, &v) || !near(v, chain[i].k))
                return HERD_OK;
        }
        nodes[i] = c, cur = im->g.nodes[c].out[0];
    }
    *matched = 1;
    for (int i = 0; i < 8; i++) im->done[nodes[i]] = 1;
    begin_layer(im, "gelu_tanh");
    return make_layer(im, &x->layer, 1, cur, x->rank, cur);
}

/* The attention subgraph of layers/attention.c, from its Split of (N,T,3C) on: q, k, v each
 * Reshape (N,T,H,hs) + Transpose (k to (N,H,hs,T)), MatMul, Mul by 1/sqrt(hs) (or Div by
 * sqrt(hs)), an optional Add of the causal mask (0 at and below the diagonal, -inf or <= -1e9
 * above), Softmax over the last axis, MatMul by v, Transpose, Reshape to (N,T,C): one attention
 * layer. Any other shape of it is refused at the node that differs. */
static herd_status tr_split(onnx_importer *im) {
    const onnx_node *n = im->n;
    herd_status st;
    value *x = input_value(im, 0, &st);
    if (!x) return st;
    if (x->kind == V_SUM && (st = materialize(im, x))) return st;
    if (x->kind != V_LAYER || value_ndim(im, x) != 2 || value_dims(im, x)[1] % 3 || x->pad_h || x->pad_w ||
        n->n_out != 3 || !n->out[0].n || !n->out[1].n || !n->out[2].n)
        return herdi_onnx_refuse(im, "a Split is imported as the start of herd's attention: (N, T, 3C) queries, keys and "
                               "values into 3 parts");
    int64_t T = value_dims(im, x)[0], C = value_dims(im, x)[1] / 3, axis = herdi_onnx_attr_int(im, "axis", 0), parts[8];
    if (T > 4096) return herdi_onnx_refuse(im, "attention over %lld positions (herd's: at most 4096)", (long long)T);
    int np = herdi_onnx_attr_ints(im, "split", parts, 8);
    if (np < 0 && n->n_in > 1 && n->in[1].n && (np = const_ints_named(im, n->in[1], parts, 8)) < 0)
        return herdi_onnx_refuse(im, "the split sizes must be a constant");
    if ((axis != 2 && axis != -1) || (np >= 0 && (np != 3 || parts[0] != C || parts[1] != C || parts[2] != C)))
        return herdi_onnx_refuse(im, "herd's attention splits (N, T, 3C) into 3 equal parts along axis 2");
    static const int64_t p_qv[4] = {0, 2, 1, 3}, p_k[4] = {0, 2, 3, 1};
    int done[16], nd = 0, tr[3], H = 0;
    for (int b = 0; b < 3; b++) {
        int r = next_node(im, n->out[b], "Reshape", 2);
        int64_t s[8];
        if (r < 0) return herdi_onnx_refuse(im, "output %d is not read by one Reshape alone (herd's attention)", b);
        int ns = const_ints_named(im, im->g.nodes[r].in[1], s, 8);
        if (ns != 4 || (s[0] != 0 && s[0] != -1) || s[1] != T || s[2] < 1 || s[2] > C || s[3] < 1 || s[3] > C ||
            s[2] * s[3] != C || (H && s[2] != H))
            return refuse_at(im, r, "herd's attention reshapes (N, %lld, %lld) to (N, %lld, H, %lld / H)", (long long)T,
                             (long long)C, (long long)T, (long long)C);
        H = (int)s[2];
        int t = next_node(im, im->g.nodes[r].out[0], "Transpose", 1);
        if (t < 0 || !perm4_is(im, t, b == 1 ? p_k : p_qv))
            return refuse_at(im, r, "not read by one Transpose with perm %s (herd's attention)", b == 1 ? "0,2,3,1" : "0,2,1,3");
        done[nd++] = r, done[nd++] = t, tr[b] = t;
    }
#define OUT(c) (im->g.nodes[c].out[0])
    int mm = next_node(im, OUT(tr[0]), "MatMul", 2);
    if (mm < 0 || !herdi_onnx_str_same(im->g.nodes[mm].in[0], OUT(tr[0])) || !herdi_onnx_str_same(im->g.nodes[mm].in[1], OUT(tr[1])) ||
        next_node(im, OUT(tr[1]), "MatMul", 2) != mm)
        return refuse_at(im, tr[0], "the queries must be read by one MatMul with the transposed keys (herd's attention)");
    double scale, hs = (double)(C / H);
    int sc = next_node(im, OUT(mm), "Mul", 2), dv = sc < 0 ? next_node(im, OUT(mm), "Div", 2) : -1;
    if (sc < 0 && dv < 0) return refuse_at(im, mm, "the scores must be scaled by one Mul or Div (herd's attention)");
    int s_node = sc >= 0 ? sc : dv;
    if (!const_scalar_named(im, other_input(&im->g.nodes[s_node], OUT(mm)), &scale) ||
        !near(scale, sc >= 0 ? 1.0 / sqrt(hs) : sqrt(hs)) || (dv >= 0 && !herdi_onnx_str_same(im->g.nodes[dv].in[0], OUT(mm))))
        return refuse_at(im, s_node, "herd's attention scales the scores by 1/sqrt(%g)", hs);
    done[nd++] = mm, done[nd++] = s_node;
    onnx_str logits = OUT(s_node);
    int causal = 0, add = next_node(im, logits, "Add", 2);
    if (add >= 0) {
        value *mv = find_value(im, other_input(&im->g.nodes[add], logits));
        const onnx_tensor *M = mv && mv->kind == V_CONST ? &im->g.tensors[mv->tensor] : NULL;
        double *m = M && M->ndim == 2 && M->dims[0] == T && M->dims[1] == T ? herd_malloc_array((size_t)(T * T), sizeof *m)
                                                                            : NULL;
        herd_error e = {0};
        int ok = m && herdi_onnx_tensor_values(&im->g, M, NULL, m, &e) == HERD_OK;
        for (int64_t i = 0; i < T && ok; i++)
            for (int64_t j = 0; j < T && ok; j++) ok = j <= i ? m[i * T + j] == 0 : m[i * T + j] <= -1e9;
        free(m);
        if (!ok)
            return refuse_at(im, add, "herd's attention adds a (%lld, %lld) causal mask: 0 at and below the diagonal, "
                             "-inf above", (long long)T, (long long)T);
        causal = 1, done[nd++] = add, logits = OUT(add);
    }
    int sm = next_node(im, logits, "Softmax", 1);
    if (sm < 0) return refuse_at(im, causal ? add : s_node, "not read by one Softmax alone (herd's attention)");
    const onnx_attr *ax = herdi_onnx_node_attr(&im->g.nodes[sm], "axis");
    if (ax ? !ax->has_i || (ax->i != -1 && ax->i != 3) : im->g.opset && im->g.opset < 13)
        return refuse_at(im, sm, "herd's attention takes the softmax over the last axis (axis -1)");
    int mv = next_node(im, OUT(sm), "MatMul", 2);
    if (mv < 0 || !herdi_onnx_str_same(im->g.nodes[mv].in[0], OUT(sm)) || !herdi_onnx_str_same(im->g.nodes[mv].in[1], OUT(tr[2])) ||
        next_node(im, OUT(tr[2]), "MatMul", 2) != mv)
        return refuse_at(im, sm, "the probabilities must be read by one MatMul with the values (herd's attention)");
    int bt = next_node(im, OUT(mv), "Transpose", 1), rs = bt >= 0 ? next_node(im, OUT(bt), "Reshape", 2) : -1;
    int64_t s[8];
    if (bt < 0 || !perm4_is(im, bt, p_qv))
        return refuse_at(im, mv, "not read by one Transpose with perm 0,2,1,3 (herd's attention)");
    int ns = rs >= 0 ? const_ints_named(im, im->g.nodes[rs].in[1], s, 8) : -1;
    if (ns != 3 || (s[0] != 0 && s[0] != -1) || s[1] != T || (s[2] != C && s[2] != -1) || (s[0] == -1 && s[2] == -1))
        return refuse_at(im, rs >= 0 ? rs : bt, "herd's attention reshapes its heads back to (N, %lld, %lld)",
                         (long long)T, (long long)C);
    done[nd++] = sm, done[nd++] = mv, done[nd++] = bt, done[nd++] = rs;
#undef OUT
    for (int i = 0; i < nd; i++) im->done[done[i]] = 1;
    begin_layer(im, "attention");
    herdi_onnx_arg(im, "heads", "%d", H);
    if (causal) herdi_onnx_arg(im, "causal", "1");
    onnx_str out = im->g.nodes[rs].out[0];
    return make_layer(im, &x->layer, 1, out, 3, out);
}

/* Div, Mul and Add with a constant or GELU part: x * 0.5 * (1 + erf(x / sqrt 2)) in any of the
 * orders exporters write it, the input normalisation's scale, and Mul by a per-channel constant
 * (a scale layer). */
static herd_status tr_arith(onnx_importer *im) {
    const onnx_node *n = im->n;
    herd_status st;
    if (is_shape_arith(im)) return tr_shape_arith(im);
    if (n->n_in != 2 || n->n_out < 1) return node_fail(im, HERD_EFORMAT, "needs 2 inputs and an output");
    value *a = input_value(im, 0, &st), *b = a ? input_value(im, 1, &st) : NULL;
    if (!b) return st;
    int is_div = herdi_onnx_str_eq(n->op, "Div"), is_add = herdi_onnx_str_eq(n->op, "Add");
    if (!is_div && (b->kind == V_CENTERED || a->kind == V_CONST)) {
        value *t = a;
        a = b;
        b = t;
    }
    if (!is_add && a->kind == V_CENTERED && b->kind == V_CONST) return tr_input_scale(im, a, b->tensor, is_div);
    if (a->kind == V_CENTERED || b->kind == V_CENTERED)
        return herdi_onnx_refuse(im, "the centred input must be scaled by a constant");
    if ((a->kind == V_SUM && (st = materialize(im, a))) || (b->kind == V_SUM && (st = materialize(im, b)))) return st;
    if (is_add && a->kind == V_LAYER && b->kind == V_CONST && im->g.tensors[b->tensor].numel > 1)
        return tr_posemb(im, a, b);
    if (!is_add && !is_div && a->kind == V_LAYER && b->kind == V_CONST && im->g.tensors[b->tensor].numel > 1)
        return tr_kind(im, herdi_layer_kind_by_keyword("scale")); /* a per-channel factor (layer scale) */
    if (!is_add && !is_div && a->kind == V_LAYER && b->kind == V_LAYER && herdi_onnx_str_same(n->in[0], n->in[1])) {
        int matched = 0;
        if ((st = tr_gelu_tanh(im, a, &matched)) || matched) return st;
    }
    value v = {.kind = V_GELU};
    double c = 0;
    if (b->kind == V_CONST && (st = scalar_of(im, b->tensor, &c))) return st;
    if (is_add) {
        if (a->kind == V_GELU && b->kind == V_CONST && a->flags == G_ERF && fabs(c - 1) < 1e-6) {
            v = *a, v.flags = G_ERF1;
            return set_value(im, n->out[0], v);
        }
        return herdi_onnx_refuse(im, "adding a constant is supported as a MatMul's bias or inside GELU only");
    }
    if (is_div && a->kind == V_LAYER && b->kind == V_CONST && fabs(c - sqrt(2.0)) < 1e-5) {
        v.layer = a->layer, v.flags = G_DIV;
    } else if (!is_div && b->kind == V_CONST && fabs(c - 0.5) < 1e-7 && a->kind == V_LAYER) {
        v.layer = a->layer, v.flags = G_X | G_HALF;
    } else if (!is_div && b->kind == V_CONST && fabs(c - 0.5) < 1e-7 && a->kind == V_GELU &&
               !(a->flags & (G_HALF | G_DIV | G_ERF))) {
        v = *a, v.flags |= G_HALF;
    } else if (!is_div && (a->kind == V_LAYER || a->kind == V_SUM) && (b->kind == V_LAYER || b->kind == V_SUM)) {
        /* two layer outputs: the mul kind (a squeeze-and-excitation gate is (N,C,1,1) in ONNX) */
        if (a->rank != b->rank)
            return herdi_onnx_refuse(im, "multiplies a rank-%d and a rank-%d tensor: ONNX broadcasts along the trailing "
                                   "axes, herd's mul per channel (or the same shapes)", a->rank, b->rank);
        return tr_kind(im, herdi_layer_kind_by_keyword("mul"));
    } else if (!is_div && a->kind != V_CONST && b->kind != V_CONST) {
        if (a->kind == V_LAYER) {
            value *t = a;
            a = b;
            b = t;
        }
        if (a->kind != V_GELU || (a->flags & (G_DIV | G_ERF))) goto unsupported;
        if (b->kind == V_LAYER && b->layer == a->layer && !(a->flags & G_X) && !b->pad_h && !b->pad_w) {
            v = *a, v.flags |= G_X;
        } else if (b->kind == V_GELU && b->layer == a->layer && !(a->flags & b->flags) &&
                   !(b->flags & (G_DIV | G_ERF))) {
            v = *a, v.flags |= b->flags;
        } else {
            goto unsupported;
        }
    } else {
        goto unsupported;
    }
    if (v.flags == (G_ERF1 | G_X | G_HALF)) {
        begin_layer(im, "gelu");
        return make_layer(im, &v.layer, 1, n->out[0], onnx_rank_of(im->m, v.layer), n->out[0]);
    }
    return set_value(im, n->out[0], v);
unsupported:
    return herdi_onnx_refuse(im, "Mul and Div are only supported as parts of GELU, of a layer norm or of the input "
                           "normalisation, and Mul by one constant factor per channel");
}

/* Sigmoid or HardSigmoid whose only reader is a Mul by the same input: x * sigmoid(x) is SiLU,
 * x * hardsigmoid(x) Hardswish (PyTorch's exports of nn.SiLU and nn.Hardswish at opset 13);
 * one layer named after the Mul. Otherwise the activation alone. */
static herd_status tr_gate(onnx_importer *im) {
    const onnx_node *n = im->n;
    int hard = herdi_onnx_str_eq(n->op, "HardSigmoid");
    int c = n->n_in == 1 && n->n_out >= 1 ? sole_consumer(im, n->out[0], im->node_index) : -1;
    value *x = n->n_in == 1 ? find_value(im, n->in[0]) : NULL;
    const onnx_node *mul = c >= 0 ? &im->g.nodes[c] : NULL;
    float alpha = herdi_onnx_attr_float(im, "alpha", 0.2f), beta = herdi_onnx_attr_float(im, "beta", 0.5f);
    if (!mul || !herdi_onnx_str_eq(mul->op, "Mul") || mul->n_in != 2 || mul->n_out < 1 || !x || x->kind != V_LAYER ||
        x->pad_h || x->pad_w || (hard && (fabsf(alpha - 1.0f / 6.0f) > 1e-6f || beta != 0.5f)))
        return tr_kind(im, herdi_layer_kind_by_onnx_op(im->op));
    onnx_str other = herdi_onnx_str_same(mul->in[0], n->out[0]) ? mul->in[1] : mul->in[0];
    if (!herdi_onnx_str_same(other, n->in[0])) return tr_kind(im, herdi_layer_kind_by_onnx_op(im->op));
    im->done[c] = 1;
    begin_layer(im, hard ? "hardswish" : "silu");
    return make_layer(im, &x->layer, 1, mul->out[0], x->rank, mul->out[0]);
}

static herd_status tr_erf(onnx_importer *im) {
    value *a = im->n->n_in == 1 ? find_value(im, im->n->in[0]) : NULL;
    if (!a || a->kind != V_GELU || a->flags != G_DIV || im->n->n_out < 1)
        return herdi_onnx_refuse(im, "only supported as part of GELU");
    value v = *a;
    v.flags = G_ERF;
    return set_value(im, im->n->out[0], v);
}

/* Add: of two layers, the add kind (a chain joined); with a constant or a GELU part, a pattern */
static herd_status tr_add(onnx_importer *im) {
    herd_status st;
    for (int k = 0; k < im->n->n_in; k++) {
        value *v = input_value(im, k, &st);
        if (!v) return st;
        if (v->kind != V_LAYER && v->kind != V_SUM) return tr_arith(im);
    }
    return tr_kind(im, herdi_layer_kind_by_keyword("add"));
}

/* MatMul(x, W [in, out]) or MatMul(x, Transpose(W [out, in])) as a dense layer, per position when x
 * is (N,T,F) or channels-last (N,H,W,F), with the bias of an Add that is its only reader; a transposed W that an embedding
 * gathers from is that table, tied (dense tie=) */
static herd_status tr_matmul(onnx_importer *im) {
    const onnx_node *n = im->n;
    herd_status st;
    value *x = input_value(im, 0, &st), *wv = x ? input_value(im, 1, &st) : NULL;
    if (!wv) return st;
    int tw = wv->kind == V_CONST || wv->kind == V_CONST_T ? wv->tensor : -1, wt = wv->kind == V_CONST_T;
    if ((x->kind == V_SUM && (st = materialize(im, x)))) return st;
    if (x->kind != V_LAYER || tw < 0 || n->n_out < 1)
        return herdi_onnx_refuse(im, "only a layer output times a weight initializer (a dense layer)");
    if (x->pad_h || x->pad_w) return herdi_onnx_refuse(im, "reads a padded tensor");
    const onnx_tensor *W = &im->g.tensors[tw];
    if (W->ndim != 2) return herdi_onnx_refuse(im, "the weight must be 2-D [in, out]");
    int xnd = value_ndim(im, x), vector = herdi_layer_is_vector(xnd, value_dims(im, x));
    int positions = xnd == 2 || (xnd == 3 && !vector && x->rank == 4); /* (N,T,F) or channels-last (N,H,W,F) */
    if (!positions && !vector) return herdi_onnx_refuse(im, "reads an NCHW tensor; flatten it first");
    int64_t units = W->dims[wt ? 0 : 1];
    begin_layer(im, "dense");
    const char *tie = NULL;
    for (int l = 0; wt && l < im->n_links && !tie; l++)
        if (im->links[l].tensor == tw && im->m->nodes[im->links[l].node].kind == herdi_layer_kind_by_keyword("embedding") && im->links[l].slot == 0)
            tie = im->m->nodes[im->links[l].node].name;
    if (!tie) pend_weight(im, 0, tw, !wt, 1.0f, 0);
    onnx_str out = n->out[0], name_from = n->out[0];
    int c = sole_consumer(im, n->out[0], im->node_index), tb = -1;
    if (c >= 0 && herdi_onnx_str_eq(im->g.nodes[c].op, "Add") && im->g.nodes[c].n_in == 2 && im->g.nodes[c].n_out >= 1) {
        const onnx_node *add = &im->g.nodes[c];
        onnx_str other = herdi_onnx_str_same(add->in[0], n->out[0]) ? add->in[1] : add->in[0];
        value *b = find_value(im, other);
        if (b && b->kind == V_CONST && im->g.tensors[b->tensor].numel == units && im->g.tensors[b->tensor].ndim <= 2)
            tb = b->tensor, out = name_from = add->out[0], im->done[c] = 1;
    }
    herdi_onnx_arg(im, "units", "%lld", (long long)units);
    if (tb < 0) herdi_onnx_arg(im, "bias", "0");
    else pend_weight(im, 1, tb, 0, 1.0f, 0);
    if (tie) herdi_onnx_arg(im, "tie", "%s", tie);
    if (xnd == 3) herdi_onnx_arg(im, "positions", "1");
    return make_layer(im, &x->layer, 1, out, positions ? xnd + 1 : 2, name_from);
}

/* ---- shapes: Shape, Gather, Unsqueeze, Concat of integers, folded for the model's input size
 * with a symbolic batch, so that x.view(x.size(0), -1) becomes a flatten ---- */

static herd_status shape_value_of(onnx_importer *im, int k, value *out) {
    herd_status st;
    value *v = input_value(im, k, &st);
    if (!v) return st;
    if (v->kind == V_SHAPE) {
        *out = *v;
        return HERD_OK;
    }
    if (v->kind != V_CONST) return herdi_onnx_refuse(im, "input %d is not a constant or a shape", k);
    const onnx_tensor *t = &im->g.tensors[v->tensor];
    if (t->numel > ONNX_MAX_DIMS || t->ndim > 1 || (t->dtype != ONNX_T_INT64 && t->dtype != ONNX_T_INT32))
        return herdi_onnx_refuse(im, "input %d is not a short list of integers", k);
    double d[ONNX_MAX_DIMS];
    if ((st = herdi_onnx_tensor_values(&im->g, t, NULL, d, im->err))) return st;
    *out = (value){.kind = V_SHAPE, .n_shape = (int)t->numel, .scalar = t->ndim == 0};
    for (int i = 0; i < out->n_shape; i++) out->shape[i] = (int64_t)d[i];
    return HERD_OK;
}

static herd_status tr_shape(onnx_importer *im) {
    const onnx_node *n = im->n;
    herd_status st;
    if (n->n_out < 1) return node_fail(im, HERD_EFORMAT, "has no output");
    if (herdi_onnx_str_eq(n->op, "Shape")) {
        value *x = input_value(im, 0, &st);
        if (!x) return st;
        if (x->kind == V_SUM && (st = materialize(im, x))) return st;
        if (x->kind != V_LAYER) return herdi_onnx_refuse(im, "the shape of something that is not a layer output");
        if (herdi_onnx_node_attr(n, "start") || herdi_onnx_node_attr(n, "end")) return herdi_onnx_refuse(im, "start or end attributes");
        value v = {.kind = V_SHAPE, .n_shape = x->rank};
        const int64_t *d = value_dims(im, x);
        int nd = value_ndim(im, x);
        v.shape[0] = SHAPE_BATCH;
        for (int i = 1; i < x->rank; i++) v.shape[i] = i - 1 < nd ? d[i - 1] : 1;
        if (x->rank == 4 && nd == 1) v.shape[1] = d[0], v.shape[2] = v.shape[3] = 1;
        return set_value(im, n->out[0], v);
    }
    if (herdi_onnx_str_eq(n->op, "Gather")) {
        value s, idx;
        if ((st = shape_value_of(im, 0, &s)) || (st = shape_value_of(im, 1, &idx))) return st;
        if (herdi_onnx_attr_int(im, "axis", 0) != 0 || s.scalar) return herdi_onnx_refuse(im, "only a gather from a 1-D shape");
        value v = {.kind = V_SHAPE, .n_shape = idx.n_shape, .scalar = idx.scalar};
        for (int i = 0; i < idx.n_shape; i++) {
            int64_t j = idx.shape[i] < 0 ? idx.shape[i] + s.n_shape : idx.shape[i];
            if (j < 0 || j >= s.n_shape) return herdi_onnx_refuse(im, "index %lld out of range", (long long)idx.shape[i]);
            v.shape[i] = s.shape[j];
        }
        return set_value(im, n->out[0], v);
    }
    if (herdi_onnx_str_eq(n->op, "Unsqueeze")) {
        value s, axes = {.n_shape = 0};
        if ((st = shape_value_of(im, 0, &s))) return st;
        int na = herdi_onnx_attr_ints(im, "axes", axes.shape, ONNX_MAX_DIMS);
        if (na >= 0) axes.n_shape = na;
        else if ((st = shape_value_of(im, 1, &axes))) return st;
        if (!s.scalar || axes.n_shape != 1 || axes.shape[0] != 0) return herdi_onnx_refuse(im, "only a scalar made 1-D");
        s.scalar = 0;
        return set_value(im, n->out[0], s);
    }
    /* Concat of integer lists */
    if (herdi_onnx_attr_int(im, "axis", 0) != 0) return herdi_onnx_refuse(im, "shapes are joined along axis 0");
    value v = {.kind = V_SHAPE};
    for (int k = 0; k < n->n_in; k++) {
        value s;
        if ((st = shape_value_of(im, k, &s))) return st;
        if (s.scalar || v.n_shape + s.n_shape > ONNX_MAX_DIMS) return herdi_onnx_refuse(im, "not a concat of 1-D shapes");
        memcpy(v.shape + v.n_shape, s.shape, (size_t)s.n_shape * sizeof s.shape[0]);
        v.n_shape += s.n_shape;
    }
    return set_value(im, n->out[0], v);
}

/* Add, Sub, Mul, Div of shape integers (ShuffleNet's chunk computes its bounds from the channel
 * count): elementwise with a broadcast single value; the symbolic batch cannot take part. */
static herd_status tr_shape_arith(onnx_importer *im) {
    const onnx_node *n = im->n;
    herd_status st;
    value a, b;
    if ((st = shape_value_of(im, 0, &a)) || (st = shape_value_of(im, 1, &b))) return st;
    if (a.n_shape != b.n_shape && a.n_shape != 1 && b.n_shape != 1)
        return herdi_onnx_refuse(im, "shapes of %d and %d integers do not broadcast", a.n_shape, b.n_shape);
    if (n->n_out < 1) return node_fail(im, HERD_EFORMAT, "has no output");
    value v = {.kind = V_SHAPE, .n_shape = a.n_shape > b.n_shape ? a.n_shape : b.n_shape, .scalar = a.scalar && b.scalar};
    for (int i = 0; i < v.n_shape; i++) {
        int64_t x = a.shape[a.n_shape == 1 ? 0 : i], y = b.shape[b.n_shape == 1 ? 0 : i];
        if (x == SHAPE_BATCH || y == SHAPE_BATCH)
            return herdi_onnx_refuse(im, "arithmetic on the batch size, which herd keeps symbolic");
        if (herdi_onnx_str_eq(n->op, "Add")) v.shape[i] = x + y;
        else if (herdi_onnx_str_eq(n->op, "Sub")) v.shape[i] = x - y;
        else if (herdi_onnx_str_eq(n->op, "Mul")) v.shape[i] = x * y;
        else if (y == 0) return herdi_onnx_refuse(im, "division by zero");
        else v.shape[i] = x / y; /* ONNX integer Div truncates */
    }
    return set_value(im, n->out[0], v);
}

/* Cast: of shape integers to an integer type, or of a layer to float: nothing changes */
static herd_status tr_cast(onnx_importer *im) {
    herd_status st;
    value *x = input_value(im, 0, &st);
    if (!x) return st;
    int64_t to = herdi_onnx_attr_int(im, "to", 0);
    int ok = x->kind == V_SHAPE ? to == ONNX_T_INT64 || to == ONNX_T_INT32 : x->kind == V_LAYER && to == ONNX_T_FLOAT;
    if (!ok) return herdi_onnx_refuse(im, "to=%lld of %s (herd casts shape integers to integers, floats to float)",
                                (long long)to, x->kind == V_SHAPE ? "shape integers" : "a tensor");
    if (im->n->n_out < 1) return node_fail(im, HERD_EFORMAT, "has no output");
    return set_value(im, im->n->out[0], *x);
}

/* starts/ends/axes/steps of a Slice: inputs 1 to 4 (opset 10 on) or attributes (before) */
static herd_status slice_arg(onnx_importer *im, int k, const char *attr, value *out, int *present) {
    int64_t v[ONNX_MAX_DIMS];
    int na = herdi_onnx_attr_ints(im, attr, v, ONNX_MAX_DIMS);
    *present = 1;
    if (na >= 0) {
        if (na > ONNX_MAX_DIMS) return herdi_onnx_refuse(im, "%s has more than %d values", attr, ONNX_MAX_DIMS);
        *out = (value){.kind = V_SHAPE, .n_shape = na};
        memcpy(out->shape, v, (size_t)na * sizeof v[0]);
        return HERD_OK;
    }
    if (k >= im->n->n_in || im->n->in[k].n == 0) {
        *present = 0;
        return HERD_OK;
    }
    return shape_value_of(im, k, out);
}

/* Slice: of shape integers, integers; of a layer, one range of channels (features of a vector):
 * the slice kind (the whole range: an identity) */
static herd_status tr_slice(onnx_importer *im) {
    const onnx_node *n = im->n;
    herd_status st;
    value *x = input_value(im, 0, &st);
    if (!x) return st;
    value starts, ends, axes = {.n_shape = 1}, steps;
    int has_s, has_e, has_a, has_st;
    if ((st = slice_arg(im, 1, "starts", &starts, &has_s)) || (st = slice_arg(im, 2, "ends", &ends, &has_e)) ||
        (st = slice_arg(im, 3, "axes", &axes, &has_a)) || (st = slice_arg(im, 4, "steps", &steps, &has_st)))
        return st;
    if (!has_s || !has_e || starts.n_shape != 1 || ends.n_shape != 1 || (has_a && axes.n_shape != 1))
        return herdi_onnx_refuse(im, "one axis at a time (starts, ends and axes of one value)");
    if (has_st && (steps.n_shape != 1 || steps.shape[0] != 1)) return herdi_onnx_refuse(im, "steps other than 1");
    if (n->n_out < 1) return node_fail(im, HERD_EFORMAT, "has no output");
    int64_t axis = has_a ? axes.shape[0] : 0, a = starts.shape[0], e = ends.shape[0];
    if (x->kind == V_SHAPE) {
        int64_t len = x->n_shape;
        if (axis != 0 && axis != -1) return herdi_onnx_refuse(im, "axis %lld of a 1-D shape", (long long)axis);
        a = a < 0 ? a + len : a, e = e < 0 ? e + len : e;
        a = a < 0 ? 0 : a > len ? len : a, e = e < a ? a : e > len ? len : e;
        value v = {.kind = V_SHAPE, .n_shape = (int)(e - a)};
        memcpy(v.shape, x->shape + a, (size_t)(e - a) * sizeof v.shape[0]);
        return set_value(im, n->out[0], v);
    }
    if (x->kind == V_SUM && (st = materialize(im, x))) return st;
    if (x->kind != V_LAYER || x->pad_h || x->pad_w) return herdi_onnx_refuse(im, "slices something that is not a layer output");
    if (axis < 0) axis += x->rank;
    if (axis != 1)
        return herdi_onnx_refuse(im, "axes=%lld (herd slices the channels of (N,C,H,W) or the features of (N,F): axis 1)",
                           has_a ? (long long)axes.shape[0] : 0LL);
    int64_t C = value_dims(im, x)[0];
    if (a == SHAPE_BATCH || e == SHAPE_BATCH) return herdi_onnx_refuse(im, "bounds from the batch size");
    a = a < 0 ? a + C : a, e = e < 0 ? e + C : e;
    a = a < 0 ? 0 : a > C ? C : a, e = e < a ? a : e > C ? C : e;
    if (a == e) return herdi_onnx_refuse(im, "an empty slice [%lld, %lld)", (long long)a, (long long)e);
    if (a == 0 && e == C) return set_value(im, n->out[0], *x);
    begin_layer(im, "slice");
    herdi_onnx_arg(im, "start", "%lld", (long long)a);
    herdi_onnx_arg(im, "end", "%lld", (long long)e);
    return make_layer(im, &x->layer, 1, n->out[0], x->rank, n->out[0]);
}

/* Transpose: of a 2-D initializer, a MatMul's weight; of the channel shuffle's (N,G,C/G,H,W), its
 * (N,C/G,G,H,W); of a layer's output, a permute layer */
static herd_status tr_transpose(onnx_importer *im) {
    herd_status st;
    value *x = input_value(im, 0, &st);
    if (!x) return st;
    int64_t p[8];
    int np = herdi_onnx_attr_ints(im, "perm", p, 8);
    static const int64_t shuffle[5] = {0, 2, 1, 3, 4};
    if (x->kind == V_CONST && im->g.tensors[x->tensor].ndim == 2 && (np < 0 || (np == 2 && p[0] == 1 && p[1] == 0))) {
        if (im->n->n_out < 1) return node_fail(im, HERD_EFORMAT, "has no output");
        value v = *x;
        v.kind = V_CONST_T; /* a MatMul's weight [out, in] */
        return set_value(im, im->n->out[0], v);
    }
    if (x->kind == V_LAYER || x->kind == V_SUM) return tr_kind(im, herdi_layer_kind_by_keyword("permute"));
    if (x->kind != V_SPLIT || np != 5 || memcmp(p, shuffle, sizeof shuffle))
        return herdi_onnx_refuse(im, "only a layer output's transpose (the batch first), a channel shuffle's (perm "
                               "0,2,1,3,4 of a reshape into groups), a 2-D weight's (a MatMul's) and those of herd's "
                               "attention");
    if (im->n->n_out < 1) return node_fail(im, HERD_EFORMAT, "has no output");
    value v = *x;
    v.kind = V_SPLIT_T;
    return set_value(im, im->n->out[0], v);
}

/* A layer norm over the last axis as exporters write it below opset 17 (PyTorch's layer_norm at
 * opset 13-16): m = ReduceMean(x), d = Sub(x, m), ReduceMean(Pow(d, 2)), Add eps, Sqrt, Div(d, .),
 * Mul by the weight, Add the bias, from this ReduceMean on; one layernorm layer (*matched 0:
 * not this pattern) */
static herd_status tr_layernorm_parts(onnx_importer *im, value *x, int *matched) {
    const onnx_node *n = im->n;
    int sub = next_node(im, n->out[0], "Sub", 2);
    if (sub < 0 || !herdi_onnx_str_same(im->g.nodes[sub].in[0], n->in[0]) ||
        !herdi_onnx_str_same(im->g.nodes[sub].in[1], n->out[0]))
        return HERD_OK;
    onnx_str d = im->g.nodes[sub].out[0];
    int pw = -1, div = -1, readers = 0;
    for (int i = sub + 1; i < im->g.n_nodes; i++)
        for (int k = 0; k < im->g.nodes[i].n_in; k++)
            if (herdi_onnx_str_same(im->g.nodes[i].in[k], d)) {
                readers++;
                if (herdi_onnx_str_eq(im->g.nodes[i].op, "Pow") && k == 0) pw = i;
                else if (herdi_onnx_str_eq(im->g.nodes[i].op, "Div") && k == 0) div = i;
            }
    double two, eps;
    if (readers != 2 || pw < 0 || div < 0 || im->g.nodes[pw].n_in != 2 || im->g.nodes[pw].n_out < 1 ||
        !const_scalar_named(im, im->g.nodes[pw].in[1], &two) || two != 2 || is_graph_output(im, d))
        return HERD_OK;
    int var = next_node(im, im->g.nodes[pw].out[0], "ReduceMean", 1);
    const onnx_attr *va = var >= 0 ? herdi_onnx_node_attr(&im->g.nodes[var], "axes") : NULL;
    const onnx_attr *kd = var >= 0 ? herdi_onnx_node_attr(&im->g.nodes[var], "keepdims") : NULL;
    if (!va || !va->has_ints || va->n_ints != 1 || !(va->ints[0] == -1 || va->ints[0] == x->rank - 1) ||
        (kd && (!kd->has_i || kd->i != 1)))
        return HERD_OK;
    int add = next_node(im, im->g.nodes[var].out[0], "Add", 2);
    if (add < 0 || !const_scalar_named(im, other_input(&im->g.nodes[add], im->g.nodes[var].out[0]), &eps) || !(eps > 0))
        return HERD_OK;
    int sq = next_node(im, im->g.nodes[add].out[0], "Sqrt", 1);
    if (sq < 0 || next_node(im, im->g.nodes[sq].out[0], "Div", 2) != div || !herdi_onnx_str_same(im->g.nodes[div].in[1], im->g.nodes[sq].out[0]))
        return HERD_OK;
    int mul = next_node(im, im->g.nodes[div].out[0], "Mul", 2);
    int bias = mul >= 0 ? next_node(im, im->g.nodes[mul].out[0], "Add", 2) : -1;
    value *w = mul >= 0 ? find_value(im, other_input(&im->g.nodes[mul], im->g.nodes[div].out[0])) : NULL;
    value *b = bias >= 0 ? find_value(im, other_input(&im->g.nodes[bias], im->g.nodes[mul].out[0])) : NULL;
    int64_t C = value_dims(im, x)[value_ndim(im, x) - 1];
    const onnx_tensor *W = w && w->kind == V_CONST ? &im->g.tensors[w->tensor] : NULL,
                      *Bt = b && b->kind == V_CONST ? &im->g.tensors[b->tensor] : NULL;
    if (!W || !Bt || W->numel != C || Bt->numel != C || W->dims[W->ndim - 1] != C || Bt->dims[Bt->ndim - 1] != C)
        return refuse_at(im, div, "a layer norm over the last axis must be followed by a Mul by its weight and an Add "
                                  "of its bias, %lld values each", (long long)C);
    *matched = 1;
    int parts[] = {sub, pw, var, add, sq, div, mul, bias};
    for (size_t i = 0; i < sizeof parts / sizeof parts[0]; i++) im->done[parts[i]] = 1;
    begin_layer(im, "layernorm");
    char e[32];
    herdi_onnx_arg(im, "eps", "%s", herdi_layer_float_str((float)eps, e, sizeof e));
    pend_weight(im, 0, w->tensor, 0, 1.0f, 0);
    pend_weight(im, 1, b->tensor, 0, 1.0f, 0);
    onnx_str out = im->g.nodes[bias].out[0];
    return make_layer(im, &x->layer, 1, out, x->rank, out);
}

/* Pow and Sqrt: only inside a layer norm's formula (taken there) */
static herd_status tr_norm_part(onnx_importer *im) {
    return herdi_onnx_refuse(im, "only supported inside a layer norm over the last axis (ReduceMean, Sub, Pow 2, "
                                 "ReduceMean, Add eps, Sqrt, Div, Mul weight, Add bias)");
}

/* ReduceMean over H and W: the gap kind ((N,C,1,1) kept with keepdims=1); over the last axis, the
 * start of a layer norm's formula */
static herd_status tr_reducemean(onnx_importer *im) {
    herd_status st;
    value *x = input_value(im, 0, &st);
    if (!x) return st;
    if (x->kind == V_SUM && (st = materialize(im, x))) return st;
    value axes = {.n_shape = 0};
    int64_t a[ONNX_MAX_DIMS];
    int na = herdi_onnx_attr_ints(im, "axes", a, ONNX_MAX_DIMS);
    if (na >= 0 && na <= ONNX_MAX_DIMS) axes.n_shape = na, memcpy(axes.shape, a, (size_t)na * sizeof a[0]);
    else if (im->n->n_in > 1 && im->n->in[1].n && (st = shape_value_of(im, 1, &axes))) return st;
    if (x->kind == V_LAYER && axes.n_shape == 1 && (axes.shape[0] == -1 || axes.shape[0] == x->rank - 1) &&
        !x->pad_h && !x->pad_w && herdi_onnx_attr_int(im, "keepdims", 1) == 1) {
        int matched = 0;
        if ((st = tr_layernorm_parts(im, x, &matched)) || matched) return st;
    }
    int hw = 0;
    for (int i = 0; i < axes.n_shape; i++) hw |= axes.shape[i] == 2 || axes.shape[i] == -2 ? 1 : axes.shape[i] == 3 || axes.shape[i] == -1 ? 2 : 4;
    if (x->kind != V_LAYER || x->rank != 4 || value_ndim(im, x) != 3 || axes.n_shape != 2 || hw != 3)
        return herdi_onnx_refuse(im, "only the mean over H and W of (N,C,H,W) (axes 2, 3): a global average pool, and "
                               "a layer norm's mean over the last axis");
    if (im->n->n_out < 1) return node_fail(im, HERD_EFORMAT, "has no output");
    int keep = herdi_onnx_attr_int(im, "keepdims", 1) != 0;
    begin_layer(im, "gap");
    return make_layer(im, &x->layer, 1, im->n->out[0], keep ? 4 : 2, im->n->out[0]);
}

/* Concat: of layers the concat kind (of one layer, an identity: DenseNet's first layers); of
 * integers a shape */
static herd_status tr_concat(onnx_importer *im) {
    if (im->n->n_in == 1) return tr_identity(im);
    for (int k = 0; k < im->n->n_in; k++) {
        value *v = im->n->in[k].n ? find_value(im, im->n->in[k]) : NULL;
        if (v && (v->kind == V_SHAPE || v->kind == V_CONST)) return tr_shape(im);
    }
    return tr_kind(im, herdi_layer_kind_by_keyword("concat"));
}

/* Whether shape s (a Reshape's target) is the batch followed by dims[0..n), one entry possibly -1 */
static int shape_is(const value *s, const int64_t *dims, int n) {
    if (s->n_shape != n + 1 || !(s->shape[0] == 0 || s->shape[0] == SHAPE_BATCH || s->shape[0] == -1 || s->shape[0] >= 1))
        return 0;
    int wild = s->shape[0] == -1;
    for (int i = 0; i < n; i++) {
        int64_t v = s->shape[i + 1];
        if (v == -1) wild++;
        else if (v != dims[i] && !(v == 0 && s->shape[0] != -1)) return 0; /* 0: copied from the input */
    }
    return wild <= 1;
}

/* Reshapes of images: (N,C,H,W) -> (N,G,C/G,H,W) and, after the transpose, back to (N,C,H,W):
 * ShuffleNet's channel shuffle, one shuffle layer; (N,C,H,W) to itself: an identity. */
static herd_status tr_reshape_image(onnx_importer *im, value *x, const value *s) {
    const int64_t *d = value_dims(im, x);
    int64_t C = d[0], H = d[1], W = d[2];
    if (im->n->n_out < 1) return node_fail(im, HERD_EFORMAT, "has no output");
    int64_t same[3] = {C, H, W};
    if (x->kind == V_SPLIT_T) {
        if (!shape_is(s, same, 3)) return herdi_onnx_refuse(im, "a shuffle must reshape back to (N, %lld, %lld, %lld)",
                                                     (long long)C, (long long)H, (long long)W);
        begin_layer(im, "shuffle");
        herdi_onnx_arg(im, "groups", "%d", x->flags);
        return make_layer(im, &x->layer, 1, im->n->out[0], 4, im->n->out[0]);
    }
    if (x->kind == V_LAYER && shape_is(s, same, 3)) return set_value(im, im->n->out[0], *x);
    if (x->kind == V_LAYER && s->n_shape == 5 && x->rank == 4) {
        int64_t g = s->shape[1] > 0 ? s->shape[1] : s->shape[2] > 0 && C % s->shape[2] == 0 ? C / s->shape[2] : 0;
        int64_t split[4] = {g, g ? C / g : 0, H, W};
        if (g >= 1 && g <= 65536 && C % g == 0 && shape_is(s, split, 4)) {
            value v = *x;
            v.kind = V_SPLIT, v.flags = (int)g;
            return set_value(im, im->n->out[0], v);
        }
    }
    char a[96];
    return herdi_onnx_refuse(im, "reshapes (N, %lld, %lld, %lld) to %s; herd reshapes images only in a channel shuffle "
                       "(N, G, C/G, H, W) or to (N, features)", (long long)C, (long long)H, (long long)W,
                       herdi_onnx_dims_str(s->n_shape, s->shape, a, sizeof a));
}

/* Reshape to (N, features) (the batch as 0, -1, a number or the symbolic batch of a shape
 * subgraph; features as -1 or the count): a flatten; of a vector, an identity; to (N, T, F): the
 * reshape kind. */
static herd_status tr_reshape(onnx_importer *im) {
    herd_status st;
    value *x = input_value(im, 0, &st);
    if (!x) return st;
    if (x->kind == V_SUM && (st = materialize(im, x))) return st;
    value s;
    if ((st = shape_value_of(im, 1, &s))) return st;
    if (x->kind == V_SPLIT || x->kind == V_SPLIT_T || (x->kind == V_LAYER && value_ndim(im, x) == 3 && s.n_shape >= 4))
        return tr_reshape_image(im, x, &s);
    if (x->kind != V_LAYER) return herdi_onnx_refuse(im, "reshapes a tensor that is not a layer output");
    int64_t feat = x->layer >= 0 ? im->m->nodes[x->layer].numel : im->m->inputs[-1 - x->layer].numel;
    if (s.n_shape == 3 && (s.shape[0] == 0 || s.shape[0] == -1 || s.shape[0] == SHAPE_BATCH) && s.shape[1] >= 1 &&
        s.shape[2] >= 1 && s.shape[1] <= feat && s.shape[2] <= feat && s.shape[1] * s.shape[2] == feat && !x->pad_h && !x->pad_w && im->n->n_out >= 1) {
        begin_layer(im, "reshape"); /* to (N,T,F) positions */
        herdi_onnx_arg(im, "shape", "%lldx%lld", (long long)s.shape[1], (long long)s.shape[2]);
        return make_layer(im, &x->layer, 1, im->n->out[0], 3, im->n->out[0]);
    }
    if (s.n_shape == 4 && value_ndim(im, x) == 1 && (s.shape[0] == 0 || s.shape[0] == SHAPE_BATCH) &&
        (s.shape[1] == feat || s.shape[1] == -1) && s.shape[2] == 1 && s.shape[3] == 1 && im->n->n_out >= 1) {
        value v = *x; /* a vector to (N,F,1,1): the same to herd */
        v.rank = 4;
        return set_value(im, im->n->out[0], v);
    }
    int64_t b = s.n_shape == 2 ? s.shape[0] : 0, f = s.n_shape == 2 ? s.shape[1] : 0;
    if (s.n_shape != 2 || !(b == 0 || b == -1 || b >= 1 || b == SHAPE_BATCH) || !(f == -1 || f == feat) ||
        (b == -1 && f == -1))
        return herdi_onnx_refuse(im, "only reshapes to (N, %lld) are supported", (long long)feat);
    if (x->pad_h || x->pad_w) return herdi_onnx_refuse(im, "reads a padded tensor");
    if (im->n->n_out < 1) return node_fail(im, HERD_EFORMAT, "has no output");
    if (value_ndim(im, x) == 1) {
        value v = *x;
        v.rank = 2;
        return set_value(im, im->n->out[0], v);
    }
    begin_layer(im, "flatten");
    return make_layer(im, &x->layer, 1, im->n->out[0], 2, im->n->out[0]);
}

/* Flatten: the flatten kind, except herd's own export of a dense layer reading a C x 1 x 1 map
 * (a Flatten named <dense>_flat before the Gemm <dense>), which is that dense layer's input */
static herd_status tr_flatten(onnx_importer *im) {
    const onnx_node *n = im->n;
    value *x = n->n_in >= 1 ? find_value(im, n->in[0]) : NULL;
    int c = n->n_out >= 1 ? sole_consumer(im, n->out[0], im->node_index) : -1;
    if (x && x->kind == V_LAYER && value_ndim(im, x) == 3 && herdi_layer_is_vector(3, value_dims(im, x)) && c >= 0 &&
        herdi_onnx_str_eq(im->g.nodes[c].op, "Gemm") && n->name.n == im->g.nodes[c].name.n + 5 &&
        !memcmp(n->name.p, im->g.nodes[c].name.p, im->g.nodes[c].name.n) &&
        !memcmp(n->name.p + im->g.nodes[c].name.n, "_flat", 5)) {
        value v = *x;
        v.rank = 2;
        return set_value(im, n->out[0], v);
    }
    return tr_kind(im, herdi_layer_kind_by_keyword("flatten"));
}

/* Gather: rows of a table by an ids input, the embedding kind; of shape integers, a shape */
static herd_status tr_gather(onnx_importer *im) {
    value *ids = im->n->n_in == 2 ? find_value(im, im->n->in[1]) : NULL;
    if (ids && ids->kind == V_LAYER) return tr_kind(im, herdi_layer_kind_by_onnx_op("Gather"));
    return tr_shape(im);
}

/* Softmax: the graph's last node is dropped (herd's cross-entropy applies it to the logits) */
static herd_status tr_softmax(onnx_importer *im) {
    value *x = im->n->n_in >= 1 ? find_value(im, im->n->in[0]) : NULL;
    if (x && x->kind == V_LAYER && x->layer >= 0 && im->n->n_out >= 1 && is_graph_output(im, im->n->out[0]))
        return set_value(im, im->n->out[0], *x);
    return tr_kind(im, herdi_layer_kind_by_keyword("softmax"));
}

typedef herd_status (*op_fn)(onnx_importer *im);
static const struct {
    const char *op;
    op_fn fn;
} patterns[] = {
    {"Identity", tr_identity}, {"Dropout", tr_identity}, {"Constant", tr_constant}, {"Pad", tr_pad},
    {"Sub", tr_sub},           {"Div", tr_arith},        {"Mul", tr_arith},         {"Erf", tr_erf},
    {"Add", tr_add},           {"MatMul", tr_matmul},    {"Reshape", tr_reshape},   {"Shape", tr_shape},
    {"Gather", tr_gather},      {"Unsqueeze", tr_shape},  {"Concat", tr_concat},     {"Flatten", tr_flatten},
    {"Softmax", tr_softmax},   {"Sigmoid", tr_gate},     {"HardSigmoid", tr_gate},  {"Cast", tr_cast},
    {"Slice", tr_slice},       {"Transpose", tr_transpose}, {"ReduceMean", tr_reducemean}, {"Split", tr_split},
    {"Pow", tr_norm_part},     {"Sqrt", tr_norm_part},
};

static op_fn pattern_of(onnx_str op) {
    for (size_t k = 0; k < sizeof patterns / sizeof patterns[0]; k++)
        if (herdi_onnx_str_eq(op, patterns[k].op)) return patterns[k].fn;
    return NULL;
}

static const layer_kind *kind_of(const onnx_node *n) {
    char op[64];
    if (n->op.n >= sizeof op) return NULL;
    memcpy(op, n->op.p, n->op.n);
    op[n->op.n] = 0;
    return herdi_layer_kind_by_onnx_op(op);
}

/* Every operator herd cannot translate, each once with the nodes using it, in one line. */
static herd_status check_ops(onnx_importer *im) {
    char list[700] = "";
    size_t len = 0;
    int n_bad = 0;
    for (int i = 0; i < im->g.n_nodes; i++) {
        const onnx_node *n = &im->g.nodes[i];
        int std = n->domain.n == 0 || herdi_onnx_str_eq(n->domain, "ai.onnx");
        if (std && (pattern_of(n->op) || kind_of(n))) continue;
        int seen = 0;
        for (int j = 0; j < i && !seen; j++)
            seen = herdi_onnx_str_same(im->g.nodes[j].op, n->op) && herdi_onnx_str_same(im->g.nodes[j].domain, n->domain);
        if (seen) continue;
        int uses = 0;
        for (int j = i; j < im->g.n_nodes; j++)
            uses += herdi_onnx_str_same(im->g.nodes[j].op, n->op) && herdi_onnx_str_same(im->g.nodes[j].domain, n->domain);
        if (len < sizeof list - 1)
            len += (size_t)snprintf(list + len, sizeof list - len, "%s%s%s%s (node%s", n_bad ? ", " : "",
                                    std ? "" : ONNX_SHOW(n->domain), std ? "" : ".", ONNX_SHOW(n->op), uses > 1 ? "s" : "");
        for (int j = i, shown = 0; j < im->g.n_nodes && shown < 3; j++) {
            const onnx_node *u = &im->g.nodes[j];
            if (!herdi_onnx_str_same(u->op, n->op) || !herdi_onnx_str_same(u->domain, n->domain)) continue;
            onnx_str who = u->name.n ? u->name : u->n_out ? u->out[0] : (onnx_str){"?", 1};
            if (len < sizeof list - 1)
                len += (size_t)snprintf(list + len, sizeof list - len, "%s '%s'", shown ? "," : "", ONNX_SHOW(who));
            shown++;
        }
        if (len < sizeof list - 1)
            len += (size_t)(uses > 3 ? snprintf(list + len, sizeof list - len, " and %d more)", uses - 3)
                                     : snprintf(list + len, sizeof list - len, ")"));
        n_bad++;
    }
    if (n_bad) return fail(im, HERD_EUNSUPPORTED, "unsupported operator%s: %s", n_bad > 1 ? "s" : "", list);
    return HERD_OK;
}

static herd_status add_graph_input(onnx_importer *im) {
    const onnx_io *in = NULL;
    for (int i = 0; i < im->g.n_inputs; i++) {
        int is_init = 0;
        for (int t = 0; t < im->g.n_initializers && !is_init; t++)
            is_init = herdi_onnx_str_same(im->g.tensors[t].name, im->g.inputs[i].name);
        if (is_init) continue;
        if (in) return fail(im, HERD_EUNSUPPORTED, "the graph has several inputs; herd imports models with one");
        in = &im->g.inputs[i];
    }
    if (!in) return fail(im, HERD_EFORMAT, "the graph has no input");
    const int64_t *d = in->dims + 1;
    if (in->elem_type == ONNX_T_INT32 || in->elem_type == ONNX_T_INT64) { /* token ids: int32 in herd */
        if (in->ndim != 2 || d[0] <= 0 || d[0] > (1 << 26))
            return fail(im, HERD_EUNSUPPORTED, "ids input '%s' must be [N, T] with a fixed T", ONNX_SHOW(in->name));
        herd_status st = herd_model_add_input(im->m, NULL, HERD_I32, 1, d, im->err);
        return st ? st : set_value(im, in->name, (value){.kind = V_LAYER, .layer = -1, .rank = 2});
    }
    if (in->elem_type != ONNX_T_FLOAT)
        return fail(im, HERD_EUNSUPPORTED, "input '%s' has element type %d (herd takes float32, or int32 / int64 ids)",
                    ONNX_SHOW(in->name), in->elem_type);
    int64_t dims[3];
    int nd;
    if (in->ndim == 4 && d[0] > 0 && d[1] > 0 && d[2] > 0 && d[0] <= (1 << 20) && d[1] <= (1 << 20) &&
        d[2] <= (1 << 20) && d[0] * d[1] * d[2] <= (1 << 26)) {
        dims[0] = d[0], dims[1] = d[1], dims[2] = d[2], nd = 3;
    } else if (in->ndim == 2 && d[0] > 0 && d[0] <= (1 << 26)) {
        dims[0] = d[0], nd = 1;
    } else {
        return fail(im, HERD_EUNSUPPORTED, "input '%s' must be [N, C, H, W] or [N, features] with fixed C, H, W",
                    ONNX_SHOW(in->name));
    }
    if (nd == 3 && dims[1] == 1 && dims[2] == 1)
        return fail(im, HERD_EUNSUPPORTED, "input '%s' is [N, C, 1, 1]; herd reads it as [N, C]: export it so",
                    ONNX_SHOW(in->name));
    herd_status st = herd_model_add_input(im->m, NULL, HERD_F32, nd, dims, im->err);
    return st ? st : set_value(im, in->name, (value){.kind = V_LAYER, .layer = -1, .rank = nd + 1});
}

/* A node herd cannot translate: its message kept (and reported), the walk goes on past it. */
static herd_status refused(onnx_importer *im, herd_status st) {
    if (im->report) im->report(im->report_ctx, im->err->msg);
    size_t pl = strlen(im->path);
    const char *msg = !strncmp(im->err->msg, im->path, pl) && im->err->msg[pl] == ':' ? im->err->msg + pl + 2
                                                                                       : im->err->msg;
    if (im->n_refusals < 0) im->n_refusals = 0; /* after check_ops' line: it is not a node */
    char **r = realloc(im->refusals, (size_t)(im->n_refusals + 1) * sizeof *r);
    char *copy = r ? malloc(strlen(msg) + 1) : NULL;
    if (r) im->refusals = r;
    if (!copy) return fail(im, HERD_ENOMEM, "out of memory");
    strcpy(copy, msg);
    im->refusals[im->n_refusals++] = copy;
    if (!im->first_refusal) im->first_refusal = st;
    return HERD_OK;
}

/* One line for every refused node: the node's own message when it is the only one, else
 * "FILE: N nodes cannot be imported: node 'a' (Op): why; node 'b' (Op): why; ...". */
static herd_status refusal_summary(onnx_importer *im) {
    if (im->n_refusals < 0) return im->first_refusal; /* check_ops' list alone */
    if (im->n_refusals == 1) return herd_fail(im->err, im->first_refusal, "%s: %s", im->path, im->refusals[0]);
    char list[900];
    size_t len = 0;
    int shown = 0;
    for (; shown < im->n_refusals; shown++) {
        size_t need = strlen(im->refusals[shown]) + 2;
        if (len + need >= sizeof list - 40 && shown > 0) break;
        len += (size_t)snprintf(list + len, sizeof list - len, "%s%s", shown ? "; " : "", im->refusals[shown]);
        if (len >= sizeof list) len = sizeof list - 1;
    }
    if (shown < im->n_refusals) snprintf(list + len, sizeof list - len, "; and %d more", im->n_refusals - shown);
    return herd_fail(im->err, im->first_refusal, "%s: %d nodes cannot be imported: %s", im->path, im->n_refusals,
                     list);
}

static herd_status translate(onnx_importer *im) {
    herd_status st;
    if (im->g.opset && (im->g.opset < 7 || im->g.opset > 21))
        return fail(im, HERD_EUNSUPPORTED, "opset %lld (herd reads opsets 7 to 21)", (long long)im->g.opset);
    if ((st = check_ops(im))) {
        if (!im->check) return st;
        if (im->report) im->report(im->report_ctx, im->err->msg);
        im->first_refusal = st;
        im->n_refusals = -1; /* counted below with the nodes */
    }
    int64_t cap = im->g.n_initializers + im->g.n_inputs + 1;
    for (int i = 0; i < im->g.n_nodes; i++) cap += 2 * (int64_t)im->g.nodes[i].n_out; /* a refused node's outputs again */
    im->values = herd_malloc_array((size_t)cap, sizeof *im->values);
    if (!im->values) return fail(im, HERD_ENOMEM, "out of memory");
    im->cap_values = (int)cap;
    for (int t = 0; t < im->g.n_initializers; t++)
        if ((st = set_value(im, im->g.tensors[t].name, (value){.kind = V_CONST, .tensor = t}))) return st;
    if ((st = add_graph_input(im))) return st;
    im->done = calloc((size_t)im->g.n_nodes + 1, 1);
    if (!im->done) return fail(im, HERD_ENOMEM, "out of memory");
    for (int i = 0; i < im->g.n_nodes; i++) {
        if (im->done[i]) continue;
        const onnx_node *n = &im->g.nodes[i];
        im->n = n, im->node_index = i;
        size_t len = n->op.n < sizeof im->op - 1 ? n->op.n : sizeof im->op - 1;
        memcpy(im->op, n->op.p, len);
        im->op[len] = 0;
        op_fn fn = pattern_of(n->op);
        const layer_kind *kind = fn ? NULL : kind_of(n);
        int blocked = !fn && !kind; /* an unsupported operator (reported by check_ops) */
        for (int k = 0; k < n->n_in && !blocked; k++) {
            value *v = n->in[k].n ? find_value(im, n->in[k]) : NULL;
            blocked = v && v->kind == V_BLOCKED;
        }
        if (blocked) {
            im->n_unchecked += fn || kind;
        } else if ((st = fn ? fn(im) : tr_kind(im, kind))) {
            if (st == HERD_ENOMEM || st == HERD_EINTERNAL) return st;
            if ((st = refused(im, st))) return st;
            blocked = 1;
        }
        for (int k = 0; k < n->n_out && blocked; k++)
            if (n->out[k].n && (st = set_value(im, n->out[k], (value){.kind = V_BLOCKED}))) return st;
    }
    if (im->n_refusals) return refusal_summary(im);
    if (im->g.n_outputs != 1)
        return fail(im, HERD_EUNSUPPORTED, "the graph has %d outputs; herd models have one", im->g.n_outputs);
    value *out = find_value(im, im->g.outputs[0].name);
    if (out && out->kind == V_SUM && (st = materialize(im, out))) return st;
    if (!out || out->kind != V_LAYER || im->m->n_nodes == 0 || out->layer != im->m->n_nodes - 1)
        return fail(im, HERD_EUNSUPPORTED, "the graph output '%s' is not the last layer's output",
                    ONNX_SHOW(im->g.outputs[0].name));
    return HERD_OK;
}

/* herd_model_init_params(m, 0) for the nodes with a parameter no initializer fills (each kind's
 * init draws one stream per tensor, so those come out as a full init would make them): random
 * initialisation of weights that are about to be overwritten took 80% of a VGG-11 import. */
static void init_unlinked(onnx_importer *im) {
    herd_model *m = im->m;
    for (int i = 0; i < m->n_nodes; i++) {
        node *n = &m->nodes[i];
        int unlinked = 0;
        for (int s = 0; s < LAYER_MAX_SLOTS; s++) {
            if (n->param[s] < 0) continue;
            int linked = 0;
            for (int l = 0; l < im->n_links && !linked; l++) linked = im->links[l].node == i && im->links[l].slot == s;
            unlinked |= !linked;
        }
        if (unlinked && n->kind->init) n->kind->init(m, n, 0);
    }
    herd_rng_init(&m->dropout_rng, 0, 1);
}

/* Copies every linked initializer into its registry slot (shapes were checked when linked). */
static herd_status load_weights(onnx_importer *im) {
    herd_model *m = im->m;
    float *tmp = NULL;
    herd_status st = HERD_OK;
    for (int i = 0; i < im->n_links && !st; i++) {
        const weight_link *l = &im->links[i];
        const onnx_tensor *t = &im->g.tensors[l->tensor];
        float *dst = herdi_model_param_data(m, m->nodes[l->node].param[l->slot]);
        const int64_t numel = im->m->params_reg[m->nodes[l->node].param[l->slot]].info.numel;
        if (!l->transpose) {
            st = herdi_onnx_tensor_values(&im->g, t, dst, NULL, im->err);
            herdi_onnx_tensor_done(&im->g, t);
            for (int64_t e = 1; !st && t->numel == 1 && e < numel; e++) dst[e] = dst[0]; /* broadcast */
            for (int64_t e = 0; !st && l->scale != 1.0f && e < numel; e++) dst[e] *= l->scale;
            continue;
        }
        free(tmp);
        tmp = herd_malloc_array((size_t)t->numel, sizeof *tmp);
        if (!tmp) return fail(im, HERD_ENOMEM, "out of memory");
        if ((st = herdi_onnx_tensor_values(&im->g, t, tmp, NULL, im->err))) break;
        int64_t in = t->dims[0], out = t->dims[1]; /* [in, out] -> herd's [out, in] */
        herdi_onnx_tensor_done(&im->g, t);
        for (int64_t a = 0; a < in; a++)
            for (int64_t o = 0; o < out; o++) dst[o * in + a] = tmp[a * out + o] * l->scale;
    }
    free(tmp);
    return st;
}

static int ends_with(onnx_str s, const char *tail) {
    size_t n = strlen(tail);
    return s.n >= n && !memcmp(s.p + s.n - n, tail, n);
}

/* PyTorch's eval-mode export folds batch norm into the convolutions (their weights become
 * unnamed constants, onnx::Conv_N, and no BatchNormalization is left) and drops Dropout:
 * herd would train that graph, not the model written in PyTorch. Says so in the model's
 * import note (herd train prints it). */
static void note_eval_export(onnx_importer *im) {
    int convs = 0, folded = 0, bn = 0, dropout = 0, dense = 0;
    for (int i = 0; i < im->g.n_nodes; i++) {
        const onnx_node *n = &im->g.nodes[i];
        if (herdi_onnx_str_eq(n->op, "Conv")) {
            convs++;
            value *w = n->n_in > 1 ? find_value(im, n->in[1]) : NULL;
            folded += w && w->kind == V_CONST && !ends_with(n->in[1], ".weight");
        }
        bn += herdi_onnx_str_eq(n->op, "BatchNormalization");
        dropout += herdi_onnx_str_eq(n->op, "Dropout");
        dense += herdi_onnx_str_eq(n->op, "Gemm") || herdi_onnx_str_eq(n->op, "MatMul");
    }
    char what[200] = "";
    if (convs && folded && !bn)
        snprintf(what, sizeof what, "batch norm folded into the convolutions (%d of %d conv weights are exporter "
                 "constants, no BatchNormalization)", folded, convs);
    if (!dropout && (dense >= 3 || (dense == 2 && folded && !bn))) /* AlexNet, VGG; MobileNetV3's head */
        snprintf(what + strlen(what), sizeof what - strlen(what), "%sno Dropout between its %d fully connected layers",
                 *what ? ", " : "", dense);
    if (*what)
        snprintf(im->m->import_note, sizeof im->m->import_note, "%s looks like an eval-mode export (%s): herd trains the "
                 "graph as written, without them; export with training=torch.onnx.TrainingMode.TRAINING to keep them",
                 im->path, what);
}

static void importer_free(onnx_importer *im) {
    herdi_onnx_graph_free(&im->g);
    free(im->values);
    free(im->done);
    free(im->links);
    free(im->sums);
    free(im->norm);
    for (int i = 0; i < im->n_refusals; i++) free(im->refusals[i]);
    free(im->refusals);
    free(im);
}

/* the importer's own error (every refusal is read from it) handed to the caller's */
static herd_status give_error(onnx_importer *im, herd_status st, herd_error *err) {
    if (st && err) *err = im->own;
    return st;
}

/* An ONNX file names no loss. A graph whose output is a feature map (C,H,W: a feature extractor
 * or a dense predictor) gets the mean squared error over its values, which takes float targets
 * of that shape, instead of the cross-entropy of a vector that refuses it; herd predict prints
 * or writes the maps. Vectors and (T,K) outputs keep the default. */
static herd_status default_loss(onnx_importer *im) {
    const herd_model *m = im->m;
    if (m->n_nodes == 0 || m->nodes[m->n_nodes - 1].ndim <= 2) return HERD_OK;
    return herd_model_set_loss(im->m, "mse", NULL, 0, im->err);
}

herd_status herd_model_import_onnx(herd_model **out, const char *path, herd_error *err) {
    onnx_importer *im = calloc(1, sizeof *im);
    if (!im) return herd_fail(err, HERD_ENOMEM, "%s: out of memory", path);
    im->path = path, im->err = &im->own;
    herd_status st = herdi_onnx_decode_file(&im->g, path, im->err);
    if (!st) st = herd_model_begin(&im->m, path, im->err);
    if (!st) st = translate(im);
    if (!st) st = default_loss(im);
    if (!st) st = herd_model_finish(im->m, im->err);
    if (!st) {
        init_unlinked(im);
        st = load_weights(im);
    }
    if (!st && im->norm) st = herd_model_set_input_norm(im->m, im->norm, im->norm + im->m->in_c, im->err);
    if (!st) note_eval_export(im);
    herd_model *m = im->m;
    st = give_error(im, st, err);
    importer_free(im);
    if (st) {
        herd_model_destroy(m);
        return st;
    }
    *out = m;
    return HERD_OK;
}

herd_status herd_onnx_check(const char *path, void (*report)(void *ctx, const char *line), void *ctx,
                            herd_onnx_check_result *res, herd_error *err) {
    onnx_importer *im = calloc(1, sizeof *im);
    if (!im) return herd_fail(err, HERD_ENOMEM, "%s: out of memory", path);
    im->path = path, im->err = &im->own, im->check = 1, im->report = report, im->report_ctx = ctx;
    herd_status st = herdi_onnx_decode_file(&im->g, path, im->err);
    if (!st) st = herd_model_begin(&im->m, path, im->err);
    if (!st) st = translate(im);
    if (!st) st = default_loss(im);
    if (!st) st = herd_model_finish(im->m, im->err); /* the output and loss checks, no weights read */
    if (res) {
        memset(res, 0, sizeof *res);
        res->nodes = im->g.n_nodes;
        res->refused = im->n_refusals > 0 ? im->n_refusals : 0;
        res->unchecked = im->n_unchecked;
        res->layers = im->m ? im->m->n_nodes : 0;
        res->params = im->m && !st ? im->m->n_params : 0;
    }
    st = give_error(im, st, err);
    herd_model_destroy(im->m);
    importer_free(im);
    return st;
}
