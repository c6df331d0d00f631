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
#include <unistd.h>

#include "herd/onnx.h"
#include "io/input_file.h"
#include "model/model_internal.h"

#define MAX_TOKENS 32

typedef struct token {
    char text[4096]; /* a from= list of a wide concat (DenseNet: 25 names) is long */
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
    va_list ap;
    va_start(ap, fmt);
    herd_failv(L->err, HERD_ESPEC, fmt, ap);
    va_end(ap);
    if (L->err) herd_fail_prefix(L->err, "%s:%d:%d", L->file, L->line, col);
    return HERD_ESPEC;
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
    if (!herdi_model_parse_int(s, lo, hi, out))
        return spec_fail(L, t->col, "expected %s as an integer in %d..%d, found '%s'", what, lo, hi, s);
    t->used = 1;
    return HERD_OK;
}

static herd_status parse_float(line_ctx *L, token *t, const char *s, const char *what, double lo, double hi,
                               float *out) {
    if (!herdi_model_parse_float(s, lo, hi, out))
        return spec_fail(L, t->col, "expected %s as a number in [%g, %g], found '%s'", what, lo, hi, s);
    t->used = 1;
    return HERD_OK;
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
        } else if (strcmp(t->key, "sparse_lr") == 0) {
            if ((st = parse_float(L, t, t->value, "sparse_lr", 1e-12, 1e3, &tr->sparse_lr))) return st;
        } else if (strcmp(t->key, "batch") == 0) {
            if ((st = parse_int(L, t, t->value, "batch", 1, 1 << 20, &tr->batch))) return st;
        } else if (strcmp(t->key, "epochs") == 0) {
            if ((st = parse_int(L, t, t->value, "epochs", 1, 1 << 20, &tr->epochs))) return st;
        } else if (strcmp(t->key, "weight_decay") == 0) {
            if ((st = parse_float(L, t, t->value, "weight_decay", 0, 10, &tr->weight_decay))) return st;
        } else {
            return spec_fail(L, t->col, "train: unknown key '%s' (expected optimizer, lr, sparse_lr, batch, epochs, "
                             "weight_decay)",
                             t->key);
        }
    }
    return HERD_OK;
}

/* `loss KIND [key=value ...]` */
static herd_status parse_loss(line_ctx *L) {
    token *t = positional(L, 0);
    if (!t) return spec_fail(L, L->tok[0].col, "loss: expected one of %s", herdi_loss_names());
    const loss_kind *kind = herdi_loss_kind_by_name(t->text);
    if (!kind) return spec_fail(L, t->col, "loss: unknown loss '%s' (expected %s)", t->text, herdi_loss_names());
    herd_layer_arg args[MAX_TOKENS];
    int n = 0;
    for (int i = 1; i < L->n; i++) {
        if (&L->tok[i] == t) continue;
        if (!L->tok[i].value) return spec_fail(L, L->tok[i].col, "loss %s: unexpected '%s'", kind->name, L->tok[i].text);
        args[n++] = (herd_layer_arg){L->tok[i].key, L->tok[i].value};
    }
    char msg[256];
    if (!herdi_loss_configure(&L->m->loss, kind, args, n, msg, sizeof msg)) return spec_fail(L, L->tok[0].col, "%s", msg);
    return HERD_OK;
}

/* An activation keyword, which a line may add after its layer (`conv 32 3 relu`). */
static int is_activation(const char *s) {
    const layer_kind *k = herdi_layer_kind_by_keyword(s);
    return k && (k->flags & LAYER_ACTIVATION);
}

/* `input SHAPE [dtype=f32|i32] [name=NAME]`: CxHxW or F (a CxHxW with H = W = 1 is the vector C);
 * i32 inputs hold token or categorical ids for the kinds that read them (embedding). */
static herd_status parse_input(line_ctx *L) {
    token *t = positional(L, 0);
    herd_model *m = L->m;
    token *nm = option(L, "name"), *dt = option(L, "dtype");
    if (!t || positional(L, 1) || L->n != 2 + (nm != NULL) + (dt != NULL))
        return spec_fail(L, L->tok[0].col, "input: expected one shape like 1x28x28 (CxHxW) or 784");
    herd_dtype dtype = HERD_F32;
    if (dt && !strcmp(dt->value, "i32")) dtype = HERD_I32;
    else if (dt && strcmp(dt->value, "f32"))
        return spec_fail(L, dt->col, "input: dtype '%s' (expected f32 or i32)", dt->value);
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
    char name[HERD_NAME_MAX];
    if (nm) snprintf(name, sizeof name, "%s", nm->value);
    else if (m->n_inputs == 0) snprintf(name, sizeof name, "input");
    else herdi_model_default_name(m, "input", name, sizeof name);
    if (nm && herdi_model_find(m, name) != HERD_MAX_NODES) return spec_fail(L, nm->col, "name '%s' is already used", name);
    int64_t d[3] = {dims[0], dims[1], dims[2]};
    return herdi_model_add_input(m, name, dtype, dims[1] == 1 && dims[2] == 1 ? 1 : 3, d, L->err);
}

