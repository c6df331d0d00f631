/* safetensors: round trip of several dtypes and shapes with metadata, atomic replace
 * without leftovers, and each kind of malformed file rejected with the path named. */
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "check.h"
#include "herd/io.h"

static char dir[256];

static const char *path_in(const char *name) {
    static char bufs[4][512];
    static int k;
    char *p = bufs[k++ & 3];
    snprintf(p, 512, "%s/%s", dir, name);
    return p;
}

static void write_raw(const char *path, const void *buf, size_t n) {
    FILE *f = fopen(path, "wb");
    if (!f || (n && fwrite(buf, 1, n, f) != n)) {
        perror(path);
        exit(2);
    }
    fclose(f);
}

/* 8-byte little-endian length (hlen_override if nonzero), header, then data_len bytes 0..255. */
static void write_st(const char *path, const char *header, size_t data_len, uint64_t hlen_override) {
    size_t h = strlen(header);
    uint8_t *buf = malloc(8 + h + data_len);
    uint64_t hl = hlen_override ? hlen_override : h;
    for (int k = 0; k < 8; k++) buf[k] = (uint8_t)(hl >> (8 * k));
    memcpy(buf + 8, header, h);
    for (size_t i = 0; i < data_len; i++) buf[8 + h + i] = (uint8_t)i;
    write_raw(path, buf, 8 + h + data_len);
    free(buf);
}

static int count_tmp_files(void) {
    DIR *d = opendir(dir);
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)))
        if (strstr(e->d_name, ".tmp.")) n++;
    closedir(d);
    return n;
}

static void expect_bad_file(const char *name, herd_status want, const char *needle) {
    const char *path = path_in(name);
    herd_error err = {0};
    herd_safetensors *st = NULL;
    herd_status s = herd_safetensors_open(&st, path, &err);
    CHECK(s == want && st == NULL, "%s: status %d (%s) expected %d; msg: %s", name, s, herd_status_str(s), want,
          err.msg);
    CHECK(strncmp(err.msg, path, strlen(path)) == 0, "%s: message should start with the path: %s", name, err.msg);
    CHECK(strstr(err.msg, needle) != NULL, "%s: message should mention '%s': %s", name, needle, err.msg);
    herd_safetensors_close(st);
}

static void bad_header(const char *name, const char *header, size_t data_len, herd_status want, const char *needle) {
    write_st(path_in(name), header, data_len, 0);
    expect_bad_file(name, want, needle);
}

