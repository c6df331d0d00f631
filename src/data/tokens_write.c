/* herd convert text:FILES DST --tokenizer byte|char|word: a text into a token file (.tok, see
 * tokens_format.h). The text streams through in pieces of PIECE bytes cut where a token cannot
 * straddle them (before a UTF-8 lead byte, after a byte that ends a word), so memory is
 * (threads + 1) pieces and their ids whatever the file's size. Char and word vocabularies take a
 * first pass that counts every token. Pieces are cut the same way for any thread count and each
 * is tokenized alone, so the file is byte-identical for any --threads. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "data/text_internal.h"
#include "data/tokens_format.h"
#include "io/atomic_file.h"
#include "io/crc32c.h"
#include "io/input_file.h"

#define PIECE ((size_t)4 << 20)

static void put_le(uint8_t *p, uint64_t v, int bytes) {
    for (int i = 0; i < bytes; i++) p[i] = (uint8_t)(v >> (8 * i));
}

/* ---- the text, piece by piece ---- */

typedef struct piece {
    const unsigned char *s;
    size_t n;
    long line; /* of its first byte */
    int file;
} piece;

typedef struct text_stream {
    const char *const *paths;
    int npaths, file;
    FILE *f;
    unsigned char *buf;
    size_t cap, filled, carry_at; /* buf[carry_at..filled) is the start of the next piece */
    long line;
    int eof;
    herd_text_tokenizer kind;
} text_stream;

/* Where to end a piece of s[0..n) (n = PIECE, more follows) so that no token straddles the cut. */
static size_t cut_at(herd_text_tokenizer kind, const unsigned char *s, size_t n) {
    if (kind == HERD_TOKENIZE_BYTE) return n;
    if (kind == HERD_TOKENIZE_CHAR) {
        size_t c = n;
        while (c > n - 4 && (s[c] & 0xC0) == 0x80) c--; /* s[n] exists: the caller holds more */
        return c;
    }
    for (size_t c = n; c > n / 2; c--) /* after a byte no word token continues past */
        if (!(s[c - 1] >= 0x80 || (s[c - 1] >= '0' && s[c - 1] <= '9') || ((s[c - 1] | 32) >= 'a' && (s[c - 1] | 32) <= 'z')))
            return c;
    return n; /* half a piece of one word: cut it (the same for any thread count) */
}

/* Up to max pieces into out; *got 0 at the end of the last file. */
static herd_status stream_pieces(text_stream *t, piece *out, int max, int *got, herd_error *err) {
    *got = 0;
    /* keep the carried start of a piece, refill behind it */
    memmove(t->buf, t->buf + t->carry_at, t->filled - t->carry_at);
    t->filled -= t->carry_at, t->carry_at = 0;
    while (*got < max) {
        if (!t->f && !t->eof) {
            if (t->file >= t->npaths) break;
            int fd;
            herd_status st = herdi_input_open(t->paths[t->file], &fd, NULL, err);
            if (st) return st;
            if (!(t->f = fdopen(fd, "rb"))) {
                close(fd);
                return herd_fail(err, HERD_ENOMEM, "%s: out of memory", t->paths[t->file]);
            }
            t->line = 1;
        }
        if (!t->eof && t->filled < t->cap) {
            t->filled += fread(t->buf + t->filled, 1, t->cap - t->filled, t->f);
            if (ferror(t->f)) return herd_fail(err, HERD_EIO, "%s: read error", t->paths[t->file]);
            if (t->filled < t->cap) t->eof = 1;
        }
        size_t at = t->carry_at;
        if (t->filled - at > PIECE || (t->eof && t->filled > at)) {
            size_t n = t->filled - at > PIECE ? cut_at(t->kind, t->buf + at, PIECE) : t->filled - at;
            piece *p = &out[(*got)++];
            *p = (piece){t->buf + at, n, t->line, t->file};
            for (size_t i = 0; i < n; i++) t->line += p->s[i] == '\n';
            t->carry_at = at + n;
            continue;
        }
        if (t->eof) { /* this file is done: the next piece starts a new file, after the current ones are used */
            if (*got) break;
            fclose(t->f);
            t->f = NULL, t->eof = 0, t->file++;
            t->filled = t->carry_at = 0;
            continue;
        }
        break; /* the buffer holds less than a piece and the file goes on: refill next call */
    }
    return HERD_OK;
}

