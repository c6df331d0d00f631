/* Status names, error message formatting and checked allocation. */
#include "herd/core.h"

#include "core/utf8.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

const char *herd_status_str(herd_status st) {
    switch (st) {
    case HERD_OK: return "ok";
    case HERD_EIO: return "I/O error";
    case HERD_EFORMAT: return "bad format";
    case HERD_ESPEC: return "bad model spec";
    case HERD_ESHAPE: return "shape mismatch";
    case HERD_ENOMEM: return "out of memory";
    case HERD_EARG: return "bad argument";
    case HERD_EUNSUPPORTED: return "unsupported";
    case HERD_ENUMERIC: return "non-finite value";
    case HERD_EINTERNAL: return "internal error";
    case HERD_ESTOPPED: return "stopped on request";
    }
    return "unknown status";
}

/* Makes the message one line of printable text, in place: a message quotes bytes of damaged
 * files, and a newline, a carriage return or a terminal escape among them would split or
 * garble the line a user reads. Blanks (\n, \r, \t) become spaces; other control characters,
 * bytes that are not UTF-8 and the code points that break lines (U+0080..U+009F, U+2028,
 * U+2029) become one '?' each. */
static void one_line(char *s) {
    unsigned char *r = (unsigned char *)s, *w = r;
    size_t left = strlen(s);
    while (*r) {
        uint32_t cp;
        int n = herdi_utf8_next(r, left, &cp);
        if (n == 0) {
            *w++ = '?', r++, left--;
        } else if (cp == '\n' || cp == '\r' || cp == '\t') {
            *w++ = ' ', r++, left--;
        } else if (cp < 0x20 || cp == 0x7F || (cp >= 0x80 && cp <= 0x9F) || cp == 0x2028 || cp == 0x2029) {
            *w++ = '?', r += n, left -= (size_t)n;
        } else {
            for (int k = 0; k < n; k++) *w++ = *r++;
            left -= (size_t)n;
        }
    }
    *w = 0;
}

/* Copies the len-byte message s into dst (cap bytes). A message too long to fit loses the
 * middle of its longest words first (a long path keeps its start and its file name), so the
 * cause at the end stays visible; only a message without long words loses its own middle. */
static void fit_message(char *dst, size_t cap, char *s, size_t len) {
    const size_t keep = 12; /* characters kept at each end of a shortened word */
    while (len > cap - 1) {
        size_t best = 0, best_len = 0;
        for (size_t i = 0; i < len;) {
            size_t j = i;
            while (j < len && s[j] != ' ') j++;
            if (j - i > best_len) best = i, best_len = j - i;
            i = j + 1;
        }
        if (best_len < 2 * keep + 4) break;
        size_t cut = len - (cap - 1) + 3; /* the bytes to remove, "..." included */
        if (cut > best_len - 2 * keep) cut = best_len - 2 * keep;
        size_t at = best + (best_len - cut) / 2;
        memcpy(s + at, "...", 3);
        memmove(s + at + 3, s + at + cut, len - at - cut + 1);
        len -= cut - 3;
    }
    if (len > cap - 1) { /* no long word left: keep both ends of the message */
        size_t head = (cap - 4) / 2, tail = cap - 4 - head;
        memcpy(dst, s, head);
        memcpy(dst + head, "...", 3);
        memcpy(dst + head + 3, s + len - tail, tail);
        dst[cap - 1] = '\0';
    } else {
        memcpy(dst, s, len + 1);
    }
    one_line(dst);
}

/* The formatted text in a heap buffer (NULL if out of memory), its length in *len. */
static char *format_alloc(size_t *len, const char *fmt, va_list ap) {
    va_list copy;
    va_copy(copy, ap);
    int n = vsnprintf(NULL, 0, fmt, copy);
    va_end(copy);
    if (n < 0) n = 0;
    char *s = malloc((size_t)n + 1);
    if (s) vsnprintf(s, (size_t)n + 1, fmt, ap);
    *len = (size_t)n;
    return s;
}

herd_status herd_failv(herd_error *err, herd_status st, const char *fmt, va_list ap) {
    if (err) {
        va_list again;
        va_copy(again, ap);
        size_t len;
        char *s = format_alloc(&len, fmt, ap);
        if (s) {
            fit_message(err->msg, sizeof err->msg, s, len);
            free(s);
        } else {
            vsnprintf(err->msg, sizeof err->msg, fmt, again);
            one_line(err->msg);
        }
        va_end(again);
        err->status = st;
    }
    return st;
}