static void test_round_trip(void) {
    float w[6] = {1.5f, -2.25f, 3.0f, 0.0f, 1e-8f, -1e30f};
    int64_t idx[4] = {0, -1, INT64_MAX, INT64_MIN};
    int32_t scalar = -7;
    uint8_t bytes[5] = {0, 1, 127, 128, 255};
    double dbl[4] = {3.141592653589793, -0.5, 1e300, 2.0};
    float none[1] = {0};
    herd_tensor_ref t[] = {
        {"layer.0.weight", HERD_F32, 2, {2, 3}, w}, {"idx", HERD_I64, 1, {4}, idx},
        {"scalar", HERD_I32, 0, {0}, &scalar},      {"bytes", HERD_U8, 1, {5}, bytes},
        {"dbl", HERD_F64, 2, {2, 2}, dbl}, /* lands at an offset that is not a multiple of 8 */
        {"empty", HERD_F32, 2, {0, 3}, none},       {"ünï \"quoted\"", HERD_F32, 1, {1}, w},
    };
    int n = (int)(sizeof t / sizeof t[0]);
    const char *meta[] = {"format", "pt", "note", "line1\nline2 \"q\" \\ tab\t"};
    herd_error err = {0};
    const char *path = path_in("rt.safetensors");
    herd_status s = herd_safetensors_write(path, t, n, meta, 2, &err);
    CHECK(s == HERD_OK, "write: %s", err.msg);
    CHECK(count_tmp_files() == 0, "no temp file left after a write");

    /* Header length is padded so the data starts 8-byte aligned, as the reference does. */
    FILE *f = fopen(path, "rb");
    uint8_t le[8];
    CHECK(fread(le, 1, 8, f) == 8, "read length");
    uint64_t hl = 0;
    for (int k = 7; k >= 0; k--) hl = hl << 8 | le[k];
    fclose(f);
    CHECK(hl % 8 == 0, "header length %llu is a multiple of 8", (unsigned long long)hl);

    herd_safetensors *st = NULL;
    s = herd_safetensors_open(&st, path, &err);
    CHECK(s == HERD_OK, "open: %s", err.msg);
    if (s != HERD_OK) return;
    CHECK(herd_safetensors_count(st) == n, "count %d", herd_safetensors_count(st));
    CHECK(strcmp(herd_safetensors_path(st), path) == 0, "path kept");
    for (int i = 0; i < n && i < herd_safetensors_count(st); i++) {
        const herd_tensor_ref *r = herd_safetensors_get(st, i);
        CHECK(strcmp(r->name, t[i].name) == 0, "tensor %d name '%s' expected '%s'", i, r->name, t[i].name);
        CHECK(r->dtype == t[i].dtype && r->ndim == t[i].ndim, "tensor %s dtype %d ndim %d", r->name, r->dtype, r->ndim);
        for (int d = 0; d < r->ndim; d++) CHECK(r->shape[d] == t[i].shape[d], "%s shape[%d]", r->name, d);
        CHECK(herd_safetensors_find(st, t[i].name) == r, "find '%s'", t[i].name);
    }
    const herd_tensor_ref *r = herd_safetensors_find(st, "layer.0.weight");
    CHECK(r && memcmp(r->data, w, sizeof w) == 0, "F32 values");
    r = herd_safetensors_find(st, "idx");
    CHECK(r && memcmp(r->data, idx, sizeof idx) == 0, "I64 values");
    r = herd_safetensors_find(st, "scalar");
    CHECK(r && r->ndim == 0 && *(const int32_t *)r->data == -7, "0-d I32 scalar");
    r = herd_safetensors_find(st, "bytes");
    CHECK(r && memcmp(r->data, bytes, 5) == 0, "U8 values");
    r = herd_safetensors_find(st, "dbl");
    CHECK(r && (uintptr_t)r->data % 8 == 0, "F64 data aligned for access");
    CHECK(r && ((const double *)r->data)[0] == dbl[0] && ((const double *)r->data)[2] == 1e300, "F64 values");
    r = herd_safetensors_find(st, "empty");
    CHECK(r && r->shape[0] == 0 && r->shape[1] == 3, "empty tensor shape");
    CHECK(herd_safetensors_find(st, "nope") == NULL, "absent name gives NULL");
    CHECK(herd_safetensors_get(st, n) == NULL, "index past end gives NULL");
    const char *m = herd_safetensors_meta(st, "format");
    CHECK(m && strcmp(m, "pt") == 0, "metadata format: %s", m ? m : "(null)");
    m = herd_safetensors_meta(st, "note");
    CHECK(m && strcmp(m, meta[3]) == 0, "metadata with escapes: %s", m ? m : "(null)");
    CHECK(herd_safetensors_meta(st, "absent") == NULL, "absent metadata");
    herd_safetensors_close(st);

    /* No tensors and no metadata is a valid (tiny) file. */
    s = herd_safetensors_write(path_in("none.safetensors"), NULL, 0, NULL, 0, &err);
    CHECK(s == HERD_OK, "write empty: %s", err.msg);
    s = herd_safetensors_open(&st, path_in("none.safetensors"), &err);
    CHECK(s == HERD_OK && herd_safetensors_count(st) == 0, "open empty: %s", err.msg);
    herd_safetensors_close(st);
}