/* ---- the two passes, a piece per task ---- */

typedef struct pass_ctx {
    herd_text_tokenizer kind;
    const piece *pieces;
    token_map *maps;        /* counting: one per thread */
    const token_map *vocab; /* ids: token bytes -> id */
    int32_t unk;            /* id of tokens outside the vocabulary (-1: none) */
    int32_t ascii_id[128];  /* char: the id of each ASCII character (its map lookup done once) */
    uint32_t **ids;         /* ids: one buffer per piece */
    size_t *count, *unknown;
    long *bad;              /* a piece's first invalid UTF-8 byte offset, or -1; -2 out of memory */
} pass_ctx;

static void count_pieces(void *vctx, int64_t begin, int64_t end, int thread) {
    pass_ctx *c = vctx;
    for (int64_t k = begin; k < end; k++) {
        const piece *p = &c->pieces[k];
        size_t i = 0, b, e;
        int r = 0;
        uint64_t ascii[128] = {0}; /* char: ASCII counted in an array, added to the map once a piece */
        c->bad[k] = -1;
        for (;;) {
            if (c->kind == HERD_TOKENIZE_CHAR && i < p->n && p->s[i] < 0x80) {
                ascii[p->s[i++]]++;
                continue;
            }
            if ((r = herdi_tokens_lex(c->kind, p->s, p->n, &i, &b, &e)) <= 0) break;
            if (herdi_token_map_add(&c->maps[thread], p->s + b, e - b, 1)) {
                c->bad[k] = -2;
                return;
            }
        }
        for (int a = 0; a < 128; a++)
            if (ascii[a] && herdi_token_map_add(&c->maps[thread], &(unsigned char){(unsigned char)a}, 1, ascii[a])) {
                c->bad[k] = -2;
                return;
            }
        if (r < 0) c->bad[k] = (long)i;
    }
}

static void id_pieces(void *vctx, int64_t begin, int64_t end, int thread) {
    (void)thread;
    pass_ctx *c = vctx;
    for (int64_t k = begin; k < end; k++) {
        const piece *p = &c->pieces[k];
        size_t i = 0, b, e, n = 0, unk = 0;
        int r;
        c->bad[k] = -1;
        for (;;) {
            int64_t id;
            if (c->kind == HERD_TOKENIZE_CHAR && i < p->n && p->s[i] < 0x80) {
                id = c->ascii_id[p->s[i++]];
                r = 1;
            } else {
                if ((r = herdi_tokens_lex(c->kind, p->s, p->n, &i, &b, &e)) <= 0) break;
                id = c->kind == HERD_TOKENIZE_BYTE ? p->s[b] : herdi_token_map_find(c->vocab, p->s + b, e - b);
                if (id >= 0 && c->kind != HERD_TOKENIZE_BYTE) id = (int64_t)c->vocab->entries[id].value;
            }
            if (id < 0) id = c->unk, unk++;
            c->ids[k][n++] = (uint32_t)id;
        }
        if (r < 0) c->bad[k] = (long)i;
        c->count[k] = n, c->unknown[k] = unk;
    }
}

static herd_status bad_utf8(const piece *p, long off, const char *path, herd_error *err) {
    long line = p->line;
    for (long j = 0; j < off; j++) line += p->s[j] == '\n';
    return herd_fail(err, HERD_EFORMAT, "%s:%ld: not valid UTF-8 (byte 0x%02x); --tokenizer char reads UTF-8 text, "
                     "byte reads anything", path, line, p->s[off]);
}

