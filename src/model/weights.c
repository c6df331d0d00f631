/* Weights files: the registry written to and read from safetensors by name, so files
 * map one to one onto PyTorch state_dicts (OIHW conv weights, [out, in] dense weights). */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "herd/io.h"
#include "model/model_internal.h"

/* in_c numbers as "a,b,c" (%.17g: they read back exactly); NULL when out of memory. */
static char *format_numbers(const double *v, int n) {
    size_t size = (size_t)n * 26 + 1, len = 0;
    char *s = malloc(size);
    if (!s) return NULL;
    s[0] = 0;
    for (int i = 0; i < n; i++) len += (size_t)snprintf(s + len, size - len, "%s%.17g", i ? "," : "", v[i]);
    return s;
}

int herdi_model_norm_meta(const herd_model *m, const char **meta, char **owned) {
    owned[0] = owned[1] = NULL;
    if (!m->input_norm) return 0;
    owned[0] = format_numbers(m->input_norm, m->in_c);
    owned[1] = format_numbers(m->input_norm + m->in_c, m->in_c);
    if (!owned[0] || !owned[1]) {
        free(owned[0]), free(owned[1]);
        owned[0] = owned[1] = NULL;
        return -1;
    }
    meta[0] = "input_mean", meta[1] = owned[0], meta[2] = "input_std", meta[3] = owned[1];
    return 2;
}

herd_status herd_model_save(const herd_model *m, const char *path, herd_error *err) {
    herd_tensor_ref refs[HERD_MAX_PARAMS];
    int n = herdi_model_registry_refs(m, refs);
    char *owned[2];
    const char *meta[8] = {"format", "herd", "model", m->source};
    int extra = herdi_model_norm_meta(m, meta + 4, owned);
    if (extra < 0) return herd_fail(err, HERD_ENOMEM, "%s: out of memory", path);
    herd_status st = herd_safetensors_write(path, refs, n, meta, 2 + extra, err);
    free(owned[0]), free(owned[1]);
    return st;
}

/* Metadata value `key`: exactly n comma-separated finite numbers (stds also >= 0) into v. */
static herd_status parse_numbers(const herd_safetensors *st, const char *key, int n, int nonneg, double *v,
                                 herd_error *err) {
    const char *s = herd_safetensors_meta(st, key), *path = herd_safetensors_path(st);
    for (int i = 0; i < n; i++) {
        char *end;
        errno = 0;
        v[i] = strtod(s, &end);
        if (end == s || errno || !isfinite(v[i]) || (nonneg && v[i] < 0) || *end != (i + 1 < n ? ',' : 0))
            return herd_fail(err, HERD_EFORMAT,
                             "%s: metadata %s must be %d comma-separated finite numbers%s (one per input channel); "
                             "number %d is not",
                             path, key, n, nonneg ? " >= 0" : "", i + 1);
        s = end + 1;
    }
    return HERD_OK;
}

/* The file's input normalisation into norm (2 * in_c values); *has = 0 when it has none. */
static herd_status read_input_norm(const herd_model *m, const herd_safetensors *st, double *norm, int *has,
                                   herd_error *err) {
    const char *mean = herd_safetensors_meta(st, "input_mean"), *std = herd_safetensors_meta(st, "input_std");
    *has = mean || std;
    if (!*has) return HERD_OK;
    if (!mean || !std)
        return herd_fail(err, HERD_EFORMAT, "%s: metadata has %s without %s", herd_safetensors_path(st),
                         mean ? "input_mean" : "input_std", mean ? "input_std" : "input_mean");
    herd_status s = parse_numbers(st, "input_mean", m->in_c, 0, norm, err);
    return s ? s : parse_numbers(st, "input_std", m->in_c, 1, norm + m->in_c, err);
}

static int same_shape(const herd_param_info *p, const herd_tensor_ref *t) {
    if (p->ndim != t->ndim) return 0;
    for (int d = 0; d < p->ndim; d++)
        if (p->shape[d] != t->shape[d]) return 0;
    return 1;
}

static void shape_str(char *buf, size_t size, int ndim, const int64_t *shape) {
    size_t len = 0;
    buf[0] = 0;
    len += (size_t)snprintf(buf, size, "[");
    for (int d = 0; d < ndim && len < size; d++)
        len += (size_t)snprintf(buf + len, size - len, "%s%lld", d ? ", " : "", (long long)shape[d]);
    if (len < size) snprintf(buf + len, size - len, "]");
}

