/* Splitting text into language-model tokens (bytes, UTF-8 code points or words) and the map of
 * token bytes that the token file writer counts with and its reader encodes prompts with. */
#include <stdlib.h>
#include <string.h>

#include "data/text_internal.h"
#include "data/tokens_format.h"

static int is_word_byte(unsigned char c) { return c >= 0x80 || (c >= '0' && c <= '9') || ((c | 32) >= 'a' && (c | 32) <= 'z'); }
static int is_space(unsigned char c) { return c == ' ' || c == '\n' || c == '\t' || c == '\r' || c == '\f' || c == '\v'; }

int herdi_tokens_lex(herd_text_tokenizer kind, const unsigned char *s, size_t n, size_t *i, size_t *b, size_t *e) {
    size_t p = *i;
    if (kind == HERD_TOKENIZE_WORD)
        while (p < n && is_space(s[p])) p++;
    if (p >= n) return *i = p, 0;
    *b = p;
    if (kind == HERD_TOKENIZE_BYTE) {
        p++;
    } else if (kind == HERD_TOKENIZE_CHAR) {
        uint32_t cp;
        int k = herdi_utf8_next(s + p, n - p, &cp);
        if (!k) return *i = p, -1;
        p += (size_t)k;
    } else if (is_word_byte(s[p])) { /* words: runs of letters, digits and non-ASCII bytes; any other byte alone */
        while (p < n && p - *b < TOKENS_WORD_MAX && is_word_byte(s[p])) p++;
    } else {
        p++;
    }
    *e = p, *i = p;
    return 1;
}

static uint64_t fnv(const unsigned char *k, size_t n) {
    uint64_t h = 1469598103934665603ULL;
    for (size_t i = 0; i < n; i++) h = (h ^ k[i]) * 1099511628211ULL;
    return h ^ (h >> 29);
}

int64_t herdi_token_map_find(const token_map *m, const unsigned char *key, size_t len) {
    if (!m->n_slots) return -1;
    for (size_t s = fnv(key, len) & (m->n_slots - 1);; s = (s + 1) & (m->n_slots - 1)) {
        int32_t k = m->slots[s];
        if (k < 0) return -1;
        const struct token_entry *t = &m->entries[k];
        if (t->len == len && !memcmp(m->bytes + t->off, key, len)) return k;
    }
}

static int grow_slots(token_map *m) {
    size_t ns = m->n_slots ? m->n_slots * 2 : 1024;
    int32_t *slots = malloc(ns * sizeof *slots);
    if (!slots) return -1;
    memset(slots, 0xff, ns * sizeof *slots);
    for (size_t k = 0; k < m->n; k++) {
        const struct token_entry *t = &m->entries[k];
        size_t s = fnv(m->bytes + t->off, t->len) & (ns - 1);
        while (slots[s] >= 0) s = (s + 1) & (ns - 1);
        slots[s] = (int32_t)k;
    }
    free(m->slots);
    m->slots = slots, m->n_slots = ns;
    return 0;
}

int herdi_token_map_add(token_map *m, const unsigned char *key, size_t len, uint64_t add) {
    int64_t k = herdi_token_map_find(m, key, len);
    if (k >= 0) return m->entries[k].value += add, 0;
    if (len > UINT16_MAX || m->n >= INT32_MAX / 2) return -1;
    if ((m->n + 1) * 2 > m->n_slots && grow_slots(m)) return -1;
    if (m->n == m->cap_entries) {
        size_t cap = m->cap_entries ? 2 * m->cap_entries : 256;
        void *p = realloc(m->entries, cap * sizeof *m->entries);
        if (!p) return -1;
        m->entries = p, m->cap_entries = cap;
    }
    if (m->n_bytes + len > m->cap_bytes) {
        size_t cap = m->cap_bytes ? 2 * m->cap_bytes : 4096;
        while (cap < m->n_bytes + len) cap *= 2;
        if (cap > UINT32_MAX) return -1;
        void *p = realloc(m->bytes, cap);
        if (!p) return -1;
        m->bytes = p, m->cap_bytes = cap;
    }
    memcpy(m->bytes + m->n_bytes, key, len);
    m->entries[m->n] = (struct token_entry){add, (uint32_t)m->n_bytes, (uint16_t)len};
    m->n_bytes += len;
    size_t s = fnv(key, len) & (m->n_slots - 1);
    while (m->slots[s] >= 0) s = (s + 1) & (m->n_slots - 1);
    m->slots[s] = (int32_t)m->n++;
    return 0;
}

void herdi_token_map_free(token_map *m) {
    free(m->entries), free(m->slots), free(m->bytes);
    memset(m, 0, sizeof *m);
}
