/* permute AXES: the sample's axes in another order, as PyTorch's x.permute(0, ...) with the batch
 * first and fixed: `permute 1,2,0` turns an image (C,H,W) channels-last (H,W,C) (ConvNeXt runs
 * its layer norms and linear layers there) and `permute 2,0,1` turns it back; `permute 1,0`
 * swaps the axes of (T,C) positions. A vector (F) counts as (F,1,1). A copy: output element
 * (i0,i1,..) is input element (i[axes^-1]). ONNX: Transpose with perm (0, 1 + AXES). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "layers/layer_common.h"

#define PERMUTE_MAX 4
typedef struct permute_cfg {
    int nd;
    int axes[PERMUTE_MAX];
    int64_t in[PERMUTE_MAX];     /* the input's dims (a vector as (F,1,1)) */
    int64_t stride[PERMUTE_MAX]; /* input stride of output axis d */
} permute_cfg;
_Static_assert(sizeof(permute_cfg) <= LAYER_CFG_BYTES, "permute config fits a node");
#define CFG(n) ((const permute_cfg *)(n)->cfg)

static herd_status permute_build(layer_build *b) {
    permute_cfg *cfg = (permute_cfg *)b->n->cfg;
    const char *s = herdi_lb_arg(b, "axes");
    if (!s) return herdi_lb_fail(b, HERD_ESPEC, NULL, "permute: expected the axes (e.g. permute 1,2,0)");
    int seen = 0;
    cfg->nd = 0;
    for (const char *p = s; *p;) {
        char *end;
        long v = strtol(p, &end, 10);
        if (end == p || cfg->nd == PERMUTE_MAX || v < 0 || v >= PERMUTE_MAX || (seen >> v & 1) || (*end && *end != ','))
            return herdi_lb_fail(b, HERD_ESPEC, "axes", "permute: bad axes '%s' (each of 0..N-1 once, like 1,2,0)", s);
        seen |= 1 << v;
        cfg->axes[cfg->nd++] = (int)v;
        p = *end ? end + 1 : end;
        if (*end && !*p) return herdi_lb_fail(b, HERD_ESPEC, "axes", "permute: bad axes '%s'", s);
    }
    if (seen != (1 << cfg->nd) - 1)
        return herdi_lb_fail(b, HERD_ESPEC, "axes", "permute: bad axes '%s' (each of 0..%d once)", s, cfg->nd - 1);
    int nd = herdi_lb_in_ndim(b, 0);
    const int64_t *d = herdi_lb_in_dims(b, 0);
    if (nd == 1 && cfg->nd == 3) {
        cfg->in[0] = d[0], cfg->in[1] = cfg->in[2] = 1;
    } else if (nd == cfg->nd) {
        memcpy(cfg->in, d, (size_t)nd * sizeof *d);
    } else {
        char sh[64];
        return herdi_lb_fail(b, HERD_ESHAPE, "axes", "permute: %d axes for a %s input", cfg->nd,
                             herdi_lb_shape_str(nd, d, sh, sizeof sh));
    }
    int64_t in_stride[PERMUTE_MAX], out[PERMUTE_MAX];
    in_stride[cfg->nd - 1] = 1;
    for (int k = cfg->nd - 2; k >= 0; k--) in_stride[k] = in_stride[k + 1] * cfg->in[k + 1];
    for (int k = 0; k < cfg->nd; k++) out[k] = cfg->in[cfg->axes[k]], cfg->stride[k] = in_stride[cfg->axes[k]];
    herdi_lb_set_shape(b, cfg->nd, out);
    return HERD_OK;
}

/* every output element in order with its input offset: dst[o] (+)= src[offset] (forward), or
 * the reverse for the gradient */
static void permute_walk(const permute_cfg *cfg, const int64_t *out_dims, int64_t per, float *a, const float *b,
                         int backward, int B) {
    int nd = cfg->nd;
    for (int s = 0; s < B; s++) {
        int64_t idx[PERMUTE_MAX] = {0}, off = 0;
        float *as = a + (int64_t)s * per;
        const float *bs = b + (int64_t)s * per;
        for (int64_t o = 0; o < per; o++) {
            if (backward) as[off] += bs[o];
            else as[o] = bs[off];
            for (int k = nd - 1; k >= 0; k--) { /* next output index, its input offset */
                off += cfg->stride[k];
                if (++idx[k] < out_dims[k]) break;
                off -= cfg->stride[k] * out_dims[k];
                idx[k] = 0;
            }
        }
    }
}