int herdi_model_registry_refs(const herd_model *m, herd_tensor_ref *refs) {
    herdi_model_tables_ready((herd_model *)m); /* the values, not pages still to be written */
    for (int i = 0; i < m->n_reg; i++) {
        const herd_param_info *p = &m->params_reg[i].info;
        refs[i] = (herd_tensor_ref){.name = p->name, .dtype = HERD_F32, .ndim = p->ndim};
        for (int d = 0; d < p->ndim; d++) refs[i].shape[d] = p->shape[d];
        refs[i].data = (p->trainable ? m->params : m->buffers) + p->offset;
    }
    return m->n_reg;
}

herd_status herdi_model_load_tensors(herd_model *m, const herd_safetensors *st, const char *own_prefix, herd_error *err) {
    const char *path = herd_safetensors_path(st);
    herd_status s = HERD_OK;
    /* validate everything before touching the model, so a bad file changes nothing */
    for (int i = 0; i < m->n_reg && !s; i++) {
        const herd_param_info *p = &m->params_reg[i].info;
        const herd_tensor_ref *t = herd_safetensors_find(st, p->name);
        char a[96], b[96];
        if (!t) {
            s = herd_fail(err, HERD_EFORMAT, "%s: tensor '%s' is missing (the model %s needs it)", path, p->name,
                          m->source);
        } else if (t->dtype != HERD_F32) {
            s = herd_fail(err, HERD_EFORMAT, "%s: tensor '%s' is not F32", path, p->name);
        } else if (!same_shape(p, t)) {
            shape_str(a, sizeof a, t->ndim, t->shape);
            shape_str(b, sizeof b, p->ndim, p->shape);
            s = herd_fail(err, HERD_ESHAPE, "%s: tensor '%s' has shape %s but the model needs %s", path, p->name, a, b);
        }
    }
    int n = herd_safetensors_count(st);
    for (int i = 0; i < n && !s; i++) {
        const herd_tensor_ref *t = herd_safetensors_get(st, i);
        size_t len = strlen(t->name), suf = strlen(".num_batches_tracked");
        if (len > suf && strcmp(t->name + len - suf, ".num_batches_tracked") == 0) continue; /* PyTorch bookkeeping */
        if (own_prefix && strncmp(t->name, own_prefix, strlen(own_prefix)) == 0) continue; /* the caller's */
        int known = 0;
        for (int k = 0; k < m->n_reg && !known; k++) known = strcmp(m->params_reg[k].info.name, t->name) == 0;
        if (!known) s = herd_fail(err, HERD_EFORMAT, "%s: tensor '%s' is not part of the model %s", path, t->name, m->source);
    }
    if (!s) m->tables_pending = 0; /* every tensor is overwritten below: a pending table's random init is not drawn */
    for (int i = 0; i < m->n_reg && !s; i++) {
        const herd_param_info *p = &m->params_reg[i].info;
        const herd_tensor_ref *t = herd_safetensors_find(st, p->name);
        memcpy(herdi_model_param_data(m, i), t->data, (size_t)p->numel * sizeof(float));
    }
    herdi_model_params_changed(m);
    return s;
}

herd_status herd_model_load(herd_model *m, const char *path, herd_error *err) {
    herd_safetensors *st = NULL;
    herd_status s = herd_safetensors_open(&st, path, err);
    if (s) return s;
    double *norm = malloc(2 * (size_t)m->in_c * sizeof *norm);
    int has = 0;
    if (!norm) s = herd_fail(err, HERD_ENOMEM, "out of memory");
    if (!s) s = read_input_norm(m, st, norm, &has, err); /* checked before anything changes */
    const char *format = herd_safetensors_meta(st, "format");
    int checkpoint = format && !strcmp(format, "herd-checkpoint-1"); /* its optimizer state is not the model's */
    if (!s) s = herdi_model_load_tensors(m, st, checkpoint ? "optimizer." : NULL, err);
    if (!s) s = herd_model_set_input_norm(m, has ? norm : NULL, has ? norm + m->in_c : NULL, err);
    free(norm);
    herd_safetensors_close(st);
    return s;
}
