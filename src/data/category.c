/* Categorical columns (category.h): per column, an open-addressing set of the distinct values
 * seen (FNV-1a hashes, linear probing, doubling at half full) that gives vocabulary ids in order
 * of first appearance, or, with hash=N, the values' seeded hashes modulo N and a bitmap of the
 * rows used (for the collision rate). */
#include "data/category.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct cat_entry {
    char *text; /* NUL-terminated copy; NULL = empty slot */
    size_t len;
    uint64_t hash;
    int32_t id;
} cat_entry;

struct category_column {
    cat_entry *slots;
    int64_t cap, count;
    uint8_t *used;       /* hash mode: a bit per row */
    int64_t rows_used;
};

static uint64_t fnv1a(uint64_t h, const void *p, size_t n) {
    const uint8_t *b = p;
    for (size_t i = 0; i < n; i++) h = (h ^ b[i]) * 0x100000001b3ULL;
    return h;
}

/* splitmix64's finaliser: the low bits of FNV alone are weak for a modulus */
static uint64_t mix(uint64_t z) {
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

herd_status herdi_categories_init(categories *c, const char *list, int64_t hash_rows, uint64_t seed, const char *source,
                            herd_error *err) {
    memset(c, 0, sizeof *c);
    c->hash_rows = hash_rows, c->seed = seed;
    if (hash_rows < 0 || hash_rows > INT32_MAX)
        return herd_fail(err, HERD_EARG, "%s: hash=%lld is out of range 1..%d", source, (long long)hash_rows, INT32_MAX);
    for (const char *p = list; p && *p;) {
        size_t len = strcspn(p, ","), name = strcspn(p, ":,");
        if (!name || name >= sizeof c->names[0])
            return herd_fail(err, HERD_EARG, "%s: cat= names columns separated by commas (each up to 127 bytes)", source);
        if (c->n == HERD_MAX_FIELDS) {
            herdi_categories_free(c);
            return herd_fail(err, HERD_EARG, "%s: more than %d categorical columns", source, HERD_MAX_FIELDS);
        }
        memcpy(c->names[c->n], p, name);
        c->names[c->n][name] = 0;
        int bag = 1;
        if (name < len) { /* NAME:L, a bag of up to L values */
            char *end;
            long v = strtol(p + name + 1, &end, 10);
            if (end != p + len || p[name + 1] < '1' || p[name + 1] > '9' || v > 65536) {
                herdi_categories_free(c);
                return herd_fail(err, HERD_EARG, "%s: cat=%.*s: a bag column is NAME:L with L in 1..65536 (its most values a row)",
                                 source, (int)len, p);
            }
            bag = (int)v;
        }
        if (herdi_categories_find(c, c->names[c->n]) >= 0) {
            herdi_categories_free(c);
            return herd_fail(err, HERD_EARG, "%s: categorical column '%s' is named twice", source, c->names[c->n]);
        }
        if (!(c->col[c->n] = calloc(1, sizeof *c->col[c->n])) ||
            (hash_rows && !(c->col[c->n]->used = calloc((size_t)(hash_rows + 7) / 8, 1)))) {
            c->n++;
            herdi_categories_free(c);
            return herd_fail(err, HERD_ENOMEM, "%s: out of memory for categorical columns", source);
        }
        c->len[c->n] = bag, c->bag[c->n] = name < len, c->at[c->n] = c->ids;
        c->ids += bag;
        c->n++;
        p += len + (p[len] == ',');
    }
    return HERD_OK;
}

void herdi_categories_free(categories *c) {
    for (int k = 0; k < c->n; k++) {
        category_column *col = c->col[k];
        if (!col) continue;
        for (int64_t i = 0; i < col->cap; i++) free(col->slots[i].text);
        free(col->slots);
        free(col->used);
        free(col);
        c->col[k] = NULL;
    }
    c->n = c->ids = 0;
}

int herdi_categories_find(const categories *c, const char *name) {
    for (int k = 0; k < c->n; k++)
        if (!strcmp(c->names[k], name)) return k;
    return -1;
}

static int grow(category_column *col) {
    int64_t cap = col->cap ? col->cap * 2 : 1024;
    cat_entry *s = calloc((size_t)cap, sizeof *s);
    if (!s) return 0;
    for (int64_t i = 0; i < col->cap; i++) {
        if (!col->slots[i].text) continue;
        int64_t j = (int64_t)(col->slots[i].hash & (uint64_t)(cap - 1));
        while (s[j].text) j = (j + 1) & (cap - 1);
        s[j] = col->slots[i];
    }
    free(col->slots);
    col->slots = s, col->cap = cap;
    return 1;
}

int32_t herdi_categories_id(categories *c, int k, const char *text, size_t len) {
    category_column *col = c->col[k];
    uint64_t h = fnv1a(0xcbf29ce484222325ULL, text, len);
    if (2 * (col->count + 1) > col->cap && !grow(col)) return -1;
    int64_t j = (int64_t)(h & (uint64_t)(col->cap - 1));
    while (col->slots[j].text) {
        if (col->slots[j].hash == h && col->slots[j].len == len && !memcmp(col->slots[j].text, text, len))
            return col->slots[j].id;
        j = (j + 1) & (col->cap - 1);
    }
    cat_entry *e = &col->slots[j];
    if (!(e->text = malloc(len + 1))) return -1;
    memcpy(e->text, text, len);
    e->text[len] = 0;
    e->len = len, e->hash = h;
    if (c->hash_rows) { /* the seed and the column's name keep columns' hashes apart */
        uint64_t s = fnv1a(fnv1a(0xcbf29ce484222325ULL, &c->seed, sizeof c->seed), c->names[k], strlen(c->names[k]) + 1);
        e->id = (int32_t)(mix(fnv1a(s, text, len)) % (uint64_t)c->hash_rows);
        if (!(col->used[e->id / 8] & (1u << (e->id % 8)))) col->used[e->id / 8] |= (uint8_t)(1u << (e->id % 8)), col->rows_used++;
    } else {
        e->id = (int32_t)col->count;
    }
    col->count++;
    return e->id;
}

herd_status herdi_categories_put(categories *c, int k, const char *text, size_t len, int32_t *row, const char *where,
                           herd_error *err) {
    int32_t *ids = row + c->at[k];
    if (!c->bag[k] && (ids[0] = herdi_categories_id(c, k, text, len)) >= 0) return HERD_OK;
    int n = 0;
    for (size_t i = 0; c->bag[k] && i < len;) { /* a bag: blank-separated values */
        while (i < len && (text[i] == ' ' || text[i] == '\t')) i++;
        size_t j = i;
        while (j < len && text[j] != ' ' && text[j] != '\t') j++;
        if (j == i) break;
        if (n == c->len[k])
            return herd_fail(err, HERD_EFORMAT, "%s: column '%s': more than the bag's %d values (cat=%s:%d)", where,
                             c->names[k], c->len[k], c->names[k], c->len[k]);
        if ((ids[n++] = herdi_categories_id(c, k, text + i, j - i)) < 0) break;
        i = j;
    }
    if (!c->bag[k] || (n && ids[n - 1] < 0))
        return herd_fail(err, HERD_ENOMEM, "%s: out of memory for the values of column '%s'", where, c->names[k]);
    if (!n) return herd_fail(err, HERD_EFORMAT, "%s: column '%s': an empty bag (no values)", where, c->names[k]);
    for (int j = n; j < c->len[k]; j++) ids[j] = HERD_NO_ID;
    return HERD_OK;
}

void herdi_categories_describe(const categories *c, char *buf, size_t size) {
    size_t at = 0;
    buf[0] = 0;
    for (int k = 0; k < c->n && at < size; k++) {
        const category_column *col = c->col[k];
        int w;
        if (c->hash_rows)
            w = snprintf(buf + at, size - at, "%s%s: %lld values hashed into %lld rows, %.1f%% of them collide", k ? "; " : "",
                         c->names[k], (long long)col->count, (long long)c->hash_rows,
                         col->count ? 100.0 * (double)(col->count - col->rows_used) / (double)col->count : 0.0);
        else
            w = snprintf(buf + at, size - at, "%s%s: %lld values, ids 0..%lld", k ? "; " : "", c->names[k],
                         (long long)col->count, (long long)col->count - 1);
        if (w < 0) break;
        at += (size_t)w;
    }
}

int herdi_categories_columns(const categories *c, const char *const *names, int ncols, int label_at, int *role,
                       const char *where, herd_error *err) {
    int features = 0, found[HERD_MAX_FIELDS] = {0};
    for (int i = 0; i < ncols; i++) {
        int k = i == label_at ? -1 : herdi_categories_find(c, names[i]);
        role[i] = i == label_at ? CAT_LABEL : k >= 0 ? k : CAT_FEATURE;
        if (k >= 0 && found[k]++) {
            herd_fail(err, HERD_EFORMAT, "%s: categorical column '%s' appears twice", where, names[i]);
            return -1;
        }
        features += role[i] == CAT_FEATURE;
    }
    for (int k = 0; k < c->n; k++)
        if (!found[k]) {
            herd_fail(err, HERD_EFORMAT, "%s: no column named '%s' (cat=)", where, c->names[k]);
            return -1;
        }
    if (!features && !c->n) {
        herd_fail(err, HERD_EFORMAT, "%s: only the label column, no features", where);
        return -1;
    }
    return features;
}
