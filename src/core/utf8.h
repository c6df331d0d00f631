/* UTF-8 decoding shared by the text readers and the error messages' cleaning. */
#ifndef HERD_CORE_UTF8_H
#define HERD_CORE_UTF8_H

#include <stddef.h>
#include <stdint.h>

/* The code point of the UTF-8 sequence at s (n >= 1 bytes left) into *cp; its length, or 0 when
 * the bytes are not valid UTF-8 (overlong forms, surrogates and values past U+10FFFF included). */
int herdi_utf8_next(const unsigned char *s, size_t n, uint32_t *cp);

#endif
