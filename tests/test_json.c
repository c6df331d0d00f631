/* JSON parser: values, escapes (\uXXXX and surrogate pairs), exact integers, each
 * syntax error with its byte offset, the depth and node limits; and the string writer. */
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "io/json.h"

static herd_json *parse_ok(const char *text) {
    herd_json *doc = NULL;
    herd_error err = {0};
    herd_status st = herd_json_parse(&doc, text, strlen(text), 16, 0, &err);
    CHECK(st == HERD_OK, "parse '%s': %s", text, err.msg);
    return doc;
}

static void parse_bad(const char *text, const char *needle) {
    herd_json *doc = NULL;
    herd_error err = {0};
    herd_status st = herd_json_parse(&doc, text, strlen(text), 16, 0, &err);
    CHECK(st == HERD_EFORMAT && doc == NULL, "'%s' should fail, got %d", text, st);
    CHECK(strstr(err.msg, needle) != NULL, "'%s': message '%s' should contain '%s'", text, err.msg, needle);
    herd_json_free(doc);
}

int main(void) {
    herd_json *doc = parse_ok(" {\"a\": [1, -2.5e3, true, false, null, \"s\"], \"b\": {}, \"c\": []} ");
    if (doc) {
        const herd_json_node *root = herd_json_root(doc);
        CHECK(root->type == HERD_JSON_OBJECT && root->count == 3, "root object of 3");
        const herd_json_node *a = herd_json_get(doc, root, "a");
        CHECK(a && a->type == HERD_JSON_ARRAY && a->count == 6, "array of 6");
        const herd_json_node *v = herd_json_at(doc, a->first);
        CHECK(v->type == HERD_JSON_NUMBER && v->is_int && v->ival == 1, "1");
        v = herd_json_at(doc, v->next);
        CHECK(v->type == HERD_JSON_NUMBER && !v->is_int && v->num == -2500.0, "-2.5e3 = %g", v->num);
        v = herd_json_at(doc, v->next);
        CHECK(v->type == HERD_JSON_BOOL && v->bval == 1, "true");
        v = herd_json_at(doc, v->next);
        CHECK(v->type == HERD_JSON_BOOL && v->bval == 0, "false");
        v = herd_json_at(doc, v->next);
        CHECK(v->type == HERD_JSON_NULL, "null");
        v = herd_json_at(doc, v->next);
        CHECK(v->type == HERD_JSON_STRING && strcmp(v->str, "s") == 0 && v->next == -1, "last string");
        CHECK(herd_json_get(doc, root, "b")->count == 0 && herd_json_get(doc, root, "c")->count == 0,
              "empty containers");
        CHECK(herd_json_get(doc, root, "zz") == NULL, "absent key");
        CHECK(v->parent >= 0 && herd_json_at(doc, v->parent) == a, "parent link");
    }
    herd_json_free(doc);

    doc = parse_ok("\"q\\\" b\\\\ s\\/ \\b\\f\\n\\r\\t \\u00e9 \\u20AC \\ud83d\\ude00 \xc3\xa9\"");
    if (doc) {
        const herd_json_node *s = herd_json_root(doc);
        const char *want = "q\" b\\ s/ \b\f\n\r\t \xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80 \xc3\xa9";
        CHECK(s->type == HERD_JSON_STRING && strcmp(s->str, want) == 0 && s->str_len == strlen(want), "escapes: '%s'",
              s->str);
    }
    herd_json_free(doc);

    doc = parse_ok("[9223372036854775807, -9223372036854775808, 9223372036854775808, 0, -0, 12345678901234567]");
    if (doc) {
        const herd_json_node *v = herd_json_at(doc, herd_json_root(doc)->first);
        CHECK(v->is_int && v->ival == INT64_MAX, "INT64_MAX exact");
        v = herd_json_at(doc, v->next);
        CHECK(v->is_int && v->ival == INT64_MIN, "INT64_MIN exact");
        v = herd_json_at(doc, v->next);
        CHECK(!v->is_int && v->num == 9223372036854775808.0, "2^63 is not an int64");
        v = herd_json_at(doc, v->next);
        CHECK(v->is_int && v->ival == 0, "0");
        v = herd_json_at(doc, v->next);
        CHECK(v->is_int && v->ival == 0, "-0");
        v = herd_json_at(doc, v->next);
        CHECK(v->is_int && v->ival == 12345678901234567LL, "beyond 2^53 exact: %lld", (long long)v->ival);
    }
    herd_json_free(doc);

    doc = parse_ok("{\"k\\u0000x\": 1}");
    if (doc) {
        const herd_json_node *k = herd_json_at(doc, herd_json_root(doc)->first);
        CHECK(k->key_len == 3 && strlen(k->key) == 1, "embedded NUL in key is visible through key_len");
    }
    herd_json_free(doc);

    parse_bad("", "JSON byte 0: unexpected end of input");
    parse_bad("   ", "JSON byte 3");
    parse_bad("{", "JSON byte 1: expected a string key");
    parse_bad("{\"a\" 1}", "JSON byte 5: expected ':'");
    parse_bad("{\"a\":1,}", "JSON byte 7: expected a string key");
    parse_bad("[1,]", "JSON byte 3");
    parse_bad("[1 2]", "JSON byte 3: expected ','");
    parse_bad("[1] x", "JSON byte 4: unexpected characters after");
    parse_bad("{'a':1}", "JSON byte 1");
    parse_bad("01", "JSON byte 1");
    parse_bad("1.", "digit expected after '.'");
    parse_bad("1e", "digit expected in exponent");
    parse_bad("-", "invalid number");
    parse_bad("+1", "JSON byte 0");
    parse_bad("NaN", "JSON byte 0");
    parse_bad("1e999", "out of range");
    parse_bad("tru", "invalid literal");
    parse_bad("nul", "invalid literal");
    parse_bad("\"abc", "unterminated string");
    parse_bad("\"a\tb\"", "JSON byte 2: control character");
    parse_bad("\"\\x\"", "invalid escape");
    parse_bad("\"\\u12\"", "4 hex digits");
    parse_bad("\"\\ud800\"", "without a low surrogate");
    parse_bad("\"\\udc00\"", "lone low surrogate");
    parse_bad("\"\xc3\"", "invalid UTF-8");
    parse_bad("\"\xc0\xaf\"", "invalid UTF-8");         /* overlong '/' */
    parse_bad("\"\xed\xa0\x80\"", "invalid UTF-8");     /* encoded surrogate */
    parse_bad("\"\xf4\x90\x80\x80\"", "invalid UTF-8"); /* above U+10FFFF */

    /* Depth: 16 nested arrays pass, 17 fail; deep input never recurses. */
    char deep[40001];
    memset(deep, '[', 16);
    memset(deep + 16, ']', 16);
    deep[32] = '\0';
    herd_json_free(parse_ok(deep));
    memset(deep, '[', 17);
    memset(deep + 17, ']', 17);
    deep[34] = '\0';
    parse_bad(deep, "nesting deeper than 16");
    memset(deep, '[', 40000);
    deep[40000] = '\0';
    parse_bad(deep, "nesting deeper than 16");

    /* Node limit. */
    herd_error err = {0};
    const char *many = "[1,2,3,4,5]";
    CHECK(herd_json_parse(&doc, many, strlen(many), 4, 5, &err) == HERD_EFORMAT && strstr(err.msg, "more than 5"),
          "node cap: %s", err.msg);
    CHECK(herd_json_parse(&doc, many, strlen(many), 4, 6, &err) == HERD_OK, "6 nodes fit: %s", err.msg);
    herd_json_free(doc);

    /* Input need not be NUL-terminated: only len bytes are looked at. */
    CHECK(herd_json_parse(&doc, "[1]garbage", 3, 4, 0, &err) == HERD_OK, "length-bounded input: %s", err.msg);
    herd_json_free(doc);

    /* Writer output parses back to the same string. */
    herd_json_writer w = {0};
    const char *tricky = "a\"b\\c\n\x01\x1f \xc3\xa9";
    herd_json_put_string(&w, tricky);
    herd_json_put_raw(&w, " ", 1);
    CHECK(!w.failed, "writer ok");
    doc = parse_ok(w.buf);
    CHECK(doc && strcmp(herd_json_root(doc)->str, tricky) == 0, "writer escapes round-trip: %s", w.buf);
    herd_json_free(doc);
    herd_json_writer_free(&w);
    herd_json_put_i64(&w, INT64_MIN);
    CHECK(strcmp(w.buf, "-9223372036854775808") == 0, "i64: %s", w.buf);
    herd_json_writer_free(&w);

    CHECK(herd_json_utf8_valid("\xe2\x82\xac", 3) && !herd_json_utf8_valid("\xe2\x82", 2), "utf8_valid");
    return check_summary();
}