herd_status herd_fail(herd_error *err, herd_status st, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    herd_failv(err, st, fmt, ap);
    va_end(ap);
    return st;
}

herd_status herd_fail_prefix(herd_error *err, const char *fmt, ...) {
    if (!err) return HERD_EINTERNAL;
    va_list ap;
    va_start(ap, fmt);
    size_t plen;
    char *prefix = format_alloc(&plen, fmt, ap);
    va_end(ap);
    size_t olen = strnlen(err->msg, sizeof err->msg - 1);
    char *s = prefix ? malloc(plen + 2 + olen + 1) : NULL;
    if (!s) { /* out of memory: the old message stays, it names the cause */
        free(prefix);
        return err->status;
    }
    memcpy(s, prefix, plen);
    memcpy(s + plen, ": ", 2);
    memcpy(s + plen + 2, err->msg, olen);
    s[plen + 2 + olen] = '\0';
    fit_message(err->msg, sizeof err->msg, s, plen + 2 + olen);
    free(prefix);
    free(s);
    return err->status;
}

void herd_assert_fail(const char *expr, const char *file, int line) {
    fprintf(stderr, "herd: internal error: assertion '%s' failed at %s:%d\n", expr, file, line);
    abort(); /* a bug in herd, never bad input */
}

int herd_mul_size(size_t a, size_t b, size_t *out) {
    if (a != 0 && b > SIZE_MAX / a) return 0;
    *out = a * b;
    return 1;
}

void *herd_malloc_array(size_t count, size_t size) {
    size_t n;
    if (!herd_mul_size(count, size, &n)) return NULL;
    return malloc(n ? n : 1);
}

void *herd_calloc_array(size_t count, size_t size) {
    size_t n;
    if (!herd_mul_size(count, size, &n)) return NULL;
    return calloc(n ? count : 1, n ? size : 1);
}

void *herd_aligned_alloc(size_t bytes) {
    void *p = NULL;
    if (bytes > SIZE_MAX - 64) return NULL;
    if (posix_memalign(&p, 64, bytes ? bytes : 64) != 0) return NULL;
    return p;
}

/* Zeroed without touching a large block's pages: the whole pages inside it are handed back with
 * MADV_DONTNEED, which for private anonymous memory means zero pages on the next access, and only
 * the partial pages at its ends are written. A model's gradients then cost no memory until it
 * trains (an ONNX import of VGG-11 holds 531 MB less). The block stays an ordinary
 * posix_memalign block (free() or herd_aligned_free). */
void *herd_aligned_calloc(size_t bytes) {
    unsigned char *p = herd_aligned_alloc(bytes);
    if (!p) return NULL;
    long ps = sysconf(_SC_PAGESIZE);
    uintptr_t page = ps > 0 ? (uintptr_t)ps : 4096, lo = ((uintptr_t)p + page - 1) / page * page,
              hi = ((uintptr_t)p + bytes) / page * page;
    if (bytes < ((size_t)1 << 20) || hi <= lo || madvise((void *)lo, hi - lo, MADV_DONTNEED) != 0) {
        memset(p, 0, bytes);
        return p;
    }
    memset(p, 0, lo - (uintptr_t)p);
    memset((void *)hi, 0, (uintptr_t)p + bytes - hi);
    return p;
}

void herd_aligned_free(void *p) { free(p); }

void herd_release_pages(void *p, size_t bytes) {
#ifdef MADV_DONTNEED
    const uintptr_t page = 4096;
    uintptr_t lo = ((uintptr_t)p + page - 1) / page * page, hi = ((uintptr_t)p + bytes) / page * page;
    if (hi > lo) (void)madvise((void *)lo, hi - lo, MADV_DONTNEED);
#else
    memset(p, 0, bytes);
#endif
}

void herd_advise_huge_pages(void *p, size_t bytes) {
#ifdef MADV_HUGEPAGE
    const uintptr_t huge = (uintptr_t)2 << 20;
    uintptr_t lo = ((uintptr_t)p + huge - 1) / huge * huge, hi = ((uintptr_t)p + bytes) / huge * huge;
    if (hi > lo) (void)madvise((void *)lo, hi - lo, MADV_HUGEPAGE);
#else
    (void)p, (void)bytes;
#endif
}