static void test_replace(void) {
    const char *path = path_in("replace.safetensors");
    write_raw(path, "old garbage that is not safetensors", 35);
    float a[2] = {1, 2}, b[3] = {4, 5, 6};
    herd_tensor_ref ta = {"a", HERD_F32, 1, {2}, a}, tb = {"b", HERD_F32, 1, {3}, b};
    herd_error err = {0};
    CHECK(herd_safetensors_write(path, &ta, 1, NULL, 0, &err) == HERD_OK, "write over garbage: %s", err.msg);
    CHECK(herd_safetensors_write(path, &tb, 1, NULL, 0, &err) == HERD_OK, "write over a safetensors file: %s", err.msg);
    herd_safetensors *st = NULL;
    CHECK(herd_safetensors_open(&st, path, &err) == HERD_OK, "reopen: %s", err.msg);
    if (st) {
        CHECK(herd_safetensors_count(st) == 1 && herd_safetensors_find(st, "b") && !herd_safetensors_find(st, "a"),
              "second write replaced the first");
        const herd_tensor_ref *r = herd_safetensors_find(st, "b");
        CHECK(r && ((const float *)r->data)[2] == 6.0f, "replaced values");
    }
    herd_safetensors_close(st);
    CHECK(count_tmp_files() == 0, "no temp file after replacing");

    /* Writer-side errors leave nothing behind. */
    herd_tensor_ref dup[2] = {ta, ta};
    CHECK(herd_safetensors_write(path, dup, 2, NULL, 0, &err) == HERD_EARG && strstr(err.msg, "duplicate"),
          "duplicate names refused: %s", err.msg);
    herd_tensor_ref reserved = {"__metadata__", HERD_F32, 1, {2}, a};
    CHECK(herd_safetensors_write(path, &reserved, 1, NULL, 0, &err) == HERD_EARG, "reserved name refused: %s", err.msg);
    const char *dupmeta[] = {"k", "1", "k", "2"};
    CHECK(herd_safetensors_write(path, &ta, 1, dupmeta, 2, &err) == HERD_EARG && strstr(err.msg, "duplicate metadata"),
          "duplicate metadata keys refused: %s", err.msg);
    herd_tensor_ref negshape = {"n", HERD_F32, 1, {-1}, a};
    CHECK(herd_safetensors_write(path, &negshape, 1, NULL, 0, &err) == HERD_EARG, "negative dim refused: %s", err.msg);
    const char *nodir = path_in("no/such/dir/x.safetensors");
    CHECK(herd_safetensors_write(nodir, &ta, 1, NULL, 0, &err) == HERD_EIO && strstr(err.msg, nodir) == err.msg,
          "unwritable directory: %s", err.msg);
    CHECK(count_tmp_files() == 0, "no temp file after failed writes");
    CHECK(herd_safetensors_open(&st, path, &err) == HERD_OK && herd_safetensors_find(st, "b"),
          "failed writes left the old file intact: %s", err.msg);
    herd_safetensors_close(st);
}

#define E(name, dtype, shape, b, e)                                                                                    \
    "\"" name "\":{\"dtype\":\"" dtype "\",\"shape\":" shape ",\"data_offsets\":[" #b "," #e "]}"

