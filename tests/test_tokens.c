/* Token files and lm: sources: byte/char/word tokenization round trips, vocabularies capped
 * with an unknown id, the file byte-identical for 1 and 3 threads over a text of several 4 MiB
 * pieces, prompts encoded with the file's vocabulary (and refused outside it), windows with
 * next-id labels and a held-out tail, and bad files as one line naming them. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "herd/data.h"
#include "scratch_files.h"

static char *slurp(const char *path, size_t *n) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long len = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *b = malloc((size_t)len + 1);
    *n = 0;
    *n = b ? fread(b, 1, (size_t)len, f) : 0;
    fclose(f);
    return b;
}

static void spit(const char *path, const void *data, size_t n) {
    FILE *f = fopen(path, "wb");
    if (f) fwrite(data, 1, n, f), fclose(f);
}

/* the decoded ids of the whole file */
static char *decode_all(herd_tokens *t, size_t *len) {
    int64_t n = herd_tokens_count(t);
    int32_t *ids = malloc((size_t)n * sizeof *ids);
    char *out = malloc((size_t)n * 70 + 1), buf[80];
    herd_error err = {0};
    *len = 0;
    CHECK(herd_tokens_read(t, 0, n, ids, &err) == HERD_OK, "%s", err.msg);
    for (int64_t i = 0; i < n; i++) {
        size_t k = herd_tokens_decode(t, ids[i], buf, sizeof buf);
        memcpy(out + *len, buf, k);
        *len += k;
    }
    free(ids);
    return out;
}

static herd_tokens *convert(const char *dst, const char *src, herd_text_tokenizer kind, int vocab, int threads) {
    herd_tokens_options o = {kind, vocab, threads};
    herd_error err = {0};
    const char *paths[1] = {src};
    herd_tokens *t = NULL;
    CHECK(herd_tokens_write(dst, paths, 1, &o, NULL, &err) == HERD_OK, "%s", err.msg);
    CHECK(herd_tokens_open(&t, dst, &err) == HERD_OK, "%s", err.msg);
    return t;
}