static herd_status check_name(line_ctx *L, const token *t) {
    const char *v = t->value;
    int ok = *v && strlen(v) < HERD_NAME_MAX && (isalpha((unsigned char)*v) || *v == '_');
    for (const char *p = v; ok && *p; p++) ok = isalnum((unsigned char)*p) || *p == '_' || *p == '.';
    if (!ok) return spec_fail(L, t->col, "bad name '%s' (letters, digits, _ and ., starting with a letter)", v);
    if (herdi_model_find(L->m, v) != HERD_MAX_NODES) return spec_fail(L, t->col, "name '%s' is already used", v);
    return HERD_OK;
}

/* The current tip of the graph: the last layer, or the last input before any layer. */
static int tip(const herd_model *m) { return m->n_nodes ? m->n_nodes - 1 : -m->n_inputs; }

/* "a,b,c" into node/input indices. */
static herd_status resolve_inputs(line_ctx *L, const token *t, const char *list, int *inputs, int *n) {
    char buf[4096];
    snprintf(buf, sizeof buf, "%s", list);
    *n = 0;
    for (char *save = NULL, *name = strtok_r(buf, ",", &save); name; name = strtok_r(NULL, ",", &save)) {
        int at = herdi_model_find(L->m, name);
        if (at == HERD_MAX_NODES)
            return spec_fail(L, t->col, "%s: no earlier layer is named '%s'", L->tok[0].text, name);
        if (*n >= HERD_MAX_INPUTS) return spec_fail(L, t->col, "%s: more than %d inputs", L->tok[0].text, HERD_MAX_INPUTS);
        inputs[(*n)++] = at;
    }
    if (*n == 0) return spec_fail(L, t->col, "%s: expected layer names separated by commas", L->tok[0].text);
    return HERD_OK;
}

