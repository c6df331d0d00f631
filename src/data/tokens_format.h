/* The token file (.tok, docs/DATA.md): a text tokenized for language models, written by
 * tokens_write.c and memory-mapped by tokens.c. Little-endian:
 *   0  magic "HERDTOK1"            8  u32 version (1)
 *   12 u32 tokenizer (0 byte, 1 char, 2 word)
 *   16 u32 vocabulary size V        20 u32 bytes an id takes (2 when V <= 65536, else 4)
 *   24 u64 tokens N                 32 u64 vocabulary offset (72)
 *   40 u64 vocabulary bytes         48 u64 ids offset (8-aligned, after the vocabulary)
 *   56 u32 flags (1: the last id stands for every token outside the vocabulary)
 *   60 u32 CRC32C of the vocabulary 64 u32 0
 *   68 u32 CRC32C of bytes 0-67
 *   72 vocabulary: char and word, V entries of u16 length + bytes (a code point's UTF-8, a word),
 *      in byte order (strcmp) but for the unknown entry, which is last; byte: none (id = byte)
 *   then N ids. */
#ifndef HERD_DATA_TOKENS_FORMAT_H
#define HERD_DATA_TOKENS_FORMAT_H

#include <stddef.h>
#include <stdint.h>

#include "herd/data.h"

#define TOKENS_MAGIC "HERDTOK1"
#define TOKENS_VERSION 1u
#define TOKENS_HEADER 72u
#define TOKENS_HAS_UNK 1u
#define TOKENS_WORD_MAX 64 /* a longer run of word bytes is cut into tokens of this many */

/* The next token of s[*i..n) (skipping whitespace for words) as bytes [*b, *e); *i moves past it.
 * Returns 1, 0 at the end, -1 when a char token is not valid UTF-8 (*b then at the bad byte). */
int herdi_tokens_lex(herd_text_tokenizer kind, const unsigned char *s, size_t n, size_t *i, size_t *b, size_t *e);

/* A map from token bytes to a count or an id (open addressing, FNV-1a); keys copied in. */
typedef struct token_map {
    struct token_entry {
        uint64_t value;
        uint32_t off;
        uint16_t len;
    } *entries;
    int32_t *slots;
    unsigned char *bytes;
    size_t n, cap_entries, n_bytes, cap_bytes, n_slots;
} token_map;

/* Adds add to key's value (inserting it at 0); 0, or -1 out of memory. */
int herdi_token_map_add(token_map *m, const unsigned char *key, size_t len, uint64_t add);
/* key's entry index, or -1 */
int64_t herdi_token_map_find(const token_map *m, const unsigned char *key, size_t len);
void herdi_token_map_free(token_map *m);

#endif
