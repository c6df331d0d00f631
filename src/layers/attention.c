/* attention HEADS [causal=1]: multi-head self-attention over positions, as llm.c's
 * attention_forward/backward: the input is (T, 3C), each position's query, key and value side
 * by side (made by a `dense 3C` before it: the fused QKV projection), the output (T, C), the
 * heads' results side by side (a `dense C` after it is the output projection). Scaled dot
 * products, softmax over the keys a query sees (all, or with causal=1 those at or before it),
 * the probabilities kept for backward. PyTorch: the core of nn.MultiheadAttention /
 * F.scaled_dot_product_attention. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "layers/layer_common.h"

typedef struct attn_cfg {
    attn_dims d; /* d.B is set per call */
} attn_cfg;
_Static_assert(sizeof(attn_cfg) <= LAYER_CFG_BYTES, "attention config fits a node");
#define CFG(n) ((const attn_cfg *)(n)->cfg)

static herd_status attn_build(layer_build *b) {
    attn_cfg *cfg = (attn_cfg *)b->n->cfg;
    int heads = 0, causal = 0;
    herd_status st;
    if ((st = herdi_lb_int(b, "heads", "number of heads", 1, 1, 1024, &heads)) ||
        (st = herdi_lb_int(b, "causal", "causal (0 or 1)", 0, 0, 1, &causal)))
        return st;
    int nd = herdi_lb_in_ndim(b, 0);
    const int64_t *dims = herdi_lb_in_dims(b, 0);
    char s[64];
    if (nd != 2 || dims[1] % 3 != 0 || (dims[1] / 3) % heads != 0)
        return herdi_lb_fail(b, HERD_ESHAPE, NULL, "attention takes (T, 3C) queries, keys and values with C a multiple of "
                       "the %d heads, not %s (put `dense 3C` and, for a flat input, `reshape Tx3C` before it)", heads,
                       herdi_lb_shape_str(nd, dims, s, sizeof s));
    if (dims[0] > 4096) return herdi_lb_fail(b, HERD_ESHAPE, NULL, "attention over %lld positions (at most 4096)",
                                       (long long)dims[0]);
    cfg->d = (attn_dims){.B = 0, .T = (int)dims[0], .C = (int)(dims[1] / 3), .H = heads, .causal = causal};
    int64_t out[2] = {dims[0], dims[1] / 3};
    herdi_lb_set_shape(b, 2, out);
    return HERD_OK;
}

/* a backend without attention entries (cpu-bf16 has no bf16 attention) hands the layer on */
static const char *attn_unsupported(const node *n, const herd_backend *be) {
    (void)n;
    return be->attention_forward ? NULL : "no attention kernel at this precision";
}

static herd_status attn_plan(node *n, layer_plan *p) {
    attn_dims d = CFG(n)->d;
    d.B = p->B;
    size_t ws = n->be->attention_workspace(&d, p->threads);
    if (ws > p->workspace_floats) p->workspace_floats = ws;
    n->saved[0] = herd_arena_floats(p->arena, (size_t)p->B * (size_t)d.H * (size_t)d.T * (size_t)d.T);
    return n->saved[0] ? HERD_OK : HERD_ENOMEM;
}

static float *att_rows(const layer_call *c) {
    const attn_dims *d = &CFG(c->n)->d;
    return (float *)c->n->saved[0] + c->row0 * d->H * (int64_t)d->T * d->T;
}

static void attn_forward(const layer_call *c) {
    attn_dims d = CFG(c->n)->d;
    d.B = c->B;
    c->be->attention_forward(c->ex, c->out, att_rows(c), c->in[0], &d);
}

/* Causal attention can run one query at a time: the keys and values of the positions before it
 * are kept (cache: K (T,C), V (T,C), then T scores), so each new position costs O(pos * C), not
 * a pass over the whole window. Sums in double as the reference op. */
static int64_t attn_decode_cache(const node *n) {
    const attn_dims *d = &CFG(n)->d;
    return d->causal ? 2 * (int64_t)d->T * d->C + d->T : -1;
}