/* Runs fn over the whole text, threads pieces at a time; each_batch (NULL: none) then sees them in order. */
static herd_status run_pass(text_stream *t, herd_pool *pool, int threads, piece *pieces, pass_ctx *c,
                            herd_range_fn fn, herd_status (*each_batch)(void *, int, herd_error *), void *user,
                            herd_error *err) {
    herd_status st;
    for (;;) {
        int got;
        if ((st = stream_pieces(t, pieces, threads, &got, err))) return st;
        if (!got) return HERD_OK;
        herd_pool_for(pool, got, fn, c);
        for (int k = 0; k < got; k++) {
            if (c->bad[k] == -2) return herd_fail(err, HERD_ENOMEM, "%s: out of memory counting tokens", t->paths[pieces[k].file]);
            if (c->bad[k] >= 0) return bad_utf8(&pieces[k], c->bad[k], t->paths[pieces[k].file], err);
        }
        if (each_batch && (st = each_batch(user, got, err))) return st;
    }
}

static herd_status stream_open(text_stream *t, const char *const *paths, int npaths, herd_text_tokenizer kind,
                               int threads, herd_error *err) {
    memset(t, 0, sizeof *t);
    t->paths = paths, t->npaths = npaths, t->kind = kind;
    t->cap = (size_t)(threads + 1) * PIECE;
    if (!(t->buf = malloc(t->cap))) return herd_fail(err, HERD_ENOMEM, "%s: out of memory", paths[0]);
    return HERD_OK;
}

static void stream_close(text_stream *t) {
    if (t->f) fclose(t->f);
    free(t->buf);
    t->f = NULL, t->buf = NULL;
}

/* ---- choosing the vocabulary ---- */

typedef struct vocab_pick {
    const token_map *m;
} vocab_pick;
static const token_map *sort_map; /* qsort has no context argument; only the writer's thread sorts */

static int by_count(const void *a, const void *b) {
    const struct token_entry *x = &sort_map->entries[*(const int32_t *)a], *y = &sort_map->entries[*(const int32_t *)b];
    if (x->value != y->value) return x->value > y->value ? -1 : 1;
    size_t n = x->len < y->len ? x->len : y->len;
    int c = memcmp(sort_map->bytes + x->off, sort_map->bytes + y->off, n);
    return c ? c : (x->len > y->len) - (x->len < y->len);
}

static int by_bytes(const void *a, const void *b) {
    const struct token_entry *x = &sort_map->entries[*(const int32_t *)a], *y = &sort_map->entries[*(const int32_t *)b];
    size_t n = x->len < y->len ? x->len : y->len;
    int c = memcmp(sort_map->bytes + x->off, sort_map->bytes + y->off, n);
    return c ? c : (x->len > y->len) - (x->len < y->len);
}

/* ---- the writer ---- */

typedef struct write_ctx {
    pass_ctx *c;
    io_atomic *f;
    int width;
    uint8_t *out;
    int64_t tokens, unknown;
} write_ctx;

static herd_status write_batch(void *user, int got, herd_error *err) {
    write_ctx *w = user;
    for (int k = 0; k < got; k++) {
        size_t n = w->c->count[k];
        for (size_t i = 0; i < n; i++) put_le(w->out + i * (size_t)w->width, w->c->ids[k][i], w->width);
        herd_status st = herdi_io_atomic_write(w->f, w->out, n * (size_t)w->width, err);
        if (st) return st;
        w->tokens += (int64_t)n, w->unknown += (int64_t)w->c->unknown[k];
    }
    return HERD_OK;
}

