/* Labelled text (text: sources): each file is one class, its documents separated by lines that
 * equal a separator (a fortune file's "%") or one per line; each document becomes len token ids
 * (truncated, or padded with id 0): bytes (id = byte + 1), Unicode code points of UTF-8 text
 * (id = code point + 1, the last id for code points past the vocabulary), or words (runs of
 * letters and digits, ASCII lowercased, hashed into ids 1..vocab-1). The whole set is read once
 * into memory as i32 (len) samples with i32 labels, in a fixed shuffled order. */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "data/text_internal.h"
#include "herd/data.h"
#include "io/input_file.h"

static const char *const tokenizer_names[] = {"byte", "char", "word"};

const char *herdi_text_tokenizer_name(herd_text_tokenizer t) { return tokenizer_names[t]; }

int herd_text_tokenizer_parse(const char *name, herd_text_tokenizer *out) {
    for (int k = 0; k < 3; k++)
        if (!strcmp(name, tokenizer_names[k])) {
            *out = (herd_text_tokenizer)k;
            return 1;
        }
    return 0;
}

static uint32_t word_hash(const unsigned char *w, size_t n) {
    uint32_t h = 2166136261u;
    for (size_t i = 0; i < n; i++) h = (h ^ (uint32_t)tolower(w[i])) * 16777619u;
    return h ^ (h >> 15);
}

/* Document text[0..n) (from line `line` of path) into ids[0..len); returns the tokens it had
 * (more than len: truncated), or -1 with an error. */
static int64_t tokenize(const herd_text_options *o, const char *path, long line, const unsigned char *text, size_t n,
                        int32_t *ids, herd_error *err) {
    int64_t t = 0;
    for (size_t i = 0; i < n;) {
        int32_t id;
        if (o->tokenizer == HERD_TOKENIZE_BYTE) {
            id = (int32_t)text[i++] + 1;
        } else if (o->tokenizer == HERD_TOKENIZE_CHAR) {
            uint32_t cp;
            int k = herdi_utf8_next(text + i, n - i, &cp);
            if (!k) {
                long at = line;
                for (size_t j = 0; j < i; j++) at += text[j] == '\n';
                herd_fail(err, HERD_EFORMAT, "%s:%ld: not valid UTF-8 (byte 0x%02x); --tokenizer char reads UTF-8 text, "
                          "byte reads anything", path, at, text[i]);
                return -1;
            }
            i += (size_t)k;
            id = cp + 1 < (uint32_t)o->vocab ? (int32_t)cp + 1 : o->vocab - 1;
        } else { /* words: runs of letters, digits and non-ASCII bytes */
            while (i < n && text[i] < 0x80 && !isalnum(text[i])) i++;
            size_t b = i;
            while (i < n && (text[i] >= 0x80 || isalnum(text[i]))) i++;
            if (i == b) break;
            id = 1 + (int32_t)(word_hash(text + b, i - b) % (uint32_t)(o->vocab - 1));
        }
        if (t < o->len) ids[t] = id;
        t++;
    }
    for (int64_t k = t; k < o->len; k++) ids[k] = 0;
    return t;
}

static herd_status read_all(const char *path, unsigned char **text, size_t *len, herd_error *err) {
    FILE *f;
    herd_status st = herdi_input_fopen(path, &f, err);
    if (st) return st;
    size_t cap = 1 << 16, n = 0;
    unsigned char *buf = malloc(cap);
    for (size_t got; buf && (got = fread(buf + n, 1, cap - n, f)) > 0;) {
        n += got;
        if (n == cap) {
            unsigned char *grown = cap > SIZE_MAX / 2 ? NULL : realloc(buf, cap * 2);
            if (!grown) free(buf);
            buf = grown, cap *= 2;
        }
    }
    int bad = ferror(f);
    fclose(f);
    if (!buf) return herd_fail(err, HERD_ENOMEM, "%s: out of memory", path);
    if (bad) {
        free(buf);
        return herd_fail(err, HERD_EIO, "%s: read error", path);
    }
    *text = buf, *len = n;
    return HERD_OK;
}

/* rows of len ids, growing */
typedef struct doc_table {
    int32_t *x, *y;
    int64_t n, cap, len;
} doc_table;

static int32_t *doc_push(doc_table *d, int32_t label) {
    if (d->n == d->cap) {
        int64_t cap = d->cap ? 2 * d->cap : 1024;
        int32_t *x = herd_malloc_array((size_t)cap * (size_t)d->len, sizeof *x), *y = herd_malloc_array((size_t)cap, sizeof *y);
        if (!x || !y) {
            free(x), free(y);
            return NULL;
        }
        if (d->n) memcpy(x, d->x, (size_t)(d->n * d->len) * sizeof *x), memcpy(y, d->y, (size_t)d->n * sizeof *y);
        free(d->x), free(d->y);
        d->x = x, d->y = y, d->cap = cap;
    }
    d->y[d->n] = label;
    return d->x + d->n++ * d->len;
}

