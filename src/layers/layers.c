/* The layer table: every kind herd knows, one row each (HERD_LAYER_KINDS in layer_common.h),
 * and the helpers kinds share. Adding a kind is its file plus its name in that list. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "layers/layer_common.h"

#define HERD_LAYER_ROW(k) &herdi_layer_##k,
const layer_kind *const herd_layer_kinds[] = {HERD_LAYER_KINDS(HERD_LAYER_ROW)};
#undef HERD_LAYER_ROW
const int herd_layer_kind_count = (int)(sizeof herd_layer_kinds / sizeof herd_layer_kinds[0]);


const layer_kind *herdi_layer_kind_by_keyword(const char *keyword) {
    for (int k = 0; k < herd_layer_kind_count; k++)
        for (const char *const *w = herd_layer_kinds[k]->keywords; *w; w++)
            if (!strcmp(*w, keyword)) return herd_layer_kinds[k];
    return NULL;
}

const layer_kind *herdi_layer_kind_by_onnx_op(const char *op) {
    for (int k = 0; k < herd_layer_kind_count; k++)
        for (const char *const *o = herd_layer_kinds[k]->onnx_ops; o && *o; o++)
            if (!strcmp(*o, op)) return herd_layer_kinds[k];
    return NULL;
}

const char *herdi_layer_float_str(float v, char *buf, size_t size) {
    if (!buf || size < 16) return "";
    for (int prec = 6; prec <= 9; prec++) {
        snprintf(buf, size, "%.*g", prec, v);
        if (strtof(buf, NULL) == v) break;
    }
    return buf;
}

/* The keywords of the kinds with all of `flags`, comma-separated, into list. */
static const char *keywords_with(char *list, size_t size, int flags) {
    if (list[0]) return list;
    size_t len = 0;
    for (int k = 0; k < herd_layer_kind_count; k++)
        for (const char *const *w = herd_layer_kinds[k]->keywords; *w && (herd_layer_kinds[k]->flags & flags) == flags; w++) {
            size_t n = strlen(*w);
            if (len + n + 3 >= size) break;
            if (len) memcpy(list + len, ", ", 2), len += 2;
            memcpy(list + len, *w, n), len += n;
        }
    list[len] = 0;
    return list;
}

const char *herdi_layer_keywords(void) {
    static char list[512];
    return keywords_with(list, sizeof list, 0);
}

const char *herdi_layer_id_keywords(void) {
    static char list[128];
    return keywords_with(list, sizeof list, LAYER_READS_IDS);
}

int herdi_layer_reads_nothing(const node *n) {
    (void)n;
    return 0;
}

int herdi_layer_reads_input(const node *n) {
    (void)n;
    return LAYER_READS_INPUT;
}

int herdi_layer_reads_output(const node *n) {
    (void)n;
    return LAYER_READS_OUTPUT;
}

herd_act herdi_layer_backward_act(const node *n) { return n->grad_set ? HERD_ACT_NONE : n->fused_act; }

int herdi_layer_reads_fused_output(const node *n) { return n->fused_act ? LAYER_READS_OUTPUT : 0; }

int herdi_layer_reads_input_and_fused_output(const node *n) {
    return LAYER_READS_INPUT | (n->fused_act ? LAYER_READS_OUTPUT : 0);
}

int herdi_layer_is_vector(int ndim, const int64_t *dims) {
    return ndim == 1 || (ndim == 3 && dims[1] == 1 && dims[2] == 1);
}

void herdi_lb_in_chw(const layer_build *b, int k, int *c, int *h, int *w) {
    int nd = herdi_lb_in_ndim(b, k);
    const int64_t *d = herdi_lb_in_dims(b, k);
    *c = (int)d[0];
    *h = nd == 3 ? (int)d[1] : 1;
    *w = nd == 3 ? (int)d[2] : 1;
}

void herdi_layer_init_weight(herd_model *m, node *n, int64_t fan_in, int64_t fan_out, uint64_t seed) {
    float *w = herdi_node_param(m, n, 0);
    int64_t numel = m->params_reg[n->param[0]].info.numel;
    herd_rng r;
    herd_rng_init(&r, seed, 1000 + (uint64_t)n->param[0]); /* one stream per tensor */
    if (n->he_init) {
        float std = sqrtf(2.0f / (float)fan_in);
        herd_rng_normals(&r, w, numel, std, NULL);
    } else {
        float limit = sqrtf(6.0f / (float)(fan_in + fan_out));
        for (int64_t k = 0; k < numel; k++) w[k] = limit * (2.0f * herd_rng_uniform(&r) - 1.0f);
    }
    float *bias = herdi_node_param(m, n, 1);
    if (bias) memset(bias, 0, (size_t)m->params_reg[n->param[1]].info.numel * sizeof(float));
}