herd_status herd_tokens_write(const char *dst, const char *const *paths, int npaths, const herd_tokens_options *opt,
                              herd_tokens_info *info, herd_error *err) {
    herd_text_tokenizer kind = opt->tokenizer;
    int threads = opt->threads > 0 ? opt->threads : 1;
    if (npaths < 1) return herd_fail(err, HERD_EARG, "%s: no text files given", dst);
    if (opt->vocab < 0 || (opt->vocab && opt->vocab < 2) || (kind == HERD_TOKENIZE_BYTE && opt->vocab && opt->vocab != 256))
        return herd_fail(err, HERD_EARG, "%s: --vocab %d: a vocabulary takes at least 2 ids (byte tokens always 256)",
                         paths[0], opt->vocab);
    herd_status st;
    text_stream t;
    herd_pool *pool = NULL;
    piece *pieces = calloc((size_t)threads, sizeof *pieces);
    token_map *maps = calloc((size_t)threads, sizeof *maps), vocab = {0};
    int32_t *order = NULL;
    uint32_t **ids = calloc((size_t)threads, sizeof *ids);
    size_t *count = calloc((size_t)threads, sizeof *count), *unknown = calloc((size_t)threads, sizeof *unknown);
    long *bad = calloc((size_t)threads, sizeof *bad);
    uint8_t *vbytes = NULL, *out = NULL;
    io_atomic f = {.fd = -1};
    int opened = 0;
    if ((st = stream_open(&t, paths, npaths, kind, threads, err))) goto done;
    if (!pieces || !maps || !ids || !count || !unknown || !bad) {
        st = herd_fail(err, HERD_ENOMEM, "%s: out of memory", paths[0]);
        goto done;
    }
    if ((st = herd_pool_create(&pool, threads, err))) goto done;
    pass_ctx c = {.kind = kind, .pieces = pieces, .maps = maps, .vocab = &vocab, .unk = -1, .ids = ids,
                  .count = count, .unknown = unknown, .bad = bad};
    /* pass 1 (char, word): count every token; the vocabulary is the most frequent (ties in byte
     * order), numbered in byte order, with an unknown id last when some are left out */
    int V = 256, has_unk = 0;
    size_t vlen = 0;
    if (kind != HERD_TOKENIZE_BYTE) {
        if ((st = run_pass(&t, pool, threads, pieces, &c, count_pieces, NULL, NULL, err))) goto done;
        for (int k = 1; k < threads; k++) /* sums: the same whichever thread counted what */
            for (size_t e = 0; e < maps[k].n; e++)
                if (herdi_token_map_add(&maps[0], maps[k].bytes + maps[k].entries[e].off, maps[k].entries[e].len,
                                  maps[k].entries[e].value)) {
                    st = herd_fail(err, HERD_ENOMEM, "%s: out of memory counting tokens", paths[0]);
                    goto done;
                }
        size_t distinct = maps[0].n;
        if (!distinct) {
            st = herd_fail(err, HERD_EFORMAT, "%s: no %s token in the text", paths[0], herdi_text_tokenizer_name(kind));
            goto done;
        }
        if (!(order = malloc(distinct * sizeof *order))) {
            st = herd_fail(err, HERD_ENOMEM, "%s: out of memory", paths[0]);
            goto done;
        }
        for (size_t e = 0; e < distinct; e++) order[e] = (int32_t)e;
        sort_map = &maps[0];
        size_t keep = distinct;
        if (opt->vocab && distinct > (size_t)opt->vocab) {
            qsort(order, distinct, sizeof *order, by_count);
            keep = (size_t)opt->vocab - 1, has_unk = 1;
        }
        qsort(order, keep, sizeof *order, by_bytes);
        V = (int)keep + has_unk;
        if (V < 2) { /* the reader (and a model's classes) need two ids */
            st = herd_fail(err, HERD_EFORMAT, "%s: the text holds one distinct %s token only; a token file needs at "
                           "least 2", paths[0], herdi_text_tokenizer_name(kind));
            goto done;
        }
        static const char *const unk_text[] = {"", "\xEF\xBF\xBD", "<unk>"}; /* U+FFFD for chars */
        for (size_t e = 0; e < keep; e++) vlen += 2 + maps[0].entries[order[e]].len;
        vlen += has_unk ? 2 + strlen(unk_text[kind]) : 0;
        if (!(vbytes = malloc(vlen ? vlen : 1))) {
            st = herd_fail(err, HERD_ENOMEM, "%s: out of memory", paths[0]);
            goto done;
        }
        size_t at = 0;
        for (int id = 0; id < V; id++) {
            const unsigned char *s = id < (int)keep ? maps[0].bytes + maps[0].entries[order[id]].off
                                                    : (const unsigned char *)unk_text[kind];
            size_t n = id < (int)keep ? maps[0].entries[order[id]].len : strlen(unk_text[kind]);
            put_le(vbytes + at, n, 2);
            memcpy(vbytes + at + 2, s, n);
            at += 2 + n;
            if (id < (int)keep && herdi_token_map_add(&vocab, s, n, (uint64_t)id)) {
                st = herd_fail(err, HERD_ENOMEM, "%s: out of memory", paths[0]);
                goto done;
            }
        }
        c.unk = has_unk ? V - 1 : -1;
        for (int a = 0; a < 128; a++) {
            int64_t e = herdi_token_map_find(&vocab, &(unsigned char){(unsigned char)a}, 1);
            c.ascii_id[a] = e < 0 ? -1 : (int32_t)vocab.entries[e].value;
        }
        for (int k = 0; k < threads; k++) herdi_token_map_free(&maps[k]);
        stream_close(&t);
        if ((st = stream_open(&t, paths, npaths, kind, threads, err))) goto done;
    }
    /* pass 2: ids, written piece after piece behind the header and vocabulary */
    int width = V <= 65536 ? 2 : 4;
    for (int k = 0; k < threads; k++)
        if (!(ids[k] = malloc(PIECE * sizeof **ids))) {
            st = herd_fail(err, HERD_ENOMEM, "%s: out of memory", paths[0]);
            goto done;
        }
    if (!(out = malloc(PIECE * 4))) {
        st = herd_fail(err, HERD_ENOMEM, "%s: out of memory", paths[0]);
        goto done;
    }
    uint64_t ids_at = (TOKENS_HEADER + vlen + 7) & ~(uint64_t)7;
    uint8_t head[TOKENS_HEADER + 8] = {0};
    if ((st = herdi_io_atomic_create(&f, dst, err))) goto done;
    opened = 1;
    if ((st = herdi_io_atomic_write(&f, head, TOKENS_HEADER, err)) || (vlen && (st = herdi_io_atomic_write(&f, vbytes, vlen, err))) ||
        (st = herdi_io_atomic_write(&f, head, (size_t)(ids_at - TOKENS_HEADER - vlen), err)))
        goto done;
    write_ctx w = {.c = &c, .f = &f, .width = width, .out = out};
    if ((st = run_pass(&t, pool, threads, pieces, &c, id_pieces, write_batch, &w, err))) goto done;
    if (!w.tokens) {
        st = herd_fail(err, HERD_EFORMAT, "%s: no %s token in the text", paths[0], herdi_text_tokenizer_name(kind));
        goto done;
    }
    memcpy(head, TOKENS_MAGIC, 8);
    put_le(head + 8, TOKENS_VERSION, 4);
    put_le(head + 12, (uint64_t)kind, 4);
    put_le(head + 16, (uint64_t)V, 4);
    put_le(head + 20, (uint64_t)width, 4);
    put_le(head + 24, (uint64_t)w.tokens, 8);
    put_le(head + 32, TOKENS_HEADER, 8);
    put_le(head + 40, vlen, 8);
    put_le(head + 48, ids_at, 8);
    put_le(head + 56, has_unk ? TOKENS_HAS_UNK : 0, 4);
    put_le(head + 60, herd_crc32c(0, vbytes, vlen), 4);
    put_le(head + 68, herd_crc32c(0, head, 68), 4);
    if ((st = herdi_io_atomic_pwrite(&f, head, TOKENS_HEADER, 0, err)) || (st = herdi_io_atomic_commit(&f, NULL, err))) {
        opened = 0; /* a failed commit removed the temp file */
        goto done;
    }
    opened = 0;
    if (info) *info = (herd_tokens_info){.tokens = w.tokens, .unknown = w.unknown, .vocab = V};
done:
    if (opened) herdi_io_atomic_abort(&f);
    stream_close(&t);
    herd_pool_destroy(pool);
    for (int k = 0; maps && k < threads; k++) herdi_token_map_free(&maps[k]);
    herdi_token_map_free(&vocab);
    for (int k = 0; ids && k < threads; k++) free(ids[k]);
    free(pieces), free(maps), free(order), free(ids), free(count), free(unknown), free(bad), free(vbytes), free(out);
    return st;
}
