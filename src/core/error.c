/* Status names, error message formatting and checked allocation. */
#include "herd/core.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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
    }
    return "unknown status";
}

static void strip_newlines(char *s) {
    for (; *s; s++)
        if (*s == '\n' || *s == '\r') *s = ' ';
}

herd_status herd_fail(herd_error *err, herd_status st, const char *fmt, ...) {
    if (err) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err->msg, sizeof err->msg, fmt, ap);
        va_end(ap);
        strip_newlines(err->msg);
        err->status = st;
    }
    return st;
}

herd_status herd_fail_prefix(herd_error *err, const char *fmt, ...) {
    if (!err) return HERD_EINTERNAL;
    char prefix[512], old[sizeof err->msg];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(prefix, sizeof prefix, fmt, ap);
    va_end(ap);
    memcpy(old, err->msg, sizeof old);
    size_t k = strlen(prefix);
    if (k > sizeof err->msg - 3) k = sizeof err->msg - 3;
    memcpy(err->msg, prefix, k);
    memcpy(err->msg + k, ": ", 2);
    size_t room = sizeof err->msg - k - 3, olen = strnlen(old, sizeof old - 1);
    if (olen > room) olen = room;
    memcpy(err->msg + k + 2, old, olen);
    err->msg[k + 2 + olen] = '\0';
    strip_newlines(err->msg);
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

void herd_aligned_free(void *p) { free(p); }
