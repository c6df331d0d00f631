/* Reading token files (.tok, tokens_format.h): the file is memory-mapped, open checks the header
 * and the vocabulary only; ids are read (and checked against the vocabulary) as windows are asked
 * for. Also text to ids (prompts) and ids to text (generation) with the file's vocabulary. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "data/text_internal.h"
#include "data/tokens_format.h"
#include "io/crc32c.h"
#include "io/input_file.h"

struct herd_tokens {
    char *path;
    uint8_t *map;
    size_t map_len;
    herd_text_tokenizer kind;
    int vocab, width, has_unk;
    int64_t count;
    const uint8_t *ids;
    uint32_t *entry_at; /* vocab + 1 offsets into the vocabulary bytes (entries' text) */
    const uint8_t *vbytes;
    token_map lookup;   /* entry text -> id (char, word) */
};

static uint64_t get_le(const uint8_t *p, int bytes) {
    uint64_t v = 0;
    for (int i = 0; i < bytes; i++) v |= (uint64_t)p[i] << (8 * i);
    return v;
}

void herd_tokens_close(herd_tokens *t) {
    if (!t) return;
    if (t->map) munmap(t->map, t->map_len);
    free(t->path);
    free(t->entry_at);
    herdi_token_map_free(&t->lookup);
    free(t);
}

/* Checks the vocabulary: V entries filling vlen bytes exactly, in strictly increasing byte order
 * (the unknown entry, last, aside), each a token its tokenizer would make. */
static herd_status read_vocab(herd_tokens *t, size_t vlen, herd_error *err) {
    if (!(t->entry_at = malloc(((size_t)t->vocab + 1) * sizeof *t->entry_at)))
        return herd_fail(err, HERD_ENOMEM, "%s: out of memory", t->path);
    size_t at = 0;
    for (int id = 0; id < t->vocab; id++) {
        if (vlen - at < 2) return herd_fail(err, HERD_EFORMAT, "%s: vocabulary ends at entry %d of %d", t->path, id, t->vocab);
        size_t n = (size_t)get_le(t->vbytes + at, 2);
        if (n == 0 || n > vlen - at - 2)
            return herd_fail(err, HERD_EFORMAT, "%s: vocabulary entry %d: length %zu does not fit", t->path, id, n);
        const unsigned char *s = t->vbytes + at + 2;
        t->entry_at[id] = (uint32_t)(at + 2);
        int unk = t->has_unk && id == t->vocab - 1;
        size_t i = 0, b, e;
        if (!unk && (herdi_tokens_lex(t->kind, s, n, &i, &b, &e) != 1 || b != 0 || e != n))
            return herd_fail(err, HERD_EFORMAT, "%s: vocabulary entry %d is not one %s token", t->path, id,
                             herdi_text_tokenizer_name(t->kind));
        if (!unk && id > 0) {
            size_t pn = t->entry_at[id] - 2 - t->entry_at[id - 1];
            const unsigned char *p = t->vbytes + t->entry_at[id - 1];
            int c = memcmp(p, s, pn < n ? pn : n);
            if (c > 0 || (c == 0 && pn >= n))
                return herd_fail(err, HERD_EFORMAT, "%s: vocabulary entry %d is out of order", t->path, id);
        }
        if (!unk && herdi_token_map_add(&t->lookup, s, n, (uint64_t)id))
            return herd_fail(err, HERD_ENOMEM, "%s: out of memory", t->path);
        at += 2 + n;
    }
    if (at != vlen) return herd_fail(err, HERD_EFORMAT, "%s: %zu bytes after the vocabulary's last entry", t->path, vlen - at);
    t->entry_at[t->vocab] = (uint32_t)(at + 2);
    return HERD_OK;
}