/* One layer line: `KEYWORD [positional...] [key=value...] [activation] [name=NAME] [from=A,B]`. */
static herd_status parse_layer(line_ctx *L, const layer_kind *kind) {
    herd_model *m = L->m;
    const char *kw = L->tok[0].text;
    herd_status st;
    token *name_tok = option(L, "name"), *from_tok = option(L, "from"), *act_tok = NULL, *alpha_tok = NULL;
    if (name_tok && (st = check_name(L, name_tok))) return st;
    if (name_tok) name_tok->used = 1;
    for (int i = 1; i < L->n && !act_tok; i++) {
        token *a = &L->tok[i];
        if (a->value || !is_activation(a->text)) continue;
        if (!(kind->flags & LAYER_TAKES_ACT)) return spec_fail(L, a->col, "%s takes no activation", kw);
        a->used = 1;
        act_tok = a;
        if ((alpha_tok = option(L, "alpha"))) alpha_tok->used = 1;
    }
    /* arguments: positionals get the kind's names; options keep theirs */
    struct layer_arg args[MAX_TOKENS];
    int n_args = 0, n_pos = 0;
    const char *from_list = from_tok ? from_tok->value : NULL;
    int from_col = from_tok ? from_tok->col : 0, from_positional = 0;
    if (from_tok) from_tok->used = 1;
    for (int i = 1; i < L->n; i++) {
        token *t = &L->tok[i];
        if (t->used) continue;
        const char *key = t->value ? t->key : NULL;
        if (!key) {
            const char *const *names = kind->positional;
            int count = 0;
            while (names && names[count]) count++;
            if (n_pos >= count) return spec_fail(L, t->col, "unexpected argument '%s' for %s", t->text, kw);
            key = names[n_pos++];
        }
        t->used = 1;
        if (!strcmp(key, "from")) { /* add NAME / add A,B: its inputs */
            if (from_list) return spec_fail(L, t->col, "%s: inputs given twice", kw);
            from_list = t->value ? t->value : t->text;
            from_col = t->col;
            from_positional = !t->value;
            continue;
        }
        args[n_args++] = (struct layer_arg){.key = key, .value = t->value ? t->value : t->text, .col = t->col,
                                            .end_col = t->col + (int)strlen(t->text) + (t->value ? 1 + (int)strlen(t->value) : 0)};
    }
    int inputs[HERD_MAX_INPUTS], n_in = 1;
    inputs[0] = tip(m);
    if (from_list) {
        token ft = {.col = from_col};
        if ((st = resolve_inputs(L, &ft, from_list, inputs, &n_in))) return st;
        if (from_positional && n_in == 1 && kind->min_inputs >= 2) { /* `add NAME`: NAME and the tip */
            if (inputs[0] == tip(m)) return spec_fail(L, from_col, "%s: '%s' is the input itself", kw, from_list);
            inputs[1] = inputs[0];
            inputs[0] = tip(m);
            n_in = 2;
        }
        args[n_args++] = (struct layer_arg){.key = "from", .value = from_list, .col = from_col, .used = 1};
    }
    char name[HERD_NAME_MAX];
    if (name_tok && !act_tok) snprintf(name, sizeof name, "%s", name_tok->value);
    else herdi_model_default_name(m, kind->prefix ? kind->prefix : kw, name, sizeof name);
    if ((st = herdi_model_add_node(m, kind, kw, name, inputs, n_in, args, n_args, L->file, L->line, L->tok[0].col, L->err)))
        return st;
    if (!act_tok) return HERD_OK;
    /* the activation flag becomes its own node; the line's name goes to it, so later lines
     * that name the line read the activation's output */
    struct layer_arg alpha = {.key = "alpha", .value = alpha_tok ? alpha_tok->value : NULL,
                              .col = alpha_tok ? alpha_tok->col : 0};
    if (name_tok) snprintf(name, sizeof name, "%s", name_tok->value);
    else herdi_model_default_name(m, act_tok->text, name, sizeof name);
    int from = m->n_nodes - 1;
    return herdi_model_add_node(m, herdi_layer_kind_by_keyword(act_tok->text), act_tok->text, name, &from, 1, &alpha,
                          alpha_tok ? 1 : 0, L->file, L->line, act_tok->col, L->err);
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
    herd_model *m;
    herd_status st = herdi_model_create(&m, filename, err);
    if (st) return st;
    line_ctx *L = calloc(1, sizeof *L);
    if (!L) {
        herd_model_destroy(m);
        return herd_fail(err, HERD_ENOMEM, "%s: out of memory", filename);
    }
    L->m = m, L->file = filename, L->err = err;
    const char *p = text;
    while (*p && st == HERD_OK) {
        const char *nl = strchr(p, '\n');
        size_t len = nl ? (size_t)(nl - p) : strlen(p);
        L->line++;
        if ((st = tokenize(L, p, len))) break;
        p += len + (nl ? 1 : 0);
        if (L->n == 0) continue;
        const char *kw = L->tok[0].text;
        if (!strcmp(kw, "input")) {
            if (m->n_nodes) st = spec_fail(L, L->tok[0].col, "input lines come before the layers");
            else st = parse_input(L);
            continue;
        }
        if (m->n_inputs == 0) {
            st = spec_fail(L, L->tok[0].col, "the first layer must be `input CxHxW`, found '%s'", kw);
            break;
        }
        if (!strcmp(kw, "train")) st = parse_train(L);
        else if (!strcmp(kw, "loss")) st = parse_loss(L);
        else {
            const layer_kind *kind = herdi_layer_kind_by_keyword(kw);
            if (kind) st = parse_layer(L, kind);
            else st = spec_fail(L, L->tok[0].col, "unknown layer '%s' (expected %s, train or loss)", kw,
                                herdi_layer_keywords());
        }
    }
    if (st == HERD_OK) st = herdi_model_finish(m, err);
    free(L);
    if (st != HERD_OK) {
        herd_model_destroy(m);
        return st;
    }
    *out = m;
    return HERD_OK;
}

herd_status herd_model_load_spec(herd_model **out, const char *path, herd_error *err) {
    FILE *f;
    herd_status st = herdi_input_fopen(path, &f, err);
    if (st) return st;
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
    /* a UTF-8 byte order mark, as Windows editors write, is not part of the text */
    size_t bom = n >= 3 && memcmp(buf, "\xEF\xBB\xBF", 3) == 0 ? 3 : 0;
    st = herd_model_parse(out, buf + bom, path, err);
    free(buf);
    return st;
}

int herd_model_path_is_onnx(const char *path) {
    size_t n = strlen(path);
    return n > 5 && strcmp(path + n - 5, ".onnx") == 0;
}

herd_status herd_model_open(herd_model **out, const char *path, uint64_t seed, herd_error *err) {
    if (herd_model_path_is_onnx(path)) return herd_model_import_onnx(out, path, err);
    herd_status st = herd_model_load_spec(out, path, err);
    if (st == HERD_OK) herd_model_init_params(*out, seed);
    return st;
}