herd_status herd_text_open(herd_dataset **out, const char *const *paths, int npaths, const herd_text_options *opt,
                           herd_error *err) {
    herd_text_options o = *opt;
    if (o.len <= 0) o.len = 256;
    if (o.tokenizer == HERD_TOKENIZE_BYTE) o.vocab = 257;
    else if (o.vocab <= 0) o.vocab = o.tokenizer == HERD_TOKENIZE_CHAR ? 4096 : 1 << 18;
    *out = NULL;
    if (npaths < 2 || o.len > (1 << 20) || o.vocab < 2)
        return herd_fail(err, HERD_EARG, "%s: text sources take at least two files (one class each), len up to %d and a "
                         "vocabulary of at least 2", npaths ? paths[0] : "text:", 1 << 20);
    doc_table d = {.len = o.len};
    herd_status st = HERD_OK;
    int64_t truncated = 0, tokens = 0;
    size_t sep_len = o.separator ? strlen(o.separator) : 0;
    for (int f = 0; f < npaths && !st; f++) {
        unsigned char *text = NULL;
        size_t n = 0;
        if ((st = read_all(paths[f], &text, &n, err))) break;
        /* documents: the text between separator lines, or each line */
        long line = 1, doc_line = 1;
        size_t doc = 0;
        int64_t docs_here = 0;
        for (size_t i = 0; i <= n && !st;) {
            size_t eol = i;
            while (eol < n && text[eol] != '\n') eol++;
            int is_sep = sep_len ? eol - i == sep_len && !memcmp(text + i, o.separator, sep_len) : 1;
            int at_end = eol >= n;
            if (is_sep || at_end) {
                size_t end = sep_len ? (is_sep ? i : eol) : eol;
                size_t b = doc, e = end;
                while (b < e && isspace(text[b])) b++;
                while (e > b && isspace(text[e - 1])) e--;
                if (e > b) { /* blank stretches (a file's end, doubled separators) are no document */
                    int32_t *row = doc_push(&d, f);
                    if (!row) {
                        st = herd_fail(err, HERD_ENOMEM, "%s: out of memory at document %lld", paths[f],
                                       (long long)d.n);
                        break;
                    }
                    int64_t t = tokenize(&o, paths[f], doc_line, text + b, e - b, row, err);
                    if (t < 0) {
                        st = HERD_EFORMAT;
                        break;
                    }
                    if (t == 0) {
                        st = herd_fail(err, HERD_EFORMAT, "%s:%ld: the document has no %s token", paths[f], doc_line,
                                       tokenizer_names[o.tokenizer]);
                        break;
                    }
                    truncated += t > o.len;
                    tokens += t;
                    docs_here++;
                }
                doc = eol + 1;
                doc_line = line + 1;
            }
            i = eol + 1;
            line++;
        }
        free(text);
        if (!st && !docs_here) st = herd_fail(err, HERD_EFORMAT, "%s: no document", paths[f]);
    }
    if (st) {
        free(d.x), free(d.y);
        return st;
    }
    /* a fixed shuffle (Fisher-Yates, Philox seed 0): files come class after class, and a
     * --val-split (the last samples) would otherwise be one class */
    herd_rng r;
    herd_rng_init(&r, 0, 0x74657874);
    int32_t *tmp = malloc((size_t)o.len * sizeof *tmp);
    if (!tmp) {
        free(d.x), free(d.y);
        return herd_fail(err, HERD_ENOMEM, "%s: out of memory", paths[0]);
    }
    for (int64_t i = d.n - 1; i > 0; i--) {
        int64_t j = (int64_t)(((uint64_t)herd_rng_u32(&r) << 32 | herd_rng_u32(&r)) % (uint64_t)(i + 1));
        int32_t yl = d.y[i];
        d.y[i] = d.y[j], d.y[j] = yl;
        memcpy(tmp, d.x + i * o.len, (size_t)o.len * sizeof *tmp);
        memcpy(d.x + i * o.len, d.x + j * o.len, (size_t)o.len * sizeof *tmp);
        memcpy(d.x + j * o.len, tmp, (size_t)o.len * sizeof *tmp);
    }
    free(tmp);
    int64_t xd[2] = {d.n, o.len};
    const char *src = paths[0];
    st = herd_dataset_from_memory(out, herd_tensor_make(HERD_I32, 2, xd, d.x), herd_tensor_make(HERD_I32, 1, &d.n, d.y),
                                  npaths, src, err);
    if (st) return st;
    snprintf((*out)->source, sizeof (*out)->source, "text:%.480s%s", paths[0], npaths > 1 ? ",..." : "");
    snprintf((*out)->note, sizeof (*out)->note, "%lld documents in %d classes, %s tokens (ids 1..%d, 0 pads), %.1f a "
             "document, %lld truncated to %d", (long long)d.n, npaths, tokenizer_names[o.tokenizer], o.vocab - 1,
             (double)tokens / (double)d.n, (long long)truncated, o.len);
    return HERD_OK;
}