static void permute_forward(const layer_call *c) {
    permute_walk(CFG(c->n), c->n->dims, c->n->numel, c->out, c->in[0], 0, c->B);
}

static void permute_backward(const layer_call *c) {
    if (c->din[0]) permute_walk(CFG(c->n), c->n->dims, c->n->numel, c->din[0], c->dout, 1, c->B);
}

static void permute_text(const node *n, char *buf, size_t size, const char *prefix) {
    size_t len = (size_t)snprintf(buf, size, "%s", prefix);
    for (int k = 0; k < CFG(n)->nd && len < size; k++)
        len += (size_t)snprintf(buf + len, size - len, "%s%d", k ? "," : "", CFG(n)->axes[k]);
}

static void permute_describe(const herd_model *m, const node *n, char *buf, size_t size) {
    (void)m;
    permute_text(n, buf, size, "axes ");
}

static void permute_spec(const herd_model *m, const node *n, char *buf, size_t size) {
    (void)m;
    permute_text(n, buf, size, "permute ");
}

/* Transpose (0, 1 + axes); a vector that ONNX holds as (N,F) is first reshaped to (N,F,1,1) */
static herd_status permute_onnx(onnx_exporter *x, const node *n) {
    const permute_cfg *cfg = CFG(n);
    const char *in = herdi_onnx_in(x, n, 0);
    char shaped[HERD_NAME_MAX + 16];
    if (cfg->nd == 3 && !herdi_onnx_in_rank4(x, n, 0)) {
        int64_t shape[4] = {0, cfg->in[0], 1, 1};
        char sn[HERD_NAME_MAX + 16];
        snprintf(shaped, sizeof shaped, "%s_image", n->name);
        snprintf(sn, sizeof sn, "%s_image_shape", n->name);
        const char *a[2] = {in, herdi_onnx_ints(x, sn, shape, 4)};
        herdi_onnx_emit(x, "Reshape", shaped, shaped, a, 2, NULL, 0);
        in = shaped;
    }
    int64_t perm[PERMUTE_MAX + 1] = {0};
    for (int k = 0; k < cfg->nd; k++) perm[k + 1] = cfg->axes[k] + 1;
    onnx_xattr p = {.name = "perm", .type = 'I', .ints = perm, .n_ints = cfg->nd + 1};
    herdi_onnx_emit(x, "Transpose", n->name, herdi_onnx_out(x, n), &in, 1, &p, 1);
    return HERD_OK;
}

/* Transpose keeping the batch first; of an (N,C,1,1) vector as herd holds it, (C,1,1) */
static herd_status permute_onnx_import(onnx_importer *x) {
    int64_t p[8];
    int np = herdi_onnx_attr_ints(x, "perm", p, 8), nd = herdi_onnx_in_ndim(x);
    if (np < 2 || np > PERMUTE_MAX + 1 || p[0] != 0)
        return herdi_onnx_refuse(x, "perm must keep the batch first and name 2 to %d axes", PERMUTE_MAX + 1);
    if (np - 1 != nd && !(np == 4 && nd == 1))
        return herdi_onnx_refuse(x, "perm has %d axes but the input has %d", np, nd + 1);
    char axes[32];
    size_t len = 0;
    for (int k = 1; k < np; k++) {
        if (p[k] < 1 || p[k] >= np) return herdi_onnx_refuse(x, "perm entry %lld is not an axis of the input", (long long)p[k]);
        len += (size_t)snprintf(axes + len, sizeof axes - len, "%s%d", k > 1 ? "," : "", (int)(p[k] - 1));
    }
    herdi_onnx_arg(x, "axes", "%s", axes);
    return HERD_OK;
}

static const char *const permute_keywords[] = {"permute", NULL};
static const char *const permute_positional[] = {"axes", NULL};

/* ONNX Transpose reaches it through the importer's Transpose pattern (a weight's transpose and a
 * channel shuffle's are taken there first) */
const layer_kind herdi_layer_permute = {
    .name = "permute", .keywords = permute_keywords, .positional = permute_positional, .min_inputs = 1,
    .max_inputs = 1, .build = permute_build, .forward = permute_forward, .backward = permute_backward,
    .backward_reads = herdi_layer_reads_nothing, .describe = permute_describe, .onnx_export = permute_onnx,
    .onnx_import = permute_onnx_import, .spec = permute_spec,
};
