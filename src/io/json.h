/* A small strict JSON parser (RFC 8259) into a flat node array, without recursion, for
 * file headers (safetensors, later others); plus a string builder for writing JSON. */
#ifndef HERD_IO_JSON_H
#define HERD_IO_JSON_H

#include <stddef.h>
#include <stdint.h>

#include "herd/core.h"

typedef enum herd_json_type {
    HERD_JSON_NULL,
    HERD_JSON_BOOL,
    HERD_JSON_NUMBER,
    HERD_JSON_STRING,
    HERD_JSON_ARRAY,
    HERD_JSON_OBJECT
} herd_json_type;

/* Nodes refer to each other by index into the document; -1 means none. */
typedef struct herd_json_node {
    herd_json_type type;
    int32_t parent;
    int32_t next;        /* next sibling (array element or object member) */
    int32_t first, last; /* children of an array/object */
    int32_t count;       /* number of children */
    size_t offset;       /* byte offset of the value in the input, for messages */
    const char *key;     /* member name when the parent is an object (NUL-terminated, UTF-8) */
    size_t key_len;      /* may be less than strlen(key) if the key held \u0000 */
    const char *str;     /* STRING: decoded, NUL-terminated */
    size_t str_len;
    double num;   /* NUMBER */
    int is_int;   /* NUMBER written without fraction/exponent and fits int64 */
    int64_t ival; /* valid when is_int */
    int bval;     /* BOOL */
} herd_json_node;

typedef struct herd_json herd_json;

/* Parses text[0..len) (need not be NUL-terminated). Nesting deeper than max_depth
 * containers is an error, and so is more than max_nodes values (a node costs ~100
 * bytes, so this caps memory for hostile input; max_nodes <= 0: no cap). Strings must be valid UTF-8; \u escapes
 * (surrogate pairs included) are decoded. Duplicate object keys are kept (callers decide). On error the message is
 * "JSON byte <offset>: <what>" so that callers prefix their file name. */
herd_status herd_json_parse(herd_json **out, const char *text, size_t len, int max_depth, int32_t max_nodes,
                            herd_error *err);
void herd_json_free(herd_json *doc);
const herd_json_node *herd_json_root(const herd_json *doc);
/* Node by index (first/next/parent); NULL for -1. */
const herd_json_node *herd_json_at(const herd_json *doc, int32_t idx);
/* Member of an object by key (first match); NULL if absent or obj is not an object. */
const herd_json_node *herd_json_get(const herd_json *doc, const herd_json_node *obj, const char *key);
/* Short type name for messages ("object", "string", ...). */
const char *herd_json_type_name(herd_json_type t);

/* 1 if s[0..n) is well-formed UTF-8 (no overlongs, surrogates or values > U+10FFFF). */
int herd_json_utf8_valid(const char *s, size_t n);

/* Growable output buffer; any allocation failure sets failed and later puts are no-ops,
 * so a writer checks once at the end. */
typedef struct herd_json_writer {
    char *buf;
    size_t len, cap;
    int failed;
} herd_json_writer;

void herd_json_put_raw(herd_json_writer *w, const char *s, size_t n);
/* s quoted, with ", \\ and control characters escaped; bytes >= 0x80 pass through. */
void herd_json_put_string(herd_json_writer *w, const char *s);
void herd_json_put_i64(herd_json_writer *w, int64_t v);
void herd_json_writer_free(herd_json_writer *w);

#endif
