/* Strict, bounded JSON parsing without recursion (an explicit stack capped at the
 * depth limit), so hostile headers cannot exhaust the C stack; and a JSON string builder. */
#include "io/json.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define NUMBER_MAX_CHARS 1024

struct herd_json {
    herd_json_node *nodes;
    int32_t n, cap;
    char *strings; /* decoded strings; sized so it never moves (see herd_json_parse) */
    size_t str_used;
};

typedef struct parser {
    const unsigned char *s;
    size_t len, pos;
    herd_json *doc;
    herd_error *err;
    int32_t *stack;
    int depth, max_depth;
    int32_t max_nodes;
} parser;

static herd_status parse_fail(parser *p, size_t at, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;

static herd_status parse_fail(parser *p, size_t at, const char *fmt, ...) {
    char what[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    return herd_fail(p->err, HERD_EFORMAT, "JSON byte %zu: %s", at, what);
}

/* Length of the UTF-8 sequence at s (1..4), or 0 if it is malformed. */
static size_t utf8_seq(const unsigned char *s, size_t n) {
    unsigned c = s[0];
    if (c < 0x80) return 1;
    size_t k;
    unsigned lo = 0x80, hi = 0xBF;
    if (c >= 0xC2 && c <= 0xDF)
        k = 2;
    else if (c >= 0xE0 && c <= 0xEF) {
        k = 3;
        if (c == 0xE0) lo = 0xA0;
        if (c == 0xED) hi = 0x9F; /* excludes UTF-16 surrogates */
    } else if (c >= 0xF0 && c <= 0xF4) {
        k = 4;
        if (c == 0xF0) lo = 0x90;
        if (c == 0xF4) hi = 0x8F; /* nothing above U+10FFFF */
    } else
        return 0;
    if (n < k || s[1] < lo || s[1] > hi) return 0;
    for (size_t i = 2; i < k; i++)
        if (s[i] < 0x80 || s[i] > 0xBF) return 0;
    return k;
}

int herd_json_utf8_valid(const char *s, size_t n) {
    const unsigned char *u = (const unsigned char *)s;
    for (size_t i = 0; i < n;) {
        size_t k = utf8_seq(u + i, n - i);
        if (!k) return 0;
        i += k;
    }
    return 1;
}

static void skip_ws(parser *p) {
    while (p->pos < p->len) {
        unsigned char c = p->s[p->pos];
        if (c != ' ' && c != '\t' && c != '\n' && c != '\r') break;
        p->pos++;
    }
}

static int32_t new_node(parser *p, herd_json_type t, size_t offset) {
    herd_json *d = p->doc;
    if (d->n >= p->max_nodes) return -2;
    if (d->n == d->cap) {
        if (d->cap >= INT32_MAX / 2) return -1;
        int32_t cap = d->cap ? d->cap * 2 : 16;
        herd_json_node *nn = realloc(d->nodes, (size_t)cap * sizeof *nn);
        if (!nn) return -1;
        d->nodes = nn;
        d->cap = cap;
    }
    herd_json_node *nd = &d->nodes[d->n];
    memset(nd, 0, sizeof *nd);
    nd->type = t;
    nd->parent = nd->next = nd->first = nd->last = -1;
    nd->offset = offset;
    return d->n++;
}

static void attach(parser *p, int32_t child, const char *key, size_t key_len) {
    if (p->depth == 0) return;
    herd_json_node *nodes = p->doc->nodes;
    int32_t par = p->stack[p->depth - 1];
    nodes[child].parent = par;
    nodes[child].key = key;
    nodes[child].key_len = key_len;
    if (nodes[par].last < 0)
        nodes[par].first = child;
    else
        nodes[nodes[par].last].next = child;
    nodes[par].last = child;
    nodes[par].count++;
}

static int hex4(const unsigned char *s, unsigned *out) {
    unsigned v = 0;
    for (int i = 0; i < 4; i++) {
        unsigned c = s[i], d;
        if (c >= '0' && c <= '9')
            d = c - '0';
        else if (c >= 'a' && c <= 'f')
            d = c - 'a' + 10;
        else if (c >= 'A' && c <= 'F')
            d = c - 'A' + 10;
        else
            return 0;
        v = v << 4 | d;
    }
    *out = v;
    return 1;
}

static char *put_utf8(char *o, unsigned cp) {
    if (cp < 0x80)
        *o++ = (char)cp;
    else if (cp < 0x800) {
        *o++ = (char)(0xC0 | cp >> 6);
        *o++ = (char)(0x80 | (cp & 0x3F));
    } else if (cp < 0x10000) {
        *o++ = (char)(0xE0 | cp >> 12);
        *o++ = (char)(0x80 | (cp >> 6 & 0x3F));
        *o++ = (char)(0x80 | (cp & 0x3F));
    } else {
        *o++ = (char)(0xF0 | cp >> 18);
        *o++ = (char)(0x80 | (cp >> 12 & 0x3F));
        *o++ = (char)(0x80 | (cp >> 6 & 0x3F));
        *o++ = (char)(0x80 | (cp & 0x3F));
    }
    return o;
}

/* At an opening quote. The decoded text plus its NUL never exceeds the quoted source,
 * which is why the string arena can be sized once from the input length. */
static herd_status parse_string(parser *p, const char **out, size_t *out_len) {
    size_t start = p->pos;
    char *o0 = p->doc->strings + p->doc->str_used, *o = o0;
    p->pos++;
    for (;;) {
        if (p->pos >= p->len) return parse_fail(p, start, "unterminated string");
        unsigned char c = p->s[p->pos];
        if (c == '"') {
            p->pos++;
            break;
        }
        if (c < 0x20) return parse_fail(p, p->pos, "control character 0x%02X in string", c);
        if (c == '\\') {
            if (p->pos + 1 >= p->len) return parse_fail(p, start, "unterminated string");
            unsigned char e = p->s[p->pos + 1];
            const char *simple = strchr("\"\\/bfnrt", e);
            if (e && simple) {
                static const char map[] = "\"\\/\b\f\n\r\t";
                *o++ = map[simple - "\"\\/bfnrt"];
                p->pos += 2;
                continue;
            }
            if (e != 'u') return parse_fail(p, p->pos, "invalid escape '\\%c'", e >= 0x20 && e < 0x7F ? e : '?');
            unsigned cp, lo;
            if (p->pos + 6 > p->len || !hex4(p->s + p->pos + 2, &cp))
                return parse_fail(p, p->pos, "\\u needs 4 hex digits");
            size_t esc = p->pos;
            p->pos += 6;
            if (cp >= 0xDC00 && cp <= 0xDFFF) return parse_fail(p, esc, "lone low surrogate \\u%04X", cp);
            if (cp >= 0xD800 && cp <= 0xDBFF) {
                if (p->pos + 6 > p->len || p->s[p->pos] != '\\' || p->s[p->pos + 1] != 'u' ||
                    !hex4(p->s + p->pos + 2, &lo) || lo < 0xDC00 || lo > 0xDFFF)
                    return parse_fail(p, esc, "high surrogate \\u%04X without a low surrogate", cp);
                cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
                p->pos += 6;
            }
            o = put_utf8(o, cp);
            continue;
        }
        size_t k = utf8_seq(p->s + p->pos, p->len - p->pos);
        if (!k) return parse_fail(p, p->pos, "invalid UTF-8 in string");
        memcpy(o, p->s + p->pos, k);
        o += k;
        p->pos += k;
    }
    *o = '\0';
    *out = o0;
    *out_len = (size_t)(o - o0);
    p->doc->str_used += *out_len + 1;
    return HERD_OK;
}

static int is_digit(unsigned char c) { return c >= '0' && c <= '9'; }

static herd_status parse_number(parser *p, herd_json_node *nd) {
    size_t start = p->pos, i = p->pos;
    const unsigned char *s = p->s;
    int neg = 0, frac = 0;
    if (i < p->len && s[i] == '-') {
        neg = 1;
        i++;
    }
    if (i >= p->len || !is_digit(s[i])) return parse_fail(p, start, "invalid number");
    if (s[i] == '0')
        i++;
    else
        while (i < p->len && is_digit(s[i])) i++;
    if (i < p->len && s[i] == '.') {
        frac = 1;
        i++;
        if (i >= p->len || !is_digit(s[i])) return parse_fail(p, start, "invalid number: digit expected after '.'");
        while (i < p->len && is_digit(s[i])) i++;
    }
    if (i < p->len && (s[i] == 'e' || s[i] == 'E')) {
        frac = 1;
        i++;
        if (i < p->len && (s[i] == '+' || s[i] == '-')) i++;
        if (i >= p->len || !is_digit(s[i])) return parse_fail(p, start, "invalid number: digit expected in exponent");
        while (i < p->len && is_digit(s[i])) i++;
    }
    size_t n = i - start;
    if (n > NUMBER_MAX_CHARS) return parse_fail(p, start, "number longer than %d characters", NUMBER_MAX_CHARS);
    char buf[NUMBER_MAX_CHARS + 1];
    memcpy(buf, s + start, n);
    buf[n] = '\0';
    /* strtod follows LC_NUMERIC; herd never calls setlocale, so '.' is the radix. */
    errno = 0;
    double v = strtod(buf, NULL);
    if (!isfinite(v)) return parse_fail(p, start, "number %s out of range", n > 40 ? "(long)" : buf);
    nd->num = v;
    if (!frac) {
        /* Exact integers matter (offsets beyond 2^53), so they do not go through double. */
        uint64_t acc = 0, lim = neg ? (uint64_t)INT64_MAX + 1 : (uint64_t)INT64_MAX;
        int fits = 1;
        for (size_t k = (size_t)neg; k < n; k++) {
            unsigned d = (unsigned)(buf[k] - '0');
            if (acc > (lim - d) / 10) {
                fits = 0;
                break;
            }
            acc = acc * 10 + d;
        }
        if (fits) {
            nd->is_int = 1;
            nd->ival = neg ? (acc == (uint64_t)INT64_MAX + 1 ? INT64_MIN : -(int64_t)acc) : (int64_t)acc;
        }
    }
    p->pos = i;
    return HERD_OK;
}

typedef enum { EXPECT_VALUE, AFTER_VALUE, EXPECT_KEY } parse_state;

static herd_status parse_doc(parser *p) {
    const char *key = NULL;
    size_t key_len = 0;
    parse_state state = EXPECT_VALUE;
    herd_status st;
    for (;;) {
        skip_ws(p);
        if (state == EXPECT_KEY) {
            if (p->pos >= p->len || p->s[p->pos] != '"') return parse_fail(p, p->pos, "expected a string key");
            st = parse_string(p, &key, &key_len);
            if (st != HERD_OK) return st;
            skip_ws(p);
            if (p->pos >= p->len || p->s[p->pos] != ':') return parse_fail(p, p->pos, "expected ':' after key");
            p->pos++;
            state = EXPECT_VALUE;
            continue;
        }
        if (state == AFTER_VALUE) {
            if (p->depth == 0) break;
            herd_json_node *top = &p->doc->nodes[p->stack[p->depth - 1]];
            char close = top->type == HERD_JSON_ARRAY ? ']' : '}';
            if (p->pos >= p->len) return parse_fail(p, p->pos, "unexpected end of input, expected ',' or '%c'", close);
            unsigned char c = p->s[p->pos++];
            if (c == ',')
                state = top->type == HERD_JSON_ARRAY ? EXPECT_VALUE : EXPECT_KEY;
            else if (c == close)
                p->depth--;
            else
                return parse_fail(p, p->pos - 1, "expected ',' or '%c'", close);
            continue;
        }
        /* EXPECT_VALUE */
        if (p->pos >= p->len) return parse_fail(p, p->pos, "unexpected end of input, expected a value");
        size_t at = p->pos;
        unsigned char c = p->s[at];
        herd_json_type t;
        if (c == '{')
            t = HERD_JSON_OBJECT;
        else if (c == '[')
            t = HERD_JSON_ARRAY;
        else if (c == '"')
            t = HERD_JSON_STRING;
        else if (c == '-' || is_digit(c))
            t = HERD_JSON_NUMBER;
        else if (c == 't' || c == 'f')
            t = HERD_JSON_BOOL;
        else if (c == 'n')
            t = HERD_JSON_NULL;
        else
            return parse_fail(p, at, "unexpected character '%c', expected a value", c >= 0x20 && c < 0x7F ? c : '?');
        int32_t idx = new_node(p, t, at);
        if (idx == -2) return parse_fail(p, at, "more than %ld values", (long)p->max_nodes);
        if (idx < 0) return herd_fail(p->err, HERD_ENOMEM, "JSON byte %zu: out of memory", at);
        herd_json_node *nd = &p->doc->nodes[idx];
        switch (t) {
        case HERD_JSON_STRING:
            st = parse_string(p, &nd->str, &nd->str_len);
            if (st != HERD_OK) return st;
            break;
        case HERD_JSON_NUMBER:
            st = parse_number(p, nd);
            if (st != HERD_OK) return st;
            break;
        case HERD_JSON_BOOL:
        case HERD_JSON_NULL: {
            const char *word = c == 't' ? "true" : c == 'f' ? "false" : "null";
            size_t wn = strlen(word);
            if (p->len - at < wn || memcmp(p->s + at, word, wn) != 0) return parse_fail(p, at, "invalid literal");
            nd->bval = c == 't';
            p->pos += wn;
            break;
        }
        default: p->pos++; break;
        }
        attach(p, idx, key, key_len);
        key = NULL;
        key_len = 0;
        if (t == HERD_JSON_OBJECT || t == HERD_JSON_ARRAY) {
            if (p->depth >= p->max_depth) return parse_fail(p, at, "nesting deeper than %d", p->max_depth);
            p->stack[p->depth++] = idx;
            skip_ws(p);
            char close = t == HERD_JSON_ARRAY ? ']' : '}';
            if (p->pos < p->len && p->s[p->pos] == close) {
                p->pos++;
                p->depth--;
                state = AFTER_VALUE;
            } else
                state = t == HERD_JSON_ARRAY ? EXPECT_VALUE : EXPECT_KEY;
        } else
            state = AFTER_VALUE;
    }
    if (p->pos != p->len) return parse_fail(p, p->pos, "unexpected characters after the JSON value");
    return HERD_OK;
}

herd_status herd_json_parse(herd_json **out, const char *text, size_t len, int max_depth, int32_t max_nodes,
                            herd_error *err) {
    herd_json *doc = NULL;
    parser p = {0};
    herd_status st;
    *out = NULL;
    if (max_depth < 1) max_depth = 1;
    doc = calloc(1, sizeof *doc);
    if (!doc || len == SIZE_MAX) {
        st = herd_fail(err, HERD_ENOMEM, "JSON: out of memory");
        goto fail;
    }
    doc->strings = malloc(len + 1);
    p.stack = herd_malloc_array((size_t)max_depth, sizeof *p.stack);
    if (!doc->strings || !p.stack) {
        st = herd_fail(err, HERD_ENOMEM, "JSON: out of memory for %zu bytes", len);
        goto fail;
    }
    p.s = (const unsigned char *)text;
    p.len = len;
    p.doc = doc;
    p.err = err;
    p.max_depth = max_depth;
    p.max_nodes = max_nodes > 0 ? max_nodes : INT32_MAX;
    st = parse_doc(&p);
    if (st != HERD_OK) goto fail;
    free(p.stack);
    *out = doc;
    return HERD_OK;
fail:
    free(p.stack);
    herd_json_free(doc);
    return st;
}

void herd_json_free(herd_json *doc) {
    if (!doc) return;
    free(doc->nodes);
    free(doc->strings);
    free(doc);
}

const herd_json_node *herd_json_root(const herd_json *doc) { return doc && doc->n > 0 ? &doc->nodes[0] : NULL; }

const herd_json_node *herd_json_at(const herd_json *doc, int32_t idx) {
    return idx >= 0 && idx < doc->n ? &doc->nodes[idx] : NULL;
}

const herd_json_node *herd_json_get(const herd_json *doc, const herd_json_node *obj, const char *key) {
    if (!obj || obj->type != HERD_JSON_OBJECT) return NULL;
    size_t kn = strlen(key);
    for (const herd_json_node *c = herd_json_at(doc, obj->first); c; c = herd_json_at(doc, c->next))
        if (c->key_len == kn && memcmp(c->key, key, kn) == 0) return c;
    return NULL;
}

const char *herd_json_type_name(herd_json_type t) {
    switch (t) {
    case HERD_JSON_NULL: return "null";
    case HERD_JSON_BOOL: return "boolean";
    case HERD_JSON_NUMBER: return "number";
    case HERD_JSON_STRING: return "string";
    case HERD_JSON_ARRAY: return "array";
    case HERD_JSON_OBJECT: return "object";
    }
    return "?";
}

void herd_json_put_raw(herd_json_writer *w, const char *s, size_t n) {
    if (w->failed) return;
    if (n > SIZE_MAX / 2 - w->len) {
        w->failed = 1;
        return;
    }
    if (w->len + n + 1 > w->cap) {
        size_t cap = w->cap ? w->cap : 256;
        while (cap < w->len + n + 1) cap *= 2;
        char *nb = realloc(w->buf, cap);
        if (!nb) {
            w->failed = 1;
            return;
        }
        w->buf = nb;
        w->cap = cap;
    }
    memcpy(w->buf + w->len, s, n);
    w->len += n;
    w->buf[w->len] = '\0';
}

void herd_json_put_string(herd_json_writer *w, const char *s) {
    herd_json_put_raw(w, "\"", 1);
    for (const unsigned char *c = (const unsigned char *)s; *c; c++) {
        char esc[8];
        if (*c == '"' || *c == '\\') {
            esc[0] = '\\';
            esc[1] = (char)*c;
            herd_json_put_raw(w, esc, 2);
        } else if (*c < 0x20) {
            snprintf(esc, sizeof esc, "\\u%04x", *c);
            herd_json_put_raw(w, esc, 6);
        } else
            herd_json_put_raw(w, (const char *)c, 1);
    }
    herd_json_put_raw(w, "\"", 1);
}

void herd_json_put_i64(herd_json_writer *w, int64_t v) {
    char b[32];
    int k = snprintf(b, sizeof b, "%" PRId64, v);
    herd_json_put_raw(w, b, (size_t)k);
}

void herd_json_writer_free(herd_json_writer *w) {
    free(w->buf);
    w->buf = NULL;
    w->len = w->cap = 0;
}