herd_status herd_tokens_open(herd_tokens **out, const char *path, herd_error *err) {
    *out = NULL;
    herd_tokens *t = calloc(1, sizeof *t);
    if (!t || !(t->path = strdup(path))) {
        free(t);
        return herd_fail(err, HERD_ENOMEM, "%s: out of memory", path);
    }
    herd_status st;
    struct stat sb;
    int fd;
    if ((st = herdi_input_open(path, &fd, &sb, err))) goto fail;
    if (sb.st_size < (off_t)TOKENS_HEADER) {
        close(fd);
        st = herd_fail(err, HERD_EFORMAT, "%s: not a token file (shorter than its 72-byte header)", path);
        goto fail;
    }
    t->map_len = (size_t)sb.st_size;
    void *map = mmap(NULL, t->map_len, PROT_READ, MAP_PRIVATE, fd, 0);
    close(fd);
    if (map == MAP_FAILED) {
        st = herd_fail(err, HERD_EIO, "%s: cannot map: %s", path, strerror(errno));
        goto fail;
    }
    t->map = map;
    const uint8_t *h = t->map;
    if (memcmp(h, TOKENS_MAGIC, 8)) {
        st = herd_fail(err, HERD_EFORMAT, "%s: bad magic '%.8s' (expected %s: not a token file from herd convert "
                       "--tokenizer)", path, (const char *)h, TOKENS_MAGIC);
        goto fail;
    }
    if (herd_crc32c(0, h, 68) != (uint32_t)get_le(h + 68, 4)) {
        st = herd_fail(err, HERD_EFORMAT, "%s: header CRC mismatch (stored %08x, computed %08x)", path,
                       (unsigned)get_le(h + 68, 4), herd_crc32c(0, h, 68));
        goto fail;
    }
    uint32_t version = (uint32_t)get_le(h + 8, 4), kind = (uint32_t)get_le(h + 12, 4), flags = (uint32_t)get_le(h + 56, 4);
    uint64_t V = get_le(h + 16, 4), width = get_le(h + 20, 4), n = get_le(h + 24, 8), voff = get_le(h + 32, 8),
             vlen = get_le(h + 40, 8), ioff = get_le(h + 48, 8);
    if (version != TOKENS_VERSION) {
        st = herd_fail(err, HERD_EFORMAT, "%s: version %u (this herd reads version %u)", path, version, TOKENS_VERSION);
        goto fail;
    }
    if (kind > HERD_TOKENIZE_WORD || flags > TOKENS_HAS_UNK || V < 2 || V > (1u << 30) ||
        (kind == HERD_TOKENIZE_BYTE ? V != 256 || vlen || flags : vlen < 3 * V) || width != (V <= 65536 ? 2u : 4u) ||
        voff != TOKENS_HEADER || vlen > t->map_len - voff || ioff < voff + vlen || ioff % 8 || ioff > t->map_len ||
        n < 1 || n > (t->map_len - ioff) / width) {
        st = herd_fail(err, HERD_EFORMAT, "%s: inconsistent header (tokenizer %u, vocabulary %llu, %llu-byte ids, %llu "
                       "ids at %llu, vocabulary %llu bytes at %llu; the file has %zu bytes)", path, kind,
                       (unsigned long long)V, (unsigned long long)width, (unsigned long long)n,
                       (unsigned long long)ioff, (unsigned long long)vlen, (unsigned long long)voff, t->map_len);
        goto fail;
    }
    t->kind = (herd_text_tokenizer)kind, t->vocab = (int)V, t->width = (int)width, t->count = (int64_t)n;
    t->has_unk = flags & TOKENS_HAS_UNK;
    t->vbytes = t->map + voff, t->ids = t->map + ioff;
    if (herd_crc32c(0, t->vbytes, vlen) != (uint32_t)get_le(h + 60, 4)) {
        st = herd_fail(err, HERD_EFORMAT, "%s: vocabulary CRC mismatch", path);
        goto fail;
    }
    if (kind != HERD_TOKENIZE_BYTE && (st = read_vocab(t, vlen, err))) goto fail;
    *out = t;
    return HERD_OK;
fail:
    herd_tokens_close(t);
    return st;
}

int64_t herd_tokens_count(const herd_tokens *t) { return t->count; }
int herd_tokens_vocab(const herd_tokens *t) { return t->vocab; }
herd_text_tokenizer herd_tokens_tokenizer(const herd_tokens *t) { return t->kind; }
const char *herd_tokens_path(const herd_tokens *t) { return t->path; }

herd_status herd_tokens_read(const herd_tokens *t, int64_t first, int64_t n, int32_t *out, herd_error *err) {
    if (first < 0 || n < 0 || first > t->count - n)
        return herd_fail(err, HERD_EARG, "%s: ids [%lld, %lld) outside the file's %lld", t->path, (long long)first,
                         (long long)(first + n), (long long)t->count);
    const uint8_t *p = t->ids + (size_t)first * (size_t)t->width;
    for (int64_t i = 0; i < n; i++) {
        uint32_t id = t->width == 2 ? (uint32_t)p[2 * i] | (uint32_t)p[2 * i + 1] << 8 : (uint32_t)get_le(p + 4 * i, 4);
        if (id >= (uint32_t)t->vocab)
            return herd_fail(err, HERD_EFORMAT, "%s: id %u at position %lld is outside the vocabulary of %d", t->path,
                             id, (long long)(first + i), t->vocab);
        out[i] = (int32_t)id;
    }
    return HERD_OK;
}

herd_status herd_tokens_encode(const herd_tokens *t, const char *text, size_t len, int32_t *ids, int64_t cap,
                               int64_t *n, herd_error *err) {
    const unsigned char *s = (const unsigned char *)text;
    size_t i = 0, b, e;
    int r;
    *n = 0;
    while ((r = herdi_tokens_lex(t->kind, s, len, &i, &b, &e)) > 0) {
        int64_t id = t->kind == HERD_TOKENIZE_BYTE ? s[b] : herdi_token_map_find(&t->lookup, s + b, e - b);
        if (id >= 0 && t->kind != HERD_TOKENIZE_BYTE) id = (int64_t)t->lookup.entries[id].value;
        if (id < 0 && t->has_unk) id = t->vocab - 1;
        if (id < 0)
            return herd_fail(err, HERD_EARG, "%s: '%.*s' (byte %zu of the text) is not in the vocabulary of %d %s "
                             "tokens", t->path, (int)(e - b), (const char *)s + b, b, t->vocab,
                             herdi_text_tokenizer_name(t->kind));
        if (*n >= cap) return herd_fail(err, HERD_EARG, "%s: the text is longer than %lld tokens", t->path, (long long)cap);
        ids[(*n)++] = (int32_t)id;
    }
    if (r < 0)
        return herd_fail(err, HERD_EARG, "%s: the text is not valid UTF-8 at byte %zu (0x%02x); the file's tokens are "
                         "UTF-8 characters", t->path, i, s[i]);
    return HERD_OK;
}

size_t herd_tokens_decode(const herd_tokens *t, int32_t id, char *buf, size_t size) {
    if (id < 0 || id >= t->vocab || !size) return 0;
    const char *s = (const char *)&(unsigned char){(unsigned char)id};
    size_t n = 1;
    if (t->kind != HERD_TOKENIZE_BYTE) {
        s = (const char *)t->vbytes + t->entry_at[id];
        n = t->entry_at[id + 1] - 2 - t->entry_at[id];
    }
    size_t w = t->kind == HERD_TOKENIZE_WORD ? n + 1 : n;
    if (w >= size) w = size - 1;
    memcpy(buf, s, w < n ? w : n);
    if (w > n) buf[n] = ' ';
    buf[w] = 0;
    return w;
}
