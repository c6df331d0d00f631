/* The spec writer: a built model (from a spec, the builder or the ONNX importer) back into
 * spec text, one node per line. Each kind writes its keyword and arguments (layer_kind.spec);
 * this adds `from=` where a node does not read the line before and `name=` where its name is
 * not the one the parser would give it, so the text parses into the same model. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model/model_internal.h"

/* Whether name is taken by an input or one of nodes[0..upto). */
static int taken(const herd_model *m, int upto, const char *name) {
    for (int k = 0; k < m->n_inputs; k++)
        if (!strcmp(m->inputs[k].name, name)) return 1;
    for (int i = 0; i < upto; i++)
        if (!strcmp(m->nodes[i].name, name)) return 1;
    return 0;
}

/* The name the parser gives a line of `keyword` as node i (herdi_model_default_name at that point). */
static void default_name(const herd_model *m, int i, const char *prefix, char *out, size_t size) {
    for (int k = 1;; k++) {
        snprintf(out, size, "%s%d", prefix, k);
        if (!taken(m, i, out)) return;
    }
}

static const char *input_name(const herd_model *m, int in) {
    return in >= 0 ? m->nodes[in].name : m->inputs[-1 - in].name;
}

typedef struct text {
    char *s;
    size_t len, cap;
    int failed;
} text;

static void put(text *t, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;

static void put(text *t, const char *fmt, ...) {
    if (t->failed) return;
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(t->s ? t->s + t->len : NULL, t->s ? t->cap - t->len : 0, fmt, ap);
        va_end(ap);
        if (n < 0) {
            t->failed = 1;
            return;
        }
        if (t->s && t->len + (size_t)n < t->cap) {
            t->len += (size_t)n;
            return;
        }
        size_t cap = t->cap ? t->cap * 2 : 4096;
        while (cap <= t->len + (size_t)n) cap *= 2;
        char *s = realloc(t->s, cap);
        if (!s) {
            t->failed = 1;
            return;
        }
        t->s = s, t->cap = cap;
    }
}

herd_status herd_model_write_spec(const herd_model *m, char **out, herd_error *err) {
    text t = {0};
    put(&t, "# %s\n", m->source);
    for (int k = 0; k < m->n_inputs; k++) {
        const model_input *in = &m->inputs[k];
        char dflt[HERD_NAME_MAX] = "input";
        if (k) {
            for (int j = 2;; j++) { /* the parser's herdi_model_default_name over the earlier inputs */
                snprintf(dflt, sizeof dflt, "input%d", j - 1);
                int used = 0;
                for (int q = 0; q < k; q++) used |= !strcmp(m->inputs[q].name, dflt);
                if (!used) break;
            }
        }
        if (in->ndim == 3) put(&t, "input %lldx%lldx%lld", (long long)in->dims[0], (long long)in->dims[1], (long long)in->dims[2]);
        else put(&t, "input %lld", (long long)in->dims[0]);
        if (in->dtype != HERD_F32) put(&t, " dtype=%s", herd_dtype_name(in->dtype));
        put(&t, strcmp(in->name, dflt) ? " name=%s\n" : "\n", in->name);
    }
    for (int i = 0; i < m->n_nodes; i++) {
        const node *n = &m->nodes[i];
        char line[512], dflt[HERD_NAME_MAX];
        if (n->kind->spec) n->kind->spec(m, n, line, sizeof line);
        else snprintf(line, sizeof line, "%s", n->kind->keywords[0]);
        char keyword[32];
        size_t kl = strcspn(line, " ");
        snprintf(keyword, sizeof keyword, "%.*s", (int)(kl < sizeof keyword ? kl : sizeof keyword - 1), line);
        put(&t, "%s", line);
        int tip = i ? i - 1 : -m->n_inputs;
        if (n->n_in > 1 || n->in[0] != tip) {
            for (int k = 0; k < n->n_in; k++) put(&t, "%s%s", k ? "," : " from=", input_name(m, n->in[k]));
        }
        default_name(m, i, n->kind->prefix ? n->kind->prefix : keyword, dflt, sizeof dflt);
        put(&t, strcmp(n->name, dflt) ? " name=%s\n" : "\n", n->name);
    }
    if (m->loss.kind != &herdi_loss_xent || m->loss.ignore) {
        char args[64];
        m->loss.kind->spec(&m->loss, args, sizeof args);
        put(&t, "loss %s%s\n", m->loss.kind->name, args);
    }
    if (t.failed) {
        free(t.s);
        return herd_fail(err, HERD_ENOMEM, "%s: out of memory writing the spec", m->source);
    }
    *out = t.s;
    return HERD_OK;
}