int main(void) {
    if (!scratch_init("herd_tokens")) return 2;
    char text[128], tok[160], tok3[160], bad[128], big[160];
    const char *s = "It is a truth universally acknowledged, that a single man\nin possession of a good fortune, "
                    "must be in want of a wife. \xc3\xa9t\xc3\xa9 \xe2\x80\x94 na\xc3\xafve\n";
    scratch_write("a.txt", s, text);
    snprintf(tok, sizeof tok, "%s/a.tok", scratch_dir);
    herd_error err = {0};

    /* byte and char: decoding the ids gives the text back */
    for (int k = 0; k < 2; k++) {
        herd_tokens *t = convert(tok, text, (herd_text_tokenizer)k, 0, 1);
        if (!t) continue;
        size_t len;
        char *back = decode_all(t, &len);
        CHECK(len == strlen(s) && !memcmp(back, s, len), "%s round trip", k ? "char" : "byte");
        CHECK(herd_tokens_vocab(t) == (k ? 30 : 256), "vocabulary %d (30 distinct characters)", herd_tokens_vocab(t));
        free(back);
        int32_t ids[64];
        int64_t n;
        CHECK(herd_tokens_encode(t, "a wife", 6, ids, 64, &n, &err) == HERD_OK && n == 6, "encode: %s", err.msg);
        if (k == 1) { /* a character the text never had */
            CHECK(herd_tokens_encode(t, "a Zebra", 7, ids, 64, &n, &err) == HERD_EARG && strstr(err.msg, "'Z'") &&
                  strstr(err.msg, "not in the vocabulary") && strstr(err.msg, tok), "char outside: %s", err.msg);
            CHECK(herd_tokens_encode(t, "a \xff", 3, ids, 64, &n, &err) == HERD_EARG && strstr(err.msg, "UTF-8"),
                  "prompt not UTF-8: %s", err.msg);
        }
        CHECK(herd_tokens_encode(t, "a wife", 6, ids, 3, &n, &err) == HERD_EARG, "cap");
        herd_tokens_close(t);
    }
    /* words: punctuation alone, whitespace dropped, a capped vocabulary's unknown id last */
    herd_tokens *t = convert(tok, text, HERD_TOKENIZE_WORD, 0, 1);
    if (t) {
        int32_t ids[64];
        int64_t n;
        char buf[80];
        CHECK(herd_tokens_encode(t, "a wife, must", 12, ids, 64, &n, &err) == HERD_OK && n == 4, "words: %s", err.msg);
        herd_tokens_decode(t, ids[2], buf, sizeof buf);
        CHECK(!strcmp(buf, ", "), "comma token '%s'", buf);
        CHECK(herd_tokens_encode(t, "a wolf", 6, ids, 64, &n, &err) == HERD_EARG && strstr(err.msg, "'wolf'"),
              "word outside: %s", err.msg);
        herd_tokens_close(t);
    }
    t = convert(tok, text, HERD_TOKENIZE_WORD, 5, 1);
    if (t) {
        int32_t ids[64];
        int64_t n;
        char buf[80];
        CHECK(herd_tokens_vocab(t) == 5, "capped vocabulary %d", herd_tokens_vocab(t));
        CHECK(herd_tokens_encode(t, "a wolf", 6, ids, 64, &n, &err) == HERD_OK && n == 2 && ids[1] == 4 && ids[0] != 4,
              "unknown id: %s", err.msg);
        herd_tokens_decode(t, 4, buf, sizeof buf);
        CHECK(!strcmp(buf, "<unk> "), "unknown text '%s'", buf);
        herd_tokens_close(t);
    }

    /* several pieces: the same file for 1 and 3 threads, for each tokenizer */
    snprintf(big, sizeof big, "%s/big.txt", scratch_dir);
    size_t bn = (size_t)9 << 20;
    char *bt = malloc(bn);
    uint32_t r = 1;
    for (size_t i = 0; i < bn;) {
        r = r * 1103515245u + 12345u;
        const char *w[] = {"the ", "Emma ", "\xc3\xa9t\xc3\xa9 ", "walked,", "\n", "Mr. ", "Knightley "};
        const char *p = w[(r >> 16) % 7];
        size_t k = strlen(p);
        if (i + k > bn) k = bn - i;
        memcpy(bt + i, p, k);
        i += k;
    }
    spit(big, bt, bn);
    snprintf(tok3, sizeof tok3, "%s/big3.tok", scratch_dir);
    for (int k = 0; k < 3; k++) {
        herd_tokens *t1 = convert(tok, big, (herd_text_tokenizer)k, 0, 1), *t3 = convert(tok3, big, (herd_text_tokenizer)k, 0, 3);
        herd_tokens_close(t1), herd_tokens_close(t3);
        size_t n1 = 0, n3 = 0;
        char *a = slurp(tok, &n1), *b = slurp(tok3, &n3);
        CHECK(a && b && n1 == n3 && !memcmp(a, b, n1), "kind %d: 1 and 3 threads differ (%zu, %zu bytes)", k, n1, n3);
        free(a), free(b);
        if (k == 1) { /* pieces cut between characters: the text comes back whole */
            herd_tokens *tc = convert(tok, big, HERD_TOKENIZE_CHAR, 0, 2);
            size_t len;
            char *back = tc ? decode_all(tc, &len) : NULL;
            CHECK(back && len == bn && !memcmp(back, bt, bn), "big char round trip");
            free(back);
            herd_tokens_close(tc);
        }
    }
    free(bt);

    /* invalid UTF-8 for char: file:line; bytes take it */
    scratch_write("bad.txt", "fine\nstill fine\nbad \xff here\n", bad);
    herd_tokens_options oc = {HERD_TOKENIZE_CHAR, 0, 2};
    const char *bp[1] = {bad};
    CHECK(herd_tokens_write(tok, bp, 1, &oc, NULL, &err) == HERD_EFORMAT && strstr(err.msg, ":3: not valid UTF-8") &&
          strstr(err.msg, bad), "bad utf-8: %s", err.msg);
    char empty[128];
    scratch_write("empty.txt", "  \n", empty);
    const char *ep[1] = {empty};
    herd_tokens_options ow = {HERD_TOKENIZE_WORD, 0, 1};
    CHECK(herd_tokens_write(tok, ep, 1, &ow, NULL, &err) == HERD_EFORMAT && strstr(err.msg, "no word token"),
          "empty: %s", err.msg);

    /* lm windows: y is x shifted by one; train windows end before the held-out tail */
    t = convert(tok, text, HERD_TOKENIZE_BYTE, 0, 1);
    herd_tokens_close(t);
    herd_dataset *tr = NULL, *va = NULL;
    herd_lm_options lo = {8, 3, 0.25};
    CHECK(herd_lm_open(&tr, &va, tok, &lo, &err) == HERD_OK, "%s", err.msg);
    if (tr && va) {
        int64_t N = (int64_t)strlen(s), cut = N - (int64_t)(N * 0.25);
        CHECK(tr->n == (cut - 9) / 3 + 1 && va->n == (N - cut - 9) / 8 + 1 && tr->num_classes == 256,
              "windows %lld %lld", (long long)tr->n, (long long)va->n);
        int32_t x[8], y[8];
        CHECK(herd_dataset_get(tr, 2, x, y, &err) == HERD_OK, "%s", err.msg);
        for (int i = 0; i < 8; i++) CHECK(x[i] == (unsigned char)s[6 + i] && y[i] == (unsigned char)s[7 + i], "window 2 pos %d", i);
        CHECK(herd_dataset_get(va, va->n - 1, x, y, &err) == HERD_OK && y[7] == (unsigned char)s[cut + (va->n - 1) * 8 + 8],
              "last validation window: %s", err.msg);
        CHECK(herd_dataset_get(tr, tr->n, x, y, &err) == HERD_EARG, "out of range");
    }
    herd_dataset_close(tr), herd_dataset_close(va);
    lo.ctx = 4096;
    CHECK(herd_lm_open(&tr, &va, tok, &lo, &err) == HERD_EARG && strstr(err.msg, "too few for one window"), "%s", err.msg);

    /* damaged files */
    size_t n;
    char *f = slurp(tok, &n);
    char dmg[160];
    snprintf(dmg, sizeof dmg, "%s/dmg.tok", scratch_dir);
    f[0] = 'X';
    spit(dmg, f, n);
    CHECK(herd_tokens_open(&t, dmg, &err) == HERD_EFORMAT && strstr(err.msg, "bad magic") && strstr(err.msg, dmg), "%s", err.msg);
    f[0] = 'H', f[30] ^= 1;
    spit(dmg, f, n);
    CHECK(herd_tokens_open(&t, dmg, &err) == HERD_EFORMAT && strstr(err.msg, "header CRC"), "%s", err.msg);
    f[30] ^= 1;
    spit(dmg, f, n - 10);
    CHECK(herd_tokens_open(&t, dmg, &err) == HERD_EFORMAT && strstr(err.msg, "inconsistent header"), "truncated: %s", err.msg);
    spit(dmg, f, 20);
    CHECK(herd_tokens_open(&t, dmg, &err) == HERD_EFORMAT && strstr(err.msg, "72-byte header"), "short: %s", err.msg);
    free(f);
    herd_tokens *cw = convert(tok, text, HERD_TOKENIZE_WORD, 0, 1);
    herd_tokens_close(cw);
    f = slurp(tok, &n);
    f[75] ^= 0x20; /* a vocabulary byte: its CRC */
    spit(dmg, f, n);
    CHECK(herd_tokens_open(&t, dmg, &err) == HERD_EFORMAT && strstr(err.msg, "vocabulary CRC"), "%s", err.msg);
    free(f);
    scratch_remove();
    return check_summary();
}