static void attn_decode(const layer_call *c, float *cache) {
    const attn_dims *d = &CFG(c->n)->d;
    int C = d->C, hs = C / d->H, t = (int)c->row0;
    float *K = cache, *V = cache + (int64_t)d->T * C, *a = V + (int64_t)d->T * C;
    const float *qkv = c->in[0];
    memcpy(K + (int64_t)t * C, qkv + C, (size_t)C * sizeof(float));
    memcpy(V + (int64_t)t * C, qkv + 2 * C, (size_t)C * sizeof(float));
    double scale = 1.0 / sqrt((double)hs);
    for (int h = 0; h < d->H; h++) {
        const float *q = qkv + h * hs;
        double mx = -INFINITY, sum = 0;
        for (int u = 0; u <= t; u++) {
            const float *k = K + (int64_t)u * C + h * hs;
            double s = 0;
            for (int i = 0; i < hs; i++) s += (double)q[i] * k[i];
            a[u] = (float)(s * scale);
            if (a[u] > mx) mx = a[u];
        }
        for (int u = 0; u <= t; u++) sum += exp(a[u] - mx);
        for (int u = 0; u <= t; u++) a[u] = (float)(exp(a[u] - mx) / sum);
        for (int i = 0; i < hs; i++) {
            double s = 0;
            for (int u = 0; u <= t; u++) s += (double)a[u] * V[(int64_t)u * C + h * hs + i];
            c->out[h * hs + i] = (float)s;
        }
    }
}

static void attn_backward(const layer_call *c) {
    attn_dims d = CFG(c->n)->d;
    d.B = c->B;
    c->be->attention_backward(c->ex, c->din[0], c->dout, c->in[0], att_rows(c), &d);
}

static int64_t attn_flops(const herd_model *m, const node *n) {
    (void)m;
    const attn_dims *d = &CFG(n)->d;
    return 4 * (int64_t)d->T * d->T * d->C / (d->causal ? 2 : 1); /* q k^T and a v */
}

static void attn_describe(const herd_model *m, const node *n, char *buf, size_t size) {
    (void)m;
    snprintf(buf, size, "%d heads%s", CFG(n)->d.H, CFG(n)->d.causal ? " causal" : "");
}

/* Standard operators over (N,T,3C) (opset 13): Split into q, k, v (N,T,C); each Reshape to
 * (N,T,H,hs) and Transpose to (N,H,T,hs), k to (N,H,hs,T); MatMul q k, Mul by 1/sqrt(hs), Add
 * of the causal mask (0 at and below the diagonal, -inf above: one (T,T) constant shared by the
 * layers), Softmax over the last axis, MatMul by v, Transpose back to (N,T,H,hs) and Reshape to
 * (N,T,C). src/io/onnx_import.c recognises the subgraph as one attention layer. */