static void test_bad_files(void) {
    expect_bad_file("missing.safetensors", HERD_EIO, "cannot open");

    write_raw(path_in("short"), "\x10\x00\x00", 3);
    expect_bad_file("short", HERD_EFORMAT, "truncated");
    write_raw(path_in("zero"), "", 0);
    expect_bad_file("zero", HERD_EFORMAT, "truncated");

    write_st(path_in("beyond"), "{}", 0, 100);
    expect_bad_file("beyond", HERD_EFORMAT, "runs past the end");

    write_st(path_in("absurd"), "{}", 0, (uint64_t)1 << 60);
    expect_bad_file("absurd", HERD_EFORMAT, "exceeds");

    bad_header("datashort", "{" E("w", "F32", "[2,3]", 0, 24) "}", 20, HERD_EFORMAT,
               "outside the 20-byte data section");
    bad_header("badjson", "{\"w\":{\"dtype\":\"F32\",", 0, HERD_EFORMAT, "JSON byte");
    bad_header("badjson2", "{\"w\" {}}", 0, HERD_EFORMAT, "JSON byte 5");
    bad_header("trailingcomma", "{" E("w", "F32", "[2]", 0, 8) ",}", 8, HERD_EFORMAT, "JSON byte");
    bad_header("badutf8", "{\"\xff\":1}", 0, HERD_EFORMAT, "UTF-8");
    bad_header("deep", "{\"a\":[[[[[[[[[[[[1]]]]]]]]]]]]}", 0, HERD_EFORMAT, "nesting");
    bad_header("dtype", "{" E("w", "Q7", "[2]", 0, 8) "}", 8, HERD_EFORMAT, "unknown dtype 'Q7'");
    bad_header("f16", "{" E("w", "F16", "[2]", 0, 4) "}", 4, HERD_EUNSUPPORTED, "F16");
    bad_header("range", "{" E("w", "F32", "[2]", 0, 1000) "}", 8, HERD_EFORMAT, "'w'");
    bad_header("reversed", "{" E("w", "F32", "[0]", 8, 0) "}", 8, HERD_EFORMAT, "outside");
    bad_header("overlap", "{" E("a", "F32", "[2]", 0, 8) "," E("b", "F32", "[2]", 4, 12) "}", 12, HERD_EFORMAT,
               "overlap");
    bad_header("gap", "{" E("a", "F32", "[2]", 0, 8) "," E("b", "F32", "[2]", 12, 20) "}", 20, HERD_EFORMAT, "gap");
    bad_header("uncovered", "{" E("a", "F32", "[2]", 0, 8) "}", 12, HERD_EFORMAT, "belong to no tensor");
    bad_header("mismatch", "{" E("a", "F32", "[3]", 0, 8) "}", 8, HERD_EFORMAT, "need 12");
    bad_header("dup", "{" E("a", "F32", "[2]", 0, 8) "," E("a", "F32", "[2]", 8, 16) "}", 16, HERD_EFORMAT,
               "duplicate tensor name 'a'");
    bad_header("array", "[1,2]", 0, HERD_EFORMAT, "must be a JSON object, found array");
    bad_header("string", "\"x\"", 0, HERD_EFORMAT, "must be a JSON object, found string");
    bad_header("unknownkey", "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8],\"extra\":1}}", 8,
               HERD_EFORMAT, "unknown key 'extra'");
    bad_header("nodtype", "{\"a\":{\"shape\":[2],\"data_offsets\":[0,8]}}", 8, HERD_EFORMAT, "missing 'dtype'");
    bad_header("negdim", "{" E("a", "F32", "[-2]", 0, 8) "}", 8, HERD_EFORMAT, "non-negative integer");
    bad_header("fracdim", "{" E("a", "F32", "[2.0]", 0, 8) "}", 8, HERD_EFORMAT, "non-negative integer");
    bad_header("bigdim", "{" E("a", "F32", "[4294967296,4294967296,4294967296]", 0, 8) "}", 8, HERD_EFORMAT,
               "overflows");
    bad_header("ninedims", "{" E("a", "U8", "[1,1,1,1,1,1,1,1,1]", 0, 1) "}", 1, HERD_EUNSUPPORTED, "at most 8");
    bad_header("offs3", "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8,8]}}", 8, HERD_EFORMAT,
               "array of 2");
    bad_header("entrynotobj", "{\"a\":[1]}", 0, HERD_EFORMAT, "must be an object, found array");
    bad_header("metanotstr", "{\"__metadata__\":{\"k\":1}}", 0, HERD_EFORMAT, "must be a string");
    bad_header("metanotobj", "{\"__metadata__\":[]}", 0, HERD_EFORMAT, "__metadata__");
    bad_header("metadup", "{\"__metadata__\":{\"k\":\"a\",\"k\":\"b\"}}", 0, HERD_EFORMAT,
               "duplicate __metadata__ key 'k'");
    bad_header("metatwice", "{\"__metadata__\":{},\"__metadata__\":{}}", 0, HERD_EFORMAT, "duplicate __metadata__");
    bad_header("nulname", "{\"a\\u0000b\":{}}", 0, HERD_EFORMAT, "NUL");

    /* Valid by the spec though not what herd writes: unpadded header, metadata last,
     * zero-size tensors anywhere, whitespace around the JSON. */
    write_st(path_in("odd"),
             " {" E("z", "I32", "[0]", 0, 0) "," E("b", "U8", "[3]", 0, 3) "," E("a", "I32", "[2]", 3,
                                                                                 11) ",\"__metadata__\":{}} \n",
             11, 0);
    herd_error err = {0};
    herd_safetensors *st = NULL;
    herd_status s = herd_safetensors_open(&st, path_in("odd"), &err);
    CHECK(s == HERD_OK, "unusual but valid file: %s", err.msg);
    if (s == HERD_OK) {
        const herd_tensor_ref *a = herd_safetensors_find(st, "a");
        CHECK(a && (uintptr_t)a->data % 4 == 0, "misaligned I32 is realigned");
        int32_t v0;
        memcpy(&v0, a->data, 4);
        CHECK(v0 == (3 | 4 << 8 | 5 << 16 | 6 << 24), "I32 read little-endian from offset 3: %d", v0);
        CHECK(strcmp(herd_safetensors_get(st, 0)->name, "z") == 0, "header order kept");
    }
    herd_safetensors_close(st);
}

int main(void) {
    snprintf(dir, sizeof dir, "/tmp/herd_st_XXXXXX");
    if (!mkdtemp(dir)) {
        perror("mkdtemp");
        return 2;
    }
    test_round_trip();
    test_replace();
    test_bad_files();
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", dir);
    return check_summary();
}
