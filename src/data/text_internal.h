/* What the two text readers share: labelled text (text.c) and token files for language models
 * (tokens_write.c, tokens.c). */
#ifndef HERD_DATA_TEXT_INTERNAL_H
#define HERD_DATA_TEXT_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "herd/data.h"

/* The code point of the UTF-8 sequence at s (n >= 1 bytes left) into *cp; its length, or 0 when
 * the bytes are not valid UTF-8 (overlong forms, surrogates and values past U+10FFFF included). */
int herdi_text_utf8_next(const unsigned char *s, size_t n, uint32_t *cp);
/* "byte", "char" or "word" */
const char *herdi_text_tokenizer_name(herd_text_tokenizer t);

#endif