static herd_status attn_onnx(onnx_exporter *x, const node *n) {
    const attn_dims *d = &CFG(n)->d;
    int64_t T = d->T, C = d->C, H = d->H, hs = d->C / d->H;
    enum { Q, K, V, Q4, K4, V4, QH, KT, VH, SCORES, SCALED, MASKED, PROBS, CTX, CTXT, N_T };
    static const char *const suffix[N_T] = {"q", "k", "v", "q4", "k4", "v4", "qh", "kt", "vh", "scores", "scaled",
                                            "masked", "probs", "ctx", "ctxt"};
    char t[N_T][HERD_NAME_MAX + 8], name[HERD_NAME_MAX + 8];
    for (int i = 0; i < N_T; i++) snprintf(t[i], sizeof t[i], "%s_%s", n->name, suffix[i]);
    int fresh;
    const char *in = herdi_onnx_in(x, n, 0), *outs[3] = {t[Q], t[K], t[V]};
    onnx_xattr axis2 = {.name = "axis", .type = 'i', .i = 2};
    snprintf(name, sizeof name, "%s_split", n->name);
    herdi_onnx_emit_outs(x, "Split", name, outs, 3, &in, 1, &axis2, 1);
    snprintf(name, sizeof name, "herd_shape_0_%lld_%lld_%lld", (long long)T, (long long)H, (long long)hs);
    const char *heads = herdi_onnx_shared(x, name, &fresh);
    int64_t split[4] = {0, T, H, hs}, join[3] = {0, T, C};
    if (fresh) herdi_onnx_ints(x, heads, split, 4);
    static const int64_t p_qv[4] = {0, 2, 1, 3}, p_k[4] = {0, 2, 3, 1};
    for (int i = Q; i <= V; i++) {
        const char *r[2] = {t[i], heads}, *tr = t[Q4 + i];
        onnx_xattr perm = {.name = "perm", .type = 'I', .ints = i == K ? p_k : p_qv, .n_ints = 4};
        herdi_onnx_emit(x, "Reshape", t[Q4 + i], t[Q4 + i], r, 2, NULL, 0);
        herdi_onnx_emit(x, "Transpose", t[QH + i], t[QH + i], &tr, 1, &perm, 1);
    }
    const char *mm[2] = {t[QH], t[KT]};
    herdi_onnx_emit(x, "MatMul", t[SCORES], t[SCORES], mm, 2, NULL, 0);
    snprintf(name, sizeof name, "herd_attn_scale_%lld", (long long)hs);
    const char *sc[2] = {t[SCORES], herdi_onnx_scalar(x, name, (float)(1.0 / sqrt((double)hs)))};
    herdi_onnx_emit(x, "Mul", t[SCALED], t[SCALED], sc, 2, NULL, 0);
    const char *logits = t[SCALED];
    if (d->causal) {
        snprintf(name, sizeof name, "herd_causal_mask_%lld", (long long)T);
        const char *mask = herdi_onnx_shared(x, name, &fresh);
        if (fresh) {
            float *m = herd_malloc_array((size_t)(T * T), sizeof *m);
            if (!m) return herdi_onnx_fail(x, "out of memory for the causal mask of '%s'", n->name);
            for (int64_t i = 0; i < T; i++)
                for (int64_t j = 0; j < T; j++) m[i * T + j] = j <= i ? 0.0f : -INFINITY;
            int64_t md[2] = {T, T};
            herdi_onnx_constant(x, mask, 2, md, m, T * T);
            free(m);
        }
        const char *ad[2] = {t[SCALED], mask};
        herdi_onnx_emit(x, "Add", t[MASKED], t[MASKED], ad, 2, NULL, 0);
        logits = t[MASKED];
    }
    onnx_xattr last = {.name = "axis", .type = 'i', .i = -1};
    herdi_onnx_emit(x, "Softmax", t[PROBS], t[PROBS], &logits, 1, &last, 1);
    const char *pv[2] = {t[PROBS], t[VH]}, *ct = t[CTX];
    herdi_onnx_emit(x, "MatMul", t[CTX], t[CTX], pv, 2, NULL, 0);
    onnx_xattr back = {.name = "perm", .type = 'I', .ints = p_qv, .n_ints = 4};
    herdi_onnx_emit(x, "Transpose", t[CTXT], t[CTXT], &ct, 1, &back, 1);
    snprintf(name, sizeof name, "herd_shape_0_%lld_%lld", (long long)T, (long long)C);
    const char *whole = herdi_onnx_shared(x, name, &fresh);
    if (fresh) herdi_onnx_ints(x, whole, join, 3);
    const char *r[2] = {t[CTXT], whole};
    herdi_onnx_emit(x, "Reshape", n->name, herdi_onnx_out(x, n), r, 2, NULL, 0);
    return HERD_OK;
}

static void attn_spec(const herd_model *m, const node *n, char *buf, size_t size) {
    (void)m;
    snprintf(buf, size, "attention %d%s", CFG(n)->d.H, CFG(n)->d.causal ? " causal=1" : "");
}

static const char *const attn_keywords[] = {"attention", NULL};
static const char *const attn_positional[] = {"heads", NULL};

const layer_kind herdi_layer_attention = {
    .name = "attention", .keywords = attn_keywords, .positional = attn_positional, .min_inputs = 1, .max_inputs = 1,
    .unsupported = attn_unsupported, .build = attn_build, .plan = attn_plan, .forward = attn_forward, .backward = attn_backward,
    .backward_reads = herdi_layer_reads_input, .flops = attn_flops, .describe = attn_describe, .onnx_export = attn_onnx,
    .spec = attn_spec, .decode = attn_decode, .decode_cache = attn_decode_cache,
};
