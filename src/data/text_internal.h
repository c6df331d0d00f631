/* What the two text readers share: labelled text (text.c) and token files for language models
 * (tokens_write.c, tokens.c). */
#ifndef HERD_DATA_TEXT_INTERNAL_H
#define HERD_DATA_TEXT_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "core/utf8.h" /* herdi_utf8_next */
#include "herd/data.h"

/* "byte", "char" or "word" */
const char *herdi_text_tokenizer_name(herd_text_tokenizer t);

#endif
